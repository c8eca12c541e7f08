//! hearth-xml: the XMPP stream parser and serialiser. No I/O: the connection task feeds bytes in
//! and gets stream events out, so reads stay cancel-safe.
//!
//! Ingress uses rxml, not quick-xml (the requested crate): rxml refuses DTDs, entity
//! declarations and undeclared entities, processing instructions, comments, undeclared prefixes
//! and duplicate attributes itself, and bounds token lengths. quick-xml hands all of those to the
//! application and has no size limits (measured in `../shared/design/crates.md` §1); it is ~4×
//! faster, which matters only if parsing ever dominates the server's CPU time. On top of rxml
//! this crate enforces hearth's limits: stanza size, depth and attribute count.

use minidom::{Element, Node};
use rxml::error::EndOrError;
use rxml::{Event, Parse, Parser, RawEvent, RawParser, WithOptions};

pub const NS_STREAM: &str = "http://etherx.jabber.org/streams";
const NS_XML: &str = "http://www.w3.org/XML/1998/namespace";
/// Largest stream header accepted (the opening `<stream:stream …>` with its prelude).
const MAX_HEADER: usize = 8 * 1024;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes of one top-level element.
    pub max_stanza_size: usize,
    /// Nesting depth inside one top-level element (the element itself is depth 1).
    pub max_depth: usize,
    /// Attributes on one element.
    pub max_attributes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_stanza_size: 256 * 1024,
            max_depth: 32,
            max_attributes: 64,
        }
    }
}

/// The opening `<stream:stream …>` tag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamHeader {
    pub name: String,
    pub ns: String,
    /// The default namespace declared on the header (`jabber:client`, `jabber:server`).
    pub default_ns: Option<String>,
    pub to: Option<String>,
    pub from: Option<String>,
    pub id: Option<String>,
    pub version: Option<String>,
    pub lang: Option<String>,
}

#[derive(Debug)]
pub enum StreamEvent {
    Header(StreamHeader),
    Element(Element),
    /// `</stream:stream>`.
    End,
}

/// Why the stream cannot go on; `condition()` is the RFC 6120 §4.9.3 stream error to send.
#[derive(Debug, thiserror::Error)]
pub enum XmlError {
    #[error("malformed XML: {0}")]
    NotWellFormed(String),
    #[error("restricted XML: {0} is not allowed in XMPP (RFC 6120 §11.1)")]
    RestrictedXml(String),
    #[error("{0}")]
    PolicyViolation(String),
    #[error("character data between stanzas")]
    BadFormat,
}

impl XmlError {
    pub fn condition(&self) -> &'static str {
        match self {
            XmlError::NotWellFormed(_) => "not-well-formed",
            XmlError::RestrictedXml(_) => "restricted-xml",
            XmlError::PolicyViolation(_) => "policy-violation",
            XmlError::BadFormat => "bad-format",
        }
    }
}

fn map_rxml(e: rxml::Error) -> XmlError {
    use rxml::Error as E;
    match e {
        E::RestrictedXml(what) if what.contains("long") => {
            XmlError::PolicyViolation(format!("token too long ({what})"))
        }
        E::RestrictedXml(what) => XmlError::RestrictedXml(what.to_string()),
        E::UndeclaredEntity => XmlError::RestrictedXml("entity references".into()),
        E::InvalidSyntax(what) if what.contains("DOCTYPE") || what.contains('!') => {
            XmlError::RestrictedXml("document type declarations".into())
        }
        other => XmlError::NotWellFormed(other.to_string()),
    }
}

/// Incremental parser for one XML stream (reset for each stream restart).
pub struct StreamParser {
    limits: Limits,
    parser: Parser,
    /// Bytes fed but not yet consumed by rxml.
    buf: Vec<u8>,
    /// Raw bytes of the stream header so far, to read its namespace declarations (the
    /// namespace-resolving parser consumes them).
    header_bytes: Vec<u8>,
    header_done: bool,
    ended: bool,
    /// Elements under construction: the top-level element first.
    stack: Vec<Element>,
    /// Bytes consumed since the current top-level element (or gap) began.
    stanza_bytes: usize,
}

impl StreamParser {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            parser: new_rxml(),
            buf: Vec::new(),
            header_bytes: Vec::new(),
            header_done: false,
            ended: false,
            stack: Vec::new(),
            stanza_bytes: 0,
        }
    }

    pub fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// A new stream on the same connection (after SASL success or STARTTLS). Bytes already
    /// received and not parsed are kept: a client may pipeline the new header.
    pub fn reset(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        *self = Self::new(self.limits);
        self.buf = buf;
    }

    pub fn has_buffered(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Frees buffer capacity while the connection is idle.
    pub fn idle_shrink(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > 0 {
            self.buf = Vec::new();
        }
        if self.stack.is_empty() {
            self.stack = Vec::new();
            self.parser.release_temporaries();
        }
    }

    pub fn next_event(&mut self) -> Result<Option<StreamEvent>, XmlError> {
        loop {
            if self.ended {
                if self.buf.iter().any(|b| !b.is_ascii_whitespace()) {
                    return Err(XmlError::NotWellFormed(
                        "data after the end of the stream".into(),
                    ));
                }
                self.buf.clear();
                return Ok(None);
            }
            let mut input: &[u8] = &self.buf;
            let before = input.len();
            let result = self.parser.parse(&mut input, false);
            let consumed = before - input.len();
            if !self.header_done {
                self.header_bytes.extend_from_slice(&self.buf[..consumed]);
                if self.header_bytes.len() > MAX_HEADER {
                    return Err(XmlError::PolicyViolation("stream header too large".into()));
                }
            }
            self.buf.drain(..consumed);
            self.stanza_bytes += consumed;
            if self.stanza_bytes > self.limits.max_stanza_size {
                return Err(XmlError::PolicyViolation(format!(
                    "stanza larger than {} bytes",
                    self.limits.max_stanza_size
                )));
            }
            let event = match result {
                Ok(Some(ev)) => ev,
                Ok(None) => {
                    self.ended = true;
                    continue;
                }
                Err(EndOrError::NeedMoreData) => return Ok(None),
                Err(EndOrError::Error(e)) => return Err(map_rxml(e)),
            };
            if let Some(ev) = self.handle(event)? {
                return Ok(Some(ev));
            }
        }
    }

    fn handle(&mut self, event: Event) -> Result<Option<StreamEvent>, XmlError> {
        match event {
            Event::XmlDeclaration(..) => Ok(None),
            Event::StartElement(_, (ns, name), attrs) => {
                if !self.header_done {
                    self.header_done = true;
                    self.stanza_bytes = 0;
                    return Ok(Some(StreamEvent::Header(self.header(
                        ns.as_str(),
                        name.as_str(),
                        &attrs,
                    ))));
                }
                if attrs.len() > self.limits.max_attributes {
                    return Err(XmlError::PolicyViolation(format!(
                        "more than {} attributes on one element",
                        self.limits.max_attributes
                    )));
                }
                if self.stack.len() >= self.limits.max_depth {
                    return Err(XmlError::PolicyViolation(format!(
                        "elements nested deeper than {}",
                        self.limits.max_depth
                    )));
                }
                let mut el = Element::bare(name.as_str(), ns.as_str());
                *el.attrs_mut() = attrs;
                self.stack.push(el);
                Ok(None)
            }
            Event::EndElement(_) => match self.stack.pop() {
                None => {
                    self.ended = true;
                    Ok(Some(StreamEvent::End))
                }
                Some(el) => match self.stack.last_mut() {
                    Some(parent) => {
                        parent.append_child(el);
                        Ok(None)
                    }
                    None => {
                        self.stanza_bytes = 0;
                        Ok(Some(StreamEvent::Element(el)))
                    }
                },
            },
            Event::Text(_, text) => match self.stack.last_mut() {
                Some(el) => {
                    el.append_text(text.as_str());
                    Ok(None)
                }
                None if text.chars().all(|c| c.is_ascii_whitespace()) => {
                    // A keep-alive between stanzas; it does not count towards the next stanza.
                    self.stanza_bytes = 0;
                    Ok(None)
                }
                None => Err(XmlError::BadFormat),
            },
        }
    }

    fn header(&mut self, ns: &str, name: &str, attrs: &rxml::AttrMap) -> StreamHeader {
        let get = |key: &str| {
            attrs
                .iter()
                .find(|((n, k), _)| n.is_none() && k.as_str() == key)
                .map(|(_, v)| v.to_string())
        };
        let lang = attrs
            .iter()
            .find(|((n, k), _)| n.as_str() == NS_XML && k.as_str() == "lang")
            .map(|(_, v)| v.to_string());
        let header = StreamHeader {
            name: name.to_string(),
            ns: ns.to_string(),
            default_ns: default_namespace(&self.header_bytes),
            to: get("to"),
            from: get("from"),
            id: get("id"),
            version: get("version"),
            lang,
        };
        self.header_bytes = Vec::new();
        header
    }
}

fn new_rxml() -> Parser {
    // One namespace-interning context for every stream: each connection would otherwise keep
    // its own copy of the same few namespace names.
    static CONTEXT: std::sync::OnceLock<std::sync::Arc<rxml::Context>> = std::sync::OnceLock::new();
    let context = CONTEXT
        .get_or_init(|| std::sync::Arc::new(rxml::Context::new()))
        .clone();
    // Comments are refused (rxml's default); tokens (names, attribute values, text chunks) are
    // bounded by rxml's default of 8 KiB.
    Parser::with_options(rxml::Options {
        context: Some(context),
        ..rxml::Options::default()
    })
}

/// The `xmlns='…'` declared on the root element in `raw` (the header's bytes).
fn default_namespace(raw: &[u8]) -> Option<String> {
    let mut parser = RawParser::new();
    let mut input = raw;
    loop {
        match parser.parse(&mut input, false) {
            Ok(Some(RawEvent::Attribute(_, (None, name), value))) if name.as_str() == "xmlns" => {
                return Some(value.to_string());
            }
            Ok(Some(RawEvent::ElementHeadClose(_))) | Ok(None) | Err(_) => return None,
            Ok(Some(_)) => {}
        }
    }
}

/// Writes a top-level element. Its namespace is omitted when it is the stream's default
/// (`stream_ns`); children declare theirs only where it differs from the parent's.
pub fn write_element(el: &Element, stream_ns: &str, out: &mut Vec<u8>) {
    write_inner(el, stream_ns, out);
}

fn write_inner(el: &Element, parent_ns: &str, out: &mut Vec<u8>) {
    let ns = el.ns();
    out.push(b'<');
    out.extend_from_slice(el.name().as_bytes());
    if ns != parent_ns {
        out.extend_from_slice(b" xmlns='");
        escape_into(&ns, out);
        out.push(b'\'');
    }
    let mut extra_prefix = 0;
    for ((attr_ns, name), value) in el.attrs().iter() {
        out.push(b' ');
        if attr_ns.is_none() {
            // Unqualified: the common case.
        } else if attr_ns.as_str() == NS_XML {
            out.extend_from_slice(b"xml:");
        } else {
            // Rare in XMPP: declare a prefix for this one attribute.
            extra_prefix += 1;
            let prefix = format!("a{extra_prefix}");
            out.extend_from_slice(format!("xmlns:{prefix}='").as_bytes());
            escape_into(attr_ns.as_str(), out);
            out.extend_from_slice(format!("' {prefix}:").as_bytes());
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b"='");
        escape_into(value, out);
        out.push(b'\'');
    }
    let mut nodes = el.nodes().peekable();
    if nodes.peek().is_none() {
        out.extend_from_slice(b"/>");
        return;
    }
    out.push(b'>');
    for node in nodes {
        match node {
            Node::Element(child) => write_inner(child, &ns, out),
            Node::Text(text) => escape_into(text, out),
        }
    }
    out.extend_from_slice(b"</");
    out.extend_from_slice(el.name().as_bytes());
    out.push(b'>');
}

/// Escapes text or an attribute value (quoted with `'`).
fn escape_into(s: &str, out: &mut Vec<u8>) {
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let rep: &[u8] = match b {
            b'&' => b"&amp;",
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            b'\'' => b"&apos;",
            b'"' => b"&quot;",
            b'\r' => b"&#xD;",
            _ => continue,
        };
        out.extend_from_slice(&s.as_bytes()[start..i]);
        out.extend_from_slice(rep);
        start = i + 1;
    }
    out.extend_from_slice(&s.as_bytes()[start..]);
}

pub fn element_to_bytes(el: &Element, stream_ns: &str) -> bytes::Bytes {
    let mut out = Vec::with_capacity(256);
    write_element(el, stream_ns, &mut out);
    bytes::Bytes::from(out)
}

/// The opening tag of a stream, with the XML declaration.
pub fn stream_header(h: &StreamHeader) -> String {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"<?xml version='1.0'?><stream:stream");
    if let Some(ns) = &h.default_ns {
        out.extend_from_slice(b" xmlns='");
        escape_into(ns, &mut out);
        out.push(b'\'');
    }
    out.extend_from_slice(b" xmlns:stream='");
    escape_into(&h.ns, &mut out);
    out.push(b'\'');
    for (name, value) in [
        ("from", &h.from),
        ("to", &h.to),
        ("id", &h.id),
        ("version", &h.version),
        ("xml:lang", &h.lang),
    ] {
        if let Some(v) = value {
            out.push(b' ');
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"='");
            escape_into(v, &mut out);
            out.push(b'\'');
        }
    }
    out.push(b'>');
    String::from_utf8(out).expect("built from strings")
}

#[cfg(test)]
mod tests;
