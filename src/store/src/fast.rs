//! FAST (XEP-0484) tokens: per account and client, the token last issued and the one in use.

use crate::{Result, Store};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FastToken {
    /// The HT mechanism the token is bound to.
    pub mechanism: String,
    pub token: String,
    /// Unix seconds.
    pub expiry: i64,
    /// Issued and not yet used (the "new" slot).
    pub fresh: bool,
}

impl Store {
    /// The client's tokens, the fresh one first.
    pub async fn fast_tokens(&self, username: &str, client: &str) -> Result<Vec<FastToken>> {
        dispatch!(self.fast_tokens(username, client))
    }

    /// Stores a newly issued token as the client's fresh one, replacing an unused one.
    pub async fn fast_issue(&self, username: &str, client: &str, token: FastToken) -> Result<()> {
        dispatch!(self.fast_issue(username, client, token))
    }

    /// Records a successful login with the fresh or the current token: a fresh one becomes
    /// current and ends the older one. `invalidate` (the client logging out) ends both.
    pub async fn fast_used(
        &self,
        username: &str,
        client: &str,
        fresh: bool,
        invalidate: bool,
    ) -> Result<()> {
        dispatch!(self.fast_used(username, client, fresh, invalidate))
    }
}
