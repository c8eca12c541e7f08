"""hearth's web server with real clients and at the protocol level: XMPP over WebSocket
(RFC 7395) and BOSH (XEP-0124/XEP-0206), host-meta (XEP-0156), CORS, and the internal
`/health` and `/metrics`.

Clients: nbxmpp (Gajim's library, WebSocket through libsoup3), strophe.js under Node.js
(tests/web/chat.mjs, BOSH and WebSocket), and slixmpp on TCP as the other end of each chat.
The raw tests speak HTTP with `http.client` and WebSocket with the `websockets` library.

TLS is verified for real everywhere: this module's servers listen on 127.0.0.1, where the name
`localhost` — the XMPP domain, the one name hearth's self-signed certificate is made for —
leads. So every client is given `https://localhost:PORT/…` URLs, exactly as host-meta
advertises them, and checks the certificate against that name, trusting only the server's
certificate file (nbxmpp pins it, Node takes it in NODE_EXTRA_CA_CERTS, Python as CA file)."""

import asyncio
import base64
import concurrent.futures
import http.client
import json
import os
import shutil
import ssl
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as ws_connect

from conftest import ROOT, serving
from test_nbxmpp import chat_with_slixmpp
from test_slixmpp import Client as Slix, next_item, run

WEB_HOST = "127.0.0.1"
NODE_DIR = ROOT / "tests" / "web"
NS_BOSH = "http://jabber.org/protocol/httpbind"
NS_XBOSH = "urn:xmpp:xbosh"
NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
NS_STREAM = "http://etherx.jabber.org/streams"
NS_CLIENT = "jabber:client"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
BOSH_WAIT = 5
EXTERNAL_URL = "https://chat.example.org/xmpp"
INACTIVITY = 2


@pytest.fixture(scope="module")
def hearth_server():
    """This module's server (overriding the session's), on 127.0.0.1 so `localhost` reaches it."""
    with serving(host=WEB_HOST, extra=f"[http]\nbosh_max_wait_secs = {BOSH_WAIT}\n") as srv:
        yield srv


@pytest.fixture(scope="module")
def tuned():
    """A second server with an external URL and a short BOSH inactivity timeout."""
    with serving(host=WEB_HOST, extra=(
        f'[http]\nexternal_url = "{EXTERNAL_URL}/"\nbosh_inactivity_secs = {INACTIVITY}\n'
        f"bosh_max_wait_secs = {BOSH_WAIT}\n"
    )) as srv:
        yield srv


def url(server, path, scheme="https"):
    return f"{scheme}://localhost:{server.http_port}{path}"


def tls_context(server):
    return ssl.create_default_context(cafile=server.cert)


def https(server, method, path, body=None, headers=None, port=None):
    """One HTTP request on its own connection (TLS unless `port` is the internal one);
    returns (status, headers as a dict with lowercase names, body bytes)."""
    if port is None:
        conn = http.client.HTTPSConnection("localhost", server.http_port, context=tls_context(server),
                                           timeout=BOSH_WAIT + 10)
    else:
        conn = http.client.HTTPConnection(server.host, port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def sasl_plain(jid, password):
    creds = base64.b64encode(f"\0{jid.split('@')[0]}\0{password}".encode()).decode()
    return f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{creds}</auth>"


# --- BOSH -----------------------------------------------------------------------------------


class Bosh:
    """A BOSH session spoken by hand: `post()` sends one `<body/>` and returns the answer's
    raw bytes; `request()` parses it. Every request is a new HTTPS connection, as a browser
    may do, so two can be open at once."""

    def __init__(self, server, rid=1000):
        self.server = server
        self.rid = rid
        self.sid = None

    def post(self, inner="", rid=None, sid=None, **attrs):
        rid = self.rid if rid is None else rid
        sid = sid or self.sid
        attrs = {"rid": str(rid), **({"sid": sid} if sid else {}), **attrs}
        text = "".join(f" {k.replace('__', ':')}='{v}'" for k, v in attrs.items())
        body = f"<body xmlns='{NS_BOSH}' xmlns:xmpp='{NS_XBOSH}'{text}>{inner}</body>"
        status, headers, answer = https(self.server, "POST", "/http-bind", body=body.encode(),
                                        headers={"Content-Type": "text/xml; charset=utf-8"})
        assert status == 200, f"HTTP {status}: {answer!r}"
        assert headers["content-type"].startswith("text/xml")
        return answer

    def request(self, inner="", **attrs):
        """Sends the next request (next rid) and returns the parsed answer."""
        answer = ET.fromstring(self.post(inner, **attrs))
        self.rid += 1
        return answer

    def start(self, to="localhost"):
        answer = self.request(to=to, wait=str(BOSH_WAIT), hold="1", ver="1.11",
                              xmpp__version="1.0", **{"xml:lang": "en"})
        self.sid = answer.get("sid")
        return answer

    def until(self, pred, what):
        """Empty requests until an answer has a child satisfying `pred`; returns that child."""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            answer = self.request()
            assert answer.get("type") != "terminate", ET.tostring(answer)
            for child in answer:
                if pred(child):
                    return child
        raise AssertionError(f"no {what} within 15 s")

    def login(self, jid, password, resource="bosh"):
        """SASL PLAIN, stream restart (XEP-0206 §5), resource binding; returns the answer to
        the restart, which carries the new stream features."""
        self.start()
        answer = self.request(sasl_plain(jid, password))
        if not answer.findall(f"{{{NS_SASL}}}success"):
            self.until(lambda el: el.tag == f"{{{NS_SASL}}}success", "SASL success")
        restarted = self.request(to="localhost", xmpp__restart="true", **{"xml:lang": "en"})
        bind = f"<iq xmlns='{NS_CLIENT}' type='set' id='b1'><bind xmlns='{NS_BIND}'><resource>{resource}</resource></bind></iq>"
        answer = self.request(bind)
        iqs = answer.findall(f"{{{NS_CLIENT}}}iq") or [self.until(lambda el: el.tag == f"{{{NS_CLIENT}}}iq", "bind result")]
        assert iqs[0].get("type") == "result", ET.tostring(iqs[0])
        assert iqs[0].find(f"{{{NS_BIND}}}bind/{{{NS_BIND}}}jid").text == f"{jid}/{resource}"
        return restarted


def terminated(answer, condition):
    return answer.get("type") == "terminate" and answer.get("condition") == condition


def test_bosh_unknown_sid_is_item_not_found(server):
    assert terminated(ET.fromstring(Bosh(server).post(sid="no-such-session")), "item-not-found")


@pytest.mark.parametrize("body", [b"<body", b"<notbody xmlns='x' rid='1'/>", f"<body xmlns='{NS_BOSH}'/>".encode()])
def test_bosh_malformed_body_is_bad_request(server, body):
    """Not XML, not a BOSH `<body/>`, or no `rid`."""
    status, _, answer = https(server, "POST", "/http-bind", body=body)
    assert status == 200 and terminated(ET.fromstring(answer), "bad-request"), answer


def test_bosh_session_for_another_domain_is_host_unknown(server):
    assert terminated(Bosh(server).start(to="elsewhere.example"), "host-unknown")


def test_bosh_session_creation_answer(server):
    answer = Bosh(server).start()
    # XEP-0124 §7.1 / XEP-0206 §3: the session attributes, and the stream features at once.
    assert answer.get("sid") and answer.get("authid") and answer.get("from") == "localhost"
    assert int(answer.get("wait")) <= BOSH_WAIT and answer.get("hold") == "1"
    assert answer.get(f"{{{NS_XBOSH}}}version") == "1.0"
    assert answer.find(f"{{{NS_STREAM}}}features/{{{NS_SASL}}}mechanisms") is not None


def test_bosh_login_restart_bind_and_terminate(server):
    jid, password = server.new_account("bosh")
    b = Bosh(server)
    restarted = b.login(jid, password)
    assert restarted.find(f"{{{NS_STREAM}}}features/{{{NS_BIND}}}bind") is not None, ET.tostring(restarted)
    answer = b.request(f"<presence xmlns='{NS_CLIENT}' type='unavailable'/>", type="terminate")
    assert answer.get("type") == "terminate"
    # The session is gone.
    assert terminated(ET.fromstring(b.post()), "item-not-found")


def test_bosh_repeated_rid_gets_the_identical_answer(server):
    """XEP-0124 §14.3: a client that lost an answer asks again with the same rid."""
    jid, password = server.new_account("bosh")
    b = Bosh(server)
    b.start()
    auth = sasl_plain(jid, password)
    first = b.post(auth)
    assert first == b.post(auth), "the same rid again gets the same bytes"
    assert b"success" in first


def test_bosh_rid_beyond_the_window_terminates_the_session(server):
    b = Bosh(server)
    b.start()
    assert terminated(ET.fromstring(b.post(rid=b.rid + 10)), "item-not-found")
    # XEP-0124 §14.3: the session is terminated, not just the request refused.
    assert terminated(ET.fromstring(b.post()), "item-not-found")


def test_bosh_second_request_releases_the_held_one(server):
    """hold='1': with a request held, a new one makes the server answer the held one at once."""
    jid, password = server.new_account("bosh")
    b = Bosh(server)
    b.login(jid, password)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        started = time.monotonic()
        held = pool.submit(b.post, rid=b.rid)
        time.sleep(0.5)  # the first request is now waiting for something to send
        second = pool.submit(b.post, rid=b.rid + 1)
        first = ET.fromstring(held.result())
        released_after = time.monotonic() - started
        assert len(first) == 0 and first.get("type") is None, held.result()
        assert released_after < BOSH_WAIT - 1, f"held request answered after {released_after:.1f} s"
        second.result()


def test_bosh_session_ends_after_inactivity(tuned):
    jid, password = tuned.new_account("bosh")
    b = Bosh(tuned)
    b.login(jid, password)
    assert metric(tuned, "hearth_c2s_sessions") == 1
    # No request for INACTIVITY seconds: the session ends (the c2s session with it).
    wait_for(lambda: metric(tuned, "hearth_c2s_sessions") == 0, 4 * INACTIVITY + 5, "the BOSH session to end")
    assert terminated(ET.fromstring(b.post()), "item-not-found")


def drop_mid_request(b, inner=""):
    """Sends `b`'s next request and closes the connection while the server holds it."""
    conn = http.client.HTTPSConnection("localhost", b.server.http_port, context=tls_context(b.server))
    conn.request("POST", "/http-bind", body=f"<body xmlns='{NS_BOSH}' rid='{b.rid}' sid='{b.sid}'>{inner}</body>")
    time.sleep(0.5)
    conn.sock.close()


def test_bosh_request_resent_after_its_connection_dropped_is_answered(server):
    """XEP-0124 §14.3: a client whose connection dropped while its request was held sends the
    same rid again; that is answered like any request, and the session goes on."""
    jid, password = server.new_account("bosh")
    b = Bosh(server)
    b.login(jid, password)
    drop_mid_request(b)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        resent = pool.submit(b.post)
        time.sleep(0.5)
        b.rid += 1
        ping = f"<iq xmlns='{NS_CLIENT}' type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"
        answer = b.request(ping)
        resent = ET.fromstring(resent.result())
    assert resent.get("type") is None, ET.tostring(resent)
    # The pong may come in either answer, or in a later one.
    pongs = [el for a in (resent, answer) for el in a if el.get("id") == "p1"]
    pong = pongs[0] if pongs else b.until(lambda el: el.get("id") == "p1", "the ping's answer")
    assert pong.get("type") == "result"


def test_bosh_client_vanishing_mid_request_ends_after_inactivity(tuned):
    """A browser tab closed while its request is held: the connection drops with no answer
    read and no terminate; the session must still end after the inactivity timeout."""
    jid, password = tuned.new_account("bosh")
    b = Bosh(tuned)
    b.login(jid, password)
    drop_mid_request(b)
    wait_for(lambda: metric(tuned, "hearth_c2s_sessions") == 0, BOSH_WAIT + 4 * INACTIVITY + 5,
             "the BOSH session to end")


# --- WebSocket ------------------------------------------------------------------------------


def ws_open(server, subprotocols=("xmpp",)):
    return ws_connect(url(server, "/xmpp-websocket", "wss"), ssl=tls_context(server),
                      subprotocols=list(subprotocols), open_timeout=10, max_size=None)


def ws_recv(ws):
    """The next message, parsed on its own: RFC 7395 §3.3.3 makes every message a standalone
    document with its namespaces declared."""
    text = ws.recv(timeout=10)
    assert isinstance(text, str), f"binary message {text!r}"
    return ET.fromstring(text)


def ws_start(ws, to="localhost"):
    """Sends `<open/>`; returns the server's `<open/>` and its stream features."""
    ws.send(f"<open xmlns='{NS_FRAMING}' to='{to}' version='1.0'/>")
    opened = ws_recv(ws)
    assert opened.tag == f"{{{NS_FRAMING}}}open", ET.tostring(opened)
    features = ws_recv(ws)
    assert features.tag == f"{{{NS_STREAM}}}features", ET.tostring(features)
    return opened, features


def ws_login(server, jid, password, resource="ws"):
    """A raw WebSocket session logged in and bound; returns the socket."""
    ws = ws_open(server)
    ws_start(ws)
    ws.send(sasl_plain(jid, password))
    assert ws_recv(ws).tag == f"{{{NS_SASL}}}success"
    _, features = ws_start(ws)
    assert features.find(f"{{{NS_BIND}}}bind") is not None
    ws.send(f"<iq xmlns='{NS_CLIENT}' type='set' id='b1'><bind xmlns='{NS_BIND}'><resource>{resource}</resource></bind></iq>")
    bound = ws_recv(ws)
    assert bound.tag == f"{{{NS_CLIENT}}}iq" and bound.get("type") == "result", ET.tostring(bound)
    return ws


def ws_ping(ws, ident):
    ws.send(f"<iq xmlns='{NS_CLIENT}' type='get' id='{ident}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
    pong = ws_recv(ws)
    assert pong.tag == f"{{{NS_CLIENT}}}iq" and pong.get("id") == ident and pong.get("type") == "result"


def assert_closed(ws):
    with pytest.raises(ConnectionClosed):
        while True:
            ws.recv(timeout=10)


def test_websocket_without_xmpp_subprotocol_is_refused(server):
    with pytest.raises(InvalidStatus) as e:
        ws_open(server, subprotocols=())
    assert e.value.response.status_code == 400


def test_websocket_open_and_close_framing(server):
    with ws_open(server) as ws:
        assert ws.subprotocol == "xmpp"
        opened, features = ws_start(ws)
        assert opened.get("from") == "localhost" and opened.get("id") and opened.get("version") == "1.0"
        assert features.find(f"{{{NS_SASL}}}mechanisms") is not None
        ws.send(f"<close xmlns='{NS_FRAMING}'/>")
        assert ws_recv(ws).tag == f"{{{NS_FRAMING}}}close"
        assert_closed(ws)


def test_websocket_every_message_is_a_standalone_element(server):
    """Through login and a message to oneself, each message parses alone, stanzas in
    jabber:client (ws_recv parses them all)."""
    jid, password = server.new_account("ws")
    with ws_login(server, jid, password) as ws:
        ws.send(f"<message xmlns='{NS_CLIENT}' to='{jid}/ws' type='chat'><body>to myself</body></message>")
        msg = ws_recv(ws)
        assert msg.tag == f"{{{NS_CLIENT}}}message"
        assert msg.find(f"{{{NS_CLIENT}}}body").text == "to myself"
        ws.send(f"<close xmlns='{NS_FRAMING}'/>")
        assert ws_recv(ws).tag == f"{{{NS_FRAMING}}}close"


MAX_STANZA = 256 * 1024  # c2s.max_stanza_size's default


@pytest.mark.parametrize("offence, close_code", [
    # Over c2s.max_stanza_size: the c2s parser ends the stream as on a socket (checked below).
    ("stanza too large", 1000),
    # Over the WebSocket layer's own limit (twice the stanza limit): 1008, policy violation.
    ("message too large", 1008),
    # RFC 7395 §3.3: text only; 1003, unsupported data.
    ("binary", 1003),
])
def test_websocket_offending_message_closes_only_its_session(server, offence, close_code):
    jid, password = server.new_account("ws")
    other_jid, other_password = server.new_account("ws")
    with ws_login(server, other_jid, other_password) as other, ws_login(server, jid, password) as ws:
        if offence == "binary":
            ws.send(b"<presence/>")
        else:
            size = MAX_STANZA + 1000 if offence == "stanza too large" else 2 * MAX_STANZA + 1000
            try:
                ws.send(f"<message xmlns='{NS_CLIENT}' to='{other_jid}'><body>{'x' * size}</body></message>")
            except ConnectionClosed:
                # The server refused the message before it was all sent (see below).
                assert offence == "message too large"
        if offence == "stanza too large":
            error = ws_recv(ws)
            assert error.find("{urn:ietf:params:xml:ns:xmpp-streams}policy-violation") is not None, ET.tostring(error)
            assert ws_recv(ws).tag == f"{{{NS_FRAMING}}}close"
        assert_closed(ws)
        # A message refused while the client is still sending it leaves unread bytes on the
        # server's socket, so closing it may reset the connection before the client reads the
        # close frame (1006, abnormal closure: RFC 6455 §7.1.1 races with TCP); when the frame
        # arrives, its code is right.
        if not (offence == "message too large" and ws.close_code == 1006):
            assert ws.close_code == close_code, f"close code {ws.close_code} {ws.close_reason!r}"
        ws_ping(other, "still-there")


def test_websocket_stream_error_then_close(server):
    jid, password = server.new_account("ws")
    with ws_login(server, jid, password) as ws:
        ws.send(f"<iq xmlns='{NS_CLIENT}' type='get' id='x'><query></iq>")
        error = ws_recv(ws)
        assert error.tag == f"{{{NS_STREAM}}}error", ET.tostring(error)
        assert ws_recv(ws).tag == f"{{{NS_FRAMING}}}close"
        assert_closed(ws)


# --- host-meta, CORS, monitoring ------------------------------------------------------------


def host_meta_links(server):
    """{rel: href} from the XRD and from the JSON host-meta, which must agree."""
    status, headers, xrd = https(server, "GET", "/.well-known/host-meta", headers={"Origin": "https://web.example"})
    assert status == 200 and headers.get("access-control-allow-origin") in ("*", "https://web.example")
    links = {link.get("rel"): link.get("href")
             for link in ET.fromstring(xrd).findall("{http://docs.oasis-open.org/ns/xri/xrd-1.0}Link")}
    status, headers, jrd = https(server, "GET", "/.well-known/host-meta.json", headers={"Origin": "https://web.example"})
    assert status == 200 and headers.get("access-control-allow-origin") in ("*", "https://web.example")
    assert {link["rel"]: link["href"] for link in json.loads(jrd)["links"]} == links
    return links


def test_host_meta_lists_bosh_and_websocket(server):
    assert host_meta_links(server) == {
        "urn:xmpp:alt-connections:xbosh": url(server, "/http-bind"),
        "urn:xmpp:alt-connections:websocket": url(server, "/xmpp-websocket", "wss"),
    }


def test_host_meta_uses_the_external_url(tuned):
    assert host_meta_links(tuned) == {
        "urn:xmpp:alt-connections:xbosh": f"{EXTERNAL_URL}/http-bind",
        "urn:xmpp:alt-connections:websocket": "wss://chat.example.org/xmpp/xmpp-websocket",
    }


def test_cors_preflight_for_bosh(server):
    status, headers, _ = https(server, "OPTIONS", "/http-bind", headers={
        "Origin": "https://web.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    })
    assert status in (200, 204)
    assert headers.get("access-control-allow-origin") in ("*", "https://web.example")
    assert "POST" in headers.get("access-control-allow-methods", "")
    assert "content-type" in headers.get("access-control-allow-headers", "").lower()


def metrics(server):
    status, headers, body = https(server, "GET", "/metrics", port=server.internal_port)
    assert status == 200 and headers["content-type"].startswith("application/openmetrics-text")
    # The OpenMetrics parser rejects anything malformed (and a missing `# EOF`).
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body.decode()) for s in family.samples}


def metric(server, name, **labels):
    return metrics(server)[(name, tuple(sorted(labels.items())))]


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.2)


def test_health_and_metrics_on_the_internal_listener(tuned):
    status, _, body = https(tuned, "GET", "/health", port=tuned.internal_port)
    assert status == 200 and json.loads(body)["status"] == "ok"
    received = ("hearth_stanzas_received_total", {"from": "client", "kind": "message"})
    wait_for(lambda: metric(tuned, "hearth_c2s_sessions") == 0, 15, "no sessions")
    before = metric(tuned, received[0], **received[1])
    alice, pa = tuned.new_account("alice")
    bob, pb = tuned.new_account("bob")
    with ws_login(tuned, bob, pb) as ws:
        async def scenario():
            a = Slix(tuned, alice, pa)
            assert await a.login(presence=False, roster=False)
            # Two logged-in sessions: slixmpp on TCP and the raw WebSocket one.
            assert metric(tuned, "hearth_c2s_sessions") == 2
            a.send_message(mto=f"{bob}/ws", mbody="counted", mtype="chat")
            await a.ping()
            await a.close()

        run(scenario())
        assert ws_recv(ws).find(f"{{{NS_CLIENT}}}body").text == "counted"
    assert metric(tuned, received[0], **received[1]) >= before + 1


@pytest.mark.parametrize("path", ["/metrics", "/health"])
def test_monitoring_is_not_on_the_public_port(server, path):
    status, _, _ = https(server, "GET", path)
    assert status == 404


# --- real clients ---------------------------------------------------------------------------


def test_nbxmpp_over_websocket_chats_with_slixmpp(server):
    a = chat_with_slixmpp(server, {"websocket": url(server, "/xmpp-websocket", "wss")})
    assert a.client.is_websocket


def test_nbxmpp_finds_websocket_through_host_meta(server):
    _, _, xrd = https(server, "GET", "/.well-known/host-meta")
    a = chat_with_slixmpp(server, {"host_meta": xrd})
    assert a.client.is_websocket


def strophe_chat(server, service):
    """strophe.js (Alice, on `service`) and slixmpp (Bob, TCP) chat both ways."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (strophe.js runs under Node.js)")
    assert (NODE_DIR / "node_modules" / "strophe.js").is_dir(), "run `npm ci --prefix tests/web` (install-deps.sh does)"
    alice, pa = server.new_account("strophe")
    bob, pb = server.new_account("bob")

    async def scenario():
        b = Slix(server, bob, pb, resource="slix")
        assert await b.login()
        proc = await asyncio.create_subprocess_exec(
            node, str(NODE_DIR / "chat.mjs"), service, alice, pa, f"{bob}/slix", "hello from strophe",
            "hello from slixmpp", "20",
            env={**os.environ, "NODE_EXTRA_CA_CERTS": server.cert},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            got = await next_item(b.messages, lambda m: m["body"], what="slixmpp to get strophe's message")
            assert got["body"] == "hello from strophe" and got["from"].bare == alice
            b.send_message(mto=got["from"], mbody="hello from slixmpp", mtype="chat")
        finally:
            out, err = await proc.communicate()
        events = [json.loads(line) for line in out.decode().splitlines()]
        assert proc.returncode == 0, f"chat.mjs failed: {events} {err.decode()}"
        await b.close()
        return events

    events = run(scenario())
    (connected,) = [e for e in events if e["event"] == "connected"]
    assert connected["jid"].startswith(f"{alice}/")
    received = [e for e in events if e["event"] == "received"]
    assert received[-1]["body"] == "hello from slixmpp" and received[-1]["from"] == f"{bob}/slix"
    return connected["transport"]


def test_strophe_over_bosh_chats_with_slixmpp(server):
    assert strophe_chat(server, url(server, "/http-bind")) == "Bosh"


def test_strophe_over_websocket_chats_with_slixmpp(server):
    assert strophe_chat(server, url(server, "/xmpp-websocket", "wss")) == "Websocket"
