//! XEP-0215: External Service Discovery. Clients (Conversations, Gajim) ask which STUN and
//! TURN servers to use for calls; TURN credentials are minted per request with the TURN REST
//! scheme coturn checks with `use-auth-secret`: the username is `expiry:jid`, the password
//! the base64 HMAC-SHA1 of it under the shared secret, so coturn needs no account list.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hearth_core::module::{DiscoScope, IqTarget, IqType, Module, Registrar, Spec, SupportStatus};
use hearth_core::router::Context;
use hearth_core::stanza::{Condition, Stanza, StanzaError, ncname};
use hmac::{Hmac, Mac};
use minidom::Element;
use serde::Deserialize;
use sha1::Sha1;

pub const NS: &str = "urn:xmpp:extdisco:2";

pub struct ExtDisco {
    cfg: Config,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The STUN/TURN services clients are told about.
    pub services: Vec<Service>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// `stun`, `turn` or `turns` (XEP-0215's registered types).
    #[serde(rename = "type")]
    pub kind: String,
    pub host: String,
    pub port: u16,
    /// `udp` or `tcp`.
    #[serde(default = "udp")]
    pub transport: String,
    /// The TURN REST shared secret (coturn's `static-auth-secret`); with it the service gets
    /// time-limited credentials.
    pub secret: Option<String>,
    /// Seconds the credentials stay valid.
    #[serde(default = "one_day")]
    pub credentials_lifetime_secs: u64,
}

fn udp() -> String {
    "udp".into()
}

fn one_day() -> u64 {
    86_400
}

impl Module for ExtDisco {
    const NAME: &'static str = "extdisco";
    const SPECS: &'static [Spec] = &[Spec {
        id: "XEP-0215",
        version: "1.0.0",
        status: SupportStatus::Complete,
        note: "STUN/TURN services from modules.extdisco; TURN credentials by the TURN REST shared secret (coturn use-auth-secret), for local users only",
    }];
    type Config = Config;

    fn init(cfg: Config, reg: &mut Registrar) -> anyhow::Result<Arc<Self>> {
        for s in &cfg.services {
            anyhow::ensure!(
                matches!(s.kind.as_str(), "stun" | "turn" | "turns"),
                "modules.extdisco.services: type must be stun, turn or turns, not {:?}",
                s.kind
            );
            anyhow::ensure!(
                matches!(s.transport.as_str(), "udp" | "tcp"),
                "modules.extdisco.services: transport must be udp or tcp, not {:?}",
                s.transport
            );
        }
        let module = Arc::new(ExtDisco { cfg });
        reg.feature(DiscoScope::Host, NS);
        for name in ["services", "credentials"] {
            reg.iq_with(
                IqType::Get,
                IqTarget::Host,
                NS,
                name,
                &module,
                |m, cx, st| async move { m.answer(&cx, &st) },
            );
        }
        Ok(module)
    }
}

impl ExtDisco {
    fn answer(&self, cx: &Context, st: &Stanza) -> Result<Option<Element>, StanzaError> {
        // Credentials cost the TURN server's bandwidth: only for this server's own users.
        let Some(session) = cx.session() else {
            return Err(StanzaError::new(Condition::Forbidden)
                .with_text("STUN/TURN services are for this server's users"));
        };
        let request = st.iq_payload().expect("routed by its payload");
        let user = session.jid.to_bare().to_string();
        let now = SystemTime::now();
        let (kind, host) = match request.name() {
            "credentials" => {
                let service = request.get_child("service", NS);
                (
                    service.and_then(|s| s.attr("type")),
                    service.and_then(|s| s.attr("host")),
                )
            }
            _ => (request.attr("type"), None),
        };
        let mut reply = Element::bare(request.name(), NS);
        for service in self
            .cfg
            .services
            .iter()
            .filter(|s| kind.is_none_or(|k| k == s.kind) && host.is_none_or(|h| h == s.host))
        {
            reply.append_child(service_element(service, &user, now));
        }
        if request.name() == "credentials" && reply.children().next().is_none() {
            return Err(StanzaError::new(Condition::ItemNotFound)
                .with_text("no such service is configured"));
        }
        Ok(Some(reply))
    }
}

/// A `<service/>`, with credentials valid from `now` when it has a secret.
fn service_element(service: &Service, user: &str, now: SystemTime) -> Element {
    let mut el = Element::builder("service", NS)
        .attr(ncname("type"), service.kind.as_str())
        .attr(ncname("host"), service.host.as_str())
        .attr(ncname("port"), service.port.to_string())
        .attr(ncname("transport"), service.transport.as_str())
        .build();
    if let Some(secret) = &service.secret {
        let expires = now + Duration::from_secs(service.credentials_lifetime_secs);
        let (username, password) = turn_credentials(secret, user, expires);
        for (name, value) in [
            ("username", username),
            ("password", password),
            ("expires", hearth_core::datetime::format(expires)),
            ("restricted", "1".to_string()),
        ] {
            hearth_core::stanza::set_attr(&mut el, name, Some(value));
        }
    }
    el
}

/// TURN REST credentials (coturn `use-auth-secret`): `expiry:user` and the base64
/// HMAC-SHA1 of it under `secret`.
fn turn_credentials(secret: &str, user: &str, expires: SystemTime) -> (String, String) {
    let expiry = expires
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let username = format!("{expiry}:{user}");
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(username.as_bytes());
    (username, B64.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_follow_the_turn_rest_scheme() {
        let expires = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let (username, password) = turn_credentials("north", "juliet@example.com", expires);
        assert_eq!(username, "1700000000:juliet@example.com");
        // echo -n '1700000000:juliet@example.com' | openssl dgst -sha1 -hmac north -binary | base64
        assert_eq!(password, "x4zRqZG7bmwkVBU56FGOq1d86xs=");
    }
}
