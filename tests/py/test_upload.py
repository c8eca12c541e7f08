"""HTTP File Upload (XEP-0363) as clients use it: slixmpp finds the service through disco and
asks for slots (by hand: its xep_0363 plugin needs aiohttp, which the test venv does not have), the files go up and come back over HTTPS (Python's http.client and the real
`curl`), checked byte for byte; refusals leave nothing on disk; expiry, deleted accounts and
broken uploads are swept; upload URLs outlive a restart.

Slot URLs name the server's domain (localhost) while it listens on its own loopback address,
so connections go to that address with the TLS name `localhost` (curl: `--resolve`)."""

import asyncio
import hashlib
import http.client
import os
import shutil
import socket
import ssl
import stat
import subprocess
import tempfile
import time
import urllib.parse
import xml.etree.ElementTree as ET

import pytest
import slixmpp
from slixmpp.exceptions import IqError

from conftest import Server
from test_slixmpp import Client, run

NS = "urn:xmpp:http:upload:0"
MAX_SIZE = 8_000_000
QUOTA = 12_000_000
MAIN_HOST = "127.0.0.60"
GATEWAY_HOST = "127.0.0.63"
GATEWAY = "gateway.localhost"
GATEWAY_SECRET = "gateway-secret"
SHORT_HOST = "127.0.0.61"
RESTART_HOST = "127.0.0.64"


def upload_server(binary, host, config):
    workdir = tempfile.mkdtemp(prefix="hearth-upload-")
    return Server(binary, workdir, host=host, extra=f"[modules.upload]\n{config}"), workdir


@pytest.fixture(scope="module")
def hearth(hearth_server):
    """A server with small limits, swept every second."""
    srv, workdir = upload_server(hearth_server.binary, MAIN_HOST,
                                 f"max_file_size = {MAX_SIZE}\nquota_bytes = {QUOTA}\nsweep_interval_secs = 1\n")
    try:
        yield srv
    finally:
        srv.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def short(hearth_server):
    """A server whose slots last 2 s and files 3 s."""
    srv, workdir = upload_server(hearth_server.binary, SHORT_HOST,
                                 "slot_lifetime_secs = 2\nexpire_after_secs = 3\nsweep_interval_secs = 1\n")
    try:
        yield srv
    finally:
        srv.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def upload_dir(server):
    return server.dir / "data" / "upload"


def tls_context(server):
    return ssl.create_default_context(cafile=server.cert)


def connection(server):
    """An HTTPS connection to the server's address, verified for its domain."""
    ctx = tls_context(server)
    conn = http.client.HTTPSConnection(server.domain, server.http_port, context=ctx, timeout=30)
    conn.sock = ctx.wrap_socket(socket.create_connection((server.host, server.http_port), timeout=30),
                                server_hostname=server.domain)
    return conn


def request(server, method, url, body=None, headers=None):
    """(status, headers, body) of one request to a slot URL."""
    parts = urllib.parse.urlsplit(url)
    assert (parts.scheme, parts.hostname, parts.port) == ("https", server.domain, server.http_port), url
    conn = connection(server)
    try:
        conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body=body,
                     headers=headers or {})
        r = conn.getresponse()
        return r.status, r.headers, r.read()
    finally:
        conn.close()


def put(server, url, data, content_type="application/octet-stream"):
    """The status of a PUT sent as curl sends large files, with `Expect: 100-continue`: a
    refusal comes before the body is sent (a body pushed regardless would meet the reset of
    a connection the server closed)."""
    parts = urllib.parse.urlsplit(url)
    conn = connection(server)
    try:
        conn.putrequest("PUT", parts.path + (f"?{parts.query}" if parts.query else ""))
        for name, value in (("Content-Type", content_type), ("Content-Length", str(len(data))),
                            ("Expect", "100-continue")):
            conn.putheader(name, value)
        conn.endheaders()
        interim = conn.sock.makefile("rb")
        status = int(interim.readline().split()[1])
        if status != 100:
            return status
        while interim.readline() not in (b"\r\n", b""):
            pass
        conn.sock.sendall(data)
        response = http.client.HTTPResponse(conn.sock, method="PUT")
        response.begin()
        response.read()
        return response.status
    finally:
        conn.close()


def slot_id(url):
    return urllib.parse.urlsplit(url).path.split("/")[2]


def files_of(server, url):
    """The files on disk for a slot (stored or partial)."""
    return sorted(p.name for p in upload_dir(server).iterdir() if p.name.startswith(slot_id(url)))


async def logged_in(server, jid, pw):
    c = Client(server, jid, pw)
    assert await c.login()
    return c


async def find_service(c):
    """The disco#info of the server's item that is a file store with this protocol."""
    disco = c.plugin["xep_0030"]
    items = await disco.get_items(jid=c.hearth.domain, timeout=15)
    for jid, _, _ in items["disco_items"]["items"]:
        info = await disco.get_info(jid=jid, timeout=15)
        identities = {(i[0], i[1]) for i in info["disco_info"]["identities"]}
        if ("store", "file") in identities and NS in info["disco_info"]["features"]:
            return info
    return None


async def slot(c, filename, size, content_type="application/octet-stream"):
    """(put URL, get URL) for a slot from the upload service."""
    iq = c.Iq(stype="get", sto=f"upload.{c.hearth.domain}")
    request = ET.Element(f"{{{NS}}}request", filename=filename, size=str(size))
    if content_type:
        request.set("content-type", content_type)
    iq.append(request)
    result = await iq.send(timeout=15)
    found = result.xml.find(f"{{{NS}}}slot")
    return found.find(f"{{{NS}}}put").get("url"), found.find(f"{{{NS}}}get").get("url")


async def refusal(c, filename, size, content_type="application/octet-stream"):
    """The error element of a refused slot request."""
    with pytest.raises(IqError) as refused:
        await slot(c, filename, size, content_type)
    return refused.value.iq.xml.find("{jabber:client}error")


def get_slot(server, filename, size, content_type="application/octet-stream"):
    jid, pw = server.new_account("uploader")

    async def scenario():
        c = await logged_in(server, jid, pw)
        try:
            return await slot(c, filename, size, content_type)
        finally:
            await c.close()

    return run(scenario())


def test_discovery_and_a_5_mb_photo_round_trip(hearth):
    jid, pw = hearth.new_account("photographer")
    data = os.urandom(5_000_000)

    async def scenario():
        c = await logged_in(hearth, jid, pw)
        try:
            info = await find_service(c)
            assert info is not None, "the upload service is not in the server's disco items"
            assert str(info["from"]) == f"upload.{hearth.domain}"
            assert ("store", "file", None, "HTTP File Upload") in info["disco_info"]["identities"]
            fields = {f.get("var"): [v.text for v in f.findall("{jabber:x:data}value")]
                      for f in info.xml.iter("{jabber:x:data}field")}
            assert fields["FORM_TYPE"] == [NS] and fields["max-file-size"] == [str(MAX_SIZE)]
            return await slot(c, "très cool.jpg", len(data), "image/jpeg")
        finally:
            await c.close()

    put_url, get_url = run(scenario())
    assert get_url.endswith("/tr%C3%A8s%20cool.jpg") and put_url.startswith(get_url + "?token=")
    assert put(hearth, put_url, data, "image/jpeg") == 201
    status, headers, body = request(hearth, "GET", get_url)
    assert status == 200 and hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    assert headers["Content-Type"] == "image/jpeg"
    assert headers["Content-Length"] == str(len(data))
    assert headers["Content-Disposition"] == (
        "inline; filename=\"tr_s cool.jpg\"; filename*=UTF-8''tr%C3%A8s%20cool.jpg")
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert headers["Accept-Ranges"] == "bytes" and headers["ETag"]
    # HEAD: the same headers, no body.
    status, head, body = request(hearth, "HEAD", get_url)
    assert (status, head["Content-Length"], body) == (200, str(len(data)), b"")
    # A second PUT to the same slot is refused.
    assert put(hearth, put_url, data, "image/jpeg") == 409
    # The name in the URL must be the slot's; the token never opens a download of another.
    assert request(hearth, "GET", get_url.replace("cool.jpg", "cool.png"))[0] == 404
    assert request(hearth, "GET", get_url.replace(slot_id(get_url), "A" * 24))[0] == 404


def test_ranges_and_revalidation(hearth):
    data = os.urandom(100_000)
    put_url, get_url = get_slot(hearth, "clip.mp4", len(data), "video/mp4")
    assert put(hearth, put_url, data, "video/mp4") == 201
    status, headers, body = request(hearth, "GET", get_url, headers={"Range": "bytes=1000-1999"})
    assert (status, headers["Content-Range"], body) == (206, f"bytes 1000-1999/{len(data)}", data[1000:2000])
    status, headers, body = request(hearth, "GET", get_url, headers={"Range": "bytes=-500"})
    assert (status, body) == (206, data[-500:])
    status, headers, _ = request(hearth, "GET", get_url, headers={"Range": f"bytes={len(data)}-"})
    assert (status, headers["Content-Range"]) == (416, f"bytes */{len(data)}")
    status, headers, _ = request(hearth, "GET", get_url)
    assert request(hearth, "GET", get_url, headers={"If-None-Match": headers["ETag"]})[0] == 304


def test_unsafe_types_are_downloads(hearth):
    page = b"<script>alert(document.cookie)</script>"
    put_url, get_url = get_slot(hearth, "page.html", len(page), "text/html")
    assert put(hearth, put_url, page, "text/html") == 201
    status, headers, body = request(hearth, "GET", get_url)
    assert status == 200 and body == page
    assert headers["Content-Disposition"].startswith("attachment;")
    assert headers["Content-Security-Policy"] == "default-src 'none'; sandbox"


def test_refused_slots(hearth):
    jid, pw = hearth.new_account("greedy")

    async def scenario():
        c = await logged_in(hearth, jid, pw)
        try:
            error = await refusal(c, "huge.bin", MAX_SIZE + 1)
            assert error.get("type") == "modify"
            assert error.find("{urn:ietf:params:xml:ns:xmpp-stanzas}not-acceptable") is not None
            assert error.findtext(f"{{{NS}}}file-too-large/{{{NS}}}max-file-size") == str(MAX_SIZE)
            for filename, size in (("../../etc/passwd", 10), ("a/b", 10), ("", 10), ("ok.txt", -1)):
                error = await refusal(c, filename, size)
                assert error.find("{urn:ietf:params:xml:ns:xmpp-stanzas}bad-request") is not None, filename
            # Open slots count against the quota: 8 MB pending, 5 MB more is too much.
            await slot(c, "first.bin", MAX_SIZE)
            error = await refusal(c, "second.bin", 5_000_000)
            assert error.get("type") == "wait"
            assert error.find("{urn:ietf:params:xml:ns:xmpp-stanzas}resource-constraint") is not None
            # Freed when the oldest stored file expires; nothing is stored yet.
            assert error.find(f"{{{NS}}}retry") is None
            # Within the quota still.
            await slot(c, "small.bin", QUOTA - MAX_SIZE)
        finally:
            await c.close()

    run(scenario())


def test_refused_puts_leave_nothing_behind(hearth):
    data = os.urandom(200_000)
    put_url, get_url = get_slot(hearth, "doc.pdf", len(data), "application/pdf")
    token = urllib.parse.parse_qs(urllib.parse.urlsplit(put_url).query)["token"][0]
    tampered = put_url.replace(token, ("B" if token[0] != "B" else "C") + token[1:])
    assert put(hearth, tampered, data, "application/pdf") == 403
    assert put(hearth, get_url, data, "application/pdf") == 403, "a PUT without the token"
    assert put(hearth, put_url, data + b"more", "application/pdf") == 413
    assert put(hearth, put_url, data[:-1], "application/pdf") == 400
    assert put(hearth, put_url, data, "text/html") == 415
    assert files_of(hearth, put_url) == []
    assert request(hearth, "GET", get_url)[0] == 404
    # A client that stops halfway: its partial file goes.
    parts = urllib.parse.urlsplit(put_url)
    conn = connection(hearth)
    conn.putrequest("PUT", f"{parts.path}?{parts.query}")
    conn.putheader("Content-Type", "application/pdf")
    conn.putheader("Content-Length", str(len(data)))
    conn.endheaders()
    conn.send(data[:100_000])
    time.sleep(0.5)
    conn.sock.shutdown(socket.SHUT_RDWR)
    conn.close()
    deadline = time.monotonic() + 10
    while files_of(hearth, put_url) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert files_of(hearth, put_url) == []
    # The slot is still good for a complete upload.
    assert put(hearth, put_url, data, "application/pdf") == 201
    assert files_of(hearth, put_url) == [slot_id(put_url)]
    assert request(hearth, "GET", get_url)[2] == data


def test_curl_puts_and_gets_the_same_bytes(hearth, tmp_path):
    if shutil.which("curl") is None:
        pytest.skip("needs curl")
    original = tmp_path / "report.bin"
    original.write_bytes(os.urandom(3_000_000))
    put_url, get_url = get_slot(hearth, "report.bin", original.stat().st_size)
    curl = ["curl", "--silent", "--show-error", "--fail", "--cacert", hearth.cert,
            "--resolve", f"{hearth.domain}:{hearth.http_port}:{hearth.host}"]
    subprocess.run(curl + ["-H", "Content-Type: application/octet-stream", "-T", str(original), put_url],
                   check=True, timeout=60)
    copy = tmp_path / "copy.bin"
    subprocess.run(curl + ["-o", str(copy), get_url], check=True, timeout=60)
    assert copy.read_bytes() == original.read_bytes()


def test_cors_preflight(hearth):
    put_url, _ = get_slot(hearth, "x.png", 10, "image/png")
    status, headers, _ = request(hearth, "OPTIONS", put_url, headers={
        "Origin": "https://web.example", "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "content-type"})
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert "PUT" in headers["Access-Control-Allow-Methods"]
    assert "content-type" in headers["Access-Control-Allow-Headers"].lower()


def test_deleted_accounts_files_are_swept(hearth):
    jid, pw = hearth.new_account("leaving")
    data = os.urandom(10_000)

    async def scenario():
        c = await logged_in(hearth, jid, pw)
        try:
            return await slot(c, "bye.txt", len(data), "text/plain")
        finally:
            await c.close()

    put_url, get_url = run(scenario())
    assert put(hearth, put_url, data, "text/plain") == 201
    assert files_of(hearth, put_url) == [slot_id(put_url)]
    r = hearth.cli("user", "del", jid.split("@")[0])
    assert r.returncode == 0, r.stderr
    assert request(hearth, "GET", get_url)[0] == 404
    deadline = time.monotonic() + 10
    while files_of(hearth, put_url) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert files_of(hearth, put_url) == [], "the sweep left a deleted account's file"


def test_metrics(hearth):
    conn = http.client.HTTPConnection(hearth.host, hearth.internal_port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    values = {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
              if line.startswith("hearth_upload")}
    assert values["hearth_upload_files_total"] >= 1
    assert values["hearth_upload_bytes_total"] >= 5_000_000
    assert values["hearth_upload_stored_bytes"] > 0


@pytest.fixture
def with_gateway(hearth_server):
    """A server with a gateway (an external component): its users are not this server's."""
    srv, workdir = upload_server(hearth_server.binary, GATEWAY_HOST,
                                 f'[components.hosts."{GATEWAY}"]\nsecret = "{GATEWAY_SECRET}"\n')
    try:
        yield srv
    finally:
        srv.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def test_others_than_this_servers_users_get_no_slot(with_gateway):
    """Addresses from elsewhere (here a gateway's user, as a remote server's would be) are
    refused: the server's storage is for its own users."""
    hearth = with_gateway

    async def scenario():
        gateway = slixmpp.ComponentXMPP(GATEWAY, GATEWAY_SECRET, hearth.host, hearth.component_port)
        started = asyncio.get_event_loop().create_future()
        gateway.add_event_handler("session_start", lambda _: started.done() or started.set_result(True))
        gateway.connect()
        await asyncio.wait_for(started, 15)
        try:
            iq = gateway.Iq(stype="get", sto=f"upload.{hearth.domain}", sfrom=f"someone@{GATEWAY}/x")
            iq.append(ET.fromstring(f"<request xmlns='{NS}' filename='a.txt' size='10' content-type='text/plain'/>"))
            with pytest.raises(IqError) as refused:
                await iq.send(timeout=15)
            # Read from the XML: slixmpp's error interface expects jabber:client, and on a
            # component stream the error element is in the stream's namespace.
            error = next(e for e in refused.value.iq.xml if e.tag.endswith("}error"))
            return [c.tag.split("}")[1] for c in error]
        finally:
            await asyncio.wait_for(gateway.disconnect(wait=2.0), 5)

    assert run(scenario()) == ["forbidden", "text"]


def test_expired_slot_and_expired_file(short):
    data = os.urandom(50_000)
    jid, pw = short.new_account("hurried")

    async def scenario():
        c = await logged_in(short, jid, pw)
        try:
            late = await slot(c, "late.bin", len(data))
            await asyncio.sleep(3.5)
            on_time = await slot(c, "on-time.bin", len(data))
            return late, on_time
        finally:
            await c.close()

    (late_put, _), (put_url, get_url) = run(scenario())
    assert put(short, put_url, data) == 201
    assert put(short, late_put, data) == 403
    assert files_of(short, late_put) == []
    assert request(short, "GET", get_url)[2] == data
    time.sleep(3.5)
    assert request(short, "GET", get_url)[0] == 404
    deadline = time.monotonic() + 10
    while files_of(short, put_url) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert files_of(short, put_url) == []


def test_upload_urls_outlive_a_restart_and_a_damaged_key_stops_the_start(hearth_server):
    """The key signing upload URLs is kept in data_dir (mode 0600): a slot handed out just before
    a restart takes its upload after it. A key file that is not one stops the start, saying
    which file and what to do."""
    srv, workdir = upload_server(hearth_server.binary, RESTART_HOST, "")
    try:
        data = os.urandom(10_000)
        put_url, get_url = get_slot(srv, "across.bin", len(data))
        key_file = srv.dir / "data" / "upload-signing.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        srv.restart()
        assert put(srv, put_url, data) == 201
        assert request(srv, "GET", get_url)[2] == data
        key_file.write_text("not a key\n")
        with pytest.raises(RuntimeError) as refused:
            srv.restart()
        assert f"{key_file} is not an upload signing key" in str(refused.value), refused.value
        assert "delete it" in str(refused.value)
    finally:
        srv.stop()
        shutil.rmtree(workdir, ignore_errors=True)
