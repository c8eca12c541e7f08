//! Announcing the server on the local network with multicast DNS / DNS-SD (RFC 6762, RFC 6763):
//! `_xmpp-client._tcp.local.` points at this machine and the client port, for networks without
//! DNS records (a small office, a lab). Off by default: it sends multicast on every interface,
//! and Conversations and Gajim do not look for servers this way — clients that browse DNS-SD do.
//! The daemon (mdns-sd) runs on its own thread and says goodbye when hearth stops.

use std::sync::Arc;

use hearth_core::module::{Module, Registrar, Spec, SupportStatus};
use mdns_sd::{ServiceDaemon, ServiceInfo};
use serde::Deserialize;

const SERVICE_TYPE: &str = "_xmpp-client._tcp.local.";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The name shown when browsing; empty means the XMPP domain.
    pub instance_name: String,
    /// This machine's name on the local network (`NAME.local.`); empty means its host name.
    pub host_name: String,
}

pub struct Mdns;

impl Module for Mdns {
    const NAME: &'static str = "mdns";
    const SPECS: &'static [Spec] = &[Spec {
        id: "RFC 6763",
        version: "",
        status: SupportStatus::Partial,
        note: "announces _xmpp-client._tcp.local. (RFC 6762 multicast DNS) for the first client port when modules.mdns is enabled; no link-local messaging (XEP-0174)",
    }];
    const ENABLED_BY_DEFAULT: bool = false;
    type Config = Config;

    fn init(cfg: Config, reg: &mut Registrar) -> anyhow::Result<Arc<Self>> {
        let server_cfg = reg.config();
        let Some(port) = server_cfg.c2s.listen.first().map(|a| a.port()) else {
            anyhow::bail!("modules.mdns needs a client listener (c2s.listen) to announce");
        };
        let host = match cfg.host_name.as_str() {
            "" => system_host_name(),
            h => h.to_string(),
        };
        let instance = match cfg.instance_name.as_str() {
            "" => server_cfg.domain.clone(),
            n => n.to_string(),
        };
        let service = announcement(&instance, &host, port)?;
        reg.worker("mDNS announcement", move |server| async move {
            let daemon = ServiceDaemon::new()
                .map_err(|e| anyhow::anyhow!("cannot start multicast DNS: {e}"))?;
            let fullname = service.get_fullname().to_string();
            daemon
                .register(service)
                .map_err(|e| anyhow::anyhow!("cannot announce {SERVICE_TYPE}: {e}"))?;
            tracing::info!(service = %fullname, port, "announced on the local network (mDNS)");
            let mut shutdown = server.shutdown_signal();
            let _ = shutdown.changed().await;
            // Goodbye packets, so browsers forget the server at once.
            if let Ok(done) = daemon.unregister(&fullname) {
                let _ = tokio::task::spawn_blocking(move || {
                    done.recv_timeout(std::time::Duration::from_secs(1))
                })
                .await;
            }
            let _ = daemon.shutdown();
            Ok(())
        });
        Ok(Arc::new(Mdns))
    }
}

/// The DNS-SD record set: this host's addresses, kept current as interfaces change.
fn announcement(instance: &str, host: &str, port: u16) -> anyhow::Result<ServiceInfo> {
    let host = format!(
        "{}.local.",
        host.trim_end_matches('.').trim_end_matches(".local")
    );
    let no_addresses: &[std::net::IpAddr] = &[];
    let info = ServiceInfo::new(
        SERVICE_TYPE,
        instance,
        &host,
        no_addresses,
        port,
        None::<std::collections::HashMap<String, String>>,
    )
    .map_err(|e| anyhow::anyhow!("modules.mdns: {e}"))?;
    Ok(info.enable_addr_auto())
}

fn system_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "hearth".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The records only: tests never send multicast.
    #[test]
    fn the_announcement_names_the_client_service_on_this_host() {
        let info = announcement("example.com", "chat", 5222).unwrap();
        // The instance name is one label: its dot is escaped (RFC 6763 §4.3).
        assert_eq!(
            info.get_fullname(),
            "example\\.com._xmpp-client._tcp.local."
        );
        assert_eq!(info.get_hostname(), "chat.local.");
        assert_eq!(info.get_port(), 5222);
        assert!(info.is_addr_auto());
        let info = announcement("Example Office", "chat.local.", 5222).unwrap();
        assert_eq!(info.get_hostname(), "chat.local.");
    }
}
