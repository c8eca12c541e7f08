//! hearth-xml: the XMPP stream parser and serialiser. No I/O: the connection task feeds the
//! bytes it read into a [`StreamParser`] and takes [`StreamEvent`]s out, so a cancelled read never
//! loses parser state (cancel-safe by construction), and the same code serves TCP and TLS.
//!
//! # Why rxml and not quick-xml for ingress
//!
//! This is the first code hostile input reaches. rxml refuses by itself everything RFC 6120 §11
//! forbids: DTDs and entity declarations (so no entity expansion bombs), references to undeclared
//! entities, processing instructions, comments, encodings other than UTF-8; it checks XML 1.0
//! well-formedness and bounds every token (name, attribute value, text chunk) to 8 KiB. quick-xml
//! (the crate first asked for) hands DOCTYPEs, entity references, PIs, comments, undeclared
//! prefixes and duplicate attributes to the application to reject, has no size limits, and its
//! async reader keeps partial input in the caller's buffer (not cancel-safe). It is ~4× faster,
//! which matters only if parsing ever dominates the server's CPU time (measurements and sources:
//! `shared/design/crates.md` §1).
//!
//! rxml's namespace resolver is not public, so [`StreamParser`] runs rxml's raw parser and
//! resolves namespaces itself (the checks of Namespaces in XML 1.0 are in `parser.rs`). That also
//! lets it see the stream header's default namespace declaration, and enforce hearth's limits
//! (stanza size, depth, attribute count) on each raw event, before anything is accumulated.
//!
//! Output is a small serialiser of our own ([`write_element`]) rather than minidom's `write_to`:
//! stanzas are written once per recipient set onto the hot path, with the stream's default
//! namespace left implicit, as XMPP peers expect.

mod error;
mod parser;
mod writer;

pub use error::XmlError;
pub use parser::{Limits, StreamEvent, StreamHeader, StreamParser};
pub use writer::{element_to_bytes, escape_attr, stream_header, write_element};

/// The namespace of `<stream:stream>`, `<stream:features>` and `<stream:error>` (RFC 6120 §4.8.1).
pub const NS_STREAM: &str = "http://etherx.jabber.org/streams";
