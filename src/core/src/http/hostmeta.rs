//! Discovering the web connection methods (XEP-0156): `/.well-known/host-meta` (XRD) and
//! `/.well-known/host-meta.json` (JRD) list the BOSH and WebSocket addresses, so a browser
//! client given only `user@domain` finds them (served at the domain's HTTPS root, or proxied
//! there).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::server::Server;

const REL_BOSH: &str = "urn:xmpp:alt-connections:xbosh";
const REL_WEBSOCKET: &str = "urn:xmpp:alt-connections:websocket";

pub(super) fn router() -> Router<Arc<Server>> {
    Router::new()
        .route("/.well-known/host-meta", get(xrd))
        .route("/.well-known/host-meta.json", get(jrd))
}

/// (rel, href) of each enabled binding.
fn links(server: &Server) -> Vec<(&'static str, String)> {
    let cfg = &server.config.http;
    let base = cfg.base_url(server.domain());
    let mut links = Vec::new();
    if cfg.bosh {
        links.push((REL_BOSH, format!("{base}/http-bind")));
    }
    if cfg.websocket {
        let ws = base
            .replacen("https://", "wss://", 1)
            .replacen("http://", "ws://", 1);
        links.push((REL_WEBSOCKET, format!("{ws}/xmpp-websocket")));
    }
    links
}

async fn xrd(State(server): State<Arc<Server>>) -> impl IntoResponse {
    let mut body = String::from(
        "<?xml version='1.0' encoding='utf-8'?>\n<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n",
    );
    for (rel, href) in links(&server) {
        let href = crate::streams::xml_escape(&href);
        body.push_str(&format!("  <Link rel='{rel}' href='{href}'/>\n"));
    }
    body.push_str("</XRD>\n");
    ([(header::CONTENT_TYPE, "application/xrd+xml")], body)
}

async fn jrd(State(server): State<Arc<Server>>) -> impl IntoResponse {
    let links: Vec<_> = links(&server)
        .into_iter()
        .map(|(rel, href)| serde_json::json!({ "rel": rel, "href": href }))
        .collect();
    axum::Json(serde_json::json!({ "links": links }))
}
