use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::OptionalExtension;

use super::{SqliteBackend, db};
use crate::{Invitation, Result};

const COLUMNS: &str = "token, creator, inviter, username, reset, created, expires, max_uses, \
    uses_left, revoked, note";
pub(super) const INSERT: &str = "INSERT INTO invitations (token, creator, inviter, username, \
    reset, created, expires, max_uses, uses_left, revoked, note) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
pub(super) const TAKE_USE: &str = "UPDATE invitations SET uses_left = uses_left - 1 \
    WHERE token = ?1 AND uses_left > 0 AND revoked = 0 AND expires > ?2";
pub(super) const GIVE_BACK_USE: &str = "UPDATE invitations SET uses_left = uses_left + 1 \
    WHERE token = ?1 AND uses_left < max_uses";
pub(super) const REVOKE: &str = "UPDATE invitations SET revoked = 1 WHERE token = ?1";
pub(super) const RESERVING: &str = "SELECT token FROM invitations \
    WHERE username = ?1 AND uses_left > 0 AND revoked = 0 AND expires > ?2 LIMIT 1";
pub(super) const EXPIRE: &str = "DELETE FROM invitations WHERE expires <= ?1";

fn secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn time(secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Invitation> {
    Ok(Invitation {
        token: r.get(0)?,
        creator: r.get(1)?,
        inviter: r.get(2)?,
        username: r.get(3)?,
        reset: r.get(4)?,
        created: time(r.get(5)?),
        expires: time(r.get(6)?),
        max_uses: r.get(7)?,
        uses_left: r.get(8)?,
        revoked: r.get(9)?,
        note: r.get(10)?,
    })
}

impl SqliteBackend {
    pub(crate) async fn invitation_create(&self, invitation: &Invitation) -> Result<()> {
        let i = invitation.clone();
        self.write(move |conn| {
            conn.prepare_cached(INSERT)
                .map_err(db)?
                .execute(rusqlite::params![
                    i.token,
                    i.creator,
                    i.inviter,
                    i.username,
                    i.reset,
                    secs(i.created),
                    secs(i.expires),
                    i.max_uses,
                    i.uses_left,
                    i.revoked,
                    i.note,
                ])
                .map_err(db)?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn invitation(&self, token: &str) -> Result<Option<Invitation>> {
        let token = token.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM invitations WHERE token = ?1"
            ))
            .map_err(db)?
            .query_row([&token], row)
            .optional()
            .map_err(db)
        })
        .await
    }

    pub(crate) async fn invitations(&self) -> Result<Vec<Invitation>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM invitations ORDER BY created DESC, token"
                ))
                .map_err(db)?;
            let rows = stmt.query_map([], row).map_err(db)?;
            rows.collect::<rusqlite::Result<_>>().map_err(db)
        })
        .await
    }

    pub(crate) async fn invitation_take_use(&self, token: &str, now: SystemTime) -> Result<bool> {
        let token = token.to_owned();
        self.write(move |conn| {
            let taken = conn
                .prepare_cached(TAKE_USE)
                .map_err(db)?
                .execute(rusqlite::params![token, secs(now)])
                .map_err(db)?;
            Ok(taken == 1)
        })
        .await
    }

    pub(crate) async fn invitation_give_back_use(&self, token: &str) -> Result<()> {
        let token = token.to_owned();
        self.write(move |conn| {
            conn.prepare_cached(GIVE_BACK_USE)
                .map_err(db)?
                .execute([&token])
                .map_err(db)?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn invitation_revoke(&self, token: &str) -> Result<bool> {
        let token = token.to_owned();
        self.write(move |conn| {
            let changed = conn
                .prepare_cached(REVOKE)
                .map_err(db)?
                .execute([&token])
                .map_err(db)?;
            Ok(changed == 1)
        })
        .await
    }

    pub(crate) async fn invitation_reserving(
        &self,
        username: &str,
        now: SystemTime,
    ) -> Result<Option<String>> {
        let username = username.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(RESERVING)
                .map_err(db)?
                .query_row(rusqlite::params![username, secs(now)], |r| r.get(0))
                .optional()
                .map_err(db)
        })
        .await
    }

    pub(crate) async fn invitations_expire(&self, now: SystemTime) -> Result<usize> {
        self.write(move |conn| {
            conn.prepare_cached(EXPIRE)
                .map_err(db)?
                .execute([secs(now)])
                .map_err(db)
        })
        .await
    }
}
