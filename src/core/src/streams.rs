//! What client and server streams write alike: stream ids and stream errors.

use crate::ns;

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
