"""Services the server tells its users about: STUN/TURN (XEP-0215) against a real coturn
(Debian's package, started here with `use-auth-secret`: the TURN credentials hearth hands out
make an allocation that coturn accepts, `turnutils_uclient`, and stop working once they
expire), and contact addresses (XEP-0157) in the server's disco#info."""

import os
import shutil
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET

import pytest

from conftest import Server, free_ports, terminate
from test_slixmpp import Client, run

NS = "urn:xmpp:extdisco:2"
TURN_HOST = "127.0.0.50"
HEARTH_HOST = "127.0.0.51"
SECRET = "hearth-test-turn-secret"

pytestmark = pytest.mark.skipif(shutil.which("turnserver") is None,
                                reason="needs Debian's coturn (tests/py/install-deps.sh installs it)")


@pytest.fixture(scope="module")
def turn(hearth_server):
    """(hearth with two TURN services, one with one-second credentials, and contact addresses;
    coturn's port)."""
    (port,) = free_ports(1, TURN_HOST)
    workdir = tempfile.mkdtemp(prefix="hearth-turn-")
    log = open(os.path.join(workdir, "turnserver.log"), "w")
    coturn = subprocess.Popen(
        ["turnserver", "-n", f"--listening-ip={TURN_HOST}", f"--listening-port={port}",
         f"--relay-ip={TURN_HOST}", "--use-auth-secret", f"--static-auth-secret={SECRET}",
         "--realm=hearth.test", "--no-tls", "--no-dtls", "--no-cli", "--allow-loopback-peers",
         "--log-file=stdout", "--simple-log", "--min-port=49000", "--max-port=49200"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    services = "".join(
        f'[[modules.extdisco.services]]\ntype = "{kind}"\nhost = "{host}"\nport = {port}\n{more}'
        for kind, host, more in (
            ("stun", TURN_HOST, ""),
            ("turn", TURN_HOST, f'secret = "{SECRET}"\n'),
            ("turn", "short.turn.test", f'secret = "{SECRET}"\ncredentials_lifetime_secs = 1\n'),
        ))
    contact = ('[modules.contact]\nabuse = ["mailto:abuse@example.com", "xmpp:abuse@example.com"]\n'
               'support = ["https://example.com/help"]\n')
    os.mkdir(os.path.join(workdir, "hearth"))
    hearth = Server(hearth_server.binary, os.path.join(workdir, "hearth"), host=HEARTH_HOST,
                    extra=services + contact)
    try:
        yield hearth, port
    finally:
        hearth.stop()
        terminate(coturn, 10)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


async def ask(client, payload):
    iq = client.Iq(stype="get", sto=client.hearth.domain)
    iq.append(ET.fromstring(payload))
    result = await iq.send(timeout=15)
    return [dict(s.attrib) for s in result.xml.iter(f"{{{NS}}}service")]


def allocate(port, service):
    """A TURN allocation with `service`'s credentials (turnutils_uclient's exit status)."""
    return subprocess.run(
        ["turnutils_uclient", "-y", "-n", "2", "-m", "1", "-u", service["username"],
         "-w", service["password"], "-p", str(port), TURN_HOST],
        capture_output=True, text=True, timeout=60).returncode


def test_turn_credentials_work_with_coturn_and_expire(turn):
    hearth, port = turn
    jid, pw = hearth.new_account("caller")

    async def scenario():
        c = Client(hearth, jid, pw)
        assert await c.login()
        try:
            info = await c.plugin["xep_0030"].get_info(jid=hearth.domain, timeout=15)
            assert NS in info["disco_info"]["features"]
            services = await ask(c, f"<services xmlns='{NS}'/>")
            assert [(s["type"], s["host"]) for s in services] == [
                ("stun", TURN_HOST), ("turn", TURN_HOST), ("turn", "short.turn.test")]
            stun, turn_service = services[0], services[1]
            assert "username" not in stun and int(stun["port"]) == port
            assert turn_service["username"].endswith(f":{jid}") and turn_service["restricted"] == "1"
            only_turn = await ask(c, f"<services xmlns='{NS}' type='turn'/>")
            assert {s["type"] for s in only_turn} == {"turn"}
            short = await ask(c, f"<credentials xmlns='{NS}'><service type='turn' host='short.turn.test'/></credentials>")
            assert len(short) == 1 and short[0]["host"] == "short.turn.test"
            return turn_service, short[0]
        finally:
            await c.close()

    good, short = run(scenario())
    assert allocate(port, good) == 0, "coturn refused the credentials hearth handed out"
    time.sleep(2)
    assert allocate(port, short) != 0, "coturn accepted expired credentials"
    wrong = dict(good, password="AAAA" + good["password"][4:])
    assert allocate(port, wrong) != 0


def test_contact_addresses_in_server_info(turn):
    hearth, _ = turn
    jid, pw = hearth.new_account("curious")

    async def scenario():
        c = Client(hearth, jid, pw)
        assert await c.login()
        try:
            info = await c.plugin["xep_0030"].get_info(jid=hearth.domain, timeout=15)
            forms = info.xml.findall(".//{jabber:x:data}x")
            fields = {f.get("var"): [v.text for v in f.findall("{jabber:x:data}value")]
                      for form in forms for f in form.findall("{jabber:x:data}field")}
            assert fields["FORM_TYPE"] == ["http://jabber.org/network/serverinfo"]
            assert fields["abuse-addresses"] == ["mailto:abuse@example.com", "xmpp:abuse@example.com"]
            assert fields["support-addresses"] == ["https://example.com/help"]
            assert "admin-addresses" not in fields
            # The server's caps hash covers the form: its node answers with the same info.
            node = [c_ for f in c.stream_features for c_ in f.iter("{http://jabber.org/protocol/caps}c")][-1]
            again = await c.plugin["xep_0030"].get_info(
                jid=hearth.domain, node=f"{node.get('node')}#{node.get('ver')}", timeout=15)
            assert again.xml.findall(".//{jabber:x:data}x")
        finally:
            await c.close()

    run(scenario())
