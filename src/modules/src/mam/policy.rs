//! Which messages go into a user's archive (XEP-0313 §5 "Business rules", XEP-0334 hints).

use hearth_core::stanza::{Kind, Stanza};

const NS_HINTS: &str = "urn:xmpp:hints";
const NS_CARBONS: &str = "urn:xmpp:carbons:2";
const NS_FORWARD: &str = "urn:xmpp:forward:0";
/// End-to-end encrypted payloads: archived although they carry no readable body.
const ENCRYPTED: &[(&str, &str)] = &[
    ("encrypted", "eu.siacs.conversations.axolotl"),
    ("encrypted", "urn:xmpp:omemo:2"),
    ("openpgp", "urn:xmpp:openpgp:0"),
    ("x", "jabber:x:encrypted"),
];

/// Chat and normal messages with a body or an encrypted payload, unless the sender asked
/// not to store them; a `<store/>` hint archives anything of those types. Errors,
/// headlines, group chat (the room archives that) and copies of other messages (carbons,
/// archive results) are not archived.
pub fn archivable(st: &Stanza) -> bool {
    if st.kind() != Kind::Message || !matches!(st.stanza_type(), "chat" | "normal") {
        return false;
    }
    let el = st.element();
    if el
        .children()
        .any(|c| c.ns() == NS_CARBONS || c.has_child("forwarded", NS_FORWARD))
    {
        return false;
    }
    if el.has_child("store", NS_HINTS) {
        return true;
    }
    if el.has_child("no-store", NS_HINTS) || el.has_child("no-permanent-store", NS_HINTS) {
        return false;
    }
    el.has_child("body", hearth_core::ns::CLIENT)
        || ENCRYPTED.iter().any(|(name, ns)| el.has_child(*name, *ns))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(xml: &str) -> bool {
        archivable(&Stanza::from_element(xml.parse().unwrap()).unwrap())
    }

    #[test]
    fn what_is_archived() {
        assert!(check(
            "<message xmlns='jabber:client' type='chat'><body>hi</body></message>"
        ));
        assert!(check(
            "<message xmlns='jabber:client'><body>hi</body></message>"
        ));
        assert!(check(
            "<message xmlns='jabber:client' type='chat'><encrypted xmlns='eu.siacs.conversations.axolotl'/></message>"
        ));
        assert!(!check(
            "<message xmlns='jabber:client' type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>"
        ));
        assert!(!check(
            "<message xmlns='jabber:client' type='groupchat'><body>hi</body></message>"
        ));
        assert!(!check(
            "<message xmlns='jabber:client' type='headline'><body>hi</body></message>"
        ));
        assert!(!check(
            "<message xmlns='jabber:client' type='error'><body>hi</body></message>"
        ));
        assert!(!check(
            "<message xmlns='jabber:client' type='chat'><body>hi</body><no-store xmlns='urn:xmpp:hints'/></message>"
        ));
        assert!(check(
            "<message xmlns='jabber:client' type='chat'><received xmlns='urn:xmpp:receipts' id='x'/><store xmlns='urn:xmpp:hints'/></message>"
        ));
        assert!(!check(
            "<message xmlns='jabber:client' type='chat'><sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'/></sent></message>"
        ));
    }
}
