//! Message Archive Management (XEP-0313): every 1:1 message a user sends or receives is kept
//! in their archive, stamped with a stable id (XEP-0359), so each device can fetch what it
//! missed and page back through history, filter it, and search it (XEP-0431).

mod policy;
pub mod query;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hearth_core::datetime::now_millis;
use hearth_core::jid::Jid;
use hearth_core::module::{DiscoScope, Module, Registrar, Spec, SupportStatus};
use hearth_core::router::{Context, Flow};
use hearth_core::server::Server;
use hearth_core::stanza::{Kind, Stanza, ncname};
use hearth_store::{ArchivePrefs, NewArchived};
use minidom::Element;
use serde::Deserialize;

pub use policy::archivable;

pub const NS_MAM: &str = "urn:xmpp:mam:2";
pub const NS_SID: &str = "urn:xmpp:sid:0";
pub const NS_FULLTEXT: &str = "urn:xmpp:fulltext:0";

/// Whom to archive messages with when the user has not said (`[modules.mam] default`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Always,
    Never,
    Roster,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Always => "always",
            Mode::Never => "never",
            Mode::Roster => "roster",
        }
    }

    fn parse(s: &str) -> Option<Mode> {
        match s {
            "always" => Some(Mode::Always),
            "never" => Some(Mode::Never),
            "roster" => Some(Mode::Roster),
            _ => None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Archiving for users who set no preference.
    pub default: Mode,
    /// Results per page when the client does not say.
    pub default_page_size: usize,
    /// Most results per page a client may ask for.
    pub max_page_size: usize,
    /// Deprecated for `[retention] archive_days` and `muc_archive_days`, which it stands for
    /// while they are unset.
    pub retention_days: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            default: Mode::Always,
            default_page_size: 50,
            max_page_size: 250,
            retention_days: 0,
        }
    }
}

pub struct Mam {
    cfg: Config,
    /// Preferences of accounts that sent or received lately (`None`: the default).
    prefs: Mutex<HashMap<String, Option<Arc<ArchivePrefs>>>>,
}

impl Module for Mam {
    const NAME: &'static str = "mam";
    const SPECS: &'static [Spec] = &[
        Spec {
            id: "XEP-0313",
            version: "1.1.3",
            status: SupportStatus::Complete,
            note: "urn:xmpp:mam:2 and #extended (before-id, after-id, ids, metadata); preferences; retention",
        },
        Spec {
            id: "XEP-0359",
            version: "0.7.0",
            status: SupportStatus::Complete,
            note: "stanza-id on every archived incoming message; spoofed ones removed",
        },
        Spec {
            id: "XEP-0059",
            version: "1.0",
            status: SupportStatus::Partial,
            note: "for archive queries: max, before, after, flip-page; no index, no count",
        },
        Spec {
            id: "XEP-0431",
            version: "0.2.0",
            status: SupportStatus::Complete,
            note: "SQLite FTS5 over message bodies; terms are matched as words, all must occur",
        },
    ];
    type Config = Config;

    fn init(cfg: Config, reg: &mut Registrar) -> anyhow::Result<Arc<Self>> {
        anyhow::ensure!(
            cfg.default_page_size >= 1 && cfg.max_page_size >= cfg.default_page_size,
            "default_page_size must be at least 1 and at most max_page_size"
        );
        let retention = cfg.retention_days;
        let this = Arc::new(Mam {
            cfg,
            prefs: Mutex::default(),
        });
        for f in [NS_MAM, "urn:xmpp:mam:2#extended", NS_SID, NS_FULLTEXT] {
            reg.feature(DiscoScope::Account, f);
        }
        for event in ["pre-message/bare", "pre-message/full"] {
            reg.hook_with(event, 50, &this, |m, cx, st| async move {
                m.outgoing(cx, st).await
            });
        }
        for event in ["message/bare", "message/full"] {
            reg.hook_with(event, 50, &this, |m, cx, st| async move {
                m.incoming(cx, st).await
            });
        }
        query::register(&this, reg);
        if retention > 0 {
            tracing::warn!(
                "modules.mam.retention_days is deprecated: set [retention] archive_days and muc_archive_days instead (it applies to both while they are unset)"
            );
            let legacy = reg.shared::<crate::gdpr::LegacyArchiveDays>();
            legacy
                .0
                .store(retention, std::sync::atomic::Ordering::Relaxed);
        }
        reg.worker("mam-fulltext-index", index_bodies);
        Ok(this)
    }
}

/// A new archive id: random, so ids reveal nothing about how much others wrote.
pub fn new_id() -> String {
    use rand::Rng;
    format!("{:016x}", rand::rng().random::<u64>())
}

impl Mam {
    /// A message a local client sends: into the sender's archive.
    async fn outgoing(&self, cx: Context, st: Stanza) -> Flow {
        let (Some(from), Some(to)) = (st.from(), st.to()) else {
            return Flow::Continue(st);
        };
        if to.bare() == from.bare() || !archivable(&st) {
            return Flow::Continue(st);
        }
        let Some(user) = from.node() else {
            return Flow::Continue(st);
        };
        if self.wants(&cx.server, user, to).await {
            // Committed with the recipient's copy when there is one (one transaction for
            // both), else when the router is done with the message; either way before the
            // sender's client hears it was handled.
            cx.store()
                .archive_append_later(&cx.pending, user, entry(&st, to, true))
                .await;
        }
        Flow::Continue(st)
    }

    /// A message for a local account: into the recipient's archive, and stamped with the
    /// archive id before delivery.
    async fn incoming(&self, cx: Context, mut st: Stanza) -> Flow {
        if st.kind() != Kind::Message {
            return Flow::Continue(st);
        }
        let Some(to) = st.to().cloned() else {
            return Flow::Continue(st);
        };
        let by = to.to_bare().to_string();
        // XEP-0359 §7: an id claiming to be from this archive was not made here.
        remove_stanza_ids_by(&mut st, &by);
        let (Some(user), Some(from)) = (to.node(), st.from().cloned()) else {
            return Flow::Continue(st);
        };
        if !archivable(&st) || !self.wants(&cx.server, user, &from).await {
            return Flow::Continue(st);
        }
        if let Some(id) = append(&cx, user, &st, &from).await {
            st.element_mut().append_child(
                Element::builder("stanza-id", NS_SID)
                    .attr(ncname("by"), by)
                    .attr(ncname("id"), id)
                    .build(),
            );
        }
        Flow::Continue(st)
    }

    /// Whether `user`'s preferences archive messages with `with` (XEP-0313 §6).
    async fn wants(&self, server: &Server, user: &str, with: &Jid) -> bool {
        let prefs = self.prefs_of(server, user).await;
        let bare = with.to_bare().to_string();
        let default = match prefs.as_deref() {
            Some(p) if p.never.contains(&bare) => return false,
            Some(p) if p.always.contains(&bare) => return true,
            Some(p) => Mode::parse(&p.default_mode).unwrap_or(self.cfg.default),
            None => self.cfg.default,
        };
        match default {
            Mode::Always => true,
            Mode::Never => false,
            Mode::Roster => matches!(server.store.roster_item(user, &bare).await, Ok(Some(_))),
        }
    }

    async fn prefs_of(&self, server: &Server, user: &str) -> Option<Arc<ArchivePrefs>> {
        if let Some(p) = self.prefs.lock().expect("prefs lock").get(user) {
            return p.clone();
        }
        let loaded = match server.store.archive_prefs(user).await {
            Ok(p) => p.map(Arc::new),
            Err(e) => {
                tracing::warn!(error = %e, account = %user, "cannot read archiving preferences; using the default");
                return None;
            }
        };
        self.prefs
            .lock()
            .expect("prefs lock")
            .insert(user.to_string(), loaded.clone());
        loaded
    }
}

/// The archive entry for `st`, exchanged with `with`, under a new archive id.
fn entry(st: &Stanza, with: &Jid, outgoing: bool) -> NewArchived {
    NewArchived {
        stanza_id: new_id(),
        stamp: now_millis(),
        with_bare: with.to_bare().to_string(),
        with_resource: with.resource().map(str::to_string),
        outgoing,
        body: st.body(),
        stanza_xml: st.to_storage_xml(),
    }
}

/// Archives an incoming `st` for `user` (with what the handling deferred, the sender's copy);
/// waits for the commit, so what is delivered is archived even if the server crashes next.
/// Returns the archive id.
async fn append(cx: &Context, user: &str, st: &Stanza, with: &Jid) -> Option<String> {
    let entry = entry(st, with, false);
    let id = entry.stanza_id.clone();
    match cx
        .store()
        .archive_append_with(&cx.pending, user, entry)
        .await
    {
        Ok(true) => Some(id),
        Ok(false) => None,
        Err(e) => {
            tracing::error!(error = %e, account = %user, "cannot archive a message; it is delivered but not archived");
            None
        }
    }
}

/// Removes `<stanza-id by=by/>` elements, keeping others' ids in their order.
/// Leaves the stanza's payload untouched (and shared with other copies) when it has none.
fn remove_stanza_ids_by(st: &mut Stanza, by: &str) {
    if !st
        .element()
        .children()
        .any(|c| c.is("stanza-id", NS_SID) && c.attr("by") == Some(by))
    {
        return;
    }
    let el = st.element_mut();
    let nodes = el.take_nodes();
    for node in nodes {
        match node {
            minidom::Node::Element(c) if c.is("stanza-id", NS_SID) && c.attr("by") == Some(by) => {}
            other => {
                el.append_node(other);
            }
        }
    }
}

/// Adds new bodies to the full-text index every few seconds, in one batch each time: an
/// index write per message cost a sixth of the server's CPU per chat message. Queries index
/// what is pending first, so they never miss a message.
async fn index_bodies(server: Arc<Server>) -> anyhow::Result<()> {
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        match server.store.archive_index_pending().await {
            Ok(n) => tracing::trace!(bodies = n, "full-text index updated"),
            Err(e) => tracing::error!(error = %e, "full-text indexing failed; retrying later"),
        }
    }
}
