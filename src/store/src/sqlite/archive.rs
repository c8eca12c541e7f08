use rusqlite::OptionalExtension;
use rusqlite::types::Value;

use super::{SqliteBackend, db};
use crate::PendingWrites;
use crate::archive::ArchiveQueryError;
use crate::{
    ArchiveOwners, ArchivePage, ArchivePrefs, ArchiveQuery, Archived, NewArchived, Result,
};

/// The id for a new row of `owner`'s archive, if `owner` exists. New ids stay above the indexed
/// ones even when the newest rows were deleted, so every row past `indexed_up_to` is one the
/// full-text index has yet to take. Apart from the insert: an `INSERT … SELECT` that reads its
/// own table makes SQLite fill a temporary table first, a page cache per message.
pub(super) const NEXT_ID: &str = "SELECT max((SELECT coalesce(max(id), 0) FROM archive), \
    (SELECT indexed_up_to FROM archive_fts_progress)) + 1 \
    WHERE EXISTS (SELECT 1 FROM accounts WHERE username = ?1) \
    OR EXISTS (SELECT 1 FROM muc_rooms WHERE jid = ?1)";
pub(super) const APPEND: &str = "INSERT INTO archive \
    (id, username, stanza_id, stamp, with_bare, with_resource, outgoing, body, stanza) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
pub(super) const FTS_CATCH_UP: &str = "INSERT INTO archive_fts (rowid, body) \
    SELECT id, body FROM archive \
    WHERE id > (SELECT indexed_up_to FROM archive_fts_progress) AND body IS NOT NULL";
pub(super) const FTS_PROGRESS: &str = "UPDATE archive_fts_progress \
    SET indexed_up_to = max(indexed_up_to, (SELECT coalesce(max(id), 0) FROM archive))";
pub(super) const REPLACE: &str =
    "UPDATE archive SET stanza = ?3, body = NULL WHERE username = ?1 AND stanza_id = ?2";
pub(super) const ID_OF: &str = "SELECT id FROM archive WHERE username = ?1 AND stanza_id = ?2";
pub(super) const FIRST_SINCE: &str =
    "SELECT id FROM archive WHERE username = ?1 AND stamp >= ?2 ORDER BY stamp, id LIMIT 1";
pub(super) const LAST_UNTIL: &str = "SELECT id FROM archive WHERE username = ?1 AND stamp <= ?2 ORDER BY stamp DESC, id DESC LIMIT 1";
pub(super) const OLDEST: &str =
    "SELECT stanza_id, stamp, stanza FROM archive WHERE username = ?1 ORDER BY id LIMIT 1";
pub(super) const NEWEST: &str =
    "SELECT stanza_id, stamp, stanza FROM archive WHERE username = ?1 ORDER BY id DESC LIMIT 1";
/// Room archives are keyed by the room's bare JID, accounts' by a username (no '@').
pub(super) const EXPIRE: &str = "DELETE FROM archive WHERE id IN (SELECT id FROM archive \
    WHERE stamp < ?1 AND (instr(username, '@') > 0) = ?2 ORDER BY stamp LIMIT ?3)";
pub(super) const CLEAR: &str =
    "DELETE FROM archive WHERE id IN (SELECT id FROM archive WHERE username = ?1 LIMIT ?2)";
pub(super) const PREFS_GET: &str =
    "SELECT default_mode, always, never FROM archive_prefs WHERE username = ?1";
pub(super) const PREFS_SET: &str = "INSERT OR REPLACE INTO archive_prefs \
    (username, default_mode, always, never) VALUES (?1, ?2, ?3, ?4)";

/// A message from its columns (stanza_id, stamp, stanza).
pub(super) fn archived_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Archived> {
    Ok(Archived {
        stanza_id: r.get(0)?,
        stamp: r.get(1)?,
        stanza_xml: r.get(2)?,
    })
}

/// A row of [`PREFS_GET`].
pub(super) fn prefs_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ArchivePrefs> {
    Ok(ArchivePrefs {
        default_mode: r.get(0)?,
        always: split(&r.get::<_, String>(1)?),
        never: split(&r.get::<_, String>(2)?),
    })
}

/// Separates JIDs in one column; XML cannot carry it, so no JID contains it.
const SEP: char = '\u{1f}';

fn split(s: &str) -> Vec<String> {
    s.split(SEP)
        .filter(|j| !j.is_empty())
        .map(str::to_string)
        .collect()
}

/// The paging statement for a query's filters, and its parameters. Every shape of it is
/// served by one of the archive's indexes.
pub(super) fn page_sql(
    username: &str,
    q: &ArchiveQuery,
    bounds: (Option<i64>, Option<i64>),
) -> (String, Vec<Value>) {
    let mut params = vec![Value::Text(username.to_string())];
    let mut sql = String::from("SELECT stanza_id, stamp, stanza FROM archive WHERE username = ?1");
    let mut bind = |sql: &mut String, clause: &str, v: Value| {
        params.push(v);
        sql.push_str(&clause.replace('?', &format!("?{}", params.len())));
    };
    if let Some(w) = &q.with_bare {
        bind(&mut sql, " AND with_bare = ?", Value::Text(w.clone()));
    }
    if let Some(r) = &q.with_resource {
        bind(&mut sql, " AND with_resource = ?", Value::Text(r.clone()));
    }
    if let Some(lo) = bounds.0 {
        bind(&mut sql, " AND id > ?", Value::Integer(lo));
    }
    if let Some(hi) = bounds.1 {
        bind(&mut sql, " AND id < ?", Value::Integer(hi));
    }
    if let Some(ids) = &q.ids {
        sql.push_str(" AND stanza_id IN (");
        for (i, id) in ids.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            bind(&mut sql, "?", Value::Text(id.clone()));
        }
        sql.push(')');
    }
    if let Some(text) = &q.fulltext {
        bind(
            &mut sql,
            " AND id IN (SELECT rowid FROM archive_fts WHERE archive_fts MATCH ?)",
            Value::Text(text.clone()),
        );
    }
    let backward = q.from_end || q.before.is_some();
    sql.push_str(if backward {
        " ORDER BY id DESC"
    } else {
        " ORDER BY id"
    });
    bind(&mut sql, " LIMIT ?", Value::Integer(q.max as i64 + 1));
    (sql, params)
}

impl SqliteBackend {
    pub(crate) async fn archive_append(&self, username: &str, m: NewArchived) -> Result<bool> {
        let username = username.to_owned();
        self.write(move |conn| append(conn, &username, m)).await
    }

    pub(crate) async fn archive_append_with(
        &self,
        pending: &PendingWrites,
        username: &str,
        m: NewArchived,
    ) -> Result<bool> {
        let username = username.to_owned();
        self.write_with(pending, move |conn| append(conn, &username, m))
            .await
    }

    pub(crate) async fn archive_append_later(
        &self,
        pending: &PendingWrites,
        username: &str,
        m: NewArchived,
    ) {
        let owner = username.to_owned();
        self.defer(
            pending,
            "an archive copy of a message",
            username,
            move |conn| append(conn, &owner, m).map(drop),
        )
        .await
    }

    pub(crate) async fn archive_tombstone(
        &self,
        username: &str,
        stanza_id: &str,
        stanza_xml: String,
    ) -> Result<bool> {
        let (username, stanza_id) = (username.to_owned(), stanza_id.to_owned());
        self.write(move |conn| {
            let n = conn
                .prepare_cached(REPLACE)
                .map_err(db)?
                .execute(rusqlite::params![username, stanza_id, stanza_xml])
                .map_err(db)?;
            Ok(n == 1)
        })
        .await
    }

    /// Adds the bodies archived since the last call to the full-text index; returns how many.
    pub(crate) async fn archive_index_pending(&self) -> Result<usize> {
        self.write(|conn| {
            let n = conn
                .prepare_cached(FTS_CATCH_UP)
                .map_err(db)?
                .execute([])
                .map_err(db)?;
            conn.prepare_cached(FTS_PROGRESS)
                .map_err(db)?
                .execute([])
                .map_err(db)?;
            Ok(n)
        })
        .await
    }

    pub(crate) async fn archive_query(
        &self,
        username: &str,
        q: ArchiveQuery,
    ) -> std::result::Result<ArchivePage, ArchiveQueryError> {
        if q.fulltext.is_some() {
            self.archive_index_pending().await?;
        }
        let username = username.to_owned();
        self.read(move |conn| Ok(query(conn, &username, &q)))
            .await?
    }

    pub(crate) async fn archive_bounds(
        &self,
        username: &str,
    ) -> Result<Option<(Archived, Archived)>> {
        let username = username.to_owned();
        self.read(move |conn| {
            let one = |sql| {
                conn.prepare_cached(sql)
                    .map_err(db)?
                    .query_row([&username], archived_row)
                    .optional()
                    .map_err(db)
            };
            Ok(one(OLDEST)?.zip(one(NEWEST)?))
        })
        .await
    }

    pub(crate) async fn archive_expire(
        &self,
        owners: ArchiveOwners,
        before: i64,
        batch: usize,
    ) -> Result<usize> {
        let rooms = owners == ArchiveOwners::Rooms;
        self.write(move |conn| {
            conn.prepare_cached(EXPIRE)
                .map_err(db)?
                .execute(rusqlite::params![before, rooms, batch as i64])
                .map_err(db)
        })
        .await
    }

    pub(crate) async fn archive_clear(&self, username: &str, batch: usize) -> Result<usize> {
        let username = username.to_owned();
        self.write(move |conn| {
            conn.prepare_cached(CLEAR)
                .map_err(db)?
                .execute(rusqlite::params![username, batch as i64])
                .map_err(db)
        })
        .await
    }

    pub(crate) async fn archive_prefs(&self, username: &str) -> Result<Option<ArchivePrefs>> {
        let username = username.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(PREFS_GET)
                .map_err(db)?
                .query_row([&username], prefs_row)
                .optional()
                .map_err(db)
        })
        .await
    }

    pub(crate) async fn archive_set_prefs(&self, username: &str, p: ArchivePrefs) -> Result<()> {
        let username = username.to_owned();
        let join = |v: &[String]| v.join(&SEP.to_string());
        let (always, never) = (join(&p.always), join(&p.never));
        self.write(move |conn| {
            conn.prepare_cached(PREFS_SET)
                .map_err(db)?
                .execute([&username, &p.default_mode, &always, &never])
                .map_err(db)?;
            Ok(())
        })
        .await
    }
}

fn query(
    conn: &rusqlite::Connection,
    username: &str,
    q: &ArchiveQuery,
) -> std::result::Result<ArchivePage, ArchiveQueryError> {
    let id_of = |sid: &str| -> std::result::Result<i64, ArchiveQueryError> {
        conn.prepare_cached(ID_OF)
            .map_err(db)?
            .query_row([username, sid], |r| r.get(0))
            .optional()
            .map_err(db)?
            .ok_or_else(|| ArchiveQueryError::UnknownId(sid.to_string()))
    };
    let bound = |sql, stamp: i64| -> std::result::Result<Option<i64>, ArchiveQueryError> {
        Ok(conn
            .prepare_cached(sql)
            .map_err(db)?
            .query_row(rusqlite::params![username, stamp], |r| r.get(0))
            .optional()
            .map_err(db)?)
    };
    let empty = ArchivePage {
        messages: Vec::new(),
        complete: true,
    };
    // Time bounds become id bounds (ids grow with time), so paging stays on one index.
    let mut lo = q.after.as_deref().map(id_of).transpose()?;
    let mut hi = q.before.as_deref().map(id_of).transpose()?;
    if let Some(start) = q.start {
        match bound(FIRST_SINCE, start)? {
            Some(id) => lo = Some(lo.map_or(id - 1, |l| l.max(id - 1))),
            None => return Ok(empty),
        }
    }
    if let Some(end) = q.end {
        match bound(LAST_UNTIL, end)? {
            Some(id) => hi = Some(hi.map_or(id + 1, |h| h.min(id + 1))),
            None => return Ok(empty),
        }
    }
    let (sql, params) = page_sql(username, q, (lo, hi));
    let mut stmt = conn.prepare_cached(&sql).map_err(db)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(params), archived_row);
    let mut messages = rows
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(|e| {
            if q.fulltext.is_some() && e.to_string().contains("fts5") {
                ArchiveQueryError::BadFulltext
            } else {
                ArchiveQueryError::Store(db(e))
            }
        })?;
    let complete = messages.len() <= q.max;
    messages.truncate(q.max);
    if q.from_end || q.before.is_some() {
        messages.reverse();
    }
    Ok(ArchivePage { messages, complete })
}

/// Archives `m` for `owner` unless it does not exist; returns whether it did.
fn append(conn: &rusqlite::Connection, owner: &str, m: NewArchived) -> Result<bool> {
    let id: Option<i64> = conn
        .prepare_cached(NEXT_ID)
        .map_err(db)?
        .query_row([owner], |r| r.get(0))
        .optional()
        .map_err(db)?;
    let Some(id) = id else {
        return Ok(false);
    };
    conn.prepare_cached(APPEND)
        .map_err(db)?
        .execute(rusqlite::params![
            id,
            owner,
            m.stanza_id,
            m.stamp,
            m.with_bare,
            m.with_resource,
            m.outgoing,
            m.body,
            m.stanza_xml
        ])
        .map_err(db)?;
    Ok(true)
}
