//! Invitations (XEP-0401): tokens that let their holder register an account while in-band
//! registration is off.

use std::time::SystemTime;

use crate::{Result, Store};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    /// The random secret in the link, also the key.
    pub token: String,
    /// Who created it, for the list and the audit log: an account or the console.
    pub creator: String,
    /// The local account that becomes a mutual contact of each account registered with it
    /// (and, without `username`, of each account that sends its token with a subscription
    /// request).
    pub inviter: Option<String>,
    /// The username the registration must use; reserved until the invitation expires.
    pub username: Option<String>,
    /// Sets a new password for the existing account `username` instead of creating it.
    pub reset: bool,
    pub created: SystemTime,
    pub expires: SystemTime,
    pub max_uses: u32,
    pub uses_left: u32,
    pub revoked: bool,
    pub note: Option<String>,
}

impl Store {
    /// Records a new invitation; `NoSuchAccount` if its inviter does not exist.
    pub async fn invitation_create(&self, invitation: &Invitation) -> Result<()> {
        dispatch!(self.invitation_create(invitation))
    }

    pub async fn invitation(&self, token: &str) -> Result<Option<Invitation>> {
        dispatch!(self.invitation(token))
    }

    /// Every invitation not swept yet, newest first.
    pub async fn invitations(&self) -> Result<Vec<Invitation>> {
        dispatch!(self.invitations())
    }

    /// Takes one use of a live invitation (not revoked, not expired at `now`, uses left):
    /// `false` when there is none to take, so two registrations never share the last use.
    pub async fn invitation_take_use(&self, token: &str, now: SystemTime) -> Result<bool> {
        dispatch!(self.invitation_take_use(token, now))
    }

    /// Gives back a use taken for a registration that then failed.
    pub async fn invitation_give_back_use(&self, token: &str) -> Result<()> {
        dispatch!(self.invitation_give_back_use(token))
    }

    /// Revokes an invitation (kept until it expires, so its page can say so); `false` if there
    /// is no such invitation.
    pub async fn invitation_revoke(&self, token: &str) -> Result<bool> {
        dispatch!(self.invitation_revoke(token))
    }

    /// The token of a live invitation (not revoked, not expired at `now`, uses left) that
    /// reserves `username`.
    pub async fn invitation_reserving(
        &self,
        username: &str,
        now: SystemTime,
    ) -> Result<Option<String>> {
        dispatch!(self.invitation_reserving(username, now))
    }

    /// Removes the invitations expired at `now`; returns how many.
    pub async fn invitations_expire(&self, now: SystemTime) -> Result<usize> {
        dispatch!(self.invitations_expire(now))
    }
}
