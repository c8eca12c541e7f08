"""User flows driven by slixmpp (a client library we did not write) against the real server.

TLS is verified for real: each client trusts exactly the server's self-signed certificate
(as CA file) and checks the name `localhost`.

SCRAM-*-PLUS: slixmpp 1.17 binds channels only with `tls-unique` (Python's ssl module offers
nothing else; see slixmpp/features/feature_mechanisms/mechanisms.py). On TLS 1.3 — hearth's
default — it therefore cancels -PLUS itself, and on TLS 1.2 it sends `p=tls-unique`, which hearth
does not support (it offers tls-exporter and tls-server-end-point, XEP-0440).
`test_tls12_client_with_tls_unique_falls_back` covers exactly that interop case;
successful -PLUS logins are covered by the Rust integration tests, since neither Python library
can do them (see test_nbxmpp.py for nbxmpp)."""

import asyncio
import gc
import ssl

import pytest
import slixmpp
from slixmpp.exceptions import IqError
from slixmpp.xmlstream import ET
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from conftest import DOMAIN, HOST

TIMEOUT = 15
NS_STREAM = "http://etherx.jabber.org/streams"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL_CB = "urn:xmpp:sasl-cb:0"


class Client(slixmpp.ClientXMPP):
    """A slixmpp client that trusts the test server's certificate and records what it gets."""

    def __init__(self, server, jid, password, mech=None, direct_tls=False, resource="py", tls_max=None):
        super().__init__(f"{jid}/{resource}", password, sasl_mech=mech)
        self.hearth = server
        self.direct_tls = direct_tls
        ctx = ssl.create_default_context(cafile=server.cert)
        ctx.check_hostname = True
        if direct_tls:
            ctx.set_alpn_protocols(["xmpp-client"])  # XEP-0368
        if tls_max is not None:
            ctx.maximum_version = tls_max
        self.ssl_context = ctx
        self.enable_direct_tls = direct_tls
        self.enable_starttls = not direct_tls
        self.enable_plaintext = False
        # Subscriptions are answered by the tests themselves, never automatically by slixmpp
        # (its default accepts every request and asks back, which would hide server behaviour).
        self.auto_authorize = None
        self.auto_subscribe = False
        for plugin in ("xep_0030", "xep_0092", "xep_0199", "xep_0203", "xep_0077"):
            self.register_plugin(plugin)
        self.messages = asyncio.Queue()
        self.presences = asyncio.Queue()
        self.subscriptions = asyncio.Queue()
        self.roster_pushes = asyncio.Queue()
        self.auth_failures = []
        self.stream_features = []  # every <stream:features/> received, as XML
        self.started = asyncio.get_event_loop().create_future()
        self.register_handler(Callback(
            "record features", MatchXPath(f"{{{NS_STREAM}}}features"),
            lambda f: self.stream_features.append(f.xml), instream=True))
        self.add_event_handler("session_start", self._on_start)
        self.add_event_handler("failed_auth", self.auth_failures.append)
        self.add_event_handler("failed_all_auth", self._on_fail)
        self.add_event_handler("disconnected", self._on_fail)
        self.add_event_handler("message", self.messages.put_nowait)
        self.add_event_handler("presence_available", self.presences.put_nowait)
        self.add_event_handler("presence_unavailable", self.presences.put_nowait)
        for kind in ("subscribe", "subscribed", "unsubscribe", "unsubscribed"):
            self.add_event_handler(f"presence_{kind}", self.subscriptions.put_nowait)
        # slixmpp signals roster results and pushes alike; the queue gets pushes (type set) only.
        self.add_event_handler("roster_update", lambda iq: iq["type"] == "set" and self.roster_pushes.put_nowait(iq))

    async def _on_start(self, _):
        if not self.started.done():
            self.started.set_result(True)

    def _on_fail(self, _):
        if not self.started.done():
            self.started.set_result(False)

    async def login(self, presence=True, roster=True):
        self.connect(self.hearth.host, self.hearth.tls_port if self.direct_tls else self.hearth.port)
        ok = await asyncio.wait_for(self.started, TIMEOUT)
        if ok:
            if roster:
                await self.get_roster(timeout=TIMEOUT)
            if presence:
                self.send_presence()
                await self.ping()
        return ok

    async def ping(self):
        await self.plugin["xep_0199"].ping(self.hearth.domain, timeout=TIMEOUT)

    def mechanism(self):
        """The SASL mechanism the server accepted (SCRAM: its signature was verified too)."""
        return self.plugin["feature_mechanisms"].mech.name

    async def roster_from_server(self):
        """A full roster get (no version), as the server has it: {bare JID: item}."""
        iq = self.Iq(stype="get")
        iq.enable("roster")
        result = await iq.send(timeout=TIMEOUT)
        return {str(jid): item for jid, item in result["roster"]["items"].items()}

    async def close(self):
        try:
            await asyncio.wait_for(self.disconnect(wait=2.0), 5)
        except asyncio.TimeoutError:
            self.abort()


async def next_item(queue, pred=lambda _: True, what="the expected stanza"):
    async def wait():
        while True:
            item = await queue.get()
            if pred(item):
                return item

    try:
        return await asyncio.wait_for(wait(), TIMEOUT)
    except asyncio.TimeoutError:
        raise AssertionError(f"timed out after {TIMEOUT} s waiting for {what}") from None


def run(coro):
    async def main():
        try:
            return await asyncio.wait_for(coro, 60)
        finally:
            # Free the clients while their loop still runs (slixmpp's __del__ schedules on it).
            gc.collect()

    return asyncio.run(main())


@pytest.mark.parametrize("mech", ["SCRAM-SHA-1", "SCRAM-SHA-256", "PLAIN"])
def test_login_with_each_mechanism(server, mech):
    jid, password = server.new_account()

    async def scenario():
        c = Client(server, jid, password, mech=mech)
        assert await c.login(), f"login with {mech} failed: {[f.xml for f in c.auth_failures]}"
        assert c.mechanism() == mech
        assert c.auth_failures == []
        assert str(c.boundjid) == f"{jid}/py"
        assert c.socket.version() == "TLSv1.3"
        await c.close()

    run(scenario())


def test_default_login_and_advertised_features(server):
    """Before TLS: STARTTLS required and no SASL; after it: every mechanism, XEP-0440 channel
    binding types, and in-band registration. slixmpp's own choice succeeds at the first try."""
    jid, password = server.new_account()

    async def scenario():
        c = Client(server, jid, password)
        assert await c.login()
        before, after = c.stream_features[0], c.stream_features[1]
        starttls = before.find(f"{{{NS_TLS}}}starttls")
        assert starttls is not None and starttls.find(f"{{{NS_TLS}}}required") is not None
        mechs_before = [m.text for m in before.iter(f"{{{NS_SASL}}}mechanism")]
        assert "PLAIN" not in mechs_before, "PLAIN must not be offered before TLS"
        mechs = {m.text for m in after.iter(f"{{{NS_SASL}}}mechanism")}
        assert {"SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS", "PLAIN"} <= mechs
        cb = {e.get("type") for e in after.iter(f"{{{NS_SASL_CB}}}channel-binding")}
        assert cb == {"tls-exporter", "tls-server-end-point"}
        assert after.find("{http://jabber.org/features/iq-register}register") is not None
        # slixmpp cannot bind to TLS 1.3 (no tls-exporter in Python's ssl): it skips -PLUS.
        assert c.mechanism() == "SCRAM-SHA-256"
        assert c.auth_failures == []
        await c.close()

    run(scenario())


def test_tls12_client_with_tls_unique_falls_back(server):
    """A TLS 1.2 client binding with tls-unique (which hearth does not offer) is refused with
    not-authorized for each -PLUS mechanism and then logs in with plain SCRAM-SHA-256."""
    jid, password = server.new_account()

    async def scenario():
        c = Client(server, jid, password, tls_max=ssl.TLSVersion.TLSv1_2)
        assert await c.login()
        assert c.socket.version() == "TLSv1.2"
        assert c.mechanism() == "SCRAM-SHA-256"
        assert len(c.auth_failures) == 2, [f.xml for f in c.auth_failures]
        for failure in c.auth_failures:
            assert failure["condition"] == "not-authorized"
        await c.close()

    run(scenario())


def test_direct_tls_login(server):
    jid, password = server.new_account()

    async def scenario():
        c = Client(server, jid, password, direct_tls=True)
        assert await c.login()
        assert c.socket.selected_alpn_protocol() == "xmpp-client"
        assert c.socket.version() == "TLSv1.3"
        assert c.mechanism() == "SCRAM-SHA-256"
        assert str(c.boundjid) == f"{jid}/py"
        await c.close()

    run(scenario())


@pytest.mark.parametrize("mech", ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"])
def test_wrong_password_fails(server, mech):
    jid, _ = server.new_account()

    async def scenario():
        c = Client(server, jid, "not the password", mech=mech)
        assert not await c.login()
        assert len(c.auth_failures) == 1
        assert c.auth_failures[0]["condition"] == "not-authorized"
        c.abort()

    run(scenario())


def test_unknown_user_fails(server):
    async def scenario():
        c = Client(server, f"{server.unique_name('ghost')}@{DOMAIN}", "whatever", mech="SCRAM-SHA-256")
        assert not await c.login()
        assert c.auth_failures and c.auth_failures[0]["condition"] == "not-authorized"
        c.abort()

    run(scenario())


def test_roster_add_update_remove_with_pushes(server):
    jid, password = server.new_account()
    contact, _ = server.new_account()

    async def scenario():
        a = Client(server, jid, password, resource="one")
        b = Client(server, jid, password, resource="two")
        assert await a.login() and await b.login()

        async def push_to_b(what):
            push = await next_item(b.roster_pushes, lambda iq: iq["type"] == "set", what=what)
            assert push["to"] == b.boundjid
            return push["roster"]["items"][slixmpp.JID(contact)]

        await a.update_roster(contact, name="Friend", groups=["Work"])
        item = await push_to_b("roster push for the added item")
        assert item["name"] == "Friend" and item["groups"] == ["Work"]
        assert item["subscription"] == "none"

        await a.update_roster(contact, name="Best friend", groups=["Work", "Home"])
        item = await push_to_b("roster push for the updated item")
        assert item["name"] == "Best friend" and sorted(item["groups"]) == ["Home", "Work"]
        assert (await a.roster_from_server())[contact]["name"] == "Best friend"

        await a.del_roster_item(contact)
        item = await push_to_b("roster push for the removed item")
        assert item["subscription"] == "remove"
        assert contact not in await a.roster_from_server()
        await a.close()
        await b.close()

    run(scenario())


def test_roster_versioning(server):
    jid, password = server.new_account()
    contact, _ = server.new_account()

    async def scenario():
        a = Client(server, jid, password)
        assert await a.login()
        assert "rosterver" in a.features, "server advertises roster versioning (XEP-0237)"
        await a.update_roster(contact, name="C")
        # A full get carries a version.
        iq = a.Iq(stype="get")
        iq["roster"]["ver"] = ""
        iq.enable("roster")
        full = await iq.send(timeout=TIMEOUT)
        ver = full["roster"]["ver"]
        assert ver, "roster result carries ver"
        assert slixmpp.JID(contact) in full["roster"]["items"]
        # Asking again with the current version: an empty result.
        iq = a.Iq(stype="get")
        iq["roster"]["ver"] = ver
        iq.enable("roster")
        same = await iq.send(timeout=TIMEOUT)
        assert len(same.xml) == 0, f"unchanged roster: empty result, got {same}"
        # After a change, the old version gets the roster (or pushes) and a new version.
        await a.update_roster(contact, name="C2")
        iq = a.Iq(stype="get")
        iq["roster"]["ver"] = ver
        iq.enable("roster")
        newer = await iq.send(timeout=TIMEOUT)
        if len(newer.xml) == 0:
            # RFC 6121 §2.6.3: an empty result, then pushes for the changes.
            push = await next_item(a.roster_pushes, lambda p: p["roster"]["items"][slixmpp.JID(contact)]["name"] == "C2",
                                   what="push with the change since the old version")
            assert push["roster"]["ver"] != ver
        else:
            assert newer["roster"]["ver"] != ver
            assert newer["roster"]["items"][slixmpp.JID(contact)]["name"] == "C2"
        await a.close()

    run(scenario())


def test_subscription_both_ways_presence_and_chat(server):
    alice, pa = server.new_account("alice")
    bob, pb = server.new_account("bob")

    async def scenario():
        a = Client(server, alice, pa)
        b = Client(server, bob, pb)
        assert await a.login() and await b.login()
        # Alice asks; Bob sees the request and approves it.
        a.send_presence(pto=bob, ptype="subscribe")
        req = await next_item(b.subscriptions, lambda p: p["type"] == "subscribe", what="Bob gets the request")
        assert req["from"] == slixmpp.JID(alice)
        b.send_presence(pto=alice, ptype="subscribed")
        await next_item(a.subscriptions, lambda p: p["type"] == "subscribed" and p["from"].bare == bob,
                        what="Alice gets subscribed")
        online = await next_item(a.presences, lambda p: p["from"].bare == bob and p["type"] == "available",
                                 what="Alice sees Bob online")
        assert online["from"] == slixmpp.JID(f"{bob}/py")
        # Bob asks back; Alice approves.
        b.send_presence(pto=alice, ptype="subscribe")
        await next_item(a.subscriptions, lambda p: p["type"] == "subscribe" and p["from"].bare == bob,
                        what="Alice gets Bob's request")
        a.send_presence(pto=bob, ptype="subscribed")
        await next_item(b.presences, lambda p: p["from"].bare == alice and p["type"] == "available",
                        what="Bob sees Alice online")
        await a.ping()
        await b.ping()
        assert (await a.roster_from_server())[bob]["subscription"] == "both"
        assert (await b.roster_from_server())[alice]["subscription"] == "both"
        assert a.client_roster[bob]["subscription"] == "both", "from the roster pushes"
        # Chat both ways, with the server-stamped sender.
        a.send_message(mto=bob, mbody="hello bob", mtype="chat")
        msg = await next_item(b.messages, lambda m: m["body"], what="Bob gets the message")
        assert msg["body"] == "hello bob" and msg["from"] == slixmpp.JID(f"{alice}/py")
        assert msg["type"] == "chat"
        b.send_message(mto=msg["from"], mbody="hi alice", mtype="chat")
        msg = await next_item(a.messages, lambda m: m["body"], what="Alice gets the reply")
        assert msg["body"] == "hi alice" and msg["from"] == slixmpp.JID(f"{bob}/py")
        # Bob leaves: Alice sees him go offline.
        await b.close()
        gone = await next_item(a.presences, lambda p: p["from"].bare == bob and p["type"] == "unavailable",
                               what="Alice sees Bob offline")
        assert gone["from"] == slixmpp.JID(f"{bob}/py")
        await a.close()

    run(scenario())


def test_unsubscribe_and_unsubscribed(server):
    alice, pa = server.new_account("alice")
    bob, pb = server.new_account("bob")

    async def scenario():
        a = Client(server, alice, pa)
        b = Client(server, bob, pb)
        assert await a.login() and await b.login()
        a.send_presence(pto=bob, ptype="subscribe")
        await next_item(b.subscriptions, lambda p: p["type"] == "subscribe", what="request")
        b.send_presence(pto=alice, ptype="subscribed")
        await next_item(a.presences, lambda p: p["from"].bare == bob, what="Bob's presence")
        assert (await a.roster_from_server())[bob]["subscription"] == "to"
        assert (await b.roster_from_server())[alice]["subscription"] == "from"
        # Alice unsubscribes: Bob is told, both rosters drop to none.
        a.send_presence(pto=bob, ptype="unsubscribe")
        await next_item(b.subscriptions, lambda p: p["type"] == "unsubscribe" and p["from"].bare == alice,
                        what="Bob gets unsubscribe")
        await a.ping()
        await b.ping()
        assert (await a.roster_from_server())[bob]["subscription"] == "none"
        assert (await b.roster_from_server())[alice]["subscription"] == "none"
        # Subscribe again, then Bob cancels it (unsubscribed): Alice sees him go unavailable.
        a.send_presence(pto=bob, ptype="subscribe")
        await next_item(b.subscriptions, lambda p: p["type"] == "subscribe", what="second request")
        b.send_presence(pto=alice, ptype="subscribed")
        await next_item(a.presences, lambda p: p["from"].bare == bob and p["type"] == "available", what="online")
        b.send_presence(pto=alice, ptype="unsubscribed")
        await next_item(a.subscriptions, lambda p: p["type"] == "unsubscribed", what="Alice gets unsubscribed")
        await next_item(a.presences, lambda p: p["from"].bare == bob and p["type"] == "unavailable",
                        what="Bob unavailable to Alice after cancelling")
        await b.ping()
        assert (await a.roster_from_server())[bob]["subscription"] == "none"
        await a.close()
        await b.close()

    run(scenario())


def test_subscription_pre_approval(server):
    alice, pa = server.new_account("alice")
    bob, pb = server.new_account("bob")

    async def scenario():
        a = Client(server, alice, pa)
        b = Client(server, bob, pb)
        assert await a.login() and await b.login()
        # Bob approves before Alice asks (RFC 6121 §3.4).
        b.send_presence(pto=alice, ptype="subscribed")
        await b.ping()
        item = (await b.roster_from_server())[alice]
        assert item["approved"] == "true" and item["subscription"] == "none"
        a.send_presence(pto=bob, ptype="subscribe")
        await next_item(a.subscriptions, lambda p: p["type"] == "subscribed" and p["from"].bare == bob,
                        what="automatic subscribed")
        await next_item(a.presences, lambda p: p["from"].bare == bob and p["type"] == "available", what="Bob online")
        await b.ping()
        assert b.subscriptions.empty(), "Bob is not asked: he pre-approved"
        assert (await a.roster_from_server())[bob]["subscription"] == "to"
        assert (await b.roster_from_server())[alice]["subscription"] == "from"
        await a.close()
        await b.close()

    run(scenario())


def test_directed_presence(server):
    alice, pa = server.new_account("alice")
    bob, pb = server.new_account("bob")

    async def scenario():
        a = Client(server, alice, pa)
        b = Client(server, bob, pb)
        assert await a.login() and await b.login()
        # No subscription: Alice sends presence to Bob's full JID only.
        a.send_presence(pto=f"{bob}/py", pstatus="just for you")
        got = await next_item(b.presences, lambda p: p["from"].bare == alice, what="directed presence")
        assert got["status"] == "just for you" and got["from"] == slixmpp.JID(f"{alice}/py")
        # When Alice goes offline, Bob is told (RFC 6121 §4.6.3).
        await a.close()
        await next_item(b.presences, lambda p: p["from"].bare == alice and p["type"] == "unavailable",
                        what="unavailable after directed presence")
        await b.close()

    run(scenario())


def test_offline_message_is_delivered_with_delay(server):
    alice, pa = server.new_account("alice")
    bob, pb = server.new_account("bob")

    async def scenario():
        a = Client(server, alice, pa)
        assert await a.login()
        a.send_message(mto=bob, mbody="while you were out", mtype="chat")
        await a.ping()
        await a.close()
        b = Client(server, bob, pb)
        # Nothing before initial presence: the message comes after it.
        assert await b.login(presence=False)
        await b.ping()
        assert b.messages.empty(), "offline messages wait for initial presence"
        b.send_presence()
        msg = await next_item(b.messages, lambda m: m["body"], what="the offline message")
        assert msg["body"] == "while you were out"
        assert msg["from"].bare == alice
        assert msg.xml.find("{urn:xmpp:delay}delay") is not None, "XEP-0203 delay element"
        assert msg["delay"]["stamp"] is not None, "XEP-0203 stamp on an offline message"
        assert msg["delay"]["from"] == slixmpp.JID(DOMAIN)
        await b.close()
        # Delivered once: a second login gets nothing.
        b2 = Client(server, bob, pb)
        assert await b2.login()
        await asyncio.sleep(0.5)
        await b2.ping()
        assert b2.messages.empty(), "the offline message was removed after delivery"
        await b2.close()

    run(scenario())


def test_errors_for_unknown_user_and_remote_domain(server):
    jid, password = server.new_account()

    async def scenario():
        c = Client(server, jid, password)
        assert await c.login()
        c.send_message(mto=f"nobody@{DOMAIN}", mbody="x", mtype="chat")
        err = await next_item(c.messages, lambda m: m["type"] == "error", what="error for an unknown user")
        assert err["error"]["condition"] == "service-unavailable"
        assert err["from"] == slixmpp.JID(f"nobody@{DOMAIN}")
        c.send_message(mto="someone@remote.example", mbody="x", mtype="chat")
        err = await next_item(c.messages, lambda m: m["type"] == "error", what="error for a remote domain")
        assert err["error"]["condition"] == "remote-server-not-found"
        with pytest.raises(IqError) as e:
            iq = c.Iq(stype="get", sto=DOMAIN)
            iq.append(ET.Element("{urn:example:nothing}query"))
            await iq.send(timeout=TIMEOUT)
        assert e.value.iq["error"]["condition"] == "service-unavailable"
        with pytest.raises(IqError) as e:
            await c.plugin["xep_0030"].get_info(jid="remote.example", timeout=TIMEOUT)
        assert e.value.iq["error"]["condition"] == "remote-server-not-found"
        await c.close()

    run(scenario())


def test_disco_version_ping(server):
    jid, password = server.new_account()

    async def scenario():
        c = Client(server, jid, password)
        assert await c.login()
        info = await c.plugin["xep_0030"].get_info(jid=DOMAIN, timeout=TIMEOUT)
        features = set(info["disco_info"]["features"])
        for f in ("msgoffline", "jabber:iq:version", "urn:xmpp:ping", "jabber:iq:register",
                  "http://jabber.org/protocol/disco#info"):
            assert f in features, f"{f} missing from {sorted(features)}"
        identities = {(i[0], i[1]) for i in info["disco_info"]["identities"]}
        assert ("server", "im") in identities
        version = await c.plugin["xep_0092"].get_version(DOMAIN, timeout=TIMEOUT)
        assert version["software_version"]["name"] == "hearth"
        assert version["software_version"]["version"]
        result = await c.plugin["xep_0199"].send_ping(DOMAIN, timeout=TIMEOUT)
        assert result["type"] == "result"
        await c.close()

    run(scenario())


def test_in_band_registration(server):
    name = server.unique_name("newcomer")
    password = "a fine password"

    async def scenario():
        c = Client(server, f"{name}@{DOMAIN}", password)
        forms = []

        async def register(form):
            forms.append(form)
            resp = c.Iq(stype="set")
            resp["register"]["username"] = name
            resp["register"]["password"] = password
            await resp.send(timeout=TIMEOUT)

        # slixmpp registers when the server advertises the feature and this event is handled.
        c.add_event_handler("register", register)
        assert await c.login()
        assert len(forms) == 1, "the server advertised in-band registration"
        fields = forms[0]["register"]
        assert "username" in fields.get_fields() and "password" in fields.get_fields()
        await c.close()
        assert f"{name}@{DOMAIN}" in server.cli("user", "list").stdout
        # A new connection logs in with the new account.
        c2 = Client(server, f"{name}@{DOMAIN}", password, mech="SCRAM-SHA-256")
        assert await c2.login()
        assert c2.mechanism() == "SCRAM-SHA-256"
        await c2.close()

    run(scenario())


def test_registration_of_existing_name_conflicts(server):
    existing, _ = server.new_account("taken")
    name = existing.split("@")[0]

    async def scenario():
        outcome = []
        c = Client(server, f"{name}@{DOMAIN}", "other password")

        async def register(_form):
            resp = c.Iq(stype="set")
            resp["register"]["username"] = name
            resp["register"]["password"] = "other password"
            try:
                await resp.send(timeout=TIMEOUT)
                outcome.append("accepted")
            except IqError as e:
                outcome.append(e.iq["error"]["condition"])
            c.abort()

        c.add_event_handler("register", register)
        await c.login()
        assert outcome == ["conflict"]

    run(scenario())
