//! A room's state and the XEP-0045 rules that depend only on it: affiliations and the roles
//! they give, who may see real JIDs, the `muc#user` items of presence, join checks.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use hearth_core::jid::Jid;
use hearth_core::stanza::{Condition, StanzaError, ncname};
use minidom::Element;

pub const NS_USER: &str = "http://jabber.org/protocol/muc#user";
pub const NS_OCCUPANT_ID: &str = "urn:xmpp:occupant-id:0";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Affiliation {
    Outcast,
    None,
    Member,
    Admin,
    Owner,
}

impl Affiliation {
    pub fn parse(s: &str) -> Option<Self> {
        [
            Affiliation::Outcast,
            Affiliation::None,
            Affiliation::Member,
            Affiliation::Admin,
            Affiliation::Owner,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Affiliation::Outcast => "outcast",
            Affiliation::None => "none",
            Affiliation::Member => "member",
            Affiliation::Admin => "admin",
            Affiliation::Owner => "owner",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    None,
    Visitor,
    Participant,
    Moderator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::None => "none",
            Role::Visitor => "visitor",
            Role::Participant => "participant",
            Role::Moderator => "moderator",
        }
    }
}

/// Who may see occupants' real JIDs (`muc#roomconfig_whois`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whois {
    Moderators,
    Anyone,
}

/// Who may send private messages in the room (`muc#roomconfig_allowpm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowPm {
    Anyone,
    Participants,
    Moderators,
    None,
}

impl AllowPm {
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Anyone,
            Self::Participants,
            Self::Moderators,
            Self::None,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AllowPm::Anyone => "anyone",
            AllowPm::Participants => "participants",
            AllowPm::Moderators => "moderators",
            AllowPm::None => "none",
        }
    }

    /// Whether an occupant with `role` may send a private message.
    pub fn allows(self, role: Role) -> bool {
        match self {
            AllowPm::Anyone => true,
            AllowPm::Participants => role >= Role::Participant,
            AllowPm::Moderators => role == Role::Moderator,
            AllowPm::None => false,
        }
    }
}

/// The room configuration (XEP-0045 §10.2), with the defaults of a new room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomConfig {
    pub name: String,
    pub description: String,
    /// The language of the discussion (`muc#roomconfig_lang`).
    pub language: String,
    pub persistent: bool,
    pub public: bool,
    pub members_only: bool,
    pub moderated: bool,
    pub password: Option<String>,
    pub whois: Whois,
    pub max_users: usize,
    pub history_length: usize,
    /// Participants (not only moderators) may change the subject.
    pub change_subject: bool,
    /// Occupants may invite others.
    pub allow_invites: bool,
    /// Visitors may ask the moderators for voice (§7.13).
    pub allow_voice_requests: bool,
    pub allow_pm: AllowPm,
    /// Keys occupant ids (XEP-0421) to this room; random per room, not shown in the form.
    pub occupant_id_salt: String,
}

impl RoomConfig {
    /// The stored form: `key=value` lines (values have no line breaks).
    pub fn to_lines(&self) -> String {
        let one_line = |s: &str| s.replace(['\n', '\r'], " ");
        format!(
            "name={}\ndescription={}\npersistent={}\npublic={}\nmembers_only={}\nmoderated={}\npassword={}\nwhois={}\nmax_users={}\nhistory_length={}\noccupant_id_salt={}\nlanguage={}\nchange_subject={}\nallow_invites={}\nallow_pm={}\nallow_voice_requests={}",
            one_line(&self.name),
            one_line(&self.description),
            self.persistent,
            self.public,
            self.members_only,
            self.moderated,
            self.password.as_deref().map(one_line).unwrap_or_default(),
            match self.whois {
                Whois::Anyone => "anyone",
                Whois::Moderators => "moderators",
            },
            self.max_users,
            self.history_length,
            self.occupant_id_salt,
            one_line(&self.language),
            self.change_subject,
            self.allow_invites,
            self.allow_pm.as_str(),
            self.allow_voice_requests,
        )
    }

    /// Reads [`RoomConfig::to_lines`]; what is missing keeps `defaults`.
    pub fn from_lines(lines: &str, defaults: RoomConfig) -> Self {
        let mut c = defaults;
        for line in lines.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let flag = v == "true";
            match k {
                "name" => c.name = v.to_string(),
                "description" => c.description = v.to_string(),
                "persistent" => c.persistent = flag,
                "public" => c.public = flag,
                "members_only" => c.members_only = flag,
                "moderated" => c.moderated = flag,
                "password" => c.password = Some(v.to_string()).filter(|p| !p.is_empty()),
                "whois" if v == "anyone" => c.whois = Whois::Anyone,
                "whois" => c.whois = Whois::Moderators,
                "max_users" => c.max_users = v.parse().unwrap_or(c.max_users),
                "history_length" => c.history_length = v.parse().unwrap_or(c.history_length),
                "occupant_id_salt" if !v.is_empty() => c.occupant_id_salt = v.to_string(),
                "language" => c.language = v.to_string(),
                "change_subject" => c.change_subject = flag,
                "allow_invites" => c.allow_invites = flag,
                "allow_pm" => c.allow_pm = AllowPm::parse(v).unwrap_or(c.allow_pm),
                "allow_voice_requests" => c.allow_voice_requests = flag,
                _ => {}
            }
        }
        c
    }

    pub fn new(max_users: usize, history_length: usize) -> Self {
        RoomConfig {
            name: String::new(),
            description: String::new(),
            language: String::new(),
            persistent: false,
            public: true,
            members_only: false,
            moderated: false,
            password: None,
            whois: Whois::Moderators,
            max_users,
            history_length,
            change_subject: false,
            allow_invites: true,
            allow_voice_requests: true,
            allow_pm: AllowPm::Anyone,
            occupant_id_salt: {
                use rand::Rng;
                format!("{:032x}", rand::rng().random::<u128>())
            },
        }
    }
}

/// One nick in the room: a user, present with one or more of their sessions.
#[derive(Debug, Clone)]
pub struct Occupant {
    pub nick: String,
    /// The user's bare JID (affiliations are per bare JID).
    pub bare: Jid,
    /// The sessions present under this nick, with the presence each last sent.
    pub sessions: Vec<(Jid, Element)>,
    pub role: Role,
}

/// A nickname as the room shows it: the PRECIS Nickname profile's enforcement (RFC 8266
/// §2.3: spaces trimmed and collapsed, NFKC), which refuses control, invisible and bidi-control
/// characters. `None` if it refuses the nick.
pub fn enforce_nick(raw: &str) -> Option<String> {
    use precis_profiles::precis_core::profile::Profile;
    let nick = precis_profiles::Nickname::new().enforce(raw).ok()?;
    (!nick.is_empty() && nick.len() <= 256).then(|| nick.into_owned())
}

/// What nicknames are compared by (RFC 8266 §2.4, case-mapped), so that `Alice`, `alice `
/// and `ALICE` are one nick and none can pose as another.
fn nick_key(nick: &str) -> String {
    enforce_nick(nick).map_or_else(|| nick.to_string(), |n| n.to_lowercase())
}

/// The occupants by nickname, compared as [`nick_key`] says.
#[derive(Debug, Default)]
pub struct Occupants(BTreeMap<String, Occupant>);

impl Occupants {
    pub fn get(&self, nick: &str) -> Option<&Occupant> {
        self.0.get(&nick_key(nick))
    }

    pub fn get_mut(&mut self, nick: &str) -> Option<&mut Occupant> {
        self.0.get_mut(&nick_key(nick))
    }

    pub fn contains(&self, nick: &str) -> bool {
        self.0.contains_key(&nick_key(nick))
    }

    pub fn insert(&mut self, occupant: Occupant) {
        self.0.insert(nick_key(&occupant.nick), occupant);
    }

    pub fn remove(&mut self, nick: &str) -> Option<Occupant> {
        self.0.remove(&nick_key(nick))
    }

    pub fn values(&self) -> impl Iterator<Item = &Occupant> {
        self.0.values()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }
}

/// A message kept for history on join.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    /// The message as broadcast (from the occupant JID, without `to`).
    pub message: Element,
    /// Milliseconds since the epoch.
    pub stamp: i64,
    /// The sender's real JID, for the address element in non-anonymous rooms (unknown for
    /// history read back from the archive).
    pub sender: Option<Jid>,
}

#[derive(Debug)]
pub struct Room {
    pub jid: Jid,
    pub config: RoomConfig,
    /// A new room stays locked until its owner configures it (XEP-0045 §10.1.2).
    pub locked: bool,
    /// The stored affiliations (what is saved and what the lists show).
    pub affiliations: HashMap<Jid, Affiliation>,
    /// The server's administrators when they own every room (`admins_are_owners`), else
    /// empty. Their ownership follows the server's configuration, so it is never stored.
    pub server_admins: Arc<HashSet<Jid>>,
    /// Registered nicknames (§7.10), reserved for their owners, by bare JID.
    pub nicks: HashMap<Jid, String>,
    pub occupants: Occupants,
    /// The nick (or room) that set it, and the text.
    pub subject: Option<(String, String)>,
    pub history: VecDeque<HistoryEntry>,
    /// The room's vCard-temp (XML) and the SHA-1 of its photo (XEP-0486).
    pub vcard: Option<String>,
    pub avatar_hash: Option<String>,
    /// Flood limits (see `rate.rs`): the room's, and each sender's by bare JID.
    pub room_bucket: hearth_core::rate::Bucket,
    pub buckets: HashMap<Jid, hearth_core::rate::Bucket>,
    /// Requests relayed to occupants, by the id the room gave them (`relay.rs`).
    pub pending_iqs: HashMap<String, super::relay::PendingIq>,
    /// Taken out of the service (unloaded when idle, or destroyed) while someone waited for
    /// its lock: they look the room up again (`Muc::locked_room`).
    pub gone: bool,
}

impl Room {
    pub fn new(jid: Jid, config: RoomConfig, server_admins: Arc<HashSet<Jid>>) -> Self {
        Room {
            jid,
            config,
            locked: false,
            affiliations: HashMap::new(),
            server_admins,
            nicks: HashMap::new(),
            occupants: Occupants::default(),
            subject: None,
            history: VecDeque::new(),
            vcard: None,
            avatar_hash: None,
            // Full: the limits are on rates, not on a room's first messages.
            room_bucket: hearth_core::rate::Bucket::full(f64::MAX, std::time::Instant::now()),
            buckets: HashMap::new(),
            pending_iqs: HashMap::new(),
            gone: false,
        }
    }

    /// The affiliation `bare` acts with and is shown with: owner for a server administrator
    /// (whatever is stored), else the stored one. Every rule of the room goes by this one.
    pub fn affiliation(&self, bare: &Jid) -> Affiliation {
        if self.is_server_admin(bare) {
            Affiliation::Owner
        } else {
            self.stored_affiliation(bare)
        }
    }

    /// Whether `bare` owns the room as a server administrator.
    pub fn is_server_admin(&self, bare: &Jid) -> bool {
        self.server_admins.contains(bare)
    }

    /// The affiliation the room stores for `bare`, which is what is saved.
    pub fn stored_affiliation(&self, bare: &Jid) -> Affiliation {
        self.affiliations
            .get(bare)
            .copied()
            .unwrap_or(Affiliation::None)
    }

    /// The role an affiliation gives on entering (XEP-0045 §5.1.2).
    pub fn default_role(&self, affiliation: Affiliation) -> Role {
        match affiliation {
            Affiliation::Owner | Affiliation::Admin => Role::Moderator,
            Affiliation::Member => Role::Participant,
            Affiliation::None if self.config.moderated => Role::Visitor,
            Affiliation::None => Role::Participant,
            Affiliation::Outcast => Role::None,
        }
    }

    /// The occupant a session (full JID) is in the room as.
    pub fn occupant_of(&self, session: &Jid) -> Option<&Occupant> {
        self.occupants
            .values()
            .find(|o| o.sessions.iter().any(|(j, _)| j == session))
    }

    /// Whether `bare` may enter as `nick` (XEP-0045 §7.2): the errors in the order the XEP
    /// checks them. A user may join again under the nick they hold (another session).
    pub fn may_enter(
        &self,
        bare: &Jid,
        nick: &str,
        password: Option<&str>,
    ) -> Result<(), StanzaError> {
        let affiliation = self.affiliation(bare);
        if affiliation == Affiliation::Outcast {
            return Err(
                StanzaError::new(Condition::Forbidden).with_text("you are banned from this room")
            );
        }
        self.may_take_nick(bare, nick)?;
        if self.locked && affiliation != Affiliation::Owner {
            return Err(StanzaError::new(Condition::ItemNotFound)
                .with_text("the room is being set up by its owner; try again shortly"));
        }
        if self.config.members_only && affiliation < Affiliation::Member {
            return Err(StanzaError::new(Condition::RegistrationRequired)
                .with_text("this room is for members only"));
        }
        // Admins and owners, server administrators among them, need no password: they may
        // read and change it in the configuration form, and the owner who knew it may be gone.
        if let Some(expected) = &self.config.password
            && affiliation < Affiliation::Admin
            && password != Some(expected.as_str())
        {
            return Err(
                StanzaError::new(Condition::NotAuthorized).with_text("this room needs a password")
            );
        }
        let full = self.occupants.len() >= self.config.max_users
            && !self.occupants.contains(nick)
            && affiliation < Affiliation::Admin;
        if full {
            return Err(
                StanzaError::new(Condition::ServiceUnavailable).with_text("the room is full")
            );
        }
        Ok(())
    }

    /// Whether `bare` may use `nick` here (to enter or as a new nickname): not while someone
    /// else sits under it or a look-alike, nor when someone else registered it.
    pub fn may_take_nick(&self, bare: &Jid, nick: &str) -> Result<(), StanzaError> {
        if let Some(o) = self.occupants.get(nick)
            && o.bare != *bare
        {
            return Err(StanzaError::new(Condition::Conflict)
                .with_text("that nickname is in use in this room"));
        }
        if self.reserved_for_other(bare, nick) {
            return Err(StanzaError::new(Condition::Conflict)
                .with_text("that nickname is registered to someone else in this room"));
        }
        Ok(())
    }

    /// Whether `nick` is registered in this room to someone other than `bare`.
    pub fn reserved_for_other(&self, bare: &Jid, nick: &str) -> bool {
        let key = nick_key(nick);
        self.nicks
            .iter()
            .any(|(owner, n)| owner != bare && nick_key(n) == key)
    }

    /// The key of the room's archive if `requester` may read it (XEP-0313 §6 for MUC): the
    /// room must be persistent (only those are archived), and the requester allowed in.
    pub fn archive_reader(&self, requester: &Jid) -> Result<String, StanzaError> {
        if !self.config.persistent {
            return Err(StanzaError::new(Condition::ServiceUnavailable)
                .with_text("only persistent rooms keep an archive"));
        }
        let bare = requester.to_bare();
        let affiliation = self.affiliation(&bare);
        let present = self.occupant_of(requester).is_some();
        if affiliation == Affiliation::Outcast
            || (self.config.members_only && affiliation < Affiliation::Member && !present)
        {
            return Err(StanzaError::new(Condition::Forbidden)
                .with_text("you may not read this room's archive"));
        }
        Ok(self.jid.to_string())
    }

    /// Whether `viewer` sees occupants' real JIDs.
    pub fn shows_jids_to(&self, viewer: Role) -> bool {
        self.config.whois == Whois::Anyone || viewer == Role::Moderator
    }

    /// The `<x xmlns='muc#user'>` of `occupant`'s presence as `viewer` sees it, with `codes`.
    pub fn user_x(&self, occupant: &Occupant, with_jid: Option<&Jid>, codes: &[u16]) -> Element {
        let mut item = Element::builder("item", NS_USER)
            .attr(
                ncname("affiliation"),
                self.affiliation(&occupant.bare).as_str(),
            )
            .attr(ncname("role"), occupant.role.as_str())
            .build();
        if let Some(jid) = with_jid {
            hearth_core::stanza::set_attr(&mut item, "jid", Some(jid.to_string()));
        }
        let mut x = Element::builder("x", NS_USER).append(item).build();
        for code in codes {
            x.append_child(
                Element::builder("status", NS_USER)
                    .attr(ncname("code"), code.to_string())
                    .build(),
            );
        }
        x
    }

    /// XEP-0421: an id for `bare` that is stable in this room and tells nothing about the
    /// JID, so clients can tell occupants apart across nick changes without seeing JIDs.
    pub fn occupant_id(&self, bare: &Jid) -> Element {
        use base64::Engine as _;
        use sha2::Digest as _;
        let digest = sha2::Sha256::new()
            .chain_update(self.config.occupant_id_salt.as_bytes())
            .chain_update(bare.to_string().as_bytes())
            .finalize();
        let id = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&digest[..18]);
        Element::builder("occupant-id", NS_OCCUPANT_ID)
            .attr(ncname("id"), id)
            .build()
    }

    /// Keeps `entry` for history, dropping the oldest beyond the configured length.
    pub fn remember(&mut self, entry: HistoryEntry) {
        if self.config.history_length == 0 {
            return;
        }
        while self.history.len() >= self.config.history_length {
            self.history.pop_front();
        }
        self.history.push_back(entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(s: &str) -> Jid {
        Jid::parse(s).unwrap()
    }

    fn room() -> Room {
        let server_admins = Arc::new(HashSet::from([jid("root@localhost")]));
        let mut r = Room::new(
            jid("room@conference.localhost"),
            RoomConfig::new(2, 20),
            server_admins,
        );
        r.affiliations
            .insert(jid("owner@localhost"), Affiliation::Owner);
        r.occupants.insert(Occupant {
            nick: "alice".into(),
            bare: jid("alice@localhost"),
            sessions: vec![],
            role: Role::Participant,
        });
        r
    }

    #[test]
    fn entering_checks_bans_nicks_locks_membership_passwords_and_size() {
        let mut r = room();
        let bob = jid("bob@localhost");
        assert!(r.may_enter(&bob, "bob", None).is_ok());
        // Another session of alice may share her nick; bob may not take it.
        assert!(r.may_enter(&jid("alice@localhost"), "alice", None).is_ok());
        assert_eq!(
            r.may_enter(&bob, "alice", None).unwrap_err().condition,
            Condition::Conflict
        );
        r.config.password = Some("secret".into());
        assert_eq!(
            r.may_enter(&bob, "bob", Some("wrong"))
                .unwrap_err()
                .condition,
            Condition::NotAuthorized
        );
        assert!(r.may_enter(&bob, "bob", Some("secret")).is_ok());
        r.config.members_only = true;
        assert_eq!(
            r.may_enter(&bob, "bob", Some("secret"))
                .unwrap_err()
                .condition,
            Condition::RegistrationRequired
        );
        r.affiliations.insert(bob.clone(), Affiliation::Member);
        assert!(r.may_enter(&bob, "bob", Some("secret")).is_ok());
        r.affiliations.insert(bob.clone(), Affiliation::Outcast);
        assert_eq!(
            r.may_enter(&bob, "bob", Some("secret"))
                .unwrap_err()
                .condition,
            Condition::Forbidden
        );
        r.nicks.insert(jid("dave@localhost"), "Dave".into());
        assert_eq!(
            r.may_enter(&jid("carol@localhost"), "dave", None)
                .unwrap_err()
                .condition,
            Condition::Conflict
        );
        r.affiliations
            .insert(jid("dave@localhost"), Affiliation::Member);
        assert!(
            r.may_enter(&jid("dave@localhost"), "Dave", Some("secret"))
                .is_ok()
        );
        r.locked = true;
        assert_eq!(
            r.may_enter(&jid("carol@localhost"), "carol", None)
                .unwrap_err()
                .condition,
            Condition::ItemNotFound
        );
        assert!(r.may_enter(&jid("owner@localhost"), "boss", None).is_ok());
        r.locked = false;
        r.config = RoomConfig::new(1, 20);
        assert_eq!(
            r.may_enter(&jid("carol@localhost"), "carol", None)
                .unwrap_err()
                .condition,
            Condition::ServiceUnavailable
        );
        // Admins and owners get in even when it is full.
        assert!(r.may_enter(&jid("owner@localhost"), "boss", None).is_ok());
    }

    #[test]
    fn server_admins_own_every_room_without_being_stored() {
        let mut r = room();
        let root = jid("root@localhost");
        assert_eq!(r.affiliation(&root), Affiliation::Owner);
        assert_eq!(r.stored_affiliation(&root), Affiliation::None);
        // Whatever the room stored for them before they became an administrator.
        r.affiliations.insert(root.clone(), Affiliation::Outcast);
        assert_eq!(r.affiliation(&root), Affiliation::Owner);
        assert_eq!(r.stored_affiliation(&root), Affiliation::Outcast);
        r.locked = true;
        r.config.members_only = true;
        r.config.password = Some("secret".into());
        assert!(r.may_enter(&root, "root", None).is_ok());
        let seen = Occupant {
            nick: "root".into(),
            bare: root.clone(),
            sessions: vec![],
            role: r.default_role(r.affiliation(&root)),
        };
        assert_eq!(seen.role, Role::Moderator);
        let x = r.user_x(&seen, None, &[]);
        let item = x.get_child("item", NS_USER).unwrap();
        assert_eq!(item.attr("affiliation"), Some("owner"));
        // Without the option, the set is empty and the stored affiliation holds.
        r.server_admins = Arc::default();
        assert_eq!(r.affiliation(&root), Affiliation::Outcast);
    }

    #[test]
    fn nicknames_cannot_pose_as_others() {
        let r = room();
        let bob = jid("bob@localhost");
        for impostor in ["Alice", "ALICE", "alice ", " alice"] {
            let nick = enforce_nick(impostor).unwrap();
            assert_eq!(
                r.may_enter(&bob, &nick, None).unwrap_err().condition,
                Condition::Conflict,
                "{impostor:?}"
            );
        }
        for refused in ["al\u{200b}ice", "\u{202e}ecila", "a\u{7}b", "   "] {
            assert_eq!(enforce_nick(refused), None, "{refused:?}");
        }
        assert_eq!(enforce_nick("  Mary   Ann ").as_deref(), Some("Mary Ann"));
        assert_eq!(enforce_nick("😀 Alice").as_deref(), Some("😀 Alice"));
    }

    #[test]
    fn roles_follow_affiliations_and_moderation() {
        let mut r = room();
        assert_eq!(r.default_role(Affiliation::Owner), Role::Moderator);
        assert_eq!(r.default_role(Affiliation::None), Role::Participant);
        r.config.moderated = true;
        assert_eq!(r.default_role(Affiliation::None), Role::Visitor);
        assert_eq!(r.default_role(Affiliation::Member), Role::Participant);
        assert!(!r.shows_jids_to(Role::Participant));
        assert!(r.shows_jids_to(Role::Moderator));
        r.config.whois = Whois::Anyone;
        assert!(r.shows_jids_to(Role::Visitor));
    }

    #[test]
    fn configuration_survives_its_stored_form() {
        let mut c = RoomConfig::new(50, 10);
        c.name = "Team\nRoom".into();
        c.persistent = true;
        c.members_only = true;
        c.password = Some("pw=1".into());
        c.whois = Whois::Anyone;
        c.language = "de".into();
        c.change_subject = true;
        c.allow_invites = false;
        c.allow_voice_requests = false;
        c.allow_pm = AllowPm::Moderators;
        let back = RoomConfig::from_lines(&c.to_lines(), RoomConfig::new(1, 1));
        assert_eq!(back.name, "Team Room");
        c.name = back.name.clone();
        assert_eq!(back, c);
        for a in ["outcast", "none", "member", "admin", "owner"] {
            assert_eq!(Affiliation::parse(a).unwrap().as_str(), a);
        }
    }

    #[test]
    fn history_keeps_the_newest() {
        let mut r = room();
        r.config.history_length = 2;
        for i in 0..3 {
            r.remember(HistoryEntry {
                message: Element::bare("message", "jabber:client"),
                stamp: i,
                sender: Some(jid("alice@localhost")),
            });
        }
        let stamps: Vec<i64> = r.history.iter().map(|h| h.stamp).collect();
        assert_eq!(stamps, [1, 2]);
    }
}
