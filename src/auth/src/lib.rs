//! hearth-auth: server-side SASL for client logins (the stream layer drives it), and logins
//! against an LDAP directory (`ldap`).
//!
//! SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802, RFC 7677) with their -PLUS variants bound to
//! `tls-exporter` (RFC 9266) or `tls-server-end-point` (RFC 5929), PLAIN (RFC 4616) for use
//! inside TLS only, and the HT-SHA-256 token mechanisms of FAST (XEP-0484). Our own small
//! implementation on RustCrypto: the requested `sasl` crate is client-side (its server needs
//! the salted password, knows only tls-unique and compares proofs in variable time) and
//! rsasl's synchronous callbacks fit an async credential store badly. Passwords are never
//! stored: only SCRAM keys (and FAST tokens, which are random secrets of their own).

mod ht;
pub mod ldap;
mod scram;
mod throttle;

use std::borrow::Cow;

pub use hearth_store::{Credentials, ScramKeys};
pub use ht::{HtMechanism, generate_token, offered_ht, parse_initial};
pub use scram::derive_credentials;
pub use throttle::Throttle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    ScramSha256Plus,
    ScramSha1Plus,
    ScramSha256,
    ScramSha1,
    Plain,
}

impl Mechanism {
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::ScramSha256Plus => "SCRAM-SHA-256-PLUS",
            Mechanism::ScramSha1Plus => "SCRAM-SHA-1-PLUS",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha1 => "SCRAM-SHA-1",
            Mechanism::Plain => "PLAIN",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::ScramSha256Plus,
            Self::ScramSha1Plus,
            Self::ScramSha256,
            Self::ScramSha1,
            Self::Plain,
        ]
        .into_iter()
        .find(|m| m.name() == name)
    }

    fn is_plus(self) -> bool {
        matches!(self, Mechanism::ScramSha256Plus | Mechanism::ScramSha1Plus)
    }

    fn hash(self) -> Option<scram::Hash> {
        match self {
            Mechanism::ScramSha256Plus | Mechanism::ScramSha256 => Some(scram::Hash::Sha256),
            Mechanism::ScramSha1Plus | Mechanism::ScramSha1 => Some(scram::Hash::Sha1),
            Mechanism::Plain => None,
        }
    }
}

/// Channel-binding data of the TLS connection the exchange runs on.
#[derive(Debug, Clone, Default)]
pub struct ChannelBindings {
    pub tls_exporter: Option<Vec<u8>>,
    pub tls_server_end_point: Option<Vec<u8>>,
}

impl ChannelBindings {
    /// Types to advertise with XEP-0440, strongest first.
    pub fn type_names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.tls_exporter.is_some() {
            names.push("tls-exporter");
        }
        if self.tls_server_end_point.is_some() {
            names.push("tls-server-end-point");
        }
        names
    }

    fn data(&self, name: &str) -> Option<&[u8]> {
        match name {
            "tls-exporter" => self.tls_exporter.as_deref(),
            "tls-server-end-point" => self.tls_server_end_point.as_deref(),
            _ => None,
        }
    }

    fn any(&self) -> bool {
        self.tls_exporter.is_some() || self.tls_server_end_point.is_some()
    }
}

/// Where passwords are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordCheck {
    /// Against the stored SCRAM keys; PLAIN offered if allowed.
    Stored { allow_plain: bool },
    /// By a directory (LDAP), which needs the password itself: PLAIN only.
    Directory,
}

/// Mechanisms to advertise, strongest first: -PLUS only with channel-binding data, PLAIN only
/// if allowed (the caller offers SASL only inside TLS).
pub fn offered_mechanisms(cb: &ChannelBindings, check: PasswordCheck) -> Vec<Mechanism> {
    let allow_plain = match check {
        PasswordCheck::Directory => return vec![Mechanism::Plain],
        PasswordCheck::Stored { allow_plain } => allow_plain,
    };
    let mut out = Vec::with_capacity(5);
    if cb.any() {
        out.extend([Mechanism::ScramSha256Plus, Mechanism::ScramSha1Plus]);
    }
    out.extend([Mechanism::ScramSha256, Mechanism::ScramSha1]);
    if allow_plain {
        out.push(Mechanism::Plain);
    }
    out
}

/// What the exchange needs next.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Look up the account's stored credentials and call `SaslServer::credentials` (for every
    /// mechanism, PLAIN included: the password is checked inside against the stored keys).
    NeedCredentials { username: String },
    /// Send `<challenge/>` with this payload.
    Challenge(Vec<u8>),
    /// Send `<success/>` (with the SCRAM server-final message as additional data).
    Success {
        username: String,
        additional: Option<Vec<u8>>,
    },
}

/// SASL failure conditions (RFC 6120 §6.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    Aborted,
    AccountDisabled,
    CredentialsExpired,
    EncryptionRequired,
    IncorrectEncoding,
    InvalidAuthzid,
    InvalidMechanism,
    MalformedRequest,
    MechanismTooWeak,
    NotAuthorized,
    TemporaryAuthFailure,
}

impl Condition {
    pub fn element_name(self) -> &'static str {
        match self {
            Condition::Aborted => "aborted",
            Condition::AccountDisabled => "account-disabled",
            Condition::CredentialsExpired => "credentials-expired",
            Condition::EncryptionRequired => "encryption-required",
            Condition::IncorrectEncoding => "incorrect-encoding",
            Condition::InvalidAuthzid => "invalid-authzid",
            Condition::InvalidMechanism => "invalid-mechanism",
            Condition::MalformedRequest => "malformed-request",
            Condition::MechanismTooWeak => "mechanism-too-weak",
            Condition::NotAuthorized => "not-authorized",
            Condition::TemporaryAuthFailure => "temporary-auth-failure",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslFailure {
    pub condition: Condition,
    pub text: Option<&'static str>,
    /// The account the attempt named, when known (for throttling and logs).
    pub username: Option<String>,
}

impl std::fmt::Display for SaslFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.condition.element_name())?;
        match self.text {
            Some(t) => write!(f, ": {t}"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for SaslFailure {}

impl SaslFailure {
    fn new(condition: Condition, text: &'static str) -> Self {
        Self {
            condition,
            text: Some(text),
            username: None,
        }
    }

    fn malformed(text: &'static str) -> Self {
        Self::new(Condition::MalformedRequest, text)
    }

    /// Names the account the attempt was for (throttling counts it).
    pub fn for_user(mut self, username: &str) -> Self {
        self.username = Some(username.to_string());
        self
    }
}

enum State {
    Start,
    /// An empty `<auth/>` was answered with an empty challenge; the next response is the
    /// client's first message.
    AwaitingInitial,
    PlainCredentials {
        username: String,
        password: String,
    },
    ScramCredentials(scram::ClientFirst),
    ScramFinal(scram::ServerFirst),
    Done,
}

/// One authentication exchange.
///
/// Every mechanism goes through `Step::NeedCredentials`: the caller's loop is the same for
/// SCRAM and PLAIN, and only this crate ever sees a PLAIN password (it is checked against the
/// stored SCRAM keys in `credentials()`, or by the directory in `check_with_directory()`, and
/// dropped).
pub struct SaslServer {
    mech: Mechanism,
    cb: ChannelBindings,
    state: State,
    /// Fixed server nonce, for the RFC test vectors.
    #[cfg(test)]
    fixed_nonce: Option<&'static str>,
}

impl SaslServer {
    pub fn new(mech: Mechanism, cb: ChannelBindings) -> Self {
        Self {
            mech,
            cb,
            state: State::Start,
            #[cfg(test)]
            fixed_nonce: None,
        }
    }

    /// The first client message (the `<auth/>` payload, decoded; empty when none was sent).
    pub fn start(&mut self, initial: &[u8]) -> Result<Step, SaslFailure> {
        if !matches!(self.state, State::Start) {
            self.state = State::Done;
            return Err(SaslFailure::malformed("exchange already started"));
        }
        if initial.is_empty() {
            // Both mechanisms are client-first: an empty challenge asks for the initial response.
            self.state = State::AwaitingInitial;
            return Ok(Step::Challenge(Vec::new()));
        }
        self.first_message(initial)
    }

    fn first_message(&mut self, data: &[u8]) -> Result<Step, SaslFailure> {
        self.state = State::Done;
        let text = std::str::from_utf8(data)
            .map_err(|_| SaslFailure::new(Condition::IncorrectEncoding, "not UTF-8"))?;
        match self.mech.hash() {
            None => {
                let (username, password) = parse_plain(text)?;
                self.state = State::PlainCredentials {
                    username: username.clone(),
                    password,
                };
                Ok(Step::NeedCredentials { username })
            }
            Some(hash) => {
                let first = scram::ClientFirst::parse(text, hash, self.mech.is_plus(), &self.cb)?;
                let username = first.username.clone();
                self.state = State::ScramCredentials(first);
                Ok(Step::NeedCredentials { username })
            }
        }
    }

    /// The stored credentials of the account named in the exchange (`None`: no such account).
    pub fn credentials(&mut self, creds: Option<&Credentials>) -> Result<Step, SaslFailure> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::PlainCredentials { username, password } => {
                // Unknown accounts are checked against decoy keys: the same PBKDF2 work, so
                // response time does not tell whether the account exists.
                let (keys, exists) = scram::keys_for(scram::Hash::Sha256, creds, &username);
                if scram::verify_prepared(&keys, scram::Hash::Sha256, &password) && exists {
                    Ok(Step::Success {
                        username,
                        additional: None,
                    })
                } else {
                    Err(
                        SaslFailure::new(Condition::NotAuthorized, "wrong username or password")
                            .for_user(&username),
                    )
                }
            }
            State::ScramCredentials(first) => {
                let nonce = self.server_nonce();
                let (server_first, challenge) = first.answer(creds, &nonce);
                self.state = State::ScramFinal(server_first);
                Ok(Step::Challenge(challenge))
            }
            _ => Err(SaslFailure::malformed("no credentials were asked for")),
        }
    }

    /// Checks the PLAIN password of the exchange with the directory, instead of `credentials`.
    pub async fn check_with_directory(
        &mut self,
        directory: &ldap::Directory,
    ) -> Result<Step, SaslFailure> {
        let State::PlainCredentials { username, password } =
            std::mem::replace(&mut self.state, State::Done)
        else {
            return Err(SaslFailure::malformed(
                "only PLAIN passwords are checked by the directory",
            ));
        };
        match directory.login(&username, &password).await {
            Ok(true) => Ok(Step::Success {
                username,
                additional: None,
            }),
            Ok(false) => Err(SaslFailure::new(
                Condition::NotAuthorized,
                "wrong username or password",
            )
            .for_user(&username)),
            Err(e) => {
                tracing::warn!(account = %username, error = %e, "login failed: the directory did not answer");
                Err(SaslFailure::new(
                    Condition::TemporaryAuthFailure,
                    "the user directory cannot be reached; try again later",
                )
                .for_user(&username))
            }
        }
    }

    /// A further client response (`<response/>` payload, decoded).
    pub fn step(&mut self, response: &[u8]) -> Result<Step, SaslFailure> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::AwaitingInitial if !response.is_empty() => self.first_message(response),
            State::ScramFinal(server_first) => {
                let text = std::str::from_utf8(response).map_err(|_| {
                    SaslFailure::new(Condition::IncorrectEncoding, "not UTF-8")
                        .for_user(server_first.username())
                })?;
                let (username, server_final) = server_first.verify(text)?;
                Ok(Step::Success {
                    username,
                    additional: Some(server_final),
                })
            }
            _ => Err(SaslFailure::malformed("unexpected response")),
        }
    }

    #[cfg(not(test))]
    fn server_nonce(&self) -> String {
        scram::new_nonce()
    }

    #[cfg(test)]
    fn server_nonce(&self) -> String {
        self.fixed_nonce
            .map_or_else(scram::new_nonce, str::to_string)
    }
}

/// SASLprep (RFC 4013) of a username or password.
fn saslprep(s: &str) -> Result<Cow<'_, str>, SaslFailure> {
    stringprep::saslprep(s)
        .map_err(|_| SaslFailure::malformed("name or password not allowed by SASLprep"))
}

/// `authzid NUL authcid NUL passwd` (RFC 4616).
fn parse_plain(text: &str) -> Result<(String, String), SaslFailure> {
    let mut parts = text.split('\0');
    let (Some(authzid), Some(authcid), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslFailure::malformed(
            "PLAIN needs authzid, authcid and password",
        ));
    };
    let username = saslprep(authcid)?.to_string();
    if username.is_empty() {
        return Err(SaslFailure::malformed("empty username"));
    }
    check_authzid(authzid, &username)?;
    let password = saslprep(password)
        .map_err(|f| f.for_user(&username))?
        .into_owned();
    if password.is_empty() {
        return Err(
            SaslFailure::new(Condition::NotAuthorized, "empty password").for_user(&username)
        );
    }
    Ok((username, password))
}

/// Acting for another identity is not offered: an authzid must name the authenticating account,
/// as the bare name or its bare JID. The domain is not checked here (this crate does not know
/// it); the session is bound to the account on this server either way.
fn check_authzid(authzid: &str, username: &str) -> Result<(), SaslFailure> {
    if authzid.is_empty() {
        return Ok(());
    }
    let local = match authzid.split_once('@') {
        Some((local, domain)) if !domain.is_empty() && !domain.contains('/') => local,
        Some(_) => "",
        None => authzid,
    };
    // JID localparts are case-insensitive (RFC 7622 §3.3).
    if local.eq_ignore_ascii_case(username) {
        Ok(())
    } else {
        Err(SaslFailure::new(
            Condition::InvalidAuthzid,
            "authorization identity differs from the account",
        )
        .for_user(username))
    }
}

/// Checks a password against stored SCRAM keys (PLAIN logins, account tools): SASLprep it,
/// recompute StoredKey, compare in constant time.
pub fn verify_plain(creds: &Credentials, password: &str) -> bool {
    saslprep(password).is_ok_and(|p| scram::verify_prepared(&creds.sha256, scram::Hash::Sha256, &p))
}

#[cfg(test)]
mod tests;
