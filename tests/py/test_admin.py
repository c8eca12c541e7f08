"""Service administration: ad-hoc commands (XEP-0050) with the XEP-0133 set, driven by
slixmpp's xep_0050 plugin as an administrator's client would (Gajim's "Execute Command…"), and
the same operations from `hearth admin` against the running server's control socket."""

import asyncio
import os
import shutil
import stat
import tempfile

import pytest
from slixmpp.exceptions import IqError

from conftest import Server
from test_slixmpp import TIMEOUT, Client, next_item, run

HOST = "127.0.0.60"
ADMIN_NODE = "http://jabber.org/protocol/admin#"
NS_COMMANDS = "http://jabber.org/protocol/commands"
ADMIN = "boss"
ADMIN_PASSWORD = "boss-secret-pw"


@pytest.fixture(scope="module")
def srv(hearth_server):
    """A server of our own whose administrator is boss@localhost."""
    workdir = tempfile.mkdtemp(prefix="hearth-admin-")
    server = Server(hearth_server.binary, workdir, host=HOST, admins=[f"{ADMIN}@localhost"])
    r = server.cli("user", "add", "--stdin", stdin=f"{ADMIN} {ADMIN_PASSWORD}\n")
    assert r.returncode == 0, r.stderr
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def client(srv, jid, password, **kw):
    c = Client(srv, jid, password, **kw)
    c.register_plugin("xep_0004")
    c.register_plugin("xep_0050")
    c.gone = asyncio.Event()
    c.add_event_handler("disconnected", lambda _: c.gone.set())
    return c


async def admin_client(srv):
    c = client(srv, f"{ADMIN}@{srv.domain}", ADMIN_PASSWORD, resource="admin")
    assert await c.login()
    return c


async def command(c, name, action="execute", sessionid=None, fields=None):
    """Sends one stage of the command `name` (under the admin node, unless a full node);
    `fields` make a submitted form. Returns the <command/> of the answer."""
    node = name if "#" in name else ADMIN_NODE + name
    payload = None
    if fields is not None:
        payload = c.plugin["xep_0004"].make_form(ftype="submit")
        for var, value in fields.items():
            payload.add_field(var=var, value=value)
    result = await c.plugin["xep_0050"].send_command(
        c.hearth.domain, node, action=action, sessionid=sessionid, payload=payload,
        timeout=TIMEOUT)
    return result["command"]


async def run_command(c, name, fields=None):
    """Executes a command and, if it asks for a form, completes it with `fields`. Returns the
    final <command/>."""
    first = await command(c, name)
    if first["status"] == "completed":
        return first
    assert first["status"] == "executing"
    return await command(c, name, action="complete", sessionid=first["sessionid"],
                         fields=fields or {})


def notes(cmd):
    return [(n.get("type", "info"), n.text) for n in cmd.xml.findall(f"{{{NS_COMMANDS}}}note")]


def result_values(cmd, var):
    form = cmd.xml.find("{jabber:x:data}x")
    for field in form.findall("{jabber:x:data}field"):
        if field.get("var") == var:
            return [v.text or "" for v in field.findall("{jabber:x:data}value")]
    raise AssertionError(f"no field {var} in {cmd}")


async def can_login(srv, jid, password):
    """(logged in?, SASL failure conditions)."""
    c = client(srv, jid, password, mech="SCRAM-SHA-256")
    ok = await c.login(presence=False, roster=False)
    conditions = [f["condition"] for f in c.auth_failures]
    if ok:
        await c.close()
    else:
        c.abort()
    return ok, conditions


def test_admin_lists_commands_and_others_are_refused(srv):
    jid, pw = srv.new_account("plain")

    async def scenario():
        admin = await admin_client(srv)
        user = client(srv, jid, pw)
        assert await user.login()
        try:
            items = await admin.plugin["xep_0050"].get_commands(srv.domain, timeout=TIMEOUT)
            nodes = {i[1] for i in items["disco_items"]["items"]}
            for name in ("add-user", "delete-user", "disable-user", "change-user-password",
                         "get-online-users-num", "get-online-users-list", "announce",
                         "set-motd", "edit-motd", "delete-motd", "end-user-session"):
                assert ADMIN_NODE + name in nodes
            info = await admin.plugin["xep_0030"].get_info(
                jid=srv.domain, node=ADMIN_NODE + "announce", timeout=TIMEOUT)
            assert ("automation", "command-node") in {
                (i[0], i[1]) for i in info["disco_info"]["identities"]}
            assert NS_COMMANDS in info["disco_info"]["features"]

            # Users see only the command every user may run (modules.invite.allow_users).
            items = await user.plugin["xep_0050"].get_commands(srv.domain, timeout=TIMEOUT)
            assert {i[1] for i in items["disco_items"]["items"]} == {"urn:xmpp:invite#invite"}
            with pytest.raises(IqError) as refused:
                await command(user, "add-user")
            assert refused.value.iq["error"]["condition"] == "forbidden"
            with pytest.raises(IqError) as refused:
                await user.plugin["xep_0030"].get_info(
                    jid=srv.domain, node=ADMIN_NODE + "announce", timeout=TIMEOUT)
            assert refused.value.iq["error"]["condition"] == "forbidden"
        finally:
            await user.close()
            await admin.close()

    run(scenario())
    assert "command refused: not an administrator" in srv.log()


def test_add_user_change_password_delete(srv):
    name = srv.unique_name("added")
    jid = f"{name}@{srv.domain}"

    async def scenario():
        admin = await admin_client(srv)
        try:
            form = await command(admin, "add-user")
            assert form["status"] == "executing" and form["sessionid"]
            assert set(form["form"].get_fields()) >= {"accountjid", "password", "password-verify"}
            done = await command(admin, "add-user", action="complete", sessionid=form["sessionid"],
                                 fields={"accountjid": jid, "password": "first-pw",
                                         "password-verify": "first-pw"})
            assert done["status"] == "completed", done
            assert notes(done)[0][0] == "info"
            assert await can_login(srv, jid, "first-pw") == (True, [])

            again = await run_command(admin, "add-user", {
                "accountjid": jid, "password": "x", "password-verify": "x"})
            assert notes(again)[0][0] == "error" and "exists" in notes(again)[0][1]
            differ = await run_command(admin, "add-user", {
                "accountjid": srv.unique_name("other") + "@localhost", "password": "a",
                "password-verify": "b"})
            assert notes(differ)[0][0] == "error"

            changed = await run_command(admin, "change-user-password",
                                        {"accountjid": jid, "password": "second-pw"})
            assert notes(changed)[0][0] == "info", notes(changed)
            assert (await can_login(srv, jid, "first-pw"))[0] is False
            assert await can_login(srv, jid, "second-pw") == (True, [])

            user = client(srv, jid, "second-pw")
            assert await user.login()
            deleted = await run_command(admin, "delete-user", {"accountjids": [jid]})
            assert notes(deleted)[0][0] == "info", notes(deleted)
            await asyncio.wait_for(user.gone.wait(), TIMEOUT)
            assert (await can_login(srv, jid, "second-pw"))[1] == ["not-authorized"]
        finally:
            await admin.close()

    run(scenario())
    assert jid not in srv.cli("user", "list").stdout
    log = srv.log()
    assert f"account={jid}" in log and "account deleted" in log
    assert "first-pw" not in log and "second-pw" not in log, "passwords must never be logged"


def test_disable_user_ends_sessions_and_refuses_login(srv):
    jid, pw = srv.new_account("banned")

    async def scenario():
        admin = await admin_client(srv)
        user = client(srv, jid, pw)
        assert await user.login()
        try:
            disabled = await run_command(admin, "disable-user", {"accountjids": [jid]})
            assert notes(disabled)[0][0] == "info", notes(disabled)
            await asyncio.wait_for(user.gone.wait(), TIMEOUT)
            assert await can_login(srv, jid, pw) == (False, ["account-disabled"])
            enabled = await run_command(admin, "reenable-user", {"accountjids": [jid]})
            assert notes(enabled)[0][0] == "info"
            assert await can_login(srv, jid, pw) == (True, [])
        finally:
            await admin.close()

    run(scenario())


def test_online_users_and_announcement(srv):
    (a, pa), (b, pb) = srv.new_account("online"), srv.new_account("online")

    async def scenario():
        admin = await admin_client(srv)
        ca, cb = client(srv, a, pa), client(srv, b, pb)
        assert await ca.login() and await cb.login()
        try:
            num = await run_command(admin, "get-online-users-num")
            assert int(result_values(num, "onlineusersnum")[0]) >= 3
            listed = await run_command(admin, "get-online-users-list", {"max_items": "none"})
            online = result_values(listed, "onlineuserjids")
            assert {a, b, f"{ADMIN}@localhost"} <= set(online)
            one = await run_command(admin, "get-online-users-list", {"max_items": "1"})
            assert len(result_values(one, "onlineuserjids")) == 1

            sent = await run_command(admin, "announce",
                                     {"announcement": ["Maintenance at 10:00", "Back soon"]})
            assert notes(sent)[0][0] == "info"
            for c in (ca, cb):
                msg = await next_item(c.messages, lambda m: m["from"] == srv.domain,
                                      "the announcement")
                assert msg["body"] == "Maintenance at 10:00\nBack soon"
        finally:
            for c in (ca, cb, admin):
                await c.close()

    run(scenario())


def test_message_of_the_day(srv):
    jid, pw = srv.new_account("reader")
    online_jid, online_pw = srv.new_account("reader")
    motd = "Welcome back! The server moved."

    async def scenario():
        admin = await admin_client(srv)
        online = client(srv, online_jid, online_pw)
        assert await online.login()
        try:
            await run_command(admin, "set-motd", {"motd": motd})
            msg = await next_item(online.messages, lambda m: m["from"] == srv.domain, "the MOTD")
            assert msg["body"] == motd

            later = client(srv, jid, pw)
            assert await later.login()
            msg = await next_item(later.messages, lambda m: m["from"] == srv.domain,
                                  "the MOTD at login")
            assert msg["body"] == motd
            await later.close()

            edit = await command(admin, "edit-motd")
            assert edit["form"].get_fields()["motd"]["value"] == [motd]
            await command(admin, "edit-motd", action="cancel", sessionid=edit["sessionid"])
            deleted = await run_command(admin, "delete-motd")
            assert "Deleted" in notes(deleted)[0][1]
        finally:
            await online.close()
            await admin.close()

    run(scenario())


def test_stages_cancel_and_command_errors(srv):
    async def scenario():
        admin = await admin_client(srv)
        try:
            started = await command(admin, "announce")
            sid = started["sessionid"]
            actions = started.xml.find(f"{{{NS_COMMANDS}}}actions")
            assert actions.get("execute") == "complete"
            with pytest.raises(IqError) as e:
                await command(admin, "announce", action="next", sessionid=sid)
            assert e.value.iq["error"]["condition"] == "bad-request"
            assert e.value.iq.xml.find(f".//{{{NS_COMMANDS}}}bad-action") is not None
            # The refused action left the command running: it can still be canceled.
            canceled = await command(admin, "announce", action="cancel", sessionid=sid)
            assert canceled["status"] == "canceled"
            with pytest.raises(IqError) as e:
                await command(admin, "announce", action="complete", sessionid=sid,
                              fields={"announcement": "too late"})
            assert e.value.iq.xml.find(f".//{{{NS_COMMANDS}}}bad-sessionid") is not None
            with pytest.raises(IqError) as e:
                await command(admin, "announce", action="jump")
            assert e.value.iq.xml.find(f".//{{{NS_COMMANDS}}}malformed-action") is not None
            with pytest.raises(IqError) as e:
                await command(admin, "no-such-command")
            assert e.value.iq["error"]["condition"] == "item-not-found"
            # A required field left empty is the XEP-0050 bad-payload.
            started = await command(admin, "announce")
            with pytest.raises(IqError) as e:
                await command(admin, "announce", action="complete",
                              sessionid=started["sessionid"], fields={})
            assert e.value.iq.xml.find(f".//{{{NS_COMMANDS}}}bad-payload") is not None
        finally:
            await admin.close()

    run(scenario())


def test_cli_against_the_running_server(srv):
    jid, pw = srv.new_account("console")
    sock = os.path.join(srv.dir, "data", "control.sock")
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600

    async def scenario():
        user = client(srv, jid, pw)
        assert await user.login()
        try:
            online = await asyncio.to_thread(srv.cli, "admin", "online")
            assert online.returncode == 0, online.stderr
            assert jid in online.stdout.splitlines()

            said = await asyncio.to_thread(srv.cli, "admin", "announce", "From the console")
            assert said.returncode == 0, said.stderr
            await next_item(user.messages, lambda m: m["body"] == "From the console",
                            "the console's announcement")

            listed = await asyncio.to_thread(srv.cli, "admin", "commands")
            assert ADMIN_NODE + "announce" in listed.stdout

            kicked = await asyncio.to_thread(srv.cli, "admin", "kick", jid.split("@")[0])
            assert kicked.returncode == 0, kicked.stderr
            await asyncio.wait_for(user.gone.wait(), TIMEOUT)

            missing = await asyncio.to_thread(srv.cli, "admin", "disable", "nobody-here")
            assert missing.returncode == 1 and "no such account" in missing.stderr
        finally:
            await user.close()

    run(scenario())
    assert "control socket (uid" in srv.log(), "the audit log names the console"
