//! Message Carbons (XEP-0280): every device of a user sees the whole conversation. A message a
//! client sends is copied (`<sent/>`) to the user's other carbons-enabled clients; a message
//! that reaches one client is copied (`<received/>`) to the others that did not get it.

use std::sync::Arc;

use hearth_core::jid::Jid;
use hearth_core::module::{DiscoScope, IqTarget, IqType, Module, Registrar, Spec, SupportStatus};
use hearth_core::router::{Context, Flow, IqResult};
use hearth_core::session::Session;
use hearth_core::stanza::{Kind, Stanza};
use minidom::Element;
use serde::Deserialize;

pub const NS_CARBONS: &str = "urn:xmpp:carbons:2";
const NS_FORWARD: &str = "urn:xmpp:forward:0";
const NS_HINTS: &str = "urn:xmpp:hints";
const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";
const NS_MAM: &str = "urn:xmpp:mam:2";
/// Payloads of instant messaging that make a message worth copying (XEP-0280 §6.1):
/// receipts, chat states, chat markers, direct MUC invitations.
const IM_PAYLOADS: &[&str] = &[
    "urn:xmpp:receipts",
    "http://jabber.org/protocol/chatstates",
    "urn:xmpp:chat-markers:0",
    "jabber:x:conference",
];

/// Per session: the client enabled carbons.
#[derive(Debug, Clone, Copy, Default)]
struct Enabled(bool);

fn enabled(session: &Session) -> bool {
    session.ext::<Enabled>().is_some_and(|e| e.0)
}

pub struct Carbons;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {}

impl Module for Carbons {
    const NAME: &'static str = "carbons";
    const SPECS: &'static [Spec] = &[Spec {
        id: "XEP-0280",
        version: "1.0.1",
        status: SupportStatus::Complete,
        note: "§6.1 rules except copying errors to eligible messages; enabled inline with Bind2; kept across a restart with a resumed session",
    }];
    type Config = Config;

    fn init(_: Config, reg: &mut Registrar) -> anyhow::Result<Arc<Self>> {
        reg.feature(DiscoScope::Host, NS_CARBONS);
        for name in ["enable", "disable"] {
            reg.iq(IqType::Set, IqTarget::Account, NS_CARBONS, name, toggle);
        }
        reg.bind2_inline(NS_CARBONS, |cx, _| async move {
            if let Some(session) = cx.session() {
                session.with_ext(|e: &mut Enabled| e.0 = true);
            }
            None
        });
        reg.session_state(
            "carbons",
            |s| enabled(s).then(|| "enabled".to_string()),
            |s, _| s.with_ext(|e: &mut Enabled| e.0 = true),
        );
        for event in ["pre-message/bare", "pre-message/full", "pre-message/host"] {
            reg.hook(event, 10, |cx, st| async move {
                copy_sent(&cx, &st);
                Flow::Continue(st)
            });
        }
        for event in ["message/bare", "message/full"] {
            reg.hook(event, 10, |cx, st| async move {
                copy_received(&cx, &st);
                Flow::Continue(st)
            });
        }
        Ok(Arc::new(Carbons))
    }
}

async fn toggle(cx: Context, st: Stanza) -> IqResult {
    let (Some(session), Some(payload)) = (cx.session(), st.iq_payload()) else {
        return Err(hearth_core::stanza::Condition::BadRequest.into());
    };
    if st
        .to()
        .is_some_and(|to| Some(to.to_bare()) != st.from().map(|f| f.to_bare()))
    {
        return Err(hearth_core::stanza::Condition::Forbidden.into());
    }
    let on = payload.name() == "enable";
    session.with_ext(|e: &mut Enabled| e.0 = on);
    tracing::debug!(jid = %session.jid, on, "carbons");
    Ok(None)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Sent,
    Received,
}

impl Direction {
    fn element(self) -> &'static str {
        match self {
            Direction::Sent => "sent",
            Direction::Received => "received",
        }
    }
}

/// XEP-0280 §6.1 "Recommended Rules", and §7 opt-out.
fn eligible(st: &Stanza, direction: Direction) -> bool {
    let el = st.element();
    if st.kind() != Kind::Message
        || el.has_child("private", NS_CARBONS)
        || el.has_child("no-copy", NS_HINTS)
        || el
            .children()
            .any(|c| c.ns() == NS_CARBONS || (c.is("result", NS_MAM)))
    {
        return false;
    }
    let im_payload = || {
        el.has_child("body", hearth_core::ns::CLIENT)
            || el
                .children()
                .any(|c| IM_PAYLOADS.contains(&c.ns().as_str()))
    };
    if let Some(muc) = el.get_child("x", NS_MUC_USER) {
        // Mediated invitations are copied; private messages only as sent by the user (the
        // room already copies what it sends to every joined client).
        return muc.has_child("invite", NS_MUC_USER)
            || (direction == Direction::Sent && st.stanza_type() != "groupchat" && im_payload());
    }
    match st.stanza_type() {
        "chat" => true,
        "normal" => im_payload(),
        _ => false,
    }
}

/// The copy for `to`: `<message from=bare to=to type=…><sent|received><forwarded>original`.
fn wrap(st: &Stanza, direction: Direction, owner: &Jid, to: &Jid) -> Stanza {
    let mut copy = Stanza::new(Kind::Message);
    copy.set_type(st.type_attr());
    copy.set_from(Some(owner.to_bare()));
    copy.set_to(Some(to.clone()));
    let forwarded = Element::builder("forwarded", NS_FORWARD)
        .append(st.to_element())
        .build();
    copy.element_mut().append_child(
        Element::builder(direction.element(), NS_CARBONS)
            .append(forwarded)
            .build(),
    );
    copy
}

fn deliver_copies<'a>(
    cx: &Context,
    st: &Stanza,
    direction: Direction,
    owner: &Jid,
    to: impl Iterator<Item = &'a Arc<Session>>,
) {
    for session in to {
        cx.server
            .deliver(session, &wrap(st, direction, owner, &session.jid));
    }
}

/// A local client sent a message: its other carbons-enabled clients get a copy.
fn copy_sent(cx: &Context, st: &Stanza) {
    let Some(sender) = cx.session() else { return };
    let sessions = cx.server.sessions.of(sender.jid.bare());
    if sessions.len() < 2 || !eligible(st, Direction::Sent) {
        return;
    }
    let others = sessions.iter().filter(|s| s.id != sender.id && enabled(s));
    deliver_copies(cx, st, Direction::Sent, &sender.jid, others);
}

/// A message reaches a local account: carbons-enabled clients that RFC 6121 delivery leaves
/// out get a copy (all others for a full-JID message; those with negative priority or no
/// presence for a bare-JID one).
fn copy_received(cx: &Context, st: &Stanza) {
    let Some(to) = st.to() else { return };
    let sessions = cx.server.sessions.of(to.bare());
    if sessions.is_empty() || !eligible(st, Direction::Received) {
        return;
    }
    if to.is_full() && !sessions.iter().any(|s| s.jid == *to) {
        // No such resource: delivery falls back to the bare JID (RFC 6121 §8.5.3.2.1),
        // which reaches the clients that would get copies.
        return;
    }
    let left_out = sessions.iter().filter(|s| {
        enabled(s)
            && if to.is_full() {
                s.jid != *to
            } else {
                !(s.is_available() && s.priority() >= 0)
            }
    });
    deliver_copies(cx, st, Direction::Received, to, left_out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(xml: &str) -> Stanza {
        Stanza::from_element(xml.parse().unwrap()).unwrap()
    }

    #[test]
    fn which_messages_are_copied() {
        let sent = |xml| eligible(&msg(xml), Direction::Sent);
        let received = |xml| eligible(&msg(xml), Direction::Received);
        assert!(sent("<message xmlns='jabber:client' type='chat'/>"));
        assert!(sent(
            "<message xmlns='jabber:client'><body>x</body></message>"
        ));
        assert!(!sent("<message xmlns='jabber:client'/>"));
        assert!(sent(
            "<message xmlns='jabber:client'><received xmlns='urn:xmpp:receipts' id='1'/></message>"
        ));
        assert!(!sent(
            "<message xmlns='jabber:client' type='groupchat'><body>x</body></message>"
        ));
        assert!(!sent(
            "<message xmlns='jabber:client' type='headline'><body>x</body></message>"
        ));
        assert!(!sent(
            "<message xmlns='jabber:client' type='error'><body>x</body></message>"
        ));
        assert!(!sent(
            "<message xmlns='jabber:client' type='chat'><private xmlns='urn:xmpp:carbons:2'/><no-copy xmlns='urn:xmpp:hints'/></message>"
        ));
        let pm = "<message xmlns='jabber:client' type='chat'><body>x</body><x xmlns='http://jabber.org/protocol/muc#user'/></message>";
        assert!(sent(pm) && !received(pm));
        assert!(received(
            "<message xmlns='jabber:client'><x xmlns='http://jabber.org/protocol/muc#user'><invite from='a@b'/></x></message>"
        ));
        assert!(!received(
            "<message xmlns='jabber:client' type='chat'><received xmlns='urn:xmpp:carbons:2'/></message>"
        ));
    }
}
