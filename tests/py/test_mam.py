"""Message Archive Management (XEP-0313) with slixmpp and with Gajim's nbxmpp: what arrived
while a client was away is in the archive, and a 10,000-message archive pages through
completely, in order, without duplicates."""

import asyncio
import gc
import time

from nbxmpp.protocol import JID, Message
from nbxmpp.structs import StanzaHandler

from test_nbxmpp import Gajim, finish
from test_slixmpp import TIMEOUT, Client, next_item, run


def test_slixmpp_catches_up_after_being_offline(server):
    a_jid, a_pw = server.new_account("mamalice")
    b_jid, b_pw = server.new_account("mambob")

    async def scenario():
        b = Client(server, b_jid, b_pw)
        assert await b.login()
        for i in range(3):
            b.send_message(mto=a_jid, mbody=f"while you were out {i}", mtype="chat")
        await b.ping()
        a = Client(server, a_jid, a_pw, resource="laptop")
        a.register_plugin("xep_0313")
        assert await a.login(presence=False)
        info = await a.plugin["xep_0030"].get_info(jid=a_jid, timeout=TIMEOUT, local=False)
        assert "urn:xmpp:mam:2" in info["disco_info"]["features"]
        bodies = []
        async for msg in a.plugin["xep_0313"].iterate(with_jid=b_jid, rsm={"max": 2}):
            bodies.append(msg["mam_result"]["forwarded"]["stanza"]["body"])
        assert bodies == [f"while you were out {i}" for i in range(3)]
        await a.close()
        await b.close()

    run(scenario())


def test_slixmpp_pages_through_ten_thousand_messages(server):
    a_jid, a_pw = server.new_account("bigalice")
    b_jid, b_pw = server.new_account("bigbob")
    total = 10_000

    async def scenario():
        a = Client(server, a_jid, a_pw)
        a.register_plugin("xep_0313")
        assert await a.login()
        b = Client(server, b_jid, b_pw)
        assert await b.login()
        started = time.monotonic()
        for i in range(total):
            b.send_message(mto=f"{a_jid}/py", mbody=f"n{i}", mtype="chat")
            if i % 500 == 499:
                await b.ping()
        await next_item(a.messages, lambda m: m["body"] == f"n{total - 1}", what="the last message")
        fill = time.monotonic() - started
        started = time.monotonic()
        seen = []
        async for msg in a.plugin["xep_0313"].iterate(with_jid=b_jid, rsm={"max": 250}):
            seen.append(msg["mam_result"]["forwarded"]["stanza"]["body"])
        paging = time.monotonic() - started
        assert len(seen) == total, len(seen)
        assert seen == [f"n{i}" for i in range(total)], "in order, no duplicates"
        # Backwards from the end (RSM <before/>): the newest first.
        newest = []
        async for msg in a.plugin["xep_0313"].iterate(with_jid=b_jid, reverse=True, rsm={"max": 50}):
            newest.append(msg["mam_result"]["forwarded"]["stanza"]["body"])
            if len(newest) == 60:
                break
        assert newest == [f"n{i}" for i in range(total - 1, total - 61, -1)]
        print(f"filled {total} messages in {fill:.1f} s, paged them in {paging:.1f} s")
        await a.close()
        await b.close()

    async def main():
        try:
            await asyncio.wait_for(scenario(), 110)
        finally:
            gc.collect()

    asyncio.run(main())


def test_nbxmpp_queries_like_gajim(server):
    a_jid, a_pw = server.new_account("gmamalice")
    b_jid, b_pw = server.new_account("gmambob")
    b = Gajim(server, b_jid, b_pw, resource="b").login()
    for i in range(5):
        b.send(Message(to=a_jid, body=f"g{i}", typ="chat"))
    b.ping()
    a = Gajim(server, a_jid, a_pw).login()
    archived = []

    def on_message(_client, stanza, properties):
        if properties.is_mam_message:
            archived.append((properties.mam.id, stanza.getBody()))

    a.client.register_handler(StanzaHandler(name="message", callback=on_message, priority=1))
    mam = a.client.get_module("MAM")
    own = JID.from_string(a_jid)
    first = finish(mam.make_query(own, queryid="g1", with_=b_jid, max_=3), "first page")
    assert not first.complete
    second = finish(mam.make_query(own, queryid="g2", with_=b_jid, after=first.rsm.last, max_=3), "second page")
    assert second.complete
    assert [body for _, body in archived] == [f"g{i}" for i in range(5)]
    assert archived[-1][0] == second.rsm.last
    a.client.disconnect()
    b.client.disconnect()
