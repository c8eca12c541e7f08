//! Occupants and what they say: entering, presence changes, nick changes and leaving
//! (XEP-0045 §7.1–7.6, §7.14), groupchat and private messages and the subject (§7.4, §7.5,
//! §8.1), and history on entering (§7.2.13–15).

use hearth_core::datetime;
use hearth_core::jid::Jid;
use hearth_core::router::Context;
use hearth_core::stanza::{Condition, Kind, Stanza, StanzaError, ncname};
use minidom::Element;

use super::room::{self, HistoryEntry, NS_OCCUPANT_ID, NS_USER, Occupant, Role, Room, Whois};
use super::{Muc, NS_MUC};

const NS_DELAY: &str = "urn:xmpp:delay";
const NS_SID: &str = "urn:xmpp:sid:0";

/// Status codes (XEP-0045 §15.6).
const SELF: u16 = 110;
const NON_ANONYMOUS: u16 = 100;
const CREATED: u16 = 201;
const RENAMED: u16 = 210;
const NEW_NICK: u16 = 303;

impl Muc {
    pub(super) async fn presence(
        &self,
        cx: &Context,
        to: &Jid,
        st: &Stanza,
    ) -> Result<(), StanzaError> {
        let from = st
            .from()
            .ok_or_else(|| StanzaError::new(Condition::BadRequest))?;
        let Some(raw) = to.resource() else {
            return Err(StanzaError::new(Condition::JidMalformed)
                .with_text("enter a room as room@service/nickname"));
        };
        let nick = room::enforce_nick(raw).ok_or_else(|| {
            StanzaError::new(Condition::JidMalformed).with_text(
                "that nickname has invisible, control or direction characters, or none at all",
            )
        })?;
        let renamed = nick != raw;
        let nick = nick.as_str();
        let node = to.node().unwrap_or_default();
        let leaving = matches!(st.type_attr(), Some("unavailable" | "error"));
        if st.type_attr().is_some() && !leaving {
            // Subscriptions to occupants mean nothing.
            return Ok(());
        }
        if leaving {
            if let Some(mut room) = self.locked_room(cx, node).await? {
                leave(cx, &mut room, from, st).await;
                self.release(&mut room);
            }
            return Ok(());
        }
        // Only a presence with the MUC element creates a room; a presence update to a room
        // that is not there (it may have gone away) is answered with item-not-found.
        let creator = st
            .element()
            .get_child("x", NS_MUC)
            .is_some()
            .then_some((to, from));
        let (mut room, created) = self
            .locked_or_created(cx, node, creator)
            .await?
            .ok_or_else(super::not_found)?;
        let current = room.occupant_of(from).map(|o| o.nick.clone());
        let done = match current {
            Some(old) if old == nick => {
                update(cx, &mut room, from, st).await;
                Ok(())
            }
            Some(old) => change_nick(cx, &mut room, from, &old, nick, st).await,
            None => enter(cx, &mut room, from, nick, st, created, renamed).await,
        };
        self.release(&mut room);
        done
    }

    pub(super) async fn message(
        &self,
        cx: &Context,
        to: &Jid,
        st: Stanza,
    ) -> Result<(), StanzaError> {
        let from = st
            .from()
            .cloned()
            .ok_or_else(|| StanzaError::new(Condition::BadRequest))?;
        let node = to.node().unwrap_or_default();
        if st.type_attr() == Some("error") {
            return Ok(());
        }
        let mut room = self
            .locked_room(cx, node)
            .await?
            .ok_or_else(super::not_found)?;
        let done = self.message_in(cx, &mut room, to, &from, st).await;
        self.release(&mut room);
        done
    }

    /// A message to the room or one of its occupants, the room locked.
    async fn message_in(
        &self,
        cx: &Context,
        room: &mut Room,
        to: &Jid,
        from: &Jid,
        st: Stanza,
    ) -> Result<(), StanzaError> {
        if to.resource().is_none() && st.stanza_type() != "groupchat" {
            return self.room_message(cx, room, from, &st).await;
        }
        let sender = room.occupant_of(from).cloned().ok_or_else(|| {
            StanzaError::new(Condition::NotAcceptable).with_text("enter the room first")
        })?;
        self.within_limits(room, from)?;
        match (st.stanza_type(), to.resource()) {
            ("groupchat", None) => {
                let subject = room.subject.clone();
                groupchat(cx, room, &sender, st).await?;
                if room.subject != subject {
                    self.save(cx, room, true).await?;
                }
                Ok(())
            }
            ("groupchat", Some(_)) => Err(StanzaError::new(Condition::BadRequest)
                .with_text("groupchat messages go to the room, not to an occupant")),
            (_, nick) => private(cx, room, &sender, nick.unwrap_or_default(), st).await,
        }
    }
}

async fn enter(
    cx: &Context,
    room: &mut Room,
    from: &Jid,
    nick: &str,
    st: &Stanza,
    created: bool,
    renamed: bool,
) -> Result<(), StanzaError> {
    let muc_x = st.element().get_child("x", NS_MUC);
    let password = muc_x
        .and_then(|x| x.get_child("password", NS_MUC))
        .map(Element::text);
    let bare = from.to_bare();
    room.may_enter(&bare, nick, password.as_deref())?;
    let role = room.default_role(room.affiliation(&bare));
    let presence = occupant_presence(room, &bare, st);
    // The occupants already there, to the newcomer (§7.2.3).
    let sees_jids = room.shows_jids_to(role);
    for other in room.occupants.values().filter(|o| o.nick != nick) {
        for (real, p) in &other.sessions {
            let jid = sees_jids.then_some(real);
            let mut p = p.clone();
            p.append_child(room.user_x(other, jid, &[]));
            send(cx, p, &occupant_jid(room, &other.nick), from).await;
        }
    }
    match room.occupants.get_mut(nick) {
        Some(o) => o.sessions.push((from.clone(), presence)),
        None => room.occupants.insert(Occupant {
            nick: nick.to_string(),
            bare,
            sessions: vec![(from.clone(), presence)],
            role,
        }),
    }
    let mut codes = vec![];
    if renamed {
        codes.push(RENAMED);
    }
    if room.config.whois == Whois::Anyone {
        codes.push(NON_ANONYMOUS);
    }
    if created {
        codes.push(CREATED);
    }
    broadcast_presence(cx, room, nick, from, &codes).await;
    send_history(cx, room, from, muc_x).await;
    // The subject always comes last, empty if none was set (§7.2.15).
    let (setter, text) = room.subject.clone().unwrap_or_default();
    let subject_from = if setter.is_empty() {
        room.jid.clone()
    } else {
        occupant_jid(room, &setter)
    };
    let subject = Element::builder("message", hearth_core::ns::CLIENT)
        .attr(ncname("type"), "groupchat")
        .append(
            Element::builder("subject", hearth_core::ns::CLIENT)
                .append(text)
                .build(),
        )
        .build();
    send(cx, subject, &subject_from, from).await;
    tracing::debug!(room = %room.jid, nick, created, "occupant entered");
    Ok(())
}

/// A new presence (status, show) from a session already in the room.
async fn update(cx: &Context, room: &mut Room, from: &Jid, st: &Stanza) {
    let presence = occupant_presence(room, &from.to_bare(), st);
    let Some(nick) = room.occupant_of(from).map(|o| o.nick.clone()) else {
        return;
    };
    if let Some(o) = room.occupants.get_mut(&nick)
        && let Some(slot) = o.sessions.iter_mut().find(|(j, _)| j == from)
    {
        slot.1 = presence;
    }
    broadcast_presence(cx, room, &nick, from, &[]).await;
}

/// §7.6: unavailable under the old nick with 303 and the new nick, then available under the
/// new one.
async fn change_nick(
    cx: &Context,
    room: &mut Room,
    from: &Jid,
    old: &str,
    new: &str,
    st: &Stanza,
) -> Result<(), StanzaError> {
    let bare = from.to_bare();
    room.may_take_nick(&bare, new)?;
    let Some(mut occupant) = room.occupants.remove(old) else {
        return Ok(());
    };
    for (session, _) in &occupant.sessions {
        let mut gone = Element::builder("presence", hearth_core::ns::CLIENT)
            .attr(ncname("type"), "unavailable")
            .append(room.occupant_id(&occupant.bare))
            .build();
        let mut x = room.user_x(&occupant, None, &[NEW_NICK]);
        if let Some(item) = x.get_child_mut("item", NS_USER) {
            hearth_core::stanza::set_attr(item, "nick", Some(new.to_string()));
        }
        gone.append_child(x);
        for recipient in room.occupants.values().chain(std::iter::once(&occupant)) {
            for (to, _) in &recipient.sessions {
                let mut p = gone.clone();
                if to == session {
                    add_status(&mut p, SELF);
                }
                if room.shows_jids_to(recipient.role) || to == session {
                    set_item_jid(&mut p, session);
                }
                send(cx, p, &occupant_jid(room, old), to).await;
            }
        }
    }
    occupant.nick = new.to_string();
    let presence = occupant_presence(room, &bare, st);
    if let Some(slot) = occupant.sessions.iter_mut().find(|(j, _)| j == from) {
        slot.1 = presence;
    }
    room.occupants.insert(occupant);
    broadcast_presence(cx, room, new, from, &[]).await;
    Ok(())
}

/// A session leaves; the occupant goes when its last session does.
async fn leave(cx: &Context, room: &mut Room, from: &Jid, st: &Stanza) {
    let Some(nick) = room.occupant_of(from).map(|o| o.nick.clone()) else {
        return;
    };
    let occupant_jid = occupant_jid(room, &nick);
    let mut gone = occupant_presence(room, &from.to_bare(), st);
    hearth_core::stanza::set_attr(&mut gone, "type", Some("unavailable".into()));
    let Some(occupant) = room.occupants.get_mut(&nick) else {
        return;
    };
    occupant.sessions.retain(|(j, _)| j != from);
    let mut left = occupant.clone();
    left.role = Role::None;
    if !occupant.sessions.is_empty() {
        // Other sessions stay under the nick: only this one is told it left.
        let mut p = gone;
        p.append_child(room.user_x(&left, Some(from), &[SELF]));
        send(cx, p, &occupant_jid, from).await;
        return;
    }
    room.occupants.remove(&nick);
    let mut own = gone.clone();
    own.append_child(room.user_x(&left, Some(from), &[SELF]));
    send(cx, own, &occupant_jid, from).await;
    for recipient in room.occupants.values() {
        let jid = room.shows_jids_to(recipient.role).then_some(from);
        for (to, _) in &recipient.sessions {
            let mut p = gone.clone();
            p.append_child(room.user_x(&left, jid, &[]));
            send(cx, p, &occupant_jid, to).await;
        }
    }
    tracing::debug!(room = %room.jid, nick, "occupant left");
}

/// Removes an occupant the room sends away (kick 307, ban 301, membership lost 321): all its
/// sessions and every other occupant are told, with the reason.
pub(super) async fn remove_occupant(
    cx: &Context,
    room: &mut Room,
    nick: &str,
    codes: &[u16],
    reason: Option<&str>,
) {
    let Some(mut occupant) = room.occupants.remove(nick) else {
        return;
    };
    occupant.role = Role::None;
    let from = occupant_jid(room, nick);
    let real = occupant.sessions.first().map(|(j, _)| j.clone());
    let presence = |jid: Option<&Jid>, codes: &[u16]| {
        let mut x = room.user_x(&occupant, jid, codes);
        if let (Some(reason), Some(item)) = (reason, x.get_child_mut("item", NS_USER)) {
            item.append_child(Element::builder("reason", NS_USER).append(reason).build());
        }
        Element::builder("presence", hearth_core::ns::CLIENT)
            .attr(ncname("type"), "unavailable")
            .append(room.occupant_id(&occupant.bare))
            .append(x)
            .build()
    };
    let mut own_codes = codes.to_vec();
    own_codes.push(SELF);
    for (session, _) in &occupant.sessions {
        send(cx, presence(Some(session), &own_codes), &from, session).await;
    }
    for recipient in room.occupants.values() {
        let jid = real.as_ref().filter(|_| room.shows_jids_to(recipient.role));
        for (to, _) in &recipient.sessions {
            send(cx, presence(jid, codes), &from, to).await;
        }
    }
    tracing::debug!(room = %room.jid, nick, ?codes, "occupant removed");
}

async fn groupchat(
    cx: &Context,
    room: &mut Room,
    sender: &Occupant,
    st: Stanza,
) -> Result<(), StanzaError> {
    if sender.role < Role::Participant {
        return Err(StanzaError::new(Condition::Forbidden)
            .with_text("visitors may not speak in this moderated room"));
    }
    let el = st.element();
    let subject = el.get_child("subject", hearth_core::ns::CLIENT);
    let body = el.get_child("body", hearth_core::ns::CLIENT);
    if let (Some(subject), None) = (subject, body) {
        if sender.role != Role::Moderator && !room.config.change_subject {
            return Err(StanzaError::new(Condition::Forbidden)
                .with_text("only moderators may change the subject"));
        }
        room.subject = Some((sender.nick.clone(), subject.text()));
    }
    if let Some(retract) = el.get_child("retract", super::moderate::NS_RETRACT) {
        super::moderate::retract_own(cx, room, sender, retract).await?;
    }
    let from = occupant_jid(room, &sender.nick);
    let mut message = stamped(room, sender, el.clone());
    hearth_core::stanza::set_attr(&mut message, "from", Some(from.to_string()));
    let stamp = datetime::now_millis();
    if body.is_some() && room.config.persistent {
        // The room's archive (XEP-0313) has it before anyone sees it, with the id clients
        // will page by (XEP-0359).
        archive(
            cx,
            room,
            &from,
            &mut message,
            body.map(Element::text),
            stamp,
        )
        .await?;
    }
    let sessions = room.occupants.values().flat_map(|o| &o.sessions);
    send_each(cx, message.clone(), &from, sessions.map(|(to, _)| to)).await;
    if body.is_some() {
        let real = sender.sessions.first().map(|(j, _)| j.clone());
        room.remember(HistoryEntry {
            message,
            stamp,
            sender: real,
        });
    }
    Ok(())
}

/// Archives `message` in the room's archive and stamps it with its archive id.
async fn archive(
    cx: &Context,
    room: &Room,
    from: &Jid,
    message: &mut Element,
    body: Option<String>,
    stamp: i64,
) -> Result<(), StanzaError> {
    let id = crate::mam::new_id();
    message.append_child(
        Element::builder("stanza-id", NS_SID)
            .attr(ncname("by"), room.jid.to_string())
            .attr(ncname("id"), id.as_str())
            .build(),
    );
    // Self-contained XML, as the archive keeps it (read back with `from_storage_xml`).
    let mut stored = Vec::new();
    hearth_xml::write_element(message, "", &mut stored);
    let stored = String::from_utf8_lossy(&stored).into_owned();
    let entry = hearth_store::NewArchived {
        stanza_id: id,
        stamp,
        with_bare: room.jid.to_string(),
        with_resource: from.resource().map(str::to_string),
        outgoing: false,
        body,
        stanza_xml: stored,
    };
    match cx
        .store()
        .archive_append(&room.jid.to_string(), entry)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::error!(error = %e, room = %room.jid, "cannot archive a room message; it is not sent");
            Err(StanzaError::new(Condition::InternalServerError)
                .with_text("the room could not store the message; try again"))
        }
    }
}

/// §7.5: a private message to one occupant, from the sender's occupant JID.
async fn private(
    cx: &Context,
    room: &Room,
    sender: &Occupant,
    nick: &str,
    st: Stanza,
) -> Result<(), StanzaError> {
    if !room.config.allow_pm.allows(sender.role) {
        return Err(StanzaError::new(Condition::NotAcceptable)
            .with_text("private messages are not allowed in this room"));
    }
    let target = room.occupants.get(nick).ok_or_else(|| {
        StanzaError::new(Condition::ItemNotFound).with_text("no one by that nickname is here")
    })?;
    let mut message = stamped(room, sender, st.into_element());
    if message.get_child("x", NS_USER).is_none() {
        message.append_child(Element::bare("x", NS_USER));
    }
    let from = occupant_jid(room, &sender.nick);
    send_each(cx, message, &from, target.sessions.iter().map(|(to, _)| to)).await;
    Ok(())
}

/// Sends `nick`'s presence from `session` to every occupant: with status 110 to the
/// occupant's own sessions, and the real JID to those who may see it.
pub(super) async fn broadcast_presence(
    cx: &Context,
    room: &Room,
    nick: &str,
    session: &Jid,
    codes: &[u16],
) {
    let Some(occupant) = room.occupants.get(nick) else {
        return;
    };
    let Some((_, presence)) = occupant.sessions.iter().find(|(j, _)| j == session) else {
        return;
    };
    let from = occupant_jid(room, nick);
    for recipient in room.occupants.values() {
        let own = recipient.nick == nick;
        let jid = (own || room.shows_jids_to(recipient.role)).then_some(session);
        for (to, _) in &recipient.sessions {
            let mut p = presence.clone();
            let mut x = room.user_x(occupant, jid, if own { codes } else { &[] });
            if own {
                let status = Element::builder("status", NS_USER)
                    .attr(ncname("code"), SELF.to_string())
                    .build();
                x.append_child(status);
            }
            p.append_child(x);
            send(cx, p, &from, to).await;
        }
    }
}

/// History for a newcomer, within the limits its `<history/>` asks for (§7.2.14).
async fn send_history(cx: &Context, room: &Room, to: &Jid, muc_x: Option<&Element>) {
    let limits = muc_x.and_then(|x| x.get_child("history", NS_MUC));
    let attr = |name| limits.and_then(|h| h.attr(name));
    let max_stanzas = attr("maxstanzas").and_then(|v| v.parse::<usize>().ok());
    let max_chars = attr("maxchars").and_then(|v| v.parse::<usize>().ok());
    let since = attr("since").and_then(datetime::parse_millis);
    let seconds = attr("seconds")
        .and_then(|v| v.parse::<i64>().ok())
        .map(|s| datetime::now_millis() - s * 1000);
    let oldest = since.max(seconds).unwrap_or(i64::MIN);
    let mut picked: Vec<&HistoryEntry> = room
        .history
        .iter()
        .rev()
        .take_while(|h| h.stamp >= oldest)
        .take(max_stanzas.unwrap_or(usize::MAX))
        .collect();
    if let Some(max) = max_chars {
        let mut total = 0;
        picked.retain(|h| {
            total += hearth_xml::element_to_bytes(&h.message, hearth_core::ns::CLIENT).len();
            total <= max
        });
    }
    for entry in picked.into_iter().rev() {
        let mut message = entry.message.clone();
        let delay = Element::builder("delay", NS_DELAY)
            .attr(ncname("from"), room.jid.to_string())
            .attr(ncname("stamp"), datetime::format_millis(entry.stamp))
            .build();
        if let (Whois::Anyone, Some(real)) = (room.config.whois, &entry.sender) {
            let real = real.to_string();
            let addresses = Element::builder("addresses", "http://jabber.org/protocol/address")
                .append(
                    Element::builder("address", "http://jabber.org/protocol/address")
                        .attr(ncname("type"), "ofrom")
                        .attr(ncname("jid"), real)
                        .build(),
                )
                .build();
            message.append_child(addresses);
        }
        message.append_child(delay);
        let from = message
            .attr("from")
            .and_then(|f| Jid::parse(f).ok())
            .unwrap_or_else(|| room.jid.clone());
        send(cx, message, &from, to).await;
    }
}

/// The presence an occupant broadcasts: the client's, without its `muc` join element and
/// with the room's occupant id (a client's own is dropped: it could pose as another).
fn occupant_presence(room: &Room, bare: &Jid, st: &Stanza) -> Element {
    let mut p = Element::builder("presence", hearth_core::ns::CLIENT).build();
    for child in st.element().children() {
        if !child.is("x", NS_MUC)
            && !child.is("x", NS_USER)
            && !child.is("occupant-id", NS_OCCUPANT_ID)
        {
            p.append_child(child.clone());
        }
    }
    p.append_child(room.occupant_id(bare));
    p
}

/// A message as the room relays it: without `to`, with the sender's occupant id in place of
/// any the client put there.
fn stamped(room: &Room, sender: &Occupant, mut message: Element) -> Element {
    hearth_core::stanza::set_attr(&mut message, "to", None);
    let by = room.jid.to_string();
    // The room's own ids are the room's to give (XEP-0421, XEP-0359 §7).
    let forged = |c: &Element| {
        c.is("occupant-id", NS_OCCUPANT_ID)
            || (c.is("stanza-id", NS_SID) && c.attr("by") == Some(by.as_str()))
    };
    if message.children().any(forged) {
        let nodes = message.take_nodes();
        for node in nodes {
            match node {
                minidom::Node::Element(c) if forged(&c) => {}
                other => message.append_node(other),
            }
        }
    }
    message.append_child(room.occupant_id(&sender.bare));
    message
}

fn occupant_jid(room: &Room, nick: &str) -> Jid {
    room.jid
        .with_resource(nick)
        .unwrap_or_else(|_| room.jid.clone())
}

fn add_status(p: &mut Element, code: u16) {
    if let Some(x) = p.get_child_mut("x", NS_USER) {
        x.append_child(
            Element::builder("status", NS_USER)
                .attr(ncname("code"), code.to_string())
                .build(),
        );
    }
}

fn set_item_jid(p: &mut Element, jid: &Jid) {
    if let Some(item) = p
        .get_child_mut("x", NS_USER)
        .and_then(|x| x.get_child_mut("item", NS_USER))
    {
        hearth_core::stanza::set_attr(item, "jid", Some(jid.to_string()));
    }
}

/// Routes `el` from the room itself to every occupant's sessions.
pub(super) async fn send_to_all(cx: &Context, room: &Room, el: Element) {
    let sessions = room.occupants.values().flat_map(|o| &o.sessions);
    send_each(cx, el, &room.jid, sessions.map(|(to, _)| to)).await;
}

/// Routes `el` from `from` to `to`.
async fn send(cx: &Context, el: Element, from: &Jid, to: &Jid) {
    send_each(cx, el, from, std::iter::once(to)).await
}

/// Routes `el` from `from` to each of `recipients`. The copies share one payload, serialised
/// once for all of them (the fan-out hot path): only their `to` differs.
pub(super) async fn send_each<'a>(
    cx: &Context,
    el: Element,
    from: &Jid,
    recipients: impl Iterator<Item = &'a Jid>,
) {
    let shared = match Stanza::from_parts(el, Some(from.clone()), None) {
        Ok(st) if st.kind() != Kind::Iq => st,
        Ok(_) => return,
        Err(e) => {
            tracing::warn!(error = %e, "MUC built an invalid stanza");
            return;
        }
    };
    for to in recipients {
        let mut copy = shared.clone();
        copy.set_to(Some(to.clone()));
        cx.send(copy).await;
    }
}
