use super::{SqliteBackend, db};
use crate::{FastToken, Result};

pub(super) const LIST: &str = "SELECT mechanism, token, expiry, fresh FROM fast_tokens \
    WHERE username = ?1 AND client = ?2 ORDER BY fresh DESC";
pub(super) const PUT: &str = "INSERT OR REPLACE INTO fast_tokens \
    (username, client, fresh, mechanism, token, expiry) VALUES (?1, ?2, 1, ?3, ?4, ?5)";
pub(super) const DELETE_CURRENT: &str =
    "DELETE FROM fast_tokens WHERE username = ?1 AND client = ?2 AND fresh = 0";
pub(super) const PROMOTE: &str =
    "UPDATE fast_tokens SET fresh = 0 WHERE username = ?1 AND client = ?2 AND fresh = 1";
pub(super) const DELETE_ALL: &str = "DELETE FROM fast_tokens WHERE username = ?1 AND client = ?2";

impl SqliteBackend {
    pub(crate) async fn fast_tokens(&self, username: &str, client: &str) -> Result<Vec<FastToken>> {
        let (username, client) = (username.to_owned(), client.to_owned());
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(LIST).map_err(db)?;
            let rows = stmt
                .query_map([&username, &client], |r| {
                    Ok(FastToken {
                        mechanism: r.get(0)?,
                        token: r.get(1)?,
                        expiry: r.get(2)?,
                        fresh: r.get(3)?,
                    })
                })
                .map_err(db)?;
            rows.collect::<rusqlite::Result<_>>().map_err(db)
        })
        .await
    }

    pub(crate) async fn fast_issue(
        &self,
        username: &str,
        client: &str,
        t: FastToken,
    ) -> Result<()> {
        let (username, client) = (username.to_owned(), client.to_owned());
        self.write(move |conn| {
            conn.prepare_cached(PUT)
                .map_err(db)?
                .execute(rusqlite::params![
                    username,
                    client,
                    t.mechanism,
                    t.token,
                    t.expiry
                ])
                .map_err(db)?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn fast_used(
        &self,
        username: &str,
        client: &str,
        fresh: bool,
        invalidate: bool,
    ) -> Result<()> {
        let (username, client) = (username.to_owned(), client.to_owned());
        self.write(move |conn| {
            let steps: &[&str] = match (invalidate, fresh) {
                (true, _) => &[DELETE_ALL],
                (false, true) => &[DELETE_CURRENT, PROMOTE],
                (false, false) => &[],
            };
            for sql in steps {
                conn.prepare_cached(sql)
                    .map_err(db)?
                    .execute([&username, &client])
                    .map_err(db)?;
            }
            Ok(())
        })
        .await
    }
}
