//! Serialisation of stanzas and stream headers.
//!
//! Written by hand instead of minidom's `write_to`, which declares every element's namespace
//! through its own prefix tracking: here a top-level element in the stream's default namespace
//! carries no `xmlns` (as RFC 6120 §4.8.3 streams are usually written), children declare one only
//! where it changes, and everything is appended to the caller's buffer without intermediate
//! strings. The output parses back (with [`crate::StreamParser`]) to an equal element.

use minidom::{Element, Node};
use rxml::Namespace;

/// Appends `el` as a top-level element of a stream whose default namespace is `stream_ns`.
pub fn write_element(el: &Element, stream_ns: &str, out: &mut Vec<u8>) {
    write_nested(el, stream_ns, out);
}

/// [`write_element`] into a fresh buffer, for sharing one serialisation between recipients.
pub fn element_to_bytes(el: &Element, stream_ns: &str) -> bytes::Bytes {
    let mut out = Vec::with_capacity(256);
    write_element(el, stream_ns, &mut out);
    bytes::Bytes::from(out)
}

/// The opening of a stream: XML declaration and `<stream:stream …>` with the fields present.
pub fn stream_header(h: &crate::StreamHeader) -> String {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"<?xml version='1.0'?><stream:stream");
    if let Some(ns) = &h.default_ns {
        write_attr(&mut out, b"xmlns", ns);
    }
    write_attr(&mut out, b"xmlns:stream", &h.ns);
    for (name, value) in [
        (&b"from"[..], &h.from),
        (b"to", &h.to),
        (b"id", &h.id),
        (b"version", &h.version),
        (b"xml:lang", &h.lang),
    ] {
        if let Some(value) = value {
            write_attr(&mut out, name, value);
        }
    }
    out.push(b'>');
    // Only string slices and ASCII were written.
    String::from_utf8(out).expect("UTF-8 in, UTF-8 out")
}

/// Writes `el`, declaring its namespace only if it differs from the one in scope (`scope_ns`).
fn write_nested(el: &Element, scope_ns: &str, out: &mut Vec<u8>) {
    // `Element::ns()` clones; compare first and clone only when a declaration is written.
    let declared_ns = (!el.has_ns(scope_ns)).then(|| el.ns());
    out.push(b'<');
    out.extend_from_slice(el.name().as_bytes());
    if let Some(ns) = &declared_ns {
        write_attr(out, b"xmlns", ns);
    }
    let mut prefixes = 0;
    for ((attr_ns, name), value) in el.attrs().iter() {
        if attr_ns.is_none() {
            write_attr(out, name.as_bytes(), value);
        } else if *attr_ns == Namespace::XML {
            out.extend_from_slice(b" xml:");
            out.extend_from_slice(name.as_bytes());
            write_attr_value(out, value);
        } else {
            // Rare in XMPP: a prefix for this one attribute, declared on this element.
            prefixes += 1;
            out.extend_from_slice(b" xmlns:");
            write_prefix(out, prefixes);
            write_attr_value(out, attr_ns);
            out.push(b' ');
            write_prefix(out, prefixes);
            out.push(b':');
            out.extend_from_slice(name.as_bytes());
            write_attr_value(out, value);
        }
    }
    if el.nodes().next().is_none() {
        out.extend_from_slice(b"/>");
        return;
    }
    out.push(b'>');
    let ns = declared_ns.as_deref().unwrap_or(scope_ns);
    for node in el.nodes() {
        match node {
            Node::Element(child) => write_nested(child, ns, out),
            Node::Text(text) => escape_text(text, out),
        }
    }
    out.extend_from_slice(b"</");
    out.extend_from_slice(el.name().as_bytes());
    out.push(b'>');
}

/// ` name='value'`.
fn write_attr(out: &mut Vec<u8>, name: &[u8], value: &str) {
    out.push(b' ');
    out.extend_from_slice(name);
    write_attr_value(out, value);
}

/// `='value'`, escaped.
fn write_attr_value(out: &mut Vec<u8>, value: &str) {
    out.extend_from_slice(b"='");
    escape_attr(value, out);
    out.push(b'\'');
}

/// `ns1`, `ns2`, …: prefixes for namespaced attributes.
fn write_prefix(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(b"ns");
    let start = out.len();
    let mut n = n;
    loop {
        out.push(b'0' + (n % 10) as u8);
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out[start..].reverse();
}

/// Escapes character data: markup characters, and `\r`, which a parser would otherwise turn
/// into `\n` (XML 1.0 §2.11).
fn escape_text(s: &str, out: &mut Vec<u8>) {
    escape(s, out, |b| match b {
        b'&' => Some(b"&amp;"),
        b'<' => Some(b"&lt;"),
        b'>' => Some(b"&gt;"),
        b'\r' => Some(b"&#xD;"),
        _ => None,
    });
}

/// Escapes an attribute value: also both quotes, and tab and newline, which attribute-value
/// normalisation (XML 1.0 §3.3.3) would otherwise turn into spaces.
pub fn escape_attr(s: &str, out: &mut Vec<u8>) {
    escape(s, out, |b| match b {
        b'&' => Some(b"&amp;"),
        b'<' => Some(b"&lt;"),
        b'>' => Some(b"&gt;"),
        b'\'' => Some(b"&apos;"),
        b'"' => Some(b"&quot;"),
        b'\r' => Some(b"&#xD;"),
        b'\n' => Some(b"&#xA;"),
        b'\t' => Some(b"&#x9;"),
        _ => None,
    });
}

/// Copies `s`, replacing the bytes `replacement` maps (all ASCII, so never inside a multi-byte
/// character), in runs between replacements.
fn escape(s: &str, out: &mut Vec<u8>, replacement: impl Fn(u8) -> Option<&'static [u8]>) {
    let bytes = s.as_bytes();
    let mut copied = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if let Some(rep) = replacement(b) {
            out.extend_from_slice(&bytes[copied..i]);
            out.extend_from_slice(rep);
            copied = i + 1;
        }
    }
    out.extend_from_slice(&bytes[copied..]);
}

#[cfg(test)]
mod tests;
