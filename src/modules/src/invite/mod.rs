//! Invitations: easy onboarding (XEP-0401) with pre-authenticated in-band registration
//! (XEP-0445, its token being XEP-0379's). An administrator (or, if allowed, any user) creates
//! an invitation — `hearth invite create`, or the ad-hoc commands `urn:xmpp:invite#invite` and
//! `urn:xmpp:invite#create-account` — and sends its link. The landing page (`/invite/{token}`
//! on the web server) tells the invitee which app to install and offers the `xmpp:` link and a
//! QR code of it; the app connects, presents the token (`<preauth xmlns='urn:xmpp:pars:0'/>`)
//! and registers (XEP-0077), even with `allow_registration` off. An invitation from a user
//! makes them and the new account mutual contacts; someone who already has an account, here or
//! elsewhere, sends the token with a subscription request instead, which is approved on the
//! inviter's behalf (XEP-0379).

mod page;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use hearth_core::config::Config as ServerConfig;
use hearth_core::jid::Jid;
use hearth_core::module::{FeaturePhase, IqTarget, IqType, Module, Registrar, Spec, SupportStatus};
use hearth_core::router::{Context, IqResult};
use hearth_core::server::Server;
use hearth_core::stanza::{Condition, Stanza, StanzaError};
use hearth_store::{Invitation, Store, StoreError};
use minidom::Element;
use rand::Rng;
use serde::Deserialize;

use crate::adhoc::form::{DataForm, Field, FormKind, Submitted};
use crate::adhoc::{AUDIT, Command, Commands, Requester, Step};
use crate::presence::{SubscriptionApproval, SubscriptionApprover};
use crate::register::{InvitationGate, Invitations, Redemption};
use crate::roster::{Change, push};

pub use page::{qr_svg, qr_terminal};

/// The token a client presents before registering (XEP-0445) or sends with a subscription
/// request (XEP-0379).
const NS_PARS: &str = "urn:xmpp:pars:0";
/// XEP-0445's stream feature, and the one clients looked for before it (Conversations).
const NS_IBR_TOKEN: &str = "urn:xmpp:ibr-token:0";
const NS_INVITE_LEGACY: &str = "urn:xmpp:invite";
/// The ad-hoc command nodes and the result form (XEP-0401 §4, §8).
pub const NODE_INVITE: &str = "urn:xmpp:invite#invite";
pub const NODE_CREATE_ACCOUNT: &str = "urn:xmpp:invite#create-account";
const FORM_TYPE: &str = "urn:xmpp:invite#invitation";
/// Characters of a token: alphanumeric (XEP-0401 §4.1), 24 of them carry 142 random bits.
const TOKEN_LENGTH: usize = 24;
/// How long a token presented on a stream allows registering there: a client registers at
/// once, and a stream that lingers must present it again.
const PRESENTED_FOR: Duration = Duration::from_secs(30 * 60);
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Seconds an invitation stays valid unless its creator says otherwise.
    pub lifetime_secs: u64,
    /// Let every user invite a contact (`urn:xmpp:invite#invite`): the invitee may register
    /// one account, which starts with the inviter as a contact. Off: administrators only.
    pub allow_users: bool,
    /// Serve the landing page (`/invite/{token}`) on the web server, and link to it.
    pub web_page: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            lifetime_secs: 7 * 24 * 3600,
            allow_users: true,
            web_page: true,
        }
    }
}

pub struct Invite {
    cfg: Config,
    domain: String,
    /// The landing page's base URL, when the page is served.
    landing_base: Option<String>,
    /// The token each unauthenticated stream presented, and when.
    presented: Mutex<HashMap<u64, (String, Instant)>>,
}

impl Module for Invite {
    const NAME: &'static str = "invite";
    const SPECS: &'static [Spec] = &[
        Spec {
            id: "XEP-0401",
            version: "0.6.0",
            status: SupportStatus::Partial,
            note: "invite (for users unless modules.invite.allow_users is off; one use, ibr=y) and create-account (administrators; username, roster-subscription, uses, note) commands with uri, landing-url and expire results; a named invitation reserves its username; mutual subscription and roster push to the inviter on registration, or on an existing account's subscription request with the token (XEP-0379); landing page with client suggestions and a QR code, not chosen by the visitor's system; also `hearth invite`",
        },
        Spec {
            id: "XEP-0379",
            version: "0.3.3",
            status: SupportStatus::Partial,
            note: "done by the server for the inviter (as XEP-0401 has it): the preauth URI parameter (no name parameter) and the server-hosted landing page; a subscription request carrying a valid token of the recipient's own contact invitation is approved for them and takes one use of it: roster push, subscribed, then a subscription request back (as Prosody does); an unknown, expired, used-up, revoked or someone else's token is ignored and the request waits for the user",
        },
        Spec {
            id: "XEP-0445",
            version: "0.2.0",
            status: SupportStatus::Complete,
            note: "urn:xmpp:ibr-token:0 (and the older urn:xmpp:invite) stream feature; a valid token presented with preauth allows the next registration on that stream even with registration off; an unknown, expired, used-up or revoked token is item-not-found; with an LDAP directory, invitations are off",
        },
    ];
    type Config = Config;

    fn init(cfg: Config, reg: &mut Registrar) -> anyhow::Result<Arc<Self>> {
        anyhow::ensure!(
            cfg.lifetime_secs >= 60,
            "modules.invite.lifetime_secs must be at least 60"
        );
        let config = reg.config();
        let invite = Arc::new(Invite {
            domain: config.domain.clone(),
            landing_base: landing_base(config, &cfg),
            cfg,
            presented: Mutex::new(HashMap::new()),
        });
        if config.auth.ldap.is_some() {
            tracing::info!(
                "invitations are off: accounts come from the LDAP directory (auth.ldap)"
            );
            return Ok(invite);
        }
        let gate: Arc<dyn Invitations> = invite.clone();
        // Loaded before the register module, which reads the gate when it starts.
        if reg.shared::<InvitationGate>().0.set(gate).is_err() {
            anyhow::bail!("another module already provides invitations");
        }
        let approver: Arc<dyn SubscriptionApprover> = invite.clone();
        if reg
            .shared::<SubscriptionApproval>()
            .0
            .set(approver)
            .is_err()
        {
            anyhow::bail!("another module already approves subscription requests");
        }
        for ns in [NS_IBR_TOKEN, NS_INVITE_LEGACY] {
            reg.stream_feature(FeaturePhase::PreAuth, Element::bare("register", ns));
        }
        reg.iq_with(
            IqType::Set,
            IqTarget::Unauthenticated,
            NS_PARS,
            "preauth",
            &invite,
            |invite, cx, iq| async move { invite.preauth(&cx, &iq).await },
        );
        let commands = reg.shared::<Commands>();
        for kind in [Kind::Contact, Kind::Account] {
            commands.add(InviteCommand {
                kind,
                invite: invite.clone(),
            });
        }
        if invite.landing_base.is_some() {
            reg.http_routes(page::router());
        }
        reg.worker("invitation sweep", sweep);
        Ok(invite)
    }
}

/// Where the landing pages are, when served: the web server has a public address.
pub fn landing_base(config: &ServerConfig, cfg: &Config) -> Option<String> {
    let http = &config.http;
    let served = cfg.web_page && (!http.listen.is_empty() || http.external_url.is_some());
    served.then(|| http.base_url(&config.domain))
}

/// A new random token.
pub fn new_token() -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(TOKEN_LENGTH)
        .map(char::from)
        .collect()
}

/// Whether `token` can be one of ours, before asking the database.
pub fn plausible_token(token: &str) -> bool {
    token.len() == TOKEN_LENGTH && token.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The first characters of a token, to name an invitation in logs without giving it away.
pub fn token_id(token: &str) -> &str {
    token.get(..6).unwrap_or(token)
}

/// Whether an invitation can still be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Valid,
    Expired,
    UsedUp,
    Revoked,
}

impl Standing {
    pub fn of(invitation: &Invitation, now: SystemTime) -> Self {
        if invitation.revoked {
            Standing::Revoked
        } else if invitation.expires <= now {
            Standing::Expired
        } else if invitation.uses_left == 0 {
            Standing::UsedUp
        } else {
            Standing::Valid
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Standing::Valid => "valid",
            Standing::Expired => "expired",
            Standing::UsedUp => "used up",
            Standing::Revoked => "revoked",
        }
    }
}

/// The inviter of a contact invitation: one from a user that names no account, whose link
/// asks to add the inviter as a contact.
fn contact_inviter(invitation: &Invitation) -> Option<&str> {
    match (&invitation.inviter, &invitation.username) {
        (Some(inviter), None) => Some(inviter),
        _ => None,
    }
}

/// The `xmpp:` URI of an invitation (XEP-0401 §4.1, §4.5): a contact invitation names the
/// inviter (`?roster;preauth=…;ibr=y`), an account invitation the fixed username if any
/// (`?register;preauth=…`).
pub fn uri(domain: &str, invitation: &Invitation) -> String {
    let node = |user: &str| format!("{}@", crate::upload::percent_encode(user));
    match contact_inviter(invitation) {
        Some(inviter) => format!(
            "xmpp:{}{domain}?roster;preauth={};ibr=y",
            node(inviter),
            invitation.token
        ),
        None => format!(
            "xmpp:{}{domain}?register;preauth={}",
            invitation.username.as_deref().map(node).unwrap_or_default(),
            invitation.token
        ),
    }
}

/// The token a subscription request carries (XEP-0379 §3.4), if it can be one of ours.
fn subscription_token(request: &Element) -> Option<&str> {
    request
        .get_child("preauth", NS_PARS)
        .and_then(|p| p.attr("token"))
        .filter(|t| plausible_token(t))
}

/// The landing page of a token under the web server's base URL.
pub fn landing_url(base: &str, token: &str) -> String {
    format!("{base}/invite/{token}")
}

/// What to create.
#[derive(Debug, Clone)]
pub struct NewInvitation {
    /// Who asks, for the list and the audit log.
    pub creator: String,
    /// An account that becomes a mutual contact of each account registered.
    pub inviter: Option<String>,
    /// A normalised username the account must have; an existing account's makes a password
    /// reset invitation.
    pub username: Option<String>,
    pub uses: u32,
    pub lifetime: Duration,
    pub note: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("an invitation needs at least one use")]
    NoUses,
    #[error("{0} is already reserved by a pending invitation; revoke it first")]
    Reserved(String),
    #[error("the inviter {0} has no account here")]
    NoInviter(String),
    #[error(transparent)]
    Store(StoreError),
}

/// Creates an invitation (for `hearth invite` and the commands alike).
pub async fn create(store: &Store, new: NewInvitation) -> Result<Invitation, CreateError> {
    if new.uses == 0 {
        return Err(CreateError::NoUses);
    }
    let now = SystemTime::now();
    let mut reset = false;
    if let Some(username) = &new.username {
        if store
            .invitation_reserving(username, now)
            .await
            .map_err(CreateError::Store)?
            .is_some()
        {
            return Err(CreateError::Reserved(username.clone()));
        }
        reset = store
            .account_exists(username)
            .await
            .map_err(CreateError::Store)?;
    }
    let invitation = Invitation {
        token: new_token(),
        creator: new.creator,
        inviter: new.inviter,
        username: new.username,
        reset,
        created: now,
        expires: now + new.lifetime,
        max_uses: new.uses,
        uses_left: new.uses,
        revoked: false,
        note: new.note,
    };
    match store.invitation_create(&invitation).await {
        Ok(()) => Ok(invitation),
        Err(StoreError::NoSuchAccount) => Err(CreateError::NoInviter(
            invitation.inviter.unwrap_or_default(),
        )),
        Err(e) => Err(CreateError::Store(e)),
    }
}

/// Makes `a` and `b` (usernames) mutual contacts, pushing the changed items to their clients.
async fn befriend(server: &Arc<Server>, a: &str, b: &str) -> anyhow::Result<()> {
    let domain = server.domain();
    for (user, contact) in [(a, b), (b, a)] {
        let contact_jid = format!("{contact}@{domain}");
        let current = server.store.roster_item(user, &contact_jid).await?;
        let Some(item) =
            crate::groups::mutual_item(current.as_ref(), &contact_jid, &BTreeSet::new())
        else {
            continue;
        };
        let version = server.store.roster_put(user, &item).await?;
        let user_jid = Jid::parse(&format!("{user}@{domain}"))?;
        push(server, &user_jid, Change::Item(&item), version).await;
    }
    Ok(())
}

fn storage_error(e: StoreError) -> StanzaError {
    tracing::error!(error = %e, "invitations: the database failed");
    StanzaError::new(Condition::InternalServerError)
        .with_text("the database failed; see the server log")
}

/// XEP-0445: the token is unknown, expired, used up or revoked.
fn not_valid() -> StanzaError {
    StanzaError::new(Condition::ItemNotFound)
        .with_text("this invitation is not valid: it may have expired, been used up or revoked")
}

impl Invite {
    /// XEP-0445 §3: a client presents a token before registering on its stream.
    async fn preauth(&self, cx: &Context, iq: &Stanza) -> IqResult {
        let Some(stream) = cx.unauthenticated_stream() else {
            return Err(StanzaError::new(Condition::BadRequest)
                .with_text("an invitation token is presented before logging in"));
        };
        let token = iq
            .iq_payload()
            .and_then(|p| p.attr("token"))
            .filter(|t| plausible_token(t))
            .ok_or_else(not_valid)?;
        let invitation = cx.store().invitation(token).await.map_err(storage_error)?;
        let standing = invitation
            .as_ref()
            .map(|i| Standing::of(i, SystemTime::now()));
        if standing != Some(Standing::Valid) {
            tracing::info!(
                invitation = token_id(token),
                standing = standing.map_or("unknown", Standing::describe),
                "a client presented an invitation that is not valid"
            );
            return Err(not_valid());
        }
        let mut presented = self.presented.lock().expect("presented lock");
        presented.retain(|_, (_, at)| at.elapsed() < PRESENTED_FOR);
        presented.insert(stream, (token.to_string(), Instant::now()));
        Ok(None)
    }

    fn presented_token(&self, stream: u64) -> Option<String> {
        let presented = self.presented.lock().expect("presented lock");
        presented
            .get(&stream)
            .filter(|(_, at)| at.elapsed() < PRESENTED_FOR)
            .map(|(token, _)| token.clone())
    }

    /// The invitation's `xmpp:` URI, landing page and expiry as XEP-0401's result form.
    fn result_form(&self, invitation: &Invitation) -> DataForm {
        let text = |var: &str, label: &str, value: String| {
            Field::new("text-single", var, label).value(value)
        };
        let mut form = DataForm::new(FormKind::Result, FORM_TYPE).field(text(
            "uri",
            "Invitation link for XMPP apps",
            uri(&self.domain, invitation),
        ));
        if let Some(base) = &self.landing_base {
            form = form.field(text(
                "landing-url",
                "Invitation page to send",
                landing_url(base, &invitation.token),
            ));
        }
        form.field(text(
            "expire",
            "Valid until",
            hearth_core::datetime::format(invitation.expires),
        ))
    }
}

#[async_trait::async_trait]
impl Invitations for Invite {
    fn presented(&self, stream: u64) -> bool {
        self.presented_token(stream).is_some()
    }

    async fn claim(
        &self,
        server: &Server,
        stream: u64,
        user: &str,
    ) -> Result<Option<Redemption>, StanzaError> {
        let store = &server.store;
        let now = SystemTime::now();
        let reserved = store
            .invitation_reserving(user, now)
            .await
            .map_err(storage_error)?
            .is_some();
        let reserved_error = || {
            StanzaError::new(Condition::Conflict)
                .with_text("this username is reserved for an invitation")
        };
        let Some(token) = self.presented_token(stream) else {
            return if reserved {
                Err(reserved_error())
            } else {
                Ok(None)
            };
        };
        let invitation = store
            .invitation(&token)
            .await
            .map_err(storage_error)?
            .ok_or_else(not_valid)?;
        match &invitation.username {
            Some(fixed) if fixed != user => {
                return Err(StanzaError::new(Condition::NotAcceptable)
                    .with_text(format!("this invitation is for the username {fixed}")));
            }
            None if reserved => return Err(reserved_error()),
            _ => {}
        }
        if !store
            .invitation_take_use(&token, now)
            .await
            .map_err(storage_error)?
        {
            return Err(not_valid());
        }
        Ok(Some(Redemption {
            token,
            reset: invitation.reset,
        }))
    }

    async fn settle(
        &self,
        server: &Arc<Server>,
        stream: u64,
        redemption: Redemption,
        user: &str,
        succeeded: bool,
    ) {
        let store = &server.store;
        let id = token_id(&redemption.token);
        if !succeeded {
            if let Err(e) = store.invitation_give_back_use(&redemption.token).await {
                tracing::error!(invitation = id, error = %e, "a use of an invitation could not be given back after a failed registration");
            }
            return;
        }
        // The next registration on this stream needs a token again.
        self.presented
            .lock()
            .expect("presented lock")
            .remove(&stream);
        let account = format!("{user}@{}", server.domain());
        let done = match redemption.reset {
            true => "password reset with an invitation",
            false => "account registered with an invitation",
        };
        tracing::info!(target: AUDIT, %account, invitation = id, "{done}");
        let inviter = match store.invitation(&redemption.token).await {
            Ok(invitation) => invitation.and_then(|i| i.inviter),
            Err(e) => {
                tracing::error!(invitation = id, error = %e, "the invitation could not be read; its inviter is not added as a contact");
                None
            }
        };
        if let Some(inviter) = inviter.filter(|i| i != user)
            && let Err(e) = befriend(server, &inviter, user).await
        {
            tracing::error!(%account, %inviter, error = %e, "the inviter and the new account could not be made contacts");
        }
    }
}

#[async_trait::async_trait]
impl SubscriptionApprover for Invite {
    /// XEP-0379 §3.5: a token of the user's own contact invitation approves the request, and
    /// takes one of its uses, as a registration would.
    async fn approves(&self, server: &Server, user: &str, contact: &Jid, request: &Stanza) -> bool {
        let Some(token) = subscription_token(request.element()) else {
            return false;
        };
        // An inviter who opens their own link has nobody to befriend.
        if contact.node() == Some(user) && contact.domain() == server.domain() {
            return false;
        }
        let store = &server.store;
        let invitation = match store.invitation(token).await {
            Ok(invitation) => invitation,
            Err(e) => {
                tracing::error!(error = %e, "invitations: the database failed; the subscription request waits for the user");
                return false;
            }
        };
        let account = format!("{user}@{}", server.domain());
        let id = token_id(token);
        // A token of someone else's invitation gets the request no further than none would.
        let Some(invitation) = invitation.filter(|i| contact_inviter(i) == Some(user)) else {
            tracing::debug!(%account, %contact, invitation = id, "a subscription request carried a token of no contact invitation of its recipient");
            return false;
        };
        let now = SystemTime::now();
        match store.invitation_take_use(token, now).await {
            Ok(true) => {
                tracing::info!(target: AUDIT, %account, %contact, invitation = id, "subscription approved with an invitation");
                true
            }
            Ok(false) => {
                tracing::info!(%account, %contact, invitation = id, standing = Standing::of(&invitation, now).describe(), "a subscription request carried an invitation that is not valid; it waits for the user");
                false
            }
            Err(e) => {
                tracing::error!(%account, invitation = id, error = %e, "a use of an invitation could not be taken; the subscription request waits for the user");
                false
            }
        }
    }
}

/// Removes expired invitations every hour.
async fn sweep(server: Arc<Server>) -> anyhow::Result<()> {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        match server.store.invitations_expire(SystemTime::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(removed = n, "expired invitations removed"),
            Err(e) => {
                tracing::error!(error = %e, "expired invitations could not be removed; retrying in an hour")
            }
        }
    }
}

/// XEP-0401's two commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `invite`: the requester invites a contact, who may register one account.
    Contact,
    /// `create-account`: an administrator invites someone to register an account.
    Account,
}

struct InviteCommand {
    kind: Kind,
    invite: Arc<Invite>,
}

impl InviteCommand {
    fn account_form() -> DataForm {
        DataForm::new(FormKind::Form, FORM_TYPE)
            .title("Create an account invitation")
            .instructions(
                "Send the invitation page to the person you invite: their app registers the account, with a password only they know. Leave the username empty to let them choose.",
            )
            .field(Field::new("text-single", "username", "Username"))
            .field(
                Field::new("boolean", "roster-subscription", "Add me as their contact")
                    .value("0"),
            )
            .field(Field::new("text-single", "uses", "Number of accounts it creates").value("1"))
            .field(Field::new("text-single", "note", "Note (for whom, why)"))
    }

    /// The invitation an `create-account` form asks for.
    fn account_request(
        &self,
        server: &Server,
        requester: &Requester,
        form: &Submitted,
    ) -> Result<NewInvitation, String> {
        let username = form
            .first("username")
            .map(|u| hearth_core::accounts::normalise_username(server.domain(), u.trim()))
            .transpose()
            .map_err(|e| e.to_string())?;
        let uses = match form.first("uses") {
            None => 1,
            Some(n) => n
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or("the number of accounts must be a whole number, at least 1")?,
        };
        let subscribe = matches!(form.first("roster-subscription"), Some("1" | "true"));
        let inviter = match (subscribe, requester) {
            (false, _) => None,
            (true, Requester::Account(jid)) => jid.node().map(str::to_string),
            (true, Requester::Console { .. }) => {
                return Err("only an account can be added as a contact".into());
            }
        };
        Ok(NewInvitation {
            creator: requester.to_string(),
            inviter,
            username,
            uses,
            lifetime: Duration::from_secs(self.invite.cfg.lifetime_secs),
            note: form.first("note").map(str::to_string),
        })
    }
}

#[async_trait::async_trait]
impl Command for InviteCommand {
    fn node(&self) -> &str {
        match self.kind {
            Kind::Contact => NODE_INVITE,
            Kind::Account => NODE_CREATE_ACCOUNT,
        }
    }

    fn name(&self) -> &str {
        match self.kind {
            Kind::Contact => "Invite a contact",
            Kind::Account => "Create an account invitation",
        }
    }

    fn allowed(&self, server: &Server, requester: &Requester) -> bool {
        match (self.kind, requester) {
            // A contact invitation needs an account of this server to befriend.
            (Kind::Contact, Requester::Account(jid)) => {
                jid.domain() == server.domain()
                    && (self.invite.cfg.allow_users || server.is_admin(jid))
            }
            (Kind::Contact, Requester::Console { .. }) => false,
            (Kind::Account, requester) => requester.is_admin(server),
        }
    }

    async fn run(
        &self,
        server: &Arc<Server>,
        requester: &Requester,
        submitted: &[Submitted],
    ) -> Result<Step, StanzaError> {
        let request = match (self.kind, submitted.first()) {
            (Kind::Account, None) => return Ok(Step::ask(Self::account_form())),
            (Kind::Account, Some(form)) => match self.account_request(server, requester, form) {
                Ok(request) => request,
                Err(why) => return Ok(Step::failed(why)),
            },
            (Kind::Contact, _) => {
                let Requester::Account(jid) = requester else {
                    return Err(StanzaError::new(Condition::Forbidden));
                };
                NewInvitation {
                    creator: requester.to_string(),
                    inviter: jid.node().map(str::to_string),
                    username: None,
                    uses: 1,
                    lifetime: Duration::from_secs(self.invite.cfg.lifetime_secs),
                    note: None,
                }
            }
        };
        match create(&server.store, request).await {
            Ok(invitation) => {
                tracing::info!(
                    target: AUDIT,
                    by = %requester,
                    invitation = token_id(&invitation.token),
                    username = invitation.username.as_deref().unwrap_or(""),
                    uses = invitation.max_uses,
                    reset = invitation.reset,
                    "invitation created"
                );
                Ok(Step::result(self.invite.result_form(&invitation)))
            }
            Err(CreateError::Store(e)) => Err(storage_error(e)),
            Err(e) => Ok(Step::failed(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invitation(inviter: Option<&str>, username: Option<&str>) -> Invitation {
        let now = SystemTime::now();
        Invitation {
            token: "T0k3n".into(),
            creator: "console".into(),
            inviter: inviter.map(Into::into),
            username: username.map(Into::into),
            reset: false,
            created: now,
            expires: now + Duration::from_secs(60),
            max_uses: 1,
            uses_left: 1,
            revoked: false,
            note: None,
        }
    }

    #[test]
    fn tokens_are_random_alphanumeric_and_checked_before_the_database() {
        let a = new_token();
        assert_eq!(a.len(), TOKEN_LENGTH);
        assert!(plausible_token(&a));
        assert_ne!(a, new_token());
        assert!(!plausible_token(&a[1..]), "too short");
        assert!(
            !plausible_token(&format!("{}-", &a[1..])),
            "not alphanumeric"
        );
        assert!(!plausible_token("' OR 1=1 --abcdefghijklm"));
        assert_eq!(token_id(&a), &a[..6]);
    }

    #[test]
    fn uris_follow_xep_0401() {
        assert_eq!(
            uri("example.org", &invitation(None, None)),
            "xmpp:example.org?register;preauth=T0k3n"
        );
        assert_eq!(
            uri("example.org", &invitation(None, Some("juliet"))),
            "xmpp:juliet@example.org?register;preauth=T0k3n"
        );
        assert_eq!(
            uri("example.org", &invitation(Some("romeo"), None)),
            "xmpp:romeo@example.org?roster;preauth=T0k3n;ibr=y"
        );
        // A named account invitation from an inviter registers that name.
        assert_eq!(
            uri("example.org", &invitation(Some("romeo"), Some("juliet"))),
            "xmpp:juliet@example.org?register;preauth=T0k3n"
        );
        // Characters that would end the local part are percent-encoded.
        assert_eq!(
            uri("example.org", &invitation(None, Some("a?b#c"))),
            "xmpp:a%3Fb%23c@example.org?register;preauth=T0k3n"
        );
        assert_eq!(
            landing_url("https://example.org", "T0k3n"),
            "https://example.org/invite/T0k3n"
        );
    }

    #[test]
    fn subscription_requests_carry_a_token_in_preauth() {
        let token = new_token();
        let request = |child: &str| {
            format!("<presence xmlns='jabber:client' type='subscribe'>{child}</presence>")
                .parse::<Element>()
                .unwrap()
        };
        let with = request(&format!("<preauth xmlns='{NS_PARS}' token='{token}'/>"));
        assert_eq!(subscription_token(&with), Some(token.as_str()));
        for without in [
            String::new(),
            format!("<preauth xmlns='urn:example' token='{token}'/>"),
            format!("<preauth xmlns='{NS_PARS}'/>"),
            format!("<preauth xmlns='{NS_PARS}' token='not a token'/>"),
        ] {
            assert_eq!(subscription_token(&request(&without)), None, "{without}");
        }
    }

    #[test]
    fn only_a_contact_invitation_has_an_inviter_to_subscribe_to() {
        assert_eq!(
            contact_inviter(&invitation(Some("romeo"), None)),
            Some("romeo")
        );
        assert_eq!(
            contact_inviter(&invitation(Some("romeo"), Some("juliet"))),
            None
        );
        assert_eq!(contact_inviter(&invitation(None, None)), None);
    }

    #[test]
    fn standing_of_an_invitation() {
        let now = SystemTime::now();
        let valid = invitation(None, None);
        assert_eq!(Standing::of(&valid, now), Standing::Valid);
        let used = Invitation {
            uses_left: 0,
            ..valid.clone()
        };
        assert_eq!(Standing::of(&used, now), Standing::UsedUp);
        let later = now + Duration::from_secs(61);
        assert_eq!(Standing::of(&valid, later), Standing::Expired);
        let revoked = Invitation {
            revoked: true,
            ..valid
        };
        assert_eq!(Standing::of(&revoked, now), Standing::Revoked);
    }
}
