//! The stanza envelope: kind, type, id, from and to parsed once at ingress; the payload stays a
//! `minidom::Element` that only the module owning a namespace decodes. The envelope owns the
//! addresses, so copies of a stanza for many recipients share one payload and one serialisation.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use minidom::Element;

use crate::jid::Jid;
use crate::ns;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Message,
    Presence,
    Iq,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Message => "message",
            Kind::Presence => "presence",
            Kind::Iq => "iq",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Stanza {
    kind: Kind,
    from: Option<Jid>,
    to: Option<Jid>,
    payload: Arc<Payload>,
}

/// The element without its `from` and `to` (the envelope owns those), shared by the copies of
/// a stanza fanned out to many recipients, with its serialisation made once for all of them:
/// a copy differs only in its addresses, which are spliced in when it is written.
#[derive(Debug)]
struct Payload {
    el: Element,
    /// The element serialised for a `jabber:client` stream, made on first use.
    wire: OnceLock<Bytes>,
}

impl Payload {
    fn new(el: Element) -> Arc<Self> {
        Arc::new(Payload {
            el,
            wire: OnceLock::new(),
        })
    }
}

impl Clone for Payload {
    fn clone(&self) -> Self {
        Payload {
            el: self.el.clone(),
            wire: OnceLock::new(),
        }
    }
}

/// Why an element could not be taken as a stanza; the stream layer answers with a stanza error
/// (bad addresses) or a stream error (not a stanza at all).
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("<{0}/> is not a stanza")]
    NotAStanza(String),
    #[error("malformed '{attr}' address")]
    BadAddress {
        attr: &'static str,
        stanza: Box<Stanza>,
    },
}

impl Stanza {
    /// Takes a top-level element of a `jabber:client` stream. A malformed `to`/`from` yields
    /// `BadAddress` carrying the stanza without that address, so the caller can bounce
    /// `jid-malformed` to the sender.
    pub fn from_element(mut el: Element) -> Result<Self, EnvelopeError> {
        let kind = kind_of(&el)?;
        let mut bad = None;
        let mut parse = |el: &mut Element, attr: &'static str| {
            let value = el.attr(attr)?;
            let jid = Jid::parse(value).ok();
            if jid.is_none() && bad.is_none() {
                bad = Some(attr);
            }
            remove_attr(el, attr);
            jid
        };
        let to = parse(&mut el, "to");
        let from = parse(&mut el, "from");
        let st = Stanza {
            kind,
            from,
            to,
            payload: Payload::new(el),
        };
        match bad {
            None => Ok(st),
            Some(attr) => Err(EnvelopeError::BadAddress {
                attr,
                stanza: Box::new(st),
            }),
        }
    }

    /// A stanza from an element and addresses already parsed (the element's own `from` and
    /// `to`, if any, are replaced).
    pub fn from_parts(
        mut el: Element,
        from: Option<Jid>,
        to: Option<Jid>,
    ) -> Result<Self, EnvelopeError> {
        let kind = kind_of(&el)?;
        remove_attr(&mut el, "to");
        remove_attr(&mut el, "from");
        Ok(Stanza {
            kind,
            from,
            to,
            payload: Payload::new(el),
        })
    }

    /// A new stanza with the given kind; set addresses with the setters.
    pub fn new(kind: Kind) -> Self {
        Stanza {
            kind,
            from: None,
            to: None,
            payload: Payload::new(Element::bare(kind.name(), ns::CLIENT)),
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The `type` attribute as sent (absent is `None`; callers apply the per-kind default).
    pub fn type_attr(&self) -> Option<&str> {
        self.payload.el.attr("type")
    }

    /// The effective type: `normal` for messages and `available` for presence when absent.
    pub fn stanza_type(&self) -> &str {
        match (self.kind, self.type_attr()) {
            (_, Some(t)) => t,
            (Kind::Message, None) => "normal",
            (Kind::Presence, None) => "available",
            (Kind::Iq, None) => "",
        }
    }

    pub fn id(&self) -> Option<&str> {
        self.payload.el.attr("id")
    }

    pub fn from(&self) -> Option<&Jid> {
        self.from.as_ref()
    }

    pub fn to(&self) -> Option<&Jid> {
        self.to.as_ref()
    }

    pub fn set_from(&mut self, from: Option<Jid>) {
        self.from = from;
    }

    pub fn set_to(&mut self, to: Option<Jid>) {
        self.to = to;
    }

    pub fn set_type(&mut self, t: Option<&str>) {
        set_attr(self.element_mut(), "type", t.map(str::to_string));
    }

    pub fn set_id(&mut self, id: Option<&str>) {
        set_attr(self.element_mut(), "id", id.map(str::to_string));
    }

    /// The element without `from` and `to`: read those with [`Stanza::from`] and
    /// [`Stanza::to`], and use [`Stanza::to_element`] for the whole stanza.
    pub fn element(&self) -> &Element {
        &self.payload.el
    }

    /// Payload access (copied first if other copies share it). Addresses are set with
    /// `set_from`/`set_to`.
    pub fn element_mut(&mut self) -> &mut Element {
        let payload = Arc::make_mut(&mut self.payload);
        payload.wire.take();
        &mut payload.el
    }

    /// The whole stanza as an element, addresses included.
    pub fn into_element(self) -> Element {
        let (from, to) = (self.from, self.to);
        let mut el = Arc::try_unwrap(self.payload)
            .map(|p| p.el)
            .unwrap_or_else(|shared| shared.el.clone());
        set_attr(&mut el, "from", from.map(|j| j.to_string()));
        set_attr(&mut el, "to", to.map(|j| j.to_string()));
        el
    }

    /// [`Stanza::into_element`] for a stanza that stays.
    pub fn to_element(&self) -> Element {
        self.clone().into_element()
    }

    /// The stanza as written on a client stream. The payload is serialised once for every
    /// copy of this stanza; only the addresses are written per copy.
    pub fn to_client_bytes(&self) -> Bytes {
        let wire = self
            .payload
            .wire
            .get_or_init(|| hearth_xml::element_to_bytes(&self.payload.el, ns::CLIENT));
        let mut out = Vec::with_capacity(wire.len() + 96);
        self.splice_addresses(wire, &mut out);
        Bytes::from(out)
    }

    /// Self-contained XML (namespace declared) for storage.
    pub fn to_storage_xml(&self) -> String {
        let mut payload = Vec::new();
        hearth_xml::write_element(&self.payload.el, "", &mut payload);
        let mut out = Vec::with_capacity(payload.len() + 96);
        self.splice_addresses(&payload, &mut out);
        String::from_utf8(out).expect("serialised from strings")
    }

    /// Appends `serialised` (this stanza's element) with `from` and `to` written into its start
    /// tag, right after the element name.
    fn splice_addresses(&self, serialised: &[u8], out: &mut Vec<u8>) {
        let name_end = 1 + self.payload.el.name().len();
        out.extend_from_slice(&serialised[..name_end]);
        for (name, jid) in [(&b"from"[..], &self.from), (b"to", &self.to)] {
            if let Some(jid) = jid {
                out.push(b' ');
                out.extend_from_slice(name);
                out.extend_from_slice(b"='");
                hearth_xml::escape_attr(jid.bare().as_str(), out);
                if let Some(resource) = jid.resource() {
                    out.push(b'/');
                    hearth_xml::escape_attr(resource, out);
                }
                out.push(b'\'');
            }
        }
        out.extend_from_slice(&serialised[name_end..]);
    }

    /// A stanza stored with `to_storage_xml`; `None` if it cannot be read back.
    pub fn from_storage_xml(xml: &str) -> Option<Stanza> {
        Stanza::from_element(xml.parse::<Element>().ok()?).ok()
    }

    /// The single child of an IQ get/set (RFC 6120 §8.2.3), if there is exactly one.
    pub fn iq_payload(&self) -> Option<&Element> {
        let mut children = self.payload.el.children();
        match (children.next(), children.next()) {
            (Some(c), None) => Some(c),
            _ => None,
        }
    }

    pub fn body(&self) -> Option<String> {
        self.payload
            .el
            .get_child("body", ns::CLIENT)
            .map(Element::text)
    }

    /// An error reply to this stanza (addresses swapped, original payload kept, RFC 6120 §8.3.1),
    /// or `None` for a stanza of type `error` or IQ `result`, which are never answered.
    pub fn error_reply(&self, error: StanzaError) -> Option<Stanza> {
        if matches!(self.type_attr(), Some("error"))
            || (self.kind == Kind::Iq && self.type_attr() == Some("result"))
        {
            return None;
        }
        let mut reply = self.clone();
        let (from, to) = (self.to.clone(), self.from.clone());
        reply.set_from(from);
        reply.set_to(to);
        reply.set_type(Some("error"));
        reply.element_mut().append_child(error.to_element());
        Some(reply)
    }

    /// The `result` for this IQ, with an optional payload.
    pub fn iq_result(&self, payload: Option<Element>) -> Stanza {
        let mut reply = Stanza::new(Kind::Iq);
        reply.set_type(Some("result"));
        reply.set_id(self.id());
        reply.set_from(self.to.clone());
        reply.set_to(self.from.clone());
        if let Some(p) = payload {
            reply.element_mut().append_child(p);
        }
        reply
    }
}

fn kind_of(el: &Element) -> Result<Kind, EnvelopeError> {
    match (el.name(), el.ns().as_str()) {
        ("message", ns::CLIENT) => Ok(Kind::Message),
        ("presence", ns::CLIENT) => Ok(Kind::Presence),
        ("iq", ns::CLIENT) => Ok(Kind::Iq),
        (name, _) => Err(EnvelopeError::NotAStanza(name.to_string())),
    }
}

/// An attribute name for minidom builders; names used by hearth are literals known to be valid.
pub fn ncname(name: &str) -> rxml::NcName {
    rxml::NcName::try_from(name).expect("attribute names used by hearth are valid NCNames")
}

/// Sets or removes an unqualified attribute.
pub fn set_attr(el: &mut Element, name: &str, value: Option<String>) {
    match value {
        Some(v) => el.set_attr(rxml::Namespace::NONE, ncname(name), v),
        None => remove_attr(el, name),
    }
}

fn remove_attr(el: &mut Element, name: &str) {
    el.attrs_mut().remove(&rxml::Namespace::NONE, &ncname(name));
}

/// Stanza error conditions (RFC 6120 §8.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    BadRequest,
    Conflict,
    FeatureNotImplemented,
    Forbidden,
    Gone,
    InternalServerError,
    ItemNotFound,
    JidMalformed,
    NotAcceptable,
    NotAllowed,
    NotAuthorized,
    PolicyViolation,
    RecipientUnavailable,
    Redirect,
    RegistrationRequired,
    RemoteServerNotFound,
    RemoteServerTimeout,
    ResourceConstraint,
    ServiceUnavailable,
    SubscriptionRequired,
    UndefinedCondition,
    UnexpectedRequest,
}

impl Condition {
    pub fn name(self) -> &'static str {
        use Condition::*;
        match self {
            BadRequest => "bad-request",
            Conflict => "conflict",
            FeatureNotImplemented => "feature-not-implemented",
            Forbidden => "forbidden",
            Gone => "gone",
            InternalServerError => "internal-server-error",
            ItemNotFound => "item-not-found",
            JidMalformed => "jid-malformed",
            NotAcceptable => "not-acceptable",
            NotAllowed => "not-allowed",
            NotAuthorized => "not-authorized",
            PolicyViolation => "policy-violation",
            RecipientUnavailable => "recipient-unavailable",
            Redirect => "redirect",
            RegistrationRequired => "registration-required",
            RemoteServerNotFound => "remote-server-not-found",
            RemoteServerTimeout => "remote-server-timeout",
            ResourceConstraint => "resource-constraint",
            ServiceUnavailable => "service-unavailable",
            SubscriptionRequired => "subscription-required",
            UndefinedCondition => "undefined-condition",
            UnexpectedRequest => "unexpected-request",
        }
    }

    /// The error type RFC 6120 §8.3.3 suggests for each condition.
    pub fn default_type(self) -> &'static str {
        use Condition::*;
        match self {
            BadRequest | JidMalformed | NotAcceptable | PolicyViolation | Redirect => "modify",
            Forbidden | NotAuthorized | RegistrationRequired | SubscriptionRequired => "auth",
            RecipientUnavailable | RemoteServerTimeout | ResourceConstraint | UnexpectedRequest => {
                "wait"
            }
            _ => "cancel",
        }
    }
}

/// A stanza error: condition, type and an optional human-readable text (in English).
#[derive(Debug, Clone)]
pub struct StanzaError {
    pub condition: Condition,
    pub type_: &'static str,
    pub text: Option<String>,
    /// An application-specific condition element (e.g. XEP-0191's `<blocked/>`), boxed to keep
    /// `Result<_, StanzaError>` small.
    pub app: Option<Box<Element>>,
}

impl StanzaError {
    pub fn new(condition: Condition) -> Self {
        Self {
            condition,
            type_: condition.default_type(),
            text: None,
            app: None,
        }
    }

    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }

    pub fn with_app(mut self, app: Element) -> Self {
        self.app = Some(Box::new(app));
        self
    }

    pub fn to_element(&self) -> Element {
        let mut err = Element::builder("error", ns::CLIENT)
            .attr(ncname("type"), self.type_)
            .build();
        err.append_child(Element::bare(self.condition.name(), ns::STANZAS));
        if let Some(t) = &self.text {
            err.append_child(
                Element::builder("text", ns::STANZAS)
                    .append(t.as_str())
                    .build(),
            );
        }
        if let Some(app) = &self.app {
            err.append_child((**app).clone());
        }
        err
    }
}

impl From<Condition> for StanzaError {
    fn from(c: Condition) -> Self {
        Self::new(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(xml: &str) -> Element {
        xml.parse().unwrap()
    }

    #[test]
    fn envelope_fields() {
        let st = Stanza::from_element(parse(
            "<message xmlns='jabber:client' to='Romeo@Example.net' id='m1'><body>hi</body></message>",
        ))
        .unwrap();
        assert_eq!(st.kind(), Kind::Message);
        assert_eq!(st.stanza_type(), "normal");
        assert_eq!(st.to().unwrap().to_string(), "romeo@example.net");
        assert_eq!(st.id(), Some("m1"));
        assert_eq!(st.body().as_deref(), Some("hi"));
    }

    #[test]
    fn bad_address_is_reported_with_stanza() {
        let err = Stanza::from_element(parse(
            "<iq xmlns='jabber:client' type='get' to='a@b@c' id='1'/>",
        ))
        .unwrap_err();
        match err {
            EnvelopeError::BadAddress { attr, stanza } => {
                assert_eq!(attr, "to");
                assert!(stanza.to().is_none());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn error_reply_swaps_addresses_and_never_answers_errors() {
        let mut st = Stanza::new(Kind::Iq);
        st.set_type(Some("get"));
        st.set_id(Some("x"));
        st.set_from(Some(Jid::parse("a@b/c").unwrap()));
        st.set_to(Some(Jid::parse("b").unwrap()));
        let reply = st
            .error_reply(Condition::ServiceUnavailable.into())
            .unwrap();
        assert_eq!(reply.to().unwrap().to_string(), "a@b/c");
        assert_eq!(reply.from().unwrap().to_string(), "b");
        assert_eq!(reply.type_attr(), Some("error"));
        assert!(
            reply
                .error_reply(Condition::ServiceUnavailable.into())
                .is_none()
        );
    }

    #[test]
    fn copies_share_one_serialisation_and_differ_in_addresses() {
        let el = parse(
            "<message xmlns='jabber:client' type='groupchat' id='m'><body>a&lt;b</body></message>",
        );
        let from = Jid::parse("room@muc.example/it's me").unwrap();
        let shared = Stanza::from_parts(el, Some(from), None).unwrap();
        let mut a = shared.clone();
        a.set_to(Some(Jid::parse("a@example/x").unwrap()));
        let mut b = shared.clone();
        b.set_to(Some(Jid::parse("b@example").unwrap()));
        assert_eq!(
            std::str::from_utf8(&a.to_client_bytes()).unwrap(),
            "<message from='room@muc.example/it&apos;s me' to='a@example/x' id='m' \
             type='groupchat'><body>a&lt;b</body></message>"
        );
        assert!(
            std::str::from_utf8(&b.to_client_bytes())
                .unwrap()
                .contains(" to='b@example' ")
        );
        // Both copies were written from the one serialisation their payload holds.
        assert!(Arc::ptr_eq(&a.payload, &b.payload));
        assert!(a.payload.wire.get().is_some());
        // A changed copy gets its own payload; the others keep theirs.
        b.set_id(Some("n"));
        assert!(!Arc::ptr_eq(&a.payload, &b.payload));
        assert!(b.payload.wire.get().is_none());
        assert_eq!(a.id(), Some("m"));
        let whole = a.to_element();
        assert_eq!(whole.attr("to"), Some("a@example/x"));
        let back = Stanza::from_storage_xml(&a.to_storage_xml()).unwrap();
        assert_eq!(back.from(), a.from());
        assert_eq!(back.to(), a.to());
        assert!(back.element().attr("from").is_none());
    }
}
