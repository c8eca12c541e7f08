//! Personal Eventing Protocol (XEP-0163) on a pubsub node store (the XEP-0060 subset PEP
//! needs): each account publishes to nodes at its bare JID (OMEMO device lists and bundles,
//! avatars, nicknames, bookmarks), with publish-options (XEP-0223) and access models; contacts
//! get notifications according to their entity capabilities (XEP-0115 `+notify`), and the
//! latest items when they come online.

mod avatar;
mod bookmarks;
pub(crate) mod config;
mod notify;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use hearth_core::jid::Jid;
use hearth_core::module::{DiscoScope, IqTarget, IqType, Module, Registrar, Spec, SupportStatus};
use hearth_core::router::{Context, IqResult};
use hearth_core::stanza::{Condition, Stanza, StanzaError, ncname};
use hearth_store::{PubsubItem, Subscription};
use minidom::Element;
use serde::Deserialize;

pub use config::{Access, NodeConfig};

use crate::conversion::avatar::NS_METADATA;
use crate::conversion::bookmarks::{NS_BOOKMARKS2, NS_LEGACY};

pub const NS_PUBSUB: &str = "http://jabber.org/protocol/pubsub";
pub const NS_OWNER: &str = "http://jabber.org/protocol/pubsub#owner";
pub const NS_EVENT: &str = "http://jabber.org/protocol/pubsub#event";
pub const NS_ERRORS: &str = "http://jabber.org/protocol/pubsub#errors";

/// What works, and is therefore advertised on accounts.
const FEATURES: &[&str] = &[
    "access-open",
    "access-presence",
    "access-roster",
    "access-whitelist",
    "auto-create",
    "auto-subscribe",
    "config-node",
    "config-node-max",
    "create-nodes",
    "delete-items",
    "delete-nodes",
    "filtered-notifications",
    "item-ids",
    "last-published",
    "persistent-items",
    "publish",
    "publish-options",
    "purge-nodes",
    "retract-items",
    "retrieve-default",
    "retrieve-items",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Most items one node keeps (what `max` means in `pubsub#max_items`).
    pub max_items_per_node: usize,
    /// Most nodes one account may have.
    pub max_nodes_per_account: usize,
    /// Largest item payload, in bytes (avatars are the big ones).
    pub max_item_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_items_per_node: 256,
            max_nodes_per_account: 256,
            max_item_bytes: 256 * 1024,
        }
    }
}

pub struct Pep {
    cfg: Config,
    /// Feature lists by caps verification string, verified.
    caps: Mutex<HashMap<String, Arc<Vec<String>>>>,
    /// disco#info requests to clients awaiting an answer: id → (ver, client).
    pending: Mutex<HashMap<String, (String, Jid)>>,
    next_id: AtomicU64,
}

impl Module for Pep {
    const NAME: &'static str = "pep";
    const SPECS: &'static [Spec] = &[
        Spec {
            id: "XEP-0163",
            version: "1.2.2",
            status: SupportStatus::Complete,
            note: "notifications filtered by entity caps; last items sent when a contact comes online",
        },
        Spec {
            id: "XEP-0060",
            version: "1.30.0",
            status: SupportStatus::Partial,
            note: "the subset PEP needs: publish, retract, items, create, configure, delete, purge; no explicit subscriptions",
        },
        Spec {
            id: "XEP-0223",
            version: "1.1.1",
            status: SupportStatus::Complete,
            note: "publish-options preconditions",
        },
        Spec {
            id: "XEP-0384",
            version: "0.9.1",
            status: SupportStatus::Complete,
            note: "device lists and bundles as open PEP nodes (the server side of OMEMO)",
        },
        Spec {
            id: "XEP-0084",
            version: "1.1.4",
            status: SupportStatus::Complete,
            note: "avatar data and metadata nodes",
        },
        Spec {
            id: "XEP-0292",
            version: "0.12.0",
            status: SupportStatus::Partial,
            note: "vCard4 as the urn:xmpp:vcard4 PEP node; not converted to or from vcard-temp",
        },
        Spec {
            id: "XEP-0398",
            version: "1.0.0",
            status: SupportStatus::Complete,
            note: "both ways: PEP avatars become the vCard photo (when the data node is open), and a vCard photo is published as a PEP avatar (open, unless the nodes exist)",
        },
        Spec {
            id: "XEP-0402",
            version: "1.2.0",
            status: SupportStatus::Complete,
            note: "#compat and #compat-pep: kept in step with XEP-0048 bookmarks in private storage and in PEP",
        },
        Spec {
            id: "XEP-0411",
            version: "1.1.0",
            status: SupportStatus::Complete,
            note: "private XML and PEP bookmarks converted both ways (through XEP-0402 items)",
        },
        Spec {
            id: "XEP-0048",
            version: "1.2",
            status: SupportStatus::Complete,
            note: "in private storage and in PEP, mirrored to XEP-0402",
        },
    ];
    type Config = Config;

    fn init(cfg: Config, reg: &mut Registrar) -> anyhow::Result<Arc<Self>> {
        anyhow::ensure!(
            cfg.max_items_per_node >= 1,
            "max_items_per_node must be at least 1"
        );
        let this = Arc::new(Pep {
            cfg,
            caps: Mutex::default(),
            pending: Mutex::default(),
            next_id: AtomicU64::new(1),
        });
        reg.identity(DiscoScope::Account, "pubsub", "pep", None);
        reg.feature(DiscoScope::Account, NS_PUBSUB);
        for f in FEATURES {
            reg.feature(DiscoScope::Account, &format!("{NS_PUBSUB}#{f}"));
        }
        for f in [
            "urn:xmpp:bookmarks:1#compat",
            "urn:xmpp:bookmarks:1#compat-pep",
            "urn:xmpp:bookmarks-conversion:0",
        ] {
            reg.feature(DiscoScope::Account, f);
        }
        reg.feature(DiscoScope::Account, "urn:xmpp:pep-vcard-conversion:0");
        for (type_, ns) in [
            (IqType::Set, NS_PUBSUB),
            (IqType::Get, NS_PUBSUB),
            (IqType::Set, NS_OWNER),
            (IqType::Get, NS_OWNER),
        ] {
            reg.iq_with(
                type_,
                IqTarget::Account,
                ns,
                "pubsub",
                &this,
                |m, cx, st| async move { m.handle(cx, st).await },
            );
        }
        notify::register(&this, reg);
        reg.hook_with("iq/bare", 20, &this, |m, cx, st| async move {
            m.private_write(cx, st).await
        });
        reg.hook_with("iq/bare", 20, &this, |m, cx, st| async move {
            m.vcard_write(cx, st).await
        });
        Ok(this)
    }
}

fn error(condition: Condition, app: Option<&str>) -> StanzaError {
    let e = StanzaError::new(condition);
    match app {
        Some(name) => e.with_app(Element::bare(name, NS_ERRORS)),
        None => e,
    }
}

fn internal(e: hearth_store::StoreError) -> StanzaError {
    tracing::error!(error = %e, "PEP storage failed");
    StanzaError::new(Condition::InternalServerError)
}

fn new_item_id() -> String {
    use rand::Rng;
    format!("{:016x}", rand::rng().random::<u64>())
}

fn item_element(ns: &str, item: &PubsubItem) -> Element {
    let mut el = Element::builder("item", ns)
        .attr(ncname("id"), item.id.as_str())
        .build();
    if let Ok(payload) = item.payload.parse::<Element>() {
        el.append_child(payload);
    }
    el
}

impl Pep {
    async fn handle(&self, cx: Context, st: Stanza) -> IqResult {
        let from = st
            .from()
            .cloned()
            .ok_or_else(|| error(Condition::BadRequest, None))?;
        let service = st.to().map(Jid::to_bare).unwrap_or_else(|| from.to_bare());
        let owner = service
            .node()
            .ok_or_else(|| error(Condition::BadRequest, None))?
            .to_string();
        let is_owner = from.bare() == service.bare();
        let pubsub = st
            .iq_payload()
            .ok_or_else(|| error(Condition::BadRequest, None))?;
        let set = st.type_attr() == Some("set");
        let mut ops = pubsub.children().filter(|c| {
            c.ns() == pubsub.ns() && c.name() != "publish-options" && c.name() != "configure"
        });
        let op = ops
            .next()
            .or_else(|| pubsub.get_child("configure", pubsub.ns().as_str()));
        let Some(op) = op else {
            return Err(error(Condition::BadRequest, None));
        };
        let node = op.attr("node").map(str::to_string);
        let need_node = || {
            node.clone()
                .filter(|n| !n.is_empty())
                .ok_or_else(|| error(Condition::BadRequest, Some("nodeid-required")))
        };
        // Others may only read items.
        if !is_owner && (op.name() != "items" || set) {
            return Err(error(Condition::Forbidden, None));
        }
        match (set, pubsub.ns().as_str(), op.name()) {
            (true, NS_PUBSUB, "publish") => {
                self.publish(
                    &cx,
                    &owner,
                    &need_node()?,
                    op,
                    pubsub.get_child("publish-options", NS_PUBSUB),
                )
                .await
            }
            (true, NS_PUBSUB, "retract") => self.retract(&cx, &owner, &need_node()?, op).await,
            (true, NS_PUBSUB, "create") => {
                self.create(
                    &cx,
                    &owner,
                    &need_node()?,
                    pubsub.get_child("configure", NS_PUBSUB),
                )
                .await
            }
            (false, NS_PUBSUB, "items") => self.items(&cx, &owner, &from, &need_node()?, op).await,
            (false, NS_OWNER, "configure") => {
                let config = self.config(&cx, &owner, &need_node()?).await?;
                Ok(Some(owner_reply(
                    "configure",
                    node.as_deref(),
                    config.to_form(self.cfg.max_items_per_node),
                )))
            }
            (true, NS_OWNER, "configure") => {
                let node = need_node()?;
                let mut config = self.config(&cx, &owner, &node).await?;
                let form = op
                    .get_child("x", config::NS_DATA)
                    .ok_or_else(|| error(Condition::BadRequest, None))?;
                config.apply(form, self.cfg.max_items_per_node)?;
                cx.store()
                    .pubsub_put_node(&owner, &node, &config.to_lines())
                    .await
                    .map_err(internal)?;
                Ok(None)
            }
            (false, NS_OWNER, "default") => Ok(Some(owner_reply(
                "default",
                None,
                NodeConfig::pep_default().to_form(self.cfg.max_items_per_node),
            ))),
            (true, NS_OWNER, "delete") => {
                let node = need_node()?;
                let config = self.config(&cx, &owner, &node).await?;
                cx.store()
                    .pubsub_delete_node(&owner, &node)
                    .await
                    .map_err(internal)?;
                if config.notify_delete {
                    self.broadcast(&cx, &owner, &node, &config, notify::Event::Deleted)
                        .await;
                }
                Ok(None)
            }
            (true, NS_OWNER, "purge") => {
                let node = need_node()?;
                self.config(&cx, &owner, &node).await?;
                cx.store()
                    .pubsub_purge(&owner, &node)
                    .await
                    .map_err(internal)?;
                Ok(None)
            }
            _ => Err(error(Condition::FeatureNotImplemented, Some("unsupported"))),
        }
    }

    /// The node's configuration; `item-not-found` when it does not exist.
    async fn config(
        &self,
        cx: &Context,
        owner: &str,
        node: &str,
    ) -> Result<NodeConfig, StanzaError> {
        cx.store()
            .pubsub_node(owner, node)
            .await
            .map_err(internal)?
            .map(|c| NodeConfig::from_lines(&c))
            .ok_or_else(|| error(Condition::ItemNotFound, None))
    }

    async fn create(
        &self,
        cx: &Context,
        owner: &str,
        node: &str,
        configure: Option<&Element>,
    ) -> IqResult {
        if cx
            .store()
            .pubsub_node(owner, node)
            .await
            .map_err(internal)?
            .is_some()
        {
            return Err(error(Condition::Conflict, None));
        }
        self.check_node_count(cx, owner).await?;
        let mut config = NodeConfig::pep_default();
        if let Some(form) = configure.and_then(|c| c.get_child("x", config::NS_DATA)) {
            config.apply(form, self.cfg.max_items_per_node)?;
        }
        cx.store()
            .pubsub_put_node(owner, node, &config.to_lines())
            .await
            .map_err(internal)?;
        Ok(None)
    }

    async fn check_node_count(&self, cx: &Context, owner: &str) -> Result<(), StanzaError> {
        let count = cx
            .store()
            .pubsub_nodes(owner)
            .await
            .map_err(internal)?
            .len();
        if count >= self.cfg.max_nodes_per_account {
            return Err(
                StanzaError::new(Condition::PolicyViolation).with_text(format!(
                    "at most {} nodes per account",
                    self.cfg.max_nodes_per_account
                )),
            );
        }
        Ok(())
    }

    async fn publish(
        &self,
        cx: &Context,
        owner: &str,
        node: &str,
        publish: &Element,
        options: Option<&Element>,
    ) -> IqResult {
        let mut items = publish.children().filter(|c| c.is("item", NS_PUBSUB));
        let (Some(item), None) = (items.next(), items.next()) else {
            return Err(error(Condition::BadRequest, Some("item-required")));
        };
        let mut payloads = item.children();
        let (Some(payload), None) = (payloads.next(), payloads.next()) else {
            return Err(error(Condition::BadRequest, Some("invalid-payload")));
        };
        let options = options.and_then(|o| o.get_child("x", config::NS_DATA));
        let id = item.attr("id").filter(|i| !i.is_empty());
        let stored = self
            .publish_item(cx, owner, node, id, payload, options)
            .await?;
        match node {
            NS_METADATA => avatar::to_vcard(cx, owner, payload).await,
            NS_BOOKMARKS2 => self.bookmarks_changed(cx, owner).await,
            NS_LEGACY if payload.is("storage", NS_LEGACY) => {
                self.legacy_bookmarks_written(cx, owner, payload, bookmarks::Legacy::Pep)
                    .await
            }
            _ => {}
        }
        let reply = Element::builder("pubsub", NS_PUBSUB)
            .append(
                Element::builder("publish", NS_PUBSUB)
                    .attr(ncname("node"), node)
                    .append(
                        Element::builder("item", NS_PUBSUB)
                            .attr(ncname("id"), stored.id.as_str())
                            .build(),
                    )
                    .build(),
            )
            .build();
        Ok(Some(reply))
    }

    /// Stores `payload` as item `id` (a new id if `None`) of `owner`'s `node`, creating the
    /// node with `options` (publish-options) or checking them against it, and notifies.
    async fn publish_item(
        &self,
        cx: &Context,
        owner: &str,
        node: &str,
        id: Option<&str>,
        payload: &Element,
        options: Option<&Element>,
    ) -> Result<PubsubItem, StanzaError> {
        let limit = self.cfg.max_items_per_node;
        let config = match cx
            .store()
            .pubsub_node(owner, node)
            .await
            .map_err(internal)?
        {
            Some(c) => {
                let config = NodeConfig::from_lines(&c);
                if let Some(opts) = options
                    && !config.satisfies(opts, limit)
                {
                    return Err(error(Condition::Conflict, Some("precondition-not-met")));
                }
                config
            }
            None => {
                self.check_node_count(cx, owner).await?;
                let mut config = NodeConfig::pep_default();
                if let Some(opts) = options {
                    config
                        .apply(opts, limit)
                        .map_err(|_| error(Condition::Conflict, Some("precondition-not-met")))?;
                }
                cx.store()
                    .pubsub_put_node(owner, node, &config.to_lines())
                    .await
                    .map_err(internal)?;
                config
            }
        };
        let mut xml = Vec::new();
        hearth_xml::write_element(payload, "", &mut xml);
        if xml.len() > self.cfg.max_item_bytes {
            return Err(error(Condition::NotAcceptable, Some("payload-too-big")));
        }
        let stored = PubsubItem {
            id: id.map_or_else(new_item_id, str::to_string),
            payload: String::from_utf8_lossy(&xml).into_owned(),
        };
        cx.store()
            .pubsub_publish(owner, node, stored.clone(), config.max_items)
            .await
            .map_err(internal)?;
        self.broadcast(cx, owner, node, &config, notify::Event::Published(&stored))
            .await;
        Ok(stored)
    }

    async fn retract(&self, cx: &Context, owner: &str, node: &str, retract: &Element) -> IqResult {
        let config = self.config(cx, owner, node).await?;
        let Some(id) = retract
            .get_child("item", NS_PUBSUB)
            .and_then(|i| i.attr("id"))
        else {
            return Err(error(Condition::BadRequest, Some("item-required")));
        };
        if !cx
            .store()
            .pubsub_retract(owner, node, id)
            .await
            .map_err(internal)?
        {
            return Err(error(Condition::ItemNotFound, None));
        }
        if config.notify_retract
            || retract
                .attr("notify")
                .is_some_and(|n| n == "true" || n == "1")
        {
            self.broadcast(cx, owner, node, &config, notify::Event::Retracted(id))
                .await;
        }
        if node == NS_BOOKMARKS2 {
            self.bookmarks_changed(cx, owner).await;
        }
        Ok(None)
    }

    async fn items(
        &self,
        cx: &Context,
        owner: &str,
        requester: &Jid,
        node: &str,
        items: &Element,
    ) -> IqResult {
        let config = self.config(cx, owner, node).await?;
        if let Err(app) = allowed(cx, owner, requester, config.access_model).await {
            return Err(error(Condition::NotAuthorized, Some(app)));
        }
        let ids: Vec<String> = items
            .children()
            .filter(|c| c.is("item", NS_PUBSUB))
            .filter_map(|c| c.attr("id").map(str::to_string))
            .collect();
        let max = items
            .attr("max_items")
            .and_then(|m| m.parse::<usize>().ok());
        let found = cx
            .store()
            .pubsub_items(owner, node, max, (!ids.is_empty()).then_some(ids))
            .await
            .map_err(internal)?;
        let mut list = Element::builder("items", NS_PUBSUB)
            .attr(ncname("node"), node)
            .build();
        for item in &found {
            list.append_child(item_element(NS_PUBSUB, item));
        }
        Ok(Some(
            Element::builder("pubsub", NS_PUBSUB).append(list).build(),
        ))
    }
}

fn owner_reply(name: &str, node: Option<&str>, form: Element) -> Element {
    let mut inner = Element::builder(name, NS_OWNER).append(form).build();
    hearth_core::stanza::set_attr(&mut inner, "node", node.map(str::to_string));
    Element::builder("pubsub", NS_OWNER).append(inner).build()
}

/// Whether `requester` may read `owner`'s node under `access`; else the XEP-0060 §6.5.x
/// application condition.
pub async fn allowed(
    cx: &Context,
    owner: &str,
    requester: &Jid,
    access: Access,
) -> Result<(), &'static str> {
    if requester.node() == Some(owner) && cx.server.is_local_domain(requester.domain()) {
        return Ok(());
    }
    let subscription = || async {
        matches!(
            cx.store().roster_item(owner, &requester.to_bare().to_string()).await,
            Ok(Some(item)) if matches!(item.subscription, Subscription::From | Subscription::Both)
        )
    };
    match access {
        Access::Open => Ok(()),
        Access::Presence if subscription().await => Ok(()),
        Access::Presence => Err("presence-subscription-required"),
        Access::Roster if subscription().await => Ok(()),
        Access::Roster => Err("not-in-roster-group"),
        Access::Whitelist => Err("closed-node"),
    }
}
