use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{SqliteBackend, db};
use crate::{OfflineMessage, Result};

pub(super) const COUNT: &str = "SELECT count(*) FROM offline WHERE username = ?1";
pub(super) const INSERT: &str = "INSERT INTO offline (username, stamp, stanza) VALUES (?1, ?2, ?3)";
pub(super) const LIST: &str =
    "SELECT id, stamp, stanza FROM offline WHERE username = ?1 ORDER BY id";
pub(super) const REMOVE: &str = "DELETE FROM offline WHERE username = ?1 AND id <= ?2";

/// A row of [`LIST`].
pub(super) fn message_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OfflineMessage> {
    let ms = u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0);
    Ok(OfflineMessage {
        id: r.get(0)?,
        stamp: UNIX_EPOCH + Duration::from_millis(ms),
        stanza_xml: r.get(2)?,
    })
}

/// Stamps are milliseconds since the Unix epoch.
pub(super) fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn count(conn: &rusqlite::Connection, username: &str) -> Result<usize> {
    let mut stmt = conn.prepare_cached(COUNT).map_err(db)?;
    stmt.query_row([username], |r| r.get::<_, i64>(0))
        .map(|n| n as usize)
        .map_err(db)
}

impl SqliteBackend {
    pub(crate) async fn offline_push(
        &self,
        username: &str,
        stanza_xml: &str,
        max_per_user: usize,
    ) -> Result<bool> {
        let (username, stanza) = (username.to_owned(), stanza_xml.to_owned());
        let stamp = millis(SystemTime::now());
        // The writer runs one request at a time: nothing comes between the count and the insert.
        self.write(move |conn| {
            if count(conn, &username)? >= max_per_user {
                return Ok(false);
            }
            let mut stmt = conn.prepare_cached(INSERT).map_err(db)?;
            stmt.execute(rusqlite::params![username, stamp, stanza])
                .map_err(db)?;
            Ok(true)
        })
        .await
    }

    pub(crate) async fn offline_list(&self, username: &str) -> Result<Vec<OfflineMessage>> {
        let username = username.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(LIST).map_err(db)?;
            let rows = stmt.query_map([&username], message_row).map_err(db)?;
            rows.collect::<rusqlite::Result<_>>().map_err(db)
        })
        .await
    }

    pub(crate) async fn offline_remove(&self, username: &str, up_to_id: i64) -> Result<usize> {
        let username = username.to_owned();
        self.write(move |conn| {
            let mut stmt = conn.prepare_cached(REMOVE).map_err(db)?;
            stmt.execute(rusqlite::params![username, up_to_id])
                .map_err(db)
        })
        .await
    }

    pub(crate) async fn offline_count(&self, username: &str) -> Result<usize> {
        let username = username.to_owned();
        self.read(move |conn| count(conn, &username)).await
    }
}
