"""Multi-User Chat (XEP-0045) with slixmpp's MUC plugin and Gajim's nbxmpp: creating and
configuring a room, entering with history and subject, groupchat, a nick conflict, and the
server's administrators as owners of every room."""

import asyncio

import pytest
from slixmpp.exceptions import IqError, PresenceError
from slixmpp.xmlstream import ET

from conftest import serving
from test_nbxmpp import Gajim, pump
from test_slixmpp import TIMEOUT, Client, next_item, run

SERVICE = "conference.localhost"
ROOT, ROOT_PASSWORD = "mucroot", "mucroot-secret-pw"


def muc_client(server, jid, pw, resource="py"):
    c = Client(server, jid, pw, resource=resource)
    for plugin in ("xep_0045", "xep_0004"):
        c.register_plugin(plugin)
    return c


async def create_room(muc, room, nick, fields):
    """Enters `room` as `nick`, creating it, and submits its configuration form with `fields`."""
    await muc.join_muc_wait(room, nick, maxstanzas=0, timeout=TIMEOUT)
    form = await muc.get_room_config(room, timeout=TIMEOUT)
    for var, value in fields.items():
        form.get_fields()[var]["value"] = value
    await muc.set_room_config(room, form, timeout=TIMEOUT)


async def register_nick(client, room, nick):
    """Registers `nick` with `room` (XEP-0045 §7.10), as slixmpp has no call for it."""
    reg = client.Iq(stype="set", sto=room)
    reg.append(ET.fromstring(
        "<query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'>"
        "<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field>"
        f"<field var='muc#register_roomnick'><value>{nick}</value></field></x></query>"
    ))
    await reg.send(timeout=TIMEOUT)


def test_slixmpp_room_lifecycle(server):
    a_jid, a_pw = server.new_account("mucalice")
    b_jid, b_pw = server.new_account("mucbob")
    room = f"team@{SERVICE}"

    async def scenario():
        a = muc_client(server, a_jid, a_pw)
        b = muc_client(server, b_jid, b_pw)
        assert await a.login()
        assert await b.login()
        muc_a, muc_b = a.plugin["xep_0045"], b.plugin["xep_0045"]
        # The service is found by disco, as clients look for it.
        items = await a.plugin["xep_0030"].get_items(jid="localhost", timeout=TIMEOUT)
        assert SERVICE in [str(i[0]) for i in items["disco_items"]["items"]]

        own, _, _, _ = await muc_a.join_muc_wait(room, "Alice", maxstanzas=0, timeout=TIMEOUT)
        codes = {int(s) for s in own["muc"]["status_codes"]}
        assert {110, 201} <= codes
        form = await muc_a.get_room_config(room, timeout=TIMEOUT)
        form.get_fields()["muc#roomconfig_roomname"]["value"] = "The Team"
        await muc_a.set_room_config(room, form, timeout=TIMEOUT)
        info = await a.plugin["xep_0030"].get_info(jid=room, timeout=TIMEOUT)
        assert [i[3] for i in info["disco_info"]["identities"]] == ["The Team"]
        assert "muc_semianonymous" in info["disco_info"]["features"]
        muc_a.set_subject(room, "Welcome")
        a.send_message(mto=room, mbody="first!", mtype="groupchat")
        await next_item(a.messages, lambda m: m["body"] == "first!", "the echo")

        _, subject, occupants, history = await muc_b.join_muc_wait(room, "Bob", timeout=TIMEOUT)
        assert subject["subject"] == "Welcome"
        assert [m["body"] for m in history] == ["first!"]
        assert "Alice" in [p["from"].resource for p in occupants]
        b.send_message(mto=room, mbody="hi all", mtype="groupchat")
        got = await next_item(a.messages, lambda m: m["body"] == "hi all", "bob's message")
        assert got["from"].resource == "Bob"
        assert str(got["from"].bare) == room

        # Nobody else may take Bob's nick.
        c = muc_client(server, a_jid, a_pw, resource="other")
        assert await c.login()
        with pytest.raises(PresenceError) as refused:
            await c.plugin["xep_0045"].join_muc_wait(room, "Bob", timeout=TIMEOUT)
        assert refused.value.condition == "conflict"
        for x in (a, b, c):
            await x.close()

    run(scenario())


def test_nbxmpp_creates_enters_and_talks(server):
    """Gajim's library: one client creates and configures a room, another enters, and they
    exchange groupchat messages."""
    from nbxmpp.namespaces import Namespace
    from nbxmpp.protocol import JID, Iq, Message, Presence

    a_jid, a_pw = server.new_account("gmucalice")
    b_jid, b_pw = server.new_account("gmucbob")
    room = f"lounge@{SERVICE}"
    a = Gajim(server, a_jid, a_pw).login()
    b = Gajim(server, b_jid, b_pw).login()
    for c, nick in ((a, "Alice"), (b, "Bob")):
        join = Presence(to=JID.from_string(f"{room}/{nick}"))
        join.setTag("x", namespace=Namespace.MUC)
        c.send(join)
        pump(
            lambda: any(m.getSubject() is not None for m in c.messages),
            what=f"{nick}'s entry (the subject comes last)",
        )
        if c is a:
            config = Iq(typ="set", to=JID.from_string(room), queryNS=Namespace.MUC_OWNER)
            config.getQuery().setTag("x", namespace=Namespace.DATA, attrs={"type": "submit"})
            c.send(config)
            c.ping()
    a.send(Message(to=JID.from_string(room), typ="groupchat", body="hello bob"))
    got = b.wait_message(lambda m: m.getBody() == "hello bob", "alice's groupchat message")
    assert str(got.getFrom()) == f"{room}/Alice"
    seen = a.wait_presence(
        lambda p: str(p.getFrom()) == f"{room}/Bob", "bob's presence in the room"
    )
    assert seen.getTag("x", namespace=Namespace.MUC_USER) is not None
    a.close()
    b.close()


def test_slixmpp_admin_cases_and_the_room_archive(server):
    """Members-only and moderated rooms, a ban, a reserved nick, and catching up from the
    room's archive after leaving, all with slixmpp's MUC and MAM plugins."""
    a_jid, a_pw = server.new_account("admalice")
    b_jid, b_pw = server.new_account("admbob")
    e_jid, e_pw = server.new_account("admeve")
    room = f"board@{SERVICE}"

    async def scenario():
        a, b, e = (muc_client(server, j, p) for j, p in ((a_jid, a_pw), (b_jid, b_pw), (e_jid, e_pw)))
        for c in (a, b, e):
            c.register_plugin("xep_0313")
            assert await c.login()
        muc_a, muc_b, muc_e = (c.plugin["xep_0045"] for c in (a, b, e))
        await create_room(muc_a, room, "Alice", {
            "muc#roomconfig_persistentroom": True,
            "muc#roomconfig_membersonly": True,
            "muc#roomconfig_moderatedroom": True,
        })

        # Members only: bob gets in once he is a member; eve, banned, never.
        with pytest.raises(PresenceError) as refused:
            await muc_b.join_muc_wait(room, "Bob", timeout=TIMEOUT)
        assert refused.value.condition == "registration-required"
        await muc_a.set_affiliation(room, "member", jid=b_jid, timeout=TIMEOUT)
        await muc_a.set_affiliation(room, "outcast", jid=e_jid, reason="spam", timeout=TIMEOUT)
        outcasts = await muc_a.get_affiliation_list(room, "outcast", timeout=TIMEOUT)
        assert [str(j) for j in outcasts] == [e_jid]
        with pytest.raises(PresenceError) as refused:
            await muc_e.join_muc_wait(room, "Eve", timeout=TIMEOUT)
        assert refused.value.condition == "forbidden"
        await muc_b.join_muc_wait(room, "Bob", maxstanzas=0, timeout=TIMEOUT)

        # Moderated: a visitor may not speak until given voice.
        await muc_a.set_role(room, "Bob", "visitor", timeout=TIMEOUT)
        b.send_message(mto=room, mbody="can I?", mtype="groupchat")
        err = await next_item(b.messages, lambda m: m["type"] == "error", "the refusal")
        assert err["error"]["condition"] == "forbidden"
        await muc_a.set_role(room, "Bob", "participant", timeout=TIMEOUT)
        for i in range(3):
            b.send_message(mto=room, mbody=f"point {i}", mtype="groupchat")
            await next_item(a.messages, lambda m, i=i: m["body"] == f"point {i}", "bob's point")

        # A registered nick is bob's alone.
        iq = b.make_iq_get(queryxmlns="jabber:iq:register", ito=room)
        await iq.send(timeout=TIMEOUT)
        await register_nick(b, room, "Bob")
        with pytest.raises(PresenceError) as refused:
            c = muc_client(server, a_jid, a_pw, resource="second")
            assert await c.login()
            await c.plugin["xep_0045"].join_muc_wait(room, "bob", timeout=TIMEOUT)
        assert refused.value.condition == "conflict"
        await c.close()

        # Bob leaves, and catches up from the room's archive.
        muc_b.leave_muc(room, "Bob")
        bodies = [m["mam_result"]["forwarded"]["stanza"]["body"]
                  async for m in b.plugin["xep_0313"].iterate(jid=room, rsm={"max": 2})]
        assert bodies == ["point 0", "point 1", "point 2"]
        for c in (a, b, e):
            await c.close()

    run(scenario())


def gajim_join(c, room, nick, password=None):
    """Enters a room as Gajim does: presence with the MUC element (and a password if any)."""
    from nbxmpp.namespaces import Namespace
    from nbxmpp.protocol import JID, Presence

    join = Presence(to=JID.from_string(f"{room}/{nick}"))
    x = join.setTag("x", namespace=Namespace.MUC)
    x.setTag("history", attrs={"maxstanzas": "0"})
    if password is not None:
        x.setTagData("password", password)
    c.send(join)


def self_presence(c, room, nick):
    """The properties of `nick`'s own presence (status 110) from `room`."""
    from nbxmpp.const import StatusCode

    return c.wait_presence_props(
        lambda p: p.muc_jid is not None and str(p.muc_jid) == room and p.muc_nickname == nick
        and StatusCode.SELF in (p.muc_status_codes or ()),
        f"{nick}'s own presence from {room}",
    )


def test_nbxmpp_gajim_muc_module_admin_flows(server):
    """Gajim's MUC module end to end: the configuration form, room info, a password room,
    affiliation lists edited by the owner, mediated and direct invitations and a decline, an
    occupant's vCard, a voice request approved, a kick, and destruction with an alternate
    venue."""
    from nbxmpp.const import InviteType, StatusCode
    from nbxmpp.errors import StanzaError
    from nbxmpp.namespaces import Namespace
    from nbxmpp.protocol import JID, Message, Presence

    from test_nbxmpp import finish

    a_jid, a_pw = server.new_account("gadmalice")
    b_jid, b_pw = server.new_account("gadmbob")
    c_jid, c_pw = server.new_account("gadmcarol")
    room = f"council@{SERVICE}"
    room_jid = JID.from_string(room)
    a, b, c = (Gajim(server, j, p).login() for j, p in ((a_jid, a_pw), (b_jid, b_pw), (c_jid, c_pw)))
    muc_a, muc_b, muc_c = (x.client.get_module("MUC") for x in (a, b, c))
    for x in (a, b, c):
        x.send(Presence())  # available, as Gajim is after login

    gajim_join(a, room, "Alice")
    assert StatusCode.CREATED in self_presence(a, room, "Alice").muc_status_codes
    config = finish(muc_a.request_config(room_jid), "the configuration form")
    form = config.form
    form["muc#roomconfig_roomname"].value = "Council"
    form["muc#roomconfig_passwordprotectedroom"].value = True
    form["muc#roomconfig_roomsecret"].value = "s3cret"
    form["muc#roomconfig_moderatedroom"].value = True
    form["muc#roomconfig_allowinvites"].value = True
    finish(muc_a.set_config(room_jid, form), "the configuration saved")
    info = finish(muc_a.request_info(room_jid), "room info").info
    assert info.muc_name == "Council"
    assert "muc_passwordprotected" in info.features and "muc_moderated" in info.features

    # The password room: refused without it, entered with it.
    gajim_join(b, room, "Bob")
    refused = b.wait_presence(lambda p: p.getType() == "error", "the refusal without the password")
    assert refused.getError() == "not-authorized"
    gajim_join(b, room, "Bob", password="s3cret")
    self_presence(b, room, "Bob")

    # The owner edits the admin and owner lists, then makes bob a member.
    finish(muc_a.set_affiliation(room_jid, {JID.from_string(b_jid): {"affiliation": "admin"}}), "bob made admin")
    admins = finish(muc_a.get_affiliation(room_jid, "admin"), "the admin list")
    assert [str(j) for j in admins.users] == [b_jid]
    owners = finish(muc_a.get_affiliation(room_jid, "owner"), "the owner list")
    assert [str(j) for j in owners.users] == [a_jid]
    finish(muc_a.set_affiliation(room_jid, {JID.from_string(b_jid): {"affiliation": "member"}}), "bob made member")
    members = finish(muc_a.get_affiliation(room_jid, "member"), "the member list")
    assert [str(j) for j in members.users] == [b_jid]
    # A member may not edit the lists.
    with pytest.raises(StanzaError) as denied:
        finish(muc_b.set_affiliation(room_jid, {JID.from_string(c_jid): {"affiliation": "member"}}), "refused")
    assert denied.value.condition == "forbidden"

    # Invitations: mediated (carol declines) and direct.
    muc_a.invite(room_jid, JID.from_string(c_jid), "s3cret", reason="join us")
    invite = c.wait_message_props(lambda p: p.muc_invite is not None, "the mediated invitation").muc_invite
    assert invite.type == InviteType.MEDIATED and str(invite.muc) == room
    assert str(invite.from_.bare) == a_jid and invite.password == "s3cret"
    muc_c.decline(room_jid, JID.from_string(a_jid), reason="busy")
    decline = a.wait_message_props(lambda p: p.muc_decline is not None, "the decline").muc_decline
    assert str(decline.from_.bare) == c_jid and decline.reason == "busy"
    muc_a.invite(room_jid, JID.from_string(c_jid), None, reason="really", type_=InviteType.DIRECT)
    direct = c.wait_message_props(
        lambda p: p.muc_invite is not None and p.muc_invite.type == InviteType.DIRECT, "the direct invitation"
    ).muc_invite
    assert str(direct.muc) == room and direct.reason == "really"

    # An occupant's vCard, as Gajim fetches occupants' avatars: the room asks bob's account.
    from nbxmpp.modules.vcard_temp import VCard

    vcards = (b.client.get_module("VCardTemp"), a.client.get_module("VCardTemp"))
    finish(vcards[0].set_vcard(VCard(data={"FN": "Bob the Builder"})), "bob's vCard saved")
    card = finish(vcards[1].request_vcard(JID.from_string(f"{room}/Bob")), "bob's vCard via the room")
    assert card.data.get("FN") == "Bob the Builder"

    # Moderated: bob, made a visitor, asks for voice; alice approves; bob speaks.
    def bobs_role(role):
        return lambda p: p.muc_user is not None and p.muc_nickname == "Bob" and p.muc_user.role.value == role

    seen = len(b.presence_props)
    finish(muc_a.set_role(room_jid, "Bob", "visitor"), "bob made visitor")
    b.wait_presence_props(bobs_role("visitor"), "bob's visitor presence", since=seen)
    seen = len(b.presence_props)
    muc_b.request_voice(room_jid)
    request = a.wait_message_props(lambda p: p.voice_request is not None, "the voice request").voice_request
    assert request.nick == "Bob"
    muc_a.approve_voice_request(room_jid, request)
    b.wait_presence_props(bobs_role("participant"), "bob's voice", since=seen)
    b.send(Message(to=room_jid, typ="groupchat", body="thanks"))
    a.wait_message(lambda m: m.getBody() == "thanks", "bob's message")

    # A kick, with its reason and status 307.
    finish(muc_a.set_role(room_jid, "Bob", "none", reason="enough"), "bob kicked")
    kicked = b.wait_presence_props(
        lambda p: StatusCode.REMOVED_KICKED in (p.muc_status_codes or ()), "bob's kick notice")
    assert kicked.type.is_unavailable

    # Destruction with an alternate venue.
    finish(muc_a.destroy(room_jid, "moving", f"annex@{SERVICE}"), "the room destroyed")
    gone = a.wait_presence_props(lambda p: p.muc_destroyed is not None, "the destruction notice").muc_destroyed
    assert str(gone.alternate) == f"annex@{SERVICE}"
    # nbxmpp looks for the reason next to <destroy/>; XEP-0045 (example 204) puts it inside.
    notice = next(p for p in a.presences if p.getTag("x", namespace=Namespace.MUC_USER) is not None
                  and p.getTag("x", namespace=Namespace.MUC_USER).getTag("destroy") is not None)
    assert notice.getTag("x", namespace=Namespace.MUC_USER).getTag("destroy").getTagData("reason") == "moving"
    with pytest.raises(StanzaError) as missing:
        finish(muc_a.request_config(room_jid), "the config of a destroyed room")
    assert missing.value.condition == "item-not-found"
    for x in (a, b, c):
        x.close()


def test_slixmpp_rooms_survive_a_restart(server):
    """A persistent, password-protected, members-only room with a member, a ban, a registered
    nick, a subject and archived messages; the server restarts; everything is still there and
    still enforced, and bob catches up from history and from the room's archive."""
    a_jid, a_pw = server.new_account("rstalice")
    b_jid, b_pw = server.new_account("rstbob")
    e_jid, e_pw = server.new_account("rsteve")
    c_jid, c_pw = server.new_account("rstcarol")
    room = f"vault@{SERVICE}"
    accounts = {"a": (a_jid, a_pw), "b": (b_jid, b_pw), "e": (e_jid, e_pw), "c": (c_jid, c_pw)}

    async def connect(*who):
        clients = [muc_client(server, *accounts[w]) for w in who]
        for c in clients:
            c.register_plugin("xep_0313")
            assert await c.login()
        return clients

    async def before():
        a, b = await connect("a", "b")
        muc_a, muc_b = a.plugin["xep_0045"], b.plugin["xep_0045"]
        await create_room(muc_a, room, "Alice", {
            "muc#roomconfig_persistentroom": True,
            "muc#roomconfig_membersonly": True,
            "muc#roomconfig_passwordprotectedroom": True,
            "muc#roomconfig_roomsecret": "open sesame",
        })
        await muc_a.set_affiliation(room, "member", jid=b_jid, timeout=TIMEOUT)
        await muc_a.set_affiliation(room, "outcast", jid=e_jid, reason="spam", timeout=TIMEOUT)
        with pytest.raises(PresenceError) as refused:
            await muc_b.join_muc_wait(room, "Bob", timeout=TIMEOUT)
        assert refused.value.condition == "not-authorized"
        await muc_b.join_muc_wait(room, "Bob", password="open sesame", maxstanzas=0, timeout=TIMEOUT)
        await register_nick(b, room, "Bob")
        muc_a.set_subject(room, "Vault rules")
        for sender, body in ((a, "one"), (b, "two"), (a, "three")):
            sender.send_message(mto=room, mbody=body, mtype="groupchat")
            await next_item(a.messages, lambda m, body=body: m["body"] == body, f"'{body}' echoed")
        for c in (a, b):
            await c.close()

    async def after():
        a, b, e, c = await connect("a", "b", "e", "c")
        muc_a, muc_b = a.plugin["xep_0045"], b.plugin["xep_0045"]
        # Bob is still a member: in with the password, with the subject and the history.
        _, subject, _, history = await muc_b.join_muc_wait(
            room, "Bob", password="open sesame", timeout=TIMEOUT)
        assert subject["subject"] == "Vault rules"
        assert [m["body"] for m in history] == ["one", "two", "three"]
        # The ban and members-only still hold; the registered nick is still bob's.
        with pytest.raises(PresenceError) as refused:
            await e.plugin["xep_0045"].join_muc_wait(room, "Eve", password="open sesame", timeout=TIMEOUT)
        assert refused.value.condition == "forbidden"
        with pytest.raises(PresenceError) as refused:
            await c.plugin["xep_0045"].join_muc_wait(room, "Carol", password="open sesame", timeout=TIMEOUT)
        assert refused.value.condition == "registration-required"
        await muc_a.join_muc_wait(room, "Alice", password="open sesame", maxstanzas=0, timeout=TIMEOUT)
        assert [str(j) for j in await muc_a.get_affiliation_list(room, "member", timeout=TIMEOUT)] == [b_jid]
        assert [str(j) for j in await muc_a.get_affiliation_list(room, "outcast", timeout=TIMEOUT)] == [e_jid]
        assert [str(j) for j in await muc_a.get_affiliation_list(room, "owner", timeout=TIMEOUT)] == [a_jid]
        muc_b.leave_muc(room, "Bob")
        impostor = muc_client(server, a_jid, a_pw, resource="impostor")
        assert await impostor.login()
        with pytest.raises(PresenceError) as refused:
            await impostor.plugin["xep_0045"].join_muc_wait(room, "Bob", password="open sesame", timeout=TIMEOUT)
        assert refused.value.condition == "conflict"
        # The room's archive outlived the restart too.
        bodies = [m["mam_result"]["forwarded"]["stanza"]["body"]
                  async for m in b.plugin["xep_0313"].iterate(jid=room)]
        assert bodies == ["one", "two", "three"]
        for x in (a, b, e, c, impostor):
            await x.close()

    run(before())
    server.restart()
    run(after())


def test_slixmpp_nick_change_private_messages_self_ping_and_taking_messages_back(server):
    """History limits on entering, occupant ids that survive a nick change (status 303),
    self-ping (XEP-0410) before and after it, a private message, a retraction by the author
    (XEP-0424) and a moderation (XEP-0425), with slixmpp's plugins."""
    from slixmpp import JID
    from slixmpp.plugins.xep_0410 import PingStatus

    a_jid, a_pw = server.new_account("nkalice")
    b_jid, b_pw = server.new_account("nkbob")
    room = f"agora@{SERVICE}"

    def occupant_id(stanza):
        el = stanza.xml.find("{urn:xmpp:occupant-id:0}occupant-id")
        return None if el is None else el.get("id")

    async def scenario():
        a, b = muc_client(server, a_jid, a_pw), muc_client(server, b_jid, b_pw)
        for c in (a, b):
            for plugin in ("xep_0313", "xep_0359", "xep_0410", "xep_0424", "xep_0425"):
                c.register_plugin(plugin)
            assert await c.login()
        muc_a, muc_b = a.plugin["xep_0045"], b.plugin["xep_0045"]
        # What alice sees of the room's presences (slixmpp's MUC plugin signals them so).
        seen = asyncio.Queue()
        a.add_event_handler(f"muc::{room}::presence", seen.put_nowait)
        moderated = asyncio.Queue()
        b.add_event_handler("moderated_message", moderated.put_nowait)
        await create_room(muc_a, room, "Alice", {"muc#roomconfig_persistentroom": True})
        for body in ("one", "two", "three"):
            a.send_message(mto=room, mbody=body, mtype="groupchat")
            await next_item(a.messages, lambda m, body=body: m["body"] == body, f"'{body}' echoed")

        # History limits: the last stanza only, or as many characters as one message takes.
        _, _, _, history = await muc_b.join_muc_wait(room, "Bob", maxstanzas=1, timeout=TIMEOUT)
        assert [m["body"] for m in history] == ["three"]
        muc_b.leave_muc(room, "Bob")
        await next_item(seen, lambda p: p["from"] == JID(f"{room}/Bob") and p["type"] == "unavailable",
                        "bob leaving")
        _, _, _, history = await muc_b.join_muc_wait(room, "Bob", maxchars=0, timeout=TIMEOUT)
        assert history == []
        entered = await next_item(seen, lambda p: p["from"] == JID(f"{room}/Bob")
                                  and p["type"] != "unavailable", "bob's presence")
        bob_id = occupant_id(entered)
        assert bob_id

        # A nick change: 303 with the new nick, then the new presence with the same occupant id.
        b.send_presence(pto=f"{room}/Robert")
        gone = await next_item(seen, lambda p: p["from"] == JID(f"{room}/Bob")
                               and p["type"] == "unavailable", "bob's old nick going")
        assert 303 in gone["muc"]["status_codes"] and gone["muc"]["item_nick"] == "Robert"
        back = await next_item(seen, lambda p: p["from"] == JID(f"{room}/Robert"), "Robert")
        assert occupant_id(back) == bob_id
        ping = b.plugin["xep_0410"]
        assert await ping.send_self_ping(JID(f"{room}/Robert"), timeout=TIMEOUT) == PingStatus.JOINED
        assert await ping.send_self_ping(JID(f"{room}/Bob"), timeout=TIMEOUT) == PingStatus.JOINED_NICKCHANGED

        # A private message reaches Robert from Alice's occupant JID.
        a.send_message(mto=f"{room}/Robert", mbody="psst", mtype="chat")
        pm = await next_item(b.messages, lambda m: m["body"] == "psst", "the private message")
        assert pm["from"] == JID(f"{room}/Alice")

        # Robert takes his message back; Alice moderates hers away.
        b.send_message(mto=room, mbody="oops", mtype="groupchat")
        oops = await next_item(b.messages, lambda m: m["body"] == "oops", "the echo of 'oops'")
        b.plugin["xep_0424"].send_retraction(JID(room), oops["stanza_id"]["id"], mtype="groupchat")
        retracted = await next_item(a.messages, lambda m: m.xml.find("{urn:xmpp:message-retract:1}retract")
                                    is not None, "the retraction")
        assert retracted["from"] == JID(f"{room}/Robert")
        a.send_message(mto=room, mbody="off topic", mtype="groupchat")
        off = await next_item(a.messages, lambda m: m["body"] == "off topic", "the echo of 'off topic'")
        await a.plugin["xep_0425"].moderate(JID(room), off["stanza_id"]["id"], "tidy", timeout=TIMEOUT)
        notice = await next_item(moderated, what="the moderation notice")
        assert notice["from"] == JID(room) and notice["retract"]["id"] == off["stanza_id"]["id"]
        assert notice["retract"]["moderated"]["by"] == JID(f"{room}/Alice")
        # The archive keeps tombstones in their place.
        bodies = [m["mam_result"]["forwarded"]["stanza"]["body"]
                  async for m in b.plugin["xep_0313"].iterate(jid=room)]
        assert "oops" not in bodies and "off topic" not in bodies and bodies[:3] == ["one", "two", "three"]
        for c in (a, b):
            await c.close()

    run(scenario())


@pytest.fixture(scope="module")
def admin_server():
    """A server of its own whose administrator is mucroot@localhost."""
    with serving(admins=[f"{ROOT}@localhost"]) as srv:
        r = srv.cli("user", "add", "--stdin", stdin=f"{ROOT} {ROOT_PASSWORD}\n")
        assert r.returncode == 0, r.stderr
        yield srv


def test_server_admin_manages_a_room_whose_owner_was_erased(admin_server):
    """A members-only room loses its only owner to account erasure: another user can neither
    enter, configure nor destroy it; the server's administrator enters as its owner,
    configures it without becoming a stored owner, and destroys it."""
    srv = admin_server
    a_jid, a_pw = srv.new_account("orphaner")
    n_jid, n_pw = srv.new_account("bystander")
    root_jid = f"{ROOT}@{srv.domain}"
    room = f"orphan@{SERVICE}"

    async def create():
        a = muc_client(srv, a_jid, a_pw)
        assert await a.login()
        await create_room(a.plugin["xep_0045"], room, "Alice", {
            "muc#roomconfig_persistentroom": True,
            "muc#roomconfig_membersonly": True,
        })
        await a.close()

    async def rescue():
        n, root = muc_client(srv, n_jid, n_pw), muc_client(srv, root_jid, ROOT_PASSWORD)
        for c in (n, root):
            assert await c.login()
        muc_n, muc_root = n.plugin["xep_0045"], root.plugin["xep_0045"]
        with pytest.raises(PresenceError) as refused:
            await muc_n.join_muc_wait(room, "Nosy", timeout=TIMEOUT)
        assert refused.value.condition == "registration-required"
        for attempt in (muc_n.get_room_config, muc_n.destroy):
            with pytest.raises(IqError) as denied:
                await attempt(room, timeout=TIMEOUT)
            assert denied.value.condition == "forbidden"

        own, _, _, _ = await muc_root.join_muc_wait(room, "Root", maxstanzas=0, timeout=TIMEOUT)
        assert (own["muc"]["affiliation"], own["muc"]["role"]) == ("owner", "moderator")
        form = await muc_root.get_room_config(room, timeout=TIMEOUT)
        form.get_fields()["muc#roomconfig_roomname"]["value"] = "Rescued"
        await muc_root.set_room_config(room, form, timeout=TIMEOUT)
        info = await root.plugin["xep_0030"].get_info(jid=room, timeout=TIMEOUT)
        assert [i[3] for i in info["disco_info"]["identities"]] == ["Rescued"]
        # Owner by the server's configuration, not by the room's list.
        assert await muc_root.get_affiliation_list(room, "owner", timeout=TIMEOUT) == []
        await muc_root.destroy(room, reason="its owner is gone", timeout=TIMEOUT)
        with pytest.raises(IqError) as gone:
            await root.plugin["xep_0030"].get_info(jid=room, timeout=TIMEOUT)
        assert gone.value.condition == "item-not-found"
        for c in (n, root):
            await c.close()

    run(create())
    r = srv.cli("user", "delete", a_jid)
    assert r.returncode == 0, r.stderr
    run(rescue())


def test_nobody_bans_kicks_or_demotes_a_server_admin(admin_server):
    """The server's administrator is shown as an owner, and a room's own owner gets
    not-allowed trying to ban, demote or kick them."""
    from slixmpp import JID

    srv = admin_server
    b_jid, b_pw = srv.new_account("roomowner")
    root_jid = f"{ROOT}@{srv.domain}"
    room = f"kingdom@{SERVICE}"

    async def scenario():
        b, root = muc_client(srv, b_jid, b_pw), muc_client(srv, root_jid, ROOT_PASSWORD, resource="watch")
        for c in (b, root):
            assert await c.login()
        muc_b = b.plugin["xep_0045"]
        seen = asyncio.Queue()
        b.add_event_handler(f"muc::{room}::presence", seen.put_nowait)
        await create_room(muc_b, room, "Bob", {})
        await root.plugin["xep_0045"].join_muc_wait(room, "Root", maxstanzas=0, timeout=TIMEOUT)
        shown = await next_item(seen, lambda p: p["from"] == JID(f"{room}/Root"), "root's presence")
        assert (shown["muc"]["affiliation"], shown["muc"]["role"]) == ("owner", "moderator")
        for affiliation in ("outcast", "member", "none"):
            with pytest.raises(IqError) as refused:
                await muc_b.set_affiliation(room, affiliation, jid=root_jid, timeout=TIMEOUT)
            assert refused.value.condition == "not-allowed", affiliation
        with pytest.raises(IqError) as refused:
            await muc_b.set_role(room, "Root", "none", timeout=TIMEOUT)
        assert refused.value.condition == "not-allowed"
        assert await muc_b.get_affiliation_list(room, "outcast", timeout=TIMEOUT) == []
        for c in (b, root):
            await c.close()

    run(scenario())
