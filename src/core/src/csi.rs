//! Client State Indication (XEP-0352): while a client is inactive, stanzas it need not see at
//! once are held and sent together when it becomes active or something urgent arrives. Of
//! presences held from one sender only the latest is kept: that is what an inactive phone saves.

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};

use bytes::Bytes;
use minidom::Element;

use crate::session::Urgency;
use crate::stanza::{Kind, Stanza};

pub(crate) const NS: &str = "urn:xmpp:csi:0";

/// Payloads that make a message worth waking the client for: a body, or an encrypted one
/// (OMEMO, OpenPGP), or a call proposal.
const URGENT_PAYLOADS: &[(&str, &str)] = &[
    ("encrypted", "eu.siacs.conversations.axolotl"),
    ("encrypted", "urn:xmpp:omemo:2"),
    ("openpgp", "urn:xmpp:openpgp:0"),
    ("x", "jabber:x:encrypted"),
    ("propose", "urn:xmpp:jingle-message:0"),
];

/// How soon an inactive client must get `stanza`.
pub fn urgency(stanza: &Stanza) -> Urgency {
    match stanza.kind() {
        // Someone waits for the answer.
        Kind::Iq => Urgency::Urgent,
        Kind::Presence => match stanza.type_attr() {
            None | Some("unavailable") => {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                stanza.from().hash(&mut h);
                Urgency::Presence(h.finish())
            }
            _ => Urgency::Lazy,
        },
        Kind::Message if has_urgent_payload(stanza.element(), 4) => Urgency::Urgent,
        Kind::Message => Urgency::Lazy,
    }
}

/// Looks through forwarded copies (carbons, archive results) too, down to `depth` levels.
fn has_urgent_payload(el: &Element, depth: u8) -> bool {
    el.children().any(|c| {
        (c.name() == "body" && c.ns() == crate::ns::CLIENT)
            || URGENT_PAYLOADS
                .iter()
                .any(|(name, ns)| c.name() == *name && c.ns() == *ns)
            || (depth > 1 && has_urgent_payload(c, depth - 1))
    })
}

/// Stanzas held for an inactive client, in arrival order.
#[derive(Default)]
pub(crate) struct Held {
    stanzas: VecDeque<(Bytes, Urgency)>,
    /// Presences dropped because a newer one from the same sender replaced them.
    pub superseded: u64,
    /// Stanzas held in total.
    pub held: u64,
}

impl Held {
    pub fn hold(&mut self, bytes: Bytes, urgency: Urgency) {
        if let Urgency::Presence(_) = urgency
            && let Some(pos) = self.stanzas.iter().position(|(_, u)| *u == urgency)
        {
            self.stanzas.remove(pos);
            self.superseded += 1;
        }
        self.held += 1;
        self.stanzas.push_back((bytes, urgency));
    }

    pub fn len(&self) -> usize {
        self.stanzas.len()
    }

    /// Everything held, oldest first.
    pub fn take(&mut self) -> impl Iterator<Item = Bytes> + use<> {
        std::mem::take(&mut self.stanzas)
            .into_iter()
            .map(|(b, _)| b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stanza(xml: &str) -> Stanza {
        Stanza::from_element(xml.parse().unwrap()).unwrap()
    }

    #[test]
    fn what_wakes_an_inactive_client() {
        let urgent = |xml| urgency(&stanza(xml)) == Urgency::Urgent;
        assert!(urgent(
            "<message xmlns='jabber:client'><body>hi</body></message>"
        ));
        assert!(urgent(
            "<message xmlns='jabber:client'><encrypted xmlns='eu.siacs.conversations.axolotl'/></message>"
        ));
        assert!(urgent(
            "<message xmlns='jabber:client'><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'><body>x</body></message></forwarded></received></message>"
        ));
        assert!(!urgent(
            "<message xmlns='jabber:client'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>"
        ));
        assert!(urgent(
            "<iq xmlns='jabber:client' type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>"
        ));
        assert!(matches!(
            urgency(&stanza("<presence xmlns='jabber:client' from='a@b/c'/>")),
            Urgency::Presence(_)
        ));
    }

    #[test]
    fn newer_presence_replaces_held_one() {
        let mut held = Held::default();
        let p = |from| {
            urgency(&stanza(&format!(
                "<presence xmlns='jabber:client' from='{from}'/>"
            )))
        };
        held.hold(Bytes::from_static(b"1"), p("a@b/c"));
        held.hold(Bytes::from_static(b"2"), Urgency::Lazy);
        held.hold(Bytes::from_static(b"3"), p("x@b/c"));
        held.hold(Bytes::from_static(b"4"), p("a@b/c"));
        assert_eq!(held.superseded, 1);
        let out: Vec<Bytes> = held.take().collect();
        assert_eq!(out, ["2", "3", "4"].map(Bytes::from));
        assert_eq!(held.len(), 0);
    }
}
