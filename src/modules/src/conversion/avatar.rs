//! Avatars in their two shapes (XEP-0398): User Avatar in PEP (XEP-0084: the image in
//! `urn:xmpp:avatar:data`, its description in `urn:xmpp:avatar:metadata`, both keyed by the
//! image's SHA-1) and the PHOTO of the vCard-temp (XEP-0054), whose hash presence carries
//! (XEP-0153).

use minidom::Element;
use sha1::{Digest, Sha1};
use xmpp_parsers::avatar::{Data, Info, Metadata};
use xmpp_parsers::hashes::Sha1HexAttribute;
use xmpp_parsers::vcard::{Binval, Photo, Type, VCard};

pub const NS_DATA: &str = "urn:xmpp:avatar:data";
pub const NS_METADATA: &str = "urn:xmpp:avatar:metadata";
pub const NS_VCARD_UPDATE: &str = "vcard-temp:x:update";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Avatar {
    pub image: Vec<u8>,
    /// Content type, e.g. `image/png`.
    pub mime: String,
    /// Lower-case hex SHA-1 of `image`: the PEP item id and the XEP-0153 hash.
    pub sha1: String,
}

impl Avatar {
    pub fn new(image: Vec<u8>, mime: String) -> Self {
        let sha1 = hex(&Sha1::digest(&image));
        Avatar { image, mime, sha1 }
    }

    /// The PHOTO of a vCard-temp, if it has an inline image.
    pub fn from_vcard(vcard: &Element) -> Option<Avatar> {
        let photo = VCard::try_from(vcard.clone()).ok()?.photo?;
        (!photo.binval.data.is_empty()).then(|| Avatar::new(photo.binval.data, photo.type_.data))
    }

    /// From the PEP metadata and the data item it points to. The metadata may list several
    /// images; the one stored in PEP (no `url`) is taken, and its hash must match the data.
    pub fn from_pep(metadata: &Element, data: impl Fn(&str) -> Option<Element>) -> Option<Avatar> {
        let metadata = Metadata::try_from(metadata.clone()).ok()?;
        let info = metadata.infos.into_iter().find(|i| i.url.is_none())?;
        let id = info.id.to_hex();
        let data = Data::try_from(data(&id)?).ok()?;
        let avatar = Avatar::new(data.data, info.type_);
        (avatar.sha1 == id).then_some(avatar)
    }

    /// The `urn:xmpp:avatar:data` payload (item id: `self.sha1`).
    pub fn data_payload(&self) -> Element {
        Data {
            data: self.image.clone(),
        }
        .into()
    }

    /// The `urn:xmpp:avatar:metadata` payload describing this image.
    pub fn metadata_payload(&self) -> Element {
        let id: Sha1HexAttribute = self.sha1.parse().expect("hex of a SHA-1");
        Metadata {
            infos: vec![Info {
                bytes: u32::try_from(self.image.len()).unwrap_or(u32::MAX),
                width: None,
                height: None,
                id,
                type_: self.mime.clone(),
                url: None,
            }],
        }
        .into()
    }

    /// `vcard` (or an empty vCard) with this image as its PHOTO, other fields kept.
    pub fn into_vcard(self, vcard: Option<&Element>) -> Element {
        let mut card = vcard
            .and_then(|v| VCard::try_from(v.clone()).ok())
            .unwrap_or(VCard {
                photo: None,
                payloads: Vec::new(),
            });
        card.photo = Some(Photo {
            type_: Type { data: self.mime },
            binval: Binval { data: self.image },
        });
        card.into()
    }
}

/// An empty PEP metadata payload: the user removed their avatar (XEP-0084 §4.5).
pub fn metadata_is_empty(metadata: &Element) -> bool {
    metadata.is("metadata", NS_METADATA) && metadata.children().next().is_none()
}

/// Lower-case hexadecimal, as SHA-1 hashes are written in XMPP (avatar ids, bytestream addresses).
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Puts the avatar hash into an available presence as XEP-0398 §"Presence" says: added when
/// missing, an `<x/>` without `<photo/>` overwritten, a different hash replaced, and an empty
/// `<photo/>` (the client is not ready to advertise an image) left alone.
pub fn stamp_presence(presence: &mut Element, sha1: &str) {
    let photo = || {
        Element::builder("photo", NS_VCARD_UPDATE)
            .append(sha1.to_string())
            .build()
    };
    let existing = presence
        .get_child("x", NS_VCARD_UPDATE)
        .map(|x| x.get_child("photo", NS_VCARD_UPDATE).map(Element::text));
    match existing {
        Some(Some(hash)) if hash.is_empty() || hash == sha1 => {}
        Some(_) => {
            let x = presence
                .get_child_mut("x", NS_VCARD_UPDATE)
                .expect("checked above");
            x.remove_child("photo", NS_VCARD_UPDATE);
            x.append_child(photo());
        }
        None => {
            let x = Element::builder("x", NS_VCARD_UPDATE)
                .append(photo())
                .build();
            presence.append_child(x);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG not really";

    #[test]
    fn vcard_and_pep_round_trip() {
        let avatar = Avatar::new(PNG.to_vec(), "image/png".into());
        assert_eq!(avatar.sha1.len(), 40);
        let card: Element = "<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>"
            .parse()
            .unwrap();
        let card = avatar.clone().into_vcard(Some(&card));
        assert!(
            card.get_child("FN", "vcard-temp").is_some(),
            "other fields kept"
        );
        assert_eq!(Avatar::from_vcard(&card), Some(avatar.clone()));
        let data = avatar.data_payload();
        let from_pep = Avatar::from_pep(&avatar.metadata_payload(), |id| {
            (id == avatar.sha1).then(|| data.clone())
        });
        assert_eq!(from_pep, Some(avatar));
    }

    #[test]
    fn pep_data_must_match_its_hash() {
        let avatar = Avatar::new(PNG.to_vec(), "image/png".into());
        let other = Avatar::new(b"something else".to_vec(), "image/png".into());
        let wrong = Avatar::from_pep(&avatar.metadata_payload(), |_| Some(other.data_payload()));
        assert_eq!(wrong, None);
        let empty: Element = "<metadata xmlns='urn:xmpp:avatar:metadata'/>"
            .parse()
            .unwrap();
        assert!(metadata_is_empty(&empty));
        assert_eq!(Avatar::from_pep(&empty, |_| None), None);
    }

    #[test]
    fn presence_hash_rules() {
        let hash = "a".repeat(40);
        let stamp = |xml: &str| {
            let mut p: Element = xml.parse().unwrap();
            stamp_presence(&mut p, &hash);
            p.get_child("x", NS_VCARD_UPDATE)
                .and_then(|x| x.get_child("photo", NS_VCARD_UPDATE))
                .map(Element::text)
        };
        assert_eq!(
            stamp("<presence xmlns='jabber:client'/>"),
            Some(hash.clone())
        );
        assert_eq!(
            stamp("<presence xmlns='jabber:client'><x xmlns='vcard-temp:x:update'/></presence>"),
            Some(hash.clone())
        );
        assert_eq!(
            stamp(
                "<presence xmlns='jabber:client'><x xmlns='vcard-temp:x:update'><photo/></x></presence>"
            ),
            Some(String::new()),
            "an empty photo is the client's to send"
        );
        assert_eq!(
            stamp(
                "<presence xmlns='jabber:client'><x xmlns='vcard-temp:x:update'><photo>0123</photo></x></presence>"
            ),
            Some(hash)
        );
    }
}
