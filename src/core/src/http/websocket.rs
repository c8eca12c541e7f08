//! XMPP over WebSocket (RFC 7395) at `/xmpp-websocket`: each text message is one element;
//! `<open/>` and `<close/>` in `urn:ietf:params:xml:ns:xmpp-framing` stand for the stream
//! header and its end. The stream itself is served by the c2s code through a [`Pipe`], so a
//! browser session has everything a TCP one has (SASL, SM resumption, CSI, carbons).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use minidom::Element;
use tokio::io::AsyncReadExt;

use super::framing::{STREAM_CLOSE, Splitter, Unit, stream_header};
use crate::server::Server;
use crate::transport::Pipe;

pub const NS_FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";

pub(super) fn router() -> Router<Arc<Server>> {
    Router::new().route("/xmpp-websocket", get(upgrade))
}

async fn upgrade(
    State(server): State<Arc<Server>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    // RFC 7395 §3.1: without the "xmpp" subprotocol the client would not know it speaks XMPP.
    let offered = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == "xmpp");
    if !offered {
        return (
            StatusCode::BAD_REQUEST,
            "XMPP over WebSocket needs the subprotocol \"xmpp\" (RFC 7395)\n",
        )
            .into_response();
    }
    let peer = super::client_address(&server, peer, &headers);
    let max = server.config.c2s.max_stanza_size;
    ws.protocols(["xmpp"])
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| session(server, socket, peer))
}

async fn session(server: Arc<Server>, socket: WebSocket, peer: SocketAddr) {
    let (pipe, ends) = Pipe::new();
    tokio::spawn(crate::c2s::serve_bridged(server.clone(), pipe, peer));
    let (mut ws_out, mut ws_in) = socket.split();
    let to_stream = ends.to_stream;
    // What the client sends goes to the stream; when the client goes away the stream sees
    // its end, as if a socket had closed.
    let reader = tokio::spawn(async move {
        while let Some(Ok(msg)) = ws_in.next().await {
            let chunk = match msg {
                Message::Text(text) => incoming(text.as_str()),
                Message::Binary(_) => {
                    tracing::debug!(%peer, "binary WebSocket message; RFC 7395 allows text only; closing");
                    break;
                }
                Message::Close(_) => break,
                Message::Ping(_) | Message::Pong(_) => continue,
            };
            if to_stream.send(chunk).await.is_err() {
                break;
            }
        }
    });
    let mut from_stream = ends.from_stream;
    let mut splitter = Splitter::default();
    let mut buf = Vec::with_capacity(8192);
    'stream: loop {
        buf.clear();
        match from_stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => splitter.feed(&buf),
        }
        while let Some(unit) = splitter.next_unit() {
            let (text, last) = match unit {
                Unit::Open { id } => (open(server.domain(), &id), false),
                Unit::Element(el) => match String::from_utf8(el) {
                    Ok(s) => (s, false),
                    Err(_) => break 'stream,
                },
                Unit::Close => (format!("<close xmlns='{NS_FRAMING}'/>"), true),
            };
            if ws_out.send(Message::Text(text.into())).await.is_err() {
                break 'stream;
            }
            if last {
                break 'stream;
            }
        }
    }
    reader.abort();
    let _ = ws_out
        .send(Message::Close(Some(CloseFrame {
            code: close_code::NORMAL,
            reason: "".into(),
        })))
        .await;
}

/// The bytes the c2s stream gets for one WebSocket message: the framing elements become the
/// stream header and end; anything else is passed on for the stream's parser to judge.
fn incoming(text: &str) -> Bytes {
    let trimmed = text.trim_start();
    if (trimmed.starts_with("<open") || trimmed.starts_with("<close"))
        && let Ok(el) = trimmed.parse::<Element>()
        && el.ns() == NS_FRAMING
    {
        return Bytes::from(match el.name() {
            "open" => stream_header(
                el.attr("to"),
                el.attr("version"),
                el.attr_ns(rxml::XMLNS_XML, "lang"),
            ),
            _ => STREAM_CLOSE.to_string(),
        });
    }
    Bytes::copy_from_slice(text.as_bytes())
}

fn open(domain: &str, id: &str) -> String {
    format!("<open xmlns='{NS_FRAMING}' from='{domain}' id='{id}' version='1.0' xml:lang='en'/>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_elements_become_the_stream_header_and_end() {
        let header = incoming(
            "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.org' version='1.0'/>",
        );
        let header = std::str::from_utf8(&header).unwrap();
        assert!(
            header.contains("<stream:stream xmlns='jabber:client'"),
            "{header}"
        );
        assert!(header.contains("to='example.org'") && header.contains("version='1.0'"));
        assert_eq!(
            incoming("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"),
            STREAM_CLOSE
        );
        // Same names elsewhere, or not even XML: the stream's parser decides.
        for other in ["<open xmlns='jabber:client'/>", "<openx", "<message/>"] {
            assert_eq!(incoming(other), other);
        }
    }
}
