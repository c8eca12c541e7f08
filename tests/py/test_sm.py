"""Stream Management (XEP-0198) and Client State Indication (XEP-0352) with slixmpp: a client
whose network goes away resumes its session and gets every message exactly once."""

import asyncio

from conftest import HOST
from test_slixmpp import TIMEOUT, Client, next_item, run


def future_on(client, event):
    fut = asyncio.get_event_loop().create_future()
    client.add_event_handler(event, lambda e: fut.done() or fut.set_result(e))
    return fut


def test_slixmpp_resumes_after_network_loss(server):
    a_jid, a_pw = server.new_account("smalice")
    b_jid, b_pw = server.new_account("smbob")

    async def scenario():
        a = Client(server, a_jid, a_pw, resource="phone")
        a.register_plugin("xep_0198")
        enabled = future_on(a, "sm_enabled")
        resumed = future_on(a, "session_resumed")
        assert await a.login()
        await asyncio.wait_for(enabled, TIMEOUT)
        b = Client(server, b_jid, b_pw)
        assert await b.login()
        b.send_message(mto=a_jid, mbody="before", mtype="chat")
        await next_item(a.messages, lambda m: m["body"] == "before")
        # The network goes away: the socket is cut without closing the stream.
        a.transport.abort()
        for i in range(3):
            b.send_message(mto=a_jid, mbody=f"while away {i}", mtype="chat")
        await b.ping()
        a.connect(HOST, server.port)
        await asyncio.wait_for(resumed, TIMEOUT)
        bodies = [(await next_item(a.messages))["body"] for _ in range(3)]
        assert bodies == ["while away 0", "while away 1", "while away 2"]
        await asyncio.sleep(0.5)
        assert a.messages.empty(), "nothing is delivered twice"
        a.send_message(mto=b_jid, mbody="back", mtype="chat")
        await next_item(b.messages, lambda m: m["body"] == "back")
        await a.close()
        await b.close()

    run(scenario())


def test_slixmpp_inactive_client_gets_bodies_at_once(server):
    a_jid, a_pw = server.new_account("csialice")
    b_jid, b_pw = server.new_account("csibob")

    async def scenario():
        a = Client(server, a_jid, a_pw)
        a.register_plugin("xep_0352")
        a.register_plugin("xep_0085")
        seen = asyncio.Queue()
        a.add_event_handler("chatstate_composing", lambda m: seen.put_nowait("composing"))
        a.add_event_handler("message", lambda m: m["body"] and seen.put_nowait(m["body"]))
        assert await a.login()
        a.plugin["xep_0352"].send_inactive()
        b = Client(server, b_jid, b_pw)
        b.register_plugin("xep_0085")
        assert await b.login()
        composing = b.make_message(mto=f"{a_jid}/py", mtype="chat")
        composing["chat_state"] = "composing"
        composing.send()
        await b.ping()
        await asyncio.sleep(0.3)
        assert seen.empty(), "a chat state waits while the client is inactive"
        b.send_message(mto=f"{a_jid}/py", mbody="urgent", mtype="chat")
        assert [await next_item(seen), await next_item(seen)] == ["composing", "urgent"]
        await a.close()
        await b.close()

    run(scenario())


def test_nbxmpp_resumes_after_connection_loss(server):
    """Gajim's library: the socket drops without the stream being closed; reconnecting resumes
    the session and what arrived meanwhile is delivered once."""
    from nbxmpp.protocol import Message, Presence
    from test_nbxmpp import Gajim, pump

    a_jid, a_pw = server.new_account("gsmalice")
    b_jid, b_pw = server.new_account("gsmbob")
    a = Gajim(server, a_jid, a_pw).login()
    resumed = []
    a.client.subscribe("resume-successful", lambda *_: resumed.append(True))
    pump(lambda: a.client.resumeable, what="Stream Management enabled with resumption")
    a.send(Presence())
    b = Gajim(server, b_jid, b_pw, resource="b").login()
    b.send(Presence())
    b.send(Message(to=a_jid, body="one", typ="chat"))
    a.wait_message(lambda m: m.getBody() == "one")
    a.client.disconnect(immediate=True)
    pump(lambda: a.state == "disconnected", what="the connection to drop")
    b.send(Message(to=a_jid, body="two", typ="chat"))
    b.ping()
    a.client.connect()
    pump(lambda: resumed, what="the session to resume")
    a.wait_message(lambda m: m.getBody() == "two")
    b.ping()
    bodies = [m.getBody() for m in a.messages if m.getBody()]
    assert bodies.count("one") == 1 and bodies.count("two") == 1, bodies
    a.client.disconnect()
    b.client.disconnect()
