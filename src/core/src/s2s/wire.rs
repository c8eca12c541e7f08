//! One server-to-server connection as the negotiation code sees it: the transport, the parser
//! (stanzas in `jabber:server` are read as the `jabber:client` stanzas the router handles) and
//! the output buffer. Both directions use it, and so do external components (XEP-0114), whose
//! streams are server streams in a namespace of their own.

use std::net::SocketAddr;

use futures_util::FutureExt;
use hearth_xml::{StreamEvent, StreamHeader, StreamParser};
use minidom::Element;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::{NS_DIALBACK, NS_SERVER};
use crate::ns;
use crate::transport::Transport;

pub struct Wire {
    pub io: Transport,
    pub parser: StreamParser,
    pub out: Vec<u8>,
    pub peer: SocketAddr,
    /// The stream's default namespace, which the stanzas written inherit.
    stream_ns: &'static str,
}

/// Why a connection could not go on; `reason` is for logs and bounce texts.
#[derive(Debug)]
pub struct Broken {
    pub reason: String,
    /// The peer stopped answering (as opposed to refusing or misbehaving).
    pub timed_out: bool,
}

impl Broken {
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            timed_out: false,
        }
    }
}

impl Wire {
    pub fn new(io: Transport, peer: SocketAddr, max_stanza_size: usize) -> Self {
        Self::with_namespace(io, peer, max_stanza_size, NS_SERVER)
    }

    /// A connection whose stanzas are in `stream_ns` (read as `jabber:client`, written
    /// inheriting `stream_ns`).
    pub fn with_namespace(
        io: Transport,
        peer: SocketAddr,
        max_stanza_size: usize,
        stream_ns: &'static str,
    ) -> Self {
        let mut parser = StreamParser::new(hearth_xml::Limits {
            max_stanza_size,
            ..hearth_xml::Limits::default()
        });
        parser.alias(stream_ns, ns::CLIENT);
        Self {
            io,
            parser,
            out: Vec::new(),
            peer,
            stream_ns,
        }
    }

    /// Reads what has arrived into the parser, waiting until something has; `false` when the
    /// peer closed the connection. Safe to cancel (it holds no data while waiting).
    pub async fn read_some(&mut self) -> std::io::Result<bool> {
        loop {
            self.io.readable().await?;
            let mut buf = Vec::with_capacity(4096);
            match self.io.read_buf(&mut buf).now_or_never() {
                None => continue,
                Some(Ok(0)) => return Ok(false),
                Some(Ok(_)) => {
                    self.parser.feed(&buf);
                    return Ok(true);
                }
                Some(Err(e)) => return Err(e),
            }
        }
    }

    /// The next stream event, reading as needed until `deadline`.
    pub async fn next_event(&mut self, deadline: Instant) -> Result<StreamEvent, Broken> {
        loop {
            match self.parser.next_event() {
                Ok(Some(ev)) => return Ok(ev),
                Ok(None) => {}
                Err(e) => return Err(Broken::new(format!("bad XML from the peer: {e}"))),
            }
            match tokio::time::timeout_at(deadline, self.read_some()).await {
                Err(_) => {
                    return Err(Broken {
                        reason: "the peer did not answer in time".into(),
                        timed_out: true,
                    });
                }
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => return Err(Broken::new("the peer closed the connection")),
                Ok(Err(e)) => return Err(Broken::new(format!("connection error: {e}"))),
            }
        }
    }

    /// The next top-level element; the stream's end or a stream error is a failure.
    pub async fn next_element(&mut self, deadline: Instant) -> Result<Element, Broken> {
        match self.next_event(deadline).await? {
            StreamEvent::Element(el) if el.is("error", ns::STREAM) => Err(Broken::new(format!(
                "the peer sent a stream error: {}",
                describe_stream_error(&el)
            ))),
            StreamEvent::Element(el) => Ok(el),
            StreamEvent::End => Err(Broken::new("the peer closed its stream")),
            StreamEvent::Header(_) => Err(Broken::new("the peer opened a second stream header")),
        }
    }

    /// The peer's stream header, checked to be a server stream.
    pub async fn next_header(&mut self, deadline: Instant) -> Result<StreamHeader, Broken> {
        match self.next_event(deadline).await? {
            StreamEvent::Header(h)
                if h.name == "stream"
                    && h.ns == ns::STREAM
                    && h.default_ns.as_deref() == Some(NS_SERVER) =>
            {
                Ok(h)
            }
            StreamEvent::Header(h) => Err(Broken::new(format!(
                "the peer's stream is not a server stream (default namespace {:?})",
                h.default_ns
            ))),
            _ => Err(Broken::new("the peer sent no stream header")),
        }
    }

    /// Writes a `jabber:server` stream header declaring the dialback namespace.
    pub fn send_header(&mut self, from: Option<&str>, to: Option<&str>, id: Option<String>) {
        let header = StreamHeader {
            name: "stream".into(),
            ns: ns::STREAM.into(),
            default_ns: Some(NS_SERVER.into()),
            to: to.map(str::to_string),
            from: from.map(str::to_string),
            id,
            version: Some("1.0".into()),
            lang: None,
        };
        let text = hearth_xml::stream_header(&header);
        // The writer declares only the default and stream prefixes; dialback elements are
        // written with the conventional `db:` prefix, which peers expect.
        let text = text.replacen(
            "<stream:stream",
            &format!("<stream:stream xmlns:db='{NS_DIALBACK}'"),
            1,
        );
        self.out.extend_from_slice(text.as_bytes());
    }

    pub fn send_element(&mut self, el: &Element) {
        hearth_xml::write_element(el, self.stream_ns, &mut self.out);
    }

    pub async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            self.io.write_all(&self.out).await?;
            self.out.clear();
            if self.out.capacity() > 64 * 1024 {
                self.out = Vec::new();
            }
        }
        self.io.flush().await
    }

    /// Sends what is buffered, then closes the connection (bounded in time).
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            let _ = self.flush().await;
            let _ = self.io.shutdown().await;
        })
        .await;
    }
}

/// "condition: text" of a received `<stream:error/>`.
fn describe_stream_error(el: &Element) -> String {
    let condition = el
        .children()
        .find(|c| c.ns() == ns::STREAMS_ERRORS && c.name() != "text")
        .map(|c| c.name().to_string())
        .unwrap_or_else(|| "undefined-condition".into());
    match el.get_child("text", ns::STREAMS_ERRORS) {
        Some(t) => format!("{condition} ({})", t.text()),
        None => condition,
    }
}
