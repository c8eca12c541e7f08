use super::{SqliteBackend, db};
use crate::Result;

pub(super) const LIST: &str = "SELECT jid FROM blocklist WHERE username = ?1 ORDER BY jid";
pub(super) const ADD: &str = "INSERT OR IGNORE INTO blocklist (username, jid) VALUES (?1, ?2)";
pub(super) const REMOVE: &str = "DELETE FROM blocklist WHERE username = ?1 AND jid = ?2";
pub(super) const CLEAR: &str = "DELETE FROM blocklist WHERE username = ?1";

impl SqliteBackend {
    pub(crate) async fn blocklist(&self, username: &str) -> Result<Vec<String>> {
        let username = username.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(LIST).map_err(db)?;
            let rows = stmt.query_map([&username], |r| r.get(0)).map_err(db)?;
            rows.collect::<rusqlite::Result<_>>().map_err(db)
        })
        .await
    }

    pub(crate) async fn blocklist_add(&self, username: &str, jids: Vec<String>) -> Result<()> {
        let username = username.to_owned();
        self.write(move |conn| {
            let mut stmt = conn.prepare_cached(ADD).map_err(db)?;
            for jid in &jids {
                stmt.execute([&username, jid]).map_err(db)?;
            }
            Ok(())
        })
        .await
    }

    pub(crate) async fn blocklist_remove(
        &self,
        username: &str,
        jids: Option<Vec<String>>,
    ) -> Result<()> {
        let username = username.to_owned();
        self.write(move |conn| {
            match jids {
                None => {
                    conn.prepare_cached(CLEAR)
                        .map_err(db)?
                        .execute([&username])
                        .map_err(db)?;
                }
                Some(jids) => {
                    let mut stmt = conn.prepare_cached(REMOVE).map_err(db)?;
                    for jid in &jids {
                        stmt.execute([&username, jid]).map_err(db)?;
                    }
                }
            }
            Ok(())
        })
        .await
    }
}
