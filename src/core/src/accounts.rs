//! Account management shared by the CLI (`hearth user …`) and in-band registration: username
//! normalisation and password changes, where the password becomes SCRAM keys and is never stored.

use hearth_store::Store;

use crate::jid::Jid;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{0:?} is not a valid username: {1}")]
    InvalidUsername(String, String),
    #[error("the password must not be empty")]
    EmptyPassword,
    #[error("the account already exists")]
    Exists,
    #[error("no such account")]
    NotFound,
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<hearth_store::StoreError> for AccountError {
    fn from(e: hearth_store::StoreError) -> Self {
        match e {
            hearth_store::StoreError::AccountExists => AccountError::Exists,
            hearth_store::StoreError::NoSuchAccount => AccountError::NotFound,
            hearth_store::StoreError::Other(e) => AccountError::Other(e),
        }
    }
}

/// The normalised local part (nodeprep, RFC 6122) of a username given as `user` or `user@domain`.
pub fn normalise_username(domain: &str, raw: &str) -> Result<String, AccountError> {
    let invalid = |why: &str| AccountError::InvalidUsername(raw.to_string(), why.to_string());
    let local = match raw.split_once('@') {
        Some((local, d)) if d.eq_ignore_ascii_case(domain) => local,
        Some(_) => return Err(invalid(&format!("this server serves only {domain}"))),
        None => raw,
    };
    if local.is_empty() || local.contains('/') {
        return Err(invalid("it must be a non-empty local part"));
    }
    let jid = Jid::parse(&format!("{local}@{domain}")).map_err(|e| invalid(&e.to_string()))?;
    jid.node()
        .map(str::to_string)
        .ok_or_else(|| invalid("it must be a non-empty local part"))
}

async fn derive(
    password: &str,
    iterations: u32,
) -> Result<hearth_store::Credentials, AccountError> {
    if password.is_empty() {
        return Err(AccountError::EmptyPassword);
    }
    let password = password.to_string();
    // PBKDF2 takes milliseconds: keep it off the async workers.
    tokio::task::spawn_blocking(move || hearth_auth::derive_credentials(&password, iterations))
        .await
        .map_err(|e| anyhow::anyhow!("key derivation task failed: {e}"))?
        .map_err(|e| AccountError::Other(anyhow::anyhow!("{e}")))
}

pub async fn create(
    store: &Store,
    username: &str,
    password: &str,
    iterations: u32,
) -> Result<(), AccountError> {
    let creds = derive(password, iterations).await?;
    Ok(store.create_account(username, &creds).await?)
}

pub async fn set_password(
    store: &Store,
    username: &str,
    password: &str,
    iterations: u32,
) -> Result<(), AccountError> {
    let creds = derive(password, iterations).await?;
    Ok(store.set_credentials(username, &creds).await?)
}

/// Creates many accounts at once (bulk provisioning from `hearth user add --stdin`); existing
/// ones are skipped. Returns how many were created.
pub async fn create_many(
    store: &Store,
    accounts: Vec<(String, String)>,
    iterations: u32,
) -> Result<usize, AccountError> {
    let derived = tokio::task::spawn_blocking(move || derive_parallel(accounts, iterations))
        .await
        .map_err(|e| anyhow::anyhow!("key derivation task failed: {e}"))??;
    store
        .create_accounts(&derived)
        .await
        .map_err(|e| AccountError::Other(e.into()))
}

/// PBKDF2 for many accounts on every core: provisioning thousands of accounts is CPU-bound.
fn derive_parallel(
    accounts: Vec<(String, String)>,
    iterations: u32,
) -> Result<Vec<(String, hearth_store::Credentials)>, AccountError> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let chunk = accounts.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = accounts
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|(user, password)| {
                            if password.is_empty() {
                                return Err(AccountError::EmptyPassword);
                            }
                            hearth_auth::derive_credentials(password, iterations)
                                .map(|c| (user.clone(), c))
                                .map_err(|e| AccountError::Other(anyhow::anyhow!("{e}")))
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(accounts.len());
        for w in workers {
            all.extend(
                w.join()
                    .map_err(|_| anyhow::anyhow!("key derivation thread panicked"))??,
            );
        }
        Ok(all)
    })
}

/// Creates the local account of a user the directory (LDAP) knows, on their first login or a
/// directory sync: roster, archive and the rest hang off it. Its stored keys come from a random
/// password nobody knows; with a directory, passwords are checked there.
pub async fn ensure_exists(
    server: &crate::server::Server,
    username: &str,
) -> Result<(), AccountError> {
    let username = normalise_username(server.domain(), username)?;
    if server.store.account_exists(&username).await? {
        return Ok(());
    }
    let unusable: [u8; 32] = rand::random();
    let password = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, unusable);
    match create(&server.store, &username, &password, 4096).await {
        Ok(()) => {
            tracing::info!(account = %username, "local account created for a directory user");
            Ok(())
        }
        // Two first logins at once.
        Err(AccountError::Exists) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert_eq!(normalise_username("example.com", "Alice").unwrap(), "alice");
        assert_eq!(
            normalise_username("example.com", "alice@Example.com").unwrap(),
            "alice"
        );
        assert!(normalise_username("example.com", "alice@other.org").is_err());
        assert!(normalise_username("example.com", "").is_err());
        assert!(normalise_username("example.com", "a b").is_err());
        assert!(normalise_username("example.com", "a/b").is_err());
    }
}
