use rusqlite::{Connection, OptionalExtension, Params};

use super::{SqliteBackend, db};
use crate::{Credentials, Result, ScramKeys, StoreError};

pub(super) const INSERT: &str = "INSERT INTO accounts (username, sha1_salt, sha1_iterations,
    sha1_stored_key, sha1_server_key, sha256_salt, sha256_iterations, sha256_stored_key,
    sha256_server_key, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, unixepoch())
    ON CONFLICT (username) DO NOTHING";
pub(super) const UPDATE: &str = "UPDATE accounts SET sha1_salt = ?2, sha1_iterations = ?3,
    sha1_stored_key = ?4, sha1_server_key = ?5, sha256_salt = ?6, sha256_iterations = ?7,
    sha256_stored_key = ?8, sha256_server_key = ?9 WHERE username = ?1";
pub(super) const DELETE: &str = "DELETE FROM accounts WHERE username = ?1";
pub(super) const EXISTS: &str = "SELECT 1 FROM accounts WHERE username = ?1";
pub(super) const CREDENTIALS: &str = "SELECT sha1_salt, sha1_iterations, sha1_stored_key,
    sha1_server_key, sha256_salt, sha256_iterations, sha256_stored_key, sha256_server_key
    FROM accounts WHERE username = ?1";
pub(super) const LIST: &str = "SELECT username FROM accounts ORDER BY username";
pub(super) const SET_DISABLED: &str = "UPDATE accounts SET disabled = ?2 WHERE username = ?1";
pub(super) const DISABLED: &str = "SELECT disabled FROM accounts WHERE username = ?1";
pub(super) const COUNT: &str = "SELECT count(*) FROM accounts";

/// The parameters of [`INSERT`] and [`UPDATE`].
fn bind<'a>(username: &'a str, c: &'a Credentials) -> impl Params + 'a {
    (
        username,
        &c.sha1.salt,
        c.sha1.iterations,
        &c.sha1.stored_key,
        &c.sha1.server_key,
        &c.sha256.salt,
        c.sha256.iterations,
        &c.sha256.stored_key,
        &c.sha256.server_key,
    )
}

/// Creates the account unless it exists; `true` if created.
fn insert(conn: &Connection, username: &str, creds: &Credentials) -> Result<bool> {
    let mut stmt = conn.prepare_cached(INSERT).map_err(db)?;
    stmt.execute(bind(username, creds))
        .map(|n| n == 1)
        .map_err(db)
}

fn keys(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<ScramKeys> {
    Ok(ScramKeys {
        salt: r.get(first)?,
        iterations: r.get(first + 1)?,
        stored_key: r.get(first + 2)?,
        server_key: r.get(first + 3)?,
    })
}

impl SqliteBackend {
    pub(crate) async fn create_account(&self, username: &str, creds: &Credentials) -> Result<()> {
        let (username, creds) = (username.to_owned(), creds.clone());
        self.write(move |conn| match insert(conn, &username, &creds)? {
            true => Ok(()),
            false => Err(StoreError::AccountExists),
        })
        .await
    }

    pub(crate) async fn create_accounts(
        &self,
        accounts: &[(String, Credentials)],
    ) -> Result<usize> {
        let accounts = accounts.to_vec();
        self.write(move |conn| {
            let mut created = 0;
            for (username, creds) in &accounts {
                created += usize::from(insert(conn, username, creds)?);
            }
            Ok(created)
        })
        .await
    }

    pub(crate) async fn set_credentials(&self, username: &str, creds: &Credentials) -> Result<()> {
        let (username, creds) = (username.to_owned(), creds.clone());
        self.write(move |conn| {
            let mut stmt = conn.prepare_cached(UPDATE).map_err(db)?;
            match stmt.execute(bind(&username, &creds)).map_err(db)? {
                0 => Err(StoreError::NoSuchAccount),
                _ => Ok(()),
            }
        })
        .await
    }

    pub(crate) async fn delete_account(&self, username: &str) -> Result<()> {
        let username = username.to_owned();
        self.write(move |conn| {
            let mut stmt = conn.prepare_cached(DELETE).map_err(db)?;
            match stmt.execute([&username]).map_err(db)? {
                0 => Err(StoreError::NoSuchAccount),
                _ => Ok(()),
            }
        })
        .await
    }

    pub(crate) async fn set_disabled(&self, username: &str, disabled: bool) -> Result<()> {
        let username = username.to_owned();
        self.write(move |conn| {
            let mut stmt = conn.prepare_cached(SET_DISABLED).map_err(db)?;
            match stmt.execute((&username, disabled)).map_err(db)? {
                0 => Err(StoreError::NoSuchAccount),
                _ => Ok(()),
            }
        })
        .await
    }

    pub(crate) async fn is_disabled(&self, username: &str) -> Result<bool> {
        let username = username.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(DISABLED).map_err(db)?;
            let disabled: Option<bool> = stmt
                .query_row([&username], |r| r.get(0))
                .optional()
                .map_err(db)?;
            Ok(disabled.unwrap_or(false))
        })
        .await
    }

    pub(crate) async fn count_accounts(&self) -> Result<u64> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(COUNT).map_err(db)?;
            let count: i64 = stmt.query_row([], |r| r.get(0)).map_err(db)?;
            Ok(count.unsigned_abs())
        })
        .await
    }

    pub(crate) async fn account_exists(&self, username: &str) -> Result<bool> {
        let username = username.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(EXISTS).map_err(db)?;
            stmt.exists([&username]).map_err(db)
        })
        .await
    }

    pub(crate) async fn credentials(&self, username: &str) -> Result<Option<Credentials>> {
        let username = username.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(CREDENTIALS).map_err(db)?;
            stmt.query_row([&username], |r| {
                Ok(Credentials {
                    sha1: keys(r, 0)?,
                    sha256: keys(r, 4)?,
                })
            })
            .optional()
            .map_err(db)
        })
        .await
    }

    pub(crate) async fn list_accounts(&self) -> Result<Vec<String>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(LIST).map_err(db)?;
            let names = stmt.query_map([], |r| r.get(0)).map_err(db)?;
            names.collect::<rusqlite::Result<_>>().map_err(db)
        })
        .await
    }
}
