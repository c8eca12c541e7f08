//! XEP-0160: Best Practices for Handling Offline Messages, with XEP-0203 delay stamps and the
//! XEP-0334 `no-store` hint. Messages are removed from storage only after they were handed to a
//! session, so a crash during delivery loses nothing.

use std::sync::Arc;
use std::time::SystemTime;

use hearth_core::module::{DiscoScope, Module, Registrar, Spec, SupportStatus};
use hearth_core::router::{Context, Flow};
use hearth_core::stanza::{Condition, Stanza, StanzaError, ncname};
use minidom::Element;
use serde::Deserialize;

use crate::message::OFFLINE_EVENT;

const NS_HINTS: &str = "urn:xmpp:hints";
const NS_CHATSTATES: &str = "http://jabber.org/protocol/chatstates";

pub struct Offline {
    max_per_user: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Most messages kept for one offline user; further ones are bounced to the sender.
    pub max_messages_per_user: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_messages_per_user: 1000,
        }
    }
}

impl Module for Offline {
    const NAME: &'static str = "offline";
    const SPECS: &'static [Spec] = &[
        Spec {
            id: "XEP-0160",
            version: "1.0.1",
            status: SupportStatus::Complete,
            note: "delivered on the first available presence with non-negative priority",
        },
        Spec {
            id: "XEP-0203",
            version: "2.0",
            status: SupportStatus::Complete,
            note: "stamps on offline messages",
        },
        Spec {
            id: "XEP-0334",
            version: "1.0.0",
            status: SupportStatus::Partial,
            note: "no-store and store hints for offline storage",
        },
    ];
    type Config = Config;

    fn init(cfg: Config, reg: &mut Registrar) -> anyhow::Result<Arc<Self>> {
        anyhow::ensure!(
            cfg.max_messages_per_user > 0,
            "max_messages_per_user must be at least 1"
        );
        let this = Arc::new(Offline {
            max_per_user: cfg.max_messages_per_user,
        });
        reg.feature(DiscoScope::Host, "msgoffline");
        reg.hook_with(OFFLINE_EVENT, 0, &this, |m, cx, st| async move {
            m.store(cx, st).await
        });
        reg.hook(crate::presence::INITIAL_EVENT, 0, |cx, st| async move {
            deliver_stored(&cx).await;
            Flow::Continue(st)
        });
        Ok(this)
    }
}

/// Whether a message is worth keeping for later: not when the sender asked not to (XEP-0334),
/// nor when it carries nothing but chat states (typing notifications are stale by then).
pub fn should_store(msg: &Element) -> bool {
    if msg.has_child("no-store", NS_HINTS) || msg.has_child("no-permanent-store", NS_HINTS) {
        return msg.has_child("store", NS_HINTS);
    }
    if msg.has_child("store", NS_HINTS) || msg.has_child("body", hearth_core::ns::CLIENT) {
        return true;
    }
    msg.children()
        .any(|c| c.ns() != NS_CHATSTATES && c.ns() != NS_HINTS && c.name() != "thread")
}

impl Offline {
    async fn store(&self, cx: Context, st: Stanza) -> Flow {
        if !matches!(st.stanza_type(), "normal" | "chat") || !should_store(st.element()) {
            tracing::trace!(
                "not storing offline: message type or hints say it is not worth keeping"
            );
            return Flow::Stop;
        }
        let Some(user) = st.to().and_then(|t| t.node()).map(str::to_string) else {
            return Flow::Continue(st);
        };
        match cx
            .store()
            .offline_push(&user, &st.to_storage_xml(), self.max_per_user)
            .await
        {
            Ok(true) => Flow::Stop,
            Ok(false) => {
                tracing::info!(account = %user, limit = self.max_per_user, "offline storage full; bouncing message (modules.offline.max_messages_per_user)");
                let err = StanzaError::new(Condition::ServiceUnavailable)
                    .with_text("the recipient's offline storage is full");
                cx.server.bounce(&st, err).await;
                Flow::Stop
            }
            Err(e) => {
                tracing::error!(error = %e, account = %user, "cannot store offline message");
                let err = StanzaError::new(Condition::InternalServerError)
                    .with_text("could not store the message");
                cx.server.bounce(&st, err).await;
                Flow::Stop
            }
        }
    }
}

/// On initial presence with non-negative priority: hand every stored message to the session,
/// then remove what was handed over.
async fn deliver_stored(cx: &Context) {
    let Some(session) = cx.session() else { return };
    if session.priority() < 0 {
        return;
    }
    let Some(user) = session.jid.node() else {
        return;
    };
    let messages = match cx.store().offline_list(user).await {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, account = %user, "cannot read offline messages");
            return;
        }
    };
    let domain = cx.server.domain().to_string();
    let mut delivered = 0usize;
    // Removed up to the last one handed over: if the session refuses one (it is closing), that
    // one and the rest stay stored for the next login.
    let mut last = None;
    for m in &messages {
        let Some(mut st) = Stanza::from_storage_xml(&m.stanza_xml) else {
            tracing::warn!(account = %user, id = m.id, "dropping unreadable offline message");
            last = Some(m.id);
            continue;
        };
        st.element_mut().append_child(delay(&domain, m.stamp));
        if !cx.server.deliver(session, &st) {
            break;
        }
        delivered += 1;
        last = Some(m.id);
    }
    let Some(last) = last else { return };
    if let Err(e) = cx.store().offline_remove(user, last).await {
        tracing::error!(error = %e, account = %user, "cannot remove delivered offline messages; they may be delivered again");
    }
    tracing::debug!(account = %user, delivered, "offline messages delivered");
}

/// `<delay xmlns='urn:xmpp:delay' from='domain' stamp='…'/>` (XEP-0203).
fn delay(domain: &str, stamp: SystemTime) -> Element {
    Element::builder("delay", hearth_core::ns::DELAY)
        .attr(ncname("from"), domain)
        .attr(ncname("stamp"), hearth_core::datetime::format(stamp))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(xml: &str) -> Element {
        xml.parse().unwrap()
    }

    #[test]
    fn storage_policy() {
        assert!(should_store(&msg(
            "<message xmlns='jabber:client'><body>hi</body></message>"
        )));
        assert!(!should_store(&msg(
            "<message xmlns='jabber:client'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>"
        )));
        assert!(!should_store(&msg(
            "<message xmlns='jabber:client'><body>x</body><no-store xmlns='urn:xmpp:hints'/></message>"
        )));
        assert!(should_store(&msg(
            "<message xmlns='jabber:client'><x xmlns='jabber:x:conference'/></message>"
        )));
        assert!(should_store(&msg(
            "<message xmlns='jabber:client'><store xmlns='urn:xmpp:hints'/></message>"
        )));
    }
}
