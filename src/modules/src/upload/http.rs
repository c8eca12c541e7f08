//! The upload routes on the built-in web server: `PUT /upload/{slot}/{filename}?token=…`
//! stores a file once, `GET`/`HEAD` of the same path without the token serves it.

use std::io::ErrorKind;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use futures_util::StreamExt as _;
use hearth_core::server::Server;
use hearth_store::Upload;
use serde::Deserialize;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _, AsyncWriteExt as _};

use super::FileUpload;
use super::slot::{media_type, percent_encode, token_valid};

pub(super) fn router(upload: Arc<FileUpload>) -> Router<Arc<Server>> {
    Router::new()
        .route("/upload/{slot}/{filename}", get(download).put(receive))
        .layer(Extension(upload))
}

/// Why a request was turned down: the status, and a reason for the client and the log.
struct Refusal(StatusCode, String);

impl Refusal {
    fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Refusal(status, reason.into())
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, self.1 + "\n").into_response()
    }
}

fn not_found() -> Refusal {
    Refusal::new(StatusCode::NOT_FOUND, "no such file")
}

fn internal(what: &str, e: impl std::fmt::Display) -> Refusal {
    tracing::error!(error = %e, "{what}");
    Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, what)
}

#[derive(Deserialize)]
struct PutQuery {
    token: Option<String>,
}

async fn receive(
    State(server): State<Arc<Server>>,
    Extension(upload): Extension<Arc<FileUpload>>,
    Path((slot, filename)): Path<(String, String)>,
    Query(query): Query<PutQuery>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let token = query.token.unwrap_or_default();
    match upload
        .receive(&server, &slot, &filename, &token, &headers, body)
        .await
    {
        Ok(()) => StatusCode::CREATED.into_response(),
        Err(refusal) => {
            if refusal.0.is_client_error() {
                tracing::info!(%slot, status = refusal.0.as_u16(), reason = %refusal.1, "upload refused");
            }
            refusal.into_response()
        }
    }
}

/// Removes a partial upload when dropped: on every error, and when the client goes away and
/// the request is dropped mid-body.
struct PartialFile(Option<PathBuf>);

impl Drop for PartialFile {
    fn drop(&mut self) {
        if let Some(path) = self.0.take()
            && let Err(e) = std::fs::remove_file(&path)
            && e.kind() != ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove a partial upload; the next sweep will");
        }
    }
}

/// Holds a slot in `FileUpload::receiving` while its PUT runs.
struct Receiving<'a>(&'a FileUpload, String);

impl Drop for Receiving<'_> {
    fn drop(&mut self) {
        self.0
            .receiving
            .lock()
            .expect("receiving lock")
            .remove(&self.1);
    }
}

impl FileUpload {
    async fn receive(
        &self,
        server: &Server,
        id: &str,
        filename: &str,
        token: &str,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<(), Refusal> {
        let slot = match server.store.upload_get(id).await {
            Ok(Some(slot)) if slot.filename == filename => slot,
            Ok(_) => return Err(Refusal::new(StatusCode::NOT_FOUND, "no such upload slot")),
            Err(e) => return Err(internal("cannot read the upload slot", e)),
        };
        if !token_valid(self.signing_key(), &slot, token) {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "the upload URL is not valid",
            ));
        }
        if slot.completed.is_some() {
            return Err(Refusal::new(
                StatusCode::CONFLICT,
                "this slot was already used",
            ));
        }
        if SystemTime::now() > slot.put_deadline {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "the upload slot expired; ask for a new one",
            ));
        }
        let length = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        match length {
            Some(n) if n > slot.size => {
                return Err(Refusal::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the slot is for {} bytes", slot.size),
                ));
            }
            Some(n) if n == slot.size => {}
            _ => {
                return Err(Refusal::new(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "Content-Length must be the slot's size, {} bytes",
                        slot.size
                    ),
                ));
            }
        }
        let sent_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        if let Some(expected) = &slot.content_type
            && sent_type.is_none_or(|sent| media_type(sent) != media_type(expected))
        {
            return Err(Refusal::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Content-Type must be the slot's, {expected}"),
            ));
        }
        let content_type = slot.content_type.clone().or_else(|| {
            sent_type
                .filter(|t| super::slot::valid_content_type(t))
                .map(String::from)
        });
        let _receiving = self.claim(id)?;
        let started = std::time::Instant::now();
        let partial = self.dir.join(format!("{id}.part"));
        let mut cleanup = PartialFile(Some(partial.clone()));
        let timeout = Duration::from_secs(self.cfg.upload_timeout_secs);
        match tokio::time::timeout(timeout, self.write_body(&partial, body, slot.size)).await {
            Ok(written) => written?,
            Err(_) => {
                return Err(Refusal::new(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "the upload took longer than {} seconds (modules.upload.upload_timeout_secs)",
                        timeout.as_secs()
                    ),
                ));
            }
        }
        let stored = self.dir.join(id);
        tokio::fs::rename(&partial, &stored)
            .await
            .map_err(|e| self.storage_error(e))?;
        cleanup.0 = None;
        // The rename itself survives a crash once the directory is synced.
        if let Err(e) = sync_dir(&self.dir).await {
            tracing::warn!(directory = %self.dir.display(), error = %e, "cannot sync the upload directory");
        }
        let recorded = server
            .store
            .upload_complete(id, content_type, SystemTime::now())
            .await;
        if !matches!(recorded, Ok(true)) {
            // The account was deleted meanwhile (or the database failed): no row, no file.
            let _ = tokio::fs::remove_file(&stored).await;
            return match recorded {
                Err(e) => Err(internal("cannot record the upload", e)),
                _ => Err(Refusal::new(StatusCode::NOT_FOUND, "the slot is gone")),
            };
        }
        self.files_received.inc();
        self.bytes_received.inc_by(slot.size);
        self.bytes_stored.fetch_add(slot.size, Ordering::Relaxed);
        tracing::info!(user = %slot.username, slot = %id, size = slot.size,
            secs = started.elapsed().as_secs_f32(), "file uploaded");
        Ok(())
    }

    fn claim(&self, id: &str) -> Result<Receiving<'_>, Refusal> {
        if !self
            .receiving
            .lock()
            .expect("receiving lock")
            .insert(id.to_string())
        {
            return Err(Refusal::new(
                StatusCode::CONFLICT,
                "an upload to this slot is under way",
            ));
        }
        Ok(Receiving(self, id.to_string()))
    }

    /// Streams the body into `path` (never all of it in memory), at most `size` bytes, and
    /// syncs it to disk.
    async fn write_body(&self, path: &FsPath, body: Body, size: u64) -> Result<(), Refusal> {
        let file = tokio::fs::File::create(path)
            .await
            .map_err(|e| self.storage_error(e))?;
        let mut out = tokio::io::BufWriter::with_capacity(256 * 1024, file);
        let mut body = body.into_data_stream();
        let mut received = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                Refusal::new(
                    StatusCode::BAD_REQUEST,
                    format!("the upload was interrupted: {e}"),
                )
            })?;
            received += chunk.len() as u64;
            if received > size {
                return Err(Refusal::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the body is longer than the slot's {size} bytes"),
                ));
            }
            out.write_all(&chunk)
                .await
                .map_err(|e| self.storage_error(e))?;
        }
        if received != size {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                format!("the body ended after {received} of {size} bytes"),
            ));
        }
        out.flush().await.map_err(|e| self.storage_error(e))?;
        out.get_mut()
            .sync_all()
            .await
            .map_err(|e| self.storage_error(e))
    }

    /// 507 for a full disk or filesystem quota, 500 otherwise; both logged for the admin.
    fn storage_error(&self, e: std::io::Error) -> Refusal {
        let dir = self.dir.display();
        if matches!(e.kind(), ErrorKind::StorageFull | ErrorKind::QuotaExceeded) {
            tracing::error!(directory = %dir, error = %e, "the upload directory is full: uploads fail until space is freed");
            return Refusal::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "the server's storage is full",
            );
        }
        tracing::error!(directory = %dir, error = %e, "cannot write an upload");
        Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, "cannot store the file")
    }

    /// The slot's file if it is stored and not expired.
    async fn stored(&self, server: &Server, id: &str, filename: &str) -> Result<Upload, Refusal> {
        let slot = match server.store.upload_get(id).await {
            Ok(Some(slot)) => slot,
            Ok(None) => return Err(not_found()),
            Err(e) => return Err(internal("cannot read the upload", e)),
        };
        let expired = |completed: SystemTime| {
            self.cfg.expire_after_secs > 0
                && completed + Duration::from_secs(self.cfg.expire_after_secs) < SystemTime::now()
        };
        match slot.completed {
            Some(completed) if slot.filename == filename && !expired(completed) => Ok(slot),
            _ => Err(not_found()),
        }
    }

    fn is_inline(&self, content_type: &str) -> bool {
        let media = media_type(content_type);
        self.cfg.inline_types.iter().any(|pattern| {
            let pattern = pattern.to_ascii_lowercase();
            match pattern.strip_suffix("/*") {
                Some(kind) => media.split_once('/').is_some_and(|(k, _)| k == kind),
                None => media == pattern,
            }
        })
    }
}

async fn sync_dir(dir: &FsPath) -> std::io::Result<()> {
    tokio::fs::File::open(dir).await?.sync_all().await
}

/// GET and HEAD (axum answers HEAD with GET's headers and no body).
async fn download(
    State(server): State<Arc<Server>>,
    Extension(upload): Extension<Arc<FileUpload>>,
    Path((slot, filename)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    upload
        .serve(&server, &slot, &filename, &headers)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

impl FileUpload {
    async fn serve(
        &self,
        server: &Server,
        id: &str,
        filename: &str,
        request: &HeaderMap,
    ) -> Result<Response, Refusal> {
        let slot = self.stored(server, id, filename).await?;
        let mut file = match tokio::fs::File::open(self.dir.join(&slot.id)).await {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                tracing::warn!(slot = %slot.id, directory = %self.dir.display(), "an uploaded file is missing from the upload directory");
                return Err(not_found());
            }
            Err(e) => return Err(internal("cannot open an uploaded file", e)),
        };
        let len = file
            .metadata()
            .await
            .map_err(|e| internal("cannot read an uploaded file", e))?
            .len();
        let content_type = slot
            .content_type
            .as_deref()
            .unwrap_or("application/octet-stream");
        // Files never change: the slot id is their version.
        let etag = format!("\"{}\"", slot.id);
        let mut response = Response::builder()
            .header(header::ETAG, &etag)
            .header(header::CACHE_CONTROL, "public, max-age=31536000, immutable")
            .header(header::ACCEPT_RANGES, "bytes")
            .header(header::CONTENT_TYPE, content_type)
            .header(
                header::CONTENT_DISPOSITION,
                content_disposition(&slot.filename, self.is_inline(content_type)),
            )
            .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
            // An uploaded page must not run scripts with hearth's origin.
            .header(
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; sandbox",
            );
        let not_modified = request
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|tag| tag.trim() == etag || tag.trim() == "*");
        if not_modified {
            return Ok(response
                .status(StatusCode::NOT_MODIFIED)
                .body(Body::empty())
                .expect("valid headers"));
        }
        let range = request.get(header::RANGE).and_then(|v| v.to_str().ok());
        let (start, end) = match parse_range(range, len) {
            Range::Whole => (0, len),
            Range::Part { start, end } => {
                response = response.status(StatusCode::PARTIAL_CONTENT).header(
                    header::CONTENT_RANGE,
                    format!("bytes {start}-{}/{len}", end - 1),
                );
                (start, end)
            }
            Range::Unsatisfiable => {
                return Ok(response
                    .status(StatusCode::RANGE_NOT_SATISFIABLE)
                    .header(header::CONTENT_RANGE, format!("bytes */{len}"))
                    .body(Body::empty())
                    .expect("valid headers"));
            }
        };
        file.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(|e| internal("cannot read an uploaded file", e))?;
        Ok(response
            .header(header::CONTENT_LENGTH, end - start)
            .body(file_body(file.take(end - start)))
            .expect("valid headers"))
    }
}

/// Streams a file in 64 KiB chunks.
fn file_body(file: tokio::io::Take<tokio::fs::File>) -> Body {
    let chunks = futures_util::stream::try_unfold(file, |mut file| async move {
        let mut chunk = bytes::BytesMut::with_capacity(64 * 1024);
        let n = file.read_buf(&mut chunk).await?;
        Ok::<_, std::io::Error>((n > 0).then(|| (chunk.freeze(), file)))
    });
    Body::from_stream(chunks)
}

/// `inline` or `attachment`, with the name as an ASCII fallback and in full as RFC 5987
/// `filename*` (RFC 6266).
fn content_disposition(filename: &str, inline: bool) -> HeaderValue {
    let kind = if inline { "inline" } else { "attachment" };
    let fallback: String = filename
        .chars()
        .map(|c| match c {
            ' ' | '!' | '#'..='[' | ']'..='~' => c,
            _ => '_',
        })
        .collect();
    let value = format!(
        "{kind}; filename=\"{fallback}\"; filename*=UTF-8''{}",
        percent_encode(filename)
    );
    HeaderValue::from_str(&value).expect("printable ASCII")
}

/// What a `Range` header asks of a file of `len` bytes; `end` is exclusive.
#[derive(Debug, PartialEq, Eq)]
enum Range {
    Whole,
    Part { start: u64, end: u64 },
    Unsatisfiable,
}

/// One byte range (RFC 9110 §14.1.2). Several ranges, other units and malformed values are
/// ignored (the whole file is sent), as the RFC allows.
fn parse_range(header: Option<&str>, len: u64) -> Range {
    let Some(spec) = header.and_then(|h| {
        let (unit, spec) = h.trim().split_once('=')?;
        unit.trim()
            .eq_ignore_ascii_case("bytes")
            .then_some(spec.trim())
    }) else {
        return Range::Whole;
    };
    if spec.contains(',') {
        return Range::Whole;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return Range::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let number = |s: &str| s.parse::<u64>().ok();
    match (first, last) {
        ("", suffix) => match number(suffix) {
            None => Range::Whole,
            Some(0) => Range::Unsatisfiable,
            Some(_) if len == 0 => Range::Unsatisfiable,
            Some(n) => Range::Part {
                start: len.saturating_sub(n),
                end: len,
            },
        },
        (first, last) => {
            let Some(start) = number(first) else {
                return Range::Whole;
            };
            let end = match last {
                "" => len,
                last => match number(last) {
                    Some(last) if last >= start => last.saturating_add(1).min(len),
                    _ => return Range::Whole,
                },
            };
            if start >= len {
                Range::Unsatisfiable
            } else {
                Range::Part { start, end }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let part = |start, end| Range::Part { start, end };
        assert_eq!(parse_range(None, 100), Range::Whole);
        assert_eq!(parse_range(Some("bytes=0-9"), 100), part(0, 10));
        assert_eq!(parse_range(Some("Bytes = 10-"), 100), part(10, 100));
        assert_eq!(parse_range(Some("bytes=-30"), 100), part(70, 100));
        assert_eq!(parse_range(Some("bytes=-300"), 100), part(0, 100));
        assert_eq!(parse_range(Some("bytes=90-1000"), 100), part(90, 100));
        assert_eq!(parse_range(Some("bytes=99-99"), 100), part(99, 100));
        for unsatisfiable in ["bytes=100-", "bytes=100-200", "bytes=-0"] {
            assert_eq!(
                parse_range(Some(unsatisfiable), 100),
                Range::Unsatisfiable,
                "{unsatisfiable}"
            );
        }
        assert_eq!(parse_range(Some("bytes=-5"), 0), Range::Unsatisfiable);
        for ignored in [
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=5-2",
            "bytes=x-",
            "bytes=5",
            "0-1",
        ] {
            assert_eq!(parse_range(Some(ignored), 100), Range::Whole, "{ignored}");
        }
    }

    #[test]
    fn content_disposition_has_a_fallback_and_the_full_name() {
        assert_eq!(
            content_disposition("très \"cool\".jpg", true),
            "inline; filename=\"tr_s _cool_.jpg\"; filename*=UTF-8''tr%C3%A8s%20%22cool%22.jpg"
        );
        assert_eq!(
            content_disposition("a\\b.html", false),
            "attachment; filename=\"a_b.html\"; filename*=UTF-8''a%5Cb.html"
        );
    }
}
