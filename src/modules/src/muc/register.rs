//! Registering a nickname with a room (XEP-0045 §7.10): the nick is then reserved for the
//! user (no one else may enter with it, or a look-alike), the user becomes a member, and a
//! client can ask which nick it registered (§7.12, the `x-roomuser-item` node).

use hearth_core::jid::Jid;
use hearth_core::router::Context;
use hearth_core::stanza::{Condition, StanzaError, ncname};
use minidom::Element;

use super::Muc;
use super::owner::form;
use super::room::{Affiliation, Room, enforce_nick};

pub const NS_REGISTER: &str = "jabber:iq:register";
pub const ROOMUSER_NODE: &str = "x-roomuser-item";
const NS_DATA: &str = "jabber:x:data";
const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
const FORM_REGISTER: &str = "http://jabber.org/protocol/muc#register";
const FIELD_NICK: &str = "muc#register_roomnick";

impl Muc {
    pub(super) async fn register(
        &self,
        cx: &Context,
        room: &mut Room,
        from: &Jid,
        get: bool,
        query: &Element,
    ) -> Result<Element, StanzaError> {
        let bare = from.to_bare();
        if room.affiliation(&bare) == Affiliation::Outcast {
            return Err(
                StanzaError::new(Condition::Forbidden).with_text("you are banned from this room")
            );
        }
        // Saved with the nick: a server administrator's ownership is not stored.
        let affiliation = room.stored_affiliation(&bare);
        let mut reply = Element::bare("query", NS_REGISTER);
        if get {
            match room.nicks.get(&bare) {
                Some(nick) => {
                    reply.append_child(Element::bare("registered", NS_REGISTER));
                    reply.append_child(
                        Element::builder("username", NS_REGISTER)
                            .append(nick.as_str())
                            .build(),
                    );
                }
                None => {
                    let mut x = form("form", FORM_REGISTER, &[]);
                    x.append_child(
                        Element::builder("field", NS_DATA)
                            .attr(ncname("var"), FIELD_NICK)
                            .attr(ncname("type"), "text-single")
                            .attr(ncname("label"), "Nickname")
                            .append(Element::bare("required", NS_DATA))
                            .build(),
                    );
                    reply.append_child(x);
                }
            }
            return Ok(reply);
        }
        if query.get_child("remove", NS_REGISTER).is_some() {
            if let Some(nick) = room.nicks.remove(&bare)
                && let Err(e) = self
                    .save_affiliation(cx, room, &bare, affiliation, None)
                    .await
            {
                room.nicks.insert(bare, nick);
                return Err(e);
            }
            return Ok(reply);
        }
        let raw = query
            .get_child("x", NS_DATA)
            .filter(|x| x.attr("type") == Some("submit"))
            .and_then(|x| {
                x.children()
                    .find(|f| f.attr("var") == Some(FIELD_NICK))
                    .and_then(|f| f.get_child("value", NS_DATA))
                    .map(Element::text)
            })
            .ok_or_else(|| {
                StanzaError::new(Condition::BadRequest)
                    .with_text("submit the registration form with a nickname")
            })?;
        let nick = enforce_nick(&raw).ok_or_else(|| {
            StanzaError::new(Condition::NotAcceptable)
                .with_text("that nickname has invisible, control or direction characters")
        })?;
        let taken_by_occupant = room.occupants.get(&nick).is_some_and(|o| o.bare != bare);
        if room.reserved_for_other(&bare, &nick) || taken_by_occupant {
            return Err(StanzaError::new(Condition::Conflict)
                .with_text("that nickname is taken in this room"));
        }
        // Stored first (the save reads the room's nicks), undone if storing fails.
        let previous = room.nicks.insert(bare.clone(), nick);
        let affiliation = affiliation.max(Affiliation::Member);
        if let Err(e) = self
            .save_affiliation(cx, room, &bare, affiliation, None)
            .await
        {
            match previous {
                Some(p) => room.nicks.insert(bare, p),
                None => room.nicks.remove(&bare),
            };
            return Err(e);
        }
        room.affiliations.insert(bare, affiliation);
        Ok(reply)
    }
}

/// §7.12: the nick `from` registered, as the identity of the `x-roomuser-item` node.
pub(super) fn reserved_nick_info(room: &Room, from: &Jid) -> Element {
    let mut query = Element::builder("query", NS_DISCO_INFO)
        .attr(ncname("node"), ROOMUSER_NODE)
        .build();
    if let Some(nick) = room.nicks.get(&from.to_bare()) {
        query.append_child(
            Element::builder("identity", NS_DISCO_INFO)
                .attr(ncname("category"), "conference")
                .attr(ncname("type"), "text")
                .attr(ncname("name"), nick.as_str())
                .build(),
        );
    }
    query
}
