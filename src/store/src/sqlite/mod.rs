//! The SQLite backend.
//!
//! Writes go to one writer thread that owns the write connection. It takes every request
//! waiting in its queue and runs them in one transaction (group commit: one WAL append and, with
//! `synchronous=FULL`, one fsync for the lot), each request in its own savepoint so a failing
//! one is rolled back alone; then it answers each caller. A request may carry several writes
//! (those a stanza's handling deferred, [`crate::PendingWrites`], with the one it waits for):
//! they commit together or not at all. Reads run on a small pool of read-only connections in
//! blocking tasks; WAL lets them proceed while the writer writes.

mod accounts;
mod archive;
mod blocklist;
mod fast;
mod gdpr;
mod invitations;
mod muc;
mod offline;
mod private;
mod pubsub;
mod push;
mod resumable;
mod roster;
mod settings;
mod shared_roster;
#[cfg(test)]
mod tests;
mod upload;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::anyhow;
use rusqlite::{Connection, ErrorCode, ffi};
use rusqlite_migration::{M, MigrationDefinitionError, Migrations};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use crate::pending::{Deferred, PendingWrites, UNCOMMITTED};
use crate::{Result, StoreError, StoreOptions};

/// The schema, one step per file; `user_version` records how far a database got.
fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(include_str!("../../migrations/sqlite/001_core.sql")),
        M::up(include_str!("../../migrations/sqlite/006_resumable.sql")),
        M::up(include_str!("../../migrations/sqlite/007_push.sql")),
        M::up(include_str!(
            "../../migrations/sqlite/008_private_vcard.sql"
        )),
        M::up(include_str!("../../migrations/sqlite/009_blocklist.sql")),
        M::up(include_str!("../../migrations/sqlite/010_archive.sql")),
        M::up(include_str!("../../migrations/sqlite/011_pubsub.sql")),
        M::up(include_str!("../../migrations/sqlite/012_fast.sql")),
        M::up(include_str!(
            "../../migrations/sqlite/013_archive_fts_batched.sql"
        )),
        M::up(include_str!("../../migrations/sqlite/014_muc.sql")),
        M::up(include_str!(
            "../../migrations/sqlite/015_archive_owners.sql"
        )),
        M::up(include_str!(
            "../../migrations/sqlite/016_archive_tombstones.sql"
        )),
        M::up(include_str!("../../migrations/sqlite/017_muc_vcard.sql")),
        M::up(include_str!(
            "../../migrations/sqlite/018_shared_roster.sql"
        )),
        M::up(include_str!("../../migrations/sqlite/019_uploads.sql")),
        M::up(include_str!("../../migrations/sqlite/020_admin.sql")),
        M::up(include_str!("../../migrations/sqlite/021_gdpr.sql")),
        M::up(include_str!("../../migrations/sqlite/022_invitations.sql")),
    ])
}

/// Writes that may wait for the writer before callers wait to queue (back-pressure).
const QUEUE: usize = 4096;
/// Most writes committed in one transaction.
const MAX_BATCH: usize = 1024;

/// Runs a write inside the batch's transaction. Returns whether it succeeded, and how to
/// answer its caller once the batch committed (`Ok`) or failed.
pub(crate) type Job = Box<dyn FnOnce(&Connection) -> (bool, Reply) + Send>;
type Reply = Box<dyn FnOnce(std::result::Result<(), &str>) + Send>;

enum Request {
    /// Writes that commit together: when one fails, all of them are undone.
    Write(Vec<Job>),
    /// Commit what came before, then stop.
    Close,
}

pub(crate) struct SqliteBackend {
    // Fields drop in order: the queue closes first, so the writer commits what is queued and
    // stops; then its thread is joined.
    writer: mpsc::Sender<Request>,
    writer_thread: WriterThread,
    readers: Arc<Mutex<Vec<Connection>>>,
    read_permits: Arc<Semaphore>,
    pub(crate) latency: crate::Latency,
}

impl SqliteBackend {
    pub(crate) fn open(path: &Path, opts: &StoreOptions) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                anyhow!(
                    "cannot create directory {} for the database: {e} — check that hearth's user may create it (data_dir ownership)",
                    dir.display()
                )
            })?;
        }
        let mut conn = connect(path, opts)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(|e| open_error(path, &e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), %mode,
                "the database is not in WAL mode (a network filesystem?): reads will wait for writes");
        }
        migrations()
            .to_latest(&mut conn)
            .map_err(|e| migration_error(path, e))?;
        let readers = (0..opts.read_connections.max(1))
            .map(|_| {
                let c = connect(path, opts)?;
                c.pragma_update(None, "query_only", true)
                    .map_err(|e| open_error(path, &e))?;
                Ok(c)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let (writer, rx) = mpsc::channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("hearth-db-writer".into())
            .spawn(move || writer_loop(&conn, rx))
            .map_err(|e| anyhow!("cannot start the database writer thread: {e}"))?;
        Ok(Self {
            writer,
            writer_thread: WriterThread(Mutex::new(Some(thread))),
            read_permits: Arc::new(Semaphore::new(readers.len())),
            readers: Arc::new(Mutex::new(readers)),
            latency: Default::default(),
        })
    }

    /// Runs `f` in the writer's next transaction; resolves once that committed. A caller that
    /// stops waiting does not cancel the write.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.write_together(Vec::new(), f).await
    }

    /// Runs `f` in one transaction with the writes `pending` holds, which commit with it or
    /// fail with it; resolves once that committed.
    async fn write_with<T, F>(&self, pending: &PendingWrites, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.write_together(pending.take_queued(), f).await
    }

    /// Runs `jobs` and then `f` as one request; resolves once it committed.
    async fn write_together<T, F>(&self, mut jobs: Vec<Job>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let started = std::time::Instant::now();
        let (job, answer) = job(f);
        jobs.push(job);
        self.writer
            .send(Request::Write(jobs))
            .await
            .map_err(|_| other("the database is closed"))?;
        let result = answer.await.map_err(|_| other(UNCOMMITTED))?;
        self.latency.write.record(started.elapsed());
        result
    }

    /// Leaves `f` in `pending`, to commit with the next write made through it or at
    /// [`Self::commit_pending`]; once `pending` was committed, writes `f` at once.
    async fn defer<F>(&self, pending: &PendingWrites, what: &'static str, account: &str, f: F)
    where
        F: FnOnce(&Connection) -> Result<()> + Send + 'static,
    {
        let (job, answer) = job(f);
        let deferred = Deferred::new(what, account, answer);
        if let Err((job, deferred)) = pending.queue(job, deferred) {
            self.send_deferred(vec![job]).await;
            deferred.wait().await;
        }
    }

    /// Commits what `pending` still holds and waits until everything deferred in it committed;
    /// failures are logged. Later writes through `pending` are written at once.
    pub(crate) async fn commit_pending(&self, pending: &PendingWrites) {
        let (jobs, deferred) = pending.close();
        if !jobs.is_empty() {
            self.send_deferred(jobs).await;
        }
        for d in deferred {
            d.wait().await;
        }
    }

    /// Sends deferred writes; a closed database answers them with an error, which their
    /// [`Deferred`] logs.
    async fn send_deferred(&self, jobs: Vec<Job>) {
        // The request comes back when the queue is closed; dropping it fails its writes.
        let _ = self.writer.send(Request::Write(jobs)).await;
    }

    /// Runs `f` on a read connection in a blocking task.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let started = std::time::Instant::now();
        let permit = self.read_permits.clone().acquire_owned().await;
        let permit = permit.map_err(|_| other("the read pool is closed"))?;
        let pool = self.readers.clone();
        let result = tokio::task::spawn_blocking(move || f(&mut Lease::take(pool, permit)))
            .await
            .map_err(|e| other(format!("a database read failed: {e}")))?;
        self.latency.read.record(started.elapsed());
        result
    }

    pub(crate) async fn close(&self) {
        // Fails only if the writer already stopped.
        let _ = self.writer.send(Request::Close).await;
        let thread = self.writer_thread.take();
        if let Some(t) = thread {
            let _ = tokio::task::spawn_blocking(move || join(t)).await;
        }
    }
}

fn connect(path: &Path, opts: &StoreOptions) -> anyhow::Result<Connection> {
    let conn = Connection::open(path).map_err(|e| open_error(path, &e))?;
    let sync = if opts.synchronous_full {
        "FULL"
    } else {
        "NORMAL"
    };
    conn.execute_batch(&format!(
        "PRAGMA synchronous={sync}; PRAGMA foreign_keys=ON; PRAGMA busy_timeout=30000; PRAGMA temp_store=MEMORY;"
    ))
    .map_err(|e| open_error(path, &e))?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// Says what an administrator can do about a failure to open the database.
fn open_error(path: &Path, e: &rusqlite::Error) -> anyhow::Error {
    let p = path.display();
    match e.sqlite_error_code() {
        Some(ErrorCode::CannotOpen | ErrorCode::ReadOnly | ErrorCode::PermissionDenied) => {
            // SQLite does not say why; the OS does.
            let cause = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .err()
                .map_or_else(|| e.to_string(), |io| io.to_string());
            anyhow!(
                "cannot open database {p}: {cause} — check that hearth's user owns data_dir and may read and write this file and create its -wal and -shm files beside it"
            )
        }
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => anyhow!(
            "cannot open database {p}: {e} — the file is not a hearth database or is damaged; restore it from a backup, or move it away to start empty"
        ),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => anyhow!(
            "cannot open database {p}: {e} — another process holds it; is another hearth running with the same data_dir?"
        ),
        Some(ErrorCode::DiskFull) => anyhow!("cannot open database {p}: the disk is full"),
        _ => anyhow!("cannot open database {p}: {e}"),
    }
}

fn migration_error(path: &Path, e: rusqlite_migration::Error) -> anyhow::Error {
    match e {
        rusqlite_migration::Error::MigrationDefinition(
            MigrationDefinitionError::DatabaseTooFarAhead,
        ) => anyhow!(
            "database {} was written by a newer hearth (schema newer than this build knows) — run that version, or restore a backup made before the upgrade",
            path.display()
        ),
        rusqlite_migration::Error::RusqliteError { err, .. } => {
            open_error(path, &err).context(format!(
                "cannot migrate database {} to the current schema",
                path.display()
            ))
        }
        e => anyhow!(
            "cannot migrate database {} to the current schema: {e}",
            path.display()
        ),
    }
}

fn other(msg: impl std::fmt::Display + std::fmt::Debug + Send + Sync + 'static) -> StoreError {
    StoreError::Other(anyhow::Error::msg(msg))
}

/// Every foreign key references `accounts(username)`: a violation means the account is missing.
fn db(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error() {
        Some(s) if s.extended_code == ffi::SQLITE_CONSTRAINT_FOREIGNKEY => {
            StoreError::NoSuchAccount
        }
        _ => StoreError::Other(e.into()),
    }
}

/// Wraps `f` as a job for the writer, and the receiver of its answer.
fn job<T, F>(f: F) -> (Job, oneshot::Receiver<Result<T>>)
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    let job: Job = Box::new(move |conn| {
        let result = f(conn);
        let succeeded = result.is_ok();
        let reply: Reply = Box::new(move |batch| {
            let answer = match batch {
                Ok(()) => result,
                Err(e) => Err(other(format!("the database transaction failed: {e}"))),
            };
            // The caller may have stopped waiting.
            let _ = tx.send(answer);
        });
        (succeeded, reply)
    });
    (job, rx)
}

/// What a write that succeeded is told when another write of its request failed.
const UNDONE: &str = "undone, as a write made together with it failed";

/// What a write's reply is given besides the commit's outcome: `Err` when it was undone for
/// another write of its request.
type Told = std::result::Result<(), &'static str>;

/// Runs a request's writes; when one fails, undoes them all (to the savepoint, or the whole
/// transaction when the request is alone in it). Returns whether they all succeeded, and the
/// replies with what each is told if they did not.
fn run_request(conn: &Connection, jobs: Vec<Job>, savepoint: bool) -> (bool, Vec<(Reply, Told)>) {
    if savepoint && let Err(e) = statement(conn, "SAVEPOINT request") {
        tracing::error!(error = %e, "cannot start a savepoint; the write fails");
        // Dropping the jobs answers their callers with an error.
        return (false, Vec::new());
    }
    let results: Vec<(bool, Reply)> = jobs.into_iter().map(|job| job(conn)).collect();
    let all = results.iter().all(|(succeeded, _)| *succeeded);
    if savepoint {
        let end = if all {
            statement(conn, "RELEASE request")
        } else {
            statement(conn, "ROLLBACK TO request").and_then(|()| statement(conn, "RELEASE request"))
        };
        if let Err(e) = end {
            tracing::error!(error = %e, "cannot end a savepoint");
        }
    }
    let replies = results
        .into_iter()
        // A failed write reports its own error (`Ok` hands it through); the others, why they
        // were undone.
        .map(|(succeeded, reply)| {
            (
                reply,
                if all || !succeeded {
                    Ok(())
                } else {
                    Err(UNDONE)
                },
            )
        })
        .collect();
    (all, replies)
}

/// Runs a statement the writer runs for every transaction, prepared once.
fn statement(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

/// What the writer did, for the log.
#[derive(Debug, Default, PartialEq, Eq)]
struct WriterStats {
    writes: u64,
    transactions: u64,
}

fn writer_loop(conn: &Connection, mut rx: mpsc::Receiver<Request>) -> WriterStats {
    let mut stats = WriterStats::default();
    let mut queued = Vec::with_capacity(MAX_BATCH);
    let mut open = true;
    while open && rx.blocking_recv_many(&mut queued, MAX_BATCH) > 0 {
        let mut requests = Vec::with_capacity(queued.len());
        for request in queued.drain(..) {
            match request {
                Request::Write(jobs) => requests.push(jobs),
                Request::Close => open = false,
            }
        }
        if requests.is_empty() {
            continue;
        }
        if let Err(e) = statement(conn, "BEGIN IMMEDIATE") {
            // Dropping the jobs answers their callers with an error.
            tracing::error!(error = %e, requests = requests.len(), "cannot start a database transaction; the writes fail");
            continue;
        }
        // Most batches under a steady load hold one request; it needs no savepoint (which
        // costs a copy of every page it touches), as a failure can undo the whole transaction.
        let alone = requests.len() == 1;
        let mut writes = 0;
        let mut replies = Vec::new();
        let mut any_succeeded = false;
        for jobs in requests {
            writes += jobs.len() as u64;
            let (succeeded, answers) = run_request(conn, jobs, !alone);
            any_succeeded |= succeeded;
            replies.extend(answers);
        }
        if !any_succeeded {
            let _ = statement(conn, "ROLLBACK");
            for (reply, told) in replies {
                reply(told);
            }
            continue;
        }
        let committed = statement(conn, "COMMIT").map_err(|e| {
            tracing::error!(error = %e, writes = replies.len(), "database commit failed; the writes fail");
            let _ = statement(conn, "ROLLBACK");
            e.to_string()
        });
        if committed.is_ok() {
            stats.writes += writes;
            stats.transactions += 1;
        }
        for (reply, told) in replies {
            reply(told.and(committed.as_ref().map(|_| ()).map_err(String::as_str)));
        }
    }
    stats
}

/// The writer thread, joined on drop (after the queue closed) so queued writes are committed.
struct WriterThread(Mutex<Option<JoinHandle<WriterStats>>>);

impl WriterThread {
    fn take(&self) -> Option<JoinHandle<WriterStats>> {
        self.0.lock().expect("writer thread lock").take()
    }
}

impl Drop for WriterThread {
    fn drop(&mut self) {
        if let Some(t) = self.take() {
            join(t);
        }
    }
}

fn join(thread: JoinHandle<WriterStats>) {
    match thread.join() {
        Ok(s) => tracing::debug!(
            writes = s.writes,
            transactions = s.transactions,
            "database writer stopped"
        ),
        Err(_) => tracing::error!("the database writer thread panicked"),
    }
}

/// A read connection taken from the pool, given back on drop (even if the read panicked).
struct Lease {
    pool: Arc<Mutex<Vec<Connection>>>,
    conn: Option<Connection>,
    _permit: OwnedSemaphorePermit,
}

impl Lease {
    /// The permit guarantees a connection is free.
    fn take(pool: Arc<Mutex<Vec<Connection>>>, permit: OwnedSemaphorePermit) -> Self {
        let conn = pool.lock().expect("read pool lock").pop();
        Self {
            pool,
            conn,
            _permit: permit,
        }
    }
}

impl std::ops::Deref for Lease {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn.as_ref().expect("one connection per permit")
    }
}

impl std::ops::DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut Connection {
        self.conn.as_mut().expect("one connection per permit")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            self.pool.lock().expect("read pool lock").push(c);
        }
    }
}
