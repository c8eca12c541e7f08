"""Federation with Prosody and ejabberd when only certificates count: all three servers have
certificates from one private CA that each trusts, and none accepts dialback (Prosody with
`s2s_secure_auth`, ejabberd without `mod_s2s_dialback`, hearth with
`s2s.authentication = "certificate"`), so both directions use SASL EXTERNAL (XEP-0178).

A module of its own: module-scoped fixtures of one module are torn down before the next
module's are set up, and these servers use the same addresses as test_federation.py's."""

import pytest

from test_federation import PEERS, federated, logged_in, next_item, pytestmark, run_logged  # noqa: F401


@pytest.fixture(scope="module", params=list(PEERS))
def certified(request, hearth_server):
    """(hearth, the peer server) with certificates from the private CA, only certificates
    accepted on either side."""
    yield from federated(request.param, hearth_server, certificates=True)


def test_certificates_only_both_ways(certified):
    """Messages both ways with SASL EXTERNAL on both sides and dialback refused everywhere."""
    hearth, peer = certified
    alice_jid, alice_pw = hearth.new_account("certalice")
    bob_jid, bob_pw = peer.new_account("certbob")

    async def scenario():
        alice = await logged_in(hearth, alice_jid, alice_pw)
        bob = await logged_in(peer, bob_jid, bob_pw)
        try:
            alice.send_message(mto=f"{bob_jid}/py", mbody="signed and sealed", mtype="chat")
            await next_item(bob.messages, lambda m: m["body"] == "signed and sealed", what="hearth's message")
            bob.send_message(mto=f"{alice_jid}/py", mbody="delivered", mtype="chat")
            await next_item(alice.messages, lambda m: m["body"] == "delivered", what="the peer's message")
        finally:
            await alice.close()
            await bob.close()

    run_logged(certified, scenario())
    log = hearth.log()
    established = [l for l in log.splitlines() if "link established" in l]
    assert established and all("certificate" in l for l in established), established
    assert "authenticated by dialback" not in log
