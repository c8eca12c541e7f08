use rusqlite::OptionalExtension;

use super::{SqliteBackend, db};
use crate::{PubsubItem, Result};

pub(super) const NODE: &str = "SELECT config FROM pubsub_nodes WHERE username = ?1 AND node = ?2";
pub(super) const NODES: &str = "SELECT node, config FROM pubsub_nodes WHERE username = ?1";
pub(super) const PUT_NODE: &str = "INSERT INTO pubsub_nodes (username, node, config) VALUES (?1, ?2, ?3) \
    ON CONFLICT (username, node) DO UPDATE SET config = excluded.config";
pub(super) const DELETE_NODE: &str = "DELETE FROM pubsub_nodes WHERE username = ?1 AND node = ?2";
pub(super) const DELETE_ITEM: &str =
    "DELETE FROM pubsub_items WHERE username = ?1 AND node = ?2 AND item_id = ?3";
pub(super) const INSERT_ITEM: &str =
    "INSERT INTO pubsub_items (username, node, item_id, payload) VALUES (?1, ?2, ?3, ?4)";
pub(super) const TRIM: &str = "DELETE FROM pubsub_items WHERE username = ?1 AND node = ?2 AND id <= \
    (SELECT id FROM pubsub_items WHERE username = ?1 AND node = ?2 ORDER BY id DESC LIMIT 1 OFFSET ?3)";
pub(super) const NEWEST: &str = "SELECT item_id, payload FROM pubsub_items \
    WHERE username = ?1 AND node = ?2 ORDER BY id DESC LIMIT ?3";
pub(super) const BY_ID: &str =
    "SELECT item_id, payload FROM pubsub_items WHERE username = ?1 AND node = ?2 AND item_id = ?3";
pub(super) const PURGE: &str = "DELETE FROM pubsub_items WHERE username = ?1 AND node = ?2";

impl SqliteBackend {
    pub(crate) async fn pubsub_node(&self, username: &str, node: &str) -> Result<Option<String>> {
        let (u, n) = (username.to_owned(), node.to_owned());
        self.read(move |conn| {
            conn.prepare_cached(NODE)
                .map_err(db)?
                .query_row([&u, &n], |r| r.get(0))
                .optional()
                .map_err(db)
        })
        .await
    }

    pub(crate) async fn pubsub_nodes(&self, username: &str) -> Result<Vec<(String, String)>> {
        let u = username.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(NODES).map_err(db)?;
            let rows = stmt
                .query_map([&u], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(db)?;
            rows.collect::<rusqlite::Result<_>>().map_err(db)
        })
        .await
    }

    pub(crate) async fn pubsub_put_node(
        &self,
        username: &str,
        node: &str,
        config: &str,
    ) -> Result<()> {
        let (u, n, c) = (username.to_owned(), node.to_owned(), config.to_owned());
        self.write(move |conn| {
            conn.prepare_cached(PUT_NODE)
                .map_err(db)?
                .execute([&u, &n, &c])
                .map_err(db)?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn pubsub_delete_node(&self, username: &str, node: &str) -> Result<bool> {
        let (u, n) = (username.to_owned(), node.to_owned());
        self.write(move |conn| {
            let gone = conn
                .prepare_cached(DELETE_NODE)
                .map_err(db)?
                .execute([&u, &n])
                .map_err(db)?;
            Ok(gone > 0)
        })
        .await
    }

    pub(crate) async fn pubsub_publish(
        &self,
        username: &str,
        node: &str,
        item: PubsubItem,
        max_items: usize,
    ) -> Result<()> {
        let (u, n) = (username.to_owned(), node.to_owned());
        self.write(move |conn| {
            conn.prepare_cached(DELETE_ITEM)
                .map_err(db)?
                .execute([&u, &n, &item.id])
                .map_err(db)?;
            conn.prepare_cached(INSERT_ITEM)
                .map_err(db)?
                .execute([&u, &n, &item.id, &item.payload])
                .map_err(db)?;
            conn.prepare_cached(TRIM)
                .map_err(db)?
                .execute(rusqlite::params![u, n, max_items as i64])
                .map_err(db)?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn pubsub_items(
        &self,
        username: &str,
        node: &str,
        max: Option<usize>,
        ids: Option<Vec<String>>,
    ) -> Result<Vec<PubsubItem>> {
        let (u, n) = (username.to_owned(), node.to_owned());
        self.read(move |conn| {
            let row = |r: &rusqlite::Row<'_>| {
                Ok(PubsubItem {
                    id: r.get(0)?,
                    payload: r.get(1)?,
                })
            };
            if let Some(ids) = ids {
                let mut stmt = conn.prepare_cached(BY_ID).map_err(db)?;
                let mut items = Vec::new();
                for id in ids {
                    if let Some(item) = stmt.query_row([&u, &n, &id], row).optional().map_err(db)? {
                        items.push(item);
                    }
                }
                return Ok(items);
            }
            let limit = max.map_or(-1, |m| m as i64);
            let mut stmt = conn.prepare_cached(NEWEST).map_err(db)?;
            let mut items = stmt
                .query_map(rusqlite::params![u, n, limit], row)
                .map_err(db)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(db)?;
            items.reverse();
            Ok(items)
        })
        .await
    }

    pub(crate) async fn pubsub_retract(
        &self,
        username: &str,
        node: &str,
        item_id: &str,
    ) -> Result<bool> {
        let (u, n, i) = (username.to_owned(), node.to_owned(), item_id.to_owned());
        self.write(move |conn| {
            let gone = conn
                .prepare_cached(DELETE_ITEM)
                .map_err(db)?
                .execute([&u, &n, &i])
                .map_err(db)?;
            Ok(gone > 0)
        })
        .await
    }

    pub(crate) async fn pubsub_purge(&self, username: &str, node: &str) -> Result<()> {
        let (u, n) = (username.to_owned(), node.to_owned());
        self.write(move |conn| {
            conn.prepare_cached(PURGE)
                .map_err(db)?
                .execute([&u, &n])
                .map_err(db)?;
            Ok(())
        })
        .await
    }
}
