//! IQs to occupant JIDs (XEP-0045 §18.1): relayed between occupants without revealing either
//! one's real JID. Clients ask occupants for their vCard (avatars, XEP-0153), software
//! version and capabilities this way. A self-ping (XEP-0410) to one's own nick is answered by
//! the room itself.

use std::time::{Duration, Instant};

use hearth_core::jid::Jid;
use hearth_core::stanza::{Condition, Stanza, StanzaError};

use super::room::Room;
use super::{NS_PING, not_joined};

/// How long the room remembers a relayed request for its answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(60);
/// Requests a room relays at once; beyond that, new ones are refused.
const MAX_PENDING: usize = 1000;

/// A relayed request waiting for its answer, under the id the room gave it.
#[derive(Debug)]
pub struct PendingIq {
    requester: Jid,
    id: Option<String>,
    /// The bare JID expected to answer, and the nick to answer from.
    target: Jid,
    target_nick: String,
    sent: Instant,
}

/// An IQ to `room/nick`: a request is relayed to the occupant (a vCard request to its
/// account, which keeps vCards; anything else to one of its clients), an answer back to whoever
/// asked. Returns what to send, to be routed once the room is unlocked: the account's answer
/// comes straight back to the room.
pub fn occupant_iq(
    room: &mut Room,
    nick: &str,
    st: &Stanza,
) -> Result<Option<Stanza>, StanzaError> {
    let from = st
        .from()
        .ok_or_else(|| StanzaError::new(Condition::BadRequest))?;
    if matches!(st.type_attr(), Some("result" | "error")) {
        return Ok(relay_answer(room, from, st));
    }
    let sender = room.occupant_of(from).ok_or_else(not_joined)?;
    let payload = st.iq_payload();
    if payload.is_some_and(|p| p.is("ping", NS_PING)) && sender.nick == nick {
        return Ok(Some(st.iq_result(None)));
    }
    let sender_jid = room
        .jid
        .with_resource(&sender.nick)
        .map_err(|_| not_joined())?;
    let target = room.occupants.get(nick).ok_or_else(|| {
        StanzaError::new(Condition::ItemNotFound).with_text("no one by that nickname is here")
    })?;
    let to = if payload.is_some_and(|p| p.is("vCard", crate::vcard::NS_VCARD)) {
        target.bare.clone()
    } else {
        let (session, _) = target.sessions.first().ok_or_else(|| {
            StanzaError::new(Condition::ItemNotFound).with_text("no one by that nickname is here")
        })?;
        session.clone()
    };
    let now = Instant::now();
    room.pending_iqs
        .retain(|_, p| now.duration_since(p.sent) < ANSWER_WITHIN);
    if room.pending_iqs.len() >= MAX_PENDING {
        return Err(StanzaError::new(Condition::ResourceConstraint)
            .with_text("too many requests to occupants are waiting; try again shortly"));
    }
    let id = crate::mam::new_id();
    room.pending_iqs.insert(
        id.clone(),
        PendingIq {
            requester: from.clone(),
            id: st.id().map(str::to_string),
            target: target.bare.clone(),
            target_nick: target.nick.clone(),
            sent: now,
        },
    );
    let mut relayed = st.clone();
    relayed.set_from(Some(sender_jid));
    relayed.set_to(Some(to));
    relayed.set_id(Some(&id));
    Ok(Some(relayed))
}

/// Passes an answer to a relayed request back to the requester, as coming from the nick it
/// asked. An answer the room did not ask for, or from someone else, is dropped.
fn relay_answer(room: &mut Room, from: &Jid, st: &Stanza) -> Option<Stanza> {
    let id = st.id()?;
    if room
        .pending_iqs
        .get(id)
        .is_none_or(|p| p.target != from.to_bare())
    {
        tracing::debug!(room = %room.jid, "dropping an IQ answer the room is not waiting for");
        return None;
    }
    let pending = room.pending_iqs.remove(id)?;
    let answerer = room.jid.with_resource(&pending.target_nick).ok()?;
    let mut answer = st.clone();
    answer.set_from(Some(answerer));
    answer.set_to(Some(pending.requester));
    answer.set_id(pending.id.as_deref());
    Some(answer)
}
