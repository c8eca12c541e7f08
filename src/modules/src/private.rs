//! Private XML Storage (XEP-0049): small per-account documents keyed by namespace (client
//! preferences, and XEP-0048 bookmarks of older clients).

use std::collections::BTreeMap;
use std::sync::Arc;

use hearth_core::module::{IqTarget, IqType, Module, Registrar, Spec, SupportStatus};
use hearth_core::router::{Context, IqResult};
use hearth_core::stanza::{Condition, Stanza, StanzaError};
use minidom::Element;
use serde::Deserialize;

pub const NS_PRIVATE: &str = "jabber:iq:private";

pub struct Private {
    max_bytes: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Largest document stored for one namespace, in bytes.
    pub max_bytes_per_namespace: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_bytes_per_namespace: 128 * 1024,
        }
    }
}

impl Module for Private {
    const NAME: &'static str = "private";
    const SPECS: &'static [Spec] = &[Spec {
        id: "XEP-0049",
        version: "1.2",
        status: SupportStatus::Complete,
        note: "reserved namespaces (jabber:*, http://jabber.org/*, vcard-temp) refused",
    }];
    type Config = Config;

    fn init(cfg: Config, reg: &mut Registrar) -> anyhow::Result<Arc<Self>> {
        let this = Arc::new(Private {
            max_bytes: cfg.max_bytes_per_namespace,
        });
        for type_ in [IqType::Get, IqType::Set] {
            reg.iq_with(
                type_,
                IqTarget::Account,
                NS_PRIVATE,
                "query",
                &this,
                |m, cx, st| async move { m.handle(cx, st).await },
            );
        }
        Ok(this)
    }
}

fn not_acceptable(text: &str) -> StanzaError {
    StanzaError::new(Condition::NotAcceptable).with_text(text)
}

/// XEP-0049 §3: namespaces of the protocol itself are not private data.
fn reserved(ns: &str) -> bool {
    ns.starts_with("jabber:") || ns.starts_with("http://jabber.org/") || ns == "vcard-temp"
}

/// The elements stored for one namespace, as they were given.
pub fn serialize(elements: &[&Element]) -> String {
    let mut out = Vec::new();
    for el in elements {
        hearth_xml::write_element(el, "", &mut out);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Elements stored with `serialize`.
pub fn parse(xml: &str) -> Vec<Element> {
    format!("<query xmlns='{NS_PRIVATE}'>{xml}</query>")
        .parse::<Element>()
        .map(|q| q.children().cloned().collect())
        .unwrap_or_default()
}

impl Private {
    async fn handle(&self, cx: Context, st: Stanza) -> IqResult {
        let (Some(from), Some(query)) = (st.from(), st.iq_payload()) else {
            return Err(StanzaError::new(Condition::BadRequest));
        };
        if st.to().is_some_and(|to| to.to_bare() != from.to_bare()) {
            return Err(StanzaError::new(Condition::Forbidden)
                .with_text("private storage belongs to its account alone"));
        }
        let user = from.node().unwrap_or_default();
        let children: Vec<&Element> = query.children().collect();
        let Some(first) = children.first() else {
            return Err(not_acceptable("name the element to get or set"));
        };
        if let Some(el) = children.iter().find(|c| reserved(&c.ns())) {
            return Err(not_acceptable(&format!(
                "the namespace {} is reserved",
                el.ns()
            )));
        }
        if st.type_attr() == Some("get") {
            if children.len() > 1 {
                return Err(StanzaError::new(Condition::BadRequest)
                    .with_text("get one namespace at a time"));
            }
            let stored = cx
                .store()
                .private_get(user, &first.ns())
                .await
                .map_err(internal)?;
            let mut reply = Element::bare("query", NS_PRIVATE);
            match stored.map(|xml| parse(&xml)).filter(|els| !els.is_empty()) {
                Some(els) => {
                    for e in els {
                        reply.append_child(e);
                    }
                }
                None => {
                    reply.append_child(Element::bare(first.name(), first.ns()));
                }
            }
            return Ok(Some(reply));
        }
        let mut by_ns: BTreeMap<String, Vec<&Element>> = BTreeMap::new();
        for c in children {
            by_ns.entry(c.ns()).or_default().push(c);
        }
        for (ns, els) in &by_ns {
            let xml = serialize(els);
            if xml.len() > self.max_bytes {
                return Err(not_acceptable(&format!(
                    "at most {} bytes may be stored per namespace",
                    self.max_bytes
                )));
            }
            cx.store()
                .private_set(user, ns, &xml)
                .await
                .map_err(internal)?;
        }
        Ok(None)
    }
}

fn internal(e: hearth_store::StoreError) -> StanzaError {
    tracing::error!(error = %e, "private XML storage failed");
    StanzaError::new(Condition::InternalServerError)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_elements_round_trip() {
        let a: Element = "<storage xmlns='storage:bookmarks'><conference jid='a@b'/></storage>"
            .parse()
            .unwrap();
        let back = parse(&serialize(&[&a, &a]));
        assert_eq!(back, vec![a.clone(), a]);
        assert!(reserved("jabber:iq:roster") && reserved("vcard-temp"));
        assert!(!reserved("storage:bookmarks"));
    }
}
