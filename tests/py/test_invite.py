"""Invitations (XEP-0401) with pre-authenticated registration (XEP-0445): `hearth invite`
creates them, the landing page is fetched over HTTPS, and a client registers on a fresh stream
the way Conversations does — `<preauth xmlns='urn:xmpp:pars:0'/>`, then the XEP-0077 form —
spoken as raw XML over direct TLS, since slixmpp has no preauth support. In-band registration
is off on this server: only a token opens it. Contact invitations come from the ad-hoc
command `urn:xmpp:invite#invite`, driven with slixmpp's xep_0050. Someone who already has an
account sends the token with a subscription request instead (XEP-0379), which the server
approves for the inviter."""

import re
import shutil
import socket
import ssl
import tempfile
import xml.etree.ElementTree as ET

import pytest
from slixmpp.exceptions import IqError
from slixmpp.xmlstream import ET as SliET

from conftest import Server
from test_admin import client, run_command
from test_slixmpp import TIMEOUT, next_item, run

HOST = "127.0.0.61"
ADMIN = "boss"
ADMIN_PASSWORD = "boss-secret-pw"
NS_STREAM = "http://etherx.jabber.org/streams"
NS_CLIENT = "jabber:client"
NS_REGISTER = "jabber:iq:register"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_DATA = "jabber:x:data"
NS_PARS = "urn:xmpp:pars:0"


@pytest.fixture(scope="module")
def srv(hearth_server):
    """A server of our own with registration off and boss@localhost as administrator."""
    workdir = tempfile.mkdtemp(prefix="hearth-invite-")
    server = Server(hearth_server.binary, workdir, host=HOST, registration=False,
                    admins=[f"{ADMIN}@localhost"])
    r = server.cli("user", "add", "--stdin", stdin=f"{ADMIN} {ADMIN_PASSWORD}\n")
    assert r.returncode == 0, r.stderr
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def tls(srv, port):
    ctx = ssl.create_default_context(cafile=srv.cert)
    sock = socket.create_connection((srv.host, port), timeout=TIMEOUT)
    return ctx.wrap_socket(sock, server_hostname=srv.domain)


class RawStream:
    """A client stream over direct TLS, spoken by hand, before any login."""

    def __init__(self, srv):
        self.sock = tls(srv, srv.tls_port)
        self.parser = ET.XMLPullParser(events=("start", "end"))
        self.depth = 0
        self.received = []
        self.ids = 0
        self.sock.sendall(
            f"<?xml version='1.0'?><stream:stream xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAM}' "
            f"to='{srv.domain}' version='1.0'>".encode())
        self.features = self.next()
        assert self.features.tag == f"{{{NS_STREAM}}}features", ET.tostring(self.features)

    def next(self):
        """The next top-level element of the stream."""
        while not self.received:
            data = self.sock.recv(65536)
            assert data, "the server closed the stream"
            self.parser.feed(data)
            for event, el in self.parser.read_events():
                if event == "start":
                    self.depth += 1
                else:
                    self.depth -= 1
                    if self.depth == 1:
                        self.received.append(el)
        return self.received.pop(0)

    def iq(self, type_, payload):
        self.ids += 1
        ident = f"raw{self.ids}"
        self.sock.sendall(f"<iq type='{type_}' id='{ident}'>{payload}</iq>".encode())
        answer = self.next()
        assert answer.get("id") == ident, ET.tostring(answer)
        return answer

    def preauth(self, token):
        return self.iq("set", f"<preauth xmlns='urn:xmpp:pars:0' token='{token}'/>")

    def register(self, user, password):
        form = self.iq("get", f"<query xmlns='{NS_REGISTER}'/>")
        if form.get("type") == "error":
            return form
        return self.iq("set", f"<query xmlns='{NS_REGISTER}'><username>{user}</username>"
                              f"<password>{password}</password></query>")

    def close(self):
        self.sock.close()


def error_condition(answer):
    assert answer.get("type") == "error", ET.tostring(answer)
    error = answer.find(f"{{{NS_CLIENT}}}error")
    return next(child.tag.split("}")[1] for child in error if child.tag.startswith(f"{{{NS_STANZAS}}}")
                and not child.tag.endswith("}text"))


def register_with(srv, token, user, password="a-good-password"):
    """Registers on a fresh stream with `token`: the preauth answer and the registration's."""
    stream = RawStream(srv)
    try:
        presented = stream.preauth(token)
        if presented.get("type") == "error":
            return presented, None
        return presented, stream.register(user, password)
    finally:
        stream.close()


def page(srv, path):
    """GET `path` over HTTPS: (status, body text)."""
    sock = tls(srv, srv.http_port)
    try:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {srv.domain}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    finally:
        sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, body.decode(errors="replace")


def create(srv, *args):
    """`hearth invite create ARGS`: (token, landing page path, xmpp: URI, whole output)."""
    r = srv.cli("invite", "create", *args)
    assert r.returncode == 0, r.stdout + r.stderr
    uri = re.search(r"(xmpp:\S+)", r.stdout).group(1)
    token = re.search(r"preauth=([A-Za-z0-9]+)", uri).group(1)
    link = re.search(r"https://\S+(/invite/" + token + ")", r.stdout)
    assert link, r.stdout
    return token, link.group(1), uri, r.stdout


async def logs_in(srv, user, password="a-good-password"):
    c = client(srv, f"{user}@{srv.domain}", password)
    ok = await c.login()
    if ok:
        await c.close()
    return ok


def test_account_invitation_from_the_cli_to_the_first_login(srv):
    user = srv.unique_name("colleague")
    token, path, uri, out = create(srv, "--note", "for the new colleague")
    assert uri == f"xmpp:{srv.domain}?register;preauth={token}"
    assert "█" in out or "▀" in out or "▄" in out, "the QR code is printed"

    status, body = page(srv, path)
    assert status == 200
    assert uri in body
    assert "<svg" in body and "Conversations" in body and "<script" not in body

    presented, registered = register_with(srv, token, user)
    assert presented.get("type") == "result", ET.tostring(presented)
    assert registered.get("type") == "result", ET.tostring(registered)
    assert run(logs_in(srv, user))

    # Single use: refused on the next stream, and the page says so.
    again, _ = register_with(srv, token, srv.unique_name("other"))
    assert error_condition(again) == "item-not-found"
    status, body = page(srv, path)
    assert status == 410 and "already been used" in body
    listed = srv.cli("invite", "list").stdout
    assert token in listed and "used up" in listed and "for the new colleague" in listed


def test_registration_stays_off_without_a_token(srv):
    stream = RawStream(srv)
    try:
        offered = {child.tag for child in stream.features}
        assert "{http://jabber.org/features/iq-register}register" in offered
        assert "{urn:xmpp:ibr-token:0}register" in offered
        assert "{urn:xmpp:invite}register" in offered
        refused = stream.register(srv.unique_name("nobody"), "a-good-password")
        assert error_condition(refused) == "service-unavailable"
        assert error_condition(stream.preauth("x" * 24)) == "item-not-found"
        assert error_condition(stream.preauth("not a token")) == "item-not-found"
    finally:
        stream.close()


def test_expired_invitation_is_refused_and_its_page_says_so(srv):
    token, path, _, _ = create(srv, "--expires", "0")
    answer, _ = register_with(srv, token, srv.unique_name("late"))
    assert error_condition(answer) == "item-not-found"
    status, body = page(srv, path)
    assert status == 410 and "expired" in body


def test_multi_use_invitation_works_that_many_times(srv):
    token, _, _, _ = create(srv, "--uses", "2")
    for _ in range(2):
        user = srv.unique_name("team")
        _, registered = register_with(srv, token, user)
        assert registered.get("type") == "result", ET.tostring(registered)
        assert run(logs_in(srv, user))
    answer, _ = register_with(srv, token, srv.unique_name("team"))
    assert error_condition(answer) == "item-not-found"


def test_named_invitation_fixes_and_reserves_the_username(srv):
    name = srv.unique_name("juliet")
    token, path, uri, _ = create(srv, "--user", name)
    assert uri == f"xmpp:{name}@{srv.domain}?register;preauth={token}"
    status, body = page(srv, path)
    assert status == 200 and f"{name}@{srv.domain}" in body
    # Another name is refused, and the use is not spent.
    _, wrong = register_with(srv, token, srv.unique_name("romeo"))
    assert error_condition(wrong) == "not-acceptable"
    # A second invitation cannot reserve the same name.
    r = srv.cli("invite", "create", "--user", name)
    assert r.returncode != 0 and "reserved" in r.stderr
    _, registered = register_with(srv, token, name)
    assert registered.get("type") == "result", ET.tostring(registered)
    assert run(logs_in(srv, name))


def test_password_reset_invitation(srv):
    account, _ = srv.new_account("forgetful")
    user = account.split("@")[0]
    token, _, _, out = create(srv, "--user", user)
    assert "new password" in out
    _, registered = register_with(srv, token, user, password="the-new-password")
    assert registered.get("type") == "result", ET.tostring(registered)
    assert run(logs_in(srv, user, "the-new-password"))


def test_revoked_invitation_is_refused_and_its_page_says_so(srv):
    token, path, _, _ = create(srv)
    r = srv.cli("invite", "revoke", token)
    assert r.returncode == 0, r.stderr
    answer, _ = register_with(srv, token, srv.unique_name("revoked"))
    assert error_condition(answer) == "item-not-found"
    status, body = page(srv, path)
    assert status == 410 and "withdrawn" in body
    assert srv.cli("invite", "revoke", "x" * 24).returncode != 0
    status, _ = page(srv, "/invite/" + "y" * 24)
    assert status == 404


def result_fields(cmd):
    x = cmd.xml.find(f"{{{NS_DATA}}}x")
    return {f.get("var"): f.findtext(f"{{{NS_DATA}}}value") for f in x.findall(f"{{{NS_DATA}}}field")}


def test_contact_invitation_makes_mutual_contacts_with_a_roster_push(srv):
    alice, alice_password = srv.new_account("alice")
    newcomer = srv.unique_name("friend")

    async def scenario():
        a = client(srv, alice, alice_password)
        assert await a.login()
        cmd = await run_command(a, "urn:xmpp:invite#invite")
        assert cmd["status"] == "completed"
        fields = result_fields(cmd)
        assert fields["FORM_TYPE"] == "urn:xmpp:invite#invitation"
        uri = fields["uri"]
        assert re.fullmatch(rf"xmpp:{alice}\?roster;preauth=[A-Za-z0-9]+;ibr=y", uri), uri
        token = re.search(r"preauth=([A-Za-z0-9]+)", uri).group(1)
        assert fields["landing-url"].endswith(f"/invite/{token}")
        assert fields["expire"].endswith("Z")
        status, body = page(srv, f"/invite/{token}")
        assert status == 200 and alice in body

        _, registered = register_with(srv, token, newcomer)
        assert registered.get("type") == "result", ET.tostring(registered)
        jid = f"{newcomer}@{srv.domain}"
        push = await next_item(a.roster_pushes, lambda iq: jid in [str(j) for j in iq["roster"]["items"]],
                               what="the roster push of the new contact")
        assert push["roster"]["items"][jid]["subscription"] == "both"

        n = client(srv, jid, "a-good-password")
        assert await n.login()
        roster = await n.roster_from_server()
        assert roster[alice]["subscription"] == "both"
        await n.close()
        await a.close()

    run(scenario())


def test_create_account_is_for_administrators(srv):
    user, password = srv.new_account("plain")
    name = srv.unique_name("hired")

    async def scenario():
        u = client(srv, user, password)
        assert await u.login()
        with pytest.raises(IqError) as refused:
            await run_command(u, "urn:xmpp:invite#create-account")
        assert refused.value.iq["error"]["condition"] == "forbidden"
        await u.close()

        boss = client(srv, f"{ADMIN}@{srv.domain}", ADMIN_PASSWORD)
        assert await boss.login()
        cmd = await run_command(boss, "urn:xmpp:invite#create-account",
                                {"username": name, "roster-subscription": "1"})
        uri = result_fields(cmd)["uri"]
        assert uri.startswith(f"xmpp:{name}@{srv.domain}?register;preauth="), uri
        await boss.close()
        return re.search(r"preauth=([A-Za-z0-9]+)", uri).group(1)

    token = run(scenario())
    _, registered = register_with(srv, token, name)
    assert registered.get("type") == "result", ET.tostring(registered)
    assert run(logs_in(srv, name))
    assert "invitation created" in srv.log() and "account registered with an invitation" in srv.log()


def subscribe_with_token(c, to, token):
    """A subscription request carrying an invitation token, as Conversations sends it when it
    opens a `?roster;preauth=` link with an existing account (XEP-0379 §3.4)."""
    request = c.make_presence(pto=to, ptype="subscribe")
    request.append(SliET.fromstring(f"<preauth xmlns='{NS_PARS}' token='{token}'/>"))
    request.send()


def is_from(kind, jid):
    return lambda p: p["type"] == kind and p["from"].bare == jid


def pushed(jid):
    return lambda iq: jid in [str(j) for j in iq["roster"]["items"]]


async def contact_invitation(c):
    """The token of a new contact invitation from `c` (the ad-hoc command: one use)."""
    cmd = await run_command(c, "urn:xmpp:invite#invite")
    return re.search(r"preauth=([A-Za-z0-9]+)", result_fields(cmd)["uri"]).group(1)


async def logged_in(srv, prefix):
    jid, password = srv.new_account(prefix)
    c = client(srv, jid, password)
    assert await c.login()
    return jid, c


async def waits_for_the_user(inviter, inviter_jid, requester, requester_jid, token):
    """`requester` sends `token` with a request that the inviter gets to answer as usual."""
    subscribe_with_token(requester, inviter_jid, token)
    await next_item(inviter.subscriptions, is_from("subscribe", requester_jid),
                    what="the request at the inviter's client")
    await requester.ping()
    assert requester.subscriptions.empty(), "nobody answered for the inviter"
    item = (await inviter.roster_from_server()).get(requester_jid)
    assert item is None or item["subscription"] == "none", item


def test_subscription_request_with_the_token_is_approved_for_the_inviter(srv):
    async def scenario():
        alice, a = await logged_in(srv, "inviter")
        bob, b = await logged_in(srv, "scanner")
        token = await contact_invitation(a)

        subscribe_with_token(b, alice, token)
        await next_item(b.subscriptions, is_from("subscribed", alice), what="the approval")
        await next_item(b.presences, lambda p: p["from"].bare == alice, what="alice's presence")
        await next_item(b.subscriptions, is_from("subscribe", alice), what="alice's request back")
        push = await next_item(a.roster_pushes, pushed(bob), what="the roster push of the new contact")
        item = push["roster"]["items"][bob]
        assert (item["subscription"], item["ask"]) == ("from", "subscribe")
        assert item["name"] == "", "no name the requester could have chosen"
        await a.ping()
        assert a.subscriptions.empty(), "alice was not asked"

        # Bob accepts alice's request: mutual contacts.
        b.send_presence(pto=alice, ptype="subscribed")
        await next_item(a.subscriptions, is_from("subscribed", bob), what="bob's approval")
        await a.ping()
        await b.ping()
        assert (await a.roster_from_server())[bob]["subscription"] == "both"
        assert (await b.roster_from_server())[alice]["subscription"] == "both"

        # The invitation had one use: the next one asks alice.
        carol, c = await logged_in(srv, "latecomer")
        await waits_for_the_user(a, alice, c, carol, token)
        for x in (a, b, c):
            await x.close()
        return token

    token = run(scenario())
    assert "subscription approved with an invitation" in srv.log()
    listed = next(line for line in srv.cli("invite", "list").stdout.splitlines() if line.startswith(token))
    assert "used up" in listed


def test_a_token_that_is_not_valid_leaves_the_request_to_the_user(srv):
    async def scenario():
        alice, a = await logged_in(srv, "inviter")
        user = alice.split("@")[0]
        expired, _, _, _ = create(srv, "--contact", user, "--expires", "0")
        revoked, _, _, _ = create(srv, "--contact", user)
        assert srv.cli("invite", "revoke", revoked).returncode == 0
        for token in ("x" * 24, "not a token", expired, revoked):
            requester, r = await logged_in(srv, "stranger")
            await waits_for_the_user(a, alice, r, requester, token)
            await r.close()
        await a.close()

    run(scenario())


def test_a_token_approves_requests_to_its_inviter_only(srv):
    async def scenario():
        alice, a = await logged_in(srv, "inviter")
        dave, d = await logged_in(srv, "other")
        bob, b = await logged_in(srv, "scanner")
        token = await contact_invitation(a)
        # Sent to dave, alice's token is nothing special, and it is not used up.
        await waits_for_the_user(d, dave, b, bob, token)
        subscribe_with_token(b, alice, token)
        await next_item(b.subscriptions, is_from("subscribed", alice), what="alice's approval")
        for x in (a, b, d):
            await x.close()

    run(scenario())


def test_multi_use_contact_invitation_approves_that_many_requests(srv):
    async def scenario():
        alice, a = await logged_in(srv, "inviter")
        token, _, uri, _ = create(srv, "--contact", alice.split("@")[0], "--uses", "2")
        assert uri == f"xmpp:{alice}?roster;preauth={token};ibr=y"
        for _ in range(2):
            requester, r = await logged_in(srv, "team")
            subscribe_with_token(r, alice, token)
            await next_item(r.subscriptions, is_from("subscribed", alice), what="the approval")
            await r.close()
        requester, r = await logged_in(srv, "team")
        await waits_for_the_user(a, alice, r, requester, token)
        await r.close()
        await a.close()

    run(scenario())
