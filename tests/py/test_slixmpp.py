"""User flows driven by slixmpp (a client library we did not write) against the real server."""

import asyncio
import ssl

import pytest
import slixmpp
from slixmpp.exceptions import IqError

from conftest import DOMAIN, HOST

TIMEOUT = 15


class Client(slixmpp.ClientXMPP):
    """A slixmpp client that trusts the test server's certificate and records what it gets."""

    def __init__(self, server, jid, password, mech=None, direct_tls=False, resource="py"):
        super().__init__(f"{jid}/{resource}", password, sasl_mech=mech)
        self.hearth = server
        self.direct_tls = direct_tls
        ctx = ssl.create_default_context(cafile=server.cert)
        ctx.check_hostname = True
        self.ssl_context = ctx
        self.enable_direct_tls = direct_tls
        self.enable_starttls = not direct_tls
        self.enable_plaintext = False
        for plugin in ("xep_0030", "xep_0092", "xep_0199", "xep_0203", "xep_0077"):
            self.register_plugin(plugin)
        self.messages = asyncio.Queue()
        self.presences = asyncio.Queue()
        self.subscriptions = asyncio.Queue()
        self.started = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", self._on_start)
        self.add_event_handler("failed_all_auth", self._on_fail)
        self.add_event_handler("message", lambda m: self.messages.put_nowait(m))
        self.add_event_handler("presence_available", lambda p: self.presences.put_nowait(p))
        self.add_event_handler("presence_unavailable", lambda p: self.presences.put_nowait(p))
        self.add_event_handler("presence_subscribe", lambda p: self.subscriptions.put_nowait(p))
        self.add_event_handler("presence_subscribed", lambda p: self.subscriptions.put_nowait(p))

    async def _on_start(self, _):
        if not self.started.done():
            self.started.set_result(True)

    def _on_fail(self, _):
        if not self.started.done():
            self.started.set_result(False)

    async def login(self, presence=True, roster=True):
        self.connect(HOST, self.hearth.tls_port if self.direct_tls else self.hearth.port)
        ok = await asyncio.wait_for(self.started, TIMEOUT)
        if ok:
            if roster:
                await self.get_roster()
            if presence:
                self.send_presence()
                await self.ping()
        return ok

    async def ping(self):
        await self["xep_0199"].ping(DOMAIN, timeout=TIMEOUT)

    def mechanism(self):
        return self["feature_mechanisms"].mech.name

    async def close(self):
        self.disconnect()
        await asyncio.sleep(0.1)


async def next_item(queue, pred=lambda _: True):
    while True:
        item = await asyncio.wait_for(queue.get(), TIMEOUT)
        if pred(item):
            return item


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


@pytest.mark.parametrize("mech", ["SCRAM-SHA-1", "SCRAM-SHA-256", "PLAIN"])
def test_login_with_each_mechanism(server, mech):
    jid, password = server.new_account()

    async def scenario():
        c = Client(server, jid, password, mech=mech)
        assert await c.login()
        assert c.mechanism() == mech
        assert str(c.boundjid) == f"{jid}/py"
        await c.close()

    run(scenario())


def test_direct_tls_login(server):
    jid, password = server.new_account()

    async def scenario():
        c = Client(server, jid, password, direct_tls=True)
        assert await c.login()
        assert c.mechanism().startswith("SCRAM-SHA-")
        await c.close()

    run(scenario())


def test_wrong_password_fails(server):
    jid, _ = server.new_account()

    async def scenario():
        c = Client(server, jid, "not the password", mech="SCRAM-SHA-256")
        assert not await c.login()
        c.abort()

    run(scenario())


def test_roster_push_and_versioning(server):
    jid, password = server.new_account()
    contact, _ = server.new_account()

    async def scenario():
        a = Client(server, jid, password, resource="one")
        b = Client(server, jid, password, resource="two")
        assert await a.login() and await b.login()
        pushed = asyncio.get_event_loop().create_future()
        b.add_event_handler("roster_update", lambda iq: pushed.done() or pushed.set_result(iq))
        await a.update_roster(contact, name="Friend", groups=["Work"])
        push = await asyncio.wait_for(pushed, TIMEOUT)
        item = push["roster"]["items"][slixmpp.JID(contact)]
        assert item["name"] == "Friend" and item["groups"] == ["Work"]
        # Roster versioning: asking again with the current version gets an empty answer.
        ver = a.client_roster.version
        iq = a.Iq(stype="get")
        iq["roster"]["ver"] = ver
        iq.enable("roster")
        result = await iq.send(timeout=TIMEOUT)
        assert len(result.xml) == 0, "unchanged roster: empty result"
        a.del_roster_item(contact)
        await asyncio.sleep(0.3)
        assert contact not in a.client_roster
        await a.close()
        await b.close()

    run(scenario())


def test_subscription_both_ways_presence_and_chat(server):
    alice, pa = server.new_account("alice")
    bob, pb = server.new_account("bob")

    async def scenario():
        a = Client(server, alice, pa)
        b = Client(server, bob, pb)
        assert await a.login() and await b.login()
        # Bob approves Alice's request and asks back.
        b.add_event_handler("presence_subscribe", lambda p: b.send_presence(pto=p["from"].bare, ptype="subscribed"))
        a.add_event_handler("presence_subscribe", lambda p: a.send_presence(pto=p["from"].bare, ptype="subscribed"))
        a.send_presence(pto=bob, ptype="subscribe")
        await next_item(a.presences, lambda p: p["from"].bare == bob and p["type"] != "unavailable")
        b.send_presence(pto=alice, ptype="subscribe")
        await next_item(b.presences, lambda p: p["from"].bare == alice and p["type"] != "unavailable")
        await a.ping()
        await b.ping()
        # The client keeps its roster from pushes (a versioned get returns nothing new).
        assert a.client_roster[bob]["subscription"] == "both"
        # Chat both ways, with the server-stamped sender.
        a.send_message(mto=bob, mbody="hello bob", mtype="chat")
        msg = await next_item(b.messages, lambda m: m["body"])
        assert msg["body"] == "hello bob" and msg["from"] == slixmpp.JID(f"{alice}/py")
        b.send_message(mto=msg["from"], mbody="hi alice", mtype="chat")
        msg = await next_item(a.messages, lambda m: m["body"])
        assert msg["body"] == "hi alice"
        # Bob leaves: Alice sees him go offline.
        await b.close()
        gone = await next_item(a.presences, lambda p: p["from"].bare == bob and p["type"] == "unavailable")
        assert gone["from"] == slixmpp.JID(f"{bob}/py")
        await a.close()

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
        assert await b.login()
        msg = await next_item(b.messages, lambda m: m["body"])
        assert msg["body"] == "while you were out"
        assert msg["delay"]["stamp"] is not None, "XEP-0203 stamp on an offline message"
        await b.close()

    run(scenario())


def test_errors_for_unknown_user_and_remote_domain(server):
    jid, password = server.new_account()

    async def scenario():
        c = Client(server, jid, password)
        assert await c.login()
        c.send_message(mto=f"nobody@{DOMAIN}", mbody="x", mtype="chat")
        err = await next_item(c.messages, lambda m: m["type"] == "error")
        assert err["error"]["condition"] == "service-unavailable"
        c.send_message(mto="someone@remote.example", mbody="x", mtype="chat")
        err = await next_item(c.messages, lambda m: m["type"] == "error")
        assert err["error"]["condition"] == "remote-server-not-found"
        with pytest.raises(IqError) as e:
            iq = c.Iq(stype="get", sto=DOMAIN)
            iq.append(slixmpp.xmlstream.ET.Element("{urn:example:nothing}query"))
            await iq.send(timeout=TIMEOUT)
        assert e.value.iq["error"]["condition"] == "service-unavailable"
        await c.close()

    run(scenario())


def test_disco_version_ping(server):
    jid, password = server.new_account()

    async def scenario():
        c = Client(server, jid, password)
        assert await c.login()
        info = await c["xep_0030"].get_info(jid=DOMAIN, timeout=TIMEOUT)
        features = set(info["disco_info"]["features"])
        for f in ("msgoffline", "jabber:iq:version", "urn:xmpp:ping", "jabber:iq:register"):
            assert f in features, f
        version = await c["xep_0092"].get_version(DOMAIN, timeout=TIMEOUT)
        assert version["software_version"]["name"] == "hearth"
        await c.ping()
        await c.close()

    run(scenario())


def test_in_band_registration(server):
    async def scenario():
        name = "newcomer"
        c = Client(server, f"{name}@{DOMAIN}", "a fine password")
        c.add_event_handler("register", lambda _: None)
        # Registration happens before login: drive it with raw IQs after connecting.
        c.register_plugin("xep_0077", pconfig={"create_account": True, "force_registration": True})

        async def register(_):
            resp = c.Iq(stype="set")
            resp["register"]["username"] = name
            resp["register"]["password"] = "a fine password"
            await resp.send(timeout=TIMEOUT)

        c.add_event_handler("register", register)
        assert await c.login()
        await c.close()
        r = server.cli("user", "list")
        assert f"{name}@{DOMAIN}" in r.stdout

    run(scenario())
