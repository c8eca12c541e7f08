//! The periodic sweep of the upload directory: expired files and their rows, abandoned slots,
//! files whose row is gone (their account was deleted), and partial uploads left behind by a
//! crash.

use std::io::ErrorKind;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use hearth_core::server::Server;

use super::FileUpload;
use super::slot::is_slot_id;

/// Extra time before a slot or partial file counts as abandoned, for clocks and slow disks.
const GRACE: Duration = Duration::from_secs(60);

/// Creates the upload directory, then sweeps it every `sweep_interval_secs`. (Created here
/// rather than at load, which `hearth user` and `hearth xeps` do too.)
pub(super) async fn run(server: Arc<Server>, upload: Arc<FileUpload>) -> anyhow::Result<()> {
    tokio::fs::create_dir_all(&upload.dir).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot create the upload directory {} (modules.upload.path): {e} — check that hearth's user may create it; uploads fail until it exists",
            upload.dir.display()
        )
    })?;
    let mut every = tokio::time::interval(Duration::from_secs(upload.cfg.sweep_interval_secs));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // The first tick is immediate: files of accounts deleted while hearth was stopped go
        // at startup.
        every.tick().await;
        if let Err(e) = upload.sweep(&server).await {
            tracing::error!(directory = %upload.dir.display(), error = %e, "the upload sweep failed; retrying at the next one");
        }
    }
}

/// What one sweep removed.
#[derive(Default)]
struct Removed {
    expired: usize,
    orphans: usize,
    partial: usize,
}

impl FileUpload {
    async fn sweep(&self, server: &Server) -> anyhow::Result<()> {
        let started = SystemTime::now();
        let upload_time = Duration::from_secs(self.cfg.upload_timeout_secs) + GRACE;
        let expire_after = Duration::from_secs(self.cfg.expire_after_secs);
        let mut removed = Removed::default();
        let expired = server
            .store
            .upload_expire(
                (!expire_after.is_zero()).then(|| started - expire_after),
                started - upload_time,
            )
            .await?;
        for id in &expired {
            if self.remove(id).await {
                removed.expired += 1;
            }
        }
        // Files younger than this list may belong to slots handed out since.
        let known = server.store.upload_ids().await?;
        let mut stored = 0;
        let mut entries = tokio::fs::read_dir(&self.dir).await?;
        while let Some(entry) = entries.next_entry().await? {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let meta = match entry.metadata().await {
                Ok(meta) if meta.is_file() => meta,
                _ => continue,
            };
            let modified = meta.modified().unwrap_or(started);
            if let Some(id) = name.strip_suffix(".part").filter(|id| is_slot_id(id)) {
                let age = started.duration_since(modified).unwrap_or_default();
                if age > upload_time && self.remove(&name).await {
                    tracing::debug!(slot = id, "removed an abandoned partial upload");
                    removed.partial += 1;
                }
            } else if known.contains(&name) {
                stored += meta.len();
            } else if is_slot_id(&name) && modified < started && self.remove(&name).await {
                removed.orphans += 1;
            }
        }
        self.bytes_stored.store(stored, Ordering::Relaxed);
        if removed.expired + removed.orphans + removed.partial > 0 {
            tracing::info!(
                expired = removed.expired,
                of_deleted_accounts = removed.orphans,
                partial = removed.partial,
                bytes_stored = stored,
                "upload sweep removed files"
            );
        }
        Ok(())
    }

    /// Removes a file of the upload directory; whether it was there.
    async fn remove(&self, name: &str) -> bool {
        match tokio::fs::remove_file(self.dir.join(name)).await {
            Ok(()) => true,
            Err(e) if e.kind() == ErrorKind::NotFound => false,
            Err(e) => {
                tracing::warn!(file = name, directory = %self.dir.display(), error = %e, "cannot remove an uploaded file");
                false
            }
        }
    }
}
