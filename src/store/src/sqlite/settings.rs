use rusqlite::OptionalExtension;

use super::{SqliteBackend, db};
use crate::Result;

pub(super) const GET: &str = "SELECT value FROM server_settings WHERE name = ?1";
pub(super) const PUT: &str = "INSERT OR REPLACE INTO server_settings (name, value) VALUES (?1, ?2)";
pub(super) const DELETE: &str = "DELETE FROM server_settings WHERE name = ?1";

impl SqliteBackend {
    pub(crate) async fn setting(&self, name: &str) -> Result<Option<String>> {
        let name = name.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(GET)
                .map_err(db)?
                .query_row([&name], |r| r.get(0))
                .optional()
                .map_err(db)
        })
        .await
    }

    pub(crate) async fn set_setting(&self, name: &str, value: Option<&str>) -> Result<()> {
        let (name, value) = (name.to_owned(), value.map(str::to_owned));
        self.write(move |conn| {
            match &value {
                Some(v) => conn.prepare_cached(PUT).map_err(db)?.execute((&name, v)),
                None => conn.prepare_cached(DELETE).map_err(db)?.execute([&name]),
            }
            .map_err(db)?;
            Ok(())
        })
        .await
    }
}
