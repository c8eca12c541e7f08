//! FAST (XEP-0484): a client that logged in with its password asks for a token inside SASL2,
//! and from then on logs in with one HT-SHA-256 message, so a phone reconnects after a network
//! switch in a single round trip. Tokens belong to one account and one client (the SASL2
//! user-agent id) and rotate through two slots (see `hearth_store::FastToken`).

use hearth_auth::{Condition, HtMechanism, SaslFailure};
use hearth_store::FastToken;
use minidom::Element;

use super::{Action, Conn, End, decode_sasl, sasl2};
use crate::datetime;
use crate::jid::Jid;

pub(super) const NS: &str = "urn:xmpp:fast:0";

impl Conn {
    /// `<fast/>` for the SASL2 `<inline/>`: the HT mechanisms this connection can bind to.
    pub(super) fn fast_feature(&self) -> Option<Element> {
        if !self.server.fast_enabled() {
            return None;
        }
        let mut fast = Element::bare("fast", NS);
        for m in hearth_auth::offered_ht(&self.cb) {
            fast.append_child(Element::builder("mechanism", NS).append(m.name()).build());
        }
        Some(fast)
    }

    /// The HT mechanism named, if FAST is on and this connection offers it.
    pub(super) fn fast_mechanism(&self, name: Option<&str>) -> Option<HtMechanism> {
        let m = HtMechanism::from_name(name?)?;
        (self.server.fast_enabled() && hearth_auth::offered_ht(&self.cb).contains(&m)).then_some(m)
    }

    /// A SASL2 `<authenticate/>` with an HT mechanism: checks the proof against the client's
    /// tokens (the fresh one first), records the use, and succeeds with the server's proof,
    /// rotating the token when half its lifetime has passed.
    pub(super) async fn fast_authenticate(
        &mut self,
        mech: HtMechanism,
        authenticate: &Element,
    ) -> Result<Action, End> {
        let failure = |condition, text| SaslFailure {
            condition,
            text: Some(text),
            username: None,
        };
        let initial = authenticate
            .get_child("initial-response", sasl2::NS)
            .and_then(|r| decode_sasl(&r.text()));
        let Some((username, proof)) = initial.as_deref().and_then(hearth_auth::parse_initial)
        else {
            let text = "an HT initial response is the account name, a NUL byte and the proof";
            return self
                .sasl_step(Err(failure(Condition::MalformedRequest, text)))
                .await;
        };
        let Some(node) = self.account(&username) else {
            let text = "not a valid account name";
            return self
                .sasl_step(Err(failure(Condition::NotAuthorized, text)))
                .await;
        };
        let Some(client) = client_id(authenticate) else {
            let text = "FAST needs the SASL2 user-agent id the token was issued to";
            return self
                .sasl_step(Err(failure(Condition::NotAuthorized, text)))
                .await;
        };
        if self.throttled(Some(&node)) {
            return Ok(Action::Continue);
        }
        let tokens = match self.server.store.fast_tokens(&node, client).await {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "FAST token look-up failed");
                let text = "the token store is unavailable; try again";
                return self
                    .sasl_step(Err(failure(Condition::TemporaryAuthFailure, text)))
                    .await;
            }
        };
        let now = datetime::now_millis() / 1000;
        let matched = tokens
            .into_iter()
            .find(|t| t.mechanism == mech.name() && mech.verify(&t.token, &self.cb, proof));
        let token = match matched {
            Some(t) if t.expiry > now => t,
            expired => {
                let (condition, text) = match expired {
                    Some(_) => (
                        Condition::CredentialsExpired,
                        "the token expired; log in with the password",
                    ),
                    None => (
                        Condition::NotAuthorized,
                        "unknown or ended token; log in with the password",
                    ),
                };
                return self
                    .sasl_step(Err(failure(condition, text).for_user(&node)))
                    .await;
            }
        };
        if self.refuse_if_disabled(&node).await {
            return Ok(Action::Continue);
        }
        let invalidate = authenticate
            .get_child("fast", NS)
            .and_then(|f| f.attr("invalidate"))
            .is_some_and(|v| v == "1" || v == "true");
        if let Err(e) = self
            .server
            .store
            .fast_used(&node, client, token.fresh, invalidate)
            .await
        {
            tracing::error!(error = %e, "recording a FAST token's use failed");
            let text = "the token store is unavailable; try again";
            return self
                .sasl_step(Err(failure(Condition::TemporaryAuthFailure, text)))
                .await;
        }
        let lifetime = self.server.config.auth.fast.token_lifetime_secs as i64;
        let rotate = (!invalidate && token.expiry - now <= lifetime / 2).then_some(mech);
        self.server.throttle.record_success(&node);
        tracing::info!(account = %node, ip = %self.peer.ip(), mechanism = mech.name(), invalidate, "authenticated");
        let responder = mech.responder(&token.token, &self.cb);
        let authenticate = self
            .sasl2
            .take()
            .map_or_else(|| authenticate.clone(), |a| *a);
        self.sasl2_success(node, Some(responder), authenticate, rotate)
            .await
    }

    /// The `<token/>` for a SASL2 success: issued when the client requested one with a
    /// mechanism we offer, or when the token it used is due for rotation. Empty otherwise.
    pub(super) async fn fast_token(
        &self,
        account: &Jid,
        authenticate: &Element,
        rotate: Option<HtMechanism>,
    ) -> String {
        let requested = authenticate
            .get_child("request-token", NS)
            .and_then(|r| self.fast_mechanism(r.attr("mechanism")));
        let (Some(mech), Some(node)) = (requested.or(rotate), account.node()) else {
            return String::new();
        };
        let Some(client) = client_id(authenticate) else {
            tracing::info!(account = %node, "FAST token requested without a SASL2 user-agent id; none issued");
            return String::new();
        };
        let lifetime = self.server.config.auth.fast.token_lifetime_secs;
        let token = FastToken {
            mechanism: mech.name().to_string(),
            token: hearth_auth::generate_token(),
            expiry: datetime::now_millis() / 1000 + lifetime as i64,
            fresh: true,
        };
        let element = format!(
            "<token xmlns='{NS}' expiry='{}' token='{}'/>",
            datetime::format_millis(token.expiry * 1000),
            token.token
        );
        match self.server.store.fast_issue(node, client, token).await {
            Ok(()) => element,
            Err(e) => {
                tracing::error!(error = %e, "storing a FAST token failed; none issued");
                String::new()
            }
        }
    }

    /// The normalised local part of the account `username` names on this server.
    fn account(&self, username: &str) -> Option<String> {
        let jid = Jid::parse(&format!("{username}@{}", self.server.domain())).ok()?;
        jid.node().map(str::to_string)
    }
}

/// The client a token belongs to: its SASL2 user-agent id.
fn client_id(authenticate: &Element) -> Option<&str> {
    authenticate
        .get_child("user-agent", sasl2::NS)
        .and_then(|u| u.attr("id"))
        .filter(|id| !id.is_empty() && id.len() <= 256)
}
