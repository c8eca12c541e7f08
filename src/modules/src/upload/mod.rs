//! HTTP File Upload (XEP-0363): a service on its own domain (`upload.<domain>`) hands this
//! server's users slots — a signed, short-lived PUT URL and a GET URL on the built-in web
//! server — and serves the files until they expire. A file is stored in `path` under its
//! slot's random id, never under the name a client chose; its metadata lives in the database
//! (`uploads`, erased with the account). A background sweep removes expired files, files
//! whose row is gone (deleted accounts) and partial uploads left behind.

mod http;
mod signing_key;
mod slot;
mod sweep;

/// URL-safe percent-encoding, also for invitation links.
pub(crate) use slot::percent_encode;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use hearth_core::http::metrics::GaugeFn;
use hearth_core::jid::Jid;
use hearth_core::module::{Identity, Module, Registrar, Spec, SupportStatus};
use hearth_core::ns::{DISCO_INFO, DISCO_ITEMS};
use hearth_core::router::Context;
use hearth_core::stanza::{Condition, Kind, Stanza, StanzaError};
use minidom::Element;
use prometheus_client::metrics::counter::Counter;
use serde::Deserialize;

pub const NS: &str = "urn:xmpp:http:upload:0";
const NAME: &str = "HTTP File Upload";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The service's domain; empty means `upload.<domain>`.
    pub domain: String,
    /// Where files are stored; relative to `data_dir`.
    pub path: PathBuf,
    /// Largest file accepted, in bytes.
    pub max_file_size: u64,
    /// Bytes one user may have stored at once (files and open slots); 0 for no limit.
    pub quota_bytes: u64,
    /// Seconds a file is kept after its upload; 0 keeps files until their account is deleted.
    pub expire_after_secs: u64,
    /// Seconds a PUT URL stays valid after the slot is handed out.
    pub slot_lifetime_secs: u64,
    /// Seconds an upload may take once started; slower ones are cut off.
    pub upload_timeout_secs: u64,
    /// Seconds between sweeps for expired, orphaned and partial files.
    pub sweep_interval_secs: u64,
    /// Content types shown in the browser (`Content-Disposition: inline`), `type/*` for a
    /// whole type; others are offered as downloads.
    pub inline_types: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            domain: String::new(),
            path: PathBuf::from("upload"),
            // Phone videos: Prosody's 10 MiB default turns most of them away.
            max_file_size: 100 << 20,
            quota_bytes: 1 << 30,
            expire_after_secs: 7 * 86_400,
            slot_lifetime_secs: 300,
            upload_timeout_secs: 1800,
            sweep_interval_secs: 3600,
            inline_types: [
                "image/png",
                "image/jpeg",
                "image/gif",
                "image/webp",
                "image/avif",
                "image/heic",
                "audio/*",
                "video/*",
                "text/plain",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

pub struct FileUpload {
    cfg: Config,
    dir: PathBuf,
    /// `{http base URL}/upload`, where slot URLs point.
    url_prefix: String,
    /// Signs PUT URLs; read from `data_dir` when the server starts (made there on first
    /// start), so a slot handed out before a restart can be used after it.
    key: OnceLock<signing_key::SigningKey>,
    /// Slots whose PUT is under way, so a second PUT at the same time is refused.
    receiving: Mutex<HashSet<String>>,
    files_received: Counter,
    bytes_received: Counter,
    /// Bytes of stored files: counted by each sweep, increased by each upload in between.
    bytes_stored: Arc<AtomicU64>,
}

impl Module for FileUpload {
    const NAME: &'static str = "upload";
    const SPECS: &'static [Spec] = &[Spec {
        id: "XEP-0363",
        version: "1.2.0",
        status: SupportStatus::Complete,
        note: "a service on upload.<domain> for local users: HMAC-signed PUT URLs valid for a few minutes, size and content type checked, per-user quota, files served with ranges and kept for modules.upload.expire_after_secs; no upload purposes (optional, not advertised: every file gets the same retention)",
    }];
    type Config = Config;

    fn init(mut cfg: Config, reg: &mut Registrar) -> anyhow::Result<Arc<Self>> {
        for (value, key) in [
            (cfg.max_file_size, "max_file_size"),
            (cfg.slot_lifetime_secs, "slot_lifetime_secs"),
            (cfg.upload_timeout_secs, "upload_timeout_secs"),
            (cfg.sweep_interval_secs, "sweep_interval_secs"),
        ] {
            anyhow::ensure!(value > 0, "modules.upload.{key} must be above 0");
        }
        // Durations are added to timestamps: keep them within what a clock can hold.
        const CENTURY_SECS: u64 = 100 * 365 * 86_400;
        for (value, key) in [
            (cfg.expire_after_secs, "expire_after_secs"),
            (cfg.slot_lifetime_secs, "slot_lifetime_secs"),
            (cfg.upload_timeout_secs, "upload_timeout_secs"),
            (cfg.sweep_interval_secs, "sweep_interval_secs"),
        ] {
            anyhow::ensure!(
                value <= CENTURY_SECS,
                "modules.upload.{key} must be under 100 years"
            );
        }
        let config = reg.config();
        // `[retention] upload_days` wins when it keeps files for less time.
        let retention_secs = config.retention.upload_days * 86_400;
        if retention_secs > 0
            && (cfg.expire_after_secs == 0 || retention_secs < cfg.expire_after_secs)
        {
            tracing::info!(
                days = config.retention.upload_days,
                "uploaded files expire after retention.upload_days (shorter than modules.upload.expire_after_secs)"
            );
            cfg.expire_after_secs = retention_secs;
        }
        let domain = if cfg.domain.is_empty() {
            format!("upload.{}", config.domain)
        } else {
            cfg.domain.clone()
        };
        Jid::domain_jid(&domain).map_err(|e| {
            anyhow::anyhow!("modules.upload.domain {domain:?} is not a valid domain: {e}")
        })?;
        let dir = directory(config);
        if config.http.listen.is_empty() && config.http.external_url.is_none() {
            tracing::warn!(
                "file upload needs the web server: set http.listen, or http.external_url behind a reverse proxy; upload URLs point at https://{}",
                config.domain
            );
        }
        let url_prefix = url_prefix(config);
        tracing::info!(service = %domain, directory = %dir.display(), urls = %url_prefix, "file upload enabled");
        let this = Arc::new(FileUpload {
            cfg,
            dir,
            url_prefix,
            key: OnceLock::new(),
            receiving: Mutex::default(),
            files_received: Counter::default(),
            bytes_received: Counter::default(),
            bytes_stored: Arc::default(),
        });
        this.register_metrics(reg);
        let keeper = this.clone();
        reg.on_start(move |config| {
            let key = signing_key::load_or_create(&config.data_dir)?;
            keeper.key.get_or_init(|| key);
            Ok(())
        });
        let service = this.clone();
        reg.service(&domain, move |cx, st| {
            let service = service.clone();
            async move { service.handle(cx, st).await }
        })?;
        reg.disco_item(&domain, Some(NAME));
        reg.http_routes(http::router(this.clone()));
        let sweeper = this.clone();
        reg.worker("upload-sweep", move |server| sweep::run(server, sweeper));
        Ok(this)
    }
}

/// The upload directory (`path` of `[modules.upload]` under `data_dir`), also for `hearth user`,
/// which erases and lists files without loading the module.
pub fn directory(config: &hearth_core::config::Config) -> PathBuf {
    let path = config
        .module_section(FileUpload::NAME)
        .get("path")
        .and_then(|p| p.as_str().map(PathBuf::from))
        .unwrap_or_else(|| Config::default().path);
    config.data_dir.join(path)
}

/// Where download URLs start: `{http base URL}/upload`.
fn url_prefix(config: &hearth_core::config::Config) -> String {
    format!("{}/upload", config.http.base_url(&config.domain))
}

/// The download URL of a stored file.
pub fn file_url(config: &hearth_core::config::Config, id: &str, filename: &str) -> String {
    format!(
        "{}/{id}/{}",
        url_prefix(config),
        slot::percent_encode(filename)
    )
}

impl FileUpload {
    fn signing_key(&self) -> &signing_key::SigningKey {
        self.key
            .get()
            .expect("the upload signing key is read before the server serves")
    }

    fn register_metrics(&self, reg: &mut Registrar) {
        let metrics = reg.metrics();
        metrics.register(
            "hearth_upload_files",
            "Files received through HTTP upload (XEP-0363).",
            self.files_received.clone(),
        );
        metrics.register(
            "hearth_upload_bytes",
            "Bytes received through HTTP upload.",
            self.bytes_received.clone(),
        );
        let stored = self.bytes_stored.clone();
        metrics.register_collector(GaugeFn::new(
            "hearth_upload_stored_bytes",
            "Bytes of uploaded files on disk, as of the last sweep plus uploads since.",
            move || i64::try_from(stored.load(Ordering::Relaxed)).unwrap_or(i64::MAX),
        ));
    }

    /// Every stanza to the service's domain: disco and slot requests; anything else is
    /// `service-unavailable`.
    async fn handle(&self, cx: Context, st: Stanza) {
        let to_service = st.to().is_some_and(|to| to.node().is_none());
        let request = match (st.kind(), st.type_attr(), st.iq_payload()) {
            (Kind::Iq, Some("get"), Some(payload)) if to_service => Some(payload),
            // Results and errors need no answer.
            (Kind::Iq, Some("result" | "error"), _) => return,
            _ => None,
        };
        let answer = match request.map(|p| (p.ns(), p.name(), p)) {
            Some((ns, "query", p)) if ns == DISCO_INFO && p.attr("node").is_none() => {
                Ok(Some(self.info()))
            }
            Some((ns, "query", _)) if ns == DISCO_ITEMS => {
                Ok(Some(Element::bare("query", DISCO_ITEMS)))
            }
            Some((ns, "request", p)) if ns == NS => self.slot(&cx, p).await.map(Some),
            _ => Err(StanzaError::new(Condition::ServiceUnavailable)),
        };
        match answer {
            Ok(payload) => cx.send(st.iq_result(payload)).await,
            Err(e) => cx.server.bounce(&st, e).await,
        }
    }

    /// The service's disco#info, with the size limit as an XEP-0128 form.
    fn info(&self) -> Element {
        let identity = Identity {
            category: "store".into(),
            type_: "file".into(),
            name: Some(NAME.into()),
        };
        let max = [self.cfg.max_file_size.to_string()];
        let form = crate::disco::result_form(NS, [("max-file-size", &max[..])]);
        crate::disco::info_result(
            std::iter::once(&identity),
            [NS, DISCO_INFO, DISCO_ITEMS].into_iter(),
            std::iter::once(&form),
        )
    }
}
