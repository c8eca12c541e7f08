//! `hearth check`: what is wrong with the configuration, the data directory, the certificate and
//! the DNS records, each line saying what to do.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use hearth_core::config::Config;

struct Report {
    errors: usize,
}

impl Report {
    fn ok(&self, msg: impl AsRef<str>) {
        println!("ok:      {}", msg.as_ref());
    }
    fn warn(&self, msg: impl AsRef<str>) {
        println!("warning: {}", msg.as_ref());
    }
    fn error(&mut self, msg: impl AsRef<str>) {
        self.errors += 1;
        println!("error:   {}", msg.as_ref());
    }
}

/// `IP` or `IP:PORT` (port 53 by default).
pub fn parse_dns_server(s: &str) -> anyhow::Result<SocketAddr> {
    s.parse::<SocketAddr>()
        .or_else(|_| {
            s.parse::<std::net::IpAddr>()
                .map(|ip| SocketAddr::new(ip, 53))
        })
        .map_err(|_| {
            anyhow::anyhow!("--dns-server {s:?}: expected an IP address, optionally with :PORT")
        })
}

pub async fn run(
    cfg: &Config,
    config_path: Option<&Path>,
    dns_server: Option<SocketAddr>,
) -> anyhow::Result<bool> {
    let mut r = Report { errors: 0 };
    match config_path {
        Some(p) => r.ok(format!("configuration {} is valid", p.display())),
        None => r.warn("no --config given: checking the embedded default (domain localhost)"),
    }
    r.ok(format!(
        "domain {}, data in {}",
        cfg.domain,
        cfg.data_dir.display()
    ));
    let listeners: Vec<String> = cfg
        .c2s
        .listen
        .iter()
        .map(|a| format!("{a} (STARTTLS)"))
        .chain(
            cfg.c2s
                .direct_tls_listen
                .iter()
                .map(|a| format!("{a} (direct TLS)")),
        )
        .collect();
    r.ok(format!("client listeners: {}", listeners.join(", ")));
    check_data_dir(&mut r, &cfg.data_dir);
    check_certificate(&mut r, cfg);
    check_dns(&mut r, &cfg.domain, dns_server).await;
    println!("{} error(s)", r.errors);
    Ok(r.errors == 0)
}

fn check_data_dir(r: &mut Report, dir: &Path) {
    if let Err(e) = std::fs::create_dir_all(dir) {
        r.error(format!(
            "data_dir {} cannot be created: {e} — create it and give it to the user hearth runs as",
            dir.display()
        ));
        return;
    }
    let probe = dir.join(".hearth-check");
    match std::fs::write(&probe, b"") {
        Ok(()) => {
            let _ = std::fs::remove_file(&probe);
            r.ok(format!("data_dir {} is writable", dir.display()));
        }
        Err(e) => r.error(format!(
            "data_dir {} is not writable: {e} — fix its owner or permissions",
            dir.display()
        )),
    }
}

fn check_certificate(r: &mut Report, cfg: &Config) {
    let tls = match hearth_core::tls::Tls::load(cfg) {
        Ok(t) => t,
        Err(e) => {
            r.error(format!("TLS: {e:#}"));
            return;
        }
    };
    let info = tls.certificate_info();
    let path = info
        .path
        .as_deref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    if info.self_signed {
        r.warn(format!("certificate {path} is self-signed: clients will warn; set [tls] certificate and key to a real one"));
    } else {
        r.ok(format!("certificate {path} for {}", info.names.join(", ")));
    }
    let now = SystemTime::now();
    match info.not_after.duration_since(now) {
        Err(_) => r.error(format!("certificate {path} has expired: renew it (e.g. certbot renew) and run systemctl reload hearth")),
        Ok(left) if left < Duration::from_secs(14 * 86_400) => {
            r.warn(format!("certificate {path} expires in {} days: renew it soon", left.as_secs() / 86_400))
        }
        Ok(left) => r.ok(format!("certificate valid for {} more days", left.as_secs() / 86_400)),
    }
    if info.not_before > now {
        r.error(format!(
            "certificate {path} is not valid yet: check the system clock"
        ));
    }
    let covers = |d: &str| {
        info.names
            .iter()
            .any(|n| hearth_core::tls::name_matches(n, d))
    };
    if covers(&cfg.domain) {
        r.ok(format!("certificate names {}", cfg.domain));
    } else {
        r.error(format!(
            "certificate does not name {} (it names {}): clients will refuse it",
            cfg.domain,
            info.names.join(", ")
        ));
    }
    for sub in ["conference", "upload"] {
        let name = format!("{sub}.{}", cfg.domain);
        if !covers(&name) {
            r.warn(format!(
                "certificate does not name {name}, needed once group chat / file upload are enabled"
            ));
        }
    }
}

async fn check_dns(r: &mut Report, domain: &str, dns_server: Option<SocketAddr>) {
    if domain == "localhost" || !domain.contains('.') {
        r.warn(format!("{domain} is not a public domain: skipping DNS checks (clients must be told the server's address)"));
        return;
    }
    let builder = match dns_server {
        Some(addr) => {
            use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
            let mut udp = ConnectionConfig::udp();
            udp.port = addr.port();
            let ns = NameServerConfig::new(addr.ip(), true, vec![udp]);
            Ok(hickory_resolver::Resolver::builder_with_config(
                ResolverConfig::from_name_servers(vec![ns]),
                hickory_resolver::net::runtime::TokioRuntimeProvider::default(),
            ))
        }
        None => hickory_resolver::Resolver::builder_tokio(),
    };
    let resolver = match builder {
        Ok(mut b) => {
            b.options_mut().timeout = Duration::from_secs(2);
            b.options_mut().attempts = 1;
            b.build()
        }
        Err(e) => {
            r.warn(format!(
                "cannot read the system's DNS configuration ({e}): skipping DNS checks"
            ));
            return;
        }
    };
    let resolver = match resolver {
        Ok(res) => res,
        Err(e) => {
            r.warn(format!(
                "cannot set up DNS resolution ({e}): skipping DNS checks"
            ));
            return;
        }
    };
    for (service, port, fallback) in [
        (
            "_xmpp-client._tcp",
            5222,
            "clients fall back to the domain's A/AAAA records on port 5222",
        ),
        (
            "_xmpps-client._tcp",
            5223,
            "clients will not find direct TLS (XEP-0368)",
        ),
        (
            "_xmpp-server._tcp",
            5269,
            "federation is not implemented yet; publish it when it is",
        ),
    ] {
        let name = format!("{service}.{domain}.");
        match tokio::time::timeout(Duration::from_secs(3), resolver.srv_lookup(name.as_str())).await
        {
            Err(_) => r.warn(format!("{name}: DNS did not answer in time (no network?)")),
            Ok(Err(e)) if is_not_found(&e.to_string()) => r.warn(format!(
                "no SRV record {name}: {fallback} (suggested: {name} SRV 5 0 {port} <host>.)"
            )),
            Ok(Err(e)) => r.warn(format!("{name}: DNS lookup failed ({e}); cannot check")),
            Ok(Ok(lookup)) => {
                let mut records: Vec<(u16, u16, u16, String)> = lookup
                    .answers()
                    .iter()
                    .filter_map(|rec| match &rec.data {
                        hickory_resolver::proto::rr::RData::SRV(srv) => {
                            Some((srv.priority, srv.weight, srv.port, srv.target.to_string()))
                        }
                        _ => None,
                    })
                    .collect();
                records.sort();
                for (prio, weight, port, target) in records {
                    if target == "." {
                        r.warn(format!(
                            "{name} says the service is not offered (target \".\")"
                        ));
                        continue;
                    }
                    match tokio::time::timeout(Duration::from_secs(3), resolver.lookup_ip(target.as_str())).await {
                        Ok(Ok(ips)) if ips.iter().next().is_some() => r.ok(format!("{name} → {target}:{port} (priority {prio}, weight {weight})")),
                        _ => r.error(format!("{name} points to {target}, which does not resolve: fix the record or add A/AAAA for it")),
                    }
                }
            }
        }
    }
}

fn is_not_found(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("no record") || t.contains("nxdomain") || t.contains("not found")
}
