//! Bookmarks in their three shapes: PEP Native Bookmarks (XEP-0402, one item per room in
//! `urn:xmpp:bookmarks:1`), and the single `<storage xmlns='storage:bookmarks'/>` document of
//! XEP-0048, kept in PEP (node `storage:bookmarks`) or in Private XML Storage (XEP-0049).
//! XEP-0402 items are the stored truth; the legacy document is derived from them and, when a
//! legacy client writes it, split back into items (XEP-0402 §"Compatibility", XEP-0411).

use hearth_core::stanza::{ncname, set_attr};
use minidom::Element;

pub const NS_BOOKMARKS2: &str = "urn:xmpp:bookmarks:1";
pub const NS_LEGACY: &str = "storage:bookmarks";

/// One room bookmark, shape-independent. Not xmpp-parsers' `bookmarks2::Conference`: its `nick`
/// is a resourceprep'd `ResourcePart`, which refuses the emoji nicknames real clients store, and
/// a bookmark must never be dropped for that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bookmark {
    /// The room's JID (the XEP-0402 item id).
    pub jid: String,
    pub name: Option<String>,
    pub autojoin: bool,
    pub nick: Option<String>,
    pub password: Option<String>,
    /// XEP-0402 `<extensions/>` content, kept across conversions where the shape allows.
    pub extensions: Vec<Element>,
}

fn is_true(v: Option<&str>) -> bool {
    matches!(v, Some("true" | "1"))
}

fn child_text(el: &Element, name: &str, ns: &str) -> Option<String> {
    el.get_child(name, ns).map(Element::text)
}

impl Bookmark {
    /// From a XEP-0402 item: `id` and its `<conference xmlns='urn:xmpp:bookmarks:1'/>`.
    pub fn from_item(id: &str, conference: &Element) -> Option<Bookmark> {
        if !conference.is("conference", NS_BOOKMARKS2) || id.is_empty() {
            return None;
        }
        Some(Bookmark {
            jid: id.to_string(),
            name: conference.attr("name").map(str::to_string),
            autojoin: is_true(conference.attr("autojoin")),
            nick: child_text(conference, "nick", NS_BOOKMARKS2),
            password: child_text(conference, "password", NS_BOOKMARKS2),
            extensions: conference
                .get_child("extensions", NS_BOOKMARKS2)
                .map(|e| e.children().cloned().collect())
                .unwrap_or_default(),
        })
    }

    /// The XEP-0402 item payload (its id is `self.jid`).
    pub fn to_item(&self) -> Element {
        let mut c = Element::builder("conference", NS_BOOKMARKS2)
            .attr(
                ncname("autojoin"),
                if self.autojoin { "true" } else { "false" },
            )
            .build();
        set_attr(&mut c, "name", self.name.clone());
        let text = |name: &str, value: &str| {
            Element::builder(name, NS_BOOKMARKS2)
                .append(value.to_string())
                .build()
        };
        if let Some(nick) = &self.nick {
            c.append_child(text("nick", nick));
        }
        if let Some(password) = &self.password {
            c.append_child(text("password", password));
        }
        if !self.extensions.is_empty() {
            let mut ext = Element::bare("extensions", NS_BOOKMARKS2);
            for e in &self.extensions {
                ext.append_child(e.clone());
            }
            c.append_child(ext);
        }
        c
    }

    fn to_legacy(&self) -> Element {
        let mut c = Element::builder("conference", NS_LEGACY)
            .attr(ncname("jid"), self.jid.as_str())
            .attr(
                ncname("autojoin"),
                if self.autojoin { "true" } else { "false" },
            )
            .build();
        set_attr(&mut c, "name", self.name.clone());
        for (name, value) in [("nick", &self.nick), ("password", &self.password)] {
            if let Some(v) = value {
                c.append_child(Element::builder(name, NS_LEGACY).append(v.clone()).build());
            }
        }
        c
    }
}

/// The XEP-0048 document for `bookmarks`.
pub fn to_storage(bookmarks: &[Bookmark]) -> Element {
    let mut storage = Element::bare("storage", NS_LEGACY);
    for b in bookmarks {
        storage.append_child(b.to_legacy());
    }
    storage
}

/// The rooms of a XEP-0048 document (URL bookmarks have no XEP-0402 equivalent and are not
/// carried over). Extensions of rooms already bookmarked in `existing` are kept, since the
/// legacy shape cannot carry them.
pub fn from_storage(storage: &Element, existing: &[Bookmark]) -> Vec<Bookmark> {
    storage
        .children()
        .filter(|c| c.is("conference", NS_LEGACY))
        .filter_map(|c| {
            let jid = c.attr("jid")?.to_string();
            let extensions = existing
                .iter()
                .find(|b| b.jid == jid)
                .map(|b| b.extensions.clone())
                .unwrap_or_default();
            Some(Bookmark {
                name: c.attr("name").map(str::to_string),
                autojoin: is_true(c.attr("autojoin")),
                nick: child_text(c, "nick", NS_LEGACY),
                password: child_text(c, "password", NS_LEGACY),
                extensions,
                jid,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_and_legacy_document_round_trip() {
        let item: Element = "<conference xmlns='urn:xmpp:bookmarks:1' name='Council' autojoin='true'><nick>JC</nick><extensions><state xmlns='http://myclient.example/bookmark/state' minimized='true'/></extensions></conference>".parse().unwrap();
        let b = Bookmark::from_item("council@conference.example", &item).unwrap();
        assert!(b.autojoin);
        assert_eq!(b.nick.as_deref(), Some("JC"));
        let storage = to_storage(std::slice::from_ref(&b));
        let c = storage.get_child("conference", NS_LEGACY).unwrap();
        assert_eq!(c.attr("jid"), Some("council@conference.example"));
        assert_eq!(c.attr("name"), Some("Council"));
        // Back from the legacy shape: the extensions survive because the room was known.
        let back = from_storage(&storage, std::slice::from_ref(&b));
        assert_eq!(back, vec![b.clone()]);
        assert_eq!(Bookmark::from_item(&b.jid, &back[0].to_item()), Some(b));
    }

    #[test]
    fn legacy_document_without_jid_or_with_urls() {
        let storage: Element = "<storage xmlns='storage:bookmarks'><url name='x' url='https://x'/><conference name='no jid'/><conference jid='a@muc.example' autojoin='1'/></storage>".parse().unwrap();
        let rooms = from_storage(&storage, &[]);
        assert_eq!(rooms.len(), 1);
        assert_eq!(rooms[0].jid, "a@muc.example");
        assert!(rooms[0].autojoin);
    }
}
