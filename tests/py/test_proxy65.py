"""The SOCKS5 bytestream proxy (XEP-0065): slixmpp's own XEP-0065 plugin finds the proxy through
the server's disco items and sends a file through it to another user; by hand, over asyncio
sockets: who may activate a stream, what crosses it before activation, malformed SOCKS5
handshakes, and on a server of their own with small limits, the handshake timeout, the
bandwidth limit and the connection limit."""

import asyncio
import hashlib
import os
import shutil
import tempfile
import time
import uuid

import pytest
from slixmpp.exceptions import IqError
from slixmpp.xmlstream import ET

from conftest import Server
from test_slixmpp import TIMEOUT, Client, run

NS = "http://jabber.org/protocol/bytestreams"
LIMITED_HOST = "127.0.0.53"
TIMEOUT_SECS = 2
BYTES_PER_SECOND = 100_000
MAX_CONNECTIONS = 2


@pytest.fixture(scope="module")
def limited(hearth_server):
    """A server whose proxy closes unactivated connections after TIMEOUT_SECS, relays at most
    BYTES_PER_SECOND each way and takes MAX_CONNECTIONS at once."""
    workdir = tempfile.mkdtemp(prefix="hearth-proxy65-")
    hearth = Server(hearth_server.binary, workdir, host=LIMITED_HOST,
                    proxy65=f"handshake_timeout_secs = {TIMEOUT_SECS}\n"
                            f"max_bytes_per_second = {BYTES_PER_SECOND}\n"
                            f"max_connections = {MAX_CONNECTIONS}\n")
    try:
        yield hearth
    finally:
        hearth.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def proxy_jid(server):
    return f"proxy.{server.domain}"


def dst_addr(sid, requester, target):
    return hashlib.sha1(f"{sid}{requester}{target}".encode()).hexdigest()


async def socks5_connect(server, address):
    """A SOCKS5 connection to the proxy, past the handshake for `address`."""
    reader, writer = await asyncio.open_connection(server.host, server.proxy_port)
    writer.write(b"\x05\x01\x00")
    assert await reader.readexactly(2) == b"\x05\x00"
    name = address.encode()
    writer.write(b"\x05\x01\x00\x03" + bytes([len(name)]) + name + b"\x00\x00")
    assert await reader.readexactly(7 + len(name)) == b"\x05\x00\x00\x03" + bytes([len(name)]) + name + b"\x00\x00"
    return reader, writer


async def quiet(reader, within):
    """Whether nothing arrives (no data, no end) within `within` s."""
    try:
        await asyncio.wait_for(reader.read(100), within)
    except asyncio.TimeoutError:
        return True
    return False


async def closed(reader, within):
    """Whether the proxy closes the connection (after anything it still sends) within `within` s."""
    try:
        while await asyncio.wait_for(reader.read(4096), within):
            pass
        return True
    except asyncio.TimeoutError:
        return False
    except ConnectionResetError:
        return True


async def activate(client, proxy, sid, target):
    """The activation request; None for a result, else the error condition."""
    iq = client.Iq(stype="set", sto=proxy)
    query = ET.Element(f"{{{NS}}}query")
    if sid is not None:
        query.set("sid", sid)
    if target is not None:
        ET.SubElement(query, f"{{{NS}}}activate").text = target
    iq.append(query)
    try:
        await iq.send(timeout=TIMEOUT)
    except IqError as e:
        return e.iq["error"]["condition"]
    return None


async def logged_in(server, *prefixes):
    clients = []
    for prefix in prefixes:
        jid, password = server.new_account(prefix)
        c = Client(server, jid, password)
        c.register_plugin("xep_0065", pconfig={"auto_accept": True})
        assert await c.login()
        clients.append(c)
    return clients


async def close_all(clients):
    for c in clients:
        await c.close()


def test_slixmpp_sends_a_file_through_the_proxy(server):
    """slixmpp's plugin discovers the proxy (disco#items of the server, disco#info and the
    network address of each item), offers it to the target, which connects and answers; the
    requester connects, activates, and sends 1 MB that arrives unchanged."""
    data = os.urandom(1024 * 1024)

    async def scenario():
        sender, receiver = await logged_in(server, "sender", "receiver")
        try:
            received = bytearray()
            ended = asyncio.get_running_loop().create_future()
            receiver.add_event_handler("socks5_data", received.extend)
            receiver.add_event_handler(
                "socks5_closed", lambda _: ended.done() or ended.set_result(True))
            proxies = await sender.plugin["xep_0065"].discover_proxies(timeout=TIMEOUT)
            assert {str(jid): (host, str(port)) for jid, (host, port) in proxies.items()} == {
                proxy_jid(server): (server.host, str(server.proxy_port))}
            sock = await sender.plugin["xep_0065"].handshake(
                receiver.boundjid.full, sid=uuid.uuid4().hex, timeout=TIMEOUT)
            assert sock is not None, "the stream was not set up"
            for i in range(0, len(data), 64 * 1024):
                await sock.write(data[i:i + 64 * 1024])
            sock.transport.close()
            await asyncio.wait_for(ended, TIMEOUT)
            return bytes(received)
        finally:
            await close_all([sender, receiver])

    assert run(scenario()) == data


def test_proxy_disco_and_network_address(server):
    async def scenario():
        (c,) = await logged_in(server, "disco")
        try:
            disco = c.plugin["xep_0030"]
            items = await disco.get_items(jid=server.domain, timeout=TIMEOUT)
            assert proxy_jid(server) in {item[0] for item in items["disco_items"]["items"]}
            info = await disco.get_info(jid=proxy_jid(server), timeout=TIMEOUT)
            assert ("proxy", "bytestreams", None, "SOCKS5 Bytestreams Service") in info["disco_info"]["identities"]
            assert NS in info["disco_info"]["features"]
            items = await disco.get_items(jid=proxy_jid(server), timeout=TIMEOUT)
            assert list(items["disco_items"]["items"]) == []
            address = await c.plugin["xep_0065"].get_network_address(proxy_jid(server), timeout=TIMEOUT)
            host = address["socks"]["streamhost"]
            assert (host["jid"], host["host"], str(host["port"])) == (
                proxy_jid(server), server.host, str(server.proxy_port))
        finally:
            await c.close()

    run(scenario())


def test_only_the_requester_activates_and_nothing_crosses_before(server):
    async def scenario():
        requester, target, intruder = await logged_in(server, "requester", "target", "intruder")
        proxy = proxy_jid(server)
        try:
            sid = uuid.uuid4().hex
            address = dst_addr(sid, requester.boundjid.full, target.boundjid.full)
            target_reader, target_writer = await socks5_connect(server, address)
            # One side only: not allowed yet.
            assert await activate(requester, proxy, sid, target.boundjid.full) == "not-allowed"
            requester_reader, requester_writer = await socks5_connect(server, address)
            target_writer.write(b"sent early")
            assert await quiet(requester_reader, 0.5), "data crossed before activation"
            # Anyone else, or the requester with another sid or target, names no waiting stream.
            assert await activate(intruder, proxy, sid, target.boundjid.full) == "item-not-found"
            assert await activate(target, proxy, sid, target.boundjid.full) == "item-not-found"
            assert await activate(requester, proxy, "other", target.boundjid.full) == "item-not-found"
            assert await activate(requester, proxy, sid, intruder.boundjid.full) == "item-not-found"
            assert await activate(requester, proxy, None, target.boundjid.full) == "bad-request"
            assert await activate(requester, proxy, sid, None) == "bad-request"
            assert await activate(requester, proxy, sid, target.boundjid.full) is None
            # What waited in the socket comes through now, and both ways work.
            assert await asyncio.wait_for(requester_reader.readexactly(10), TIMEOUT) == b"sent early"
            requester_writer.write(b"reply")
            assert await asyncio.wait_for(target_reader.readexactly(5), TIMEOUT) == b"reply"
            # Once activated, the pair is gone.
            assert await activate(requester, proxy, sid, target.boundjid.full) == "item-not-found"
            requester_writer.close()
            assert await closed(target_reader, TIMEOUT)
            target_writer.close()
        finally:
            await close_all([requester, target, intruder])

    run(scenario())


def test_malformed_handshakes_are_closed_and_the_proxy_goes_on(server):
    async def scenario():
        async def answer(request):
            reader, writer = await asyncio.open_connection(server.host, server.proxy_port)
            writer.write(request)
            try:
                got = await asyncio.wait_for(reader.read(100), TIMEOUT)
                assert await closed(reader, TIMEOUT), f"still open after {request!r}"
                return got
            except ConnectionResetError:
                # Closed with the rest of the request unread.
                return None
            finally:
                writer.close()

        assert await answer(b"GET / HTTP/1.1\r\nHost: proxy\r\n\r\n") in (b"", None)
        # Username/password only.
        assert await answer(b"\x05\x01\x02") == b"\x05\xff"
        # CONNECT to an IPv4 address, then to a host name that is no stream address.
        assert await answer(b"\x05\x01\x00\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x50") == \
            b"\x05\x00\x05\x08\x00\x01\x00\x00\x00\x00\x00\x00"
        assert await answer(b"\x05\x01\x00\x05\x01\x00\x03\x0bexample.com\x00\x50") == \
            b"\x05\x00\x05\x02\x00\x01\x00\x00\x00\x00\x00\x00"
        # BIND.
        assert (await answer(b"\x05\x01\x00\x05\x02\x00\x03\x28" + b"0" * 40 + b"\x00\x00"))[2:4] == b"\x05\x07"

        requester, target = await logged_in(server, "after", "garbage")
        try:
            sid = uuid.uuid4().hex
            address = dst_addr(sid, requester.boundjid.full, target.boundjid.full)
            target_reader, target_writer = await socks5_connect(server, address)
            requester_reader, requester_writer = await socks5_connect(server, address)
            assert await activate(requester, proxy_jid(server), sid, target.boundjid.full) is None
            requester_writer.write(b"still works")
            assert await asyncio.wait_for(target_reader.readexactly(11), TIMEOUT) == b"still works"
            for w in (requester_writer, target_writer):
                w.close()
        finally:
            await close_all([requester, target])

    run(scenario())


def test_unactivated_connections_close_after_the_handshake_timeout(limited):
    async def scenario():
        started = time.monotonic()
        waiting, _ = await socks5_connect(limited, "0" * 40)
        silent, _ = await asyncio.open_connection(limited.host, limited.proxy_port)
        assert await quiet(waiting, TIMEOUT_SECS / 2)
        assert await closed(waiting, TIMEOUT_SECS + 3)
        assert await closed(silent, 1)
        assert time.monotonic() - started >= TIMEOUT_SECS - 0.1

    run(scenario())


def test_streams_are_held_to_the_bandwidth_limit(limited):
    """Half a second's worth more than the one-second burst takes at least half a second."""
    size = BYTES_PER_SECOND * 3 // 2
    data = os.urandom(size)

    async def scenario():
        requester, target = await logged_in(limited, "fast", "slow")
        try:
            sid = uuid.uuid4().hex
            address = dst_addr(sid, requester.boundjid.full, target.boundjid.full)
            target_reader, target_writer = await socks5_connect(limited, address)
            requester_reader, requester_writer = await socks5_connect(limited, address)
            assert await activate(requester, proxy_jid(limited), sid, target.boundjid.full) is None
            started = time.monotonic()
            requester_writer.write(data)
            got = await asyncio.wait_for(target_reader.readexactly(size), TIMEOUT)
            elapsed = time.monotonic() - started
            for w in (requester_writer, target_writer):
                w.close()
            return got, elapsed
        finally:
            await close_all([requester, target])

    got, elapsed = run(scenario())
    assert got == data
    assert elapsed >= 0.45, f"{size} bytes took {elapsed:.2f} s at {BYTES_PER_SECOND} bytes/s"


def test_connections_beyond_the_limit_are_refused(limited):
    async def scenario():
        log_start = len(limited.log())
        held = [await asyncio.open_connection(limited.host, limited.proxy_port)
                for _ in range(MAX_CONNECTIONS)]
        reader, _ = await asyncio.open_connection(limited.host, limited.proxy_port)
        assert await closed(reader, TIMEOUT)
        assert "connection limit reached" in limited.log()[log_start:]
        # The held ones time out, and their places are free again.
        for held_reader, _ in held:
            assert await closed(held_reader, TIMEOUT_SECS + 3)
        _, writer = await socks5_connect(limited, "1" * 40)
        writer.close()

    run(scenario())
