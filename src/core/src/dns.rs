//! DNS for finding XMPP servers: SRV records in RFC 2782 order, XEP-0368's direct-TLS records
//! mixed in, and the A/AAAA fallback of RFC 6120 §3.2. `hearth check` uses it to show how other
//! servers find this one.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::Resolver;
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;

/// Upper bound for one DNS question, above the resolver's own 2 s timeout, so that an
/// unreachable DNS never hangs the caller.
const DNS_DEADLINE: Duration = Duration::from_secs(3);

/// The default s2s port (RFC 6120 §3.2.1), used when a domain has no server SRV records.
pub const S2S_PORT: u16 = 5269;

/// One SRV record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvTarget {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    /// Fully qualified, with the trailing dot; `.` means "service not offered".
    pub target: String,
}

/// RFC 2782 connection order: lowest priority first; within one priority, repeatedly pick a
/// record with probability proportional to its weight (weight-0 records come first in the
/// running sum, so they get a small chance only). `key` gives a record's (priority, weight);
/// `random(total)` must return a number in `0..=total`, uniformly at random when connecting;
/// `|total| total` lists the heaviest first.
pub fn srv_order<T>(
    mut records: Vec<T>,
    key: impl Fn(&T) -> (u16, u16),
    mut random: impl FnMut(u32) -> u32,
) -> Vec<T> {
    records.sort_by_key(&key);
    let mut ordered = Vec::with_capacity(records.len());
    while let Some(first) = records.first() {
        let priority = key(first).0;
        let same = records.iter().take_while(|s| key(s).0 == priority).count();
        let mut group: Vec<T> = records.drain(..same).collect();
        while !group.is_empty() {
            // At most 65535 records of weight ≤ 65535 fit in a DNS message: no overflow.
            let total: u32 = group.iter().map(|s| u32::from(key(s).1)).sum();
            let pick = random(total).min(total);
            let mut sum = 0;
            let chosen = group
                .iter()
                .position(|s| {
                    sum += u32::from(key(s).1);
                    sum >= pick
                })
                .unwrap_or(0);
            ordered.push(group.remove(chosen));
        }
    }
    ordered
}

/// The outcome of one DNS question.
#[derive(Clone)]
pub enum Answer<T> {
    Found(T),
    /// NXDOMAIN or no record of that type.
    Missing,
    /// Timeout, unreachable server, SERVFAIL…: says nothing about the records.
    Failed(String),
}

impl<T> Answer<T> {
    /// What was found, as a list; an empty list counts as nothing found.
    fn non_empty<U>(self, list: impl FnOnce(T) -> Vec<U>) -> Answer<Vec<U>> {
        match self {
            Answer::Found(found) => {
                let items = list(found);
                if items.is_empty() {
                    Answer::Missing
                } else {
                    Answer::Found(items)
                }
            }
            Answer::Missing => Answer::Missing,
            Answer::Failed(e) => Answer::Failed(e),
        }
    }
}

/// One DNS question, bounded by [`DNS_DEADLINE`].
pub async fn ask<T>(lookup: impl Future<Output = Result<T, NetError>>) -> Answer<T> {
    match tokio::time::timeout(DNS_DEADLINE, lookup).await {
        Err(_) => Answer::Failed(format!("no answer within {} s", DNS_DEADLINE.as_secs())),
        Ok(Ok(found)) => Answer::Found(found),
        Ok(Err(e)) if e.is_no_records_found() => Answer::Missing,
        Ok(Err(e)) => Answer::Failed(e.to_string()),
    }
}

/// The addresses `name` resolves to.
pub async fn addresses(
    resolver: &Resolver<TokioRuntimeProvider>,
    name: &str,
) -> Answer<Vec<IpAddr>> {
    ask(resolver.lookup_ip(name))
        .await
        .non_empty(|ips| ips.iter().collect())
}

/// The SRV records at `name` (`_service._tcp.domain.`).
pub async fn srv_records(
    resolver: &Resolver<TokioRuntimeProvider>,
    name: &str,
) -> Answer<Vec<SrvTarget>> {
    ask(resolver.srv_lookup(name)).await.non_empty(|lookup| {
        lookup
            .answers()
            .iter()
            .filter_map(|rec| match &rec.data {
                RData::SRV(srv) => Some(SrvTarget {
                    priority: srv.priority,
                    weight: srv.weight,
                    port: srv.port,
                    target: srv.target.to_string(),
                }),
                _ => None,
            })
            .collect()
    })
}

/// A resolver asking `dns_server`, or the system's resolvers; addresses in this machine's
/// `/etc/hosts` take precedence only with `hosts_file` (federation on a LAN), not when checking
/// what DNS publishes.
pub fn resolver(
    dns_server: Option<SocketAddr>,
    hosts_file: bool,
) -> anyhow::Result<Resolver<TokioRuntimeProvider>> {
    let mut builder = match dns_server {
        Some(addr) => {
            use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
            let mut udp = ConnectionConfig::udp();
            udp.port = addr.port();
            let ns = NameServerConfig::new(addr.ip(), true, vec![udp]);
            Resolver::builder_with_config(
                ResolverConfig::from_name_servers(vec![ns]),
                TokioRuntimeProvider::default(),
            )
        }
        None => Resolver::builder_tokio()
            .map_err(|e| anyhow::anyhow!("cannot read the system's DNS configuration: {e}"))?,
    };
    let opts = builder.options_mut();
    opts.timeout = Duration::from_secs(2);
    opts.attempts = 1;
    opts.use_hosts_file = if hosts_file {
        hickory_resolver::config::ResolveHosts::Always
    } else {
        hickory_resolver::config::ResolveHosts::Never
    };
    builder
        .build()
        .map_err(|e| anyhow::anyhow!("cannot set up DNS resolution: {e}"))
}

/// The endpoints of `domain`'s server: both SRV services asked at once, ordered with a random
/// draw per RFC 2782.
pub async fn lookup_server(
    resolver: &Resolver<TokioRuntimeProvider>,
    domain: &str,
) -> ServerEndpoints {
    let (direct_name, starttls_name) = (
        format!("_xmpps-server._tcp.{domain}."),
        format!("_xmpp-server._tcp.{domain}."),
    );
    let (direct_tls, starttls) = tokio::join!(
        srv_records(resolver, &direct_name),
        srv_records(resolver, &starttls_name),
    );
    server_endpoints(domain, direct_tls, starttls, |total| {
        rand::random_range(0..=total)
    })
}

/// Where to connect to reach a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// A host name (fully qualified, with the trailing dot, from SRV) or the domain itself.
    pub host: String,
    pub port: u16,
    /// Direct TLS (`_xmpps-server`, XEP-0368) rather than STARTTLS.
    pub direct_tls: bool,
}

/// How a domain's server is reached.
#[derive(Debug, PartialEq, Eq)]
pub enum ServerEndpoints {
    /// The endpoints to try, in order.
    Found(Vec<Endpoint>),
    /// The domain says it offers no server-to-server service (`.` targets only).
    NotOffered,
    /// DNS could not answer.
    Failed(String),
}

/// RFC 6120 §3.2 with XEP-0368: the `_xmpps-server` and `_xmpp-server` records mixed as one
/// set in RFC 2782 order (`random` as for [`srv_order`]); a `.` record says that service is not
/// offered; with no records at all, the domain itself on port 5269. No A/AAAA fallback once
/// either service has records (XEP-0368 §3).
pub fn server_endpoints(
    domain: &str,
    direct_tls: Answer<Vec<SrvTarget>>,
    starttls: Answer<Vec<SrvTarget>>,
    random: impl FnMut(u32) -> u32,
) -> ServerEndpoints {
    let mut tagged = Vec::new();
    let mut failure = None;
    let mut any_records = false;
    for (answer, direct) in [(direct_tls, true), (starttls, false)] {
        match answer {
            Answer::Found(records) => {
                any_records = true;
                tagged.extend(
                    records
                        .into_iter()
                        .filter(|r| r.target != ".")
                        .map(|r| (r, direct)),
                );
            }
            Answer::Missing => {}
            Answer::Failed(e) => failure = Some(e),
        }
    }
    if !any_records {
        return match failure {
            Some(e) => ServerEndpoints::Failed(e),
            None => ServerEndpoints::Found(vec![Endpoint {
                host: domain.to_string(),
                port: S2S_PORT,
                direct_tls: false,
            }]),
        };
    }
    let endpoints: Vec<Endpoint> = srv_order(tagged, |(r, _)| (r.priority, r.weight), random)
        .into_iter()
        .map(|(r, direct_tls)| Endpoint {
            host: r.target,
            port: r.port,
            direct_tls,
        })
        .collect();
    match (endpoints.is_empty(), failure) {
        (false, _) => ServerEndpoints::Found(endpoints),
        (true, Some(e)) => ServerEndpoints::Failed(e),
        (true, None) => ServerEndpoints::NotOffered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn srv(priority: u16, weight: u16, port: u16, target: &str) -> SrvTarget {
        SrvTarget {
            priority,
            weight,
            port,
            target: target.to_string(),
        }
    }

    fn ep(host: &str, port: u16, direct_tls: bool) -> Endpoint {
        Endpoint {
            host: host.to_string(),
            port,
            direct_tls,
        }
    }

    fn weighted(priority: u16, weight: u16, target: &str) -> SrvTarget {
        SrvTarget {
            priority,
            weight,
            port: 5222,
            target: target.into(),
        }
    }

    fn key(s: &SrvTarget) -> (u16, u16) {
        (s.priority, s.weight)
    }

    fn targets(records: &[SrvTarget]) -> Vec<&str> {
        records.iter().map(|s| s.target.as_str()).collect()
    }

    #[test]
    fn srv_order_is_by_priority_then_weight() {
        let records = vec![
            weighted(20, 0, "backup."),
            weighted(10, 10, "light."),
            weighted(10, 0, "zero."),
            weighted(10, 60, "heavy."),
        ];
        // Heaviest first when every draw lands at the top of the range.
        assert_eq!(
            targets(&srv_order(records.clone(), key, |total| total)),
            ["heavy.", "light.", "zero.", "backup."]
        );
        // A draw of 0 picks the first record of the running sum: weight 0 first (RFC 2782).
        assert_eq!(
            targets(&srv_order(records, key, |_| 0)),
            ["zero.", "light.", "heavy.", "backup."]
        );
    }

    #[test]
    fn srv_weights_pick_proportionally() {
        let records = vec![weighted(5, 10, "a."), weighted(5, 30, "b.")];
        // Running sums: a. 10, b. 40. Draws 0..=10 pick a., 11..=40 pick b.
        for (draw, first) in [(0, "a."), (10, "a."), (11, "b."), (40, "b.")] {
            let order = srv_order(records.clone(), key, |total| {
                assert!(total == 40 || total == 10 || total == 30);
                draw.min(total)
            });
            assert_eq!(order[0].target, first, "draw {draw}");
            assert_eq!(order.len(), 2);
        }
        // Over every possible draw, b. comes first three times as often as a. (30 vs 11 of 41 draws;
        // the RFC's inclusive range gives the first record one extra draw).
        let firsts_b = (0..=40)
            .filter(|&d| srv_order(records.clone(), key, |t| d.min(t))[0].target == "b.")
            .count();
        assert_eq!(firsts_b, 30);
        // A draw above the total (a buggy random source) is clamped, not a panic.
        assert_eq!(srv_order(records, key, |_| u32::MAX)[0].target, "b.");
        assert!(srv_order(Vec::<SrvTarget>::new(), key, |_| 0).is_empty());
    }

    #[test]
    fn both_services_mix_in_one_order() {
        let found = server_endpoints(
            "example.org",
            Answer::Found(vec![srv(5, 0, 5270, "tls.example.org.")]),
            Answer::Found(vec![srv(10, 0, 5269, "xmpp.example.org.")]),
            |total| total,
        );
        assert_eq!(
            found,
            ServerEndpoints::Found(vec![
                ep("tls.example.org.", 5270, true),
                ep("xmpp.example.org.", 5269, false),
            ])
        );
    }

    #[test]
    fn no_records_fall_back_to_the_domain_and_dots_refuse() {
        assert_eq!(
            server_endpoints("example.org", Answer::Missing, Answer::Missing, |t| t),
            ServerEndpoints::Found(vec![ep("example.org", 5269, false)])
        );
        // Direct TLS not offered: STARTTLS records still count, and no A/AAAA fallback.
        assert_eq!(
            server_endpoints(
                "example.org",
                Answer::Found(vec![srv(0, 0, 0, ".")]),
                Answer::Missing,
                |t| t
            ),
            ServerEndpoints::NotOffered
        );
        assert_eq!(
            server_endpoints(
                "example.org",
                Answer::Found(vec![srv(0, 0, 0, ".")]),
                Answer::Found(vec![srv(1, 0, 5269, "x.example.org.")]),
                |t| t
            ),
            ServerEndpoints::Found(vec![ep("x.example.org.", 5269, false)])
        );
        assert!(matches!(
            server_endpoints(
                "example.org",
                Answer::Failed("timeout".into()),
                Answer::Missing,
                |t| t
            ),
            ServerEndpoints::Failed(_)
        ));
    }
}
