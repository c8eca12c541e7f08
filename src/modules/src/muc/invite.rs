//! Messages to the room itself that are not groupchat: mediated invitations and declines
//! (XEP-0045 §7.8.2, §7.8.3) and voice requests (§7.13, §8.6).

use hearth_core::jid::Jid;
use hearth_core::router::Context;
use hearth_core::stanza::{Condition, Stanza, StanzaError, ncname};
use minidom::Element;

use super::Muc;
use super::occupancy::broadcast_presence;
use super::room::{Affiliation, NS_USER, Role, Room};

const NS_DATA: &str = "jabber:x:data";
const FORM_REQUEST: &str = "http://jabber.org/protocol/muc#request";

impl Muc {
    pub(super) async fn room_message(
        &self,
        cx: &Context,
        room: &mut Room,
        from: &Jid,
        st: &Stanza,
    ) -> Result<(), StanzaError> {
        if let Some(x) = st.element().get_child("x", NS_USER) {
            for invite in x.children().filter(|c| c.is("invite", NS_USER)) {
                self.invite(cx, room, from, invite).await?;
            }
            for decline in x.children().filter(|c| c.is("decline", NS_USER)) {
                decline_to(cx, room, from, decline).await?;
            }
            return Ok(());
        }
        if let Some(form) = st
            .element()
            .get_child("x", NS_DATA)
            .filter(|f| field(f, "FORM_TYPE").as_deref() == Some(FORM_REQUEST))
        {
            return voice_request(cx, room, from, form).await;
        }
        Err(StanzaError::new(Condition::BadRequest)
            .with_text("a message to the room is groupchat, an invitation or a voice request"))
    }

    /// Relays an invitation from an occupant; in a members-only room the invitee becomes a
    /// member (only admins and owners may invite there).
    async fn invite(
        &self,
        cx: &Context,
        room: &mut Room,
        from: &Jid,
        invite: &Element,
    ) -> Result<(), StanzaError> {
        let inviter = room.occupant_of(from).cloned().ok_or_else(|| {
            StanzaError::new(Condition::NotAcceptable).with_text("enter the room before inviting")
        })?;
        let inviter_affiliation = room.affiliation(&inviter.bare);
        if !room.config.allow_invites && inviter.role != Role::Moderator {
            return Err(StanzaError::new(Condition::Forbidden)
                .with_text("only moderators may invite to this room"));
        }
        if room.config.members_only && inviter_affiliation < Affiliation::Admin {
            return Err(StanzaError::new(Condition::Forbidden)
                .with_text("only admins and owners may invite to this members-only room"));
        }
        let invitee = invite
            .attr("to")
            .and_then(|t| Jid::parse(t).ok())
            .ok_or_else(|| StanzaError::new(Condition::JidMalformed))?;
        if room.config.members_only && room.affiliation(&invitee.to_bare()) < Affiliation::Member {
            let bare = invitee.to_bare();
            self.save_affiliation(cx, room, &bare, Affiliation::Member, None)
                .await?;
            room.affiliations.insert(bare, Affiliation::Member);
        }
        let mut relayed = Element::builder("invite", NS_USER)
            .attr(ncname("from"), inviter.bare.to_string())
            .build();
        if let Some(reason) = invite.get_child("reason", NS_USER) {
            relayed.append_child(reason.clone());
        }
        let mut user_x = Element::builder("x", NS_USER).append(relayed).build();
        if let Some(password) = &room.config.password {
            user_x.append_child(
                Element::builder("password", NS_USER)
                    .append(password.as_str())
                    .build(),
            );
        }
        let message = Element::builder("message", hearth_core::ns::CLIENT)
            .attr(ncname("from"), room.jid.to_string())
            .attr(ncname("to"), invitee.to_string())
            .append(user_x)
            .build();
        if let Ok(st) = Stanza::from_element(message) {
            cx.send(st).await;
        }
        tracing::debug!(room = %room.jid, invitee = %invitee, "invitation relayed");
        Ok(())
    }
}

/// Relays a decline to the inviter, from the room.
async fn decline_to(
    cx: &Context,
    room: &Room,
    from: &Jid,
    decline: &Element,
) -> Result<(), StanzaError> {
    let inviter = decline
        .attr("to")
        .and_then(|t| Jid::parse(t).ok())
        .ok_or_else(|| StanzaError::new(Condition::JidMalformed))?;
    let mut relayed = Element::builder("decline", NS_USER)
        .attr(ncname("from"), from.to_bare().to_string())
        .build();
    if let Some(reason) = decline.get_child("reason", NS_USER) {
        relayed.append_child(reason.clone());
    }
    let message = Element::builder("message", hearth_core::ns::CLIENT)
        .attr(ncname("from"), room.jid.to_string())
        .attr(ncname("to"), inviter.to_string())
        .append(Element::builder("x", NS_USER).append(relayed).build())
        .build();
    if let Ok(st) = Stanza::from_element(message) {
        cx.send(st).await;
    }
    Ok(())
}

/// A visitor asks for voice: the moderators get the approval form. A moderator's submitted
/// form with `muc#request_allow` grants it.
async fn voice_request(
    cx: &Context,
    room: &mut Room,
    from: &Jid,
    form: &Element,
) -> Result<(), StanzaError> {
    let sender = room.occupant_of(from).cloned().ok_or_else(|| {
        StanzaError::new(Condition::NotAcceptable).with_text("enter the room first")
    })?;
    if sender.role == Role::Moderator {
        let allowed = field(form, "muc#request_allow").is_some_and(|v| v == "1" || v == "true");
        let nick = field(form, "muc#roomnick").unwrap_or_default();
        if !allowed {
            return Ok(());
        }
        let sessions: Vec<Jid> = match room.occupants.get_mut(&nick) {
            Some(o) if o.role == Role::Visitor => {
                o.role = Role::Participant;
                o.sessions.iter().map(|(j, _)| j.clone()).collect()
            }
            _ => return Ok(()),
        };
        let nick = room
            .occupants
            .get(&nick)
            .map(|o| o.nick.clone())
            .unwrap_or(nick);
        for session in sessions {
            broadcast_presence(cx, room, &nick, &session, &[]).await;
        }
        return Ok(());
    }
    if sender.role != Role::Visitor {
        return Ok(());
    }
    if !room.config.allow_voice_requests {
        return Err(StanzaError::new(Condition::NotAllowed)
            .with_text("this room does not take voice requests"));
    }
    let value = |v: &str| Element::builder("value", NS_DATA).append(v).build();
    let field_el = |var: &str, type_: &str, label: &str, v: &str| {
        Element::builder("field", NS_DATA)
            .attr(ncname("var"), var)
            .attr(ncname("type"), type_)
            .attr(ncname("label"), label)
            .append(value(v))
            .build()
    };
    let approval = Element::builder("x", NS_DATA)
        .attr(ncname("type"), "form")
        .append(
            Element::builder("title", NS_DATA)
                .append("Voice request")
                .build(),
        )
        .append(field_el("FORM_TYPE", "hidden", "", FORM_REQUEST))
        .append(field_el(
            "muc#role",
            "list-single",
            "Requested role",
            "participant",
        ))
        .append(field_el(
            "muc#jid",
            "jid-single",
            "User ID",
            &sender.bare.to_string(),
        ))
        .append(field_el(
            "muc#roomnick",
            "text-single",
            "Room nickname",
            &sender.nick,
        ))
        .append(field_el(
            "muc#request_allow",
            "boolean",
            "Grant voice to this person?",
            "false",
        ))
        .build();
    for moderator in room
        .occupants
        .values()
        .filter(|o| o.role == Role::Moderator)
    {
        for (to, _) in &moderator.sessions {
            let message = Element::builder("message", hearth_core::ns::CLIENT)
                .attr(ncname("from"), room.jid.to_string())
                .attr(ncname("to"), to.to_string())
                .append(approval.clone())
                .build();
            if let Ok(st) = Stanza::from_element(message) {
                cx.send(st).await;
            }
        }
    }
    Ok(())
}

/// The first value of a data form field.
fn field(form: &Element, var: &str) -> Option<String> {
    form.children()
        .find(|f| f.is("field", NS_DATA) && f.attr("var") == Some(var))
        .and_then(|f| f.get_child("value", NS_DATA))
        .map(Element::text)
}
