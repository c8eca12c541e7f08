use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{Connection, OptionalExtension, ToSql, params};

use super::{SqliteBackend, db};
use crate::{Result, RosterItem, StoreError, Subscription};

pub(super) const VERSION: &str = "SELECT roster_version FROM accounts WHERE username = ?1";
pub(super) const BUMP: &str = "UPDATE accounts SET roster_version = roster_version + 1
    WHERE username = ?1 RETURNING roster_version";
pub(super) const ITEMS: &str = "SELECT contact, name, subscription, ask, approved, groups
    FROM roster WHERE username = ?1 ORDER BY contact";
pub(super) const ITEM: &str = "SELECT contact, name, subscription, ask, approved, groups
    FROM roster WHERE username = ?1 AND contact = ?2";
pub(super) const PUT: &str = "INSERT OR REPLACE INTO roster
    (username, contact, name, subscription, ask, approved, groups)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
pub(super) const REMOVE: &str = "DELETE FROM roster WHERE username = ?1 AND contact = ?2";
pub(super) const COUNT: &str = "SELECT count(*) FROM roster WHERE username = ?1";
pub(super) const PENDING_PUT: &str =
    "INSERT OR REPLACE INTO pending_in (username, contact, stanza) VALUES (?1, ?2, ?3)";
pub(super) const PENDING_REMOVE: &str =
    "DELETE FROM pending_in WHERE username = ?1 AND contact = ?2";
pub(super) const PENDING_LIST: &str =
    "SELECT contact, stanza FROM pending_in WHERE username = ?1 ORDER BY contact";

/// Joins the group names in one column: XML cannot carry U+001F, so no name contains it.
const GROUP_SEP: &str = "\u{1f}";

impl ToSql for Subscription {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl FromSql for Subscription {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        value
            .as_str()?
            .parse()
            .map_err(|e: anyhow::Error| FromSqlError::Other(e.into()))
    }
}

pub(super) fn item_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RosterItem> {
    let groups: String = r.get(5)?;
    Ok(RosterItem {
        contact: r.get(0)?,
        name: r.get(1)?,
        subscription: r.get(2)?,
        ask: r.get(3)?,
        approved: r.get(4)?,
        groups: match groups.as_str() {
            "" => Vec::new(),
            g => g.split(GROUP_SEP).map(str::to_owned).collect(),
        },
    })
}

/// Bumps the user's roster version, in the caller's transaction.
fn bump(conn: &Connection, username: &str) -> Result<u64> {
    let mut stmt = conn.prepare_cached(BUMP).map_err(db)?;
    stmt.query_row([username], |r| r.get::<_, i64>(0))
        .optional()
        .map_err(db)?
        .map(|v| v as u64)
        .ok_or(StoreError::NoSuchAccount)
}

fn version(conn: &Connection, username: &str) -> Result<u64> {
    let mut stmt = conn.prepare_cached(VERSION).map_err(db)?;
    let v = stmt
        .query_row([username], |r| r.get::<_, i64>(0))
        .optional();
    v.map(|v| v.unwrap_or_default() as u64).map_err(db)
}

impl SqliteBackend {
    pub(crate) async fn roster(&self, username: &str) -> Result<(u64, Vec<RosterItem>)> {
        let username = username.to_owned();
        self.read(move |conn| {
            // One snapshot for the version and the items.
            let tx = conn.transaction().map_err(db)?;
            let v = version(&tx, &username)?;
            let mut stmt = tx.prepare_cached(ITEMS).map_err(db)?;
            let items = stmt.query_map([&username], item_from_row).map_err(db)?;
            Ok((v, items.collect::<rusqlite::Result<_>>().map_err(db)?))
        })
        .await
    }

    pub(crate) async fn roster_item(
        &self,
        username: &str,
        contact: &str,
    ) -> Result<Option<RosterItem>> {
        let (username, contact) = (username.to_owned(), contact.to_owned());
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(ITEM).map_err(db)?;
            stmt.query_row([&username, &contact], item_from_row)
                .optional()
                .map_err(db)
        })
        .await
    }

    pub(crate) async fn roster_put(&self, username: &str, item: &RosterItem) -> Result<u64> {
        let (username, item) = (username.to_owned(), item.clone());
        self.write(move |conn| {
            let v = bump(conn, &username)?;
            let mut stmt = conn.prepare_cached(PUT).map_err(db)?;
            stmt.execute(params![
                username,
                item.contact,
                item.name,
                item.subscription,
                item.ask,
                item.approved,
                item.groups.join(GROUP_SEP)
            ])
            .map_err(db)?;
            Ok(v)
        })
        .await
    }

    pub(crate) async fn roster_remove(&self, username: &str, contact: &str) -> Result<Option<u64>> {
        let (username, contact) = (username.to_owned(), contact.to_owned());
        self.write(move |conn| {
            let mut stmt = conn.prepare_cached(REMOVE).map_err(db)?;
            match stmt.execute([&username, &contact]).map_err(db)? {
                0 => Ok(None),
                _ => bump(conn, &username).map(Some),
            }
        })
        .await
    }

    pub(crate) async fn roster_version(&self, username: &str) -> Result<u64> {
        let username = username.to_owned();
        self.read(move |conn| version(conn, &username)).await
    }

    pub(crate) async fn roster_count(&self, username: &str) -> Result<usize> {
        let username = username.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(COUNT).map_err(db)?;
            stmt.query_row([&username], |r| r.get::<_, i64>(0))
                .map(|n| n as usize)
                .map_err(db)
        })
        .await
    }

    pub(crate) async fn pending_in_put(
        &self,
        username: &str,
        contact: &str,
        stanza_xml: &str,
    ) -> Result<()> {
        let params = [username, contact, stanza_xml].map(str::to_owned);
        self.write(move |conn| {
            let mut stmt = conn.prepare_cached(PENDING_PUT).map_err(db)?;
            stmt.execute(params).map(drop).map_err(db)
        })
        .await
    }

    pub(crate) async fn pending_in_remove(&self, username: &str, contact: &str) -> Result<bool> {
        let (username, contact) = (username.to_owned(), contact.to_owned());
        self.write(move |conn| {
            let mut stmt = conn.prepare_cached(PENDING_REMOVE).map_err(db)?;
            stmt.execute([&username, &contact])
                .map(|n| n > 0)
                .map_err(db)
        })
        .await
    }

    pub(crate) async fn pending_in_list(&self, username: &str) -> Result<Vec<(String, String)>> {
        let username = username.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(PENDING_LIST).map_err(db)?;
            let rows = stmt
                .query_map([&username], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(db)?;
            rows.collect::<rusqlite::Result<_>>().map_err(db)
        })
        .await
    }
}
