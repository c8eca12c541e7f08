//! XEP-0092: Software Version of the server, which a sysadmin may hide.

use std::sync::Arc;

use hearth_core::module::{DiscoScope, IqTarget, IqType, Module, Registrar, Spec, SupportStatus};
use minidom::Element;
use serde::Deserialize;

const NS: &str = "jabber:iq:version";

pub struct Version;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Include hearth's version number (off: only the name is told).
    pub show_version: bool,
    /// Include the operating system (off by default: it helps attackers more than users).
    pub show_os: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            show_version: true,
            show_os: false,
        }
    }
}

impl Module for Version {
    const NAME: &'static str = "version";
    const SPECS: &'static [Spec] = &[Spec {
        id: "XEP-0092",
        version: "1.1",
        status: SupportStatus::Complete,
        note: "version and OS can be hidden",
    }];
    type Config = Config;

    fn init(cfg: Config, reg: &mut Registrar) -> anyhow::Result<Arc<Self>> {
        reg.feature(DiscoScope::Host, NS);
        let answer = version_query(&cfg, os_name().as_deref());
        reg.iq(IqType::Get, IqTarget::Host, NS, "query", move |_, _| {
            let answer = answer.clone();
            async move { Ok(Some(answer)) }
        });
        Ok(Arc::new(Version))
    }
}

fn version_query(cfg: &Config, os: Option<&str>) -> Element {
    let text = |name: &str, value: &str| Element::builder(name, NS).append(value).build();
    let mut q = Element::builder("query", NS)
        .append(text("name", "hearth"))
        .build();
    q.append_child(text(
        "version",
        if cfg.show_version {
            env!("CARGO_PKG_VERSION")
        } else {
            ""
        },
    ));
    if let (true, Some(os)) = (cfg.show_os, os) {
        q.append_child(text("os", os));
    }
    q
}

/// `PRETTY_NAME` from os-release, else the OS family.
fn os_name() -> Option<String> {
    let release = std::fs::read_to_string("/etc/os-release").ok();
    let pretty = release.as_deref().and_then(|r| {
        r.lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_string())
    });
    pretty.or_else(|| Some(std::env::consts::OS.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_hidden_by_default() {
        let q = version_query(&Config::default(), Some("Debian"));
        assert_eq!(q.get_child("name", NS).unwrap().text(), "hearth");
        assert!(q.get_child("os", NS).is_none());
        let q = version_query(
            &Config {
                show_version: false,
                show_os: true,
            },
            Some("Debian"),
        );
        assert_eq!(q.get_child("version", NS).unwrap().text(), "");
        assert_eq!(q.get_child("os", NS).unwrap().text(), "Debian");
    }
}
