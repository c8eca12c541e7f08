//! vCard-temp (XEP-0054): each account's business card, readable by anyone, writable by its
//! owner; and the hash of its photo put into the account's available presence (XEP-0153, as
//! XEP-0398 §"Presence" asks of servers), so contacts and rooms see avatar changes without
//! fetching vCards.

use std::sync::Arc;

use hearth_auth::ldap::DirectoryCard;
use hearth_core::module::{
    DiscoScope, IqTarget, IqType, Module, Registrar, SessionEvent, Spec, SupportStatus,
};
use hearth_core::router::{Context, Flow, IqResult};
use hearth_core::server::Server;
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
        if reg.config().auth.ldap.is_some() {
            reg.on_session(|server, event| async move {
                if let SessionEvent::Bound(jid) = event
                    && let Some(user) = jid.node()
                {
                    sync_from_directory(&server, user).await;
                }
            });
        }
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
        // A directory user who has not logged in since the card was filled in.
        if let Some(directory) = &cx.server.directory
            && let Ok(Some(fields)) = directory.card(&user).await
        {
            return Ok(Some(with_directory_fields(
                Element::bare("vCard", NS_VCARD),
                &fields,
            )));
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

/// Puts the directory's fields (name, mail, phone, photo) into the user's stored vCard, when
/// they differ: the directory is the reference for them, the rest of the card stays the user's.
async fn sync_from_directory(server: &Server, user: &str) {
    let Some(directory) = &server.directory else {
        return;
    };
    let fields = match directory.card(user).await {
        Ok(Some(fields)) => fields,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(account = user, error = %e, "vCard not updated from the directory");
            return;
        }
    };
    let stored = match server.store.vcard_get(user).await {
        Ok(stored) => stored.and_then(|xml| xml.parse::<Element>().ok()),
        Err(e) => {
            tracing::warn!(account = user, error = %e, "cannot read the vCard");
            return;
        }
    };
    let current = stored.unwrap_or_else(|| Element::bare("vCard", NS_VCARD));
    let card = with_directory_fields(current.clone(), &fields);
    if card == current {
        return;
    }
    let hash = Avatar::from_vcard(&card).map(|a| a.sha1);
    let mut xml = Vec::new();
    hearth_xml::write_element(&card, "", &mut xml);
    if let Err(e) = server
        .store
        .vcard_set(user, &String::from_utf8_lossy(&xml), hash.as_deref())
        .await
    {
        tracing::warn!(account = user, error = %e, "cannot store the vCard from the directory");
    }
}

/// `card` with the directory's fields replacing its own.
fn with_directory_fields(card: Element, fields: &DirectoryCard) -> Element {
    let leaf = |name: &str, text: &str| Element::builder(name, NS_VCARD).append(text).build();
    let mut replaced: Vec<Element> = Vec::new();
    if let Some(name) = &fields.full_name {
        replaced.push(leaf("FN", name));
    }
    if let Some(mail) = &fields.email {
        replaced.push(
            Element::builder("EMAIL", NS_VCARD)
                .append(Element::bare("INTERNET", NS_VCARD))
                .append(leaf("USERID", mail))
                .build(),
        );
    }
    if let Some(phone) = &fields.phone {
        replaced.push(
            Element::builder("TEL", NS_VCARD)
                .append(Element::bare("WORK", NS_VCARD))
                .append(Element::bare("VOICE", NS_VCARD))
                .append(leaf("NUMBER", phone))
                .build(),
        );
    }
    if let Some(photo) = &fields.photo {
        let data = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, photo);
        replaced.push(
            Element::builder("PHOTO", NS_VCARD)
                .append(leaf("TYPE", "image/jpeg"))
                .append(leaf("BINVAL", &data))
                .build(),
        );
    }
    let mut out = Element::bare("vCard", NS_VCARD);
    for child in card.children() {
        if !replaced.iter().any(|r| r.name() == child.name()) {
            out.append_child(child.clone());
        }
    }
    for r in replaced {
        out.append_child(r);
    }
    out
}

fn internal(e: hearth_store::StoreError) -> StanzaError {
    tracing::error!(error = %e, "vCard storage failed");
    StanzaError::new(Condition::InternalServerError)
}
