//! Blocking Command (XEP-0191): a user blocks a contact, a whole server or one resource; the
//! blocked party sees the user as offline, and the user cannot write to it by mistake.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hearth_core::jid::Jid;
use hearth_core::module::{DiscoScope, IqTarget, IqType, Module, Registrar, Spec, SupportStatus};
use hearth_core::router::{Context, Flow, IqResult};
use hearth_core::server::Server;
use hearth_core::stanza::{Condition, Kind, Stanza, StanzaError, ncname};
use hearth_store::Subscription;
use minidom::Element;
use serde::Deserialize;

pub const NS_BLOCKING: &str = "urn:xmpp:blocking";
const NS_ERRORS: &str = "urn:xmpp:blocking:errors";

/// Per session: it requested the blocklist, so it gets blocklist pushes (XEP-0191 §3.3).
#[derive(Debug, Clone, Copy, Default)]
struct Interested(bool);

pub struct Blocking {
    max_items: usize,
    /// Blocklists by account, loaded on first use: the check runs for every stanza.
    lists: Mutex<HashMap<String, Arc<Vec<Jid>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Most JIDs one account may block.
    pub max_items: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self { max_items: 1000 }
    }
}

impl Module for Blocking {
    const NAME: &'static str = "blocking";
    const SPECS: &'static [Spec] = &[Spec {
        id: "XEP-0191",
        version: "1.3",
        status: SupportStatus::Complete,
        note: "XEP-0016 JID matching; polite blocking (subscriptions are kept)",
    }];
    type Config = Config;

    fn init(cfg: Config, reg: &mut Registrar) -> anyhow::Result<Arc<Self>> {
        let this = Arc::new(Blocking {
            max_items: cfg.max_items,
            lists: Mutex::default(),
        });
        reg.feature(DiscoScope::Host, NS_BLOCKING);
        reg.iq_with(
            IqType::Get,
            IqTarget::Account,
            NS_BLOCKING,
            "blocklist",
            &this,
            |m, cx, st| async move { m.get(cx, st).await },
        );
        for name in ["block", "unblock"] {
            reg.iq_with(
                IqType::Set,
                IqTarget::Account,
                NS_BLOCKING,
                name,
                &this,
                |m, cx, st| async move { m.set(cx, st).await },
            );
        }
        for kind in ["message", "presence", "iq"] {
            for target in ["bare", "full"] {
                reg.hook_with(
                    &format!("{kind}/{target}"),
                    100,
                    &this,
                    |m, cx, st| async move { m.inbound(cx, st).await },
                );
            }
            for target in ["bare", "full", "host"] {
                reg.hook_with(
                    &format!("pre-{kind}/{target}"),
                    100,
                    &this,
                    |m, cx, st| async move { m.outbound(cx, st).await },
                );
            }
        }
        Ok(this)
    }
}

/// XEP-0191 §5 (the XEP-0016 order): a full JID matches itself, a bare JID any of its
/// resources, `domain/resource` only that resource of the domain, a domain everything in it.
pub fn matches(item: &Jid, jid: &Jid) -> bool {
    match (item.node(), item.resource()) {
        (Some(_), Some(_)) => item == jid,
        (Some(_), None) => item.bare() == jid.bare(),
        (None, Some(r)) => {
            jid.node().is_none() && jid.domain() == item.domain() && jid.resource() == Some(r)
        }
        (None, None) => jid.domain() == item.domain(),
    }
}

fn items(payload: &Element) -> Result<Vec<Jid>, StanzaError> {
    payload
        .children()
        .filter(|c| c.is("item", NS_BLOCKING))
        .map(|c| {
            c.attr("jid")
                .and_then(|j| Jid::parse(j).ok())
                .ok_or_else(|| {
                    StanzaError::new(Condition::JidMalformed)
                        .with_text("an item needs a valid 'jid'")
                })
        })
        .collect()
}

fn list_element(name: &str, jids: &[Jid]) -> Element {
    let mut el = Element::bare(name, NS_BLOCKING);
    for j in jids {
        el.append_child(
            Element::builder("item", NS_BLOCKING)
                .attr(ncname("jid"), j.to_string())
                .build(),
        );
    }
    el
}

impl Blocking {
    /// The account's blocklist (cached).
    async fn list(&self, server: &Server, user: &str) -> Arc<Vec<Jid>> {
        if let Some(l) = self.lists.lock().expect("blocklist lock").get(user) {
            return l.clone();
        }
        let jids: Vec<Jid> = match server.store.blocklist(user).await {
            Ok(l) => l.iter().filter_map(|j| Jid::parse(j).ok()).collect(),
            Err(e) => {
                // Without the list nothing can be blocked; say so rather than fail delivery.
                tracing::error!(error = %e, account = %user, "cannot read the blocklist; not blocking for now");
                return Arc::default();
            }
        };
        let list = Arc::new(jids);
        self.lists
            .lock()
            .expect("blocklist lock")
            .insert(user.to_string(), list.clone());
        list
    }

    async fn blocks(&self, server: &Server, user: &Jid, other: &Jid) -> bool {
        let Some(node) = user
            .node()
            .filter(|_| server.is_local_domain(user.domain()))
        else {
            return false;
        };
        // One's own resources are never blocked (XEP-0191 §4), nor is one's own server
        // (its answers and pings keep the session alive).
        if other.bare() == user.bare()
            || (other.node().is_none()
                && server.is_local_domain(other.domain())
                && other.resource().is_none())
        {
            return false;
        }
        self.list(server, node)
            .await
            .iter()
            .any(|item| matches(item, other))
    }

    /// A stanza for a local account from someone it blocks: the account looks offline.
    async fn inbound(&self, cx: Context, st: Stanza) -> Flow {
        let (Some(to), Some(from)) = (st.to(), st.from()) else {
            return Flow::Continue(st);
        };
        // The errors hearth itself answers in the blocked JID's name (a refused outbound
        // stanza) do reach the user.
        let own_error =
            st.stanza_type() == "error" && matches!(cx.origin, hearth_core::router::Origin::Server);
        if !own_error && self.blocks(&cx.server, to, from).await {
            match (st.kind(), st.stanza_type()) {
                (Kind::Presence, _) | (_, "error") | (Kind::Iq, "result") => {}
                _ => {
                    cx.server
                        .bounce(&st, Condition::ServiceUnavailable.into())
                        .await
                }
            }
            return Flow::Stop;
        }
        // Presence the server sends on behalf of a user (broadcasts, probe answers) skips
        // those the user blocks.
        if st.kind() == Kind::Presence
            && matches!(cx.origin, hearth_core::router::Origin::Server)
            && self.blocks(&cx.server, from, to).await
        {
            return Flow::Stop;
        }
        Flow::Continue(st)
    }

    /// A local client writes to someone it blocks: refused (XEP-0191 §3.3).
    async fn outbound(&self, cx: Context, st: Stanza) -> Flow {
        let (Some(to), Some(from)) = (st.to(), st.from()) else {
            return Flow::Continue(st);
        };
        if !self.blocks(&cx.server, from, to).await {
            return Flow::Continue(st);
        }
        if st.kind() != Kind::Presence {
            let err = StanzaError::new(Condition::NotAcceptable)
                .with_app(Element::bare("blocked", NS_ERRORS));
            cx.server.bounce(&st, err).await;
        }
        Flow::Stop
    }

    async fn get(&self, cx: Context, st: Stanza) -> IqResult {
        let (Some(session), Some(user)) = (cx.session(), st.from().and_then(|f| f.node())) else {
            return Err(Condition::BadRequest.into());
        };
        own(&st)?;
        session.with_ext(|i: &mut Interested| i.0 = true);
        Ok(Some(list_element(
            "blocklist",
            &self.list(&cx.server, user).await,
        )))
    }

    async fn set(&self, cx: Context, st: Stanza) -> IqResult {
        let (Some(from), Some(payload)) = (st.from(), st.iq_payload()) else {
            return Err(Condition::BadRequest.into());
        };
        own(&st)?;
        let user = from.node().unwrap_or_default().to_string();
        let jids = items(payload)?;
        let block = payload.name() == "block";
        let store = cx.store();
        let strings = || jids.iter().map(Jid::to_string).collect::<Vec<_>>();
        let current = self.list(&cx.server, &user).await;
        let result = if block {
            if jids.is_empty() {
                return Err(StanzaError::new(Condition::BadRequest)
                    .with_text("name at least one JID to block"));
            }
            let new = jids.iter().filter(|j| !current.contains(j)).count();
            if current.len() + new > self.max_items {
                return Err(StanzaError::new(Condition::ResourceConstraint)
                    .with_text(format!("at most {} JIDs may be blocked", self.max_items)));
            }
            // Sent while the contact is not blocked yet, so it passes.
            self.presence_to(&cx, from, &jids, true).await;
            store.blocklist_add(&user, strings()).await
        } else {
            store
                .blocklist_remove(&user, (!jids.is_empty()).then(strings))
                .await
        };
        result.map_err(|e| {
            tracing::error!(error = %e, account = %user, "cannot store the blocklist");
            StanzaError::new(Condition::InternalServerError)
        })?;
        self.lists.lock().expect("blocklist lock").remove(&user);
        self.push(&cx, from, list_element(payload.name(), &jids))
            .await;
        if !block {
            let unblocked = if jids.is_empty() {
                current.to_vec()
            } else {
                jids
            };
            self.presence_to(&cx, from, &unblocked, false).await;
        }
        Ok(None)
    }

    /// The change, to every resource of the user that asked for the blocklist.
    async fn push(&self, cx: &Context, user: &Jid, payload: Element) {
        for session in cx.server.sessions.of(user.bare()) {
            if !session.ext::<Interested>().is_some_and(|i| i.0) {
                continue;
            }
            let mut iq = Stanza::new(Kind::Iq);
            iq.set_type(Some("set"));
            iq.set_id(Some(&format!("block-{}", session.id)));
            iq.set_to(Some(session.jid.clone()));
            iq.element_mut().append_child(payload.clone());
            cx.server.deliver(&session, &iq);
        }
    }

    /// Blocking sends unavailable presence to contacts allowed to see the user's presence;
    /// unblocking sends them its current presence (XEP-0191 §3.3, §3.4).
    async fn presence_to(&self, cx: &Context, user: &Jid, jids: &[Jid], block: bool) {
        let Some(node) = user.node() else { return };
        let sessions = cx.server.sessions.of(user.bare());
        for jid in jids {
            let subscribed = matches!(
                cx.store().roster_item(node, &jid.to_bare().to_string()).await,
                Ok(Some(item)) if matches!(item.subscription, Subscription::From | Subscription::Both)
            );
            if !subscribed {
                continue;
            }
            for session in sessions.iter().filter(|s| s.is_available()) {
                let mut presence = if block {
                    let mut p = Stanza::new(Kind::Presence);
                    p.set_type(Some("unavailable"));
                    p
                } else {
                    let last = session.presence.lock().expect("presence lock").last.clone();
                    match last.and_then(|el| Stanza::from_element(el).ok()) {
                        Some(p) => p,
                        None => continue,
                    }
                };
                presence.set_from(Some(session.jid.clone()));
                presence.set_to(Some(jid.clone()));
                cx.server.route(presence).await;
            }
        }
    }
}

fn own(st: &Stanza) -> Result<(), StanzaError> {
    if st
        .to()
        .is_some_and(|to| Some(to.to_bare()) != st.from().map(|f| f.to_bare()))
    {
        return Err(StanzaError::new(Condition::Forbidden)
            .with_text("a blocklist belongs to its account alone"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jid_matching_order() {
        let j = |s| Jid::parse(s).unwrap();
        assert!(matches(&j("a@x/r"), &j("a@x/r")));
        assert!(!matches(&j("a@x/r"), &j("a@x/s")));
        assert!(matches(&j("a@x"), &j("a@x/anything")));
        assert!(!matches(&j("a@x"), &j("b@x")));
        assert!(matches(&j("x/r"), &j("x/r")));
        assert!(!matches(&j("x/r"), &j("a@x/r")));
        assert!(matches(&j("x"), &j("a@x/r")));
        assert!(matches(&j("x"), &j("x")));
        assert!(!matches(&j("x"), &j("a@y")));
    }
}
