//! Avatar conversion (XEP-0398): a PEP avatar (XEP-0084) becomes the vCard photo, and a
//! vCard photo set by a client that knows only vCards (XEP-0153) is published as a PEP
//! avatar, so clients of either kind see it.

use std::collections::HashMap;

use hearth_core::router::{Context, Flow};
use hearth_core::stanza::{Condition, Kind, Stanza};
use minidom::Element;

use super::{Access, NodeConfig, Pep};
use crate::conversion::avatar::{Avatar, NS_DATA, NS_METADATA, metadata_is_empty};
use crate::vcard::NS_VCARD;

impl Pep {
    /// Hooked before the vCard module stores a vCard its owner sets: a new inline photo is
    /// published to the avatar nodes, world-readable like the vCard itself (unless the
    /// owner configured the nodes otherwise), and notified to the owner's contacts.
    pub(super) async fn vcard_write(&self, cx: Context, st: Stanza) -> Flow {
        if st.kind() != Kind::Iq || st.type_attr() != Some("set") {
            return Flow::Continue(st);
        }
        let own = st
            .to()
            .is_none_or(|to| Some(to.to_bare()) == st.from().map(|f| f.to_bare()));
        let avatar = st
            .iq_payload()
            .filter(|card| card.is("vCard", NS_VCARD))
            .and_then(Avatar::from_vcard);
        let (true, Some(avatar), Some(owner)) = (
            own,
            avatar,
            st.from().and_then(|f| f.node()).map(str::to_string),
        ) else {
            return Flow::Continue(st);
        };
        let store = cx.store();
        // Already the PEP avatar (e.g. the client saves its whole vCard again).
        if matches!(
            store.pubsub_items(&owner, NS_METADATA, None, Some(vec![avatar.sha1.clone()])).await,
            Ok(items) if !items.is_empty()
        ) {
            return Flow::Continue(st);
        }
        let open = open_access_form();
        for (node, payload) in [
            (NS_DATA, avatar.data_payload()),
            (NS_METADATA, avatar.metadata_payload()),
        ] {
            let options = match store.pubsub_node(&owner, node).await {
                Ok(None) => Some(&open),
                _ => None,
            };
            if let Err(e) = self
                .publish_item(&cx, &owner, node, Some(&avatar.sha1), &payload, options)
                .await
            {
                match e.condition {
                    Condition::NotAcceptable => {
                        tracing::debug!(account = %owner, "vCard photo too large for a PEP item (modules.pep.max_item_bytes); not converted")
                    }
                    c => {
                        tracing::warn!(account = %owner, node, condition = ?c, "cannot publish the vCard photo as a PEP avatar")
                    }
                }
                break;
            }
        }
        Flow::Continue(st)
    }
}

/// Publish-options making a new avatar node readable by anyone, as vCards are.
fn open_access_form() -> Element {
    "<x xmlns='jabber:x:data' type='submit'>\
        <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>\
        <field var='pubsub#access_model'><value>open</value></field></x>"
        .parse()
        .expect("a valid data form")
}

/// XEP-0398: an avatar published in PEP becomes the vCard's photo (and so the hash in
/// presence), if its data is world-readable as XEP-0398 §"Security" asks; an empty metadata
/// item removes the photo.
pub(super) async fn to_vcard(cx: &Context, owner: &str, metadata: &Element) {
    let store = cx.store();
    let vcard = match store.vcard_get(owner).await {
        Ok(v) => v.and_then(|xml| xml.parse::<Element>().ok()),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the vCard to convert the avatar");
            return;
        }
    };
    let (card, hash) = if metadata_is_empty(metadata) {
        let Some(mut card) = vcard else { return };
        card.remove_child("PHOTO", crate::vcard::NS_VCARD);
        (card, None)
    } else {
        let open = matches!(
            store.pubsub_node(owner, NS_DATA).await,
            Ok(Some(c)) if NodeConfig::from_lines(&c).access_model == Access::Open
        );
        if !open {
            return;
        }
        let mut data = HashMap::new();
        for info in metadata.children() {
            if let Some(id) = info.attr("id")
                && let Ok(items) = store
                    .pubsub_items(owner, NS_DATA, None, Some(vec![id.to_string()]))
                    .await
                && let Some(item) = items.into_iter().next()
                && let Ok(el) = item.payload.parse::<Element>()
            {
                data.insert(id.to_string(), el);
            }
        }
        let Some(image) = Avatar::from_pep(metadata, |id| data.get(id).cloned()) else {
            return;
        };
        let hash = image.sha1.clone();
        (image.into_vcard(vcard.as_ref()), Some(hash))
    };
    let mut xml = Vec::new();
    hearth_xml::write_element(&card, "", &mut xml);
    if let Err(e) = store
        .vcard_set(owner, &String::from_utf8_lossy(&xml), hash.as_deref())
        .await
    {
        tracing::warn!(error = %e, "cannot store the avatar in the vCard");
    }
}
