use super::{SqliteBackend, db};
use crate::Result;
use rusqlite::OptionalExtension;

pub(super) const PRIVATE_GET: &str =
    "SELECT xml FROM private_xml WHERE username = ?1 AND namespace = ?2";
pub(super) const PRIVATE_SET: &str =
    "INSERT OR REPLACE INTO private_xml (username, namespace, xml) VALUES (?1, ?2, ?3)";
pub(super) const VCARD_GET: &str = "SELECT xml FROM vcards WHERE username = ?1";
pub(super) const VCARD_SET: &str =
    "INSERT OR REPLACE INTO vcards (username, xml, photo_sha1) VALUES (?1, ?2, ?3)";
pub(super) const VCARD_PHOTO: &str = "SELECT photo_sha1 FROM vcards WHERE username = ?1";

impl SqliteBackend {
    pub(crate) async fn private_get(
        &self,
        username: &str,
        namespace: &str,
    ) -> Result<Option<String>> {
        let (username, namespace) = (username.to_owned(), namespace.to_owned());
        self.read(move |conn| {
            conn.prepare_cached(PRIVATE_GET)
                .map_err(db)?
                .query_row([&username, &namespace], |r| r.get(0))
                .optional()
                .map_err(db)
        })
        .await
    }

    pub(crate) async fn private_set(
        &self,
        username: &str,
        namespace: &str,
        xml: &str,
    ) -> Result<()> {
        let (username, namespace, xml) =
            (username.to_owned(), namespace.to_owned(), xml.to_owned());
        self.write(move |conn| {
            conn.prepare_cached(PRIVATE_SET)
                .map_err(db)?
                .execute([&username, &namespace, &xml])
                .map_err(db)?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn vcard_get(&self, username: &str) -> Result<Option<String>> {
        let username = username.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(VCARD_GET)
                .map_err(db)?
                .query_row([&username], |r| r.get(0))
                .optional()
                .map_err(db)
        })
        .await
    }

    pub(crate) async fn vcard_set(
        &self,
        username: &str,
        xml: &str,
        photo_sha1: Option<&str>,
    ) -> Result<()> {
        let (username, xml, photo) = (
            username.to_owned(),
            xml.to_owned(),
            photo_sha1.map(str::to_owned),
        );
        self.write(move |conn| {
            conn.prepare_cached(VCARD_SET)
                .map_err(db)?
                .execute(rusqlite::params![username, xml, photo])
                .map_err(db)?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn vcard_photo_sha1(&self, username: &str) -> Result<Option<Option<String>>> {
        let username = username.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(VCARD_PHOTO)
                .map_err(db)?
                .query_row([&username], |r| r.get(0))
                .optional()
                .map_err(db)
        })
        .await
    }
}
