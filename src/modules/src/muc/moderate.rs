//! Taking messages back: a moderator removes someone's message (XEP-0425), or a sender
//! retracts their own (XEP-0424). The room's archive keeps a tombstone in its place, and
//! history on entering no longer shows it.

use hearth_core::datetime;
use hearth_core::jid::Jid;
use hearth_core::router::Context;
use hearth_core::stanza::{Condition, Stanza, StanzaError, ncname};
use hearth_store::ArchiveQuery;
use minidom::Element;

use super::Muc;
use super::room::{NS_OCCUPANT_ID, Occupant, Role, Room};

pub const NS_MODERATE: &str = "urn:xmpp:message-moderate:1";
pub const NS_RETRACT: &str = "urn:xmpp:message-retract:1";
const NS_SID: &str = "urn:xmpp:sid:0";

impl Muc {
    /// §XEP-0425: a moderator's `<moderate/>` request on a message the room archived.
    pub(super) async fn moderate(
        &self,
        cx: &Context,
        room: &mut Room,
        from: &Jid,
        request: &Element,
    ) -> Result<(), StanzaError> {
        let moderator = room
            .occupant_of(from)
            .filter(|o| o.role == Role::Moderator)
            .cloned()
            .ok_or_else(|| {
                StanzaError::new(Condition::Forbidden)
                    .with_text("only moderators may moderate other occupants' messages")
            })?;
        let id = request
            .attr("id")
            .ok_or_else(|| {
                StanzaError::new(Condition::BadRequest).with_text("name the message's stanza-id")
            })?
            .to_string();
        if request.get_child("retract", NS_RETRACT).is_none() {
            return Err(StanzaError::new(Condition::FeatureNotImplemented)
                .with_text("only retraction is supported"));
        }
        let reason = request.get_child("reason", NS_MODERATE).map(Element::text);
        let moderated = Element::builder("moderated", NS_MODERATE)
            .attr(
                ncname("by"),
                room.jid
                    .with_resource(&moderator.nick)
                    .map_or_else(|_| room.jid.to_string(), |j| j.to_string()),
            )
            .append(room.occupant_id(&moderator.bare))
            .build();
        tombstone(cx, room, &id, Some(moderated.clone()), reason.as_deref()).await?;
        // Everyone is told, from the room.
        let mut retract = Element::builder("retract", NS_RETRACT)
            .attr(ncname("id"), id.as_str())
            .append(moderated)
            .build();
        if let Some(reason) = &reason {
            retract.append_child(
                Element::builder("reason", NS_RETRACT)
                    .append(reason.as_str())
                    .build(),
            );
        }
        let notice = Element::builder("message", hearth_core::ns::CLIENT)
            .attr(ncname("type"), "groupchat")
            .attr(ncname("id"), crate::mam::new_id())
            .append(retract)
            .build();
        super::occupancy::send_to_all(cx, room, notice).await;
        tracing::info!(room = %room.jid, id, moderator = %moderator.nick, "message moderated");
        Ok(())
    }
}

/// XEP-0424 in a room: a sender's `<retract/>` of their own message. Only its author (by
/// occupant id, which survives nick changes) may; the archive then keeps a tombstone. The
/// retraction itself is relayed as any groupchat message.
pub(super) async fn retract_own(
    cx: &Context,
    room: &mut Room,
    sender: &Occupant,
    retract: &Element,
) -> Result<(), StanzaError> {
    let Some(id) = retract.attr("id").map(str::to_string) else {
        return Err(StanzaError::new(Condition::BadRequest).with_text("name the message's id"));
    };
    let original = archived(cx, room, &id).await?;
    let author = original
        .as_ref()
        .and_then(|m| m.get_child("occupant-id", NS_OCCUPANT_ID))
        .and_then(|o| o.attr("id"))
        .map(str::to_string);
    let mine = room.occupant_id(&sender.bare);
    match author {
        Some(author) if Some(author.as_str()) == mine.attr("id") => {
            tombstone(cx, room, &id, None, None).await
        }
        Some(_) => Err(StanzaError::new(Condition::Forbidden)
            .with_text("only its author may retract a message")),
        // Not archived (or unknown): nothing to replace; the retraction is still relayed.
        None => Ok(()),
    }
}

/// The archived message with stanza-id `id`, if the room archives and has it.
async fn archived(cx: &Context, room: &Room, id: &str) -> Result<Option<Element>, StanzaError> {
    if !room.config.persistent {
        return Ok(None);
    }
    let q = ArchiveQuery {
        ids: Some(vec![id.to_string()]),
        max: 1,
        ..Default::default()
    };
    let page = cx
        .store()
        .archive_query(&room.jid.to_string(), q)
        .await
        .map_err(|_| {
            StanzaError::new(Condition::ItemNotFound).with_text("no such message in this room")
        })?;
    Ok(page
        .messages
        .first()
        .and_then(|m| Stanza::from_storage_xml(&m.stanza_xml))
        .map(Stanza::into_element))
}

/// Replaces the archived message `id` with a tombstone (XEP-0424 §"Tombstones", XEP-0425):
/// its attributes, occupant id and stanza id stay, the content goes. It also leaves the
/// history shown on entering.
async fn tombstone(
    cx: &Context,
    room: &mut Room,
    id: &str,
    moderated: Option<Element>,
    reason: Option<&str>,
) -> Result<(), StanzaError> {
    let by_room = room.jid.to_string();
    let has_id = |m: &Element| {
        m.children().any(|c| {
            c.is("stanza-id", NS_SID)
                && c.attr("by") == Some(by_room.as_str())
                && c.attr("id") == Some(id)
        })
    };
    room.history.retain(|h| !has_id(&h.message));
    let Some(original) = archived(cx, room, id).await? else {
        return if room.config.persistent {
            Err(StanzaError::new(Condition::ItemNotFound).with_text("no such message in this room"))
        } else {
            Ok(())
        };
    };
    let mut stone = original;
    for node in stone.take_nodes() {
        if let minidom::Node::Element(c) = node
            && (c.is("occupant-id", NS_OCCUPANT_ID) || c.is("stanza-id", NS_SID))
        {
            stone.append_child(c);
        }
    }
    let mut retracted = Element::builder("retracted", NS_RETRACT)
        .attr(
            ncname("stamp"),
            datetime::format(std::time::SystemTime::now()),
        )
        .build();
    if let Some(m) = moderated {
        retracted.append_child(m);
    }
    if let Some(reason) = reason {
        retracted.append_child(
            Element::builder("reason", NS_RETRACT)
                .append(reason)
                .build(),
        );
    }
    stone.append_child(retracted);
    let mut xml = Vec::new();
    hearth_xml::write_element(&stone, "", &mut xml);
    cx.store()
        .archive_tombstone(&by_room, id, String::from_utf8_lossy(&xml).into_owned())
        .await
        .map_err(|e| {
            tracing::error!(error = %e, room = %by_room, "cannot replace a message in the room archive");
            StanzaError::new(Condition::InternalServerError)
        })?;
    Ok(())
}
