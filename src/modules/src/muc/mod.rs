//! Multi-User Chat (XEP-0045): a chat-room service on its own domain (`conference.<domain>`
//! by default). Every stanza to the service or a room goes through [`Muc::handle`]: presence
//! enters, changes and leaves rooms, messages go to all occupants or privately to one, IQs to
//! a room are disco, configuration, administration and archive queries, and IQs to an occupant
//! are relayed to it (`relay.rs`).

mod admin;
mod avatar;
mod invite;
mod moderate;
mod occupancy;
mod owner;
mod register;
mod relay;
mod room;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::mam::NS_MAM;
use hearth_core::http::metrics::GaugeFn;
use hearth_core::jid::Jid;
use hearth_core::module::{Module, Registrar, Spec, SupportStatus};
use hearth_core::router::Context;
use hearth_core::stanza::{Condition, Kind, Stanza, StanzaError, ncname};
use hearth_store::{ArchiveQuery, StoredAffiliation, StoredRoom};
use minidom::Element;
use serde::Deserialize;

pub use room::{Affiliation, Role};
use room::{HistoryEntry, Room, RoomConfig};

pub const NS_MUC: &str = "http://jabber.org/protocol/muc";
const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
const NS_DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
const NS_PING: &str = "urn:xmpp:ping";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The service's domain; empty means `conference.<domain>`.
    pub domain: String,
    /// Whether local users may create rooms (the Conversations compliance tester expects so).
    pub allow_room_creation: bool,
    /// Occupants a new room admits.
    pub max_users: usize,
    /// Messages a new room keeps for history on join.
    pub history_length: usize,
    /// Results per page of a room archive query when the client does not say, and the most
    /// it may ask for.
    pub mam_page_size: usize,
    pub mam_max_page_size: usize,
    /// Messages one occupant may send per second on average (bursts of twice that); more
    /// are refused with `resource-constraint`.
    pub occupant_messages_per_second: f64,
    /// Messages a whole room relays per second on average (bursts of twice that).
    pub room_messages_per_second: f64,
    /// Whether the server's `admins` are owners of every room, as Prosody's
    /// `component_admins_as_room_owners`: a room whose owners are gone stays manageable.
    pub admins_are_owners: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            domain: String::new(),
            allow_room_creation: true,
            max_users: 200,
            history_length: 20,
            mam_page_size: 50,
            mam_max_page_size: 250,
            occupant_messages_per_second: 5.0,
            room_messages_per_second: 100.0,
            admins_are_owners: true,
        }
    }
}

pub struct Muc {
    cfg: Config,
    domain: String,
    /// The server's administrators if they own every room (`admins_are_owners`), else empty;
    /// shared by every room.
    server_admins: Arc<HashSet<Jid>>,
    /// Rooms by local part. Each room is locked on its own, so rooms do not wait for each other.
    rooms: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Room>>>>,
}

impl Module for Muc {
    const NAME: &'static str = "muc";
    const SPECS: &'static [Spec] = &[
        Spec {
            id: "XEP-0045",
            version: "1.35.5",
            status: SupportStatus::Partial,
            note: "entering (locked new rooms, passwords, members-only, bans, registered nicks checked; PRECIS nicknames), leaving, nick and status changes, groupchat and private messages, subject, history on join, the configuration form, destroying, the directory and room disco, the admin use cases (kick, voice, moderator, member, admin, owner, ban, lists); the server's admins are owners of every room (admins_are_owners, on by default; not stored nor listed, and whoever bans, kicks or demotes them gets not-allowed); nick registration, mediated invitations and declines, voice requests, IQs to occupant JIDs relayed without revealing real JIDs (vCard requests to the occupant's account, for avatars), settings for who may change the subject, send private messages and invite; persistent rooms kept across restarts and, while nobody is in them, out of memory. Persistent rooms are archived (below). Flood limits per occupant and per room; moderation and retraction (below). Room avatars (below); occupants are told at shutdown (332).",
        },
        Spec {
            id: "XEP-0313",
            version: "1.1.3",
            status: SupportStatus::Complete,
            note: "on persistent rooms: every groupchat message with a body is archived before it is relayed, with a stanza-id by the room; history on entering is read back from it after a restart; readable by anyone allowed in (members in members-only rooms), never by outcasts",
        },
        Spec {
            id: "XEP-0421",
            version: "1.0.1",
            status: SupportStatus::Complete,
            note: "a per-room salted hash of the real bare JID on every occupant presence and message; clients' own ids are replaced",
        },
        Spec {
            id: "XEP-0425",
            version: "0.3.0",
            status: SupportStatus::Complete,
            note: "moderators retract occupants' messages; everyone is told, and the room archive keeps a tombstone",
        },
        Spec {
            id: "XEP-0424",
            version: "0.4.2",
            status: SupportStatus::Partial,
            note: "in rooms: a sender's retraction is relayed and its archived message becomes a tombstone, checked by occupant id; 1:1 retractions are relayed as any message, the account archive keeps the original",
        },
        Spec {
            id: "XEP-0486",
            version: "0.1.0",
            status: SupportStatus::Complete,
            note: "owners set the room's vCard-temp, anyone reads it; the photo hash is in muc#roominfo_avatarhash, and occupants are told (104 and a vcard-temp:x:update presence from the room)",
        },
        Spec {
            id: "XEP-0410",
            version: "1.1.0",
            status: SupportStatus::Complete,
            note: "occupant JIDs answer pings from their own occupant",
        },
    ];
    type Config = Config;

    fn init(cfg: Config, reg: &mut Registrar) -> anyhow::Result<Arc<Self>> {
        anyhow::ensure!(cfg.max_users >= 1, "max_users must be at least 1");
        anyhow::ensure!(
            cfg.occupant_messages_per_second > 0.0 && cfg.room_messages_per_second > 0.0,
            "the message rates must be above 0"
        );
        let domain = if cfg.domain.is_empty() {
            format!("conference.{}", reg.config().domain)
        } else {
            cfg.domain.clone()
        };
        Jid::domain_jid(&domain).map_err(|e| {
            anyhow::anyhow!("modules.muc.domain {domain:?} is not a valid domain: {e}")
        })?;
        let server_admins = if cfg.admins_are_owners {
            reg.config()
                .admins
                .iter()
                .map(|admin| Jid::parse(admin))
                .collect::<Result<_, _>>()?
        } else {
            HashSet::new()
        };
        let this = Arc::new(Muc {
            cfg,
            domain: domain.clone(),
            server_admins: Arc::new(server_admins),
            rooms: Mutex::default(),
        });
        let muc = this.clone();
        reg.service(&domain, move |cx, st| {
            let muc = muc.clone();
            async move { muc.handle(cx, st).await }
        })?;
        reg.disco_item(&domain, Some("Chatrooms"));
        let muc = Arc::downgrade(&this);
        reg.metrics().register_collector(GaugeFn::new(
            "hearth_muc_rooms_occupied",
            "Rooms someone is in (empty persistent rooms wait in the database).",
            move || {
                muc.upgrade()
                    .map_or(0, |m| m.rooms.lock().expect("rooms lock").len() as i64)
            },
        ));
        let muc = this.clone();
        reg.on_shutdown(move |server| {
            let muc = muc.clone();
            async move { muc.shutting_down(server).await }
        });
        Ok(this)
    }
}

impl Muc {
    async fn handle(&self, cx: Context, st: Stanza) {
        let Some(to) = st.to().cloned() else { return };
        // Rooms never address one another; a stanza a room sends into the service (say an
        // invitation to a room's JID) is dropped, as it would wait for the very lock its
        // sender holds.
        if st.from().is_some_and(|f| f.domain() == self.domain) {
            tracing::debug!(to = %to, "dropping a stanza from a room to the room service");
            return;
        }
        let result = match (st.kind(), to.node()) {
            (Kind::Presence, Some(_)) => self.presence(&cx, &to, &st).await,
            (Kind::Message, Some(_)) => self.message(&cx, &to, st.clone()).await,
            (Kind::Iq, node) => self.iq(&cx, node, &st).await,
            // Messages and presence to the service itself.
            _ => Err(StanzaError::new(Condition::ServiceUnavailable)),
        };
        if let Err(e) = result {
            cx.server.bounce(&st, e).await;
        }
    }

    /// Tells every occupant the service is shutting down (status 332), so clients know to
    /// enter again once it is back rather than wonder why the room went quiet.
    async fn shutting_down(&self, server: Arc<hearth_core::server::Server>) {
        let cx = Context::new(server, hearth_core::router::Origin::Server);
        let rooms: Vec<_> = self.active_rooms();
        tracing::info!(
            rooms = rooms.len(),
            "telling room occupants the service is shutting down"
        );
        for room in rooms {
            let mut room = room.lock().await;
            let nicks: Vec<String> = room.occupants.values().map(|o| o.nick.clone()).collect();
            for nick in nicks {
                occupancy::remove_occupant(&cx, &mut room, &nick, &[332], None).await;
            }
        }
    }

    /// The rooms in memory (in use, or persistent and used since the start).
    fn active_rooms(&self) -> Vec<Arc<tokio::sync::Mutex<Room>>> {
        self.rooms
            .lock()
            .expect("rooms lock")
            .values()
            .cloned()
            .collect()
    }

    /// The room at `node`: in memory, or loaded from the store if it is persistent.
    async fn room(
        &self,
        cx: &Context,
        node: &str,
    ) -> Result<Option<Arc<tokio::sync::Mutex<Room>>>, StanzaError> {
        if let Some(r) = self.rooms.lock().expect("rooms lock").get(node) {
            return Ok(Some(r.clone()));
        }
        let jid = format!("{node}@{}", self.domain);
        let Some((stored, affiliations)) = cx.store().muc_room(&jid).await.map_err(internal)?
        else {
            return Ok(None);
        };
        let Ok(room_jid) = Jid::parse(&jid) else {
            return Ok(None);
        };
        let mut room = Room::new(
            room_jid,
            RoomConfig::from_lines(&stored.config, self.defaults()),
            self.server_admins.clone(),
        );
        room.subject = stored.subject;
        room.avatar_hash = stored
            .vcard
            .as_deref()
            .and_then(|xml| xml.parse::<Element>().ok())
            .and_then(|card| crate::conversion::avatar::Avatar::from_vcard(&card))
            .map(|a| a.sha1);
        room.vcard = stored.vcard;
        for a in affiliations {
            let Ok(j) = Jid::parse(&a.jid) else { continue };
            if let Some(nick) = a.nick {
                room.nicks.insert(j.clone(), nick);
            }
            match Affiliation::parse(&a.affiliation) {
                Some(Affiliation::None) | None => {}
                Some(affiliation) => {
                    room.affiliations.insert(j, affiliation);
                }
            }
        }
        // History on entering comes from the archive after a restart.
        let recent = ArchiveQuery {
            from_end: true,
            max: room.config.history_length,
            ..Default::default()
        };
        if room.config.history_length > 0
            && let Ok(page) = cx.store().archive_query(&jid, recent).await
        {
            for m in page.messages {
                if let Some(st) = Stanza::from_storage_xml(&m.stanza_xml) {
                    room.remember(HistoryEntry {
                        message: st.into_element(),
                        stamp: m.stamp,
                        sender: None,
                    });
                }
            }
        }
        let room = Arc::new(tokio::sync::Mutex::new(room));
        let mut rooms = self.rooms.lock().expect("rooms lock");
        Ok(Some(rooms.entry(node.to_string()).or_insert(room).clone()))
    }

    /// Whether `sender` may send one more message to `room` now (groupchat and private).
    pub(super) fn within_limits(&self, room: &mut Room, sender: &Jid) -> Result<(), StanzaError> {
        let now = std::time::Instant::now();
        let (occupant, whole) = (
            self.cfg.occupant_messages_per_second,
            self.cfg.room_messages_per_second,
        );
        let refused = |what: &str, rate: f64| {
            StanzaError::new(Condition::ResourceConstraint).with_text(format!(
                "slow down: {what} at most {rate} messages a second"
            ))
        };
        if !room.room_bucket.take(whole, whole * 2.0, now) {
            return Err(refused("this room relays", whole));
        }
        let bucket = room
            .buckets
            .entry(sender.to_bare())
            .or_insert_with(|| hearth_core::rate::Bucket::full(occupant * 2.0, now));
        if !bucket.take(occupant, occupant * 2.0, now) {
            return Err(refused("each occupant may send", occupant));
        }
        Ok(())
    }

    fn defaults(&self) -> RoomConfig {
        RoomConfig::new(self.cfg.max_users, self.cfg.history_length)
    }

    /// Stores a persistent room's configuration and subject (and, when it just became
    /// persistent, its affiliations); forgets a room that is no longer persistent. Callers
    /// answer only after this, so what they confirm is on disk.
    pub(super) async fn save(
        &self,
        cx: &Context,
        room: &Room,
        was_persistent: bool,
    ) -> Result<(), StanzaError> {
        let jid = room.jid.to_string();
        if !room.config.persistent {
            if was_persistent {
                cx.store().muc_delete_room(&jid).await.map_err(internal)?;
            }
            return Ok(());
        }
        cx.store()
            .muc_put_room(StoredRoom {
                jid: jid.clone(),
                public: room.config.public,
                config: room.config.to_lines(),
                subject: room.subject.clone(),
                vcard: room.vcard.clone(),
            })
            .await
            .map_err(internal)?;
        if !was_persistent {
            let jids: std::collections::BTreeSet<&Jid> =
                room.affiliations.keys().chain(room.nicks.keys()).collect();
            for jid in jids {
                self.save_affiliation(cx, room, jid, room.stored_affiliation(jid), None)
                    .await?;
            }
        }
        Ok(())
    }

    /// Stores one affiliation of a persistent room, with the nick registered to the JID
    /// (with neither, the JID is forgotten).
    pub(super) async fn save_affiliation(
        &self,
        cx: &Context,
        room: &Room,
        jid: &Jid,
        affiliation: Affiliation,
        reason: Option<String>,
    ) -> Result<(), StanzaError> {
        if !room.config.persistent {
            return Ok(());
        }
        let key = jid.to_string();
        let nick = room.nicks.get(jid).cloned();
        let stored =
            (affiliation != Affiliation::None || nick.is_some()).then(|| StoredAffiliation {
                jid: key.clone(),
                affiliation: affiliation.as_str().to_string(),
                reason,
                nick,
            });
        cx.store()
            .muc_set_affiliation(&room.jid.to_string(), &key, stored)
            .await
            .map_err(internal)
    }

    /// The room at `room`, created (locked, with `owner` as owner) if it does not exist and
    /// `owner` may create rooms. Returns whether it was created.
    fn room_or_create(
        &self,
        room: &Jid,
        owner: &Jid,
        server_domain: &str,
    ) -> Result<(Arc<tokio::sync::Mutex<Room>>, bool), StanzaError> {
        let node = room.node().unwrap_or_default();
        let mut rooms = self.rooms.lock().expect("rooms lock");
        if let Some(r) = rooms.get(node) {
            return Ok((r.clone(), false));
        }
        if !self.cfg.allow_room_creation || owner.domain() != server_domain {
            return Err(StanzaError::new(Condition::NotAllowed)
                .with_text("rooms are created by the administrator on this service"));
        }
        let mut new = Room::new(room.to_bare(), self.defaults(), self.server_admins.clone());
        new.locked = true;
        new.affiliations.insert(owner.to_bare(), Affiliation::Owner);
        let new = Arc::new(tokio::sync::Mutex::new(new));
        rooms.insert(node.to_string(), new.clone());
        Ok((new, true))
    }

    /// The room, locked; `None` if it does not exist. A room taken out of the service while
    /// this waited for it is looked up again (a persistent one is then reloaded).
    async fn locked_room(
        &self,
        cx: &Context,
        node: &str,
    ) -> Result<Option<tokio::sync::OwnedMutexGuard<Room>>, StanzaError> {
        Ok(self
            .locked_or_created(cx, node, None)
            .await?
            .map(|(room, _)| room))
    }

    /// [`Muc::locked_room`], creating it for `creator` (room JID, owner) when it does not
    /// exist; `true` with a room just created.
    async fn locked_or_created(
        &self,
        cx: &Context,
        node: &str,
        creator: Option<(&Jid, &Jid)>,
    ) -> Result<Option<(tokio::sync::OwnedMutexGuard<Room>, bool)>, StanzaError> {
        loop {
            let (room, created) = match (self.room(cx, node).await?, creator) {
                (Some(room), _) => (room, false),
                (None, Some((jid, owner))) => {
                    self.room_or_create(jid, owner, cx.server.domain())?
                }
                (None, None) => return Ok(None),
            };
            let room = room.lock_owned().await;
            if !room.gone {
                return Ok(Some((room, created)));
            }
        }
    }

    /// Takes a room out of the service (destroyed, or unloaded by `release`); the caller
    /// holds its lock.
    fn remove_room(&self, room: &mut Room) {
        room.gone = true;
        let node = room.jid.node().unwrap_or_default();
        self.rooms.lock().expect("rooms lock").remove(node);
    }

    /// Called when done with a room: one nobody is in leaves memory. A temporary room ends
    /// there (§10.1.3); a persistent one is all in storage and is loaded again when used, so
    /// memory holds only the rooms in use however many exist.
    fn release(&self, room: &mut Room) {
        if room.occupants.is_empty() && !room.gone {
            self.remove_room(room);
            if room.config.persistent {
                tracing::debug!(room = %room.jid, "idle persistent room unloaded from memory");
            } else {
                tracing::debug!(room = %room.jid, "temporary room ended: its last occupant left");
            }
        }
    }

    async fn iq(&self, cx: &Context, node: Option<&str>, st: &Stanza) -> Result<(), StanzaError> {
        if let (Some(node), Some(nick)) = (node, st.to().and_then(Jid::resource)) {
            let Some(mut room) = self.locked_room(cx, node).await? else {
                let is_ping = st.iq_payload().is_some_and(|p| p.is("ping", NS_PING));
                return Err(if is_ping { not_joined() } else { not_found() });
            };
            let outgoing = relay::occupant_iq(&mut room, nick, st);
            self.release(&mut room);
            drop(room);
            if let Some(stanza) = outgoing? {
                cx.send(stanza).await;
            }
            return Ok(());
        }
        let Some(payload) = st.iq_payload() else {
            // Results and errors (e.g. to the service's own pings) need no answer.
            return Ok(());
        };
        let get = st.type_attr() == Some("get");
        let answer = match (node, get, payload.ns().as_str(), payload.name()) {
            (None, true, NS_DISCO_INFO, "query") => Some(self.service_info()),
            (None, true, NS_DISCO_ITEMS, "query") => Some(self.public_rooms(cx).await?),
            (None, true, NS_PING, "ping") => None,
            (None, ..) => return Err(StanzaError::new(Condition::ServiceUnavailable)),
            (Some(node), ..) => self.room_iq(cx, node, st, payload, get).await?,
        };
        cx.send(st.iq_result(answer)).await;
        Ok(())
    }

    /// An IQ to a room: the room and the sender are resolved once here, and the room stays
    /// locked while the handler runs (archive queries excepted).
    async fn room_iq(
        &self,
        cx: &Context,
        node: &str,
        st: &Stanza,
        payload: &Element,
        get: bool,
    ) -> Result<Option<Element>, StanzaError> {
        let is_ping = payload.is("ping", NS_PING);
        let from = st
            .from()
            .ok_or_else(|| StanzaError::new(Condition::BadRequest))?;
        let Some(mut guard) = self.locked_room(cx, node).await? else {
            return Err(if is_ping { not_joined() } else { not_found() });
        };
        if payload.is("query", NS_MAM) {
            // Read without holding the room: a page of results takes a while to send.
            let archive = guard.archive_reader(from);
            self.release(&mut guard);
            drop(guard);
            let archive = archive?;
            if get {
                return Ok(Some(crate::mam::query::form()));
            }
            let sizes = (self.cfg.mam_page_size, self.cfg.mam_max_page_size);
            return crate::mam::query::answer(cx, &archive, &archive, payload, sizes).await;
        }
        let answer = self.room_request(cx, &mut guard, from, payload, get).await;
        self.release(&mut guard);
        answer
    }

    /// What a room answers to an IQ (other than archive queries).
    async fn room_request(
        &self,
        cx: &Context,
        room: &mut Room,
        from: &Jid,
        payload: &Element,
        get: bool,
    ) -> Result<Option<Element>, StanzaError> {
        Ok(match (get, payload.ns().as_str(), payload.name()) {
            (true, NS_DISCO_INFO, "query") => match payload.attr("node") {
                Some(register::ROOMUSER_NODE) => Some(register::reserved_nick_info(room, from)),
                _ => Some(room_info(room)),
            },
            (true, NS_DISCO_ITEMS, "query") => Some(Element::bare("query", NS_DISCO_ITEMS)),
            (_, register::NS_REGISTER, "query") => {
                Some(self.register(cx, room, from, get, payload).await?)
            }
            (_, crate::vcard::NS_VCARD, "vCard") => {
                self.room_vcard(cx, room, from, get, payload).await?
            }
            (false, moderate::NS_MODERATE, "moderate") => {
                self.moderate(cx, room, from, payload).await?;
                None
            }
            (_, admin::NS_ADMIN, "query") => Some(self.admin(cx, room, from, get, payload).await?),
            (_, owner::NS_OWNER, "query") => Some(self.owner(cx, room, from, get, payload).await?),
            // XEP-0410 self-ping: an occupant JID answers for its occupant.
            (true, NS_PING, "ping") => None,
            _ => return Err(StanzaError::new(Condition::ServiceUnavailable)),
        })
    }

    fn service_info(&self) -> Element {
        Element::builder("query", NS_DISCO_INFO)
            .append(
                Element::builder("identity", NS_DISCO_INFO)
                    .attr(ncname("category"), "conference")
                    .attr(ncname("type"), "text")
                    .attr(ncname("name"), "Chatrooms")
                    .build(),
            )
            .append(feature(NS_MUC))
            .append(feature(NS_DISCO_INFO))
            .append(feature(NS_DISCO_ITEMS))
            .append(feature(NS_PING))
            .build()
    }

    /// The room directory: public rooms only (XEP-0045 §6.3), active or stored.
    async fn public_rooms(&self, cx: &Context) -> Result<Element, StanzaError> {
        let active: Vec<_> = self.active_rooms();
        let mut items = std::collections::BTreeMap::new();
        for stored in cx.store().muc_public_rooms().await.map_err(internal)? {
            let config = RoomConfig::from_lines(&stored.config, self.defaults());
            items.insert(stored.jid, config.name);
        }
        for room in active {
            let room = room.lock().await;
            let jid = room.jid.to_string();
            if room.config.public && !room.locked {
                items.insert(jid, room.config.name.clone());
            } else {
                items.remove(&jid);
            }
        }
        let mut query = Element::bare("query", NS_DISCO_ITEMS);
        for (jid, name) in items {
            let mut item = Element::builder("item", NS_DISCO_ITEMS)
                .attr(ncname("jid"), jid)
                .build();
            hearth_core::stanza::set_attr(&mut item, "name", Some(name).filter(|n| !n.is_empty()));
            query.append_child(item);
        }
        Ok(query)
    }
}

/// disco#info of a room: identity, the `muc_*` features of its configuration and the
/// `muc#roominfo` form (XEP-0045 §6.4).
fn room_info(room: &Room) -> Element {
    let c = &room.config;
    let mut query = Element::builder("query", NS_DISCO_INFO)
        .append(
            Element::builder("identity", NS_DISCO_INFO)
                .attr(ncname("category"), "conference")
                .attr(ncname("type"), "text")
                .attr(ncname("name"), c.name.as_str())
                .build(),
        )
        .append(feature(NS_MUC))
        .append(feature(NS_PING))
        .append(feature(room::NS_OCCUPANT_ID))
        .append(feature(moderate::NS_MODERATE))
        .append(feature(moderate::NS_RETRACT))
        .append(feature(crate::vcard::NS_VCARD))
        .build();
    let flags = [
        (c.persistent, "muc_persistent", "muc_temporary"),
        (c.public, "muc_public", "muc_hidden"),
        (c.members_only, "muc_membersonly", "muc_open"),
        (c.moderated, "muc_moderated", "muc_unmoderated"),
        (
            c.password.is_some(),
            "muc_passwordprotected",
            "muc_unsecured",
        ),
        (
            c.whois == room::Whois::Anyone,
            "muc_nonanonymous",
            "muc_semianonymous",
        ),
    ];
    if c.persistent {
        // Persistent rooms are archived (XEP-0313), with stanza ids (XEP-0359).
        query.append_child(feature(NS_MAM));
        query.append_child(feature("urn:xmpp:sid:0"));
    }
    for (on, yes, no) in flags {
        query.append_child(feature(if on { yes } else { no }));
    }
    let occupants = room.occupants.len().to_string();
    let subject = room.subject.as_ref().map_or("", |(_, s)| s.as_str());
    let mut fields = vec![
        ("muc#roominfo_description", c.description.as_str()),
        ("muc#roominfo_occupants", occupants.as_str()),
        ("muc#roominfo_subject", subject),
        ("muc#roominfo_lang", c.language.as_str()),
    ];
    if let Some(hash) = &room.avatar_hash {
        fields.push(("muc#roominfo_avatarhash", hash.as_str()));
    }
    query.append_child(owner::form(
        "result",
        "http://jabber.org/protocol/muc#roominfo",
        &fields,
    ));
    query
}

fn feature(var: &str) -> Element {
    Element::builder("feature", NS_DISCO_INFO)
        .attr(ncname("var"), var)
        .build()
}

fn internal(e: hearth_store::StoreError) -> StanzaError {
    tracing::error!(error = %e, "MUC storage failed");
    StanzaError::new(Condition::InternalServerError)
}

fn not_found() -> StanzaError {
    StanzaError::new(Condition::ItemNotFound).with_text("no such room")
}

/// XEP-0410: what an occupant JID answers when the pinger is not that occupant.
fn not_joined() -> StanzaError {
    StanzaError::new(Condition::NotAcceptable).with_text("you are not in this room")
}
