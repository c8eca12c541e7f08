//! RFC 6121 §8: delivery of messages to local accounts — bare vs full JID, priorities, negative
//! priority, and what happens when no resource can take a message (the `message/offline` event).

use std::sync::Arc;

use hearth_core::module::{Module, Registrar, Spec, SupportStatus};
use hearth_core::router::{Context, Flow};
use hearth_core::server::Server;
use hearth_core::session::Session;
use hearth_core::stanza::{Condition, Stanza};
use serde::Deserialize;

/// Fired when a chat or normal message reaches an existing account with no resource able to take
/// it (none available, or all with negative priority). A handler that keeps the message (offline
/// storage) stops the event; if none does, the sender gets `service-unavailable`.
pub use hearth_core::router::OFFLINE_EVENT;

pub struct Message;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {}

impl Module for Message {
    const NAME: &'static str = "message";
    const SPECS: &'static [Spec] = &[Spec {
        id: "RFC 6121",
        version: "",
        status: SupportStatus::Complete,
        note: "§8 message delivery rules (chat and normal to all non-negative-priority resources)",
    }];
    type Config = Config;

    fn init(_: Config, reg: &mut Registrar) -> anyhow::Result<Arc<Self>> {
        reg.hook(
            "message/bare",
            0,
            |cx, st| async move { to_bare(cx, st).await },
        );
        reg.hook(
            "message/full",
            0,
            |cx, st| async move { to_full(cx, st).await },
        );
        Ok(Arc::new(Message))
    }
}

/// Which resources get a message sent to the bare JID (RFC 6121 §8.5.2.1): every available
/// resource with non-negative priority. Delivering chat to all of them, not only the highest,
/// keeps a user's devices in step (as Prosody does).
fn bare_recipients(sessions: &[Arc<Session>]) -> Vec<&Arc<Session>> {
    sessions
        .iter()
        .filter(|s| {
            let p = s.presence.lock().expect("presence lock");
            p.available && p.priority >= 0
        })
        .collect()
}

async fn to_bare(cx: Context, st: Stanza) -> Flow {
    let Some(to) = st.to().cloned() else {
        // A message without 'to' is addressed to the sender's own account (RFC 6120 §10.3.3).
        let mut st = st;
        let own = st.from().map(|f| f.to_bare());
        st.set_to(own);
        if st.to().is_none() {
            return Flow::Stop;
        }
        return Box::pin(to_bare(cx, st)).await;
    };
    let server = &cx.server;
    let sessions = server.sessions.of(to.bare());
    match st.stanza_type() {
        "error" => return Flow::Stop,
        "groupchat" => {
            server
                .bounce(&st, Condition::ServiceUnavailable.into())
                .await;
            return Flow::Stop;
        }
        _ => {}
    }
    let recipients = bare_recipients(&sessions);
    if !recipients.is_empty() {
        for s in recipients {
            server.deliver(s, &st);
        }
        return Flow::Stop;
    }
    if st.stanza_type() == "headline" {
        tracing::trace!(to = %to, "not delivering headline: no available resource");
        return Flow::Stop;
    }
    undeliverable(&cx, &to, st, !sessions.is_empty()).await
}

async fn to_full(cx: Context, st: Stanza) -> Flow {
    let Some(to) = st.to().cloned() else {
        return Flow::Continue(st);
    };
    if let Some(session) = cx.server.sessions.get(&to) {
        cx.server.deliver(&session, &st);
        return Flow::Stop;
    }
    // RFC 6121 §8.5.3.2.1: no such resource.
    match st.stanza_type() {
        "normal" | "chat" => {
            let mut bare = st;
            bare.set_to(Some(to.to_bare()));
            to_bare(cx, bare).await
        }
        "groupchat" => {
            cx.server
                .bounce(&st, Condition::ServiceUnavailable.into())
                .await;
            Flow::Stop
        }
        _ => Flow::Stop,
    }
}

/// A chat/normal message no resource can take: offer it to offline storage, else bounce.
/// `online` skips the account look-up: an account with sessions exists.
async fn undeliverable(cx: &Context, to: &hearth_core::jid::Jid, st: Stanza, online: bool) -> Flow {
    let server: &Arc<Server> = &cx.server;
    let exists = online
        || match to.node() {
            Some(user) => server.store.account_exists(user).await.unwrap_or_else(|e| {
                tracing::error!(error = %e, "account look-up failed");
                false
            }),
            None => false,
        };
    if exists {
        if let Flow::Continue(st) = server.fire(OFFLINE_EVENT, cx.clone(), st).await {
            server
                .bounce(&st, Condition::ServiceUnavailable.into())
                .await;
        }
    } else {
        // Same answer as for an account that refuses the message: existence is not revealed
        // beyond what RFC 6121 §8.5.1 allows.
        server
            .bounce(&st, Condition::ServiceUnavailable.into())
            .await;
    }
    Flow::Stop
}
