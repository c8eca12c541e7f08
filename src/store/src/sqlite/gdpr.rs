use std::time::SystemTime;

use rusqlite::{Connection, OptionalExtension, Params, Row};

use super::upload::{secs, time, upload_row};
use super::{SqliteBackend, archive, blocklist, db, muc, offline, private, push, roster};
use crate::gdpr::{AccountData, MucMembership, PepNode};
use crate::{PubsubItem, Result, StoreError};

pub(super) const ACCOUNT: &str =
    "SELECT created, disabled, delete_at FROM accounts WHERE username = ?1";
pub(super) const PRIVATE: &str =
    "SELECT namespace, xml FROM private_xml WHERE username = ?1 ORDER BY namespace";
pub(super) const PEP_NODES: &str =
    "SELECT node, config FROM pubsub_nodes WHERE username = ?1 ORDER BY node";
pub(super) const PEP_ITEMS: &str = "SELECT item_id, payload FROM pubsub_items \
    WHERE username = ?1 AND node = ?2 ORDER BY id";
pub(super) const ARCHIVE: &str =
    "SELECT stanza_id, stamp, stanza FROM archive WHERE username = ?1 ORDER BY id";
pub(super) const MUC: &str = "SELECT room, jid, affiliation, reason, nick FROM muc_affiliations \
    WHERE jid = ?1 ORDER BY room";
pub(super) const UPLOAD_IDS: &str = "SELECT id FROM uploads WHERE username = ?1";
pub(super) const MUC_ERASE: &str = "DELETE FROM muc_affiliations WHERE jid = ?1";
pub(super) const REQUESTS_SENT_ERASE: &str = "DELETE FROM pending_in WHERE contact = ?1";
pub(super) const SCHEDULE: &str =
    "UPDATE accounts SET disabled = 1, delete_at = ?2 WHERE username = ?1";
pub(super) const CANCEL: &str = "UPDATE accounts SET disabled = 0, delete_at = NULL \
    WHERE username = ?1 AND delete_at IS NOT NULL";
pub(super) const DUE: &str = "SELECT username FROM accounts WHERE delete_at <= ?1";
pub(super) const OFFLINE_EXPIRE: &str = "DELETE FROM offline WHERE id IN \
    (SELECT id FROM offline WHERE stamp < ?1 ORDER BY stamp LIMIT ?2)";

/// Every row of `sql` run with `params`, mapped by `f`.
fn all<T, P: Params>(
    conn: &Connection,
    sql: &str,
    params: P,
    f: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(db)?;
    let rows = stmt.query_map(params, f).map_err(db)?;
    rows.collect::<rusqlite::Result<_>>().map_err(db)
}

fn account_data(conn: &Connection, username: &str, jid: &str) -> Result<Option<AccountData>> {
    let account = conn
        .prepare_cached(ACCOUNT)
        .map_err(db)?
        .query_row([username], |r| {
            Ok((
                time(r.get(0)?),
                r.get::<_, bool>(1)?,
                r.get::<_, Option<i64>>(2)?.map(time),
            ))
        })
        .optional()
        .map_err(db)?;
    let Some((created, disabled, delete_at)) = account else {
        return Ok(None);
    };
    let mut pep = Vec::new();
    for (node, config) in all(conn, PEP_NODES, [username], |r| {
        Ok((r.get::<_, String>(0)?, r.get(1)?))
    })? {
        let items = all(conn, PEP_ITEMS, [username, &node], |r| {
            Ok(PubsubItem {
                id: r.get(0)?,
                payload: r.get(1)?,
            })
        })?;
        pep.push(PepNode {
            node,
            config,
            items,
        });
    }
    let mut uploads = all(conn, super::upload::OF_USER, [username], upload_row)?;
    uploads.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
    Ok(Some(AccountData {
        created,
        disabled,
        delete_at,
        roster: all(conn, roster::ITEMS, [username], roster::item_from_row)?,
        pending_in: all(conn, roster::PENDING_LIST, [username], |r| r.get(1))?,
        vcard: conn
            .prepare_cached(private::VCARD_GET)
            .map_err(db)?
            .query_row([username], |r| r.get(0))
            .optional()
            .map_err(db)?,
        private: all(conn, PRIVATE, [username], |r| Ok((r.get(0)?, r.get(1)?)))?,
        pep,
        offline: all(conn, offline::LIST, [username], offline::message_row)?,
        archive: all(conn, ARCHIVE, [username], archive::archived_row)?,
        archive_prefs: conn
            .prepare_cached(archive::PREFS_GET)
            .map_err(db)?
            .query_row([username], archive::prefs_row)
            .optional()
            .map_err(db)?,
        blocklist: all(conn, blocklist::LIST, [username], |r| r.get(0))?,
        uploads,
        muc: all(conn, MUC, [jid], |r| {
            Ok(MucMembership {
                room: r.get(0)?,
                affiliation: muc::affiliation_row(r, 1)?,
            })
        })?,
        push: all(conn, push::LIST, [username], push::registration_row)?,
    }))
}

impl SqliteBackend {
    pub(crate) async fn account_data(
        &self,
        username: &str,
        jid: &str,
    ) -> Result<Option<AccountData>> {
        let (username, jid) = (username.to_owned(), jid.to_owned());
        self.read(move |conn| {
            // One read transaction: every part is of the same moment, whatever is written.
            let tx = conn.transaction().map_err(db)?;
            account_data(&tx, &username, &jid)
        })
        .await
    }

    pub(crate) async fn account_erase(&self, username: &str, jid: &str) -> Result<Vec<String>> {
        let (username, jid) = (username.to_owned(), jid.to_owned());
        self.write(move |conn| {
            let uploads = all(conn, UPLOAD_IDS, [&username], |r| r.get(0))?;
            let run = |sql, param: &str| {
                conn.prepare_cached(sql)
                    .map_err(db)?
                    .execute([param])
                    .map_err(db)
            };
            run(MUC_ERASE, &jid)?;
            run(REQUESTS_SENT_ERASE, &jid)?;
            match run(super::accounts::DELETE, &username)? {
                0 => Err(StoreError::NoSuchAccount),
                _ => Ok(uploads),
            }
        })
        .await
    }

    pub(crate) async fn account_schedule_erasure(
        &self,
        username: &str,
        at: SystemTime,
    ) -> Result<()> {
        let username = username.to_owned();
        self.write(move |conn| {
            let mut stmt = conn.prepare_cached(SCHEDULE).map_err(db)?;
            match stmt.execute((&username, secs(at))).map_err(db)? {
                0 => Err(StoreError::NoSuchAccount),
                _ => Ok(()),
            }
        })
        .await
    }

    pub(crate) async fn account_cancel_erasure(&self, username: &str) -> Result<bool> {
        let username = username.to_owned();
        self.write(move |conn| {
            let mut stmt = conn.prepare_cached(CANCEL).map_err(db)?;
            if stmt.execute([&username]).map_err(db)? == 1 {
                return Ok(true);
            }
            let mut exists = conn.prepare_cached(super::accounts::EXISTS).map_err(db)?;
            match exists.exists([&username]).map_err(db)? {
                true => Ok(false),
                false => Err(StoreError::NoSuchAccount),
            }
        })
        .await
    }

    pub(crate) async fn accounts_due_for_erasure(&self, now: SystemTime) -> Result<Vec<String>> {
        self.read(move |conn| all(conn, DUE, [secs(now)], |r| r.get(0)))
            .await
    }

    pub(crate) async fn offline_expire(&self, before: SystemTime, batch: usize) -> Result<usize> {
        let before = offline::millis(before);
        self.write(move |conn| {
            conn.prepare_cached(OFFLINE_EXPIRE)
                .map_err(db)?
                .execute(rusqlite::params![before, batch as i64])
                .map_err(db)
        })
        .await
    }
}
