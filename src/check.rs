//! `hearth check`: what is wrong with the configuration, the data directory, the certificate and
//! the DNS records, each line saying what to do. It changes nothing on disk: no certificate is
//! generated and a missing data directory is created only to prove it can be, then removed.

use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use hearth_core::config::Config;
use hearth_core::dns::{
    Answer, ServerEndpoints, SrvTarget, addresses, ask, server_endpoints, srv_order, srv_records,
};
use hearth_core::tls::{CertInfo, format_time, name_matches};
use hickory_resolver::Resolver;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RecordType;

/// Warn this long before the certificate expires.
const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 86_400);

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
        .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .map_err(|_| {
            anyhow::anyhow!("--dns-server {s:?}: expected an IP address, optionally with :PORT")
        })
}

/// Prints the report to stdout; `true` when there is no error (warnings allowed). DNS that
/// cannot be reached is a warning, never an error.
pub async fn run(
    cfg: &Config,
    config_path: Option<&Path>,
    dns_server: Option<SocketAddr>,
) -> anyhow::Result<bool> {
    let mut r = Report { errors: 0 };
    check_config(&r, cfg, config_path);
    check_user(&r);
    check_data_dir(&mut r, cfg);
    check_certificate(&mut r, cfg);
    check_dns(&mut r, cfg, dns_server).await;
    println!("{} error(s)", r.errors);
    Ok(r.errors == 0)
}

fn check_config(r: &Report, cfg: &Config, config_path: Option<&Path>) {
    match config_path {
        Some(p) => r.ok(format!("configuration {} is valid", p.display())),
        None => r.warn("no --config given: checking the embedded default (domain localhost)"),
    }
    r.ok(format!(
        "domain {}, data in {}",
        cfg.domain,
        cfg.data_dir.display()
    ));
    if cfg.domain == "localhost" {
        r.warn("domain is localhost: only clients on this machine can use it; set domain in hearth.toml");
    }
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
    if listeners.is_empty() {
        r.warn(
            "no client listeners: set [c2s] listen or direct_tls_listen, or no client can connect",
        );
    } else {
        r.ok(format!("client listeners: {}", listeners.join(", ")));
    }
}

/// Effective user id of this process: the owner of `/proc/self` (Linux); `None` elsewhere.
fn current_uid() -> Option<u32> {
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

fn check_user(r: &Report) {
    if current_uid() == Some(0) {
        r.warn("running as root: root can read and write files the user hearth runs as cannot, so permission checks may pass here and fail at start; run it as that user, e.g. sudo -u hearth hearth check");
    }
}

fn check_data_dir(r: &mut Report, cfg: &Config) {
    let dir = cfg.data_dir.as_path();
    if dir.exists() {
        if !dir.is_dir() {
            r.error(format!(
                "data_dir {} exists but is not a directory: fix data_dir in hearth.toml",
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
                "data_dir {} is not writable: {e} — give it to the user hearth runs as (chown)",
                dir.display()
            )),
        }
    } else {
        // Create it to prove it can be created, then remove exactly what was created.
        let mut missing = vec![dir];
        while let Some(parent) = missing.last().copied().and_then(Path::parent)
            && !parent.as_os_str().is_empty()
            && !parent.exists()
        {
            missing.push(parent);
        }
        match std::fs::create_dir_all(dir) {
            Ok(()) => {
                for d in &missing {
                    let _ = std::fs::remove_dir(d);
                }
                r.ok(format!(
                    "data_dir {} does not exist yet; hearth will create it",
                    dir.display()
                ));
            }
            Err(e) => r.error(format!(
                "data_dir {} does not exist and cannot be created: {e} — create it and give it to the user hearth runs as",
                dir.display()
            )),
        }
        return;
    }
    let db = cfg.sqlite_path();
    if db.exists()
        && let Err(e) = std::fs::OpenOptions::new().read(true).write(true).open(&db)
    {
        r.error(format!(
            "database {} cannot be opened for writing: {e} — give it to the user hearth runs as",
            db.display()
        ));
    }
}

fn check_certificate(r: &mut Report, cfg: &Config) {
    let info = match hearth_core::tls::Tls::inspect(cfg) {
        Ok(Some(info)) => info,
        Ok(None) => {
            r.warn(format!(
                "no certificate configured: hearth will generate a self-signed one in {} on first start, which clients warn about or refuse; set [tls] certificate and key (e.g. Let's Encrypt via certbot with contrib/certbot-deploy-hook.sh)",
                cfg.data_dir.join("tls").display()
            ));
            return;
        }
        Err(e) => {
            r.error(format!("TLS: {e:#}"));
            return;
        }
    };
    let path = info
        .path
        .as_deref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    if info.self_signed {
        r.warn(format!("certificate {path} is self-signed: clients will warn or refuse it; set [tls] certificate and key to a real one (e.g. Let's Encrypt via certbot with contrib/certbot-deploy-hook.sh)"));
    } else {
        r.ok(format!(
            "certificate {path} and its key are readable and match"
        ));
        if let Some(cert) = &cfg.tls.certificate
            && count_pem_certificates(cert) == 1
        {
            r.warn(format!("certificate file {path} holds no intermediate certificates: many clients will not trust it; use the full chain (certbot's fullchain.pem)"));
        }
    }
    if let Some(key) = &cfg.tls.key
        && let Ok(meta) = std::fs::metadata(key)
        && meta.mode() & 0o004 != 0
    {
        r.warn(format!(
            "private key {} is readable by every local user: chmod 600 (or 640 with group hearth)",
            key.display()
        ));
    }
    check_validity(r, &info, &path, SystemTime::now());
    check_names(r, &info, &cfg.domain);
}

/// PEM certificate blocks in `path` (0 when unreadable: the load above reported that already).
fn count_pem_certificates(path: &Path) -> usize {
    std::fs::read(path)
        .map(|pem| {
            x509_parser::pem::Pem::iter_from_buffer(&pem)
                .filter_map(Result::ok)
                .filter(|p| p.label == "CERTIFICATE")
                .count()
        })
        .unwrap_or(0)
}

fn check_validity(r: &mut Report, info: &CertInfo, path: &str, now: SystemTime) {
    let until = format_time(info.not_after);
    match info.not_after.duration_since(now) {
        Err(_) => r.error(format!(
            "certificate {path} expired on {until}: renew it (e.g. certbot renew) and run systemctl reload hearth"
        )),
        Ok(left) if left < EXPIRY_WARNING => r.warn(format!(
            "certificate {path} expires in {} days ({until}): renew it and run systemctl reload hearth; check that automatic renewal works",
            left.as_secs() / 86_400
        )),
        Ok(left) => r.ok(format!(
            "certificate valid until {until} ({} more days)",
            left.as_secs() / 86_400
        )),
    }
    if info.not_before > now {
        r.error(format!(
            "certificate {path} is not valid before {}: check the system clock",
            format_time(info.not_before)
        ));
    }
}

fn check_names(r: &mut Report, info: &CertInfo, domain: &str) {
    let covers = |d: &str| info.names.iter().any(|n| name_matches(n, d));
    if covers(domain) {
        r.ok(format!("certificate names {domain}"));
    } else {
        r.error(format!(
            "certificate does not name {domain} (it names {}): clients will refuse it; get one for {domain}",
            info.names.join(", ")
        ));
    }
    for sub in ["conference", "upload"] {
        let name = format!("{sub}.{domain}");
        if !covers(&name) {
            r.warn(format!(
                "certificate does not name {name}, needed once group chat / file upload are enabled: add it to the certificate (e.g. certbot -d {domain} -d {name})"
            ));
        }
    }
}

fn join_ips(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// One service looked up by `hearth check`.
struct Service {
    prefix: &'static str,
    /// Ports hearth listens on for it (empty: not served).
    ports: Vec<u16>,
    /// What happens without the record.
    missing: String,
}

async fn check_dns(r: &mut Report, cfg: &Config, dns_server: Option<SocketAddr>) {
    let domain = cfg.domain.as_str();
    if domain == "localhost"
        || domain.ends_with(".localhost")
        || !domain.contains('.')
        || domain.parse::<IpAddr>().is_ok()
        || domain.starts_with('[')
    {
        r.warn(format!("{domain} is not a public DNS name: skipping DNS checks (clients must be told the server's address)"));
        return;
    }
    let resolver = match hearth_core::dns::resolver(dns_server, false) {
        Ok(res) => res,
        Err(e) => {
            r.warn(format!("{e:#}: skipping DNS checks"));
            return;
        }
    };
    let ports = |addrs: &[SocketAddr]| addrs.iter().map(SocketAddr::port).collect::<Vec<_>>();
    let services = [
        Service {
            prefix: "_xmpp-client._tcp",
            ports: ports(&cfg.c2s.listen),
            missing: format!(
                "clients fall back to {domain} (A/AAAA) on port 5222; publish one if hearth runs on another host or port (see contrib/dns-zone.example)"
            ),
        },
        Service {
            prefix: "_xmpps-client._tcp",
            ports: ports(&cfg.c2s.direct_tls_listen),
            missing: "clients will not find direct TLS (XEP-0368) and use STARTTLS instead; publish one for clients on networks that block port 5222 (see contrib/dns-zone.example)".into(),
        },
        Service {
            prefix: "_xmpp-server._tcp",
            ports: ports(&cfg.s2s.listen),
            missing: format!(
                "other servers fall back to {domain} (A/AAAA) on port 5269; publish one if hearth runs on another host or port (see contrib/dns-zone.example)"
            ),
        },
    ];
    let names: Vec<String> = services
        .iter()
        .map(|s| format!("{}.{domain}.", s.prefix))
        .collect();
    let fqdn = format!("{domain}.");
    // The system's resolver must know the root zone; if it does not (an isolated machine whose
    // DNS answers NXDOMAIN to everything), its answers about our records mean nothing. Not asked
    // of a --dns-server, which may well be an authoritative server only.
    let root_probe = async {
        match dns_server {
            Some(_) => Answer::Found(()),
            None => match ask(resolver.lookup(".", RecordType::NS)).await {
                Answer::Found(_) => Answer::Found(()),
                Answer::Missing => Answer::Failed("it says the root zone does not exist".into()),
                Answer::Failed(e) => Answer::Failed(e),
            },
        }
    };
    // All questions at once: with unreachable DNS the whole check waits one timeout, not six.
    let direct_server_name = format!("_xmpps-server._tcp.{domain}.");
    let (root, client, direct, server, direct_server, own) = tokio::join!(
        root_probe,
        srv_records(&resolver, &names[0]),
        srv_records(&resolver, &names[1]),
        srv_records(&resolver, &names[2]),
        srv_records(&resolver, &direct_server_name),
        addresses(&resolver, &fqdn),
    );
    // The order other servers try (both SRV services mixed, XEP-0368), heaviest first.
    let federation = server_endpoints(domain, direct_server, server.clone(), |total| total);
    let answers = [client, direct, server];
    let unreachable = match (&root, &own) {
        (Answer::Failed(e), _) => Some(e),
        (_, Answer::Failed(e)) if answers.iter().all(|a| matches!(a, Answer::Failed(_))) => Some(e),
        _ => None,
    };
    if let Some(e) = unreachable {
        r.warn(format!("DNS does not work from here ({e}): DNS checks skipped; run hearth check on a machine with working DNS, or pass --dns-server"));
        return;
    }
    let via = dns_server.map_or("the system's resolvers".to_string(), |a| a.to_string());
    r.ok(format!("DNS answers (asked {via})"));
    let mut clients_find_host = false;
    for ((service, name), answer) in services.iter().zip(&names).zip(answers) {
        match answer {
            Answer::Missing
                if service.prefix == "_xmpps-client._tcp" && service.ports.is_empty() =>
            {
                r.ok(format!("no SRV record {name}, and no direct TLS listener"));
            }
            Answer::Missing if service.prefix == "_xmpp-server._tcp" && !cfg.s2s.enabled => {
                r.ok(format!(
                    "no SRV record {name}, and federation is off (s2s.enabled)"
                ));
            }
            Answer::Missing => r.warn(format!("no SRV record {name}: {}", service.missing)),
            Answer::Failed(e) => {
                r.warn(format!("{name}: DNS lookup failed ({e}); cannot check it"))
            }
            Answer::Found(records) => {
                let usable = check_srv(r, &resolver, service, name, records).await;
                clients_find_host |= usable && service.prefix != "_xmpp-server._tcp";
            }
        }
    }
    match own {
        Answer::Found(ips) => r.ok(format!("{domain} has address {}", join_ips(&ips))),
        Answer::Missing if clients_find_host => r.ok(format!(
            "{domain} has no A/AAAA record: fine, clients use the SRV records"
        )),
        Answer::Missing => r.error(format!(
            "{domain} has neither client SRV records nor an A/AAAA record: clients cannot find the server; publish them (see contrib/dns-zone.example)"
        )),
        Answer::Failed(e) => r.warn(format!("{domain}: address lookup failed ({e}); cannot check it")),
    }
    match federation {
        ServerEndpoints::Found(endpoints) => {
            let list: Vec<String> = endpoints
                .iter()
                .map(|e| {
                    let how = if e.direct_tls { "direct TLS" } else { "STARTTLS" };
                    format!("{}:{} ({how})", e.host, e.port)
                })
                .collect();
            r.ok(format!("other servers would connect to {}", list.join(", then ")));
        }
        ServerEndpoints::NotOffered => r.warn(format!(
            "{domain}'s server SRV records say it offers no federation (target \".\"): other servers will not connect"
        )),
        ServerEndpoints::Failed(e) => r.warn(format!(
            "{domain}: server SRV lookup failed ({e}); cannot tell how other servers find it"
        )),
    }
}

/// Reports the records of one SRV name; `true` if at least one target resolves.
async fn check_srv(
    r: &mut Report,
    resolver: &Resolver<TokioRuntimeProvider>,
    service: &Service,
    name: &str,
    records: Vec<SrvTarget>,
) -> bool {
    let mut usable = false;
    for srv in srv_order(records, |s| (s.priority, s.weight), |total| total) {
        let SrvTarget {
            priority,
            weight,
            port,
            target,
        } = &srv;
        if target == "." {
            r.warn(format!(
                "{name} says the service is not offered (target \".\"): remove that record if hearth should offer it"
            ));
            continue;
        }
        match addresses(resolver, target).await {
            Answer::Found(ips) => {
                usable = true;
                r.ok(format!(
                    "{name} → {target}:{port} (priority {priority}, weight {weight}; {})",
                    join_ips(&ips)
                ));
            }
            Answer::Missing => r.error(format!(
                "{name} points to {target}, which does not resolve: fix the record or add A/AAAA records for {target}"
            )),
            Answer::Failed(e) => r.warn(format!(
                "{name} points to {target}, whose address lookup failed ({e}); cannot check it"
            )),
        }
        if !service.ports.is_empty() && !service.ports.contains(port) {
            let listening: Vec<String> = service.ports.iter().map(u16::to_string).collect();
            r.warn(format!(
                "{name} → {target}:{port}, but hearth listens on port {} for it: fix the record or the listener (unless a proxy or port forwarding maps {port} there)",
                listening.join(", ")
            ));
        }
    }
    usable
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_server_argument() {
        assert_eq!(
            parse_dns_server("192.0.2.53").unwrap(),
            "192.0.2.53:53".parse().unwrap()
        );
        assert_eq!(
            parse_dns_server("[2001:db8::53]:5353").unwrap(),
            "[2001:db8::53]:5353".parse().unwrap()
        );
        assert!(parse_dns_server("dns.example").is_err());
    }

    fn info(names: &[&str], not_before: SystemTime, not_after: SystemTime) -> CertInfo {
        CertInfo {
            names: names.iter().map(|n| n.to_string()).collect(),
            not_before,
            not_after,
            self_signed: false,
            path: None,
        }
    }

    #[test]
    fn expiry_and_names() {
        let now = SystemTime::now();
        let day = Duration::from_secs(86_400);
        let mut r = Report { errors: 0 };
        check_validity(&mut r, &info(&[], now - day, now + 100 * day), "c", now);
        check_validity(&mut r, &info(&[], now - day, now + 3 * day), "c", now);
        assert_eq!(r.errors, 0, "valid or expiring soon: no error");
        check_validity(&mut r, &info(&[], now - 9 * day, now - day), "c", now);
        assert_eq!(r.errors, 1, "expired");
        check_validity(&mut r, &info(&[], now + day, now + 9 * day), "c", now);
        assert_eq!(r.errors, 2, "not yet valid");

        let mut r = Report { errors: 0 };
        check_names(&mut r, &info(&["*.example.com"], now, now), "example.com");
        assert_eq!(r.errors, 1, "a wildcard does not cover the domain itself");
        let mut r = Report { errors: 0 };
        check_names(
            &mut r,
            &info(&["example.com", "*.example.com"], now, now),
            "example.com",
        );
        assert_eq!(r.errors, 0);
    }

    #[tokio::test]
    async fn check_of_a_fresh_setup_changes_nothing_and_passes() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("a/b/data");
        let cfg = Config::parse(&format!(
            "domain = \"localhost\"\ndata_dir = \"{}\"",
            data.display()
        ))
        .unwrap();
        assert!(run(&cfg, None, None).await.unwrap());
        assert!(
            !dir.path().join("a").exists(),
            "no directory or certificate left behind"
        );
    }

    #[tokio::test]
    async fn unreachable_dns_is_a_warning_and_quick() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config::parse(&format!(
            "domain = \"example.com\"\ndata_dir = \"{}\"",
            dir.path().display()
        ))
        .unwrap();
        // A UDP port on loopback nobody answers on (TEST-NET addresses may be routed nowhere
        // and make this slow rather than fail).
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let start = std::time::Instant::now();
        let mut r = Report { errors: 0 };
        check_dns(&mut r, &cfg, Some(silent.local_addr().unwrap())).await;
        assert_eq!(r.errors, 0);
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
    }
}
