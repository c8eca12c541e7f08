//! Data protection (GDPR): an account's data exported (XEP-0227, see [`export`]), erased at once
//! or after a grace period, and chat data kept only as long as `[retention]` says.
//!
//! Erasure removes everything the account owns (the database cascades from `accounts`), its
//! uploaded files on disk, its affiliations and registered nicknames in rooms, and the
//! subscription requests it sent that others have not answered. Others' rosters stay theirs.
//! Room archives belong to the room, as in Prosody and ejabberd: the user's messages there
//! stay, under the room nickname, until `[retention] muc_archive_days` removes them.
//!
//! One worker, at startup and every `retention.check_interval_secs`, erases the accounts whose
//! grace period ended and removes archived and offline messages past their retention period.
//! Uploaded files past `retention.upload_days` go with the upload module's sweep, which
//! applies the shorter of that and `modules.upload.expire_after_secs`.

pub mod export;

use std::io::ErrorKind;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use hearth_core::config::Config as ServerConfig;
use hearth_core::datetime::now_millis;
use hearth_core::jid::Jid;
use hearth_core::module::{Module, Registrar, Spec, SupportStatus};
use hearth_core::server::Server;
use hearth_store::{ArchiveOwners, Store, StoreError};
use serde::Deserialize;

use crate::adhoc::AUDIT;

/// Rows deleted per write: each batch is one short transaction, so other writes go between.
const BATCH: usize = 1000;
const DAY_MILLIS: i64 = 86_400_000;

/// `modules.mam.retention_days`, from before `[retention]`: it applied to every archive, and
/// still does when `[retention]` sets no archive period.
#[derive(Default)]
pub struct LegacyArchiveDays(pub AtomicU64);

pub struct Gdpr;

/// The settings are the top-level `[retention]`; this section only turns the worker off.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {}

impl Module for Gdpr {
    const NAME: &'static str = "gdpr";
    const SPECS: &'static [Spec] = &[Spec {
        id: "XEP-0227",
        version: "1.1",
        status: SupportStatus::Partial,
        note: "export only, one account at a time (`hearth user export`): roster, incoming subscription requests, vCard, private XML, PEP nodes (configuration and items), offline messages, message archive (urn:xmpp:pie:0#mam); blocklist, uploads, room affiliations and push registrations under urn:hearth:export:0; no SCRAM credentials or passwords (never exported), no privacy lists (not implemented); no import",
    }];
    type Config = Config;

    fn init(_: Config, reg: &mut Registrar) -> anyhow::Result<Arc<Self>> {
        let legacy = reg.shared::<LegacyArchiveDays>();
        reg.worker("gdpr", move |server| run(server, legacy));
        Ok(Arc::new(Gdpr))
    }
}

/// What an erasure removed besides the database rows.
#[derive(Debug, Default)]
pub struct Erased {
    pub files: usize,
}

/// Erases the account `username` and all its data, its uploaded files included. Its sessions
/// are the caller's to end. Fails with [`StoreError::NoSuchAccount`].
pub async fn erase(
    store: &Store,
    config: &ServerConfig,
    username: &str,
) -> Result<Erased, StoreError> {
    if !store.account_exists(username).await? {
        return Err(StoreError::NoSuchAccount);
    }
    // The archive can be large: in batches, so no single write holds the database for long.
    while store.archive_clear(username, BATCH).await? == BATCH {}
    let jid = format!("{username}@{}", config.domain);
    let uploads = store.account_erase(username, &jid).await?;
    let dir = crate::upload::directory(config);
    let mut erased = Erased::default();
    for id in &uploads {
        match tokio::fs::remove_file(dir.join(id)).await {
            Ok(()) => erased.files += 1,
            // A slot whose file never came, or one the sweep removed.
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(file = %dir.join(id).display(), error = %e,
                "cannot remove an uploaded file of an erased account; the upload sweep retries"),
        }
    }
    Ok(erased)
}

async fn run(server: Arc<Server>, legacy: Arc<LegacyArchiveDays>) -> anyhow::Result<()> {
    let every = Duration::from_secs(server.config.retention.check_interval_secs);
    loop {
        erase_due(&server).await;
        enforce_retention(&server, legacy.0.load(Ordering::Relaxed)).await;
        tokio::time::sleep(every).await;
    }
}

/// Erases the accounts whose grace period ended, ending their sessions first.
async fn erase_due(server: &Arc<Server>) {
    let due = match server
        .store
        .accounts_due_for_erasure(SystemTime::now())
        .await
    {
        Ok(due) => due,
        Err(e) => {
            tracing::error!(error = %e, "cannot list the accounts due for erasure; retrying later");
            return;
        }
    };
    for username in due {
        let account = format!("{username}@{}", server.domain());
        if let Ok(jid) = Jid::parse(&account) {
            for session in server.sessions.of(jid.bare()) {
                server
                    .disconnect(&session, "not-authorized", "this account was deleted")
                    .await;
            }
        }
        match erase(&server.store, &server.config, &username).await {
            Ok(erased) => {
                tracing::info!(target: AUDIT, by = "server (grace period ended)", %account, files = erased.files, "account erased");
            }
            // Erased meanwhile, by hand.
            Err(StoreError::NoSuchAccount) => {}
            Err(e) => {
                tracing::error!(%account, error = %e, "cannot erase an account whose grace period ended; retrying later");
            }
        }
    }
}

/// Removes archived and offline messages older than `[retention]` allows.
async fn enforce_retention(server: &Server, legacy_archive_days: u64) {
    let r = &server.config.retention;
    let (archive_days, muc_archive_days) = match (r.archive_days, r.muc_archive_days) {
        (0, 0) => (legacy_archive_days, legacy_archive_days),
        set => set,
    };
    let store = &server.store;
    let cutoff = |days: u64| now_millis() - i64::try_from(days).unwrap_or(i64::MAX) * DAY_MILLIS;
    if archive_days > 0 {
        let before = cutoff(archive_days);
        let removed =
            in_batches(|| store.archive_expire(ArchiveOwners::Accounts, before, BATCH)).await;
        report(
            removed,
            "archived 1:1 messages",
            "retention.archive_days",
            archive_days,
        );
    }
    if muc_archive_days > 0 {
        let before = cutoff(muc_archive_days);
        let removed =
            in_batches(|| store.archive_expire(ArchiveOwners::Rooms, before, BATCH)).await;
        report(
            removed,
            "archived room messages",
            "retention.muc_archive_days",
            muc_archive_days,
        );
    }
    if r.offline_days > 0 {
        let before = SystemTime::now() - Duration::from_secs(r.offline_days * 86_400);
        let removed = in_batches(|| store.offline_expire(before, BATCH)).await;
        report(
            removed,
            "offline messages",
            "retention.offline_days",
            r.offline_days,
        );
    }
}

/// Runs `batch` until it removes fewer than [`BATCH`] rows; how many it removed, or the error
/// that stopped it with how many it had removed.
async fn in_batches<F, Fut>(mut batch: F) -> Result<usize, (usize, StoreError)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = hearth_store::Result<usize>>,
{
    let mut removed = 0;
    loop {
        match batch().await {
            Ok(n) => {
                removed += n;
                if n < BATCH {
                    return Ok(removed);
                }
            }
            Err(e) => return Err((removed, e)),
        }
    }
}

fn report(outcome: Result<usize, (usize, StoreError)>, what: &str, key: &str, days: u64) {
    match outcome {
        Ok(0) => {}
        Ok(removed) => {
            tracing::info!(
                removed,
                days,
                "removed {what} past the retention period ({key})"
            )
        }
        Err((removed, e)) => tracing::error!(removed, error = %e,
            "removing {what} past the retention period ({key}) failed; retrying at the next check"),
    }
}
