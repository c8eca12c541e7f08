//! Offline messages (XEP-0160): kept until a session took them, then removed by id, so a
//! crash between delivery and removal delivers again instead of losing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::sqlite::db;
use crate::{Result, Store};

#[derive(Debug, Clone)]
pub struct OfflineMessage {
    pub id: i64,
    pub stamp: SystemTime,
    pub stanza_xml: String,
}

impl Store {
    /// Stores a message unless the user already has `max_per_user`; `false` when full.
    pub async fn offline_push(
        &self,
        username: &str,
        stanza_xml: &str,
        max_per_user: usize,
    ) -> Result<bool> {
        let (u, x) = (username.to_string(), stanza_xml.to_string());
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        self.sqlite()
            .write(move |conn| {
                let count: i64 = conn
                    .prepare_cached("SELECT count(*) FROM offline WHERE username = ?1")
                    .and_then(|mut s| s.query_row([&u], |r| r.get(0)))
                    .map_err(db)?;
                if count as usize >= max_per_user {
                    return Ok(false);
                }
                conn.prepare_cached(
                    "INSERT INTO offline (username, stamp, stanza) VALUES (?1, ?2, ?3)",
                )
                .and_then(|mut s| s.execute(rusqlite::params![u, now, x]))
                .map_err(db)?;
                Ok(true)
            })
            .await
    }

    /// The user's messages, oldest first.
    pub async fn offline_list(&self, username: &str) -> Result<Vec<OfflineMessage>> {
        let u = username.to_string();
        self.sqlite()
            .read(move |conn| {
                let mut s = conn
                    .prepare_cached(
                        "SELECT id, stamp, stanza FROM offline WHERE username = ?1 ORDER BY id",
                    )
                    .map_err(db)?;
                let rows = s
                    .query_map([&u], |r| {
                        Ok(OfflineMessage {
                            id: r.get(0)?,
                            stamp: UNIX_EPOCH + Duration::from_millis(r.get::<_, i64>(1)? as u64),
                            stanza_xml: r.get(2)?,
                        })
                    })
                    .map_err(db)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db)
            })
            .await
    }

    /// Removes the user's messages up to and including `up_to_id`.
    pub async fn offline_remove(&self, username: &str, up_to_id: i64) -> Result<usize> {
        let u = username.to_string();
        self.sqlite()
            .write(move |conn| {
                conn.prepare_cached("DELETE FROM offline WHERE username = ?1 AND id <= ?2")
                    .and_then(|mut s| s.execute(rusqlite::params![u, up_to_id]))
                    .map_err(db)
            })
            .await
    }

    pub async fn offline_count(&self, username: &str) -> Result<usize> {
        let u = username.to_string();
        self.sqlite()
            .read(move |conn| {
                conn.prepare_cached("SELECT count(*) FROM offline WHERE username = ?1")
                    .and_then(|mut s| s.query_row([&u], |r| r.get::<_, i64>(0)))
                    .map(|n| n as usize)
                    .map_err(db)
            })
            .await
    }
}
