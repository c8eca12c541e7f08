use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{SqliteBackend, db};
use crate::{OverQuota, Result, Upload};

const USAGE: &str = "SELECT coalesce(sum(size), 0), min(completed) FROM uploads \
    WHERE username = ?1 AND (completed IS NOT NULL OR put_deadline > ?2)";
const INSERT: &str = "INSERT INTO uploads \
    (id, username, filename, size, content_type, created, put_deadline) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
pub(super) const GET: &str = "SELECT id, username, filename, size, content_type, created, \
    put_deadline, completed FROM uploads WHERE id = ?1";
pub(super) const OF_USER: &str = "SELECT id, username, filename, size, content_type, created, \
    put_deadline, completed FROM uploads WHERE username = ?1";
const COMPLETE: &str = "UPDATE uploads SET completed = ?2, content_type = ?3 \
    WHERE id = ?1 AND completed IS NULL";
const EXPIRE: &str = "DELETE FROM uploads WHERE completed < ?1 \
    OR (completed IS NULL AND put_deadline < ?2) RETURNING id";
const IDS: &str = "SELECT id FROM uploads";

pub(super) fn secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

pub(super) fn time(secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

/// A row of [`GET`] or [`OF_USER`].
pub(super) fn upload_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Upload> {
    Ok(Upload {
        id: r.get(0)?,
        username: r.get(1)?,
        filename: r.get(2)?,
        size: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
        content_type: r.get(4)?,
        created: time(r.get(5)?),
        put_deadline: time(r.get(6)?),
        completed: r.get::<_, Option<i64>>(7)?.map(time),
    })
}

impl SqliteBackend {
    pub(crate) async fn upload_slot_create(
        &self,
        slot: Upload,
        quota: u64,
        now: SystemTime,
    ) -> Result<std::result::Result<(), OverQuota>> {
        self.write(move |conn| {
            if quota > 0 {
                let (used, oldest): (i64, Option<i64>) = conn
                    .prepare_cached(USAGE)
                    .map_err(db)?
                    .query_row(rusqlite::params![slot.username, secs(now)], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .map_err(db)?;
                let used = u64::try_from(used).unwrap_or(0);
                if used.saturating_add(slot.size) > quota {
                    return Ok(Err(OverQuota {
                        used,
                        oldest: oldest.map(time),
                    }));
                }
            }
            conn.prepare_cached(INSERT)
                .map_err(db)?
                .execute(rusqlite::params![
                    slot.id,
                    slot.username,
                    slot.filename,
                    i64::try_from(slot.size).unwrap_or(i64::MAX),
                    slot.content_type,
                    secs(slot.created),
                    secs(slot.put_deadline),
                ])
                .map_err(db)?;
            Ok(Ok(()))
        })
        .await
    }

    pub(crate) async fn upload_get(&self, id: &str) -> Result<Option<Upload>> {
        let id = id.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(GET).map_err(db)?;
            let mut rows = stmt.query_map([&id], upload_row).map_err(db)?;
            rows.next().transpose().map_err(db)
        })
        .await
    }

    pub(crate) async fn upload_complete(
        &self,
        id: &str,
        content_type: Option<String>,
        at: SystemTime,
    ) -> Result<bool> {
        let id = id.to_owned();
        self.write(move |conn| {
            let changed = conn
                .prepare_cached(COMPLETE)
                .map_err(db)?
                .execute(rusqlite::params![id, secs(at), content_type])
                .map_err(db)?;
            Ok(changed == 1)
        })
        .await
    }

    pub(crate) async fn upload_expire(
        &self,
        completed_before: Option<SystemTime>,
        abandoned_before: SystemTime,
    ) -> Result<Vec<String>> {
        // NULL compares as unknown: no completed row matches when files are kept.
        let completed_before = completed_before.map(secs);
        let abandoned_before = secs(abandoned_before);
        self.write(move |conn| {
            let mut stmt = conn.prepare_cached(EXPIRE).map_err(db)?;
            let ids = stmt
                .query_map(rusqlite::params![completed_before, abandoned_before], |r| {
                    r.get(0)
                })
                .map_err(db)?;
            ids.collect::<rusqlite::Result<_>>().map_err(db)
        })
        .await
    }

    pub(crate) async fn upload_ids(&self) -> Result<HashSet<String>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(IDS).map_err(db)?;
            let ids = stmt.query_map([], |r| r.get(0)).map_err(db)?;
            ids.collect::<rusqlite::Result<_>>().map_err(db)
        })
        .await
    }
}
