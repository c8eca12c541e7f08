//! The moderator's and admin's use cases (XEP-0045 §8–9): kicking, voice, moderator rights,
//! membership, bans, admin and owner lists, and reading those lists. An affiliation change is
//! stored before it is confirmed.

use hearth_core::jid::Jid;
use hearth_core::router::Context;
use hearth_core::stanza::{Condition, StanzaError, ncname};
use minidom::Element;

use super::Muc;
use super::occupancy::{broadcast_presence, remove_occupant};
use super::room::{Affiliation, Role, Room};

pub const NS_ADMIN: &str = "http://jabber.org/protocol/muc#admin";

/// Status codes of removals (XEP-0045 §15.6).
const BANNED: u16 = 301;
const KICKED: u16 = 307;
const NOT_A_MEMBER: u16 = 321;

impl Muc {
    pub(super) async fn admin(
        &self,
        cx: &Context,
        room: &mut Room,
        from: &Jid,
        get: bool,
        query: &Element,
    ) -> Result<Element, StanzaError> {
        let actor_affiliation = room.affiliation(&from.to_bare());
        let actor_role = room.occupant_of(from).map_or(Role::None, |o| o.role);
        let items: Vec<&Element> = query
            .children()
            .filter(|c| c.is("item", NS_ADMIN))
            .collect();
        if items.is_empty() {
            return Err(StanzaError::new(Condition::BadRequest).with_text("an item is expected"));
        }
        if get {
            return list(room, items[0], actor_affiliation, actor_role);
        }
        for item in items {
            let reason = item.get_child("reason", NS_ADMIN).map(Element::text);
            match (item.attr("role"), item.attr("affiliation")) {
                (Some(role), None) => {
                    let nick = item.attr("nick").ok_or_else(|| {
                        StanzaError::new(Condition::BadRequest)
                            .with_text("a role change names a nick")
                    })?;
                    set_role(
                        cx,
                        room,
                        actor_affiliation,
                        actor_role,
                        nick,
                        role,
                        reason.as_deref(),
                    )
                    .await?;
                }
                (None, Some(affiliation)) => {
                    let affiliation = Affiliation::parse(affiliation).ok_or_else(|| {
                        StanzaError::new(Condition::BadRequest).with_text("unknown affiliation")
                    })?;
                    let target = match (item.attr("jid"), item.attr("nick")) {
                        (Some(jid), _) => Jid::parse(jid)
                            .map_err(|_| StanzaError::new(Condition::JidMalformed))?
                            .to_bare(),
                        (None, Some(nick)) => room
                            .occupants
                            .get(nick)
                            .map(|o| o.bare.clone())
                            .ok_or_else(|| StanzaError::new(Condition::ItemNotFound))?,
                        (None, None) => {
                            return Err(StanzaError::new(Condition::BadRequest)
                                .with_text("an affiliation change names a jid"));
                        }
                    };
                    self.set_affiliation(cx, room, actor_affiliation, &target, affiliation, reason)
                        .await?;
                }
                _ => {
                    return Err(StanzaError::new(Condition::BadRequest)
                        .with_text("an item changes a role or an affiliation"));
                }
            }
        }
        Ok(Element::bare("query", NS_ADMIN))
    }

    /// §9.1–9.8, §10.3–10.7: checks who may grant what, stores the change, then applies it
    /// to an occupant who is present.
    async fn set_affiliation(
        &self,
        cx: &Context,
        room: &mut Room,
        actor: Affiliation,
        target: &Jid,
        new: Affiliation,
        reason: Option<String>,
    ) -> Result<(), StanzaError> {
        let current = room.affiliation(target);
        // §9 and §10: who is not an admin, or edits the admin or owner list without being an
        // owner, is refused with `forbidden`; an admin acting on a higher-or-equal
        // affiliation with `not-allowed` (§9.1).
        if actor < Affiliation::Admin {
            return Err(StanzaError::new(Condition::Forbidden)
                .with_text("only admins and owners change affiliations"));
        }
        if actor == Affiliation::Admin && new >= Affiliation::Admin {
            return Err(StanzaError::new(Condition::Forbidden)
                .with_text("only owners edit the admin and owner lists"));
        }
        if actor == Affiliation::Admin && current >= Affiliation::Admin {
            return Err(StanzaError::new(Condition::NotAllowed)
                .with_text("an admin may not change the affiliation of an admin or owner"));
        }
        // A server administrator's ownership follows the server's configuration: a lower
        // stored affiliation would have no effect, and the lists would tell otherwise.
        if room.is_server_admin(target) && new != Affiliation::Owner {
            return Err(StanzaError::new(Condition::NotAllowed)
                .with_text("server administrators are owners of every room"));
        }
        let owners = room
            .affiliations
            .values()
            .filter(|a| **a == Affiliation::Owner)
            .count();
        if current == Affiliation::Owner && new != Affiliation::Owner && owners == 1 {
            return Err(
                StanzaError::new(Condition::Conflict).with_text("a room keeps at least one owner")
            );
        }
        self.save_affiliation(cx, room, target, new, reason.clone())
            .await?;
        if new == Affiliation::None {
            room.affiliations.remove(target);
        } else {
            room.affiliations.insert(target.clone(), new);
        }
        tracing::info!(room = %room.jid, jid = %target, affiliation = new.as_str(), "affiliation changed");
        let present: Vec<String> = room
            .occupants
            .values()
            .filter(|o| o.bare == *target)
            .map(|o| o.nick.clone())
            .collect();
        for nick in present {
            if new == Affiliation::Outcast {
                remove_occupant(cx, room, &nick, &[BANNED], reason.as_deref()).await;
            } else if room.config.members_only && new < Affiliation::Member {
                remove_occupant(cx, room, &nick, &[NOT_A_MEMBER], reason.as_deref()).await;
            } else {
                let role = room.default_role(new);
                let sessions: Vec<Jid> = match room.occupants.get_mut(&nick) {
                    Some(o) => {
                        o.role = role;
                        o.sessions.iter().map(|(j, _)| j.clone()).collect()
                    }
                    None => continue,
                };
                for session in sessions {
                    broadcast_presence(cx, room, &nick, &session, &[]).await;
                }
            }
        }
        Ok(())
    }
}

/// §8.2–8.6, §9.6–9.7: kicks, voice and moderator rights, by nick.
async fn set_role(
    cx: &Context,
    room: &mut Room,
    actor_affiliation: Affiliation,
    actor_role: Role,
    nick: &str,
    role: &str,
    reason: Option<&str>,
) -> Result<(), StanzaError> {
    let role = match role {
        "none" => Role::None,
        "visitor" => Role::Visitor,
        "participant" => Role::Participant,
        "moderator" => Role::Moderator,
        _ => return Err(StanzaError::new(Condition::BadRequest).with_text("unknown role")),
    };
    if actor_role != Role::Moderator {
        return Err(
            StanzaError::new(Condition::Forbidden).with_text("only moderators change roles")
        );
    }
    let target = room.occupants.get(nick).ok_or_else(|| {
        StanzaError::new(Condition::ItemNotFound).with_text("no one by that nickname is here")
    })?;
    let target_affiliation = room.affiliation(&target.bare);
    // Admins and owners cannot be kicked or silenced, and moderator rights are the admins'.
    let allowed = if role == Role::Moderator || target.role == Role::Moderator {
        actor_affiliation >= Affiliation::Admin && target_affiliation < Affiliation::Admin
    } else {
        target_affiliation < Affiliation::Admin
    };
    if !allowed {
        return Err(StanzaError::new(Condition::NotAllowed)
            .with_text("you may not change this occupant's role"));
    }
    if role == Role::None {
        tracing::info!(room = %room.jid, nick, "occupant kicked");
        remove_occupant(cx, room, nick, &[KICKED], reason).await;
        return Ok(());
    }
    let sessions: Vec<Jid> = match room.occupants.get_mut(nick) {
        Some(o) => {
            o.role = role;
            o.sessions.iter().map(|(j, _)| j.clone()).collect()
        }
        None => Vec::new(),
    };
    for session in sessions {
        broadcast_presence(cx, room, nick, &session, &[]).await;
    }
    Ok(())
}

/// §8.5, §9.5, §10.5: the lists by affiliation (admins and owners) or role (moderators).
/// The affiliation lists are the stored ones, without the server administrators.
fn list(
    room: &Room,
    item: &Element,
    actor_affiliation: Affiliation,
    actor_role: Role,
) -> Result<Element, StanzaError> {
    let mut query = Element::bare("query", NS_ADMIN);
    let forbidden =
        || StanzaError::new(Condition::Forbidden).with_text("you may not see this list");
    if let Some(wanted) = item.attr("affiliation") {
        let wanted = Affiliation::parse(wanted)
            .filter(|a| *a != Affiliation::None)
            .ok_or_else(|| StanzaError::new(Condition::BadRequest))?;
        if actor_affiliation < Affiliation::Admin {
            return Err(forbidden());
        }
        let mut jids: Vec<String> = room
            .affiliations
            .iter()
            .filter(|(_, a)| **a == wanted)
            .map(|(j, _)| j.to_string())
            .collect();
        jids.sort();
        for jid in jids {
            query.append_child(
                Element::builder("item", NS_ADMIN)
                    .attr(ncname("affiliation"), wanted.as_str())
                    .attr(ncname("jid"), jid)
                    .build(),
            );
        }
        return Ok(query);
    }
    let wanted = item
        .attr("role")
        .ok_or_else(|| StanzaError::new(Condition::BadRequest))?;
    if actor_role != Role::Moderator {
        return Err(forbidden());
    }
    for o in room
        .occupants
        .values()
        .filter(|o| o.role.as_str() == wanted)
    {
        let mut entry = Element::builder("item", NS_ADMIN)
            .attr(ncname("role"), o.role.as_str())
            .attr(ncname("nick"), o.nick.as_str())
            .attr(ncname("affiliation"), room.affiliation(&o.bare).as_str())
            .build();
        if room.shows_jids_to(actor_role) {
            hearth_core::stanza::set_attr(&mut entry, "jid", Some(o.bare.to_string()));
        }
        query.append_child(entry);
    }
    Ok(query)
}
