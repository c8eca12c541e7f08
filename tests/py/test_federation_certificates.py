"""Federation with Prosody and ejabberd when only certificates count: all three servers have
certificates from one private CA that each trusts, and none accepts dialback (Prosody with
`s2s_secure_auth`, ejabberd without `mod_s2s_dialback`, hearth with
`s2s.authentication = "certificate"`), so both directions use SASL EXTERNAL (XEP-0178).

A module of its own: module-scoped fixtures of one module are torn down before the next
module's are set up, and these servers use the same addresses as test_federation.py's."""

import pytest

from test_federation import PEERS, federated, next_item, pytestmark, with_users  # noqa: F401


@pytest.fixture(scope="module", params=list(PEERS))
def certified(request, hearth_server):
    """(hearth, the peer server) with certificates from the private CA, only certificates
    accepted on either side."""
    yield from federated(request.param, hearth_server, certificates=True)


def test_certificates_only_both_ways(certified):
    """Messages both ways with SASL EXTERNAL on both sides and dialback refused everywhere."""
    hearth, _ = certified

    async def scenario(u):
        u.alice.send_message(mto=f"{u.bob_jid}/py", mbody="signed and sealed", mtype="chat")
        await next_item(u.bob.messages, lambda m: m["body"] == "signed and sealed", what="hearth's message")
        u.bob.send_message(mto=f"{u.alice_jid}/py", mbody="delivered", mtype="chat")
        await next_item(u.alice.messages, lambda m: m["body"] == "delivered", what="the peer's message")

    with_users(certified, "cert", scenario)
    log = hearth.log()
    established = [l for l in log.splitlines() if "link established" in l]
    assert established and all("certificate" in l for l in established), established
    assert "authenticated by dialback" not in log
