//! The built-in web server: XMPP for browsers (WebSocket, BOSH), host-meta discovery, the
//! modules' routes (file upload) on the public listeners, and `/health` and `/metrics` on the
//! internal ones.
//!
//! axum routes on hyper's HTTP/1.1 connections, served by hand rather than `axum::serve` so the
//! same code runs over TLS (the XMPP certificate, reloaded with it) and plain TCP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::server::Server;

mod bosh;
mod framing;
mod hostmeta;
pub mod metrics;
mod websocket;

/// Which routes a listener serves.
#[derive(Clone, Copy)]
enum Side {
    /// Clients: WebSocket, BOSH, host-meta, module routes.
    Public { tls: bool },
    /// Monitoring: `/health`, `/metrics`.
    Internal,
}

/// The bound `[http]` listeners, served once `spawn` is called.
pub(crate) struct Listeners {
    server: Arc<Server>,
    bound: Vec<(TcpListener, Side, Router)>,
}

/// Binds the `[http]` listeners (a port in use fails startup).
pub(crate) async fn bind(server: &Arc<Server>) -> anyhow::Result<Listeners> {
    let cfg = &server.config.http;
    let public = public_router(server);
    let internal = metrics::router().with_state(server.clone());
    let mut bound = Vec::new();
    for (addrs, side) in [
        (&cfg.listen, Side::Public { tls: true }),
        (&cfg.plain_listen, Side::Public { tls: false }),
        (&cfg.internal_listen, Side::Internal),
    ] {
        for addr in addrs {
            let listener = crate::server::listen(*addr).await?;
            let (what, router) = match side {
                Side::Public { tls: true } => ("HTTPS (WebSocket, BOSH, upload)", &public),
                Side::Public { tls: false } => ("plain HTTP for a reverse proxy", &public),
                Side::Internal => ("HTTP /health and /metrics", &internal),
            };
            if matches!(side, Side::Public { tls: false }) && !addr.ip().is_loopback() {
                tracing::warn!(address = %addr, "http.plain_listen is not a loopback address: browsers could log in without TLS; bind it to 127.0.0.1 behind a reverse proxy");
            }
            tracing::info!(address = %addr, "listening for {what}");
            bound.push((listener, side, router.clone()));
        }
    }
    Ok(Listeners {
        server: server.clone(),
        bound,
    })
}

impl Listeners {
    pub(crate) fn spawn(self) {
        let limit = Arc::new(Semaphore::new(self.server.config.http.max_connections));
        for (listener, side, router) in self.bound {
            let server = self.server.clone();
            tokio::spawn(accept_loop(server, listener, side, router, limit.clone()));
        }
    }
}

fn public_router(server: &Arc<Server>) -> Router {
    let cfg = &server.config.http;
    let mut router = Router::new().merge(hostmeta::router());
    if cfg.websocket {
        router = router.merge(websocket::router());
    }
    if cfg.bosh {
        router = router.merge(bosh::router(server));
    }
    for routes in &server.regs.http_routes {
        router = router.merge(routes.clone());
    }
    router
        .layer(cors(&cfg.cors_origins))
        .with_state(server.clone())
}

/// CORS for browser clients on other origins (Converse.js served from another host).
fn cors(origins: &[String]) -> CorsLayer {
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::OPTIONS,
        ])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
        .max_age(Duration::from_secs(86_400))
}

async fn accept_loop(
    server: Arc<Server>,
    listener: TcpListener,
    side: Side,
    router: Router,
    limit: Arc<Semaphore>,
) {
    let mut shutdown = server.shutdown_signal();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.changed() => return,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "HTTP accept failed; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            tracing::warn!(%peer, setting = "http.max_connections", "HTTP connection limit reached; refusing connection");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (server, router) = (server.clone(), router.clone());
        tokio::spawn(async move {
            if let Side::Public { tls: true } = side {
                let handshake = Duration::from_secs(server.config.c2s.handshake_timeout_secs);
                let accept = server.tls.https_acceptor().accept(tcp);
                match tokio::time::timeout(handshake, accept).await {
                    Ok(Ok(tls)) => serve_connection(tls, peer, router).await,
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "HTTPS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "HTTPS handshake timed out"),
                }
            } else {
                serve_connection(tcp, peer, router).await
            }
            drop(permit);
        });
    }
}

async fn serve_connection<IO>(io: IO, peer: SocketAddr, router: Router)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(req)
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        // A client that never finishes its request headers holds no slot for long.
        .header_read_timeout(Duration::from_secs(30))
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades()
        .await;
    if let Err(e) = served {
        tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
    }
}

/// The client's address: the connection's, or the one a trusted reverse proxy reports in
/// `X-Forwarded-For` (its last entry, the one the proxy itself added).
pub fn client_address(server: &Server, peer: SocketAddr, headers: &HeaderMap) -> SocketAddr {
    if !server.config.http.trusted_proxies.contains(&peer.ip()) {
        return peer;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|ip| ip.trim().parse().ok())
        .next_back()
        .map(|ip| SocketAddr::new(ip, 0))
        .unwrap_or(peer)
}
