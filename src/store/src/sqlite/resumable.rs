use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{SqliteBackend, db};
use crate::{Result, ResumableSession};

const INSERT: &str = "INSERT OR REPLACE INTO resumable_sessions \
    (id, username, resource, expires, h_in, h_out, unacked, unsent, presence, priority, module_state) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
const LIST: &str = "SELECT id, username, resource, expires, h_in, h_out, unacked, unsent, presence, \
    priority, module_state FROM resumable_sessions WHERE expires > ?1";
const CLEAR: &str = "DELETE FROM resumable_sessions";

fn secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl SqliteBackend {
    pub(crate) async fn resumable_save(&self, sessions: Vec<ResumableSession>) -> Result<()> {
        self.write(move |conn| {
            let mut stmt = conn.prepare_cached(INSERT).map_err(db)?;
            for s in sessions {
                stmt.execute(rusqlite::params![
                    s.id,
                    s.username,
                    s.resource,
                    secs(s.expires),
                    s.h_in,
                    s.h_out,
                    s.unacked,
                    s.unsent,
                    s.presence,
                    s.priority,
                    s.module_state
                ])
                .map_err(db)?;
            }
            Ok(())
        })
        .await
    }

    pub(crate) async fn resumable_take_all(&self) -> Result<Vec<ResumableSession>> {
        let now = secs(SystemTime::now());
        self.write(move |conn| {
            let mut stmt = conn.prepare_cached(LIST).map_err(db)?;
            let rows = stmt
                .query_map([now], |r| {
                    let expires = u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0);
                    Ok(ResumableSession {
                        id: r.get(0)?,
                        username: r.get(1)?,
                        resource: r.get(2)?,
                        expires: UNIX_EPOCH + Duration::from_secs(expires),
                        h_in: r.get(4)?,
                        h_out: r.get(5)?,
                        unacked: r.get(6)?,
                        unsent: r.get(7)?,
                        presence: r.get(8)?,
                        priority: r.get(9)?,
                        module_state: r.get(10)?,
                    })
                })
                .map_err(db)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(db)?;
            conn.execute(CLEAR, []).map_err(db)?;
            Ok(rows)
        })
        .await
    }
}
