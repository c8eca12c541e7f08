//! The incremental stream parser: bytes in, stream header / stanzas / end out.
//!
//! Layers, from the bytes up:
//! 1. Our own input buffer (`buf[pos..]` is unconsumed). rxml's push parser takes what it needs
//!    from it and keeps at most one partial token; nothing is lost if the caller's read is
//!    cancelled, and bytes after a stream restart stay here for the next parser (`reset`).
//! 2. rxml's [`RawParser`]: XML 1.0 syntax and RFC 6120 §11 restrictions.
//! 3. Namespace resolution (Namespaces in XML 1.0: declared prefixes, unique attributes after
//!    resolution, reserved names), done here because rxml's resolver is private and we need the
//!    stream header's default namespace declaration, which the resolver swallows.
//! 4. hearth's limits, checked on every raw event, so a hostile peer cannot make us accumulate
//!    more than the limits (plus one rxml token) before the stream is closed.
//! 5. Element building for depth ≥ 1 (stanzas), straight into [`minidom::Element`]s.

use minidom::Element;

use crate::XmlError;
use rxml::error::{EndOrError, ErrorContext};
use rxml::{AttrMap, Namespace, NcName, Parse, RawEvent, RawParser, WithOptions};

/// Largest stream header (XML declaration + `<stream:stream …>`) accepted, in bytes. Real ones
/// are ~250 bytes; this only stops a peer from streaming an endless header.
const MAX_HEADER_BYTES: usize = 8 * 1024;

/// How much unconsumed input may sit in the buffer beyond the stanza limit. The connection task
/// feeds one socket read (4 KiB) at a time and drains the parser before reading again, so this
/// is only reached by a caller that stops draining; it then fails instead of growing.
const FEED_ALLOWANCE: usize = 64 * 1024;

/// rxml's bound on one token (name, attribute value, reference, text chunk), its default.
const MAX_TOKEN_LENGTH: usize = 8192;

/// XML whitespace (XML 1.0 production `S`); wider notions such as form feed are not XML.
fn is_xml_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes of one top-level element, from its `<` to the end of its end tag.
    pub max_stanza_size: usize,
    /// Nesting depth inside one top-level element (the top-level element itself is depth 1).
    pub max_depth: usize,
    /// Attributes on one element, namespace declarations included.
    pub max_attributes: usize,
}

impl Default for Limits {
    /// 256 KiB is Prosody's `c2s_stanza_size_limit`.
    fn default() -> Self {
        Self {
            max_stanza_size: 256 * 1024,
            max_depth: 32,
            max_attributes: 64,
        }
    }
}

/// The opening `<stream:stream …>` tag. Whether it is acceptable (namespace, version, `to`) is
/// for the caller to decide: the answer differs between c2s, s2s and components.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamHeader {
    /// Local name of the root element (`stream`).
    pub name: String,
    /// Namespace of the root element (`http://etherx.jabber.org/streams`).
    pub ns: String,
    /// The default namespace declared on the header (`jabber:client`, `jabber:server`).
    pub default_ns: Option<String>,
    pub to: Option<String>,
    pub from: Option<String>,
    pub id: Option<String>,
    pub version: Option<String>,
    /// `xml:lang`.
    pub lang: Option<String>,
}

#[derive(Debug)]
pub enum StreamEvent {
    /// The stream header, as soon as its start tag is complete.
    Header(StreamHeader),
    /// A complete top-level element (stanza, or stream-level element such as `<auth/>`).
    Element(Element),
    /// `</stream:stream>`.
    End,
}

/// Where in the stream the parser is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before the header's start tag is complete.
    Prolog,
    /// Inside the stream.
    Open,
    /// After `</stream:stream>`: only whitespace may follow.
    Closed,
}

/// A namespace declaration in scope.
#[derive(Debug)]
struct NamespaceDecl {
    /// Depth of the declaring element (1 = stream header).
    depth: usize,
    /// `None` for the default namespace (`xmlns='…'`).
    prefix: Option<NcName>,
    /// Empty only for `xmlns=''` (undeclares the default namespace).
    uri: String,
}

/// A start tag whose attributes are still arriving.
#[derive(Debug)]
struct StartTag {
    prefix: Option<NcName>,
    name: NcName,
    /// Unprefixed attributes (no namespace).
    attrs: AttrMap,
    /// Attributes seen so far, namespace declarations included (for `max_attributes`).
    attr_count: usize,
    declares_default: bool,
}

/// Incremental parser for one XML stream (call [`StreamParser::reset`] at each stream restart).
pub struct StreamParser {
    limits: Limits,
    lexer: RawParser,
    /// Input; `buf[pos..]` is not consumed yet.
    buf: Vec<u8>,
    pos: usize,
    phase: Phase,
    /// Whether rxml has seen input yet (leading whitespace is skipped before).
    lexer_started: bool,
    /// Open elements, the stream header included (so 1 between stanzas).
    open: usize,
    /// Namespace declarations in scope, innermost last.
    decls: Vec<NamespaceDecl>,
    tag: Option<StartTag>,
    /// Prefixed attributes of `tag`, resolved when the tag closes (declarations may follow them).
    prefixed_attrs: Vec<(NcName, NcName, String)>,
    /// Elements under construction: the top-level element first.
    stack: Vec<Element>,
    /// Bytes of the current top-level element accounted to events so far (0 between stanzas).
    stanza_bytes: usize,
    /// Bytes consumed by rxml, and bytes accounted to the events it returned: the difference is
    /// what rxml holds in a partial token.
    consumed: usize,
    evented: usize,
    /// The first error; every later call returns it again.
    failure: Option<XmlError>,
    /// Elements in the first namespace are built in the second (see [`StreamParser::alias`]).
    alias: Option<(&'static str, &'static str)>,
}

impl StreamParser {
    pub fn new(limits: Limits) -> Self {
        let mut lexer = RawParser::with_options(rxml::Options {
            max_token_length: MAX_TOKEN_LENGTH,
            ..rxml::Options::default()
        });
        // Text is handed over as soon as it arrives instead of being held until the next `<`:
        // whitespace keep-alives are consumed at once, and `has_buffered` sees no stale bytes.
        lexer.set_text_buffering(false);
        Self {
            limits,
            lexer,
            buf: Vec::new(),
            pos: 0,
            phase: Phase::Prolog,
            lexer_started: false,
            open: 0,
            decls: Vec::new(),
            tag: None,
            prefixed_attrs: Vec::new(),
            stack: Vec::new(),
            stanza_bytes: 0,
            consumed: 0,
            evented: 0,
            failure: None,
            alias: None,
        }
    }

    /// Builds elements in namespace `from` as if they were in `to` (the header excepted), for
    /// this stream and those after a reset: server streams carry stanzas in `jabber:server`,
    /// which the rest of the server handles as the `jabber:client` stanzas they are.
    pub fn alias(&mut self, from: &'static str, to: &'static str) {
        self.alias = Some((from, to));
    }

    /// Appends bytes read from the peer. Feed one read at a time and drain
    /// [`next_event`](Self::next_event) in between: unconsumed input is bounded, and exceeding
    /// the bound makes the next call fail with `policy-violation`.
    pub fn feed(&mut self, data: &[u8]) {
        if self.failure.is_some() {
            return;
        }
        if self.pos == self.buf.len() {
            self.buf.clear();
        } else if self.pos > 0 {
            self.buf.drain(..self.pos);
        }
        self.pos = 0;
        let limit = self.limits.max_stanza_size.max(MAX_HEADER_BYTES) + FEED_ALLOWANCE;
        if self.buf.len() + data.len() > limit {
            self.failure = Some(XmlError::LimitExceeded {
                what: "bytes of unprocessed input",
                limit,
            });
            return;
        }
        self.buf.extend_from_slice(data);
    }

    /// A new stream on the same connection (after SASL success, RFC 6120 §6.4.6, or STARTTLS).
    /// Bytes received and not yet parsed are kept: the client may have pipelined the new
    /// header. Call it right after the event that ends the old stream, before asking for more.
    pub fn reset(&mut self) {
        let alias = self.alias;
        let buf = std::mem::take(&mut self.buf);
        let pos = self.pos;
        *self = Self::new(self.limits);
        self.buf = buf;
        self.pos = pos;
        self.alias = alias;
    }

    /// Whether input is pending that no complete event accounts for: unconsumed bytes, a partial
    /// token inside rxml, an unfinished header or top-level element. After `<proceed/>` this
    /// must be false: anything sent before the TLS handshake would otherwise be taken as if it
    /// had come over TLS (STARTTLS command injection, CVE-2011-1431 class).
    pub fn has_buffered(&self) -> bool {
        self.pos < self.buf.len()
            || self.consumed > self.evented
            || self.tag.is_some()
            || self.open > 1
            || (self.phase == Phase::Prolog && self.consumed > 0)
    }

    /// Releases buffer capacity before the connection waits for input: idle sessions keep only
    /// what the stream's state needs.
    pub fn idle_shrink(&mut self) {
        if self.pos == self.buf.len() {
            self.buf = Vec::new();
            self.pos = 0;
        }
        if self.stack.is_empty() {
            self.stack = Vec::new();
        }
        self.prefixed_attrs = Vec::new();
        self.decls.shrink_to_fit();
        self.lexer.release_temporaries();
    }

    /// The next stream event; `Ok(None)` when more input is needed. After an error the stream
    /// is unusable and the same error is returned again.
    pub fn next_event(&mut self) -> Result<Option<StreamEvent>, XmlError> {
        if let Some(e) = &self.failure {
            return Err(e.clone());
        }
        let result = self.parse_next();
        if let Err(e) = &result {
            self.failure = Some(e.clone());
        }
        result
    }

    fn parse_next(&mut self) -> Result<Option<StreamEvent>, XmlError> {
        loop {
            match self.phase {
                Phase::Closed => return self.after_close(),
                Phase::Prolog if !self.lexer_started => {
                    if self.skip_leading_whitespace()? {
                        return Ok(None);
                    }
                }
                Phase::Prolog | Phase::Open => {}
            }
            let mut input = &self.buf[self.pos..];
            let available = input.len();
            let result = self.lexer.parse(&mut input, false);
            let consumed = available - input.len();
            self.pos += consumed;
            self.consumed += consumed;
            match result {
                Ok(Some(event)) => {
                    let len = event.metrics().len();
                    self.evented += len;
                    if self.stanza_bytes > 0 {
                        self.stanza_bytes += len;
                    }
                    self.check_sizes()?;
                    if let Some(out) = self.handle(event)? {
                        return Ok(Some(out));
                    }
                }
                // rxml reports the end of the document only at end of input, which we never
                // claim; the root's end tag moved us to `Closed` already.
                Ok(None) => self.phase = Phase::Closed,
                Err(EndOrError::NeedMoreData) => {
                    self.check_sizes()?;
                    return Ok(None);
                }
                Err(EndOrError::Error(e)) => return Err(XmlError::from_rxml(e, MAX_TOKEN_LENGTH)),
            }
        }
    }

    /// Before the first byte reaches rxml: skips whitespace (XML allows it before a root without
    /// XML declaration, rxml does not) and recognises UTF-16. Returns whether to wait for input.
    fn skip_leading_whitespace(&mut self) -> Result<bool, XmlError> {
        let skip = self.buf[self.pos..]
            .iter()
            .take_while(|b| is_xml_whitespace(**b))
            .count();
        self.pos += skip;
        // Accounted, not held by rxml: counts towards the header's size only.
        self.consumed += skip;
        self.evented += skip;
        self.check_sizes()?;
        match &self.buf[self.pos..] {
            [] | [b'<'] => Ok(true),
            // UTF-16 byte order marks, or `<` in UTF-16 (big or little endian).
            [0xfe | 0xff | 0x00, ..] | [b'<', 0x00, ..] => Err(XmlError::UnsupportedEncoding),
            _ => {
                self.lexer_started = true;
                Ok(false)
            }
        }
    }

    fn after_close(&mut self) -> Result<Option<StreamEvent>, XmlError> {
        let rest = &self.buf[self.pos..];
        if rest.iter().all(|b| is_xml_whitespace(*b)) {
            self.pos = self.buf.len();
            Ok(None)
        } else {
            Err(XmlError::NotWellFormed("data after the end of the stream"))
        }
    }

    /// The size limits that hold between events: the stanza (with what rxml holds of it) and
    /// the header.
    fn check_sizes(&self) -> Result<(), XmlError> {
        let in_flight = self.consumed - self.evented;
        if self.stanza_bytes > 0 && self.stanza_bytes + in_flight > self.limits.max_stanza_size {
            return Err(XmlError::LimitExceeded {
                what: "bytes in one stanza",
                limit: self.limits.max_stanza_size,
            });
        }
        if self.phase == Phase::Prolog && self.consumed > MAX_HEADER_BYTES {
            return Err(XmlError::LimitExceeded {
                what: "bytes of stream header",
                limit: MAX_HEADER_BYTES,
            });
        }
        Ok(())
    }

    fn handle(&mut self, event: RawEvent) -> Result<Option<StreamEvent>, XmlError> {
        match event {
            // rxml accepts it only at the very start.
            RawEvent::XmlDeclaration(..) => Ok(None),
            RawEvent::ElementHeadOpen(metrics, (prefix, name)) => {
                self.open_tag(metrics.len(), prefix, name)?;
                Ok(None)
            }
            RawEvent::Attribute(_, (prefix, name), value) => {
                self.attribute(prefix, name, value)?;
                Ok(None)
            }
            RawEvent::ElementHeadClose(_) => self.close_tag(),
            RawEvent::ElementFoot(_) => Ok(self.end_element()),
            RawEvent::Text(_, text) => {
                if let Some(parent) = self.stack.last_mut() {
                    parent.append_text(text);
                } else if !text.bytes().all(is_xml_whitespace) {
                    return Err(XmlError::TextBetweenStanzas);
                }
                // Whitespace between stanzas is a keep-alive (RFC 6120 §4.6.1).
                Ok(None)
            }
        }
    }

    fn open_tag(
        &mut self,
        len: usize,
        prefix: Option<NcName>,
        name: NcName,
    ) -> Result<(), XmlError> {
        // `open` is the depth of the parent; the stream header is depth 1 of the document and
        // has no depth inside a stanza.
        let depth_in_stanza = self.open;
        if depth_in_stanza > self.limits.max_depth {
            return Err(XmlError::LimitExceeded {
                what: "nesting depth",
                limit: self.limits.max_depth,
            });
        }
        if depth_in_stanza == 1 {
            self.stanza_bytes = len;
        }
        self.tag = Some(StartTag {
            prefix,
            name,
            attrs: AttrMap::new(),
            attr_count: 0,
            declares_default: false,
        });
        Ok(())
    }

    fn attribute(
        &mut self,
        prefix: Option<NcName>,
        name: NcName,
        value: String,
    ) -> Result<(), XmlError> {
        let tag = self
            .tag
            .as_mut()
            .expect("rxml emits attributes only inside a start tag");
        tag.attr_count += 1;
        if tag.attr_count > self.limits.max_attributes {
            return Err(XmlError::LimitExceeded {
                what: "attributes on one element",
                limit: self.limits.max_attributes,
            });
        }
        let depth = self.open + 1;
        match prefix {
            None if name == "xmlns" => {
                if std::mem::replace(&mut tag.declares_default, true) {
                    return Err(XmlError::Malformed(rxml::Error::DuplicateAttribute));
                }
                declare(&mut self.decls, depth, None, value)
            }
            Some(xmlns) if xmlns == "xmlns" => {
                // rxml has refused `xmlns:xmlns`, binding the XML namespace to another prefix,
                // and empty prefixed declarations.
                let redeclared = self
                    .decls
                    .iter()
                    .rev()
                    .take_while(|d| d.depth == depth)
                    .any(|d| d.prefix.as_ref() == Some(&name));
                if redeclared {
                    return Err(XmlError::Malformed(rxml::Error::DuplicateAttribute));
                }
                declare(&mut self.decls, depth, Some(name), value)
            }
            Some(prefix) => {
                self.prefixed_attrs.push((prefix, name, value));
                Ok(())
            }
            None => match tag.attrs.insert(Namespace::NONE, name, value) {
                None => Ok(()),
                Some(_) => Err(XmlError::Malformed(rxml::Error::DuplicateAttribute)),
            },
        }
    }

    fn close_tag(&mut self) -> Result<Option<StreamEvent>, XmlError> {
        let StartTag {
            prefix,
            name,
            mut attrs,
            ..
        } = self
            .tag
            .take()
            .expect("rxml closes only a start tag it opened");
        self.open += 1;
        for (attr_prefix, attr_name, value) in self.prefixed_attrs.drain(..) {
            let ns = match resolve(&self.decls, Some(&attr_prefix)) {
                Some(uri) if uri == rxml::XMLNS_XML => Namespace::XML,
                Some(uri) => Namespace::from(uri.to_owned()),
                None => {
                    return Err(XmlError::Malformed(rxml::Error::UndeclaredNamespacePrefix(
                        Some(ErrorContext::AttributeName),
                    )));
                }
            };
            // Namespaces in XML 1.0, "Attributes Unique": `a:x` and `b:x` with a and b bound
            // to the same namespace are duplicates.
            if attrs.insert(ns, attr_name, value).is_some() {
                return Err(XmlError::Malformed(rxml::Error::DuplicateAttribute));
            }
        }
        let ns = resolve(&self.decls, prefix.as_ref()).ok_or(XmlError::Malformed(
            rxml::Error::UndeclaredNamespacePrefix(Some(ErrorContext::Name)),
        ))?;
        if self.open == 1 {
            self.phase = Phase::Open;
            return Ok(Some(StreamEvent::Header(self.header(ns, name, attrs))));
        }
        if self.open == 2 && ns.is_empty() {
            return Err(XmlError::UnqualifiedTopLevel(name.into()));
        }
        let ns = match self.alias {
            Some((from, to)) if ns == from => to,
            _ => ns,
        };
        let mut el = Element::bare(name, ns);
        *el.attrs_mut() = attrs;
        self.stack.push(el);
        Ok(None)
    }

    fn end_element(&mut self) -> Option<StreamEvent> {
        while self.decls.last().is_some_and(|d| d.depth == self.open) {
            self.decls.pop();
        }
        self.open -= 1;
        match self.open {
            0 => {
                self.phase = Phase::Closed;
                Some(StreamEvent::End)
            }
            1 => {
                self.stanza_bytes = 0;
                let el = self.stack.pop().expect("a top-level element is open");
                Some(StreamEvent::Element(el))
            }
            _ => {
                let el = self.stack.pop().expect("a child element is open");
                let parent = self.stack.last_mut().expect("the child has a parent");
                parent.append_child(el);
                None
            }
        }
    }

    fn header(&self, ns: &str, name: NcName, mut attrs: AttrMap) -> StreamHeader {
        let mut take = |key: &str| attrs.remove(Namespace::none(), key);
        StreamHeader {
            name: name.into(),
            ns: ns.to_owned(),
            default_ns: self
                .decls
                .iter()
                .find(|d| d.depth == 1 && d.prefix.is_none())
                .map(|d| d.uri.clone()),
            to: take("to"),
            from: take("from"),
            id: take("id"),
            version: take("version"),
            lang: attrs.remove(Namespace::xml(), "lang"),
        }
    }
}

/// Records a namespace declaration made on the element at `depth`.
fn declare(
    decls: &mut Vec<NamespaceDecl>,
    depth: usize,
    prefix: Option<NcName>,
    uri: String,
) -> Result<(), XmlError> {
    // Namespaces in XML 1.0, "Reserved Prefixes and Namespace Names": the xmlns namespace is
    // bound to no prefix (rxml checks the XML namespace).
    if uri == rxml::XMLNS_XMLNS {
        return Err(XmlError::Malformed(rxml::Error::ReservedNamespaceName));
    }
    decls.push(NamespaceDecl { depth, prefix, uri });
    Ok(())
}

/// The namespace a prefix (or, for `None`, the default namespace) is bound to in scope; the
/// default namespace is "" when none is declared.
fn resolve<'d>(decls: &'d [NamespaceDecl], prefix: Option<&NcName>) -> Option<&'d str> {
    match prefix {
        Some(p) if p == "xml" => Some(rxml::XMLNS_XML),
        prefix => decls
            .iter()
            .rev()
            .find(|d| d.prefix.as_ref() == prefix)
            .map(|d| d.uri.as_str())
            .or(if prefix.is_none() { Some("") } else { None }),
    }
}

#[cfg(test)]
mod tests;
