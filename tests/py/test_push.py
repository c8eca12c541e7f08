"""Push Notifications (XEP-0357) with slixmpp clients: the phone registers an app server (here
a slixmpp client standing in for Conversations' app server) and is woken when a message arrives
while it is offline. slixmpp has no XEP-0357 plugin, so the enable request is built by hand,
as Conversations sends it."""

import asyncio

from slixmpp.xmlstream import ET
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from test_slixmpp import TIMEOUT, Client, run

NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_DATA = "jabber:x:data"


def test_slixmpp_offline_user_is_woken(server):
    a_jid, a_pw = server.new_account("pushalice")
    b_jid, b_pw = server.new_account("pushbob")
    app_jid, app_pw = server.new_account("pushapp")

    async def scenario():
        app = Client(server, app_jid, app_pw, resource="svc")
        notifications = asyncio.Queue()

        def on_publish(iq):
            notifications.put_nowait(iq)
            iq.reply().send()

        app.register_handler(Callback(
            "push publish", MatchXPath(f"{{jabber:client}}iq/{{{NS_PUBSUB}}}pubsub"), on_publish))
        assert await app.login()

        phone = Client(server, a_jid, a_pw, resource="phone")
        assert await phone.login()
        enable = phone.Iq(stype="set")
        enable.append(ET.fromstring(
            f"<enable xmlns='urn:xmpp:push:0' jid='{app_jid}/svc' node='device-token'>"
            f"<x xmlns='{NS_DATA}' type='submit'>"
            f"<field var='FORM_TYPE'><value>{NS_PUBSUB}#publish-options</value></field>"
            "<field var='secret'><value>app-secret</value></field></x></enable>"))
        await enable.send(timeout=TIMEOUT)
        await phone.close()

        b = Client(server, b_jid, b_pw)
        assert await b.login()
        b.send_message(mto=a_jid, mbody="are you there?", mtype="chat")
        iq = await asyncio.wait_for(notifications.get(), TIMEOUT)
        publish = iq.xml.find(f"{{{NS_PUBSUB}}}pubsub/{{{NS_PUBSUB}}}publish")
        assert publish.get("node") == "device-token"
        fields = {
            f.get("var"): f.findtext(f"{{{NS_DATA}}}value")
            for f in iq.xml.iter(f"{{{NS_DATA}}}field")
        }
        assert fields["FORM_TYPE"] in ("urn:xmpp:push:summary", f"{NS_PUBSUB}#publish-options")
        assert fields["last-message-sender"] == f"{b_jid}/py"
        assert fields["secret"] == "app-secret"
        assert "last-message-body" not in fields
        await b.close()
        await app.close()

    run(scenario())
