"""Blocking Command (XEP-0191) with slixmpp and with Gajim's nbxmpp."""

import asyncio

from slixmpp.exceptions import IqError
from slixmpp.xmlstream import ET

from test_nbxmpp import Gajim, finish
from test_slixmpp import TIMEOUT, Client, run


def test_slixmpp_block_and_unblock(server):
    a_jid, a_pw = server.new_account("blalice")
    b_jid, b_pw = server.new_account("blbob")

    async def scenario():
        a = Client(server, a_jid, a_pw)
        a.register_plugin("xep_0191")
        assert await a.login()
        b = Client(server, b_jid, b_pw)
        assert await b.login()
        assert await a.plugin["xep_0191"].get_blocked_jids(timeout=TIMEOUT) == set()
        await a.plugin["xep_0191"].block([b_jid], timeout=TIMEOUT)
        assert {str(j) for j in await a.plugin["xep_0191"].get_blocked_jids(timeout=TIMEOUT)} == {b_jid}
        # Bob's IQ to alice's account is answered as if she did not exist.
        iq = b.Iq(stype="get", sto=a_jid)
        iq.append(ET.fromstring("<vCard xmlns='vcard-temp'/>"))
        try:
            await iq.send(timeout=TIMEOUT)
            raise AssertionError("a blocked contact's IQ must fail")
        except IqError as e:
            assert e.condition == "service-unavailable"
        b.send_message(mto=f"{a_jid}/py", mbody="let me in", mtype="chat")
        await b.ping()
        await asyncio.sleep(0.3)
        assert all(m["body"] != "let me in" for m in list(a.messages._queue))
        await a.plugin["xep_0191"].unblock([b_jid], timeout=TIMEOUT)
        assert await a.plugin["xep_0191"].get_blocked_jids(timeout=TIMEOUT) == set()
        await a.close()
        await b.close()

    run(scenario())


def test_nbxmpp_blocking_list(server):
    from nbxmpp.protocol import JID

    a_jid, a_pw = server.new_account("gblalice")
    a = Gajim(server, a_jid, a_pw).login()
    blocking = a.client.get_module("Blocking")
    assert finish(blocking.request_blocking_list(), "blocklist") == set()
    spammer = JID.from_string("spam@spam.example")
    finish(blocking.block([spammer]), "block")
    assert finish(blocking.request_blocking_list(), "blocklist") == {spammer}
    finish(blocking.unblock([spammer]), "unblock")
    assert finish(blocking.request_blocking_list(), "blocklist") == set()
    a.client.disconnect()
