use super::{SqliteBackend, db};
use crate::Result;

/// All of them, once per refresh of the groups: a scan in key order.
pub(super) const ALL: &str = "SELECT username, contact FROM shared_roster_items";
pub(super) const MARK: &str =
    "INSERT OR IGNORE INTO shared_roster_items (username, contact) VALUES (?1, ?2)";
pub(super) const UNMARK: &str =
    "DELETE FROM shared_roster_items WHERE username = ?1 AND contact = ?2";

impl SqliteBackend {
    pub(crate) async fn shared_roster_items(&self) -> Result<Vec<(String, String)>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(ALL).map_err(db)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(db)?;
            rows.collect::<rusqlite::Result<_>>().map_err(db)
        })
        .await
    }

    pub(crate) async fn shared_roster_mark(&self, username: &str, contact: &str) -> Result<()> {
        self.change(MARK, username, contact).await
    }

    pub(crate) async fn shared_roster_unmark(&self, username: &str, contact: &str) -> Result<()> {
        self.change(UNMARK, username, contact).await
    }

    async fn change(&self, sql: &'static str, username: &str, contact: &str) -> Result<()> {
        let (username, contact) = (username.to_owned(), contact.to_owned());
        self.write(move |conn| {
            conn.prepare_cached(sql)
                .map_err(db)?
                .execute([&username, &contact])
                .map_err(db)?;
            Ok(())
        })
        .await
    }
}
