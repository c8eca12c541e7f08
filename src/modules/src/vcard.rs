//! vCard-temp (XEP-0054): each account's business card, readable by anyone, writable by its
//! owner; and the hash of its photo put into the account's available presence (XEP-0153, as
//! XEP-0398 §"Presence" asks of servers), so contacts and rooms see avatar changes without
//! fetching vCards.

use std::sync::Arc;

use hearth_core::module::{DiscoScope, IqTarget, IqType, Module, Registrar, Spec, SupportStatus};
use hearth_core::router::{Context, Flow, IqResult};
use hearth_core::stanza::{Condition, Kind, Stanza, StanzaError};
use minidom::Element;
use serde::Deserialize;

use crate::conversion::avatar::{Avatar, stamp_presence};

pub const NS_VCARD: &str = "vcard-temp";

pub struct Vcard {
    max_bytes: usize,
    stamp_presence: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Largest vCard accepted, in bytes (photos make them big).
    pub max_bytes: usize,
    /// Put the photo's hash into users' available presence (XEP-0153).
    pub presence_photo_hash: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_bytes: 256 * 1024,
            presence_photo_hash: true,
        }
    }
}

impl Module for Vcard {
    const NAME: &'static str = "vcard";
    const SPECS: &'static [Spec] = &[
        Spec {
            id: "XEP-0054",
            version: "1.3.0",
            status: SupportStatus::Complete,
            note: "anyone may read a local account's vCard; an account without one answers an empty vCard",
        },
        Spec {
            id: "XEP-0153",
            version: "1.1.1",
            status: SupportStatus::Complete,
            note: "the server puts the photo hash into available presence (XEP-0398 §presence)",
        },
    ];
    type Config = Config;

    fn init(cfg: Config, reg: &mut Registrar) -> anyhow::Result<Arc<Self>> {
        let this = Arc::new(Vcard {
            max_bytes: cfg.max_bytes,
            stamp_presence: cfg.presence_photo_hash,
        });
        reg.feature(DiscoScope::Host, NS_VCARD);
        reg.iq_with(
            IqType::Get,
            IqTarget::Account,
            NS_VCARD,
            "vCard",
            &this,
            |m, cx, st| async move { m.get(cx, st).await },
        );
        reg.iq_with(
            IqType::Set,
            IqTarget::Account,
            NS_VCARD,
            "vCard",
            &this,
            |m, cx, st| async move { m.set(cx, st).await },
        );
        if this.stamp_presence {
            for event in [
                "pre-presence/bare",
                "pre-presence/full",
                "pre-presence/host",
            ] {
                reg.hook_with(event, 50, &this, |m, cx, st| async move {
                    m.stamp(cx, st).await
                });
            }
        }
        Ok(this)
    }
}

impl Vcard {
    async fn get(&self, cx: Context, st: Stanza) -> IqResult {
        let target = st
            .to()
            .or(st.from())
            .and_then(|j| j.node())
            .map(str::to_string);
        let Some(user) = target else {
            return Err(StanzaError::new(Condition::BadRequest));
        };
        let stored = cx.store().vcard_get(&user).await.map_err(internal)?;
        if let Some(xml) = stored {
            return Ok(xml.parse::<Element>().ok());
        }
        let own = st
            .to()
            .is_none_or(|to| Some(to.to_bare()) == st.from().map(|f| f.to_bare()));
        if !own && !cx.store().account_exists(&user).await.map_err(internal)? {
            return Err(Condition::ServiceUnavailable.into());
        }
        Ok(Some(Element::bare("vCard", NS_VCARD)))
    }

    async fn set(&self, cx: Context, st: Stanza) -> IqResult {
        let (Some(from), Some(card)) = (st.from(), st.iq_payload()) else {
            return Err(StanzaError::new(Condition::BadRequest));
        };
        if st.to().is_some_and(|to| to.to_bare() != from.to_bare()) {
            return Err(StanzaError::new(Condition::Forbidden)
                .with_text("only the owner may change a vCard"));
        }
        let user = from.node().unwrap_or_default();
        let mut xml = Vec::new();
        hearth_xml::write_element(card, "", &mut xml);
        if xml.len() > self.max_bytes {
            return Err(
                StanzaError::new(Condition::NotAcceptable).with_text(format!(
                    "the vCard is larger than {} bytes; use a smaller photo",
                    self.max_bytes
                )),
            );
        }
        let hash = Avatar::from_vcard(card).map(|a| a.sha1);
        let xml = String::from_utf8_lossy(&xml);
        cx.store()
            .vcard_set(user, &xml, hash.as_deref())
            .await
            .map_err(internal)?;
        Ok(None)
    }

    /// Available presence from a local client carries the photo hash.
    async fn stamp(&self, cx: Context, mut st: Stanza) -> Flow {
        if st.kind() != Kind::Presence || st.type_attr().is_some() {
            return Flow::Continue(st);
        }
        let Some(user) = st.from().and_then(|f| f.node()).map(str::to_string) else {
            return Flow::Continue(st);
        };
        // One keyed read per available presence; the hash changes when the vCard does, or
        // when a PEP avatar is converted into it (XEP-0398).
        let hash = match cx.store().vcard_photo_sha1(&user).await {
            Ok(h) => h.flatten(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the vCard photo hash");
                return Flow::Continue(st);
            }
        };
        if let Some(hash) = hash {
            stamp_presence(st.element_mut(), &hash);
        }
        Flow::Continue(st)
    }
}

fn internal(e: hearth_store::StoreError) -> StanzaError {
    tracing::error!(error = %e, "vCard storage failed");
    StanzaError::new(Condition::InternalServerError)
}
