"""Multi-User Chat (XEP-0045) with slixmpp's MUC plugin and Gajim's nbxmpp: creating and
configuring a room, entering with history and subject, groupchat, and a nick conflict."""

import pytest
from slixmpp.exceptions import PresenceError
from slixmpp.xmlstream import ET

from test_nbxmpp import Gajim, pump
from test_slixmpp import TIMEOUT, Client, next_item, run

SERVICE = "conference.localhost"


def muc_client(server, jid, pw):
    c = Client(server, jid, pw)
    for plugin in ("xep_0045", "xep_0004"):
        c.register_plugin(plugin)
    return c


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
        c = muc_client(server, a_jid, a_pw)
        c.boundjid.resource = "other"
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
        await muc_a.join_muc_wait(room, "Alice", maxstanzas=0, timeout=TIMEOUT)
        form = await muc_a.get_room_config(room, timeout=TIMEOUT)
        fields = form.get_fields()
        fields["muc#roomconfig_persistentroom"]["value"] = True
        fields["muc#roomconfig_membersonly"]["value"] = True
        fields["muc#roomconfig_moderatedroom"]["value"] = True
        await muc_a.set_room_config(room, form, timeout=TIMEOUT)

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
        reg = b.Iq(stype="set", sto=room)
        query = ET.fromstring(
            "<query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'>"
            "<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field>"
            "<field var='muc#register_roomnick'><value>Bob</value></field></x></query>"
        )
        reg.append(query)
        await reg.send(timeout=TIMEOUT)
        with pytest.raises(PresenceError) as refused:
            c = muc_client(server, a_jid, a_pw)
            c.boundjid.resource = "second"
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
