//! HTTP File Upload (XEP-0363): the slots handed out and the files stored through them.

use std::collections::HashSet;
use std::time::SystemTime;

use crate::{Result, Store};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// The slot id: the file's name on disk and part of its URL.
    pub id: String,
    pub username: String,
    pub filename: String,
    pub size: u64,
    pub content_type: Option<String>,
    pub created: SystemTime,
    /// Until when the PUT is accepted.
    pub put_deadline: SystemTime,
    /// When the file was stored; `None` while the slot waits for its PUT.
    pub completed: Option<SystemTime>,
}

/// Why a slot was refused: the user's stored files and open slots already use `used` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverQuota {
    pub used: u64,
    /// When the user's oldest stored file was stored (expiry frees it first).
    pub oldest: Option<SystemTime>,
}

impl Store {
    /// Records a new slot (`completed` is ignored) unless the owner's stored files, open
    /// slots (deadline after `now`) and this one would exceed `quota` bytes (0: no quota).
    pub async fn upload_slot_create(
        &self,
        slot: Upload,
        quota: u64,
        now: SystemTime,
    ) -> Result<std::result::Result<(), OverQuota>> {
        dispatch!(self.upload_slot_create(slot, quota, now))
    }

    pub async fn upload_get(&self, id: &str) -> Result<Option<Upload>> {
        dispatch!(self.upload_get(id))
    }

    /// Marks a waiting slot's file as stored, with its content type; `false` if the slot is
    /// gone or was already completed.
    pub async fn upload_complete(
        &self,
        id: &str,
        content_type: Option<String>,
        at: SystemTime,
    ) -> Result<bool> {
        dispatch!(self.upload_complete(id, content_type, at))
    }

    /// Removes the rows of files stored before `completed_before` (`None`: keep files) and of
    /// slots whose deadline passed before `abandoned_before`; returns their ids.
    pub async fn upload_expire(
        &self,
        completed_before: Option<SystemTime>,
        abandoned_before: SystemTime,
    ) -> Result<Vec<String>> {
        dispatch!(self.upload_expire(completed_before, abandoned_before))
    }

    /// The ids of every slot, waiting or completed (files without one are orphans).
    pub async fn upload_ids(&self) -> Result<HashSet<String>> {
        dispatch!(self.upload_ids())
    }
}
