//! Rosters (RFC 6121 §2) with a per-account version (XEP-0237), and inbound subscription
//! requests awaiting the user's answer (§3.1.3).

use rusqlite::{Connection, OptionalExtension, params};

use crate::sqlite::db;
use crate::{Result, Store};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subscription {
    None,
    To,
    From,
    Both,
}

impl Subscription {
    pub fn as_str(self) -> &'static str {
        match self {
            Subscription::None => "none",
            Subscription::To => "to",
            Subscription::From => "from",
            Subscription::Both => "both",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Subscription::None),
            "to" => Some(Subscription::To),
            "from" => Some(Subscription::From),
            "both" => Some(Subscription::Both),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterItem {
    /// The contact's bare JID, normalised.
    pub contact: String,
    pub name: Option<String>,
    pub subscription: Subscription,
    /// An outbound subscription request is pending.
    pub ask: bool,
    /// Inbound subscription pre-approved (RFC 6121 §3.4).
    pub approved: bool,
    pub groups: Vec<String>,
}

/// U+001F cannot occur in XML text, so no group name contains it.
const GROUP_SEP: char = '\u{1f}';

fn item_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RosterItem> {
    let groups: String = r.get(5)?;
    let subscription: String = r.get(2)?;
    Ok(RosterItem {
        contact: r.get(0)?,
        name: r.get(1)?,
        subscription: Subscription::parse(&subscription).unwrap_or(Subscription::None),
        ask: r.get(3)?,
        approved: r.get(4)?,
        groups: if groups.is_empty() {
            Vec::new()
        } else {
            groups.split(GROUP_SEP).map(str::to_string).collect()
        },
    })
}

fn bump_version(conn: &Connection, username: &str) -> Result<u64> {
    conn.prepare_cached("UPDATE accounts SET roster_version = roster_version + 1 WHERE username = ?1 RETURNING roster_version")
        .and_then(|mut s| s.query_row([username], |r| r.get::<_, i64>(0)))
        .optional()
        .map_err(db)?
        .map(|v| v as u64)
        .ok_or(crate::StoreError::NoSuchAccount)
}

fn version(conn: &Connection, username: &str) -> Result<u64> {
    conn.prepare_cached("SELECT roster_version FROM accounts WHERE username = ?1")
        .and_then(|mut s| s.query_row([username], |r| r.get::<_, i64>(0)).optional())
        .map_err(db)
        .map(|v| v.unwrap_or(0) as u64)
}

const COLUMNS: &str = "contact, name, subscription, ask, approved, groups";

impl Store {
    /// The whole roster and its version.
    pub async fn roster(&self, username: &str) -> Result<(u64, Vec<RosterItem>)> {
        let username = username.to_string();
        self.sqlite()
            .read(move |conn| {
                let v = version(conn, &username)?;
                let mut s = conn
                    .prepare_cached(&format!(
                        "SELECT {COLUMNS} FROM roster WHERE username = ?1 ORDER BY contact"
                    ))
                    .map_err(db)?;
                let items = s
                    .query_map([&username], item_from_row)
                    .map_err(db)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(db)?;
                Ok((v, items))
            })
            .await
    }

    pub async fn roster_item(&self, username: &str, contact: &str) -> Result<Option<RosterItem>> {
        let (username, contact) = (username.to_string(), contact.to_string());
        self.sqlite()
            .read(move |conn| {
                conn.prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM roster WHERE username = ?1 AND contact = ?2"
                ))
                .and_then(|mut s| s.query_row([&username, &contact], item_from_row).optional())
                .map_err(db)
            })
            .await
    }

    /// Inserts or replaces an item; returns the new roster version.
    pub async fn roster_put(&self, username: &str, item: &RosterItem) -> Result<u64> {
        let (username, item) = (username.to_string(), item.clone());
        self.sqlite()
            .write(move |conn| {
                let v = bump_version(conn, &username)?;
                conn.prepare_cached(&format!("INSERT OR REPLACE INTO roster (username, {COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"))
                    .and_then(|mut s| {
                        s.execute(params![
                            username,
                            item.contact,
                            item.name,
                            item.subscription.as_str(),
                            item.ask,
                            item.approved,
                            item.groups.join(&GROUP_SEP.to_string())
                        ])
                    })
                    .map_err(db)?;
                Ok(v)
            })
            .await
    }

    /// Removes an item; `None` when there was none, else the new roster version.
    pub async fn roster_remove(&self, username: &str, contact: &str) -> Result<Option<u64>> {
        let (username, contact) = (username.to_string(), contact.to_string());
        self.sqlite()
            .write(move |conn| {
                let n = conn
                    .prepare_cached("DELETE FROM roster WHERE username = ?1 AND contact = ?2")
                    .and_then(|mut s| s.execute([&username, &contact]))
                    .map_err(db)?;
                if n == 0 {
                    Ok(None)
                } else {
                    bump_version(conn, &username).map(Some)
                }
            })
            .await
    }

    pub async fn roster_version(&self, username: &str) -> Result<u64> {
        let username = username.to_string();
        self.sqlite()
            .read(move |conn| version(conn, &username))
            .await
    }

    pub async fn roster_count(&self, username: &str) -> Result<usize> {
        let username = username.to_string();
        self.sqlite()
            .read(move |conn| {
                conn.prepare_cached("SELECT count(*) FROM roster WHERE username = ?1")
                    .and_then(|mut s| s.query_row([&username], |r| r.get::<_, i64>(0)))
                    .map(|n| n as usize)
                    .map_err(db)
            })
            .await
    }

    pub async fn pending_in_put(
        &self,
        username: &str,
        contact: &str,
        stanza_xml: &str,
    ) -> Result<()> {
        let (u, c, x) = (
            username.to_string(),
            contact.to_string(),
            stanza_xml.to_string(),
        );
        self.sqlite()
            .write(move |conn| {
                conn.prepare_cached("INSERT OR REPLACE INTO pending_in (username, contact, stanza) VALUES (?1, ?2, ?3)")
                    .and_then(|mut s| s.execute([&u, &c, &x]))
                    .map(|_| ())
                    .map_err(db)
            })
            .await
    }

    pub async fn pending_in_remove(&self, username: &str, contact: &str) -> Result<bool> {
        let (u, c) = (username.to_string(), contact.to_string());
        self.sqlite()
            .write(move |conn| {
                conn.prepare_cached("DELETE FROM pending_in WHERE username = ?1 AND contact = ?2")
                    .and_then(|mut s| s.execute([&u, &c]))
                    .map(|n| n > 0)
                    .map_err(db)
            })
            .await
    }

    pub async fn pending_in_list(&self, username: &str) -> Result<Vec<(String, String)>> {
        let u = username.to_string();
        self.sqlite()
            .read(move |conn| {
                let mut s = conn.prepare_cached("SELECT contact, stanza FROM pending_in WHERE username = ?1 ORDER BY contact").map_err(db)?;
                let rows = s.query_map([&u], |r| Ok((r.get(0)?, r.get(1)?))).map_err(db)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db)
            })
            .await
    }
}
