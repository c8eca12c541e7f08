//! The web bindings share the client connection limit with sockets: a browser cannot open more
//! sessions than `c2s.max_connections` allows.

use crate::harness::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The response to one HTTPS request.
async fn https(server: &TestServer, request: &str) -> String {
    let tcp = tokio::net::TcpStream::connect(server.http_addr)
        .await
        .unwrap();
    let mut tls = server
        .tls_connector()
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(request.as_bytes()).await.unwrap();
    // Until the server closes, or has been quiet for a moment (an upgraded or kept-alive
    // connection stays open).
    let mut response = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(Ok(n)) =
        tokio::time::timeout(std::time::Duration::from_millis(500), tls.read(&mut chunk)).await
    {
        if n == 0 {
            break;
        }
        response.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn web_sessions_count_against_the_client_connection_limit() {
    let server = TestServer::start_with("max_connections = 1\n");
    // The harness's readiness probes may still hold the one place for a moment.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut held = Raw::connect_to(server.addr, &server.domain).await;
    held.open().await;
    let upgrade = "GET /xmpp-websocket HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n\
        Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Protocol: xmpp\r\n\r\n";
    let refused = https(&server, upgrade).await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    let body = "<body rid='1' to='localhost' wait='5' hold='1' xmlns='http://jabber.org/protocol/httpbind' xmpp:version='1.0' xmlns:xmpp='urn:xmpp:xbosh'/>";
    let create = format!(
        "POST /http-bind HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let refused = https(&server, &create).await;
    assert!(
        refused.contains("condition='remote-connection-failed'"),
        "{refused}"
    );
    // Once the socket client leaves, a browser gets its place.
    drop(held);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let accepted = https(&server, upgrade).await;
    assert!(accepted.starts_with("HTTP/1.1 101"), "{accepted}");
    assert!(
        server
            .log()
            .contains("connection limit reached; refusing a WebSocket client")
    );
}
