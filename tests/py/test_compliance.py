"""The checks of the Conversations compliance tester (github.com/iNPUTmice/caas, the tests in
caas-app/.../xmpp/tests) that concern mobile use, replayed with slixmpp, plus what Gajim keys on.
The tester itself needs Maven Central, which this machine cannot reach; each test below names the
caas test it mirrors and checks exactly what that one checks."""

import uuid

from slixmpp.xmlstream import ET

from conftest import DOMAIN
from test_slixmpp import TIMEOUT, Client, run

NS_CAPS = "http://jabber.org/protocol/caps"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_PUBSUB_OWNER = "http://jabber.org/protocol/pubsub#owner"
NS_DATA = "jabber:x:data"


async def logged_in(server):
    jid, password = server.new_account("caas")
    c = Client(server, jid, password)
    assert await c.login()
    return c, jid


async def disco(c, jid):
    info = await c.plugin["xep_0030"].get_info(jid=jid, timeout=TIMEOUT, local=False)
    features = set(info["disco_info"]["features"])
    identities = {(cat, typ) for cat, typ, _lang, _name in info["disco_info"]["identities"]}
    return features, identities


def test_stream_features(server):
    """caas StreamManagement, CSI, EntityCapabilities, RosterVersioning: stream features after
    login."""

    async def scenario():
        c, _ = await logged_in(server)
        names = {child.tag for child in c.stream_features[-1]}
        assert "{urn:xmpp:sm:3}sm" in names
        assert "{urn:xmpp:csi:0}csi" in names
        assert f"{{{NS_CAPS}}}c" in names
        assert "{urn:xmpp:features:rosterver}ver" in names
        await c.close()

    run(scenario())


def test_server_disco(server):
    """caas MessageCarbons, Blocking, OfflineStorage: features of the server's disco#info."""

    async def scenario():
        c, _ = await logged_in(server)
        features, _ = await disco(c, DOMAIN)
        assert {"urn:xmpp:carbons:2", "urn:xmpp:blocking", "msgoffline"} <= features
        await c.close()

    run(scenario())


def test_account_disco(server):
    """caas PEP, MAM, Push, AvatarConversion, BookmarkConversion, OMEMO (identity part), and
    what Gajim needs for the archive and XEP-0402 bookmarks: the account's bare JID."""

    async def scenario():
        c, jid = await logged_in(server)
        features, identities = await disco(c, jid)
        assert ("pubsub", "pep") in identities
        assert {
            f"{NS_PUBSUB}#publish-options",
            "urn:xmpp:pep-vcard-conversion:0",
            "urn:xmpp:bookmarks-conversion:0",
            "urn:xmpp:push:0",
            "urn:xmpp:mam:2",
            "urn:xmpp:sid:0",
            "urn:xmpp:bookmarks:1#compat-pep",
            f"{NS_PUBSUB}#config-node-max",
        } <= features, features
        await c.close()

    run(scenario())


def test_omemo_publish_with_open_access_model(server):
    """caas OMEMO: publish to a fresh node with publish-options access_model=open, read the node
    configuration back (it must say open), delete the node."""

    async def scenario():
        c, jid = await logged_in(server)
        node = f"eu.siacs.conversations.axolotl.{uuid.uuid4()}"
        iq = c.Iq(stype="set")
        iq.append(ET.fromstring(
            f"<pubsub xmlns='{NS_PUBSUB}'><publish node='{node}'><item id='current'>"
            "<bundle xmlns='eu.siacs.conversations.axolotl'/></item></publish>"
            f"<publish-options><x xmlns='{NS_DATA}' type='submit'>"
            f"<field var='FORM_TYPE' type='hidden'><value>{NS_PUBSUB}#publish-options</value></field>"
            "<field var='pubsub#access_model'><value>open</value></field></x></publish-options></pubsub>"
        ))
        await iq.send(timeout=TIMEOUT)
        get = c.Iq(stype="get")
        get.append(ET.fromstring(f"<pubsub xmlns='{NS_PUBSUB_OWNER}'><configure node='{node}'/></pubsub>"))
        result = await get.send(timeout=TIMEOUT)
        fields = {
            f.get("var"): [v.text for v in f.findall(f"{{{NS_DATA}}}value")]
            for f in result.xml.iter(f"{{{NS_DATA}}}field")
        }
        assert fields.get("pubsub#access_model") == ["open"], fields
        delete = c.Iq(stype="set")
        delete.append(ET.fromstring(f"<pubsub xmlns='{NS_PUBSUB_OWNER}'><delete node='{node}'/></pubsub>"))
        await delete.send(timeout=TIMEOUT)
        await c.close()

    run(scenario())
