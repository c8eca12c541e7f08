//! RFC 6121 §2: roster management — get, set, remove, pushes to every interested resource —
//! with roster versioning (XEP-0237).

use std::sync::Arc;

use hearth_core::jid::Jid;
use hearth_core::module::{FeaturePhase, IqTarget, IqType, Module, Registrar, Spec, SupportStatus};
use hearth_core::router::{Context, IqResult};
use hearth_core::server::Server;
use hearth_core::stanza::{Condition, Kind, Stanza, StanzaError, ncname, set_attr};
use hearth_store::{RosterItem, Subscription};
use minidom::Element;
use serde::Deserialize;

pub const NS: &str = "jabber:iq:roster";
const NS_VER: &str = "urn:xmpp:features:rosterver";
/// Longest item name or group name, in bytes (RFC 6121 §2.3.3 lets the server choose).
const MAX_TEXT: usize = 1024;

pub struct Roster {
    max_items: usize,
    versioning: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Most contacts in one roster.
    pub max_items: usize,
    /// Roster versioning (XEP-0237).
    pub versioning: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_items: 1000,
            versioning: true,
        }
    }
}

impl Module for Roster {
    const NAME: &'static str = "roster";
    const SPECS: &'static [Spec] = &[
        Spec {
            id: "RFC 6121",
            version: "",
            status: SupportStatus::Complete,
            note: "§2 roster management",
        },
        Spec {
            id: "XEP-0237",
            version: "1.3",
            status: SupportStatus::Complete,
            note: "an unchanged roster is answered empty; otherwise the full roster",
        },
    ];
    type Config = Config;

    fn init(cfg: Config, reg: &mut Registrar) -> anyhow::Result<Arc<Self>> {
        let this = Arc::new(Roster {
            max_items: cfg.max_items,
            versioning: cfg.versioning,
        });
        if this.versioning {
            reg.stream_feature(FeaturePhase::PostAuth, Element::bare("ver", NS_VER));
        }
        let m = this.clone();
        reg.iq(
            IqType::Get,
            IqTarget::Account,
            NS,
            "query",
            move |cx, iq| {
                let m = m.clone();
                async move { m.get(&cx, &iq).await }
            },
        );
        let m = this.clone();
        reg.iq(
            IqType::Set,
            IqTarget::Account,
            NS,
            "query",
            move |cx, iq| {
                let m = m.clone();
                async move { m.set(&cx, &iq).await }
            },
        );
        Ok(this)
    }
}

/// The user whose own roster this IQ addresses (from the account itself, to its bare JID or
/// without `to`); anyone else is `forbidden` (RFC 6121 §2.1.5).
fn own_user(cx: &Context, iq: &Stanza) -> Result<String, StanzaError> {
    let forbidden = || StanzaError::new(Condition::Forbidden);
    let session = cx.session().ok_or_else(forbidden)?;
    if iq.to().is_some_and(|to| to.bare() != session.jid.bare()) {
        return Err(forbidden());
    }
    session.jid.node().map(str::to_string).ok_or_else(forbidden)
}

fn internal(e: hearth_store::StoreError) -> StanzaError {
    tracing::error!(error = %e, "roster storage failed");
    StanzaError::new(Condition::InternalServerError)
}

/// `<item/>` for a roster item (RFC 6121 §2.1.2).
pub fn item_element(item: &RosterItem) -> Element {
    let mut el = Element::builder("item", NS)
        .attr(ncname("jid"), item.contact.as_str())
        .attr(ncname("subscription"), item.subscription.as_str())
        .build();
    if let Some(name) = &item.name {
        set_attr(&mut el, "name", Some(name.clone()));
    }
    if item.ask {
        set_attr(&mut el, "ask", Some("subscribe".into()));
    }
    if item.approved {
        set_attr(&mut el, "approved", Some("true".into()));
    }
    for g in &item.groups {
        el.append_child(Element::builder("group", NS).append(g.as_str()).build());
    }
    el
}

fn query(version: Option<u64>) -> Element {
    let mut q = Element::bare("query", NS);
    if let Some(v) = version {
        set_attr(&mut q, "ver", Some(v.to_string()));
    }
    q
}

/// What a roster push announces.
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    /// An item was added or changed.
    Item(&'a RosterItem),
    /// The item of this contact (bare JID) was removed.
    Removed(&'a str),
}

/// Sends a roster push (RFC 6121 §2.1.6) to every resource of `user` that asked for its roster,
/// with the roster's new version (XEP-0237 §4).
pub async fn push(server: &Arc<Server>, user: &Jid, change: Change<'_>, version: u64) {
    let item = match change {
        Change::Item(item) => item_element(item),
        Change::Removed(contact) => Element::builder("item", NS)
            .attr(ncname("jid"), contact)
            .attr(ncname("subscription"), "remove")
            .build(),
    };
    let mut q = query(Some(version));
    q.append_child(item);
    for session in server.sessions.of(user.bare()) {
        if !session.presence.lock().expect("presence lock").interested {
            continue;
        }
        let mut iq = Stanza::new(Kind::Iq);
        iq.set_type(Some("set"));
        iq.set_id(Some(&format!("push-{version}-{}", session.id)));
        iq.set_to(Some(session.jid.clone()));
        iq.element_mut().append_child(q.clone());
        server.deliver(&session, &iq);
    }
}

/// The contact address of a roster item as the client gave it: a bare JID.
fn contact_of(item: &Element) -> Result<Jid, StanzaError> {
    let bad = |t: &str| StanzaError::new(Condition::BadRequest).with_text(t);
    let jid = Jid::parse(item.attr("jid").ok_or_else(|| bad("an item needs a jid"))?)
        .map_err(|_| StanzaError::new(Condition::JidMalformed))?;
    if jid.is_full() {
        return Err(bad("roster items are bare JIDs"));
    }
    Ok(jid)
}

impl Roster {
    async fn get(&self, cx: &Context, iq: &Stanza) -> IqResult {
        let user = own_user(cx, iq)?;
        if let Some(s) = cx.session() {
            s.presence.lock().expect("presence lock").interested = true;
        }
        let (version, items) = cx.store().roster(&user).await.map_err(internal)?;
        let asked = iq.iq_payload().and_then(|q| q.attr("ver"));
        if self.versioning && asked == Some(version.to_string().as_str()) {
            // XEP-0237 §3: nothing changed; pushes would follow for changes.
            return Ok(None);
        }
        let mut q = query(self.versioning.then_some(version));
        for item in &items {
            q.append_child(item_element(item));
        }
        Ok(Some(q))
    }

    async fn set(&self, cx: &Context, iq: &Stanza) -> IqResult {
        let user = own_user(cx, iq)?;
        let payload = iq
            .iq_payload()
            .ok_or_else(|| StanzaError::new(Condition::BadRequest))?;
        let mut items = payload.children().filter(|c| c.is("item", NS));
        let (Some(el), None) = (items.next(), items.next()) else {
            return Err(StanzaError::new(Condition::BadRequest)
                .with_text("a roster set carries exactly one item"));
        };
        let contact = contact_of(el)?;
        let key = contact.to_string();
        let account = cx
            .session()
            .map(|s| s.jid.to_bare())
            .ok_or_else(|| StanzaError::new(Condition::Forbidden))?;
        if el.attr("subscription") == Some("remove") {
            let existing = cx
                .store()
                .roster_item(&user, &key)
                .await
                .map_err(internal)?;
            let Some(existing) = existing else {
                return Err(StanzaError::new(Condition::ItemNotFound));
            };
            crate::presence::cancel_on_remove(cx, &account, &existing).await;
            if let Some(v) = cx
                .store()
                .roster_remove(&user, &key)
                .await
                .map_err(internal)?
            {
                push(&cx.server, &account, Change::Removed(&key), v).await;
            }
            return Ok(None);
        }
        let too_long = |what: &str| {
            StanzaError::new(Condition::NotAcceptable)
                .with_text(format!("{what} longer than {MAX_TEXT} bytes"))
        };
        let name = el.attr("name").filter(|n| !n.is_empty());
        if name.is_some_and(|n| n.len() > MAX_TEXT) {
            return Err(too_long("a name"));
        }
        let mut groups: Vec<String> = Vec::new();
        for g in el.children().filter(|c| c.is("group", NS)) {
            let name = g.text();
            if name.is_empty() {
                return Err(
                    StanzaError::new(Condition::NotAcceptable).with_text("empty group name")
                );
            }
            if name.len() > MAX_TEXT {
                return Err(too_long("a group name"));
            }
            if groups.contains(&name) {
                return Err(StanzaError::new(Condition::BadRequest).with_text("duplicate group"));
            }
            groups.push(name);
        }
        let existing = cx
            .store()
            .roster_item(&user, &key)
            .await
            .map_err(internal)?;
        if existing.is_none()
            && cx.store().roster_count(&user).await.map_err(internal)? >= self.max_items
        {
            return Err(StanzaError::new(Condition::NotAllowed)
                .with_text(format!("the roster is full ({} contacts)", self.max_items)));
        }
        // Subscription state is the server's to keep; the client sets only name and groups.
        let item = RosterItem {
            contact: key,
            name: name.map(str::to_string),
            groups,
            ..existing.unwrap_or_else(|| RosterItem {
                contact: String::new(),
                name: None,
                subscription: Subscription::None,
                ask: false,
                approved: false,
                groups: Vec::new(),
            })
        };
        let v = cx
            .store()
            .roster_put(&user, &item)
            .await
            .map_err(internal)?;
        push(&cx.server, &account, Change::Item(&item), v).await;
        Ok(None)
    }
}
