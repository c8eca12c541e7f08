"""User flows driven by nbxmpp — Gajim's own XMPP library — against the real server.

nbxmpp runs on the GLib main loop; `pump()` iterates it until a condition holds. The server's
self-signed certificate is accepted by pinning it (`set_accepted_certificates`), as Gajim does
when a user accepts a certificate: TLS is still fully verified against that certificate.
Note: nbxmpp 7.4 disables SCRAM-*-PLUS itself (a PyGObject crash, see its sasl.py), so channel
binding is covered by the Rust integration tests instead."""

import re
import time

import gi

gi.require_version("Gio", "2.0")
gi.require_version("GLib", "2.0")
from gi.repository import Gio, GLib  # noqa: E402
from nbxmpp.client import Client  # noqa: E402
from nbxmpp.const import ConnectionProtocol, ConnectionType  # noqa: E402
from nbxmpp.protocol import JID, Message, Presence  # noqa: E402
from nbxmpp.structs import StanzaHandler  # noqa: E402

from conftest import HOST  # noqa: E402

TIMEOUT = 15


def pump(pred, timeout=TIMEOUT):
    """Runs the GLib main loop until `pred()` is true; fails after `timeout` seconds."""
    ctx = GLib.MainContext.default()
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the condition")
        ctx.iteration(False) or time.sleep(0.005)


class Gajim:
    """An nbxmpp client, configured as Gajim configures one."""

    def __init__(self, server, jid, password, mechs=None, resource="gajim"):
        self.jid = JID.from_string(jid)
        self.state = None
        self.messages = []
        self.presences = []
        c = Client()
        c.set_domain(self.jid.domain)
        c.set_username(self.jid.localpart)
        c.set_resource(resource)
        c.set_password(password)
        c.set_custom_host(f"{HOST}:{server.port}", ConnectionProtocol.TCP, ConnectionType.START_TLS)
        c.set_accepted_certificates([Gio.TlsCertificate.new_from_file(server.cert)])
        if mechs:
            c.set_mechs(set(mechs))
        c.subscribe("connected", lambda *_: setattr(self, "state", "connected"))
        c.subscribe("connection-failed", lambda *_: setattr(self, "state", "failed"))
        c.subscribe("disconnected", lambda *_: setattr(self, "state", "disconnected"))
        c.register_handler(StanzaHandler(name="message", callback=lambda _c, s, _p: self.messages.append(s)))
        c.register_handler(StanzaHandler(name="presence", callback=lambda _c, s, _p: self.presences.append(s)))
        self.client = c

    def login(self):
        self.client.connect()
        pump(lambda: self.state in ("connected", "failed", "disconnected"))
        assert self.state == "connected", f"login failed: {self.state}"
        return self

    def roster(self):
        box = {}
        task = self.client.get_module("Roster").request_roster()
        def done(t):
            try:
                box["result"] = t.finish()
            except Exception as e:  # surfaced by the assertion below
                box["result"] = e

        task.add_done_callback(done)
        pump(lambda: "result" in box)
        assert not isinstance(box["result"], Exception), f"roster request failed: {box['result']!r}"
        return box["result"]

    def send(self, stanza):
        self.client.send_stanza(stanza)

    def wait_message(self, pred=lambda m: True):
        pump(lambda: any(m.getBody() and pred(m) for m in self.messages))
        return next(m for m in self.messages if m.getBody() and pred(m))

    def wait_presence(self, pred):
        pump(lambda: any(pred(p) for p in self.presences))
        return next(p for p in self.presences if pred(p))

    def close(self):
        self.client.disconnect()
        pump(lambda: self.state == "disconnected", timeout=5)


def used_mechanism(server, localpart):
    for line in server.log().splitlines():
        if "authenticated" in line and f"account={localpart} " in line:
            m = re.search(r'mechanism="?([A-Z0-9-]+)', line)
            if m:
                return m.group(1)
    return None


def test_login_default_and_forced_mechanisms(server):
    jid, password = server.new_account("gajim")
    g = Gajim(server, jid, password).login()
    assert str(g.client.get_bound_jid()) == f"{jid}/gajim"
    g.close()
    assert used_mechanism(server, jid.split("@")[0]) == "SCRAM-SHA-256", "nbxmpp's first choice"
    jid1, password1 = server.new_account("gajim")
    Gajim(server, jid1, password1, mechs=["SCRAM-SHA-1"]).login().close()
    assert used_mechanism(server, jid1.split("@")[0]) == "SCRAM-SHA-1"


def test_wrong_password_is_refused(server):
    jid, _ = server.new_account("gajim")
    g = Gajim(server, jid, "wrong password")
    g.client.connect()
    pump(lambda: g.state in ("failed", "disconnected", "connected"))
    assert g.state != "connected"


def test_roster_subscription_presence_chat_and_offline(server):
    alice, pa = server.new_account("galice")
    bob, pb = server.new_account("gbob")
    a = Gajim(server, alice, pa).login()
    b = Gajim(server, bob, pb).login()
    assert a.roster() is not None and b.roster() is not None
    a.send(Presence())
    b.send(Presence())
    # Alice asks, Bob approves: Alice sees Bob online.
    a.send(Presence(to=bob, typ="subscribe"))
    b.wait_presence(lambda p: p.getType() == "subscribe" and p.getFrom().bare == alice)
    b.send(Presence(to=alice, typ="subscribed"))
    a.wait_presence(lambda p: p.getType() == "subscribed")
    a.wait_presence(lambda p: p.getFrom() == JID.from_string(f"{bob}/gajim") and p.getType() in (None, ""))
    # Chat.
    a.send(Message(to=bob, body="hello from gajim", typ="chat"))
    got = b.wait_message(lambda m: m.getBody() == "hello from gajim")
    assert got.getFrom() == JID.from_string(f"{alice}/gajim")
    # Bob goes offline: Alice sees it; a message to him is kept and delivered with a delay stamp.
    b.close()
    a.wait_presence(lambda p: p.getType() == "unavailable" and p.getFrom().bare == bob)
    a.send(Message(to=bob, body="see you later", typ="chat"))
    a.close()
    b2 = Gajim(server, bob, pb).login()
    b2.send(Presence())
    late = b2.wait_message(lambda m: m.getBody() == "see you later")
    assert late.getTag("delay", namespace="urn:xmpp:delay") is not None
    b2.close()
