use super::{SqliteBackend, db};
use crate::{PushRegistration, Result};

pub(super) const COUNT_OTHERS: &str = "SELECT count(*) FROM push_registrations \
    WHERE username = ?1 AND NOT (service = ?2 AND node = ?3)";
pub(super) const PUT: &str = "INSERT OR REPLACE INTO push_registrations \
    (username, service, node, resource, options) VALUES (?1, ?2, ?3, ?4, ?5)";
pub(super) const DELETE_NODE: &str =
    "DELETE FROM push_registrations WHERE username = ?1 AND service = ?2 AND node = ?3";
pub(super) const DELETE_SERVICE: &str =
    "DELETE FROM push_registrations WHERE username = ?1 AND service = ?2";
pub(super) const LIST: &str =
    "SELECT service, node, resource, options FROM push_registrations WHERE username = ?1";

/// A row of [`LIST`].
pub(super) fn registration_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PushRegistration> {
    Ok(PushRegistration {
        service: r.get(0)?,
        node: r.get(1)?,
        resource: r.get(2)?,
        options: r.get(3)?,
    })
}

impl SqliteBackend {
    pub(crate) async fn push_enable(
        &self,
        username: &str,
        r: PushRegistration,
        max_per_user: usize,
    ) -> Result<bool> {
        let username = username.to_owned();
        self.write(move |conn| {
            let others: i64 = conn
                .prepare_cached(COUNT_OTHERS)
                .map_err(db)?
                .query_row(rusqlite::params![username, r.service, r.node], |row| {
                    row.get(0)
                })
                .map_err(db)?;
            if others as usize >= max_per_user {
                return Ok(false);
            }
            conn.prepare_cached(PUT)
                .map_err(db)?
                .execute(rusqlite::params![
                    username, r.service, r.node, r.resource, r.options
                ])
                .map_err(db)?;
            Ok(true)
        })
        .await
    }

    pub(crate) async fn push_disable(
        &self,
        username: &str,
        service: &str,
        node: Option<&str>,
    ) -> Result<usize> {
        let (username, service, node) = (
            username.to_owned(),
            service.to_owned(),
            node.map(str::to_owned),
        );
        self.write(move |conn| {
            match node {
                Some(node) => conn
                    .prepare_cached(DELETE_NODE)
                    .map_err(db)?
                    .execute(rusqlite::params![username, service, node]),
                None => conn
                    .prepare_cached(DELETE_SERVICE)
                    .map_err(db)?
                    .execute(rusqlite::params![username, service]),
            }
            .map_err(db)
        })
        .await
    }

    pub(crate) async fn push_list(&self, username: &str) -> Result<Vec<PushRegistration>> {
        let username = username.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(LIST).map_err(db)?;
            let rows = stmt.query_map([&username], registration_row).map_err(db)?;
            rows.collect::<rusqlite::Result<_>>().map_err(db)
        })
        .await
    }
}
