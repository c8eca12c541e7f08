//! Bookmarks kept in step across their three homes (XEP-0402 §"Compatibility", XEP-0411):
//! PEP Native Bookmarks (`urn:xmpp:bookmarks:1`, one item per room: the truth), the XEP-0048
//! document in PEP (`storage:bookmarks`), and the same document in Private XML Storage. A
//! write to any of them rewrites the others, with notifications to the owner's clients.

use hearth_core::router::{Context, Flow};
use hearth_core::stanza::{Kind, Stanza};
use hearth_store::PubsubItem;
use minidom::Element;

use super::{Access, NodeConfig, Pep, notify::Event};
use crate::conversion::bookmarks::{Bookmark, NS_BOOKMARKS2, NS_LEGACY, from_storage, to_storage};
use crate::private::NS_PRIVATE;

/// Where a legacy document was written.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Legacy {
    Pep,
    Private,
}

fn private_config(max: usize) -> NodeConfig {
    NodeConfig {
        access_model: Access::Whitelist,
        max_items: max,
        send_last_published_item: "never".into(),
        ..NodeConfig::pep_default()
    }
}

impl Pep {
    /// The node's configuration, creating it private to its owner if missing.
    async fn private_node(
        &self,
        cx: &Context,
        owner: &str,
        node: &str,
        max: usize,
    ) -> Option<NodeConfig> {
        let store = cx.store();
        match store.pubsub_node(owner, node).await.ok()? {
            Some(c) => Some(NodeConfig::from_lines(&c)),
            None => {
                let config = private_config(max);
                store
                    .pubsub_put_node(owner, node, &config.to_lines())
                    .await
                    .ok()?;
                Some(config)
            }
        }
    }

    async fn bookmarks(&self, cx: &Context, owner: &str) -> Vec<Bookmark> {
        cx.store()
            .pubsub_items(owner, NS_BOOKMARKS2, None, None)
            .await
            .unwrap_or_default()
            .iter()
            .filter_map(|i| Bookmark::from_item(&i.id, &i.payload.parse().ok()?))
            .collect()
    }

    /// After XEP-0402 items changed: the legacy document, in PEP and in private storage.
    pub(super) async fn bookmarks_changed(&self, cx: &Context, owner: &str) {
        let storage = to_storage(&self.bookmarks(cx, owner).await);
        self.write_legacy(cx, owner, &storage, None).await;
    }

    /// Writes the legacy document where it was not just written by the client.
    async fn write_legacy(
        &self,
        cx: &Context,
        owner: &str,
        storage: &Element,
        skip: Option<Legacy>,
    ) {
        let mut xml = Vec::new();
        hearth_xml::write_element(storage, "", &mut xml);
        let xml = String::from_utf8_lossy(&xml).into_owned();
        if skip != Some(Legacy::Private)
            && let Err(e) = cx.store().private_set(owner, NS_LEGACY, &xml).await
        {
            tracing::warn!(error = %e, "cannot mirror bookmarks into private storage");
        }
        if skip != Some(Legacy::Pep)
            && let Some(config) = self.private_node(cx, owner, NS_LEGACY, 1).await
        {
            let item = PubsubItem {
                id: "current".into(),
                payload: xml,
            };
            if cx
                .store()
                .pubsub_publish(owner, NS_LEGACY, item.clone(), 1)
                .await
                .is_ok()
            {
                self.broadcast(cx, owner, NS_LEGACY, &config, Event::Published(&item))
                    .await;
            }
        }
    }

    /// A legacy client wrote the XEP-0048 document: the XEP-0402 items follow (only changed
    /// rooms are notified, XEP-0402 §"Publishing via the old specification").
    pub(super) async fn legacy_bookmarks_written(
        &self,
        cx: &Context,
        owner: &str,
        storage: &Element,
        to: Legacy,
    ) {
        let limit = self.cfg.max_items_per_node;
        let old = self.bookmarks(cx, owner).await;
        let new = from_storage(storage, &old);
        let Some(config) = self.private_node(cx, owner, NS_BOOKMARKS2, limit).await else {
            return;
        };
        let store = cx.store();
        for gone in old.iter().filter(|o| !new.iter().any(|n| n.jid == o.jid)) {
            if store
                .pubsub_retract(owner, NS_BOOKMARKS2, &gone.jid)
                .await
                .unwrap_or(false)
            {
                self.broadcast(
                    cx,
                    owner,
                    NS_BOOKMARKS2,
                    &config,
                    Event::Retracted(&gone.jid),
                )
                .await;
            }
        }
        for b in new.iter().filter(|n| !old.contains(n)) {
            let mut xml = Vec::new();
            hearth_xml::write_element(&b.to_item(), "", &mut xml);
            let item = PubsubItem {
                id: b.jid.clone(),
                payload: String::from_utf8_lossy(&xml).into_owned(),
            };
            if store
                .pubsub_publish(owner, NS_BOOKMARKS2, item.clone(), config.max_items)
                .await
                .is_ok()
            {
                self.broadcast(cx, owner, NS_BOOKMARKS2, &config, Event::Published(&item))
                    .await;
            }
        }
        self.write_legacy(cx, owner, &to_storage(&new), Some(to))
            .await;
    }

    /// Private XML writes of `storage:bookmarks`, seen before the private storage module
    /// stores them.
    pub(super) async fn private_write(&self, cx: Context, st: Stanza) -> Flow {
        if st.kind() != Kind::Iq || st.type_attr() != Some("set") {
            return Flow::Continue(st);
        }
        let storage = st
            .iq_payload()
            .filter(|q| q.is("query", NS_PRIVATE))
            .and_then(|q| q.get_child("storage", NS_LEGACY))
            .cloned();
        let (Some(storage), Some(owner)) = (
            storage,
            st.from().and_then(|f| f.node()).map(str::to_string),
        ) else {
            return Flow::Continue(st);
        };
        if st
            .to()
            .is_none_or(|to| Some(to.to_bare()) == st.from().map(|f| f.to_bare()))
        {
            self.legacy_bookmarks_written(&cx, &owner, &storage, Legacy::Private)
                .await;
        }
        Flow::Continue(st)
    }
}
