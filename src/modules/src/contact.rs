//! XEP-0157: Contact Addresses for XMPP Services. Where users and other servers' admins report
//! abuse or ask for help, from the configuration, in the server's disco#info (XEP-0128 form).

use std::sync::Arc;

use hearth_core::module::{DiscoScope, Module, Registrar, Spec, SupportStatus};
use minidom::Element;
use serde::Deserialize;

const FORM_TYPE: &str = "http://jabber.org/network/serverinfo";

pub struct Contact;

/// Addresses as URIs: `mailto:abuse@example.com`, `xmpp:admin@example.com`,
/// `https://example.com/support`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub abuse: Vec<String>,
    pub admin: Vec<String>,
    pub feedback: Vec<String>,
    pub sales: Vec<String>,
    pub security: Vec<String>,
    pub status: Vec<String>,
    pub support: Vec<String>,
}

impl Module for Contact {
    const NAME: &'static str = "contact";
    const SPECS: &'static [Spec] = &[Spec {
        id: "XEP-0157",
        version: "1.1.1",
        status: SupportStatus::Complete,
        note: "the seven address kinds from modules.contact, in the server's disco#info",
    }];
    type Config = Config;

    fn init(cfg: Config, reg: &mut Registrar) -> anyhow::Result<Arc<Self>> {
        if let Some(form) = form(&cfg) {
            reg.disco_form(DiscoScope::Host, form);
        }
        Ok(Arc::new(Contact))
    }
}

/// The serverinfo form, or `None` when no address is configured.
fn form(cfg: &Config) -> Option<Element> {
    let kinds = [
        ("abuse", &cfg.abuse),
        ("admin", &cfg.admin),
        ("feedback", &cfg.feedback),
        ("sales", &cfg.sales),
        ("security", &cfg.security),
        ("status", &cfg.status),
        ("support", &cfg.support),
    ];
    if kinds.iter().all(|(_, addresses)| addresses.is_empty()) {
        return None;
    }
    let fields: Vec<(String, &[String])> = kinds
        .iter()
        .filter(|(_, addresses)| !addresses.is_empty())
        .map(|(kind, addresses)| (format!("{kind}-addresses"), addresses.as_slice()))
        .collect();
    Some(crate::disco::result_form(
        FORM_TYPE,
        fields.iter().map(|(var, values)| (var.as_str(), *values)),
    ))
}
