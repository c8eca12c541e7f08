//! Between a client stream as the c2s code speaks it (one XML document with `<stream:stream>`
//! around everything, stanzas inheriting `jabber:client`) and the web bindings, which carry
//! one element at a time, each complete with its namespace (RFC 7395 §3.3, XEP-0206 §8).
//!
//! Outgoing, [`Splitter`] cuts what hearth wrote into the stream header, whole top-level
//! elements and the closing tag. It only ever reads hearth's own serialiser's output (no
//! comments, CDATA or DOCTYPE; attribute values quoted), so finding element boundaries needs
//! no full XML parser. Incoming, the bindings turn their framing into a stream header and
//! pass elements through for the c2s parser, which polices them as on any socket.

use hearth_xml::StreamHeader;

use crate::ns;

/// A piece of the outgoing stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Unit {
    /// `<stream:stream ...>` was written; `id` is the stream id.
    Open { id: String },
    /// One top-level element, namespace declared on it.
    Element(Vec<u8>),
    /// `</stream:stream>`.
    Close,
}

#[derive(Default)]
pub struct Splitter {
    buf: Vec<u8>,
    /// Where scanning resumes.
    pos: usize,
    /// Start of the top-level element being collected, with the nesting depth inside it.
    element: Option<(usize, u32)>,
}

impl Splitter {
    pub fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete unit, or `None` until more is fed.
    pub fn next_unit(&mut self) -> Option<Unit> {
        loop {
            let lt = self.pos + memchr(b'<', &self.buf[self.pos..])?;
            let rest = &self.buf[lt..];
            if rest.len() < 2 {
                return None;
            }
            if rest[1] == b'?' {
                let end = find(rest, b"?>")?;
                self.pos = lt + end + 2;
                continue;
            }
            let end = lt + tag_end(rest)?;
            self.pos = end + 1;
            let tag = &self.buf[lt..=end];
            let closing = tag[1] == b'/';
            let empty = !closing && tag[tag.len() - 2] == b'/';
            match (&mut self.element, closing) {
                (None, true) => return Some(self.consumed(Unit::Close)),
                (None, false) if tag_name(tag) == b"stream:stream" => {
                    let id = attribute(tag, b"id").unwrap_or_default();
                    return Some(self.consumed(Unit::Open { id }));
                }
                (None, false) if empty => return Some(self.consumed_element(lt)),
                (None, false) => self.element = Some((lt, 1)),
                (Some((_, depth)), true) => {
                    *depth -= 1;
                    if *depth == 0 {
                        let (start, _) = self.element.take().expect("just matched");
                        return Some(self.consumed_element(start));
                    }
                }
                (Some((_, depth)), false) if !empty => *depth += 1,
                (Some(_), false) => {}
            }
        }
    }

    /// Drops what was scanned and returns `unit`.
    fn consumed(&mut self, unit: Unit) -> Unit {
        self.buf.drain(..self.pos);
        self.pos = 0;
        unit
    }

    fn consumed_element(&mut self, start: usize) -> Unit {
        let el = with_namespace(&self.buf[start..self.pos]);
        self.consumed(Unit::Element(el))
    }
}

fn memchr(b: u8, s: &[u8]) -> Option<usize> {
    s.iter().position(|&c| c == b)
}

fn find(s: &[u8], needle: &[u8]) -> Option<usize> {
    s.windows(needle.len()).position(|w| w == needle)
}

/// Index of the `>` closing the tag that starts `s`, skipping quoted attribute values.
fn tag_end(s: &[u8]) -> Option<usize> {
    let mut quote = None;
    for (i, &c) in s.iter().enumerate().skip(1) {
        match (quote, c) {
            (None, b'\'' | b'"') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, b'>') => return Some(i),
            _ => {}
        }
    }
    None
}

fn tag_name(tag: &[u8]) -> &[u8] {
    let end = tag[1..]
        .iter()
        .position(|c| c.is_ascii_whitespace() || *c == b'/' || *c == b'>')
        .map_or(tag.len(), |p| p + 1);
    &tag[1..end]
}

/// The (unescaped as written by hearth: ids and domains need no escaping) value of `name`.
fn attribute(tag: &[u8], name: &[u8]) -> Option<String> {
    let mut i = 0;
    while let Some(p) = find(&tag[i..], name) {
        let at = i + p;
        let after = &tag[at + name.len()..];
        if tag[at - 1].is_ascii_whitespace() && after.len() > 1 && after[0] == b'=' {
            let q = after[1];
            let value = &after[2..];
            let len = memchr(q, value)?;
            return String::from_utf8(value[..len].to_vec()).ok();
        }
        i = at + name.len();
    }
    None
}

/// `el` (hearth's serialisation of a top-level element) with the namespace it inherited from
/// the stream declared on it.
fn with_namespace(el: &[u8]) -> Vec<u8> {
    let name = tag_name(el);
    let start_tag = &el[..tag_end(el).unwrap_or(el.len() - 1)];
    let declaration: &[u8] = if name.starts_with(b"stream:") {
        b" xmlns:stream='http://etherx.jabber.org/streams'"
    } else if attribute(start_tag, b"xmlns").is_none() {
        b" xmlns='jabber:client'"
    } else {
        b""
    };
    let at = 1 + name.len();
    let mut out = Vec::with_capacity(el.len() + declaration.len());
    out.extend_from_slice(&el[..at]);
    out.extend_from_slice(declaration);
    out.extend_from_slice(&el[at..]);
    out
}

/// The stream header the c2s code expects, for a client opening (or restarting) its stream
/// through a web binding.
pub fn stream_header(to: Option<&str>, version: Option<&str>, lang: Option<&str>) -> String {
    hearth_xml::stream_header(&StreamHeader {
        name: "stream".into(),
        ns: ns::STREAM.into(),
        default_ns: Some(ns::CLIENT.into()),
        to: to.map(Into::into),
        from: None,
        id: None,
        version: version.map(Into::into),
        lang: lang.map(Into::into),
    })
}

pub const STREAM_CLOSE: &str = "</stream:stream>";

#[cfg(test)]
mod tests {
    use super::*;

    fn units(input: &[&[u8]]) -> Vec<Unit> {
        let mut s = Splitter::default();
        let mut out = Vec::new();
        for chunk in input {
            s.feed(chunk);
            while let Some(u) = s.next_unit() {
                out.push(u);
            }
        }
        out
    }

    fn el(s: &str) -> Unit {
        Unit::Element(s.as_bytes().to_vec())
    }

    #[test]
    fn splits_a_stream_written_in_arbitrary_pieces() {
        let stream = b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
            xmlns:stream='http://etherx.jabber.org/streams' from='example.org' id='abc' \
            version='1.0'><stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
            <mechanism>PLAIN</mechanism></mechanisms></stream:features> \
            <message to='a@b' x='1&gt;2 &apos;/&gt;'><body>a &lt; b &gt; c</body><x/></message>\
            <r xmlns='urn:xmpp:sm:3'/></stream:stream>";
        let expected = vec![
            Unit::Open { id: "abc".into() },
            el(
                "<stream:features xmlns:stream='http://etherx.jabber.org/streams'><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
                 <mechanism>PLAIN</mechanism></mechanisms></stream:features>",
            ),
            el(
                "<message xmlns='jabber:client' to='a@b' x='1&gt;2 &apos;/&gt;'><body>a &lt; b &gt; c</body><x/></message>",
            ),
            el("<r xmlns='urn:xmpp:sm:3'/>"),
            Unit::Close,
        ];
        assert_eq!(units(&[stream]), expected);
        // Byte by byte: every boundary case of an incomplete tag.
        let pieces: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(units(&pieces), expected);
    }

    #[test]
    fn quoted_angle_brackets_do_not_end_a_tag() {
        assert_eq!(
            units(&[b"<stream:stream id=\"x>y\"><iq a='>' b=\"'/>\"/>"]),
            vec![
                Unit::Open { id: "x>y".into() },
                el("<iq xmlns='jabber:client' a='>' b=\"'/>\"/>")
            ]
        );
    }

    #[test]
    fn an_xmlns_lookalike_attribute_is_not_a_declaration() {
        assert_eq!(
            units(&[b"<stream:stream id='1'><presence data-xmlns='x'/>"]),
            vec![
                Unit::Open { id: "1".into() },
                el("<presence xmlns='jabber:client' data-xmlns='x'/>")
            ]
        );
    }
}
