//! The stanza router. A stanza from a client is validated, then runs through `pre-<kind>/<target>`
//! hooks (the sender's side: carbons, blocking), then is routed: to a local account
//! (`<kind>/<target>` hooks, then IQ handlers), or to a remote domain. Whatever no module handled
//! gets the RFC-exact answer here, in one place.

use std::sync::{Arc, LazyLock};

use minidom::Element;

use hearth_store::PendingWrites;

use crate::jid::Jid;
use crate::module::{IqTarget, IqType};
use crate::server::Server;
use crate::session::Session;
use crate::stanza::{Condition, Kind, Stanza, StanzaError};

/// Fired for a chat or normal message addressed to an existing account that no session can take
/// (none available, or a session ended before its client confirmed the message). A handler that
/// keeps it (offline storage) stops the event.
pub const OFFLINE_EVENT: &str = "message/offline";

/// What a hook hands back: the stanza to pass on, or `Stop` when it took care of it.
// Not boxed: moving the envelope between hooks is cheaper than an allocation per hook.
#[allow(clippy::large_enum_variant)]
pub enum Flow {
    Continue(Stanza),
    Stop,
}

/// An IQ handler's answer: the `result` payload, or the error to reply with.
pub type IqResult = Result<Option<Element>, StanzaError>;

/// The kind of address a stanza is sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The server's domain.
    Host,
    /// An account's bare JID (or no `to`: the sender's own account).
    Bare,
    /// A full JID (a connected resource).
    Full,
}

impl Target {
    pub fn of(to: Option<&Jid>) -> Self {
        match to {
            None => Target::Bare,
            Some(j) if j.node().is_none() => Target::Host,
            Some(j) if j.is_bare() => Target::Bare,
            Some(_) => Target::Full,
        }
    }
}

/// Event names, static so that routing a stanza allocates no strings.
fn event_name(pre: bool, kind: Kind, target: Target) -> &'static str {
    use Kind::*;
    use Target::*;
    match (pre, kind, target) {
        (true, Message, Host) => "pre-message/host",
        (true, Message, Bare) => "pre-message/bare",
        (true, Message, Full) => "pre-message/full",
        (true, Presence, Host) => "pre-presence/host",
        (true, Presence, Bare) => "pre-presence/bare",
        (true, Presence, Full) => "pre-presence/full",
        (true, Iq, Host) => "pre-iq/host",
        (true, Iq, Bare) => "pre-iq/bare",
        (true, Iq, Full) => "pre-iq/full",
        (false, Message, Host) => "message/host",
        (false, Message, Bare) => "message/bare",
        (false, Message, Full) => "message/full",
        (false, Presence, Host) => "presence/host",
        (false, Presence, Bare) => "presence/bare",
        (false, Presence, Full) => "presence/full",
        (false, Iq, Host) => "iq/host",
        (false, Iq, Bare) => "iq/bare",
        (false, Iq, Full) => "iq/full",
    }
}

/// Where a stanza being handled came from.
#[derive(Clone, Debug)]
pub enum Origin {
    /// A bound local client session.
    Client(Arc<Session>),
    /// The server itself or a module (roster pushes, presence broadcasts, bounces).
    Server,
    /// Another server, over a stream authenticated for this domain, or an external component
    /// (XEP-0114) serving it.
    Remote(String),
    /// A client stream before login (in-band registration), by a number unique while the server
    /// runs: what a module accepts on a stream (an invitation token) holds for that stream only.
    Unauthenticated(u64),
}

/// What hooks and IQ handlers get along with the stanza.
#[derive(Clone)]
pub struct Context {
    pub server: Arc<Server>,
    pub origin: Origin,
    /// Writes that may wait for the next write this handling waits for, or for its end: only
    /// while the router handles a client's stanza (and commits them before it is done with
    /// it); elsewhere writes are made at once.
    pub pending: Arc<PendingWrites>,
}

impl Context {
    /// A context in which nothing is deferred: writes are made at once.
    pub fn new(server: Arc<Server>, origin: Origin) -> Self {
        // One for all: it never holds a write, and routing a stanza allocates none.
        static IMMEDIATE: LazyLock<Arc<PendingWrites>> =
            LazyLock::new(|| Arc::new(PendingWrites::immediate()));
        Context {
            server,
            origin,
            pending: IMMEDIATE.clone(),
        }
    }

    /// A context for the router's handling of a client's stanza, which ends with
    /// [`Self::finish`]: the writes the sender's side may defer (its archive copy).
    fn routing(server: Arc<Server>, origin: Origin) -> Self {
        Context {
            server,
            origin,
            pending: Arc::new(PendingWrites::new()),
        }
    }

    /// Commits what the handling deferred; then the stanza is done with.
    async fn finish(&self) {
        self.server.store.commit_pending(&self.pending).await
    }

    pub fn session(&self) -> Option<&Arc<Session>> {
        match &self.origin {
            Origin::Client(s) => Some(s),
            Origin::Server | Origin::Remote(_) | Origin::Unauthenticated(_) => None,
        }
    }

    /// The client stream an IQ before login came on.
    pub fn unauthenticated_stream(&self) -> Option<u64> {
        match self.origin {
            Origin::Unauthenticated(stream) => Some(stream),
            _ => None,
        }
    }

    pub fn store(&self) -> &hearth_store::Store {
        &self.server.store
    }

    /// Routes a stanza the server generates.
    pub async fn send(&self, stanza: Stanza) {
        self.server.route(stanza).await
    }
}

/// RFC 6120 §8.2.3: IQ type, id, and exactly one child for get/set.
fn validate_iq(st: &Stanza) -> Result<(), StanzaError> {
    let bad = |text: &str| Err(StanzaError::new(Condition::BadRequest).with_text(text));
    match st.type_attr() {
        Some("get" | "set") => {
            if st.id().is_none() {
                return bad("an IQ needs an id");
            }
            if st.iq_payload().is_none() {
                return bad("an IQ get or set must contain exactly one child element");
            }
            Ok(())
        }
        Some("result" | "error") if st.id().is_some() => Ok(()),
        Some("result" | "error") => bad("an IQ needs an id"),
        _ => bad("an IQ type must be get, set, result or error"),
    }
}

/// What is wrong with a stanza's type or IQ shape, if anything.
fn invalid(stanza: &Stanza) -> Option<StanzaError> {
    if stanza.kind() == Kind::Iq {
        validate_iq(stanza).err()
    } else if !valid_type(stanza) {
        Some(StanzaError::new(Condition::BadRequest).with_text("unknown stanza type"))
    } else {
        None
    }
}

fn valid_type(st: &Stanza) -> bool {
    match st.kind() {
        Kind::Message => matches!(
            st.stanza_type(),
            "normal" | "chat" | "groupchat" | "headline" | "error"
        ),
        Kind::Presence => matches!(
            st.stanza_type(),
            "available"
                | "unavailable"
                | "subscribe"
                | "subscribed"
                | "unsubscribe"
                | "unsubscribed"
                | "probe"
                | "error"
        ),
        Kind::Iq => true,
    }
}

impl Server {
    /// A stanza from a bound client. The stream layer has already stamped `from` with the
    /// session's full JID, so a client can never speak for someone else.
    pub async fn process_from_client(self: &Arc<Self>, session: &Arc<Session>, stanza: Stanza) {
        self.stanzas.count(false, stanza.kind());
        if let Some(err) = invalid(&stanza) {
            self.bounce(&stanza, err).await;
            return;
        }
        let cx = Context::routing(self.clone(), Origin::Client(session.clone()));
        let target = Target::of(stanza.to());
        if let Flow::Continue(stanza) = self
            .fire(event_name(true, stanza.kind(), target), cx.clone(), stanza)
            .await
        {
            self.post(cx.clone(), stanza).await;
        }
        cx.finish().await;
    }

    /// A stanza from another server or an external component, its `from` domain authenticated
    /// by the stream. It is delivered like any stanza addressed here; the sender already did
    /// its side.
    pub async fn process_from_remote(self: &Arc<Self>, stanza: Stanza, remote: String) {
        self.stanzas.count(true, stanza.kind());
        if let Some(err) = invalid(&stanza) {
            self.bounce(&stanza, err).await;
            return;
        }
        let cx = Context::new(self.clone(), Origin::Remote(remote));
        self.post(cx, stanza).await;
    }

    /// Routes a stanza generated by the server or a module.
    pub async fn route(self: &Arc<Self>, stanza: Stanza) {
        let cx = Context::new(self.clone(), Origin::Server);
        Box::pin(self.post(cx, stanza)).await
    }

    /// Runs the hooks of `event` in priority order until one stops the chain.
    pub async fn fire(self: &Arc<Self>, event: &str, cx: Context, mut stanza: Stanza) -> Flow {
        if let Some(hooks) = self.regs.hooks.get(event) {
            for (_, hook) in hooks {
                match hook(cx.clone(), stanza).await {
                    Flow::Continue(st) => stanza = st,
                    Flow::Stop => return Flow::Stop,
                }
            }
        }
        Flow::Continue(stanza)
    }

    /// Whether some module hooks `event` (to skip work nobody would see).
    pub fn has_hooks(&self, event: &str) -> bool {
        self.regs.hooks.contains_key(event)
    }

    async fn post(self: &Arc<Self>, cx: Context, stanza: Stanza) {
        let domain = match stanza.to() {
            Some(to) => to.domain().to_string(),
            None => self.domain().to_string(),
        };
        if let Some(service) = self.regs.services.get(&domain) {
            service(cx, stanza).await;
            return;
        }
        if !self.is_local_domain(&domain) {
            self.route_remote(cx, stanza).await;
            return;
        }
        let target = Target::of(stanza.to());
        let stanza = match self
            .fire(event_name(false, stanza.kind(), target), cx.clone(), stanza)
            .await
        {
            Flow::Continue(st) => st,
            Flow::Stop => return,
        };
        let iq_type = match stanza.type_attr() {
            Some("get") => Some(IqType::Get),
            Some("set") => Some(IqType::Set),
            _ => None,
        };
        if stanza.kind() == Kind::Iq
            && target != Target::Full
            && let Some(iq_type) = iq_type
        {
            let iq_target = if target == Target::Host {
                IqTarget::Host
            } else {
                IqTarget::Account
            };
            self.dispatch_iq(cx, iq_type, iq_target, stanza).await;
            return;
        }
        self.unhandled(stanza).await;
    }

    async fn dispatch_iq(
        self: &Arc<Self>,
        cx: Context,
        iq_type: IqType,
        target: IqTarget,
        stanza: Stanza,
    ) {
        match self.call_iq(cx, iq_type, target, &stanza).await {
            Some(Ok(payload)) => self.route(stanza.iq_result(payload)).await,
            Some(Err(err)) => self.bounce(&stanza, err).await,
            None => {
                self.bounce(&stanza, Condition::ServiceUnavailable.into())
                    .await
            }
        }
    }

    /// Calls the IQ handler registered for this payload; `None` when there is none.
    pub(crate) async fn call_iq(
        self: &Arc<Self>,
        cx: Context,
        iq_type: IqType,
        target: IqTarget,
        stanza: &Stanza,
    ) -> Option<IqResult> {
        let payload = stanza.iq_payload()?;
        let key = (iq_type, target, payload.ns(), payload.name().to_string());
        let handler = self.regs.iq.get(&key)?.clone();
        Some(handler(cx, stanza.clone()).await)
    }

    /// No module took the stanza: deliver to a bound full JID, or answer as RFC 6120 §8.4 and
    /// RFC 6121 §8.5 say.
    async fn unhandled(self: &Arc<Self>, stanza: Stanza) {
        if let Some(to) = stanza.to().filter(|t| t.is_full())
            && let Some(session) = self.sessions.get(to)
        {
            self.deliver(&session, &stanza);
            return;
        }
        self.undeliverable(&stanza, Condition::ServiceUnavailable.into())
            .await
    }

    /// Answers a stanza that cannot be delivered as RFC 6120 §8.4 and RFC 6121 §8.5 say: IQ
    /// requests and normal or chat messages get `err`, anything else is dropped.
    pub(crate) async fn undeliverable(self: &Arc<Self>, stanza: &Stanza, err: StanzaError) {
        match (stanza.kind(), stanza.stanza_type()) {
            (Kind::Iq, "get" | "set") | (Kind::Message, "normal" | "chat") => {
                self.bounce(stanza, err).await
            }
            _ => {
                tracing::trace!(kind = stanza.kind().name(), to = ?stanza.to(), "dropping undeliverable stanza")
            }
        }
    }

    async fn route_remote(self: &Arc<Self>, cx: Context, stanza: Stanza) {
        if let Flow::Continue(stanza) = self.fire("route/remote", cx, stanza).await {
            self.send_remote(stanza).await;
        }
    }

    /// Sends the error reply for `stanza` back to its sender (never for errors or IQ results).
    pub async fn bounce(self: &Arc<Self>, stanza: &Stanza, err: StanzaError) {
        if let Some(reply) = stanza.error_reply(err)
            && reply.to().is_some()
        {
            Box::pin(self.route(reply)).await;
        }
    }

    /// Writes a stanza to one session (its payload serialised once for all copies). An
    /// inactive client (XEP-0352) gets it when it matters.
    pub fn deliver(&self, session: &Session, stanza: &Stanza) -> bool {
        let urgency = if session.is_inactive() {
            crate::csi::urgency(stanza)
        } else {
            crate::session::Urgency::Urgent
        };
        session.send(stanza.to_client_bytes(), urgency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iq_validation() {
        let iq = |xml: &str| Stanza::from_element(xml.parse().unwrap()).unwrap();
        assert!(
            validate_iq(&iq(
                "<iq xmlns='jabber:client' type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>"
            ))
            .is_ok()
        );
        assert!(
            validate_iq(&iq(
                "<iq xmlns='jabber:client' type='get'><ping xmlns='urn:xmpp:ping'/></iq>"
            ))
            .is_err()
        );
        assert!(validate_iq(&iq("<iq xmlns='jabber:client' type='get' id='1'/>")).is_err());
        assert!(
            validate_iq(&iq(
                "<iq xmlns='jabber:client' type='set' id='1'><a xmlns='x'/><b xmlns='x'/></iq>"
            ))
            .is_err()
        );
        assert!(
            validate_iq(&iq(
                "<iq xmlns='jabber:client' type='bogus' id='1'><a xmlns='x'/></iq>"
            ))
            .is_err()
        );
        assert!(validate_iq(&iq("<iq xmlns='jabber:client' type='result' id='1'/>")).is_ok());
    }

    #[test]
    fn targets() {
        assert_eq!(Target::of(None), Target::Bare);
        assert_eq!(
            Target::of(Some(&Jid::parse("example.com").unwrap())),
            Target::Host
        );
        assert_eq!(
            Target::of(Some(&Jid::parse("a@example.com").unwrap())),
            Target::Bare
        );
        assert_eq!(
            Target::of(Some(&Jid::parse("a@example.com/r").unwrap())),
            Target::Full
        );
    }
}
