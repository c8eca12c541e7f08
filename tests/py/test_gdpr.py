"""Data protection: `hearth user export` gives an account's data as XEP-0227 XML (with hearth's
own data under urn:hearth:export:0, and no password material); `hearth user delete` erases it —
database rows, uploaded files on disk, room affiliations — and ends its sessions; with
`--grace-days` the account is disabled until the running server erases it (the deadline is
moved into the past through the database, the one test-only path); `[retention]` removes what
is older than configured (old rows are made by back-dating timestamps in the database, which
the server's worker then finds at its next check, every second here)."""

import asyncio
import sqlite3
import time
import xml.etree.ElementTree as ET

import pytest

from conftest import serving
from test_admin import can_login
from test_muc import create_room, muc_client, register_nick
from test_slixmpp import TIMEOUT, Client, run
from test_upload import put, slot, slot_id, upload_dir

PIE = "urn:xmpp:pie:0"
HEARTH = "urn:hearth:export:0"
ROOM = "gdprroom@conference.localhost"


@pytest.fixture(scope="module")
def srv():
    with serving(extra="[retention]\ncheck_interval_secs = 1\n"
                       "[modules.upload]\nsweep_interval_secs = 1\n") as s:
        yield s


def db(server):
    return sqlite3.connect(server.dir / "data" / "hearth.sqlite", timeout=30)


def export(server, jid):
    r = server.cli("user", "export", jid)
    assert r.returncode == 0, r.stderr
    return r.stdout


def user_element(xml):
    root = ET.fromstring(xml)
    assert root.tag == f"{{{PIE}}}server-data"
    host = root.find(f"{{{PIE}}}host")
    assert host.get("jid") == "localhost"
    return host.find(f"{{{PIE}}}user")


def wait_for(predicate, what, secs=15):
    deadline = time.monotonic() + secs
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


async def fill(server, a_jid, a_pw, b_jid, b_pw):
    """Gives alice a contact, a vCard, a bookmark in PEP, archived messages, an offline message
    waiting, an uploaded file and a room membership with a registered nickname; returns the
    upload's GET URL."""
    a = muc_client(server, a_jid, a_pw)
    assert await a.login()
    b = Client(server, b_jid, b_pw)
    assert await b.login()
    await a.update_roster(b_jid, name="Bobby", groups=["Friends"], timeout=TIMEOUT)
    vcard = a.Iq(stype="set")
    vcard.append(ET.fromstring("<vCard xmlns='vcard-temp'><FN>Alice Gdpr</FN></vCard>"))
    await vcard.send(timeout=TIMEOUT)
    publish = a.Iq(stype="set")
    publish.append(ET.fromstring(
        "<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:bookmarks:1'>"
        f"<item id='{ROOM}'><conference xmlns='urn:xmpp:bookmarks:1' name='Privacy' autojoin='true'>"
        "<nick>Al</nick></conference></item></publish>"
        "<publish-options><x xmlns='jabber:x:data' type='submit'>"
        "<field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>"
        "<field var='pubsub#persist_items'><value>true</value></field>"
        "<field var='pubsub#access_model'><value>whitelist</value></field></x></publish-options>"
        "</pubsub>"))
    await publish.send(timeout=TIMEOUT)
    a.send_message(mto=b_jid, mbody="archived hello", mtype="chat")
    got = await asyncio.wait_for(b.messages.get(), TIMEOUT)
    assert got["body"] == "archived hello"
    put_url, get_url = await slot(a, "holiday.txt", 5, "text/plain")
    await asyncio.get_running_loop().run_in_executor(None, lambda: put(server, put_url, b"beach", "text/plain"))
    await create_room(a.plugin["xep_0045"], ROOM, "Al", {"muc#roomconfig_persistentroom": True})
    await register_nick(a, ROOM, "Al")
    await a.close()
    b.send_message(mto=a_jid, mbody="waiting for you", mtype="chat")
    await b.ping()
    await b.close()
    return get_url


def test_export_then_delete_leaves_nothing(srv):
    a_jid, a_pw = srv.new_account("gdpralice")
    b_jid, b_pw = srv.new_account("gdprbob")
    get_url = run(fill(srv, a_jid, a_pw, b_jid, b_pw))
    stored = upload_dir(srv) / slot_id(get_url)
    assert stored.read_bytes() == b"beach"

    xml = export(srv, a_jid)
    user = user_element(xml)
    assert user.get("name") == a_jid.split("@")[0]
    item = user.find("{jabber:iq:roster}query/{jabber:iq:roster}item")
    assert (item.get("jid"), item.get("name"), item.find("{jabber:iq:roster}group").text) == (b_jid, "Bobby", "Friends")
    assert user.find("{vcard-temp}vCard/{vcard-temp}FN").text == "Alice Gdpr"
    configured = [c.get("node") for c in user.iter("{http://jabber.org/protocol/pubsub#owner}configure")]
    assert "urn:xmpp:bookmarks:1" in configured
    bookmark = user.find("{http://jabber.org/protocol/pubsub}pubsub/{http://jabber.org/protocol/pubsub}items"
                         "[@node='urn:xmpp:bookmarks:1']/{http://jabber.org/protocol/pubsub}item")
    assert bookmark.get("id") == ROOM
    assert bookmark.find("{urn:xmpp:bookmarks:1}conference").get("name") == "Privacy"
    offline = user.findall(f"{{{PIE}}}offline-messages/{{jabber:client}}message")
    assert [m.find("{jabber:client}body").text for m in offline] == ["waiting for you"]
    archived = user.findall("{urn:xmpp:pie:0#mam}archive/{urn:xmpp:mam:2}result")
    bodies = [r.find("{urn:xmpp:forward:0}forwarded/{jabber:client}message/{jabber:client}body").text for r in archived]
    assert bodies == ["archived hello", "waiting for you"], bodies
    assert all(r.find("{urn:xmpp:forward:0}forwarded/{urn:xmpp:delay}delay").get("stamp") for r in archived)
    ext = user.find(f"{{{HEARTH}}}hearth")
    file = ext.find(f"{{{HEARTH}}}uploads/{{{HEARTH}}}file")
    assert (file.get("url"), file.get("name"), file.get("size"), file.get("type")) == (get_url, "holiday.txt", "5", "text/plain")
    room = ext.find(f"{{{HEARTH}}}rooms/{{{HEARTH}}}room")
    assert (room.get("jid"), room.get("affiliation"), room.get("nick")) == (ROOM, "owner", "Al")
    # No password material, in any form.
    for word in ("stored_key", "server_key", "salt", "scram", "password", "token", "iterations"):
        assert word not in xml.lower().replace("passwords, scram keys and fast tokens are not included", "")
    r = srv.cli("user", "export", a_jid, "--output", str(srv.dir / "export.xml"))
    assert r.returncode == 0 and r.stdout == ""
    assert (srv.dir / "export.xml").read_text() == xml

    async def delete_while_online():
        a = Client(srv, a_jid, a_pw)
        assert await a.login()
        ended = asyncio.get_running_loop().create_future()
        a.add_event_handler("disconnected", lambda _: ended.done() or ended.set_result(True))
        r = await asyncio.get_running_loop().run_in_executor(None, lambda: srv.cli("user", "delete", a_jid))
        assert r.returncode == 0, r.stderr
        assert "erased" in r.stdout and "1 uploaded files" in r.stdout
        await asyncio.wait_for(ended, TIMEOUT)
        return r.stderr

    stderr = run(delete_while_online())
    assert "hearth::audit" in stderr and "console" in stderr and "account erased" in stderr
    assert not stored.exists()
    r = srv.cli("user", "export", a_jid)
    assert r.returncode != 0 and "no such account" in r.stderr
    r = srv.cli("user", "delete", a_jid)
    assert r.returncode != 0 and "no such account" in r.stderr
    assert a_jid not in srv.cli("user", "list").stdout
    name = a_jid.split("@")[0]
    with db(srv) as conn:
        for table in ("roster", "offline", "archive", "vcards", "pubsub_nodes", "uploads", "private_xml",
                      "push_registrations", "blocklist", "fast_tokens"):
            assert conn.execute(f"SELECT count(*) FROM {table} WHERE username = ?", (name,)).fetchone()[0] == 0, table
        assert conn.execute("SELECT count(*) FROM muc_affiliations WHERE jid = ?", (a_jid,)).fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM pending_in WHERE contact = ?", (a_jid,)).fetchone()[0] == 0
    # bob's roster is his own; `del` is still the same command.
    r = srv.cli("user", "del", b_jid)
    assert r.returncode == 0, r.stderr


def test_grace_period_disables_then_cancel_restores_or_the_worker_erases(srv):
    jid, pw = srv.new_account("gdprgrace")
    name = jid.split("@")[0]
    r = srv.cli("user", "delete", jid, "--grace-days", "1")
    assert r.returncode == 0, r.stderr
    assert run(can_login(srv, jid, pw)) == (False, ["account-disabled"])
    user = user_element(export(srv, jid))
    account = user.find(f"{{{HEARTH}}}hearth/{{{HEARTH}}}account")
    assert account.get("disabled") == "true" and account.get("delete-at")
    r = srv.cli("user", "delete", jid, "--cancel")
    assert r.returncode == 0, r.stderr
    assert run(can_login(srv, jid, pw)) == (True, [])
    r = srv.cli("user", "delete", jid, "--cancel")
    assert r.returncode != 0 and "not scheduled" in r.stderr

    assert srv.cli("user", "delete", jid, "--grace-days", "1").returncode == 0
    with db(srv) as conn:
        conn.execute("UPDATE accounts SET delete_at = unixepoch() - 1 WHERE username = ?", (name,))
    wait_for(lambda: jid not in srv.cli("user", "list").stdout, "the worker to erase the account")
    assert "account erased" in srv.log() and "grace period ended" in srv.log()


def test_retention_removes_only_what_is_older():
    with serving(extra="[retention]\narchive_days = 1\noffline_days = 1\nupload_days = 1\n"
                       "check_interval_secs = 1\n[modules.upload]\nsweep_interval_secs = 1\n") as srv:
        a_jid, a_pw = srv.new_account("retalice")
        b_jid, b_pw = srv.new_account("retbob")

        async def scenario():
            a = Client(srv, a_jid, a_pw)
            assert await a.login()
            b = Client(srv, b_jid, b_pw)
            assert await b.login()
            for body in ("old one", "new one"):
                a.send_message(mto=b_jid, mbody=body, mtype="chat")
                await asyncio.wait_for(b.messages.get(), TIMEOUT)
            urls = []
            for name in ("old.txt", "new.txt"):
                put_url, get_url = await slot(a, name, 3, "text/plain")
                await asyncio.get_running_loop().run_in_executor(None, lambda: put(srv, put_url, b"abc", "text/plain"))
                urls.append(get_url)
            await a.close()
            for body in ("old offline", "new offline"):
                b.send_message(mto=a_jid, mbody=body, mtype="chat")
            await b.ping()
            await b.close()
            return urls

        old_url, new_url = run(scenario())
        name = a_jid.split("@")[0]
        two_days_ms = 2 * 86_400_000
        with db(srv) as conn:
            conn.execute("UPDATE archive SET stamp = stamp - ? WHERE username = ? AND body LIKE 'old%'",
                         (two_days_ms, name))
            conn.execute("UPDATE offline SET stamp = stamp - ? WHERE username = ? AND stanza LIKE '%old offline%'",
                         (two_days_ms, name))
            conn.execute("UPDATE uploads SET completed = completed - 172800 WHERE username = ? AND filename = 'old.txt'",
                         (name,))

        def bodies():
            user = user_element(export(srv, a_jid))
            archived = [r.find("{urn:xmpp:forward:0}forwarded/{jabber:client}message/{jabber:client}body").text
                        for r in user.findall("{urn:xmpp:pie:0#mam}archive/{urn:xmpp:mam:2}result")]
            offline = [m.find("{jabber:client}body").text
                       for m in user.findall(f"{{{PIE}}}offline-messages/{{jabber:client}}message")]
            files = [f.get("name") for f in user.iter(f"{{{HEARTH}}}file")]
            return archived, offline, files

        wait_for(lambda: bodies() == (["new one", "new offline"], ["new offline"], ["new.txt"]),
                 "retention to remove the old rows")
        assert not (upload_dir(srv) / slot_id(old_url)).exists()
        assert (upload_dir(srv) / slot_id(new_url)).exists()
        assert "retention.archive_days" in srv.log() and "retention.offline_days" in srv.log()
