//! `/health` and `/metrics` on the internal listener: what a sysadmin's Prometheus scrapes.

use crate::harness::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Status line and body of a plain HTTP/1.1 GET.
async fn get(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    )
}

/// The value of the sample line `name` (with its labels) in a scrape.
fn sample(scrape: &str, name: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn metrics_follow_sessions_messages_and_rooms() {
    let server = TestServer::start();
    let (health_status, health) = get(server.internal_addr, "/health").await;
    assert!(health_status.contains("200"), "{health_status}");
    assert!(health.contains("\"status\":\"ok\""), "{health}");

    let (mut a, mut b) = alice_and_bob(&server, true).await;
    a.send("<message to='bob@localhost' type='chat'><body>hi</body></message>")
        .await;
    b.expect_stanza("<body>hi</body>").await;
    a.send("<presence to='room@conference.localhost/Alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>").await;
    a.expect_stanza("<subject").await;

    let (status, scrape) = get(server.internal_addr, "/metrics").await;
    assert!(status.contains("200"), "{status}");
    assert_eq!(
        sample(&scrape, "hearth_c2s_sessions"),
        Some(2.0),
        "{scrape}"
    );
    let messages = sample(
        &scrape,
        "hearth_stanzas_received_total{from=\"client\",kind=\"message\"}",
    );
    assert!(messages >= Some(1.0), "{scrape}");
    assert_eq!(
        sample(&scrape, "hearth_muc_rooms_occupied"),
        Some(1.0),
        "{scrape}"
    );
    assert!(
        sample(&scrape, "hearth_storage_write_seconds_count") >= Some(1.0),
        "{scrape}"
    );
    assert!(scrape.ends_with("# EOF\n"), "{scrape}");

    drop(a);
    drop(b);
    // Neither is served on the public HTTPS listener.
    let tls = server.tls_connector();
    let tcp = tokio::net::TcpStream::connect(server.http_addr)
        .await
        .unwrap();
    let mut https = tls
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    https
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    let _ = https.read_to_string(&mut response).await;
    assert!(response.starts_with("HTTP/1.1 404"), "{response}");
}
