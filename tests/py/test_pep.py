"""PEP (XEP-0163) with Gajim's nbxmpp: OMEMO device list publishing with publish-options
(open, then a conflicting precondition that nbxmpp resolves by reconfiguring the node, as it
does with force_node_options), and avatars (XEP-0084) that become the vCard photo (XEP-0398)."""

from nbxmpp.modules.user_avatar import Avatar
from nbxmpp.protocol import JID

from test_nbxmpp import Gajim, finish

PNG = b"\x89PNG\r\n\x1a\n pretend image"


def test_nbxmpp_omemo_devicelist_and_avatar(server):
    a_jid, a_pw = server.new_account("pepalice")
    b_jid, b_pw = server.new_account("pepbob")
    a = Gajim(server, a_jid, a_pw).login()
    omemo = a.client.get_module("OMEMO")
    finish(omemo.set_devicelist({1234, 5678}, public=True), "publish the device list")
    b = Gajim(server, b_jid, b_pw, resource="b").login()
    devices = finish(b.client.get_module("OMEMO").request_devicelist(a_jid), "read the device list")
    assert set(devices) == {1234, 5678}
    # Republishing as presence-only conflicts with the open node; nbxmpp reconfigures the node
    # (XEP-0223 precondition-not-met) and publishes again.
    finish(omemo.set_devicelist({1234}, public=False), "republish with another access model")
    own = finish(omemo.request_devicelist(a_jid), "read own device list")
    assert set(own) == {1234}
    avatar = Avatar()
    avatar.add_image_source(PNG, "image/png", 1, 1)
    finish(a.client.get_module("UserAvatar").set_avatar(avatar, public=True), "publish the avatar")
    card = finish(b.client.get_module("VCardTemp").request_vcard(JID.from_string(a_jid)), "vCard")
    data, _sha = card.get_avatar()
    assert data == PNG, "the PEP avatar is the vCard photo (XEP-0398)"
    a.client.disconnect()
    b.client.disconnect()
