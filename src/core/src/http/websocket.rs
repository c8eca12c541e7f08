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
use futures_util::stream::SplitStream;
use futures_util::{SinkExt, StreamExt};
use minidom::Element;
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, oneshot};

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
    let Ok(slot) = server.c2s_slots.clone().try_acquire_owned() else {
        tracing::warn!(%peer, setting = "c2s.max_connections", "connection limit reached; refusing a WebSocket client");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many connections; try again later\n",
        )
            .into_response();
    };
    // Twice the stanza limit, as for BOSH bodies: a stanza over the limit still reaches the
    // c2s parser, which ends the stream with <policy-violation/> as on a socket; only far
    // larger messages are refused by the WebSocket layer itself.
    let max = server.config.c2s.max_stanza_size * 2;
    ws.protocols(["xmpp"])
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| session(server, socket, peer, slot))
}

async fn session(
    server: Arc<Server>,
    socket: WebSocket,
    peer: SocketAddr,
    slot: tokio::sync::OwnedSemaphorePermit,
) {
    let (pipe, ends) = Pipe::new();
    tokio::spawn(crate::c2s::serve_bridged(server.clone(), pipe, peer, slot));
    let (mut ws_out, ws_in) = socket.split();
    let to_stream = ends.to_stream;
    // Why the client's side ended, when that is the client's fault: told before `to_stream` is
    // dropped, so it is known by the time the stream ends because of it.
    let (why_tx, mut why_rx) = oneshot::channel();
    let reader = tokio::spawn(async move {
        if let Some(why) = forward(ws_in, &to_stream, peer).await {
            let _ = why_tx.send(why);
        }
        drop(to_stream);
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
    let close = why_rx.try_recv().unwrap_or(CloseFrame {
        code: close_code::NORMAL,
        reason: "".into(),
    });
    let _ = ws_out.send(Message::Close(Some(close))).await;
}

/// Passes what the client sends to the stream until the client closes or goes away (the
/// stream then sees its end, as if a socket had closed). Returns the close frame to send when
/// the client broke the rules: a binary message, or one the WebSocket layer refused (larger
/// than its limit, invalid UTF-8, a protocol error).
async fn forward(
    mut ws_in: SplitStream<WebSocket>,
    to_stream: &mpsc::Sender<Bytes>,
    peer: SocketAddr,
) -> Option<CloseFrame> {
    while let Some(msg) = ws_in.next().await {
        let chunk = match msg {
            Ok(Message::Text(text)) => incoming(text.as_str()),
            Ok(Message::Binary(_)) => {
                tracing::debug!(%peer, "binary WebSocket message; RFC 7395 allows text only; closing");
                return Some(CloseFrame {
                    code: close_code::UNSUPPORTED,
                    reason: "XMPP over WebSocket is text only (RFC 7395)".into(),
                });
            }
            Ok(Message::Close(_)) => return None,
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "bad WebSocket message; closing");
                return Some(CloseFrame {
                    code: close_code::POLICY,
                    reason: close_reason(&e.to_string()).into(),
                });
            }
        };
        if to_stream.send(chunk).await.is_err() {
            return None;
        }
    }
    None
}

/// `text` cut to the 123 bytes a close frame's reason may hold (RFC 6455 §5.5), at a
/// character boundary.
fn close_reason(text: &str) -> &str {
    let mut end = text.len().min(123);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
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
    fn close_reasons_fit_a_close_frame() {
        assert_eq!(close_reason("short"), "short");
        let long = "é".repeat(100);
        let cut = close_reason(&long);
        assert!(cut.len() <= 123 && long.starts_with(cut) && cut.len() == 122);
    }

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
