//! The SQLite engine: one writer thread that commits every waiting write in one transaction
//! (group commit, each request in its own savepoint so one failure spoils nothing else), and a
//! small pool of read connections used from blocking tasks.

use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use anyhow::Context;
use rusqlite::Connection;
use rusqlite_migration::{M, Migrations};
use tokio::sync::{Semaphore, oneshot};

use crate::{StoreError, StoreOptions};

/// Most requests committed together.
const MAX_BATCH: usize = 512;

/// Runs a request inside the batch transaction; returns what to do once the batch committed.
type Job = Box<dyn FnOnce(&Connection) -> Box<dyn FnOnce(Result<(), String>) + Send> + Send>;

enum Request {
    Job(Job),
    Shutdown,
}

pub(crate) struct Sqlite {
    writer: Mutex<Option<mpsc::Sender<Request>>>,
    writer_thread: Mutex<Option<JoinHandle<()>>>,
    readers: Arc<Mutex<Vec<Connection>>>,
    read_permits: Arc<Semaphore>,
}

fn migrations() -> Migrations<'static> {
    Migrations::new(vec![M::up(include_str!(
        "../migrations/sqlite/001_core.sql"
    ))])
}

fn open_connection(path: &Path, opts: &StoreOptions) -> anyhow::Result<Connection> {
    let conn = Connection::open(path).map_err(|e| {
        anyhow::anyhow!(
            "cannot open database {}: {e} — check that data_dir exists and is writable by hearth",
            path.display()
        )
    })?;
    let sync = if opts.synchronous_full {
        "FULL"
    } else {
        "NORMAL"
    };
    conn.execute_batch(&format!(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous={sync}; PRAGMA foreign_keys=ON; PRAGMA busy_timeout=30000; PRAGMA temp_store=MEMORY;"
    ))
    .with_context(|| format!("cannot configure database {}", path.display()))?;
    Ok(conn)
}

impl Sqlite {
    pub(crate) fn open(path: &Path, opts: &StoreOptions) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| {
                format!("cannot create directory {} for the database", dir.display())
            })?;
        }
        let mut conn = open_connection(path, opts)?;
        migrations().to_latest(&mut conn).with_context(|| {
            format!(
                "cannot migrate database {} to the current schema",
                path.display()
            )
        })?;
        let readers = (0..opts.read_connections.max(1))
            .map(|_| open_connection(path, opts))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("hearth-sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx))
            .context("cannot start the database writer thread")?;
        Ok(Self {
            writer: Mutex::new(Some(tx)),
            writer_thread: Mutex::new(Some(thread)),
            read_permits: Arc::new(Semaphore::new(readers.len())),
            readers: Arc::new(Mutex::new(readers)),
        })
    }

    /// Runs `f` in the writer's transaction; resolves once it is committed.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T, StoreError>>();
        let job: Job = Box::new(move |conn| {
            let result = run_in_savepoint(conn, f);
            Box::new(move |committed: Result<(), String>| {
                let result = match committed {
                    Ok(()) => result,
                    Err(e) => Err(StoreError::Other(anyhow::anyhow!("commit failed: {e}"))),
                };
                let _ = tx.send(result);
            })
        });
        let sender = self.writer.lock().expect("writer lock").clone();
        let sender =
            sender.ok_or_else(|| StoreError::Other(anyhow::anyhow!("the database is closed")))?;
        sender
            .send(Request::Job(job))
            .map_err(|_| StoreError::Other(anyhow::anyhow!("the database writer stopped")))?;
        rx.await
            .map_err(|_| StoreError::Other(anyhow::anyhow!("the database writer stopped")))?
    }

    /// Runs `f` on a read connection in a blocking task.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let permit = self
            .read_permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Other(anyhow::anyhow!("the database is closed")))?;
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let conn = readers
                .lock()
                .expect("readers lock")
                .pop()
                .expect("a permit guarantees a connection");
            let result = f(&conn);
            readers.lock().expect("readers lock").push(conn);
            drop(permit);
            result
        })
        .await
        .map_err(|e| StoreError::Other(anyhow::anyhow!("database read task failed: {e}")))?
    }

    /// Commits what is queued and stops the writer.
    pub(crate) async fn close(&self) {
        let sender = self.writer.lock().expect("writer lock").take();
        if let Some(s) = sender {
            let _ = s.send(Request::Shutdown);
        }
        let thread = self.writer_thread.lock().expect("writer lock").take();
        if let Some(t) = thread {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

fn run_in_savepoint<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.execute_batch("SAVEPOINT job").map_err(db)?;
    let result = f(conn);
    let end = if result.is_ok() {
        "RELEASE job"
    } else {
        "ROLLBACK TO job; RELEASE job"
    };
    conn.execute_batch(end).map_err(db)?;
    result
}

fn writer_loop(conn: Connection, rx: mpsc::Receiver<Request>) {
    let mut stop = false;
    while !stop {
        let Ok(first) = rx.recv() else { break };
        let mut batch = Vec::new();
        match first {
            Request::Job(j) => batch.push(j),
            Request::Shutdown => stop = true,
        }
        while batch.len() < MAX_BATCH && !stop {
            match rx.try_recv() {
                Ok(Request::Job(j)) => batch.push(j),
                Ok(Request::Shutdown) => stop = true,
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            continue;
        }
        let began = conn.execute_batch("BEGIN IMMEDIATE");
        let finishers: Vec<_> = batch.into_iter().map(|job| job(&conn)).collect();
        let committed = began.and_then(|()| conn.execute_batch("COMMIT")).map_err(|e| {
            tracing::error!(error = %e, "database commit failed; the affected requests report an error");
            let _ = conn.execute_batch("ROLLBACK");
            e.to_string()
        });
        for finish in finishers {
            finish(committed.clone());
        }
    }
}

pub(crate) fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Other(anyhow::Error::new(e))
}
