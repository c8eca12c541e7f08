//! An account's data as XEP-0227 (Portable Import/Export Format, `urn:xmpp:pie:0`, version 1.1):
//! roster, incoming subscription requests, vCard, private XML, PEP nodes and items, offline
//! messages and the message archive, in the spec's elements; what XEP-0227 has no place for —
//! the blocklist, archiving preferences, uploaded files, room affiliations and registered
//! nicknames, push registrations, the account's state — in a `<hearth xmlns='urn:hearth:export:0'>`
//! element, which importers that do not know it ignore (XEP-0227 §3). Passwords, SCRAM keys and
//! FAST tokens are never exported.

use hearth_core::datetime;
use hearth_core::stanza::ncname;
use hearth_store::AccountData;
use minidom::Element;

use crate::pep::config::NodeConfig;

pub const NS_PIE: &str = "urn:xmpp:pie:0";
pub const NS_PIE_MAM: &str = "urn:xmpp:pie:0#mam";
pub const NS_HEARTH: &str = "urn:hearth:export:0";
const NS_ROSTER: &str = "jabber:iq:roster";
const NS_PRIVATE: &str = "jabber:iq:private";
const NS_PUBSUB: &str = "http://jabber.org/protocol/pubsub";
const NS_PUBSUB_OWNER: &str = "http://jabber.org/protocol/pubsub#owner";
const NS_MAM: &str = "urn:xmpp:mam:2";
const NS_FORWARD: &str = "urn:xmpp:forward:0";
const NS_DELAY: &str = "urn:xmpp:delay";

/// Read before the document: who made it, and what it leaves out on purpose.
const PREAMBLE: &str = "<!-- hearth account export (XEP-0227 v1.1, urn:xmpp:pie:0, with hearth's own data under urn:hearth:export:0). Passwords, SCRAM keys and FAST tokens are not included. -->\n";

/// The XML document for `username` of `domain`; `upload_url` makes a file's download URL from
/// its slot id and name.
pub fn document(
    domain: &str,
    username: &str,
    data: &AccountData,
    upload_url: impl Fn(&str, &str) -> String,
) -> String {
    let user = Element::builder("user", NS_PIE)
        .attr(ncname("name"), username)
        .append_all(user_children(data, upload_url))
        .build();
    let root = Element::builder("server-data", NS_PIE)
        .append(
            Element::builder("host", NS_PIE)
                .attr(ncname("jid"), domain)
                .append(user)
                .build(),
        )
        .build();
    let mut out = Vec::from("<?xml version='1.0' encoding='UTF-8'?>\n");
    out.extend_from_slice(PREAMBLE.as_bytes());
    hearth_xml::write_element(&root, "", &mut out);
    out.push(b'\n');
    String::from_utf8(out).expect("serialised from strings")
}

fn user_children(data: &AccountData, upload_url: impl Fn(&str, &str) -> String) -> Vec<Element> {
    let mut children = vec![roster(data)];
    children.extend(data.pending_in.iter().filter_map(|xml| stored(xml)));
    children.extend(data.vcard.as_deref().and_then(stored));
    if !data.private.is_empty() {
        let xml: String = data.private.iter().map(|(_, xml)| xml.as_str()).collect();
        children.extend(stored(&format!(
            "<query xmlns='{NS_PRIVATE}'>{xml}</query>"
        )));
    }
    if !data.pep.is_empty() {
        children.extend(pep(data));
    }
    if !data.offline.is_empty() {
        children.push(
            Element::builder("offline-messages", NS_PIE)
                .append_all(data.offline.iter().filter_map(|m| stored(&m.stanza_xml)))
                .build(),
        );
    }
    if !data.archive.is_empty() {
        children.push(archive(data));
    }
    children.push(hearth_extension(data, upload_url));
    children
}

/// Stored XML (self-contained: its root declares its namespace) as an element; `None`, and a
/// warning, for the rare row that does not parse, rather than no export at all.
fn stored(xml: &str) -> Option<Element> {
    match xml.parse::<Element>() {
        Ok(el) => Some(el),
        Err(e) => {
            tracing::warn!(error = %e, "export: a stored element does not parse; left out");
            None
        }
    }
}

fn text(name: &str, ns: &str, value: &str) -> Element {
    Element::builder(name, ns).append(value).build()
}

fn roster(data: &AccountData) -> Element {
    let items = data.roster.iter().map(|i| {
        let mut item = Element::builder("item", NS_ROSTER)
            .attr(ncname("jid"), i.contact.as_str())
            .attr(ncname("subscription"), i.subscription.as_str())
            .attr(ncname("name"), i.name.as_deref())
            .attr(ncname("ask"), i.ask.then_some("subscribe"))
            .attr(ncname("approved"), i.approved.then_some("true"));
        for g in &i.groups {
            item = item.append(text("group", NS_ROSTER, g));
        }
        item.build()
    });
    Element::builder("query", NS_ROSTER)
        .append_all(items)
        .build()
}

/// The two `<pubsub/>` elements of XEP-0227 §3.9: node configurations, then items.
fn pep(data: &AccountData) -> [Element; 2] {
    let configs = data.pep.iter().map(|n| {
        Element::builder("configure", NS_PUBSUB_OWNER)
            .attr(ncname("node"), n.node.as_str())
            .append(NodeConfig::from_lines(&n.config).to_form(usize::MAX))
            .build()
    });
    let items = data.pep.iter().map(|n| {
        let items = n.items.iter().map(|item| {
            Element::builder("item", NS_PUBSUB)
                .attr(ncname("id"), item.id.as_str())
                .append_all(stored(&item.payload))
                .build()
        });
        Element::builder("items", NS_PUBSUB)
            .attr(ncname("node"), n.node.as_str())
            .append_all(items)
            .build()
    });
    [
        Element::builder("pubsub", NS_PUBSUB_OWNER)
            .append_all(configs)
            .build(),
        Element::builder("pubsub", NS_PUBSUB)
            .append_all(items)
            .build(),
    ]
}

/// XEP-0227 §3.10: the archive as MAM results, oldest first.
fn archive(data: &AccountData) -> Element {
    let results = data.archive.iter().map(|m| {
        let delay = Element::builder("delay", NS_DELAY)
            .attr(ncname("stamp"), datetime::format_millis(m.stamp))
            .build();
        Element::builder("result", NS_MAM)
            .attr(ncname("id"), m.stanza_id.as_str())
            .append(
                Element::builder("forwarded", NS_FORWARD)
                    .append(delay)
                    .append_all(stored(&m.stanza_xml))
                    .build(),
            )
            .build()
    });
    Element::builder("archive", NS_PIE_MAM)
        .append_all(results)
        .build()
}

/// What the account holds that XEP-0227 has no element for.
fn hearth_extension(data: &AccountData, upload_url: impl Fn(&str, &str) -> String) -> Element {
    let mut account = Element::builder("account", NS_HEARTH)
        .attr(ncname("created"), datetime::format(data.created))
        .attr(ncname("disabled"), data.disabled.to_string());
    if let Some(at) = data.delete_at {
        account = account.attr(ncname("delete-at"), datetime::format(at));
    }
    let blocklist =
        Element::builder("blocklist", NS_HEARTH).append_all(data.blocklist.iter().map(|jid| {
            Element::builder("item", NS_HEARTH)
                .attr(ncname("jid"), jid.as_str())
                .build()
        }));
    let prefs = data.archive_prefs.as_ref().map(|p| {
        let list = |name: &str, jids: &[String]| {
            Element::builder(name, NS_HEARTH)
                .append_all(jids.iter().map(|j| text("jid", NS_HEARTH, j)))
                .build()
        };
        Element::builder("archive-prefs", NS_HEARTH)
            .attr(ncname("default"), p.default_mode.as_str())
            .append(list("always", &p.always))
            .append(list("never", &p.never))
            .build()
    });
    // Slots whose file never came are not the user's data yet.
    let files = data.uploads.iter().filter_map(|u| {
        let completed = u.completed?;
        Some(
            Element::builder("file", NS_HEARTH)
                .attr(ncname("url"), upload_url(&u.id, &u.filename))
                .attr(ncname("name"), u.filename.as_str())
                .attr(ncname("size"), u.size.to_string())
                .attr(ncname("type"), u.content_type.as_deref())
                .attr(ncname("date"), datetime::format(completed))
                .build(),
        )
    });
    let rooms = data.muc.iter().map(|m| {
        let a = &m.affiliation;
        Element::builder("room", NS_HEARTH)
            .attr(ncname("jid"), m.room.as_str())
            .attr(ncname("affiliation"), a.affiliation.as_str())
            .attr(ncname("nick"), a.nick.as_deref())
            .attr(ncname("reason"), a.reason.as_deref())
            .build()
    });
    let push = data.push.iter().map(|p| {
        Element::builder("registration", NS_HEARTH)
            .attr(ncname("service"), p.service.as_str())
            .attr(ncname("node"), p.node.as_str())
            .attr(ncname("device"), p.resource.as_str())
            .build()
    });
    Element::builder("hearth", NS_HEARTH)
        .append(account.build())
        .append(blocklist.build())
        .append_all(prefs)
        .append(
            Element::builder("uploads", NS_HEARTH)
                .append_all(files)
                .build(),
        )
        .append(
            Element::builder("rooms", NS_HEARTH)
                .append_all(rooms)
                .build(),
        )
        .append(Element::builder("push", NS_HEARTH).append_all(push).build())
        .build()
}
