//! Who hears about PEP changes: the owner's clients, and contacts allowed to read the node
//! whose entity capabilities ask for it (`<node>+notify`, XEP-0163 §4.4). Clients' caps are
//! learned from their presence and verified (XEP-0115 §5.4) before they are believed.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use hearth_core::jid::Jid;
use hearth_core::module::Registrar;
use hearth_core::ns::DISCO_INFO;
use hearth_core::router::{Context, Flow};
use hearth_core::server::Server;
use hearth_core::session::Session;
use hearth_core::stanza::{Kind, Stanza, ncname};
use hearth_store::{PubsubItem, Subscription};
use minidom::Element;

use super::{Access, NS_EVENT, NodeConfig, Pep, allowed, item_element};
use crate::caps::{NS_CAPS, ver};

/// Cached caps at most (distinct client versions; the cache starts over beyond).
const MAX_CACHED: usize = 10_000;
const ID_PREFIX: &str = "caps-";

pub enum Event<'a> {
    Published(&'a PubsubItem),
    Retracted(&'a str),
    Deleted,
}

/// Per session: its caps verification string and, once verified, its features.
#[derive(Debug, Clone, Default)]
struct ClientCaps {
    ver: String,
    features: Option<Arc<Vec<String>>>,
}

fn wants(session: &Session, node: &str) -> bool {
    let notify = format!("{node}+notify");
    session
        .ext::<ClientCaps>()
        .and_then(|c| c.features)
        .is_some_and(|f| f.contains(&notify))
}

pub(super) fn register(pep: &Arc<Pep>, reg: &mut Registrar) {
    reg.hook_with("pre-presence/bare", 20, pep, |m, cx, st| async move {
        m.presence(&cx, &st);
        Flow::Continue(st)
    });
    reg.hook_with("iq/host", 10, pep, |m, cx, st| async move {
        m.disco_answer(cx, st).await
    });
}

/// The notification, without `to`: its copies share one serialisation.
fn event_message(owner: &Jid, node: &str, event: &Event<'_>, payloads: bool) -> Stanza {
    let mut items = Element::builder("items", NS_EVENT)
        .attr(ncname("node"), node)
        .build();
    if let Event::Deleted = event {
        items = Element::builder("delete", NS_EVENT)
            .attr(ncname("node"), node)
            .build();
    }
    match event {
        Event::Published(item) if payloads => {
            items.append_child(item_element(NS_EVENT, item));
        }
        Event::Published(item) => {
            items.append_child(
                Element::builder("item", NS_EVENT)
                    .attr(ncname("id"), item.id.as_str())
                    .build(),
            );
        }
        Event::Retracted(id) => {
            items.append_child(
                Element::builder("retract", NS_EVENT)
                    .attr(ncname("id"), *id)
                    .build(),
            );
        }
        Event::Deleted => {}
    }
    let mut msg = Stanza::new(Kind::Message);
    msg.set_type(Some("headline"));
    msg.set_from(Some(owner.clone()));
    msg.element_mut()
        .append_child(Element::builder("event", NS_EVENT).append(items).build());
    msg
}

impl Pep {
    /// Notifies the owner's clients and the contacts who may and want to hear.
    pub(super) async fn broadcast(
        &self,
        cx: &Context,
        owner: &str,
        node: &str,
        config: &NodeConfig,
        event: Event<'_>,
    ) {
        let server = &cx.server;
        let Ok(owner_jid) = Jid::parse(&format!("{owner}@{}", server.domain())) else {
            return;
        };
        let mut targets: Vec<Arc<Session>> = server
            .sessions
            .of(owner_jid.bare())
            .into_iter()
            .filter(|s| s.is_available())
            .collect();
        if config.access_model != Access::Whitelist
            && let Ok((_, roster)) = server.store.roster(owner).await
        {
            for item in roster
                .iter()
                .filter(|i| matches!(i.subscription, Subscription::From | Subscription::Both))
            {
                let Ok(contact) = Jid::parse(&item.contact) else {
                    continue;
                };
                if !server.is_local_domain(contact.domain()) {
                    continue;
                }
                targets.extend(
                    server
                        .sessions
                        .of(contact.bare())
                        .into_iter()
                        .filter(|s| s.is_available() && wants(s, node)),
                );
            }
        }
        let shared = event_message(&owner_jid, node, &event, config.deliver_payloads);
        for session in targets {
            let mut msg = shared.clone();
            msg.set_to(Some(session.jid.clone()));
            server.deliver(&session, &msg);
        }
    }

    /// Available presence from a local client: learn its caps.
    fn presence(self: &Arc<Self>, cx: &Context, st: &Stanza) {
        let Some(session) = cx.session() else { return };
        if st.kind() != Kind::Presence || st.type_attr().is_some() || st.to().is_some() {
            return;
        }
        let Some(c) = st.element().get_child("c", NS_CAPS) else {
            return;
        };
        let (Some(v), Some(node), Some("sha-1")) = (c.attr("ver"), c.attr("node"), c.attr("hash"))
        else {
            return;
        };
        if session.ext::<ClientCaps>().is_some_and(|c| c.ver == v) {
            return;
        }
        let known = self.caps.lock().expect("caps lock").get(v).cloned();
        session.with_ext(|c: &mut ClientCaps| {
            c.ver = v.to_string();
            c.features = known.clone();
        });
        if known.is_some() {
            self.spawn_last_items(&cx.server, session.clone());
            return;
        }
        let id = format!(
            "{ID_PREFIX}{}",
            self.next_id.fetch_add(1, Ordering::Relaxed)
        );
        self.pending
            .lock()
            .expect("caps lock")
            .insert(id.clone(), (v.to_string(), session.jid.clone()));
        let mut iq = Stanza::new(Kind::Iq);
        iq.set_type(Some("get"));
        iq.set_id(Some(&id));
        iq.set_from(Jid::domain_jid(cx.server.domain()).ok());
        iq.set_to(Some(session.jid.clone()));
        iq.element_mut().append_child(
            Element::builder("query", DISCO_INFO)
                .attr(ncname("node"), format!("{node}#{v}"))
                .build(),
        );
        cx.server.deliver(session, &iq);
    }

    /// A client's answer to the caps disco#info: believed only if it hashes to its ver.
    async fn disco_answer(self: &Arc<Self>, cx: Context, st: Stanza) -> Flow {
        let Some(id) = st
            .id()
            .filter(|id| st.kind() == Kind::Iq && id.starts_with(ID_PREFIX))
        else {
            return Flow::Continue(st);
        };
        if !matches!(st.type_attr(), Some("result" | "error")) {
            return Flow::Continue(st);
        }
        let Some((v, jid)) = self.pending.lock().expect("caps lock").remove(id) else {
            return Flow::Stop;
        };
        let Some(query) = st.element().get_child("query", DISCO_INFO) else {
            return Flow::Stop;
        };
        if st.from() != Some(&jid) || ver(query) != v {
            tracing::debug!(%jid, "client caps do not match their hash; not using them");
            return Flow::Stop;
        }
        let features: Arc<Vec<String>> = Arc::new(
            query
                .children()
                .filter(|c| c.is("feature", DISCO_INFO))
                .filter_map(|f| f.attr("var").map(str::to_string))
                .collect(),
        );
        {
            let mut cache = self.caps.lock().expect("caps lock");
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
            cache.insert(v.clone(), features.clone());
        }
        if let Some(session) = cx.server.sessions.get(&jid) {
            session.with_ext(|c: &mut ClientCaps| {
                if c.ver == v {
                    c.features = Some(features);
                }
            });
            self.spawn_last_items(&cx.server, session);
        }
        Flow::Stop
    }

    fn spawn_last_items(self: &Arc<Self>, server: &Arc<Server>, session: Arc<Session>) {
        let (this, server) = (self.clone(), server.clone());
        tokio::spawn(async move { this.last_items(&server, &session).await });
    }

    /// XEP-0163 §6.1.1: a client that comes online gets the latest item of each node it
    /// wants, from its own account and from contacts whose presence it receives.
    async fn last_items(&self, server: &Arc<Server>, session: &Arc<Session>) {
        let Some(user) = session.jid.node() else {
            return;
        };
        let Some(features) = session.ext::<ClientCaps>().and_then(|c| c.features) else {
            return;
        };
        let wanted: Vec<&str> = features
            .iter()
            .filter_map(|f| f.strip_suffix("+notify"))
            .collect();
        if wanted.is_empty() {
            return;
        }
        let mut owners = vec![user.to_string()];
        if let Ok((_, roster)) = server.store.roster(user).await {
            owners.extend(
                roster
                    .into_iter()
                    .filter(|i| matches!(i.subscription, Subscription::To | Subscription::Both))
                    .filter_map(|i| Jid::parse(&i.contact).ok())
                    .filter(|j| server.is_local_domain(j.domain()))
                    .filter_map(|j| j.node().map(str::to_string)),
            );
        }
        let cx = Context::new(server.clone(), hearth_core::router::Origin::Server);
        for owner in owners {
            let Ok(nodes) = server.store.pubsub_nodes(&owner).await else {
                continue;
            };
            let Ok(owner_jid) = Jid::parse(&format!("{owner}@{}", server.domain())) else {
                continue;
            };
            for (node, config) in nodes.iter().filter(|(n, _)| wanted.contains(&n.as_str())) {
                let config = NodeConfig::from_lines(config);
                if config.send_last_published_item == "never"
                    || allowed(&cx, &owner, &session.jid, config.access_model)
                        .await
                        .is_err()
                {
                    continue;
                }
                if let Ok(items) = server.store.pubsub_items(&owner, node, Some(1), None).await
                    && let Some(item) = items.last()
                {
                    let mut msg = event_message(
                        &owner_jid,
                        node,
                        &Event::Published(item),
                        config.deliver_payloads,
                    );
                    msg.set_to(Some(session.jid.clone()));
                    server.deliver(session, &msg);
                }
            }
        }
    }
}
