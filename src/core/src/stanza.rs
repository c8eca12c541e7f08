//! The stanza envelope: kind, type, id, from and to parsed once at ingress; the payload stays a
//! `minidom::Element` that only the module owning a namespace decodes.

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
    el: Element,
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
    pub fn from_element(el: Element) -> Result<Self, EnvelopeError> {
        let kind = match (el.name(), el.ns().as_str()) {
            ("message", ns::CLIENT) => Kind::Message,
            ("presence", ns::CLIENT) => Kind::Presence,
            ("iq", ns::CLIENT) => Kind::Iq,
            (name, _) => return Err(EnvelopeError::NotAStanza(name.to_string())),
        };
        let mut st = Stanza {
            kind,
            from: None,
            to: None,
            el,
        };
        for attr in ["to", "from"] {
            if let Some(v) = st.el.attr(attr) {
                match Jid::parse(v) {
                    Ok(j) if attr == "to" => st.to = Some(j),
                    Ok(j) => st.from = Some(j),
                    Err(_) => {
                        remove_attr(&mut st.el, attr);
                        return Err(EnvelopeError::BadAddress {
                            attr,
                            stanza: Box::new(st),
                        });
                    }
                }
            }
        }
        Ok(st)
    }

    /// A new stanza with the given kind; set addresses with the setters.
    pub fn new(kind: Kind) -> Self {
        Stanza {
            kind,
            from: None,
            to: None,
            el: Element::bare(kind.name(), ns::CLIENT),
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The `type` attribute as sent (absent is `None`; callers apply the per-kind default).
    pub fn type_attr(&self) -> Option<&str> {
        self.el.attr("type")
    }

    /// The effective type: `normal` for messages and `available` for presence when absent.
    pub fn stanza_type(&self) -> &str {
        match (self.kind, self.el.attr("type")) {
            (_, Some(t)) => t,
            (Kind::Message, None) => "normal",
            (Kind::Presence, None) => "available",
            (Kind::Iq, None) => "",
        }
    }

    pub fn id(&self) -> Option<&str> {
        self.el.attr("id")
    }

    pub fn from(&self) -> Option<&Jid> {
        self.from.as_ref()
    }

    pub fn to(&self) -> Option<&Jid> {
        self.to.as_ref()
    }

    pub fn set_from(&mut self, from: Option<Jid>) {
        set_attr(&mut self.el, "from", from.as_ref().map(|j| j.to_string()));
        self.from = from;
    }

    pub fn set_to(&mut self, to: Option<Jid>) {
        set_attr(&mut self.el, "to", to.as_ref().map(|j| j.to_string()));
        self.to = to;
    }

    pub fn set_type(&mut self, t: Option<&str>) {
        set_attr(&mut self.el, "type", t.map(str::to_string));
    }

    pub fn set_id(&mut self, id: Option<&str>) {
        set_attr(&mut self.el, "id", id.map(str::to_string));
    }

    pub fn element(&self) -> &Element {
        &self.el
    }

    /// Payload access. Addresses must be changed with `set_from`/`set_to`, not through here.
    pub fn element_mut(&mut self) -> &mut Element {
        &mut self.el
    }

    pub fn into_element(self) -> Element {
        self.el
    }

    /// Self-contained XML (namespace declared) for storage.
    pub fn to_storage_xml(&self) -> String {
        let mut out = Vec::new();
        hearth_xml::write_element(&self.el, "", &mut out);
        String::from_utf8(out).expect("serialised from strings")
    }

    /// A stanza stored with `to_storage_xml`; `None` if it cannot be read back.
    pub fn from_storage_xml(xml: &str) -> Option<Stanza> {
        Stanza::from_element(xml.parse::<Element>().ok()?).ok()
    }

    /// The single child of an IQ get/set (RFC 6120 §8.2.3), if there is exactly one.
    pub fn iq_payload(&self) -> Option<&Element> {
        let mut children = self.el.children();
        match (children.next(), children.next()) {
            (Some(c), None) => Some(c),
            _ => None,
        }
    }

    pub fn body(&self) -> Option<String> {
        self.el.get_child("body", ns::CLIENT).map(Element::text)
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
        reply.el.append_child(error.to_element());
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
            reply.el.append_child(p);
        }
        reply
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
                assert!(stanza.element().attr("to").is_none());
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
}
