"""`hearth check` against a real DNS server (dnslib) serving the SRV records of a test zone."""

import subprocess
import tempfile

from dnslib import QTYPE, RCODE, RR, SRV, A
from dnslib.server import BaseResolver, DNSServer

DNS_HOST = "127.0.0.9"
ZONE = {
    ("_xmpp-client._tcp.example.test.", "SRV"): SRV(priority=5, weight=0, port=5222, target="xmpp.example.test."),
    ("_xmpps-client._tcp.example.test.", "SRV"): SRV(priority=5, weight=0, port=5223, target="gone.example.test."),
    ("xmpp.example.test.", "A"): A("192.0.2.10"),
}


class Zone(BaseResolver):
    def resolve(self, request, handler):
        reply = request.reply()
        qname, qtype = str(request.q.qname), QTYPE[request.q.qtype]
        rdata = ZONE.get((qname, qtype))
        if rdata is None:
            reply.header.rcode = RCODE.NXDOMAIN
        else:
            reply.add_answer(RR(qname, getattr(QTYPE, qtype), rdata=rdata, ttl=60))
        return reply


def test_check_reports_srv_records(server):
    dns = DNSServer(Zone(), address=DNS_HOST, port=0)
    dns.start_thread()
    port = dns.server.server_address[1]
    try:
        with tempfile.TemporaryDirectory() as d:
            config = f"{d}/hearth.toml"
            with open(config, "w") as f:
                f.write(f'domain = "example.test"\ndata_dir = "{d}/data"\n')
            r = subprocess.run(
                [server.binary, "--config", config, "check", "--dns-server", f"{DNS_HOST}:{port}"],
                capture_output=True, text=True, timeout=60,
            )
    finally:
        dns.stop()
    out = r.stdout
    assert r.returncode == 1, out  # one error: a target that does not resolve
    assert "ok:      _xmpp-client._tcp.example.test. → xmpp.example.test.:5222" in out, out
    assert "points to gone.example.test., which does not resolve" in out, out
    assert "no SRV record _xmpp-server._tcp.example.test." in out, out
    # Without server SRV records, other servers fall back to the domain on 5269 (RFC 6120 §3.2).
    assert "other servers would connect to example.test:5269 (STARTTLS)" in out, out
    assert "self-signed" in out, out
