//! Why a stream cannot go on, and which RFC 6120 §4.9.3 stream error tells the peer so.
//!
//! Every error is fatal: the caller sends `<stream:error>` with [`XmlError::condition`] and
//! closes. The mapping follows the RFC's own definitions: XML or Namespaces-in-XML violations are
//! `not-well-formed` (§4.9.3.13, which names both specifications, so an undeclared prefix lands
//! here rather than in `invalid-namespace`, §4.9.3.10, which is about *which* namespace a stream
//! or stanza uses); forbidden XML features are `restricted-xml` (§4.9.3.18, §11.1); size limits
//! are `policy-violation` (§4.9.3.14, as Prosody and ejabberd do).

/// A fatal problem in the incoming stream.
#[derive(Debug, Clone, thiserror::Error)]
pub enum XmlError {
    /// rxml found the input not well-formed (XML 1.0 or Namespaces in XML 1.0).
    #[error("not well-formed XML: {0}")]
    Malformed(rxml::Error),
    /// A well-formedness rule checked by this crate (data after the stream, namespace rules).
    #[error("not well-formed XML: {0}")]
    NotWellFormed(&'static str),
    /// An XML feature RFC 6120 §11.1 forbids (DTD, entity, comment, processing instruction).
    #[error("restricted XML: {0} not allowed in XMPP (RFC 6120 §11.1)")]
    Restricted(&'static str),
    /// A declared or detected encoding other than UTF-8 (RFC 6120 §11.6).
    #[error("only UTF-8 is allowed (RFC 6120 §11.6)")]
    UnsupportedEncoding,
    /// One of hearth's limits (or rxml's token length limit) was exceeded.
    #[error("{what} over the limit of {limit}")]
    LimitExceeded { what: &'static str, limit: usize },
    /// Non-whitespace character data between stanzas (RFC 6120 §4.9.3.1: XML that cannot be
    /// processed; it is well-formed, so not `not-well-formed`).
    #[error("character data between stanzas")]
    TextBetweenStanzas,
    /// A top-level element in no namespace: it is neither a stream element nor a stanza of the
    /// stream's content namespace (RFC 6120 §4.9.3.10).
    #[error("top-level element <{0}> has no namespace")]
    UnqualifiedTopLevel(String),
}

impl XmlError {
    /// The RFC 6120 §4.9.3 stream error condition (the element name inside `<stream:error>`).
    pub fn condition(&self) -> &'static str {
        match self {
            XmlError::Malformed(_) | XmlError::NotWellFormed(_) => "not-well-formed",
            XmlError::Restricted(_) => "restricted-xml",
            XmlError::UnsupportedEncoding => "unsupported-encoding",
            XmlError::LimitExceeded { .. } => "policy-violation",
            XmlError::TextBetweenStanzas => "bad-format",
            XmlError::UnqualifiedTopLevel(_) => "invalid-namespace",
        }
    }

    /// Classifies an error reported by rxml's raw parser.
    pub(crate) fn from_rxml(e: rxml::Error, max_token_length: usize) -> Self {
        use rxml::Error as E;
        match e {
            E::RestrictedXml("only utf-8 encoding is allowed") => XmlError::UnsupportedEncoding,
            // Tokens are bounded by rxml ("long name or reference"), events by usize.
            E::RestrictedXml("long name or reference" | "event too long") => {
                XmlError::LimitExceeded {
                    what: "bytes in one name, attribute value or reference",
                    limit: max_token_length,
                }
            }
            E::RestrictedXml(what) => XmlError::Restricted(what),
            E::UndeclaredEntity => XmlError::Restricted("entity references"),
            // `<!` not followed by `--` or `[CDATA[`: DOCTYPE, ENTITY, ELEMENT, ATTLIST markup.
            E::InvalidSyntax("malformed cdata or comment section start") => {
                XmlError::Restricted("document type declarations")
            }
            other => XmlError::Malformed(other),
        }
    }
}
