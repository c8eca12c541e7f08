//! What client and server streams write alike: stream ids and stream errors.

use minidom::Element;

use crate::ns;
use crate::stanza::{EnvelopeError, Stanza};

/// A random stream or stanza id.
pub(crate) fn random_id() -> String {
    use rand::Rng;
    let n: u128 = rand::rng().random();
    format!("{n:032x}")
}

pub(crate) fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&apos;")
        .replace('"', "&quot;")
}

/// `<stream:error>` with an RFC 6120 §4.9.3 condition and an optional text, then the stream's
/// end.
pub(crate) fn stream_error(condition: &str, text: Option<&str>) -> String {
    let text = text
        .map(|t| {
            format!(
                "<text xmlns='{}' xml:lang='en'>{}</text>",
                ns::STREAMS_ERRORS,
                xml_escape(t)
            )
        })
        .unwrap_or_default();
    format!(
        "<stream:error><{condition} xmlns='{}'/>{text}</stream:error></stream:stream>",
        ns::STREAMS_ERRORS
    )
}

/// A top-level element of a server or component stream as a stanza, which there must carry
/// both addresses, with the domains of its `from` and `to`; otherwise the stream error
/// (condition, text) that ends the stream.
pub(crate) fn addressed_stanza(
    el: Element,
) -> Result<(Stanza, String, String), (&'static str, String)> {
    let stanza = match Stanza::from_element(el) {
        Ok(st) => st,
        Err(EnvelopeError::NotAStanza(name)) => {
            return Err((
                "unsupported-stanza-type",
                format!("<{name}/> is not a stanza"),
            ));
        }
        Err(EnvelopeError::BadAddress { attr, .. }) => {
            return Err((
                "improper-addressing",
                format!("the '{attr}' address is not a valid JID"),
            ));
        }
    };
    let (Some(from), Some(to)) = (stanza.from(), stanza.to()) else {
        return Err((
            "improper-addressing",
            "stanzas on this stream need 'from' and 'to'".into(),
        ));
    };
    let (from, to) = (from.domain().to_string(), to.domain().to_string());
    Ok((stanza, from, to))
}
