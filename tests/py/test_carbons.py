"""Message Carbons (XEP-0280) with slixmpp (three clients of one account, one without
carbons) and with Gajim's nbxmpp, which unwraps carbon copies itself."""

import asyncio

from test_nbxmpp import Gajim, pump
from test_slixmpp import TIMEOUT, Client, next_item, run


def test_slixmpp_three_clients(server):
    a_jid, a_pw = server.new_account("cbalice")
    b_jid, b_pw = server.new_account("cbbob")

    async def scenario():
        clients = []
        for resource, carbons in (("one", True), ("two", True), ("three", False)):
            c = Client(server, a_jid, a_pw, resource=resource)
            c.register_plugin("xep_0280")
            c.copies = asyncio.Queue()
            c.add_event_handler("carbon_received", lambda m, c=c: c.copies.put_nowait(("received", m)))
            c.add_event_handler("carbon_sent", lambda m, c=c: c.copies.put_nowait(("sent", m)))
            assert await c.login()
            if carbons:
                await c.plugin["xep_0280"].enable(timeout=TIMEOUT)
            clients.append(c)
        one, two, three = clients
        b = Client(server, b_jid, b_pw)
        assert await b.login()
        b.send_message(mto=f"{a_jid}/one", mbody="hello one", mtype="chat")
        await next_item(one.messages, lambda m: m["body"] == "hello one")
        kind, copy = await asyncio.wait_for(two.copies.get(), TIMEOUT)
        assert kind == "received"
        assert copy["carbon_received"]["body"] == "hello one"
        one.send_message(mto=b_jid, mbody="reply from one", mtype="chat")
        await next_item(b.messages, lambda m: m["body"] == "reply from one")
        kind, copy = await asyncio.wait_for(two.copies.get(), TIMEOUT)
        assert kind == "sent" and copy["carbon_sent"]["body"] == "reply from one"
        await three.ping()
        await asyncio.sleep(0.3)
        assert three.copies.empty(), "the client without carbons gets no copies"
        assert one.copies.empty(), "the sender gets no copy of its own message"
        for c in clients + [b]:
            await c.close()

    run(scenario())


def test_nbxmpp_gets_copies(server):
    from nbxmpp.namespaces import Namespace
    from nbxmpp.protocol import Iq, Message

    a_jid, a_pw = server.new_account("gcbalice")
    b_jid, b_pw = server.new_account("gcbbob")
    phone = Gajim(server, a_jid, a_pw, resource="phone").login()
    desktop = Gajim(server, a_jid, a_pw, resource="desktop").login()
    enable = Iq("set")
    enable.addChild("enable", namespace=Namespace.CARBONS)
    done = []
    desktop.client.send_stanza(enable, callback=lambda *_: done.append(True))
    pump(lambda: done, what="carbons enabled")
    b = Gajim(server, b_jid, b_pw, resource="b").login()
    b.send(Message(to=f"{a_jid}/phone", body="for the phone", typ="chat"))
    phone.wait_message(lambda m: m.getBody() == "for the phone")
    desktop.wait_message(lambda m: m.getBody() == "for the phone", what="the received carbon")
    phone.send(Message(to=b_jid, body="from the phone", typ="chat"))
    desktop.wait_message(lambda m: m.getBody() == "from the phone", what="the sent carbon")
    for g in (phone, desktop, b):
        g.client.disconnect()
