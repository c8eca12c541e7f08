//! RFC 6121 §3–4: presence subscriptions (the whole state machine of Appendix A, with
//! pre-approval and cancellation), presence broadcast, probes, directed presence, and
//! unavailable presence when a session ends.
//!
//! The sender's side (`pre-presence/{bare,full,host}`, from a local client) and the recipient's
//! side (`presence/{bare,full}`, for a local account) are handled independently, so the same code
//! serves a contact on this server and, once federation exists, on another one. The subscription
//! rules are two pure functions, [`outbound_transition`] and [`inbound_transition`]; the hooks
//! load the state, apply the effects and store the result. A request may come approved in
//! advance by a token the user handed out (XEP-0379), which a [`SubscriptionApprover`] checks.
//! Fires [`INITIAL_EVENT`].

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use hearth_core::jid::Jid;
use hearth_core::module::{Module, Registrar, SessionEvent, Spec, SupportStatus};
use hearth_core::router::{Context, Flow};
use hearth_core::server::Server;
use hearth_core::session::Session;
use hearth_core::stanza::{Kind, Stanza};
use hearth_store::{RosterItem, Subscription};
use minidom::Element;
use serde::Deserialize;

use crate::roster;

/// Fired once a session's initial presence (RFC 6121 §4.2) has been broadcast, the contacts
/// probed and the waiting subscription requests redelivered. The context's origin is that
/// session and the stanza its initial presence. The offline module hooks it to deliver stored
/// messages.
pub const INITIAL_EVENT: &str = "presence/initial";

pub struct Presence {
    approval: Arc<SubscriptionApproval>,
}

/// Approves subscription requests on the user's behalf when they carry what the user handed
/// out for it (an invitation token, XEP-0379); the invite module provides one through
/// [`SubscriptionApproval`].
#[async_trait::async_trait]
pub trait SubscriptionApprover: Send + Sync + 'static {
    /// Whether `request`, a subscription request from `contact` that `user` has neither
    /// granted nor pre-approved, is approved on their behalf. Approving may use up what the
    /// request carried.
    async fn approves(&self, server: &Server, user: &str, contact: &Jid, request: &Stanza) -> bool;
}

/// Where a module puts its [`SubscriptionApprover`] (`Registrar::shared`); read for each
/// request, so it may load after this module.
#[derive(Default)]
pub struct SubscriptionApproval(pub OnceLock<Arc<dyn SubscriptionApprover>>);

impl SubscriptionApproval {
    async fn approves(&self, server: &Server, user: &str, contact: &Jid, request: &Stanza) -> bool {
        match self.0.get() {
            Some(approver) => approver.approves(server, user, contact, request).await,
            None => false,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
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
        let this = Arc::new(Presence {
            approval: reg.shared::<SubscriptionApproval>(),
        });
        for event in ["presence/bare", "presence/full"] {
            reg.hook_with(event, 0, &this, |presence, cx, st| async move {
                inbound(cx, st, &presence.approval).await
            });
        }
        reg.on_session(|server, event| async move {
            if let SessionEvent::Closed {
                was_available,
                session,
                ..
            } = event
            {
                session_closed(&server, &session, was_available).await;
            }
        });
        Ok(this)
    }
}

/// The four presence types that manage subscriptions (RFC 6121 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionType {
    Subscribe,
    Subscribed,
    Unsubscribe,
    Unsubscribed,
}

impl SubscriptionType {
    pub fn parse(type_: &str) -> Option<Self> {
        Some(match type_ {
            "subscribe" => Self::Subscribe,
            "subscribed" => Self::Subscribed,
            "unsubscribe" => Self::Unsubscribe,
            "unsubscribed" => Self::Unsubscribed,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Subscribe => "subscribe",
            Self::Subscribed => "subscribed",
            Self::Unsubscribe => "unsubscribe",
            Self::Unsubscribed => "unsubscribed",
        }
    }
}

/// The user's side of a subscription with one contact: the states of RFC 6121 Appendix A.1
/// ("None + Pending Out" is subscription `None` with `ask`) plus the pre-approval of §3.4, which
/// the appendix does not model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State {
    pub subscription: Subscription,
    /// Outbound request pending ("Pending Out", `ask='subscribe'` in the roster).
    pub ask: bool,
    /// Inbound request pending ("Pending In"; kept apart from the roster).
    pub pending_in: bool,
    /// The contact's next request is approved in advance (`approved='true'`).
    pub approved: bool,
}

/// What a subscription stanza causes besides the state change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Effects {
    /// Pass the stanza on: outbound, route it to the contact; inbound, deliver it to the user.
    pub forward: bool,
    /// Answer `subscribed` on the user's behalf: the contact already has, or was pre-approved
    /// for, a subscription (§3.1.3, §3.4).
    pub auto_approve: bool,
    /// Send the user's current presence to the contact, who may see it from now on.
    pub send_presence: bool,
    /// Send unavailable presence from the user's resources to the contact, who may no longer
    /// see it.
    pub send_unavailable: bool,
    /// Send the contact a subscription request from the user (XEP-0379 §3.5: an invitation
    /// makes the subscription mutual).
    pub ask_back: bool,
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

/// RFC 6121 Appendix A.2 (with §3.4 pre-approval): the user sends a subscription stanza.
pub fn outbound_transition(state: State, type_: SubscriptionType) -> (State, Effects) {
    use SubscriptionType::*;
    let mut next = state;
    let mut fx = Effects::default();
    match type_ {
        // A.2.1: always routed; with a subscription already, the contact's server answers it.
        Subscribe => {
            if !has_to(state.subscription) {
                next.ask = true;
            }
            fx.forward = true;
        }
        // A.2.2: always routed.
        Unsubscribe => {
            next.subscription = with_to(state.subscription, false);
            next.ask = false;
            fx.forward = true;
        }
        // A.2.3: approving a waiting request; the contact sees the user's presence from now on.
        Subscribed if state.pending_in => {
            next.subscription = with_from(state.subscription, true);
            next.pending_in = false;
            next.approved = false;
            fx.forward = true;
            fx.send_presence = true;
        }
        Subscribed if has_from(state.subscription) => {}
        // §3.4.1: no request to approve: pre-approve the next one; nothing goes out.
        Subscribed => next.approved = true,
        // A.2.4: cancelling a subscription or denying a request. Withdrawing a pre-approval is
        // local: the contact never learnt of it.
        Unsubscribed => {
            next.subscription = with_from(state.subscription, false);
            next.pending_in = false;
            next.approved = false;
            fx.forward = state.pending_in || has_from(state.subscription);
            fx.send_unavailable = has_from(state.subscription);
        }
    }
    (next, fx)
}

/// RFC 6121 Appendix A.3 (with §3.4 pre-approval): a contact's subscription stanza reaches the
/// user.
pub fn inbound_transition(state: State, type_: SubscriptionType) -> (State, Effects) {
    use SubscriptionType::*;
    let mut next = state;
    let mut fx = Effects::default();
    match type_ {
        // §3.1.3 step 2: already subscribed; the user is not asked again.
        Subscribe if has_from(state.subscription) => {
            fx.auto_approve = true;
            fx.send_presence = true;
        }
        // §3.4.2: pre-approved; the approval is used up.
        Subscribe if state.approved => {
            next.subscription = with_from(state.subscription, true);
            next.pending_in = false;
            next.approved = false;
            fx.auto_approve = true;
            fx.send_presence = true;
        }
        // A.3.1: kept until answered; a repeated request is not delivered again.
        Subscribe => {
            next.pending_in = true;
            fx.forward = !state.pending_in;
        }
        // A.3.2, §3.3.3: the contact drops its subscription or withdraws its request.
        Unsubscribe if has_from(state.subscription) || state.pending_in => {
            next.subscription = with_from(state.subscription, false);
            next.pending_in = false;
            fx.forward = true;
            fx.send_unavailable = has_from(state.subscription);
        }
        Unsubscribe => {}
        // A.3.3: only an approval of a request the user made counts.
        Subscribed if state.ask => {
            next.subscription = with_to(state.subscription, true);
            next.ask = false;
            fx.forward = true;
        }
        Subscribed => {}
        // A.3.4: the contact cancels the user's subscription or denies the request.
        Unsubscribed if has_to(state.subscription) || state.ask => {
            next.subscription = with_to(state.subscription, false);
            next.ask = false;
            fx.forward = true;
        }
        Unsubscribed => {}
    }
    (next, fx)
}

/// XEP-0379 §3.5: a request approved on the user's behalf is granted as if pre-approved, and
/// the user asks for the contact's presence in return unless they have it or asked already.
pub fn approved_on_behalf_transition(state: State) -> (State, Effects) {
    let pre_approved = State {
        approved: true,
        ..state
    };
    let (mut next, mut fx) = inbound_transition(pre_approved, SubscriptionType::Subscribe);
    fx.ask_back = !has_to(next.subscription) && !next.ask;
    next.ask |= fx.ask_back;
    (next, fx)
}

/// The `<priority/>` of an available presence, clamped to −128..127 (RFC 6121 §4.7.2.3); absent
/// or not a number is 0.
pub fn priority_of(presence: &Element) -> i8 {
    presence
        .get_child("priority", hearth_core::ns::CLIENT)
        .and_then(|p| p.text().trim().parse::<i64>().ok())
        .map_or(0, |p| p.clamp(-128, 127) as i8)
}

fn item_state(item: Option<&RosterItem>, pending_in: bool) -> State {
    State {
        subscription: item.map_or(Subscription::None, |i| i.subscription),
        ask: item.is_some_and(|i| i.ask),
        pending_in,
        approved: item.is_some_and(|i| i.approved),
    }
}

fn store_failed(e: hearth_store::StoreError) {
    tracing::error!(error = %e, "presence storage failed");
}

/// Loads the user's side of the subscription with `contact`.
async fn load(cx: &Context, user: &str, contact: &str) -> Option<(Option<RosterItem>, State)> {
    let store = cx.store();
    let item = store
        .roster_item(user, contact)
        .await
        .map_err(store_failed)
        .ok()?;
    let pending = store
        .pending_in_list(user)
        .await
        .map_err(store_failed)
        .ok()?
        .iter()
        .any(|(c, _)| c == contact);
    let state = item_state(item.as_ref(), pending);
    Some((item, state))
}

/// Stores a changed state; a changed roster item is pushed to the interested resources.
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
    if before.pending_in && !next.pending_in {
        let _ = store
            .pending_in_remove(user, contact)
            .await
            .map_err(store_failed);
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
    if let Ok(v) = store.roster_put(user, &item).await.map_err(store_failed) {
        roster::push(&cx.server, account, roster::Change::Item(&item), v).await;
    }
}

pub(crate) fn presence(type_: Option<&str>, from: Jid, to: Jid) -> Stanza {
    let mut p = Stanza::new(Kind::Presence);
    p.set_type(type_);
    p.set_from(Some(from));
    p.set_to(Some(to));
    p
}

/// The contacts that receive the user's broadcast presence: subscription from or both. The
/// user's own JID is left out: the own resources are told directly.
fn subscribers<'a>(items: &'a [RosterItem], account: &'a Jid) -> impl Iterator<Item = Jid> + 'a {
    items
        .iter()
        .filter(|i| has_from(i.subscription))
        .filter_map(|i| Jid::parse(&i.contact).ok())
        .filter(move |c| c.bare() != account.bare())
}

async fn roster_items(server: &Server, account: &Jid) -> Vec<RosterItem> {
    let Some(user) = account.node() else {
        return Vec::new();
    };
    server
        .store
        .roster(user)
        .await
        .map(|(_, items)| items)
        .map_err(store_failed)
        .unwrap_or_default()
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
        let Some(Ok(mut p)) = last.map(Stanza::from_element) else {
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

/// Delivers a session's broadcast presence to its account's available resources and to the
/// session itself, while it is bound: an entity is implicitly subscribed to its own presence
/// (RFC 6121 §4.2.2, §4.4.2, §4.5.2).
fn to_own_resources(server: &Server, session: &Session, st: &Stanza) {
    for other in server.sessions.of(session.jid.bare()) {
        if other.id == session.id || other.is_available() {
            let mut p = st.clone();
            p.set_to(Some(other.jid.clone()));
            server.deliver(&other, &p);
        }
    }
}

/// Presence from a local client (the sender's side).
async fn outbound(cx: Context, st: Stanza) -> Flow {
    let Some(session) = cx.session().cloned() else {
        return Flow::Continue(st);
    };
    let account = session.jid.to_bare();
    let type_ = st.type_attr();
    let availability = matches!(type_, None | Some("unavailable"));
    let unavailable = type_ == Some("unavailable");
    let subscription = type_.and_then(SubscriptionType::parse);
    match (st.to().cloned(), availability, subscription) {
        (None, true, _) => {
            broadcast(&cx, &session, st).await;
            Flow::Stop
        }
        (Some(to), true, _) => {
            directed(&cx, &session, &account, &to, unavailable).await;
            Flow::Continue(st)
        }
        (Some(to), _, Some(type_)) => {
            subscription_out(&cx, &account, &to.to_bare(), type_, st).await;
            Flow::Stop
        }
        (None, _, Some(type_)) => {
            tracing::debug!(account = %account, type_ = type_.as_str(), "not routing subscription stanza: it has no 'to'");
            Flow::Stop
        }
        // Probes and errors go on as they are.
        _ => Flow::Continue(st),
    }
}

/// RFC 6121 §4.6: remember directed presence to entities that no broadcast tells, so they learn
/// when the session goes away. A subscriber is told by broadcasts only once the session is
/// available.
async fn directed(
    cx: &Context,
    session: &Arc<Session>,
    account: &Jid,
    to: &Jid,
    unavailable: bool,
) {
    if to.bare() == account.bare() {
        // The own resources hear every broadcast.
        return;
    }
    if unavailable {
        session
            .presence
            .lock()
            .expect("presence lock")
            .directed
            .remove(to);
        return;
    }
    let subscriber = match account.node() {
        Some(user) => cx
            .store()
            .roster_item(user, &to.bare().to_string())
            .await
            .map_err(store_failed)
            .ok()
            .flatten()
            .is_some_and(|i| has_from(i.subscription)),
        None => false,
    };
    let mut p = session.presence.lock().expect("presence lock");
    if !(subscriber && p.available) {
        p.directed.insert(to.clone());
    }
}

async fn subscription_out(
    cx: &Context,
    account: &Jid,
    contact: &Jid,
    type_: SubscriptionType,
    st: Stanza,
) {
    let Some(user) = account.node() else { return };
    let key = contact.to_string();
    let Some((item, before)) = load(cx, user, &key).await else {
        return;
    };
    let (next, fx) = outbound_transition(before, type_);
    save(cx, account, user, &key, item, before, next).await;
    if !fx.forward {
        tracing::debug!(account = %account, contact = %contact, type_ = type_.as_str(), "not routing subscription stanza: nothing to tell the contact");
        return;
    }
    // RFC 6121 §3.1.2: subscription stanzas go out from the bare JID, to the bare JID.
    let mut out = st;
    out.set_from(Some(account.clone()));
    out.set_to(Some(contact.clone()));
    cx.server.route(out).await;
    if fx.send_presence {
        send_current_presence(&cx.server, account, contact, false).await;
    }
    if fx.send_unavailable {
        send_unavailable_from_all(&cx.server, account, contact).await;
    }
}

/// A roster item is being removed (RFC 6121 §2.5.2): cancel both directions first.
pub async fn cancel_on_remove(cx: &Context, account: &Jid, item: &RosterItem) {
    let (Some(user), Ok(contact)) = (account.node(), Jid::parse(&item.contact)) else {
        return;
    };
    let pending_in = cx
        .store()
        .pending_in_remove(user, &item.contact)
        .await
        .map_err(store_failed)
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

/// Available or unavailable presence without `to` (RFC 6121 §4.2, §4.4, §4.5).
async fn broadcast(cx: &Context, session: &Arc<Session>, mut st: Stanza) {
    st.set_from(Some(session.jid.clone()));
    st.set_to(None);
    if st.type_attr() == Some("unavailable") {
        withdraw(&cx.server, session, st, true).await;
        return;
    }
    let initial = {
        let mut p = session.presence.lock().expect("presence lock");
        let initial = !p.available;
        p.available = true;
        p.priority = priority_of(st.element());
        p.last = Some(st.to_element());
        initial
    };
    let account = session.jid.to_bare();
    let items = roster_items(&cx.server, &account).await;
    for contact in subscribers(&items, &account) {
        let mut p = st.clone();
        p.set_to(Some(contact));
        cx.server.route(p).await;
    }
    to_own_resources(&cx.server, session, &st);
    if !initial {
        return;
    }
    // Initial presence (§4.2.2): learn the contacts' presence (probes from the bare JID, so
    // answers reach every available resource, §4.3.1)...
    for item in items.iter().filter(|i| has_to(i.subscription)) {
        if let Ok(contact) = Jid::parse(&item.contact)
            && contact.bare() != account.bare()
        {
            cx.server
                .route(presence(Some("probe"), account.clone(), contact))
                .await;
        }
    }
    // ...see the account's other available resources...
    for other in cx.server.sessions.of(account.bare()) {
        if other.id == session.id {
            continue;
        }
        let last = other.presence.lock().expect("presence lock").last.clone();
        if let Some(Ok(mut p)) = last.map(Stanza::from_element) {
            p.set_from(Some(other.jid.clone()));
            p.set_to(Some(session.jid.clone()));
            cx.server.deliver(session, &p);
        }
    }
    // ...get the subscription requests still waiting for an answer (§3.1.3)...
    if let Some(user) = account.node()
        && let Ok(pending) = cx.store().pending_in_list(user).await.map_err(store_failed)
    {
        for (_, xml) in pending {
            if let Some(p) = Stanza::from_storage_xml(&xml) {
                cx.server.deliver(session, &p);
            }
        }
    }
    // ...then whatever else waits for the first presence (offline messages).
    let _ = cx.server.fire(INITIAL_EVENT, cx.clone(), st).await;
}

/// Unavailable presence from a session (§4.5.2, §4.6.3): to the subscribers and the account's
/// resources when `broadcast` (the session had been available), and to everyone it sent directed
/// presence to. The session then counts as unavailable and forgets its directed presence.
async fn withdraw(server: &Arc<Server>, session: &Arc<Session>, st: Stanza, broadcast: bool) {
    let directed = {
        let mut p = session.presence.lock().expect("presence lock");
        p.available = false;
        p.last = None;
        std::mem::take(&mut p.directed)
    };
    let account = session.jid.to_bare();
    let mut told = HashSet::new();
    if broadcast {
        for contact in subscribers(&roster_items(server, &account).await, &account) {
            told.insert(contact.clone());
            let mut p = st.clone();
            p.set_to(Some(contact));
            server.route(p).await;
        }
        to_own_resources(server, session, &st);
    }
    for to in directed {
        if !told.contains(&to.to_bare()) {
            let mut p = st.clone();
            p.set_to(Some(to));
            server.route(p).await;
        }
    }
}

/// A session ended without (or after) unavailable presence: its subscribers, other resources and
/// directed-presence recipients learn it is gone. The session is already unbound, but still
/// holds its presence state.
async fn session_closed(server: &Arc<Server>, session: &Arc<Session>, was_available: bool) {
    let mut st = Stanza::new(Kind::Presence);
    st.set_type(Some("unavailable"));
    st.set_from(Some(session.jid.clone()));
    withdraw(server, session, st, was_available).await;
}

/// Presence for a local account (the recipient's side).
async fn inbound(cx: Context, st: Stanza, approval: &SubscriptionApproval) -> Flow {
    let (Some(to), Some(from)) = (st.to().cloned(), st.from().cloned()) else {
        tracing::debug!("not delivering presence: it lacks 'to' or 'from'");
        return Flow::Stop;
    };
    let Some(user) = to.node().map(str::to_string) else {
        return Flow::Continue(st);
    };
    match st.type_attr() {
        None | Some("unavailable" | "error") => deliver_presence(&cx.server, &to, &st),
        Some("probe") => probe(&cx, &user, &to.to_bare(), &from).await,
        Some(t) => {
            if let Some(type_) = SubscriptionType::parse(t) {
                // A subscription stanza to a full JID counts as sent to the bare JID (§3.1.3).
                let (account, contact) = (to.to_bare(), from.to_bare());
                subscription_in(&cx, approval, &user, &account, &contact, type_, st).await;
            }
        }
    }
    Flow::Stop
}

/// To a full JID: that session only, else dropped (§8.5.3.2.1). To a bare JID: every available
/// resource, whatever its priority (§8.5.2.1.1).
fn deliver_presence(server: &Arc<Server>, to: &Jid, st: &Stanza) {
    if to.is_full() {
        match server.sessions.get(to) {
            Some(s) => {
                server.deliver(&s, st);
            }
            None => tracing::debug!(to = %to, "not delivering presence: no such resource"),
        }
        return;
    }
    let mut delivered = false;
    for s in server.sessions.of(to.bare()) {
        if s.is_available() {
            delivered |= server.deliver(&s, st);
        }
    }
    if !delivered {
        tracing::trace!(to = %to, "not delivering presence: no available resource");
    }
}

/// RFC 6121 §4.3.2: answer a probe only for entities allowed to see the user's presence; anyone
/// else learns nothing, not even that the account exists.
async fn probe(cx: &Context, user: &str, account: &Jid, from: &Jid) {
    let allowed = from.bare() == account.bare()
        || cx
            .store()
            .roster_item(user, &from.bare().to_string())
            .await
            .map_err(store_failed)
            .ok()
            .flatten()
            .is_some_and(|i| has_from(i.subscription));
    if !allowed {
        tracing::debug!(account = %account, prober = %from, "not answering probe: the prober has no subscription");
        return;
    }
    send_current_presence(&cx.server, account, from, true).await;
}

async fn subscription_in(
    cx: &Context,
    approval: &SubscriptionApproval,
    user: &str,
    account: &Jid,
    contact: &Jid,
    type_: SubscriptionType,
    mut st: Stanza,
) {
    let exists = !cx.server.sessions.of(account.bare()).is_empty()
        || cx
            .store()
            .account_exists(user)
            .await
            .map_err(store_failed)
            .unwrap_or(false);
    if !exists {
        // §8.5.1: a request to no such user is answered as refused; the rest is ignored.
        tracing::debug!(account = %account, contact = %contact, type_ = type_.as_str(), "not delivering subscription stanza: no such account");
        if type_ == SubscriptionType::Subscribe {
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
    let mut answer = inbound_transition(before, type_);
    // Only a request that would wait for the user is worth a look for a token.
    if type_ == SubscriptionType::Subscribe
        && !answer.1.auto_approve
        && approval.approves(&cx.server, user, contact, &st).await
    {
        answer = approved_on_behalf_transition(before);
    }
    let (next, fx) = answer;
    st.set_from(Some(contact.clone()));
    st.set_to(Some(account.clone()));
    if next.pending_in && !before.pending_in {
        // §3.1.3: keep the whole request (a nickname may ride along) until it is answered.
        let _ = cx
            .store()
            .pending_in_put(user, &key, &st.to_storage_xml())
            .await
            .map_err(store_failed);
    }
    // The roster push goes first, so a client handling the stanza already sees the new state.
    save(cx, account, user, &key, item, before, next).await;
    if fx.forward {
        // A request goes to the available resources (and waits for the next one, §3.1.3);
        // answers and cancellations to those that hold the roster (§3.1.6, §3.2.3, §3.3.3).
        for s in cx.server.sessions.of(account.bare()) {
            let wanted = if type_ == SubscriptionType::Subscribe {
                s.is_available()
            } else {
                s.presence.lock().expect("presence lock").interested
            };
            if wanted {
                cx.server.deliver(&s, &st);
            }
        }
    } else {
        let reason = if fx.auto_approve {
            "answered on the user's behalf"
        } else {
            "it changes nothing"
        };
        tracing::debug!(account = %account, contact = %contact, type_ = type_.as_str(), reason, "not delivering subscription stanza");
    }
    if fx.auto_approve {
        cx.server
            .route(presence(
                Some("subscribed"),
                account.clone(),
                contact.clone(),
            ))
            .await;
    }
    if fx.send_presence {
        send_current_presence(&cx.server, account, contact, false).await;
    }
    if fx.ask_back {
        cx.server
            .route(presence(
                Some("subscribe"),
                account.clone(),
                contact.clone(),
            ))
            .await;
    }
    if fx.send_unavailable {
        send_unavailable_from_all(&cx.server, account, contact).await;
    }
}

#[cfg(test)]
mod tests {
    use super::SubscriptionType::*;
    use super::*;

    /// A state by its RFC 6121 Appendix A.1 name: "None + Pending Out" is `None+Out`.
    fn state(name: &str) -> State {
        let mut parts = name.split('+');
        let subscription = match parts.next() {
            Some("None") => Subscription::None,
            Some("To") => Subscription::To,
            Some("From") => Subscription::From,
            Some("Both") => Subscription::Both,
            other => panic!("unknown state {other:?}"),
        };
        let rest: Vec<&str> = parts.collect();
        State {
            subscription,
            ask: rest.contains(&"Out"),
            pending_in: rest.contains(&"In"),
            approved: false,
        }
    }

    /// RFC 6121 Appendix A.2 (outbound) and A.3 (inbound), every row: (stanza, existing state,
    /// route or deliver, new state).
    const OUTBOUND: &[(SubscriptionType, &str, bool, &str)] = &[
        // A.2.1
        (Subscribe, "None", true, "None+Out"),
        (Subscribe, "None+Out", true, "None+Out"),
        (Subscribe, "None+In", true, "None+Out+In"),
        (Subscribe, "None+Out+In", true, "None+Out+In"),
        (Subscribe, "To", true, "To"),
        (Subscribe, "To+In", true, "To+In"),
        (Subscribe, "From", true, "From+Out"),
        (Subscribe, "From+Out", true, "From+Out"),
        (Subscribe, "Both", true, "Both"),
        // A.2.2
        (Unsubscribe, "None", true, "None"),
        (Unsubscribe, "None+Out", true, "None"),
        (Unsubscribe, "None+In", true, "None+In"),
        (Unsubscribe, "None+Out+In", true, "None+In"),
        (Unsubscribe, "To", true, "None"),
        (Unsubscribe, "To+In", true, "None+In"),
        (Unsubscribe, "From", true, "From"),
        (Unsubscribe, "From+Out", true, "From"),
        (Unsubscribe, "Both", true, "From"),
        // A.2.3 (the rows without a request to approve become pre-approvals, tested below)
        (Subscribed, "None+In", true, "From"),
        (Subscribed, "None+Out+In", true, "From+Out"),
        (Subscribed, "To+In", true, "Both"),
        (Subscribed, "From", false, "From"),
        (Subscribed, "From+Out", false, "From+Out"),
        (Subscribed, "Both", false, "Both"),
        // A.2.4
        (Unsubscribed, "None", false, "None"),
        (Unsubscribed, "None+Out", false, "None+Out"),
        (Unsubscribed, "None+In", true, "None"),
        (Unsubscribed, "None+Out+In", true, "None+Out"),
        (Unsubscribed, "To", false, "To"),
        (Unsubscribed, "To+In", true, "To"),
        (Unsubscribed, "From", true, "None"),
        (Unsubscribed, "From+Out", true, "None+Out"),
        (Unsubscribed, "Both", true, "To"),
    ];

    const INBOUND: &[(SubscriptionType, &str, bool, &str)] = &[
        // A.3.1 (From, From+Out and Both are answered for the user, tested below)
        (Subscribe, "None", true, "None+In"),
        (Subscribe, "None+Out", true, "None+Out+In"),
        (Subscribe, "None+In", false, "None+In"),
        (Subscribe, "None+Out+In", false, "None+Out+In"),
        (Subscribe, "To", true, "To+In"),
        (Subscribe, "To+In", false, "To+In"),
        (Subscribe, "From", false, "From"),
        (Subscribe, "From+Out", false, "From+Out"),
        (Subscribe, "Both", false, "Both"),
        // A.3.2
        (Unsubscribe, "None", false, "None"),
        (Unsubscribe, "None+Out", false, "None+Out"),
        (Unsubscribe, "None+In", true, "None"),
        (Unsubscribe, "None+Out+In", true, "None+Out"),
        (Unsubscribe, "To", false, "To"),
        (Unsubscribe, "To+In", true, "To"),
        (Unsubscribe, "From", true, "None"),
        (Unsubscribe, "From+Out", true, "None+Out"),
        (Unsubscribe, "Both", true, "To"),
        // A.3.3
        (Subscribed, "None", false, "None"),
        (Subscribed, "None+Out", true, "To"),
        (Subscribed, "None+In", false, "None+In"),
        (Subscribed, "None+Out+In", true, "To+In"),
        (Subscribed, "To", false, "To"),
        (Subscribed, "To+In", false, "To+In"),
        (Subscribed, "From", false, "From"),
        (Subscribed, "From+Out", true, "Both"),
        (Subscribed, "Both", false, "Both"),
        // A.3.4
        (Unsubscribed, "None", false, "None"),
        (Unsubscribed, "None+Out", true, "None"),
        (Unsubscribed, "None+In", false, "None+In"),
        (Unsubscribed, "None+Out+In", true, "None+In"),
        (Unsubscribed, "To", true, "None"),
        (Unsubscribed, "To+In", true, "None+In"),
        (Unsubscribed, "From", false, "From"),
        (Unsubscribed, "From+Out", true, "From"),
        (Unsubscribed, "Both", true, "From"),
    ];

    #[test]
    fn appendix_a_state_tables() {
        for (outbound, table) in [(true, OUTBOUND), (false, INBOUND)] {
            for &(type_, before, forward, after) in table {
                let (next, fx) = if outbound {
                    outbound_transition(state(before), type_)
                } else {
                    inbound_transition(state(before), type_)
                };
                let dir = if outbound { "outbound" } else { "inbound" };
                assert_eq!(next, state(after), "{dir} {type_:?} in {before}");
                assert_eq!(fx.forward, forward, "{dir} {type_:?} in {before}: forward");
            }
        }
    }

    #[test]
    fn approving_and_cancelling_send_presence() {
        let (_, fx) = outbound_transition(state("None+In"), Subscribed);
        assert!(fx.send_presence && !fx.send_unavailable);
        for s in ["From", "Both", "From+Out"] {
            let (_, fx) = outbound_transition(state(s), Unsubscribed);
            assert!(fx.send_unavailable, "cancelling {s}");
            // §3.3.3: the contact drops its subscription and stops seeing the user.
            let (_, fx) = inbound_transition(state(s), Unsubscribe);
            assert!(fx.send_unavailable, "inbound unsubscribe in {s}");
        }
        // Denying a request tells the contact no presence to withdraw.
        let (_, fx) = outbound_transition(state("None+In"), Unsubscribed);
        assert!(fx.forward && !fx.send_unavailable);
        let (_, fx) = inbound_transition(state("None+In"), Unsubscribe);
        assert!(fx.forward && !fx.send_unavailable);
    }

    /// §3.1.3 step 2: an existing subscription is confirmed without asking the user.
    #[test]
    fn subscribe_when_subscribed_is_answered() {
        for s in ["From", "From+Out", "Both"] {
            let (next, fx) = inbound_transition(state(s), Subscribe);
            assert_eq!(next, state(s));
            assert_eq!(
                fx,
                Effects {
                    forward: false,
                    auto_approve: true,
                    send_presence: true,
                    send_unavailable: false,
                    ask_back: false,
                },
                "{s}"
            );
        }
    }

    /// §3.4: `subscribed` without a request pre-approves; the next request is granted at once
    /// and uses the approval up; `unsubscribed` withdraws it silently.
    #[test]
    fn pre_approval() {
        for s in ["None", "None+Out", "To"] {
            let (next, fx) = outbound_transition(state(s), Subscribed);
            assert_eq!(
                next,
                State {
                    approved: true,
                    ..state(s)
                },
                "{s}"
            );
            assert_eq!(fx, Effects::default(), "pre-approving in {s} sends nothing");
        }
        let approved = |s: &str| State {
            approved: true,
            ..state(s)
        };
        for (before, after) in [("None", "From"), ("None+Out", "From+Out"), ("To", "Both")] {
            let (next, fx) = inbound_transition(approved(before), Subscribe);
            assert_eq!(next, state(after), "{before}");
            assert!(
                fx.auto_approve && fx.send_presence && !fx.forward,
                "{before}"
            );
        }
        let (next, fx) = outbound_transition(approved("None"), Unsubscribed);
        assert_eq!((next, fx), (state("None"), Effects::default()));
        // Approving an actual request clears a stale pre-approval too.
        let (next, _) = outbound_transition(approved("None+In"), Subscribed);
        assert_eq!(next, state("From"));
    }

    /// XEP-0379: a request approved with a token is granted, waiting or not, and the user asks
    /// back only without a subscription to the contact or a request of their own.
    #[test]
    fn approval_on_the_users_behalf_asks_back() {
        for (before, after, ask_back) in [
            ("None", "From+Out", true),
            ("None+In", "From+Out", true),
            ("None+Out", "From+Out", false),
            ("None+Out+In", "From+Out", false),
            ("To", "Both", false),
            ("To+In", "Both", false),
        ] {
            let (next, fx) = approved_on_behalf_transition(state(before));
            assert_eq!(next, state(after), "{before}");
            assert_eq!(
                fx,
                Effects {
                    forward: false,
                    auto_approve: true,
                    send_presence: true,
                    send_unavailable: false,
                    ask_back,
                },
                "{before}"
            );
        }
    }

    #[test]
    fn subscription_types() {
        for t in [Subscribe, Subscribed, Unsubscribe, Unsubscribed] {
            assert_eq!(SubscriptionType::parse(t.as_str()), Some(t));
        }
        assert_eq!(SubscriptionType::parse("probe"), None);
    }

    #[test]
    fn priority_is_clamped() {
        let p = |xml: &str| priority_of(&xml.parse::<Element>().unwrap());
        let wrap = |v: &str| {
            format!("<presence xmlns='jabber:client'><priority>{v}</priority></presence>")
        };
        assert_eq!(p("<presence xmlns='jabber:client'/>"), 0);
        assert_eq!(p(&wrap("5")), 5);
        assert_eq!(p(&wrap(" -1 ")), -1);
        assert_eq!(p(&wrap("+7")), 7);
        assert_eq!(p(&wrap("1000")), 127);
        assert_eq!(p(&wrap("-1000")), -128);
        assert_eq!(p(&wrap("high")), 0);
    }
}
