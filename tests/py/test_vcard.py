"""vCard-temp (XEP-0054) with slixmpp and Gajim's nbxmpp (Gajim shows vCard avatars in group
chats), the photo hash in presence (XEP-0153), and Private XML Storage (XEP-0049) with slixmpp."""

import base64
import hashlib

from slixmpp.plugins.xep_0054.stanza import VCardTemp
from slixmpp.xmlstream import register_stanza_plugin
from slixmpp.xmlstream.stanzabase import ElementBase

from test_nbxmpp import Gajim, finish, pump
from test_slixmpp import TIMEOUT, Client, next_item, run

PNG = b"\x89PNG\r\n\x1a\n not a real image"


def test_slixmpp_vcard_and_photo_hash_in_presence(server):
    a_jid, a_pw = server.new_account("vcalice")
    b_jid, b_pw = server.new_account("vcbob")

    async def scenario():
        a = Client(server, a_jid, a_pw)
        a.register_plugin("xep_0054")
        assert await a.login(presence=False)
        card = VCardTemp()
        card["FN"] = "Alice Example"
        card["PHOTO"]["TYPE"] = "image/png"
        card["PHOTO"]["BINVAL"] = PNG
        await a.plugin["xep_0054"].publish_vcard(card, timeout=TIMEOUT)
        b = Client(server, b_jid, b_pw)
        b.register_plugin("xep_0054")
        b.register_plugin("xep_0084")
        assert await b.login()
        got = await b.plugin["xep_0054"].get_vcard(a_jid, local=False, timeout=TIMEOUT)
        assert got["vcard_temp"]["FN"] == "Alice Example"
        assert got["vcard_temp"]["PHOTO"]["BINVAL"] == PNG
        # XEP-0398: the vCard photo is also the PEP avatar, for clients that read only that.
        sha1 = hashlib.sha1(PNG).hexdigest()
        meta = await b.plugin["xep_0060"].get_items(
            a_jid, "urn:xmpp:avatar:metadata", timeout=TIMEOUT
        )
        item = meta["pubsub"]["items"]["substanzas"][0]
        assert item["id"] == sha1
        ns = "{urn:xmpp:avatar:metadata}"
        assert item.xml.find(f"{ns}metadata/{ns}info").get("type") == "image/png"
        data = await b.plugin["xep_0084"].retrieve_avatar(a_jid, sha1, timeout=TIMEOUT)
        payload = data.xml.find(".//{urn:xmpp:avatar:data}data")
        assert base64.b64decode(payload.text) == PNG
        a.send_presence(pto=f"{b_jid}/py")
        p = await next_item(b.presences, lambda p: str(p["from"]).startswith(a_jid))
        photo = p.xml.find("{vcard-temp:x:update}x/{vcard-temp:x:update}photo")
        assert photo is not None and photo.text == hashlib.sha1(PNG).hexdigest()
        await a.close()
        await b.close()

    run(scenario())


class Prefs(ElementBase):
    name = "prefs"
    namespace = "hearth:test:prefs"
    plugin_attrib = "prefs"
    interfaces = {"theme"}
    sub_interfaces = interfaces


def test_slixmpp_private_storage(server):
    jid, pw = server.new_account("privuser")

    async def scenario():
        c = Client(server, jid, pw)
        c.register_plugin("xep_0049")
        from slixmpp.plugins.xep_0049.stanza import PrivateXML

        register_stanza_plugin(PrivateXML, Prefs)
        assert await c.login()
        prefs = Prefs()
        prefs["theme"] = "dark"
        await c.plugin["xep_0049"].store(prefs, timeout=TIMEOUT)
        result = await c.plugin["xep_0049"].retrieve("prefs", timeout=TIMEOUT)
        assert result["private"]["prefs"]["theme"] == "dark"
        await c.close()

    run(scenario())


def test_nbxmpp_vcard_avatar(server):
    """Gajim publishes its vCard with an avatar and reads a contact's."""
    from nbxmpp.modules.vcard_temp import VCard
    from nbxmpp.protocol import JID

    a_jid, a_pw = server.new_account("gvcalice")
    b_jid, b_pw = server.new_account("gvcbob")
    a = Gajim(server, a_jid, a_pw).login()
    card = VCard()
    card.set_avatar(PNG, "image/png")
    finish(a.client.get_module("VCardTemp").set_vcard(card), "set vCard")
    b = Gajim(server, b_jid, b_pw, resource="b").login()
    got = finish(b.client.get_module("VCardTemp").request_vcard(JID.from_string(a_jid)), "vCard")
    data, sha = got.get_avatar()
    assert data == PNG and sha == hashlib.sha1(PNG).hexdigest()
    a.client.disconnect()
    b.client.disconnect()
    pump(lambda: True)
