//! XEP-0077: In-Band Registration. Creating accounts before login is off by default
//! (`allow_registration`), as public sign-up invites spam; changing one's password and removing
//! one's account after login are always available. With the invite module, a client that
//! presents a valid invitation token on its stream (XEP-0445) may register even when it is off.

use std::sync::{Arc, OnceLock};

use hearth_core::accounts::{self, AccountError};
use hearth_core::module::{
    DiscoScope, FeaturePhase, IqTarget, IqType, Module, Registrar, Spec, SupportStatus,
};
use hearth_core::router::{Context, Flow, IqResult};
use hearth_core::server::Server;
use hearth_core::stanza::{Condition, Stanza, StanzaError};
use minidom::Element;
use serde::Deserialize;

const NS: &str = "jabber:iq:register";
const NS_FEATURE: &str = "http://jabber.org/features/iq-register";

/// What registration asks of invitations (XEP-0401, XEP-0445), which the invite module
/// provides through [`InvitationGate`].
#[async_trait::async_trait]
pub trait Invitations: Send + Sync + 'static {
    /// Whether the client on this unauthenticated stream presented a valid invitation.
    fn presented(&self, stream: u64) -> bool;
    /// Before `user` is registered on `stream`: takes one use of the invitation the stream
    /// presented, if any, or refuses a username that a pending invitation reserves.
    async fn claim(
        &self,
        server: &Server,
        stream: u64,
        user: &str,
    ) -> Result<Option<Redemption>, StanzaError>;
    /// After the registration: welcomes the new account (its inviter as a contact) when it
    /// `succeeded`, else gives the use back.
    async fn settle(
        &self,
        server: &Arc<Server>,
        stream: u64,
        redemption: Redemption,
        user: &str,
        succeeded: bool,
    );
}

/// One use of an invitation, taken for a registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redemption {
    pub token: String,
    /// The invitation sets a new password for an existing account rather than creating it.
    pub reset: bool,
}

/// Where the invite module puts its [`Invitations`] (`Registrar::shared`); it loads first.
#[derive(Default)]
pub struct InvitationGate(pub OnceLock<Arc<dyn Invitations>>);

pub struct Register {
    /// Passwords live in an LDAP directory: they cannot be changed here.
    directory: bool,
    allow_registration: bool,
    invitations: Option<Arc<dyn Invitations>>,
    min_password_length: usize,
    iterations: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Let anyone create an account from their client (XEP-0077). Off: accounts are created
    /// with `hearth user add`.
    pub allow_registration: bool,
    /// Shortest password accepted from clients (registration and password change).
    pub min_password_length: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            allow_registration: false,
            min_password_length: 8,
        }
    }
}

impl Module for Register {
    const NAME: &'static str = "register";
    const SPECS: &'static [Spec] = &[Spec {
        id: "XEP-0077",
        version: "2.4",
        status: SupportStatus::Complete,
        note: "registration off by default, and open to clients presenting an invitation (XEP-0445); password change and account removal always on; no data forms",
    }];
    type Config = Config;

    fn init(cfg: Config, reg: &mut Registrar) -> anyhow::Result<Arc<Self>> {
        let directory = reg.config().auth.ldap.is_some();
        anyhow::ensure!(
            !(directory && cfg.allow_registration),
            "allow_registration cannot be on with auth.ldap: accounts come from the directory"
        );
        let invitations = reg.shared::<InvitationGate>().0.get().cloned();
        let this = Arc::new(Register {
            directory,
            allow_registration: cfg.allow_registration,
            invitations,
            min_password_length: cfg.min_password_length,
            iterations: reg.config().auth.scram_iterations,
        });
        if this.allow_registration || this.invitations.is_some() {
            reg.stream_feature(FeaturePhase::PreAuth, Element::bare("register", NS_FEATURE));
        }
        reg.feature(DiscoScope::Host, NS);
        let m = this.clone();
        reg.iq(
            IqType::Get,
            IqTarget::Unauthenticated,
            NS,
            "query",
            move |cx, _| {
                let m = m.clone();
                async move { m.form(&cx) }
            },
        );
        let m = this.clone();
        reg.iq(
            IqType::Set,
            IqTarget::Unauthenticated,
            NS,
            "query",
            move |cx, iq| {
                let m = m.clone();
                async move { m.register(&cx, &iq).await }
            },
        );
        // Removal answers and then closes the account's sessions, in that order, so it answers
        // the IQ itself instead of returning a result to the router.
        for event in ["iq/host", "iq/bare"] {
            reg.hook(event, 10, |cx, iq| async move {
                let own = match (iq.from(), iq.to()) {
                    (Some(from), Some(to)) => to.node().is_none() || to.bare() == from.bare(),
                    _ => true,
                };
                let removal = own
                    && iq.type_attr() == Some("set")
                    && iq
                        .iq_payload()
                        .is_some_and(|q| q.is("query", NS) && q.has_child("remove", NS));
                if !removal {
                    return Flow::Continue(iq);
                }
                remove_account(&cx, &iq).await;
                Flow::Stop
            });
        }
        for target in [IqTarget::Host, IqTarget::Account] {
            reg.iq(IqType::Get, target, NS, "query", |_, iq| async move {
                registered(&iq)
            });
            let m = this.clone();
            reg.iq(IqType::Set, target, NS, "query", move |cx, iq| {
                let m = m.clone();
                async move { m.change(&cx, &iq).await }
            });
        }
        Ok(this)
    }
}

fn text(name: &str, value: &str) -> Element {
    Element::builder(name, NS).append(value).build()
}

fn field(iq: &Stanza, name: &str) -> Option<String> {
    iq.iq_payload()?.get_child(name, NS).map(Element::text)
}

fn disabled() -> StanzaError {
    StanzaError::new(Condition::ServiceUnavailable).with_text(
        "in-band registration is disabled on this server; ask its administrator for an account",
    )
}

impl Register {
    /// Registration is open, or this stream presented an invitation.
    fn open_to(&self, cx: &Context) -> bool {
        self.allow_registration
            || cx
                .unauthenticated_stream()
                .zip(self.invitations.as_ref())
                .is_some_and(|(stream, invitations)| invitations.presented(stream))
    }

    fn form(&self, cx: &Context) -> IqResult {
        if !self.open_to(cx) {
            return Err(disabled());
        }
        let mut q = Element::bare("query", NS);
        q.append_child(text(
            "instructions",
            "Choose a username and password for use with this service.",
        ));
        q.append_child(Element::bare("username", NS));
        q.append_child(Element::bare("password", NS));
        Ok(Some(q))
    }

    fn check_password(&self, password: &str) -> Result<(), StanzaError> {
        if password.chars().count() < self.min_password_length {
            return Err(
                StanzaError::new(Condition::NotAcceptable).with_text(format!(
                    "the password must have at least {} characters",
                    self.min_password_length
                )),
            );
        }
        Ok(())
    }

    async fn register(&self, cx: &Context, iq: &Stanza) -> IqResult {
        if !self.open_to(cx) {
            return Err(disabled());
        }
        let (Some(user), Some(password)) = (field(iq, "username"), field(iq, "password")) else {
            return Err(StanzaError::new(Condition::NotAcceptable)
                .with_text("username and password are required"));
        };
        let user = accounts::normalise_username(cx.server.domain(), &user)
            .map_err(|e| StanzaError::new(Condition::NotAcceptable).with_text(e.to_string()))?;
        self.check_password(&password)?;
        let invitation = match (&self.invitations, cx.unauthenticated_stream()) {
            (Some(invitations), Some(stream)) => invitations
                .claim(&cx.server, stream, &user)
                .await?
                .map(|redemption| (invitations, stream, redemption)),
            _ => None,
        };
        let reset = invitation.as_ref().is_some_and(|(_, _, r)| r.reset);
        let outcome = if reset {
            accounts::set_password(cx.store(), &user, &password, self.iterations).await
        } else {
            accounts::create(cx.store(), &user, &password, self.iterations).await
        };
        if let Some((invitations, stream, redemption)) = invitation {
            invitations
                .settle(&cx.server, stream, redemption, &user, outcome.is_ok())
                .await;
        }
        match outcome {
            Ok(()) if reset => {
                tracing::info!(account = %user, "password set with an invitation");
                Ok(None)
            }
            Ok(()) => {
                tracing::info!(account = %user, "account registered in-band");
                Ok(None)
            }
            Err(AccountError::Exists) => {
                Err(StanzaError::new(Condition::Conflict).with_text("this username is taken"))
            }
            Err(e) => Err(internal(e)),
        }
    }

    /// Password change or account removal by a logged-in user (XEP-0077 §3.2, §3.3).
    async fn change(&self, cx: &Context, iq: &Stanza) -> IqResult {
        let Some(session) = cx.session() else {
            return Err(StanzaError::new(Condition::NotAllowed));
        };
        let Some(user) = session.jid.node().map(str::to_string) else {
            return Err(StanzaError::new(Condition::NotAllowed));
        };
        let (Some(name), Some(password)) = (field(iq, "username"), field(iq, "password")) else {
            return Err(StanzaError::new(Condition::BadRequest)
                .with_text("username and password are required"));
        };
        if accounts::normalise_username(cx.server.domain(), &name)
            .ok()
            .as_deref()
            != Some(user.as_str())
        {
            return Err(StanzaError::new(Condition::NotAllowed)
                .with_text("you can only change your own password"));
        }
        if self.directory {
            return Err(StanzaError::new(Condition::NotAllowed).with_text(
                "passwords are kept in the company directory (LDAP): change yours there",
            ));
        }
        self.check_password(&password)?;
        accounts::set_password(cx.store(), &user, &password, self.iterations)
            .await
            .map_err(internal)?;
        tracing::info!(account = %user, "password changed by its owner");
        Ok(None)
    }
}

/// XEP-0077 §3.3: erase the account and all its data, answer, then end its sessions.
async fn remove_account(cx: &Context, iq: &Stanza) {
    let Some(user) = cx.session().and_then(|s| s.jid.node()).map(str::to_string) else {
        cx.server
            .bounce(iq, StanzaError::new(Condition::NotAllowed))
            .await;
        return;
    };
    if let Err(e) = cx.store().delete_account(&user).await {
        cx.server.bounce(iq, internal(anyhow::anyhow!("{e}"))).await;
        return;
    }
    tracing::info!(account = %user, "account removed by its owner");
    cx.send(iq.iq_result(None)).await;
    if let Some(session) = cx.session() {
        for s in cx.server.sessions.of(session.jid.bare()) {
            s.close("not-authorized", Some("the account was removed".into()));
        }
    }
}

fn registered(iq: &Stanza) -> IqResult {
    let user = iq.from().and_then(|f| f.node()).unwrap_or_default();
    let mut q = Element::bare("query", NS);
    q.append_child(Element::bare("registered", NS));
    q.append_child(text("username", user));
    Ok(Some(q))
}

fn internal(e: impl Into<anyhow::Error>) -> StanzaError {
    tracing::error!(error = %e.into(), "account change failed");
    StanzaError::new(Condition::InternalServerError)
}
