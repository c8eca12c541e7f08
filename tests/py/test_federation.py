"""Federation with real Prosody and ejabberd (Debian's packages), each test run against both:
hearth serves hearth.test on 127.0.0.42, Prosody pros.test on 127.0.0.41, ejabberd ejab.test on
127.0.0.43, all on port 5269. A small DNS server (dnslib) on 127.0.0.40 publishes their SRV and
A records, which hearth and ejabberd ask; Prosody finds hearth through a hosts file (libunbound
answers .test names itself and refuses loopback name servers). The peers' certificates are
self-signed, so the servers authenticate each other with dialback.

Needs root (the peers run as their own users, the DNS server listens on port 53)."""

import asyncio
import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import tempfile
import time
import types
import urllib.request

import pytest
from dnslib import QTYPE, RCODE, RR, SRV, A
from dnslib.server import BaseResolver, DNSServer

from conftest import Server, free_ports, terminate
from test_invite import is_from, pushed, subscribe_with_token
from test_slixmpp import Client, next_item, run

DNS_HOST = "127.0.0.40"
PROSODY_HOST, PROSODY_DOMAIN = "127.0.0.41", "pros.test"
HEARTH_HOST, HEARTH_DOMAIN = "127.0.0.42", "hearth.test"
EJABBERD_HOST, EJABBERD_DOMAIN = "127.0.0.43", "ejab.test"
S2S_PORT = 5269

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root (the peers run as their own users; DNS on port 53)")


class Zone(BaseResolver):
    """SRV and A records of the test domains (TTL 1 s: tests move a server); every other name
    does not exist."""

    def __init__(self):
        self.records = {}
        for domain, host, muc in ((PROSODY_DOMAIN, PROSODY_HOST, "rooms"),
                                  (EJABBERD_DOMAIN, EJABBERD_HOST, "conference"),
                                  (HEARTH_DOMAIN, HEARTH_HOST, "conference")):
            self.records[(f"_xmpp-server._tcp.{domain}.", "SRV")] = SRV(0, 0, S2S_PORT, f"{domain}.")
            self.move(domain, muc, host)

    def move(self, domain, muc, host):
        self.records[(f"{domain}.", "A")] = A(host)
        # The MUC service has no SRV record: its A record, port 5269.
        self.records[(f"{muc}.{domain}.", "A")] = A(host)

    def resolve(self, request, handler):
        reply = request.reply()
        qname, qtype = str(request.q.qname).lower(), QTYPE[request.q.qtype]
        rdata = self.records.get((qname, qtype))
        if rdata is not None:
            reply.add_answer(RR(qname, request.q.qtype, rdata=rdata, ttl=1))
        elif not any(name == qname for name, _ in self.records):
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


class Prosody:
    """A Prosody instance for pros.test with its own config, certificate and data. With `ca`,
    its certificate is from that CA and it accepts only certificates from it (no dialback)."""

    def __init__(self, workdir, ca=None):
        self.dir = pathlib.Path(workdir)
        self.host, self.domain, self.muc = PROSODY_HOST, PROSODY_DOMAIN, f"rooms.{PROSODY_DOMAIN}"
        self.port, self.tls_port = free_ports(2, PROSODY_HOST)
        certs = self.dir / "certs"
        self.cert, key = self_signed(certs, self.domain, self.muc, ca)
        trust = f'cafile = "{ca[0]}";' if ca else ""
        # libunbound serves .test itself (RFC 6761: every name NXDOMAIN) and refuses loopback
        # name servers, so Prosody finds hearth through a hosts file: no SRV record, the domain
        # on 5269.
        (self.dir / "hosts").write_text(
            f"{HEARTH_HOST} {HEARTH_DOMAIN}\n{HEARTH_HOST} conference.{HEARTH_DOMAIN}\n")
        (self.dir / "data").mkdir()
        self.log_path = self.dir / "prosody.log"
        self.config = self.dir / "prosody.cfg.lua"
        self.config.write_text(f"""
daemonize = false
pidfile = "{self.dir}/prosody.pid"
data_path = "{self.dir}/data"
log = {{ {{ levels = {{ min = "debug" }}, to = "file", filename = "{self.log_path}" }} }}
interfaces = {{ "{self.host}" }}
c2s_ports = {{ {self.port} }}
c2s_direct_tls_ports = {{ {self.tls_port} }}
s2s_ports = {{ {S2S_PORT} }}
http_ports = {{ }}
https_ports = {{ }}
certificates = "{certs}"
ssl = {{ certificate = "{self.cert}", key = "{key}"; {trust} }}
c2s_require_encryption = true
s2s_require_encryption = true
s2s_secure_auth = {"true" if ca else "false"}
authentication = "internal_plain"
storage = "internal"
unbound = {{ hoststxt = "{self.dir}/hosts" }}
modules_enabled = {{ "roster"; "saslauth"; "tls"; "dialback"; "s2s_bidi"; "disco"; "ping"; "carbons"; "pep" }}
VirtualHost "{self.domain}"
Component "rooms.{self.domain}" "muc"
  restrict_room_creation = false
""")
        subprocess.run(["chown", "-R", "prosody:prosody", str(self.dir)], check=True)
        self.proc = None
        self.start()

    def _as_prosody(self, *args):
        return ["setpriv", "--reuid=prosody", "--regid=prosody", "--init-groups", "--", *args]

    def start(self):
        self._stdout = open(self.dir / "stdout.log", "a")
        self.proc = subprocess.Popen(
            self._as_prosody("/usr/bin/prosody", "--config", str(self.config), "-F"),
            stdin=subprocess.DEVNULL, stdout=self._stdout, stderr=subprocess.STDOUT)
        wait_port(self.host, self.port, self.proc, self.log_tail)
        wait_port(self.host, S2S_PORT, self.proc, self.log_tail)

    def stop(self):
        terminate(self.proc, 20)
        self._stdout.close()

    def new_account(self, name, password="prosody-pass1"):
        r = subprocess.run(
            self._as_prosody("/usr/bin/prosodyctl", "--config", str(self.config),
                             "register", name, self.domain, password),
            capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, f"prosodyctl register failed: {r.stdout}{r.stderr}"
        return f"{name}@{self.domain}", password

    def log_tail(self, lines=60):
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


class Ejabberd:
    """An ejabberd node for ejab.test with its own config, certificate and Mnesia spool. With
    `ca`, its certificate is from that CA and it accepts only certificates from it."""

    def __init__(self, workdir, ca=None):
        self.dir = pathlib.Path(workdir)
        self.host, self.domain, self.muc = EJABBERD_HOST, EJABBERD_DOMAIN, f"conference.{EJABBERD_DOMAIN}"
        self.port, self.tls_port, self.http_port, self.dist_port = free_ports(4, self.host)
        cert, key = self_signed(self.dir / "certs", self.domain, self.muc, ca)
        self.cert = cert
        (self.dir / "cert+key.pem").write_text(pathlib.Path(cert).read_text() + pathlib.Path(key).read_text())
        for sub in ("spool", "logs", "home"):
            (self.dir / sub).mkdir()
        # SRV records come from Erlang's resolver, which asks the test DNS server only
        # (resolv.conf off first: setting it later would drop the name server); addresses come
        # from getaddrinfo, which reads /etc/hosts: ejabberd gets a hosts file of its own,
        # bind-mounted over /etc/hosts in a mount namespace of its own.
        (self.dir / "inetrc").write_text(
            '{resolv_conf, ""}.\n{hosts_file, ""}.\n'
            f'{{nameserver, {{{DNS_HOST.replace(".", ",")}}}, 53}}.\n{{lookup, [dns]}}.\n')
        self.hosts = self.dir / "hosts"
        self.hosts.write_text(
            f"127.0.0.1 localhost\n{HEARTH_HOST} {HEARTH_DOMAIN} conference.{HEARTH_DOMAIN}\n")
        self.log_path = self.dir / "logs" / "ejabberd.log"
        self.config = self.dir / "ejabberd.yml"
        self.config.write_text(f"""
hosts: ["{self.domain}"]
loglevel: info
log_rotate_count: 0
certfiles: ["{self.dir}/cert+key.pem"]
listen:
  - {{port: {self.port}, ip: "{self.host}", module: ejabberd_c2s, starttls_required: true}}
  - {{port: {self.tls_port}, ip: "{self.host}", module: ejabberd_c2s, tls: true}}
  - {{port: {S2S_PORT}, ip: "{self.host}", module: ejabberd_s2s_in}}
  - {{port: {self.http_port}, ip: "{self.host}", module: ejabberd_http, request_handlers: {{/api: mod_http_api}}}}
s2s_use_starttls: required
{f'ca_file: "{ca[0]}"' if ca else ""}
s2s_dns_timeout: 2
outgoing_s2s_families: [ipv4]
auth_method: internal
acl:
  local: {{user_regexp: ""}}
  loopback: {{ip: [127.0.0.0/8]}}
access_rules:
  local: {{allow: local}}
  c2s: {{allow: all}}
  muc_create: {{allow: local}}
api_permissions:
  "admin access": {{who: {{access: {{allow: [{{acl: loopback}}]}}}}, what: ["register"]}}
modules:
  mod_disco: {{}}
  mod_http_api: {{}}
  mod_muc: {{host: "{self.muc}", access_create: muc_create}}
  mod_offline: {{}}
  mod_ping: {{}}
  mod_roster: {{}}
{"" if ca else "  mod_s2s_dialback: {}"}
""")
        subprocess.run(["chown", "-R", "ejabberd:ejabberd", str(self.dir)], check=True)
        self.proc = None
        self.start()

    def start(self):
        node = "hearth_fed_ejabberd@localhost"
        env = dict(os.environ, HOME=str(self.dir / "home"), EJABBERD_CONFIG_PATH=str(self.config),
                   EJABBERD_LOG_PATH=str(self.log_path), ERL_LIBS="/usr/lib/x86_64-linux-gnu",
                   ERL_CRASH_DUMP=str(self.dir / "logs" / "erl_crash.dump"))
        self._stdout = open(self.dir / "logs" / "stdout.log", "a")
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"', str(self.hosts),
             "setpriv", "--reuid=ejabberd", "--regid=ejabberd", "--init-groups", "--",
             "/usr/bin/erl", "-sname", node, "-start_epmd", "false", "-erl_epmd_port", str(self.dist_port),
             "-kernel", "inet_dist_use_interface", "{" + self.host.replace(".", ",") + "}",
             "-kernel", "inetrc", f'"{self.dir / "inetrc"}"',
             "-mnesia", "dir", f'"{self.dir / "spool"}"', "-s", "ejabberd", "-noinput"],
            cwd=self.dir / "spool", env=env, stdin=subprocess.DEVNULL, stdout=self._stdout,
            stderr=subprocess.STDOUT)
        for port in (self.port, S2S_PORT, self.http_port):
            wait_port(self.host, port, self.proc, self.log_tail, secs=60)

    def stop(self):
        terminate(self.proc, 30)
        self._stdout.close()

    def new_account(self, name, password="ejabberd-pass1"):
        req = urllib.request.Request(
            f"http://{self.host}:{self.http_port}/api/register",
            data=json.dumps({"user": name, "host": self.domain, "password": password}).encode(),
            headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=20) as r:
            assert r.status == 200, r.read()
        return f"{name}@{self.domain}", password

    def log_tail(self, lines=60):
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def move_to(server, host):
    """Restarts `server` on another address (its config rewritten) and updates its DNS records."""
    server.stop()
    server.config.write_text(server.config.read_text().replace(f'"{server.host}"', f'"{host}"'))
    server.host = host
    server.zone.move(server.domain, server.muc.split(".")[0], host)
    server.start()


def self_signed(certs, domain, muc, ca=None):
    """A certificate for `domain` and its MUC service: (certificate, key) paths. Self-signed,
    or with `ca` = (CA certificate, CA key) signed by that CA (the file then holds the chain)."""
    certs.mkdir(parents=True, exist_ok=True)
    cert, key = str(certs / f"{domain}.crt"), str(certs / f"{domain}.key")
    names = f"subjectAltName=DNS:{domain},DNS:{muc}"
    newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key]
    if ca is None:
        subprocess.run(["openssl", "req", "-x509", *newkey, "-days", "30", "-subj", f"/CN={domain}",
                        "-addext", names, "-out", cert], check=True, capture_output=True)
        return cert, key
    csr = str(certs / f"{domain}.csr")
    subprocess.run(["openssl", "req", "-new", *newkey, "-subj", f"/CN={domain}", "-out", csr],
                   check=True, capture_output=True)
    ext = certs / f"{domain}.ext"
    ext.write_text(f"{names}\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n")
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
                    "-days", "30", "-extfile", str(ext), "-out", cert], check=True, capture_output=True)
    pathlib.Path(cert).write_text(pathlib.Path(cert).read_text() + pathlib.Path(ca[0]).read_text())
    return cert, key


def private_ca(certs):
    """A private CA: (certificate, key) paths."""
    certs.mkdir(parents=True, exist_ok=True)
    cert, key = str(certs / "ca.crt"), str(certs / "ca.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "30", "-subj", "/CN=hearth federation test CA", "-keyout", key,
                    "-out", cert], check=True, capture_output=True)
    return cert, key


def wait_port(host, port, proc, log_tail, secs=30):
    deadline = time.monotonic() + secs
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} at start:\n{log_tail()}")
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{host}:{port} not listening after {secs} s:\n{log_tail()}")
            time.sleep(0.05)


PEERS = {"prosody": (Prosody, "prosody"), "ejabberd": (Ejabberd, "erl")}


@pytest.fixture(scope="module", params=list(PEERS))
def federation(request, hearth_server):
    """(hearth for hearth.test, the peer server), federating through the test DNS and
    authenticating each other with dialback (self-signed certificates)."""
    yield from federated(request.param, hearth_server, certificates=False)


def federated(name, hearth_server, certificates):
    peer_class, program = PEERS[name]
    if shutil.which(program) is None:
        pytest.skip(f"{name} is not installed (tests/py/install-deps.sh installs it)")
    zone = Zone()
    dns = DNSServer(zone, address=DNS_HOST, port=53)
    dns.start_thread()
    workdir = tempfile.mkdtemp(prefix="hearth-fed-")
    os.chmod(workdir, 0o755)
    peer = hearth = None
    try:
        ca = private_ca(pathlib.Path(workdir) / "ca") if certificates else None
        peer = peer_class(os.path.join(workdir, name), ca=ca)
        os.mkdir(os.path.join(workdir, "hearth"))
        s2s = (f'listen = ["{HEARTH_HOST}:{S2S_PORT}"]\n'
               f'dns_server = "{DNS_HOST}:53"\n'
               "connect_timeout_secs = 10\n")
        tls = None
        if ca:
            s2s += f'ca_file = "{ca[0]}"\nauthentication = "certificate"\n'
            tls = self_signed(pathlib.Path(workdir) / "hearth-certs", HEARTH_DOMAIN, f"conference.{HEARTH_DOMAIN}", ca)
        hearth = Server(hearth_server.binary, os.path.join(workdir, "hearth"), domain=HEARTH_DOMAIN,
                        host=HEARTH_HOST, s2s=s2s, tls=tls)
        peer.zone = zone
        yield hearth, peer
    finally:
        for srv in (hearth, peer):
            if srv is not None:
                srv.stop()
        dns.stop()
        if os.environ.get("HEARTH_KEEP_LOG"):
            print(f"federation logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def run_logged(federation, scenario):
    """Runs `scenario`; on failure prints both servers' logs."""
    hearth, peer = federation
    try:
        run(scenario)
    except BaseException:
        print(f"--- {type(peer).__name__} log ---\n" + peer.log_tail(150))
        print("--- hearth log ---\n" + hearth.log_tail(150))
        raise


async def wait_for_log(server, needle, since=0, secs=15):
    """Waits until `needle` appears in `server`'s log after offset `since`."""
    deadline = time.monotonic() + secs
    while needle not in server.log()[since:]:
        assert time.monotonic() < deadline, f"{needle!r} not logged within {secs} s"
        await asyncio.sleep(0.1)


def with_users(federation, name, scenario, muc=False):
    """Runs `scenario(u)` with u.alice logged in on hearth and u.bob on the peer (fresh accounts
    named after `name`; a scenario that logs bob in again sets u.bob), closing both after it."""
    hearth, peer = federation
    u = types.SimpleNamespace()
    u.alice_jid, u.alice_pw = hearth.new_account(f"{name}alice")
    u.bob_jid, u.bob_pw = peer.new_account(f"{name}bob")

    async def logged_in_pair():
        u.alice = await logged_in(hearth, u.alice_jid, u.alice_pw, muc)
        u.bob = await logged_in(peer, u.bob_jid, u.bob_pw, muc)
        try:
            await scenario(u)
        finally:
            await u.alice.close()
            await u.bob.close()

    run_logged(federation, logged_in_pair())


async def logged_in(server, jid, pw, muc=False):
    c = Client(server, jid, pw)
    for plugin in ("xep_0313", "xep_0280", "xep_0191") + (("xep_0045", "xep_0004") if muc else ()):
        c.register_plugin(plugin)
    assert await c.login(), f"{jid} could not log in"
    return c


def test_chat_both_ways(federation):
    hearth, peer = federation

    async def scenario(u):
        alice, bob, alice_jid, bob_jid = u.alice, u.bob, u.alice_jid, u.bob_jid
        alice.send_message(mto=f"{bob_jid}/py", mbody="hello peer", mtype="chat")
        got = await next_item(bob.messages, lambda m: m["body"] == "hello peer",
                              what="hearth's message at the peer")
        assert got["from"] == f"{alice_jid}/py"
        bob.send_message(mto=f"{alice_jid}/py", mbody="hello hearth", mtype="chat")
        got = await next_item(alice.messages, lambda m: m["body"] == "hello hearth",
                              what="the peer's message at hearth")
        assert got["from"] == f"{bob_jid}/py"
        # IQs both ways: ping of the remote server, disco of the remote account.
        await alice.plugin["xep_0199"].send_ping(peer.domain, timeout=15)
        await bob.plugin["xep_0199"].send_ping(HEARTH_DOMAIN, timeout=15)
        info = await bob.plugin["xep_0030"].get_info(jid=HEARTH_DOMAIN, timeout=15)
        assert "urn:xmpp:ping" in info["disco_info"]["features"]
        # Federated messages are archived (both directions) and carbon-copied.
        bodies = []
        async for msg in alice.plugin["xep_0313"].iterate(with_jid=bob_jid, rsm={"max": 10}):
            bodies.append(msg["mam_result"]["forwarded"]["stanza"]["body"])
        assert bodies == ["hello peer", "hello hearth"]
        await alice.plugin["xep_0280"].enable(timeout=15)
        laptop = Client(hearth, alice_jid, u.alice_pw, resource="laptop")
        laptop.register_plugin("xep_0280")
        assert await laptop.login()
        await laptop.plugin["xep_0280"].enable(timeout=15)
        carbons = asyncio.Queue()
        laptop.add_event_handler("carbon_received", carbons.put_nowait)
        bob.send_message(mto=f"{alice_jid}/py", mbody="to your phone", mtype="chat")
        await next_item(alice.messages, lambda m: m["body"] == "to your phone", what="the message")
        got = await next_item(carbons, what="its carbon copy on the laptop")
        assert got["carbon_received"]["body"] == "to your phone"
        await laptop.close()

    with_users(federation, "", scenario)
    log = hearth.log()
    assert f"link established local={HEARTH_DOMAIN} remote={peer.domain}" in log
    assert "remote server authenticated by dialback" in log
    if isinstance(peer, Prosody):
        # Prosody offers bidirectional streams (XEP-0288) and hearth asks for them. (Prosody
        # still opens its own connection: checking hearth's dialback key made one.)
        assert "bidi=true" in log


def test_presence_subscription_across_servers(federation):
    async def scenario(u):
        alice, bob, alice_jid, bob_jid = u.alice, u.bob, u.alice_jid, u.bob_jid
        alice.send_presence(pto=bob_jid, ptype="subscribe")
        await next_item(bob.subscriptions, lambda p: p["type"] == "subscribe",
                        what="alice's subscription request at the peer")
        bob.send_presence(pto=alice_jid, ptype="subscribed")
        bob.send_presence(pto=alice_jid, ptype="subscribe")
        await next_item(alice.subscriptions, lambda p: p["type"] == "subscribed",
                        what="bob's approval at hearth")
        await next_item(alice.presences, lambda p: p["from"].bare == bob_jid,
                        what="bob's presence after the approval")
        await next_item(alice.subscriptions, lambda p: p["type"] == "subscribe",
                        what="bob's own request at hearth")
        alice.send_presence(pto=bob_jid, ptype="subscribed")
        await next_item(bob.presences, lambda p: p["from"].bare == alice_jid,
                        what="alice's presence at the peer")
        roster = await alice.roster_from_server()
        assert roster[bob_jid]["subscription"] == "both"
        # A status change reaches the remote contact (slixmpp names the event after <show/>).
        bob.add_event_handler("presence_away", bob.presences.put_nowait)
        alice.send_presence(pshow="away")
        await next_item(bob.presences, lambda p: p["from"].bare == alice_jid and p["show"] == "away",
                        what="alice's new status at the peer")

    with_users(federation, "sub", scenario)


def test_invitation_token_from_the_peer_approves_the_subscription(federation):
    """XEP-0379: bob, with an account on the peer, opens alice's contact invitation; his
    request reaches hearth over s2s and is approved for alice, who asks back."""
    hearth, _ = federation

    async def scenario(u):
        alice, bob, alice_jid, bob_jid = u.alice, u.bob, u.alice_jid, u.bob_jid
        r = hearth.cli("invite", "create", "--contact", alice_jid.split("@")[0])
        assert r.returncode == 0, r.stderr
        token = re.search(r"preauth=([A-Za-z0-9]+)", r.stdout).group(1)
        subscribe_with_token(bob, alice_jid, token)
        await next_item(bob.subscriptions, is_from("subscribed", alice_jid),
                        what="the approval from hearth")
        await next_item(bob.subscriptions, is_from("subscribe", alice_jid),
                        what="alice's request back")
        push = await next_item(alice.roster_pushes, pushed(bob_jid), what="alice's roster push")
        assert push["roster"]["items"][bob_jid]["subscription"] == "from"
        bob.send_presence(pto=alice_jid, ptype="subscribed")
        await next_item(alice.subscriptions, is_from("subscribed", bob_jid), what="bob's approval")
        assert (await alice.roster_from_server())[bob_jid]["subscription"] == "both"
        assert (await bob.roster_from_server())[alice_jid]["subscription"] == "both"

    with_users(federation, "preauth", scenario)


def test_rooms_on_each_server_with_occupants_from_both(federation):
    _, peer = federation

    async def scenario(u):
        alice, bob, alice_jid, bob_jid = u.alice, u.bob, u.alice_jid, u.bob_jid
        # Each room is created by a local user (hearth lets only its own users create rooms)
        # and joined by the other server's user.
        for room, first, second in ((f"lobby@{peer.muc}", bob, alice),
                                    (f"hall@conference.{HEARTH_DOMAIN}", alice, bob)):
            nick1, nick2 = ("Alice", "Bob") if first is alice else ("Bob", "Alice")
            muc = first.plugin["xep_0045"]
            await muc.join_muc_wait(room, nick1, maxstanzas=0, timeout=15)
            # The creator accepts the default configuration, which unlocks the room.
            await muc.set_room_config(room, await muc.get_room_config(room, timeout=15), timeout=15)
            await second.plugin["xep_0045"].join_muc_wait(room, nick2, maxstanzas=0, timeout=15)
            first.send_message(mto=room, mbody=f"welcome to {room}", mtype="groupchat")
            got = await next_item(second.messages, lambda m: m["body"] == f"welcome to {room}",
                                  what=f"the groupchat message in {room}")
            assert got["from"] == f"{room}/{nick1}"
            second.send_message(mto=room, mbody="thanks", mtype="groupchat")
            got = await next_item(first.messages, lambda m: m["body"] == "thanks" and m["from"].bare == room,
                                  what=f"the answer in {room}")
            assert got["from"].resource == nick2

    with_users(federation, "muc", scenario, muc=True)


def test_peer_restarted_mid_conversation_gets_what_was_sent_meanwhile(federation):
    hearth, peer = federation

    async def scenario(u):
        alice, bob, alice_jid, bob_jid = u.alice, u.bob, u.alice_jid, u.bob_jid
        alice.send_message(mto=bob_jid, mbody="before", mtype="chat")
        await next_item(bob.messages, lambda m: m["body"] == "before", what="the first message")
        await bob.close()
        peer.stop()
        # Sent while the peer is down: the link waits and reconnects (within
        # connect_timeout_secs), the peer stores it offline for bob.
        since = len(hearth.log())
        alice.send_message(mto=bob_jid, mbody="while you were away", mtype="chat")
        await asyncio.sleep(1)
        peer.start()
        # bob logs in once the message is there: ejabberd drops one that arrives while
        # its user's session is being set up.
        await wait_for_log(hearth, f"link established local={HEARTH_DOMAIN} remote={peer.domain}", since)
        await asyncio.sleep(0.5)
        bob = u.bob = await logged_in(peer, bob_jid, u.bob_pw)
        got = await next_item(bob.messages, lambda m: m["body"] == "while you were away",
                              what="the message sent while the peer was down")
        assert got["from"].bare == alice_jid

    with_users(federation, "restart", scenario)


def test_a_server_that_stays_down_gets_the_senders_a_bounce(federation):
    hearth, peer = federation
    alice_jid, alice_pw = hearth.new_account("bouncealice")

    async def scenario():
        alice = await logged_in(hearth, alice_jid, alice_pw)
        peer.stop()
        try:
            started = time.monotonic()
            alice.send_message(mto=f"nobody@{peer.domain}", mbody="anyone?", mtype="chat")
            err = await next_item(alice.messages, lambda m: m["type"] == "error",
                                  what="the bounce for a server that is down")
            assert err["error"]["condition"] in ("remote-server-not-found", "remote-server-timeout")
            # connect_timeout_secs is 10.
            assert time.monotonic() - started < 14
        finally:
            await alice.close()
            peer.start()

    run_logged(federation, scenario())


def test_blocking_a_contact_on_another_server(federation):
    async def scenario(u):
        alice, bob, alice_jid, bob_jid = u.alice, u.bob, u.alice_jid, u.bob_jid
        await alice.plugin["xep_0191"].block([bob_jid], timeout=15)
        bob.send_message(mto=f"{alice_jid}/py", mbody="let me in", mtype="chat")
        err = await next_item(bob.messages, lambda m: m["type"] == "error",
                              what="the error for a blocked sender on the other server")
        assert err["error"]["condition"] == "service-unavailable"
        await alice.plugin["xep_0191"].unblock([bob_jid], timeout=15)
        bob.send_message(mto=f"{alice_jid}/py", mbody="now?", mtype="chat")
        await next_item(alice.messages, lambda m: m["body"] == "now?", what="the message after unblocking")

    with_users(federation, "block", scenario)


def test_a_peer_that_moves_to_another_address_is_found_again(federation):
    """Last in the module: the peer stays on its new address."""
    _, peer = federation

    async def scenario(u):
        alice, bob, alice_jid, bob_jid = u.alice, u.bob, u.alice_jid, u.bob_jid
        alice.send_message(mto=bob_jid, mbody="at the old address", mtype="chat")
        await next_item(bob.messages, lambda m: m["body"] == "at the old address", what="the first message")
        await bob.close()
        # Same domain, new address: only DNS says so. hearth asks DNS again on every
        # attempt, so it follows without a restart or a config change.
        move_to(peer, "127.0.0.44" if peer.host != "127.0.0.44" else "127.0.0.45")
        bob = u.bob = await logged_in(peer, bob_jid, u.bob_pw)
        alice.send_message(mto=f"{bob_jid}/py", mbody="at the new address", mtype="chat")
        await next_item(bob.messages, lambda m: m["body"] == "at the new address",
                        what="the message after the move")

    with_users(federation, "move", scenario)
