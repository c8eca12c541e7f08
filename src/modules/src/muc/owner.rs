//! The owner's use cases (XEP-0045 §10): the room configuration form, instant rooms, and
//! destroying a room.

use hearth_core::jid::Jid;
use hearth_core::router::Context;
use hearth_core::stanza::{Condition, StanzaError, ncname};
use minidom::Element;

use super::Muc;
use super::room::{Affiliation, AllowPm, NS_USER, Role, Room, Whois};

pub const NS_OWNER: &str = "http://jabber.org/protocol/muc#owner";
const NS_DATA: &str = "jabber:x:data";
const FORM_CONFIG: &str = "http://jabber.org/protocol/muc#roomconfig";

impl Muc {
    pub(super) async fn owner(
        &self,
        cx: &Context,
        room: &mut Room,
        from: &Jid,
        get: bool,
        query: &Element,
    ) -> Result<Element, StanzaError> {
        if room.affiliation(&from.to_bare()) != Affiliation::Owner {
            return Err(StanzaError::new(Condition::Forbidden)
                .with_text("only owners may configure the room"));
        }
        let empty = Element::bare("query", NS_OWNER);
        if get {
            let mut reply = empty;
            reply.append_child(config_form(room));
            return Ok(reply);
        }
        if let Some(destroy) = query.get_child("destroy", NS_OWNER) {
            if room.config.persistent {
                cx.store()
                    .muc_delete_room(&room.jid.to_string())
                    .await
                    .map_err(super::internal)?;
            }
            self.destroy(cx, room, destroy).await;
            return Ok(empty);
        }
        let form = query.get_child("x", NS_DATA).ok_or_else(|| {
            StanzaError::new(Condition::BadRequest).with_text("a data form is expected")
        })?;
        match form.attr("type") {
            Some("submit") => {
                let was_persistent = room.config.persistent && !room.locked;
                let before = room.config.clone();
                apply(room, form)?;
                if let Err(e) = self.save(cx, room, was_persistent).await {
                    room.config = before;
                    return Err(e);
                }
                room.locked = false;
                tracing::debug!(room = %room.jid, "room configured");
            }
            Some("cancel") if room.locked => {
                // §10.1.3: cancelling the initial configuration destroys the new room.
                self.remove_room(room);
            }
            Some("cancel") => {}
            _ => {
                return Err(StanzaError::new(Condition::BadRequest)
                    .with_text("submit or cancel the configuration form"));
            }
        }
        Ok(empty)
    }

    /// §10.9: every occupant is told, with the alternate venue and reason if given.
    async fn destroy(&self, cx: &Context, room: &mut Room, destroy: &Element) {
        let mut notice = Element::bare("destroy", NS_USER);
        if let Some(venue) = destroy.attr("jid") {
            hearth_core::stanza::set_attr(&mut notice, "jid", Some(venue.to_string()));
        }
        if let Some(reason) = destroy.get_child("reason", NS_OWNER) {
            notice.append_child(
                Element::builder("reason", NS_USER)
                    .append(reason.text())
                    .build(),
            );
        }
        for occupant in room.occupants.values() {
            let from = room
                .jid
                .with_resource(&occupant.nick)
                .unwrap_or_else(|_| room.jid.clone());
            for (to, _) in &occupant.sessions {
                let mut gone = occupant.clone();
                gone.role = Role::None;
                let mut x = room.user_x(&gone, None, &[]);
                x.append_child(notice.clone());
                let p = Element::builder("presence", hearth_core::ns::CLIENT)
                    .attr(ncname("type"), "unavailable")
                    .attr(ncname("from"), from.to_string())
                    .attr(ncname("to"), to.to_string())
                    .append(x)
                    .build();
                if let Ok(st) = hearth_core::stanza::Stanza::from_element(p) {
                    cx.send(st).await;
                }
            }
        }
        room.occupants.clear();
        self.remove_room(room);
        tracing::info!(room = %room.jid, "room destroyed by its owner");
    }
}

/// Applies a submitted configuration form; unknown fields are ignored (§10.2).
fn apply(room: &mut Room, form: &Element) -> Result<(), StanzaError> {
    let mut c = room.config.clone();
    for field in form.children().filter(|f| f.is("field", NS_DATA)) {
        let value = field
            .get_child("value", NS_DATA)
            .map(Element::text)
            .unwrap_or_default();
        let flag = value == "1" || value == "true";
        match field.attr("var").unwrap_or_default() {
            "muc#roomconfig_roomname" => c.name = value,
            "muc#roomconfig_roomdesc" => c.description = value,
            "muc#roomconfig_lang" => c.language = value,
            "muc#roomconfig_changesubject" => c.change_subject = flag,
            "muc#roomconfig_allowinvites" => c.allow_invites = flag,
            "muc#roomconfig_allowvoicerequests" => c.allow_voice_requests = flag,
            "muc#roomconfig_allowpm" => {
                c.allow_pm =
                    AllowPm::parse(&value).ok_or_else(|| bad_value("muc#roomconfig_allowpm"))?;
            }
            "muc#roomconfig_persistentroom" => c.persistent = flag,
            "muc#roomconfig_publicroom" => c.public = flag,
            "muc#roomconfig_membersonly" => c.members_only = flag,
            "muc#roomconfig_moderatedroom" => c.moderated = flag,
            "muc#roomconfig_passwordprotectedroom" if !flag => c.password = None,
            "muc#roomconfig_roomsecret" => {
                c.password = Some(value).filter(|v| !v.is_empty());
            }
            "muc#roomconfig_whois" => {
                c.whois = match value.as_str() {
                    "anyone" => Whois::Anyone,
                    "moderators" => Whois::Moderators,
                    _ => return Err(bad_value("muc#roomconfig_whois")),
                }
            }
            "muc#roomconfig_maxusers" => {
                c.max_users = value
                    .parse()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| bad_value("muc#roomconfig_maxusers"))?;
            }
            "muc#maxhistoryfetch" => {
                c.history_length = value
                    .parse()
                    .map_err(|_| bad_value("muc#maxhistoryfetch"))?;
            }
            _ => {}
        }
    }
    room.config = c;
    Ok(())
}

fn bad_value(var: &str) -> StanzaError {
    StanzaError::new(Condition::NotAcceptable).with_text(format!("bad value for {var}"))
}

/// The configuration form with the room's current values.
fn config_form(room: &Room) -> Element {
    let c = &room.config;
    let flag = |b: bool| if b { "1" } else { "0" };
    let whois = match c.whois {
        Whois::Anyone => "anyone",
        Whois::Moderators => "moderators",
    };
    let max_users = c.max_users.to_string();
    let history = c.history_length.to_string();
    let mut x = form("form", FORM_CONFIG, &[]);
    let fields: [(&str, &str, &str, &str); 16] = [
        ("muc#roomconfig_roomname", "text-single", "Name", &c.name),
        (
            "muc#roomconfig_roomdesc",
            "text-single",
            "Description",
            &c.description,
        ),
        (
            "muc#roomconfig_lang",
            "text-single",
            "Language of the discussion",
            &c.language,
        ),
        (
            "muc#roomconfig_changesubject",
            "boolean",
            "Participants may change the subject",
            flag(c.change_subject),
        ),
        (
            "muc#roomconfig_allowinvites",
            "boolean",
            "Occupants may invite others",
            flag(c.allow_invites),
        ),
        (
            // ejabberd's name for it; XEP-0045 registers none.
            "muc#roomconfig_allowvoicerequests",
            "boolean",
            "Visitors may ask for voice",
            flag(c.allow_voice_requests),
        ),
        (
            "muc#roomconfig_allowpm",
            "list-single",
            "Who may send private messages",
            c.allow_pm.as_str(),
        ),
        (
            "muc#roomconfig_persistentroom",
            "boolean",
            "Keep the room when it is empty",
            flag(c.persistent),
        ),
        (
            "muc#roomconfig_publicroom",
            "boolean",
            "List the room in the directory",
            flag(c.public),
        ),
        (
            "muc#roomconfig_membersonly",
            "boolean",
            "Members only",
            flag(c.members_only),
        ),
        (
            "muc#roomconfig_moderatedroom",
            "boolean",
            "Only participants may speak (moderated)",
            flag(c.moderated),
        ),
        (
            "muc#roomconfig_passwordprotectedroom",
            "boolean",
            "Password protected",
            flag(c.password.is_some()),
        ),
        (
            "muc#roomconfig_roomsecret",
            "text-private",
            "Password",
            c.password.as_deref().unwrap_or(""),
        ),
        (
            "muc#roomconfig_whois",
            "list-single",
            "Who may see real JIDs",
            whois,
        ),
        (
            "muc#roomconfig_maxusers",
            "text-single",
            "Most occupants",
            &max_users,
        ),
        (
            "muc#maxhistoryfetch",
            "text-single",
            "Messages kept for newcomers",
            &history,
        ),
    ];
    for (var, type_, label, value) in fields {
        let mut field = Element::builder("field", NS_DATA)
            .attr(ncname("var"), var)
            .attr(ncname("type"), type_)
            .attr(ncname("label"), label)
            .append(Element::builder("value", NS_DATA).append(value).build())
            .build();
        let options: &[(&str, &str)] = match var {
            "muc#roomconfig_whois" => &[("moderators", "Moderators only"), ("anyone", "Anyone")],
            "muc#roomconfig_allowpm" => &[
                ("anyone", "Anyone"),
                ("participants", "Participants"),
                ("moderators", "Moderators"),
                ("none", "No one"),
            ],
            _ => &[],
        };
        for &(option, label) in options {
            field.append_child(
                Element::builder("option", NS_DATA)
                    .attr(ncname("label"), label)
                    .append(Element::builder("value", NS_DATA).append(option).build())
                    .build(),
            );
        }
        x.append_child(field);
    }
    x
}

/// A data form of `type_` with its FORM_TYPE and `fields` as plain (var, value) fields.
pub(super) fn form(type_: &str, form_type: &str, fields: &[(&str, &str)]) -> Element {
    let value = |v: &str| Element::builder("value", NS_DATA).append(v).build();
    let mut x = Element::builder("x", NS_DATA)
        .attr(ncname("type"), type_)
        .append(
            Element::builder("field", NS_DATA)
                .attr(ncname("var"), "FORM_TYPE")
                .attr(ncname("type"), "hidden")
                .append(value(form_type))
                .build(),
        )
        .build();
    for (var, v) in fields {
        x.append_child(
            Element::builder("field", NS_DATA)
                .attr(ncname("var"), *var)
                .append(value(v))
                .build(),
        );
    }
    x
}
