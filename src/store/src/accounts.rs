//! Accounts and their SCRAM credentials.

use crate::{Credentials, Result, Store};

impl Store {
    /// Fails with [`StoreError::AccountExists`](crate::StoreError::AccountExists).
    pub async fn create_account(&self, username: &str, creds: &Credentials) -> Result<()> {
        dispatch!(self.create_account(username, creds))
    }

    /// Fails with [`StoreError::NoSuchAccount`](crate::StoreError::NoSuchAccount).
    pub async fn set_credentials(&self, username: &str, creds: &Credentials) -> Result<()> {
        dispatch!(self.set_credentials(username, creds))
    }

    /// Deletes the account and everything it owns (roster, pending requests, offline messages).
    pub async fn delete_account(&self, username: &str) -> Result<()> {
        dispatch!(self.delete_account(username))
    }

    pub async fn account_exists(&self, username: &str) -> Result<bool> {
        dispatch!(self.account_exists(username))
    }

    pub async fn credentials(&self, username: &str) -> Result<Option<Credentials>> {
        dispatch!(self.credentials(username))
    }

    /// All usernames, sorted.
    pub async fn list_accounts(&self) -> Result<Vec<String>> {
        dispatch!(self.list_accounts())
    }

    /// Disables the account (it stays, with its data, but cannot log in) or enables it again.
    /// Fails with [`StoreError::NoSuchAccount`](crate::StoreError::NoSuchAccount).
    pub async fn set_disabled(&self, username: &str, disabled: bool) -> Result<()> {
        dispatch!(self.set_disabled(username, disabled))
    }

    /// Whether an administrator disabled the account (`false` for a missing account).
    pub async fn is_disabled(&self, username: &str) -> Result<bool> {
        dispatch!(self.is_disabled(username))
    }

    pub async fn count_accounts(&self) -> Result<u64> {
        dispatch!(self.count_accounts())
    }

    /// Creates, in one transaction, the accounts that do not exist yet; returns how many.
    pub async fn create_accounts(&self, accounts: &[(String, Credentials)]) -> Result<usize> {
        dispatch!(self.create_accounts(accounts))
    }
}
