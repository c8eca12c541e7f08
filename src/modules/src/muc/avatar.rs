//! Room avatars (XEP-0486): owners set a vCard-temp on the room, anyone reads it, and the
//! photo's hash is in the room's disco#info so clients know when to fetch it again.

use hearth_core::jid::Jid;
use hearth_core::router::Context;
use hearth_core::stanza::{Condition, StanzaError, ncname};
use minidom::Element;

use super::Muc;
use super::room::{Affiliation, NS_USER, Room};
use crate::conversion::avatar::{Avatar, NS_VCARD_UPDATE};
use crate::vcard::NS_VCARD;

/// The largest room vCard (photo included) an owner may set.
const MAX_VCARD_BYTES: usize = 256 * 1024;

impl Muc {
    pub(super) async fn room_vcard(
        &self,
        cx: &Context,
        room: &mut Room,
        from: &Jid,
        get: bool,
        card: &Element,
    ) -> Result<Option<Element>, StanzaError> {
        if get {
            let stored = room
                .vcard
                .as_deref()
                .and_then(|xml| xml.parse::<Element>().ok());
            return Ok(Some(
                stored.unwrap_or_else(|| Element::bare("vCard", NS_VCARD)),
            ));
        }
        if room.affiliation(&from.to_bare()) != Affiliation::Owner {
            return Err(StanzaError::new(Condition::Forbidden)
                .with_text("only owners may change the room's vCard"));
        }
        let mut xml = Vec::new();
        hearth_xml::write_element(card, "", &mut xml);
        if xml.len() > MAX_VCARD_BYTES {
            return Err(
                StanzaError::new(Condition::NotAcceptable).with_text(format!(
                    "the vCard is larger than {MAX_VCARD_BYTES} bytes; use a smaller photo"
                )),
            );
        }
        let previous = (room.vcard.take(), room.avatar_hash.take());
        room.vcard = Some(String::from_utf8_lossy(&xml).into_owned());
        room.avatar_hash = Avatar::from_vcard(card).map(|a| a.sha1);
        if let Err(e) = self.save(cx, room, true).await {
            (room.vcard, room.avatar_hash) = previous;
            return Err(e);
        }
        announce(cx, room).await;
        Ok(None)
    }
}

/// Tells the occupants the room changed (status 104) and gives its new photo hash in a
/// presence from the room itself, as vCard avatars of users do (XEP-0153).
async fn announce(cx: &Context, room: &Room) {
    let changed = Element::builder("message", hearth_core::ns::CLIENT)
        .attr(ncname("type"), "groupchat")
        .append(
            Element::builder("x", NS_USER)
                .append(
                    Element::builder("status", NS_USER)
                        .attr(ncname("code"), "104")
                        .build(),
                )
                .build(),
        )
        .build();
    let mut photo = Element::bare("photo", NS_VCARD_UPDATE);
    if let Some(hash) = &room.avatar_hash {
        photo.append_text_node(hash.as_str());
    }
    let presence = Element::builder("presence", hearth_core::ns::CLIENT)
        .append(Element::builder("x", NS_VCARD_UPDATE).append(photo).build())
        .build();
    for el in [changed, presence] {
        super::occupancy::send_to_all(cx, room, el).await;
    }
}
