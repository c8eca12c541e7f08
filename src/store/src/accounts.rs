//! Accounts and their SCRAM credentials.

use rusqlite::{Connection, OptionalExtension, params};

use crate::sqlite::db;
use crate::{Credentials, Result, ScramKeys, Store, StoreError};

const INSERT: &str = "INSERT INTO accounts (username, created, sha1_salt, sha1_iterations, sha1_stored_key, sha1_server_key,
     sha256_salt, sha256_iterations, sha256_stored_key, sha256_server_key) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn insert(conn: &Connection, username: &str, c: &Credentials) -> rusqlite::Result<usize> {
    conn.prepare_cached(INSERT)?.execute(params![
        username,
        now(),
        c.sha1.salt,
        c.sha1.iterations,
        c.sha1.stored_key,
        c.sha1.server_key,
        c.sha256.salt,
        c.sha256.iterations,
        c.sha256.stored_key,
        c.sha256.server_key
    ])
}

pub(crate) fn exists(conn: &Connection, username: &str) -> Result<bool> {
    conn.prepare_cached("SELECT 1 FROM accounts WHERE username = ?1")
        .and_then(|mut s| s.exists([username]))
        .map_err(db)
}

impl Store {
    pub async fn create_account(&self, username: &str, creds: &Credentials) -> Result<()> {
        let (username, creds) = (username.to_string(), creds.clone());
        self.sqlite()
            .write(move |conn| {
                if exists(conn, &username)? {
                    return Err(StoreError::AccountExists);
                }
                insert(conn, &username, &creds).map_err(db)?;
                Ok(())
            })
            .await
    }

    /// Creates the accounts that do not exist yet, in one transaction; returns how many.
    pub async fn create_accounts(&self, accounts: &[(String, Credentials)]) -> Result<usize> {
        let accounts = accounts.to_vec();
        self.sqlite()
            .write(move |conn| {
                let mut created = 0;
                for (username, creds) in &accounts {
                    if !exists(conn, username)? {
                        created += insert(conn, username, creds).map_err(db)?;
                    }
                }
                Ok(created)
            })
            .await
    }

    pub async fn set_credentials(&self, username: &str, c: &Credentials) -> Result<()> {
        let (username, c) = (username.to_string(), c.clone());
        self.sqlite()
            .write(move |conn| {
                let n = conn
                    .prepare_cached(
                        "UPDATE accounts SET sha1_salt = ?2, sha1_iterations = ?3, sha1_stored_key = ?4, sha1_server_key = ?5,
                         sha256_salt = ?6, sha256_iterations = ?7, sha256_stored_key = ?8, sha256_server_key = ?9 WHERE username = ?1",
                    )
                    .and_then(|mut s| {
                        s.execute(params![
                            username,
                            c.sha1.salt,
                            c.sha1.iterations,
                            c.sha1.stored_key,
                            c.sha1.server_key,
                            c.sha256.salt,
                            c.sha256.iterations,
                            c.sha256.stored_key,
                            c.sha256.server_key
                        ])
                    })
                    .map_err(db)?;
                if n == 0 { Err(StoreError::NoSuchAccount) } else { Ok(()) }
            })
            .await
    }

    /// Deletes the account and, by cascade, everything it owns.
    pub async fn delete_account(&self, username: &str) -> Result<()> {
        let username = username.to_string();
        self.sqlite()
            .write(move |conn| {
                let n = conn
                    .prepare_cached("DELETE FROM accounts WHERE username = ?1")
                    .and_then(|mut s| s.execute([&username]))
                    .map_err(db)?;
                if n == 0 {
                    Err(StoreError::NoSuchAccount)
                } else {
                    Ok(())
                }
            })
            .await
    }

    pub async fn account_exists(&self, username: &str) -> Result<bool> {
        let username = username.to_string();
        self.sqlite()
            .read(move |conn| exists(conn, &username))
            .await
    }

    pub async fn credentials(&self, username: &str) -> Result<Option<Credentials>> {
        let username = username.to_string();
        self.sqlite()
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT sha1_salt, sha1_iterations, sha1_stored_key, sha1_server_key,
                            sha256_salt, sha256_iterations, sha256_stored_key, sha256_server_key
                     FROM accounts WHERE username = ?1",
                )
                .and_then(|mut s| {
                    s.query_row([&username], |r| {
                        Ok(Credentials {
                            sha1: ScramKeys {
                                salt: r.get(0)?,
                                iterations: r.get(1)?,
                                stored_key: r.get(2)?,
                                server_key: r.get(3)?,
                            },
                            sha256: ScramKeys {
                                salt: r.get(4)?,
                                iterations: r.get(5)?,
                                stored_key: r.get(6)?,
                                server_key: r.get(7)?,
                            },
                        })
                    })
                    .optional()
                })
                .map_err(db)
            })
            .await
    }

    pub async fn list_accounts(&self) -> Result<Vec<String>> {
        self.sqlite()
            .read(|conn| {
                let mut s = conn
                    .prepare_cached("SELECT username FROM accounts ORDER BY username")
                    .map_err(db)?;
                let rows = s.query_map([], |r| r.get(0)).map_err(db)?;
                rows.collect::<rusqlite::Result<Vec<String>>>().map_err(db)
            })
            .await
    }
}
