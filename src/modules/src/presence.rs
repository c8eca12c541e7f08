//! RFC 6121 §3–4: presence subscriptions (the whole state machine, pre-approval and
//! cancellation), presence broadcast, probes, directed presence, and unavailable presence when a
//! session ends.
//!
//! The sender's side (`pre-presence/*`, from a local client) and the recipient's side
//! (`presence/*`, for a local account) are handled independently, so the same code serves a
//! contact on this server and, once federation exists, on another one.

use std::sync::Arc;

use hearth_core::jid::Jid;
use hearth_core::module::{Module, Registrar, SessionEvent, Spec, SupportStatus};
use hearth_core::router::{Context, Flow};
use hearth_core::server::Server;
use hearth_core::session::Session;
use hearth_core::stanza::{Kind, Stanza};
use hearth_store::{RosterItem, Subscription};
use serde::Deserialize;

use crate::roster;

/// Fired after a session's initial presence (RFC 6121 §4.2) with that presence; the origin is
/// the session. Offline delivery hooks it.
pub const INITIAL_EVENT: &str = "presence/initial";

pub struct Presence;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {}

impl Module for Presence {
    const NAME: &'static str = "presence";
    const SPECS: &'static [Spec] = &[Spec {
        id: "RFC 6121",
        version: "",
        status: SupportStatus::Complete,
        note: "§3 subscriptions with pre-approval, §4 presence, probes, directed presence",
    }];
    type Config = Config;

    fn init(_: Config, reg: &mut Registrar) -> anyhow::Result<Arc<Self>> {
        for event in [
            "pre-presence/bare",
            "pre-presence/full",
            "pre-presence/host",
        ] {
            reg.hook(event, 0, |cx, st| async move { outbound(cx, st).await });
        }
        reg.hook(
            "presence/bare",
            0,
            |cx, st| async move { inbound(cx, st).await },
        );
        reg.hook(
            "presence/full",
            0,
            |cx, st| async move { inbound(cx, st).await },
        );
        reg.on_session(|server, event| async move {
            if let SessionEvent::Closed {
                was_available: true,
                session,
                ..
            } = event
            {
                let mut unavailable = Stanza::new(Kind::Presence);
                unavailable.set_type(Some("unavailable"));
                unavailable.set_from(Some(session.jid.clone()));
                broadcast_unavailable(&server, &session, unavailable).await;
            }
        });
        Ok(Arc::new(Presence))
    }
}

/// A subscription state as RFC 6121 Appendix A names it, from the user's roster item plus
/// whether an inbound request is pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State {
    pub subscription: Subscription,
    /// Outbound request pending ("Pending Out").
    pub ask: bool,
    /// Inbound request pending ("Pending In").
    pub pending_in: bool,
    pub approved: bool,
}

/// What a subscription stanza does to the state and whether it goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub next: State,
    /// Forward the stanza (outbound: to the contact; inbound: to the user's resources).
    pub deliver: bool,
}

fn with_to(s: Subscription, on: bool) -> Subscription {
    use Subscription::*;
    match (s, on) {
        (None, true) => To,
        (From, true) => Both,
        (To, false) => None,
        (Both, false) => From,
        (s, _) => s,
    }
}

fn with_from(s: Subscription, on: bool) -> Subscription {
    use Subscription::*;
    match (s, on) {
        (None, true) => From,
        (To, true) => Both,
        (From, false) => None,
        (Both, false) => To,
        (s, _) => s,
    }
}

fn has_to(s: Subscription) -> bool {
    matches!(s, Subscription::To | Subscription::Both)
}

fn has_from(s: Subscription) -> bool {
    matches!(s, Subscription::From | Subscription::Both)
}

/// RFC 6121 Appendix A.2 and §3: the user sends a subscription stanza.
pub fn outbound_transition(state: State, kind: &str) -> Transition {
    let mut next = state;
    let deliver = match kind {
        "subscribe" => {
            if !has_to(state.subscription) {
                next.ask = true;
            }
            true
        }
        "subscribed" if state.pending_in => {
            next.subscription = with_from(state.subscription, true);
            next.pending_in = false;
            next.approved = false;
            true
        }
        // Already subscribed: nothing to do, nothing to send.
        "subscribed" if has_from(state.subscription) => false,
        // No request to answer: pre-approval (§3.4).
        "subscribed" => {
            next.approved = true;
            false
        }
        "unsubscribe" => {
            next.subscription = with_to(state.subscription, false);
            next.ask = false;
            true
        }
        "unsubscribed" => {
            next.subscription = with_from(state.subscription, false);
            next.pending_in = false;
            next.approved = false;
            state.pending_in || has_from(state.subscription) || state.approved
        }
        _ => false,
    };
    Transition { next, deliver }
}

/// RFC 6121 Appendix A.3 and §3: a contact's subscription stanza reaches the user.
pub fn inbound_transition(state: State, kind: &str) -> Transition {
    let mut next = state;
    let deliver = match kind {
        // Auto-answered when already subscribed or pre-approved (handled by the caller).
        "subscribe" if has_from(state.subscription) || state.approved => false,
        "subscribe" => {
            next.pending_in = true;
            !state.pending_in
        }
        "subscribed" if state.ask => {
            next.subscription = with_to(state.subscription, true);
            next.ask = false;
            true
        }
        "subscribed" => false,
        "unsubscribe" if has_from(state.subscription) || state.pending_in => {
            next.subscription = with_from(state.subscription, false);
            next.pending_in = false;
            true
        }
        "unsubscribe" => false,
        "unsubscribed" if has_to(state.subscription) || state.ask => {
            next.subscription = with_to(state.subscription, false);
            next.ask = false;
            true
        }
        "unsubscribed" => false,
        _ => false,
    };
    Transition { next, deliver }
}

fn local_user<'a>(server: &Server, jid: &'a Jid) -> Option<&'a str> {
    if server.is_local_domain(jid.domain()) {
        jid.node()
    } else {
        None
    }
}

fn item_state(item: Option<&RosterItem>, pending_in: bool) -> State {
    State {
        subscription: item.map_or(Subscription::None, |i| i.subscription),
        ask: item.is_some_and(|i| i.ask),
        pending_in,
        approved: item.is_some_and(|i| i.approved),
    }
}

/// Loads the user's view of `contact`.
async fn load(cx: &Context, user: &str, contact: &str) -> Option<(Option<RosterItem>, State)> {
    let store = cx.store();
    let item = store.roster_item(user, contact).await.map_err(log).ok()?;
    let pending = store
        .pending_in_list(user)
        .await
        .map_err(log)
        .ok()?
        .iter()
        .any(|(c, _)| c == contact);
    let state = item_state(item.as_ref(), pending);
    Some((item, state))
}

fn log(e: hearth_store::StoreError) {
    tracing::error!(error = %e, "presence storage failed");
}

/// Stores a changed state and pushes the roster item when it changed.
async fn save(
    cx: &Context,
    account: &Jid,
    user: &str,
    contact: &str,
    item: Option<RosterItem>,
    before: State,
    next: State,
) {
    let store = cx.store();
    if before.pending_in != next.pending_in && !next.pending_in {
        let _ = store.pending_in_remove(user, contact).await.map_err(log);
    }
    let item_changed = (before.subscription, before.ask, before.approved)
        != (next.subscription, next.ask, next.approved);
    if !item_changed {
        return;
    }
    let mut item = item.unwrap_or_else(|| RosterItem {
        contact: contact.to_string(),
        name: None,
        subscription: Subscription::None,
        ask: false,
        approved: false,
        groups: Vec::new(),
    });
    item.subscription = next.subscription;
    item.ask = next.ask;
    item.approved = next.approved;
    if let Ok(v) = store.roster_put(user, &item).await.map_err(log) {
        roster::push(&cx.server, account, Ok(&item), v).await;
    }
}

fn presence(type_: Option<&str>, from: Jid, to: Jid) -> Stanza {
    let mut p = Stanza::new(Kind::Presence);
    p.set_type(type_);
    p.set_from(Some(from));
    p.set_to(Some(to));
    p
}

/// Sends the current presence of each of `account`'s available resources to `to` (or one
/// unavailable presence when none is available and `unavailable_if_none`).
async fn send_current_presence(
    server: &Arc<Server>,
    account: &Jid,
    to: &Jid,
    unavailable_if_none: bool,
) {
    let mut sent = false;
    for session in server.sessions.of(account.bare()) {
        let last = session.presence.lock().expect("presence lock").last.clone();
        let Some(last) = last else { continue };
        let Ok(mut p) = Stanza::from_element(last) else {
            continue;
        };
        p.set_from(Some(session.jid.clone()));
        p.set_to(Some(to.clone()));
        server.route(p).await;
        sent = true;
    }
    if !sent && unavailable_if_none {
        server
            .route(presence(Some("unavailable"), account.clone(), to.clone()))
            .await;
    }
}

/// Sends unavailable presence from each of `account`'s available resources to `to`.
async fn send_unavailable_from_all(server: &Arc<Server>, account: &Jid, to: &Jid) {
    for session in server.sessions.of(account.bare()) {
        if session.is_available() {
            server
                .route(presence(
                    Some("unavailable"),
                    session.jid.clone(),
                    to.clone(),
                ))
                .await;
        }
    }
}

async fn outbound(cx: Context, st: Stanza) -> Flow {
    let Some(session) = cx.session().cloned() else {
        return Flow::Continue(st);
    };
    let account = session.jid.to_bare();
    let kind = st.stanza_type().to_string();
    match (kind.as_str(), st.to().cloned()) {
        ("available" | "unavailable", None) => {
            broadcast(&cx, &session, st).await;
            Flow::Stop
        }
        ("available" | "unavailable", Some(to)) if to.bare() == account.bare() && to.is_bare() => {
            broadcast(&cx, &session, st).await;
            Flow::Stop
        }
        ("available" | "unavailable", Some(to)) => {
            directed(&cx, &session, &account, &to, &st).await;
            Flow::Continue(st)
        }
        (kind @ ("subscribe" | "subscribed" | "unsubscribe" | "unsubscribed"), Some(to)) => {
            subscription_out(&cx, &account, &to.to_bare(), kind, st).await;
            Flow::Stop
        }
        _ => Flow::Continue(st),
    }
}

/// RFC 6121 §4.6: remember directed presence to entities that are not subscribed, so they are
/// told when the session goes away.
async fn directed(cx: &Context, session: &Arc<Session>, account: &Jid, to: &Jid, st: &Stanza) {
    let subscribed = match account.node() {
        Some(user) => cx
            .store()
            .roster_item(user, &to.bare().to_string())
            .await
            .ok()
            .flatten()
            .is_some_and(|i| has_from(i.subscription)),
        None => false,
    };
    let mut p = session.presence.lock().expect("presence lock");
    if st.stanza_type() == "unavailable" {
        p.directed.remove(to);
    } else if !subscribed {
        p.directed.insert(to.clone());
    }
}

async fn subscription_out(cx: &Context, account: &Jid, contact: &Jid, kind: &str, st: Stanza) {
    let Some(user) = account.node() else { return };
    let key = contact.to_string();
    let Some((item, before)) = load(cx, user, &key).await else {
        return;
    };
    let t = outbound_transition(before, kind);
    save(cx, account, user, &key, item, before, t.next).await;
    if !t.deliver {
        tracing::debug!(account = %account, contact = %contact, kind, "not routing subscription stanza: nothing to tell the contact");
        return;
    }
    // RFC 6121 §3.1.2: subscription stanzas go out from the bare JID, to the bare JID.
    let mut out = st;
    out.set_from(Some(account.clone()));
    out.set_to(Some(contact.clone()));
    cx.server.route(out).await;
    match kind {
        // Approving: the contact now gets the user's presence (§3.1.5).
        "subscribed" => send_current_presence(&cx.server, account, contact, false).await,
        // Cancelling: the contact is told the user is gone (§3.2.1).
        "unsubscribed" if has_from(before.subscription) => {
            send_unavailable_from_all(&cx.server, account, contact).await
        }
        _ => {}
    }
}

/// A roster item is being removed (RFC 6121 §2.5.2): cancel both directions first.
pub async fn cancel_on_remove(cx: &Context, account: &Jid, item: &RosterItem) {
    let Ok(contact) = Jid::parse(&item.contact) else {
        return;
    };
    let user = account.node().unwrap_or_default().to_string();
    let pending_in = cx
        .store()
        .pending_in_remove(&user, &item.contact)
        .await
        .unwrap_or(false);
    if has_to(item.subscription) || item.ask {
        cx.server
            .route(presence(
                Some("unsubscribe"),
                account.clone(),
                contact.clone(),
            ))
            .await;
    }
    if has_from(item.subscription) || pending_in {
        cx.server
            .route(presence(
                Some("unsubscribed"),
                account.clone(),
                contact.clone(),
            ))
            .await;
        if has_from(item.subscription) {
            send_unavailable_from_all(&cx.server, account, &contact).await;
        }
    }
}

/// Available or unavailable presence without `to` (RFC 6121 §4.2–4.5).
async fn broadcast(cx: &Context, session: &Arc<Session>, mut st: Stanza) {
    st.set_from(Some(session.jid.clone()));
    st.set_to(None);
    if st.stanza_type() == "unavailable" {
        broadcast_unavailable(&cx.server, session, st).await;
        return;
    }
    let priority = st
        .element()
        .get_child("priority", hearth_core::ns::CLIENT)
        .and_then(|p| p.text().trim().parse::<i32>().ok())
        .map_or(0, |p| p.clamp(-128, 127) as i8);
    let initial = {
        let mut p = session.presence.lock().expect("presence lock");
        let initial = !p.available;
        p.available = true;
        p.priority = priority;
        p.last = Some(st.element().clone());
        initial
    };
    let account = session.jid.to_bare();
    let Some(user) = account.node().map(str::to_string) else {
        return;
    };
    let items = cx
        .store()
        .roster(&user)
        .await
        .map(|(_, items)| items)
        .unwrap_or_default();
    for item in items.iter().filter(|i| has_from(i.subscription)) {
        if let Ok(contact) = Jid::parse(&item.contact) {
            let mut p = st.clone();
            p.set_to(Some(contact));
            cx.server.route(p).await;
        }
    }
    for other in cx.server.sessions.of(account.bare()) {
        if other.id != session.id && other.is_available() {
            let mut p = st.clone();
            p.set_to(Some(other.jid.clone()));
            cx.server.deliver(&other, &p);
        }
    }
    if !initial {
        return;
    }
    // Initial presence: learn the contacts' presence, see the own other resources, get the
    // subscription requests that waited (§3.1.3), then offline messages (event).
    for item in items.iter().filter(|i| has_to(i.subscription)) {
        if let Ok(contact) = Jid::parse(&item.contact) {
            cx.server
                .route(presence(Some("probe"), account.clone(), contact))
                .await;
        }
    }
    for other in cx.server.sessions.of(account.bare()) {
        let last = other.presence.lock().expect("presence lock").last.clone();
        if other.id != session.id
            && let Some(last) = last
            && let Ok(mut p) = Stanza::from_element(last)
        {
            p.set_from(Some(other.jid.clone()));
            p.set_to(Some(session.jid.clone()));
            cx.server.deliver(session, &p);
        }
    }
    if let Ok(pending) = cx.store().pending_in_list(&user).await {
        for (_, xml) in pending {
            if let Some(p) = Stanza::from_storage_xml(&xml) {
                cx.server.deliver(session, &p);
            }
        }
    }
    let _ = cx.server.fire(INITIAL_EVENT, cx.clone(), st).await;
}

/// Unavailable presence from a session: to subscribers, the account's other resources and
/// everyone it sent directed presence to; then the session counts as unavailable.
async fn broadcast_unavailable(server: &Arc<Server>, session: &Arc<Session>, st: Stanza) {
    let directed = {
        let mut p = session.presence.lock().expect("presence lock");
        p.available = false;
        p.last = None;
        std::mem::take(&mut p.directed)
    };
    let account = session.jid.to_bare();
    let items = match account.node() {
        Some(user) => server
            .store
            .roster(user)
            .await
            .map(|(_, items)| items)
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let mut told = std::collections::HashSet::new();
    for item in items.iter().filter(|i| has_from(i.subscription)) {
        if let Ok(contact) = Jid::parse(&item.contact) {
            told.insert(contact.clone());
            let mut p = st.clone();
            p.set_to(Some(contact));
            server.route(p).await;
        }
    }
    for to in directed {
        if !told.contains(&to.to_bare()) {
            let mut p = st.clone();
            p.set_to(Some(to));
            server.route(p).await;
        }
    }
    for other in server.sessions.of(account.bare()) {
        if other.id != session.id && other.is_available() {
            let mut p = st.clone();
            p.set_to(Some(other.jid.clone()));
            server.deliver(&other, &p);
        }
    }
}

/// Presence for a local account (the recipient's side).
async fn inbound(cx: Context, st: Stanza) -> Flow {
    let Some(to) = st.to().cloned() else {
        return Flow::Stop;
    };
    let Some(user) = local_user(&cx.server, &to).map(str::to_string) else {
        return Flow::Continue(st);
    };
    let Some(from) = st.from().cloned() else {
        return Flow::Stop;
    };
    let kind = st.stanza_type().to_string();
    match kind.as_str() {
        "available" | "unavailable" | "error" => {
            deliver_presence(&cx.server, &to, &st);
            Flow::Stop
        }
        "probe" => {
            probe(&cx, &user, &to.to_bare(), &from).await;
            Flow::Stop
        }
        kind @ ("subscribe" | "subscribed" | "unsubscribe" | "unsubscribed") => {
            subscription_in(&cx, &user, &to.to_bare(), &from.to_bare(), kind, st).await;
            Flow::Stop
        }
        _ => Flow::Stop,
    }
}

/// To a full JID: that session only. To a bare JID: every available resource (RFC 6121
/// §4.4.3, §8.5.2.1.1).
fn deliver_presence(server: &Arc<Server>, to: &Jid, st: &Stanza) {
    if to.is_full() {
        if let Some(s) = server.sessions.get(to) {
            server.deliver(&s, st);
        }
        return;
    }
    for s in server.sessions.of(to.bare()) {
        if s.is_available() {
            server.deliver(&s, st);
        }
    }
}

/// RFC 6121 §4.3.2: answer a probe only for entities allowed to see the user's presence.
async fn probe(cx: &Context, user: &str, account: &Jid, from: &Jid) {
    let allowed = from.bare() == account.bare()
        || cx
            .store()
            .roster_item(user, &from.bare().to_string())
            .await
            .ok()
            .flatten()
            .is_some_and(|i| has_from(i.subscription));
    if !allowed {
        tracing::debug!(account = %account, prober = %from, "not answering probe: no subscription");
        return;
    }
    send_current_presence(&cx.server, account, from, true).await;
}

async fn subscription_in(
    cx: &Context,
    user: &str,
    account: &Jid,
    contact: &Jid,
    kind: &str,
    st: Stanza,
) {
    let exists = !cx.server.sessions.of(account.bare()).is_empty()
        || cx.store().account_exists(user).await.unwrap_or(false);
    if !exists {
        // RFC 6121 §3.1.3: no such user; a request is answered as if refused.
        if kind == "subscribe" {
            cx.server
                .route(presence(
                    Some("unsubscribed"),
                    account.clone(),
                    contact.clone(),
                ))
                .await;
        }
        return;
    }
    let key = contact.to_string();
    let Some((item, before)) = load(cx, user, &key).await else {
        return;
    };
    if kind == "subscribe" && (has_from(before.subscription) || before.approved) {
        // Already allowed or pre-approved: answer for the user (§3.1.3, §3.4).
        let next = State {
            subscription: with_from(before.subscription, true),
            approved: false,
            pending_in: false,
            ..before
        };
        save(cx, account, user, &key, item, before, next).await;
        cx.server
            .route(presence(
                Some("subscribed"),
                account.clone(),
                contact.clone(),
            ))
            .await;
        send_current_presence(&cx.server, account, contact, false).await;
        return;
    }
    let t = inbound_transition(before, kind);
    if kind == "subscribe" && t.next.pending_in {
        let mut stored = st.clone();
        stored.set_from(Some(contact.clone()));
        let _ = cx
            .store()
            .pending_in_put(user, &key, &stored.to_storage_xml())
            .await
            .map_err(log);
    }
    save(cx, account, user, &key, item, before, t.next).await;
    if kind == "unsubscribe" && has_from(before.subscription) {
        send_unavailable_from_all(&cx.server, account, contact).await;
    }
    if t.deliver {
        let mut out = st;
        out.set_from(Some(contact.clone()));
        out.set_to(Some(account.clone()));
        for s in cx.server.sessions.of(account.bare()) {
            if s.is_available() {
                cx.server.deliver(&s, &out);
            }
        }
    } else {
        tracing::debug!(account = %account, contact = %contact, kind, "not delivering subscription stanza: no state change");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Subscription::*;

    fn st(subscription: Subscription, ask: bool, pending_in: bool) -> State {
        State {
            subscription,
            ask,
            pending_in,
            approved: false,
        }
    }

    /// RFC 6121 Appendix A.2 (outbound) and A.3 (inbound): the rows that change state, as
    /// (direction, state before, stanza type, state after, forwarded).
    #[test]
    fn state_tables() {
        let approved = State {
            approved: true,
            ..st(None, false, false)
        };
        let rows = [
            (
                true,
                st(None, false, false),
                "subscribe",
                st(None, true, false),
                true,
            ),
            (
                true,
                st(From, false, false),
                "subscribe",
                st(From, true, false),
                true,
            ),
            (
                true,
                st(To, false, false),
                "subscribe",
                st(To, false, false),
                true,
            ),
            (
                true,
                st(None, true, true),
                "subscribed",
                st(From, true, false),
                true,
            ),
            (
                true,
                st(To, false, true),
                "subscribed",
                st(Both, false, false),
                true,
            ),
            // No request to answer: pre-approval, nothing sent (§3.4).
            (true, st(None, false, false), "subscribed", approved, false),
            (
                true,
                st(Both, false, false),
                "unsubscribe",
                st(From, false, false),
                true,
            ),
            (
                true,
                st(None, true, false),
                "unsubscribe",
                st(None, false, false),
                true,
            ),
            (
                true,
                st(Both, false, false),
                "unsubscribed",
                st(To, false, false),
                true,
            ),
            // Denying a pending request is sent.
            (
                true,
                st(None, false, true),
                "unsubscribed",
                st(None, false, false),
                true,
            ),
            (
                true,
                st(To, false, false),
                "unsubscribed",
                st(To, false, false),
                false,
            ),
            (
                false,
                st(None, false, false),
                "subscribe",
                st(None, false, true),
                true,
            ),
            // A duplicate request is not delivered again.
            (
                false,
                st(None, false, true),
                "subscribe",
                st(None, false, true),
                false,
            ),
            (
                false,
                st(None, true, false),
                "subscribed",
                st(To, false, false),
                true,
            ),
            (
                false,
                st(From, true, false),
                "subscribed",
                st(Both, false, false),
                true,
            ),
            (
                false,
                st(None, false, false),
                "subscribed",
                st(None, false, false),
                false,
            ),
            (
                false,
                st(Both, false, false),
                "unsubscribe",
                st(To, false, false),
                true,
            ),
            (
                false,
                st(None, false, true),
                "unsubscribe",
                st(None, false, false),
                true,
            ),
            (
                false,
                st(Both, false, false),
                "unsubscribed",
                st(From, false, false),
                true,
            ),
            (
                false,
                st(None, true, false),
                "unsubscribed",
                st(None, false, false),
                true,
            ),
            (
                false,
                st(From, false, false),
                "unsubscribed",
                st(From, false, false),
                false,
            ),
        ];
        for (out, before, kind, after, deliver) in rows {
            let t = if out {
                outbound_transition(before, kind)
            } else {
                inbound_transition(before, kind)
            };
            assert_eq!(
                (t.next, t.deliver),
                (after, deliver),
                "{} {kind} from {before:?}",
                if out { "outbound" } else { "inbound" }
            );
        }
    }
}
