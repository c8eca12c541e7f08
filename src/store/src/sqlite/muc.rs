use rusqlite::OptionalExtension;

use super::{SqliteBackend, db};
use crate::{Result, StoredAffiliation, StoredRoom};

pub(super) const ROOM: &str =
    "SELECT jid, public, config, subject_nick, subject, vcard FROM muc_rooms WHERE jid = ?1";
pub(super) const AFFILIATIONS: &str =
    "SELECT jid, affiliation, reason, nick FROM muc_affiliations WHERE room = ?1";
pub(super) const PUBLIC: &str =
    "SELECT jid, public, config, subject_nick, subject, NULL FROM muc_rooms WHERE public = 1";
pub(super) const PUT_ROOM: &str = "INSERT INTO muc_rooms \
    (jid, public, config, subject_nick, subject, vcard) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
    ON CONFLICT (jid) DO UPDATE SET public = ?2, config = ?3, subject_nick = ?4, subject = ?5, \
    vcard = ?6";
pub(super) const PUT_AFFILIATION: &str = "INSERT OR REPLACE INTO muc_affiliations \
    (room, jid, affiliation, reason, nick) VALUES (?1, ?2, ?3, ?4, ?5)";
pub(super) const DELETE_AFFILIATION: &str =
    "DELETE FROM muc_affiliations WHERE room = ?1 AND jid = ?2";
pub(super) const DELETE_ROOM: &str = "DELETE FROM muc_rooms WHERE jid = ?1";

fn room_row(r: &rusqlite::Row) -> rusqlite::Result<StoredRoom> {
    let nick: Option<String> = r.get(3)?;
    let subject: Option<String> = r.get(4)?;
    Ok(StoredRoom {
        jid: r.get(0)?,
        public: r.get(1)?,
        config: r.get(2)?,
        subject: subject.map(|s| (nick.unwrap_or_default(), s)),
        vcard: r.get(5)?,
    })
}

/// An affiliation from its columns (jid, affiliation, reason, nick), starting at `first`.
pub(super) fn affiliation_row(
    r: &rusqlite::Row<'_>,
    first: usize,
) -> rusqlite::Result<StoredAffiliation> {
    Ok(StoredAffiliation {
        jid: r.get(first)?,
        affiliation: r.get(first + 1)?,
        reason: r.get(first + 2)?,
        nick: r.get(first + 3)?,
    })
}

impl SqliteBackend {
    pub(crate) async fn muc_room(
        &self,
        jid: &str,
    ) -> Result<Option<(StoredRoom, Vec<StoredAffiliation>)>> {
        let jid = jid.to_owned();
        self.read(move |conn| {
            let Some(room) = conn
                .prepare_cached(ROOM)
                .map_err(db)?
                .query_row([&jid], room_row)
                .optional()
                .map_err(db)?
            else {
                return Ok(None);
            };
            let mut stmt = conn.prepare_cached(AFFILIATIONS).map_err(db)?;
            let affiliations = stmt
                .query_map([&jid], |r| affiliation_row(r, 0))
                .map_err(db)?
                .collect::<rusqlite::Result<_>>()
                .map_err(db)?;
            Ok(Some((room, affiliations)))
        })
        .await
    }

    pub(crate) async fn muc_public_rooms(&self) -> Result<Vec<StoredRoom>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(PUBLIC).map_err(db)?;
            let rows = stmt.query_map([], room_row).map_err(db)?;
            rows.collect::<rusqlite::Result<_>>().map_err(db)
        })
        .await
    }

    pub(crate) async fn muc_put_room(&self, room: StoredRoom) -> Result<()> {
        self.write(move |conn| {
            let (nick, subject) = room.subject.unzip();
            conn.prepare_cached(PUT_ROOM)
                .map_err(db)?
                .execute(rusqlite::params![
                    room.jid,
                    room.public,
                    room.config,
                    nick,
                    subject,
                    room.vcard
                ])
                .map_err(db)?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn muc_set_affiliation(
        &self,
        room: &str,
        jid: &str,
        affiliation: Option<StoredAffiliation>,
    ) -> Result<()> {
        let (room, jid) = (room.to_owned(), jid.to_owned());
        self.write(move |conn| {
            match affiliation {
                Some(a) => {
                    conn.prepare_cached(PUT_AFFILIATION)
                        .map_err(db)?
                        .execute(rusqlite::params![
                            room,
                            jid,
                            a.affiliation,
                            a.reason,
                            a.nick
                        ])
                }
                None => conn
                    .prepare_cached(DELETE_AFFILIATION)
                    .map_err(db)?
                    .execute([&room, &jid]),
            }
            .map_err(db)?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn muc_delete_room(&self, jid: &str) -> Result<()> {
        let jid = jid.to_owned();
        self.write(move |conn| {
            conn.prepare_cached(DELETE_ROOM)
                .map_err(db)?
                .execute([&jid])
                .map_err(db)?;
            Ok(())
        })
        .await
    }
}
