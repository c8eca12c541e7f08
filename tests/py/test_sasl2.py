"""SASL2 (XEP-0388) with a real client: nbxmpp (Gajim's library) sees hearth's SASL2 feature,
authenticates with SCRAM-SHA-256 over it, and binds after the features that follow success."""

from test_nbxmpp import Gajim


def test_nbxmpp_logs_in_over_sasl2(server):
    jid, pw = server.new_account("sasl2gajim")
    g = Gajim(server, jid, pw).login()
    assert g.client._sasl.is_sasl2(), "nbxmpp chose SASL2"
    assert g.mechanism() == "SCRAM-SHA-256"
    assert g.ping()
    g.client.disconnect()
