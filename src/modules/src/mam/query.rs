//! Archive queries (XEP-0313 §4), their form, the archive's metadata (#extended), and
//! archiving preferences (§6). Results are written to the querying session as bytes spliced
//! around the stored message, which is never parsed again.

use std::sync::Arc;

use bytes::Bytes;
use hearth_core::module::{IqTarget, IqType, Registrar};
use hearth_core::router::{Context, IqResult};
use hearth_core::session::Urgency;
use hearth_core::stanza::{Condition, Stanza, StanzaError, ncname};
use hearth_store::{ArchivePrefs, ArchiveQuery, ArchiveQueryError, Archived};
use minidom::Element;

use super::{Mam, Mode, NS_MAM};
use hearth_core::datetime;

const NS_DATA: &str = "jabber:x:data";
const NS_RSM: &str = "http://jabber.org/protocol/rsm";
const NS_FORWARD: &str = "urn:xmpp:forward:0";
const FULLTEXT_FIELD: &str = "{urn:xmpp:fulltext:0}fulltext";

pub(super) fn register(mam: &Arc<Mam>, reg: &mut Registrar) {
    reg.iq_with(
        IqType::Set,
        IqTarget::Account,
        NS_MAM,
        "query",
        mam,
        |m, cx, st| async move { m.query(cx, st).await },
    );
    reg.iq(
        IqType::Get,
        IqTarget::Account,
        NS_MAM,
        "query",
        |_, st| async move {
            own(&st)?;
            Ok(Some(form()))
        },
    );
    reg.iq(
        IqType::Get,
        IqTarget::Account,
        NS_MAM,
        "metadata",
        |cx, st| async move { metadata(cx, st).await },
    );
    for type_ in [IqType::Get, IqType::Set] {
        reg.iq_with(
            type_,
            IqTarget::Account,
            NS_MAM,
            "prefs",
            mam,
            |m, cx, st| async move { m.prefs(cx, st).await },
        );
    }
}

fn bad(text: impl Into<String>) -> StanzaError {
    StanzaError::new(Condition::BadRequest).with_text(text)
}

/// The archive is its owner's alone.
fn own(st: &Stanza) -> Result<&str, StanzaError> {
    let from = st.from().ok_or_else(|| bad("no sender"))?;
    if st.to().is_some_and(|to| to.to_bare() != from.to_bare()) {
        return Err(StanzaError::new(Condition::Forbidden)
            .with_text("an archive can only be queried by its owner"));
    }
    from.node().ok_or_else(|| bad("no account"))
}

fn field(var: &str, type_: &str) -> Element {
    Element::builder("field", NS_DATA)
        .attr(ncname("var"), var)
        .attr(ncname("type"), type_)
        .build()
}

/// The query form (XEP-0313 §4.1.1), with the #extended and full-text fields.
/// The query form (XEP-0313 §4.1.1).
pub fn form() -> Element {
    let mut form_type = field("FORM_TYPE", "hidden");
    form_type.append_child(Element::builder("value", NS_DATA).append(NS_MAM).build());
    let x = Element::builder("x", NS_DATA)
        .attr(ncname("type"), "form")
        .append(form_type)
        .append(field("with", "jid-single"))
        .append(field("start", "text-single"))
        .append(field("end", "text-single"))
        .append(field("before-id", "text-single"))
        .append(field("after-id", "text-single"))
        .append(field("ids", "list-multi"))
        .append(field(FULLTEXT_FIELD, "text-single"))
        .build();
    Element::builder("query", NS_MAM).append(x).build()
}

/// Words of a search, each quoted for FTS5, so that no operator or syntax error can come
/// from user text; all must occur.
pub fn fulltext_query(text: &str) -> Option<String> {
    let terms: Vec<String> = text
        .split_whitespace()
        .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" "))
}

/// What the client asked for: filters from the form, page from RSM.
fn parse_query(
    payload: &Element,
    default_max: usize,
    max_max: usize,
) -> Result<(ArchiveQuery, bool), StanzaError> {
    let mut q = ArchiveQuery {
        max: default_max,
        ..Default::default()
    };
    if let Some(x) = payload.get_child("x", NS_DATA) {
        for f in x.children().filter(|c| c.is("field", NS_DATA)) {
            let values: Vec<String> = f
                .children()
                .filter(|v| v.is("value", NS_DATA))
                .map(Element::text)
                .collect();
            let value = values.first().cloned().unwrap_or_default();
            match f.attr("var").unwrap_or_default() {
                "FORM_TYPE" => {
                    if value != NS_MAM {
                        return Err(bad(format!("FORM_TYPE must be {NS_MAM}")));
                    }
                }
                "with" => {
                    let with = hearth_core::jid::Jid::parse(&value).map_err(|_| {
                        StanzaError::new(Condition::JidMalformed).with_text("'with' is not a JID")
                    })?;
                    q.with_bare = Some(with.to_bare().to_string());
                    q.with_resource = with.resource().map(str::to_string);
                }
                "start" => {
                    q.start = Some(
                        datetime::parse_millis(&value)
                            .ok_or_else(|| bad("'start' is not an XEP-0082 date-time"))?,
                    )
                }
                "end" => {
                    q.end = Some(
                        datetime::parse_millis(&value)
                            .ok_or_else(|| bad("'end' is not an XEP-0082 date-time"))?,
                    )
                }
                "after-id" => q.after = Some(value),
                "before-id" => q.before = Some(value),
                "ids" => q.ids = Some(values),
                FULLTEXT_FIELD => {
                    q.fulltext =
                        Some(fulltext_query(&value).ok_or_else(|| bad("the search has no words"))?)
                }
                other => {
                    return Err(bad(format!("the field '{other}' is not supported")));
                }
            }
        }
    }
    if let Some(set) = payload.get_child("set", NS_RSM) {
        if set.has_child("index", NS_RSM) {
            return Err(StanzaError::new(Condition::FeatureNotImplemented)
                .with_text("paging by index is not supported; use before and after"));
        }
        if let Some(max) = set.get_child("max", NS_RSM) {
            q.max = max
                .text()
                .trim()
                .parse::<usize>()
                .map_err(|_| bad("RSM max must be a number"))?
                .min(max_max);
        }
        if let Some(after) = set.get_child("after", NS_RSM) {
            q.after = Some(after.text());
        }
        if let Some(before) = set.get_child("before", NS_RSM) {
            let id = before.text();
            if id.is_empty() {
                q.from_end = true;
            } else {
                q.before = Some(id);
            }
        }
    }
    if q.ids.as_ref().is_some_and(|ids| ids.len() > max_max) {
        return Err(StanzaError::new(Condition::PolicyViolation)
            .with_text(format!("at most {max_max} ids per query")));
    }
    Ok((q, payload.has_child("flip-page", NS_MAM)))
}

/// One result, as bytes: the stored message spliced into its `<result/>` wrapper.
fn result_bytes(to: &str, from: &str, queryid: Option<&str>, m: &Archived) -> Bytes {
    let mut out = Vec::with_capacity(m.stanza_xml.len() + 256);
    let attr = |out: &mut Vec<u8>, name: &str, value: &str| {
        out.extend_from_slice(format!(" {name}='").as_bytes());
        hearth_xml::escape_attr(value, out);
        out.push(b'\'');
    };
    out.extend_from_slice(b"<message");
    attr(&mut out, "to", to);
    attr(&mut out, "from", from);
    out.extend_from_slice(format!("><result xmlns='{NS_MAM}'").as_bytes());
    if let Some(q) = queryid {
        attr(&mut out, "queryid", q);
    }
    attr(&mut out, "id", &m.stanza_id);
    out.extend_from_slice(
        format!(
            "><forwarded xmlns='{NS_FORWARD}'><delay xmlns='urn:xmpp:delay' stamp='{}'/>",
            datetime::format_millis(m.stamp)
        )
        .as_bytes(),
    );
    out.extend_from_slice(m.stanza_xml.as_bytes());
    out.extend_from_slice(b"</forwarded></result></message>");
    Bytes::from(out)
}

fn text(name: &str, ns: &str, value: &str) -> Element {
    Element::builder(name, ns).append(value.to_string()).build()
}

/// Answers an archive query on the archive stored under `key` (an account's username, or a
/// room's JID), whose JID is `archive`: the results go to the querying session, and the
/// `<fin/>` is returned for the IQ result. Shared with the MUC archive.
pub async fn answer(
    cx: &Context,
    key: &str,
    archive: &str,
    payload: &Element,
    page_sizes: (usize, usize),
) -> IqResult {
    let Some(session) = cx.session() else {
        return Err(bad("archive queries come from a client"));
    };
    let (q, flip) = parse_query(payload, page_sizes.0, page_sizes.1)?;
    let page = cx
        .store()
        .archive_query(key, q)
        .await
        .map_err(|e| match e {
            ArchiveQueryError::UnknownId(id) => StanzaError::new(Condition::ItemNotFound)
                .with_text(format!("no archived message has the id {id}")),
            ArchiveQueryError::BadFulltext => bad("the search cannot be understood"),
            ArchiveQueryError::Store(e) => {
                tracing::error!(error = %e, archive, "archive query failed");
                StanzaError::new(Condition::InternalServerError)
            }
        })?;
    let mut messages = page.messages;
    if flip {
        messages.reverse();
    }
    let to = session.jid.to_string();
    let queryid = payload.attr("queryid");
    for m in &messages {
        session.send(result_bytes(&to, archive, queryid, m), Urgency::Urgent);
    }
    let mut set = Element::bare("set", NS_RSM);
    if let (Some(first), Some(last)) = (messages.first(), messages.last()) {
        set.append_child(text("first", NS_RSM, &first.stanza_id));
        set.append_child(text("last", NS_RSM, &last.stanza_id));
    }
    let mut fin = Element::builder("fin", NS_MAM).append(set).build();
    if page.complete {
        hearth_core::stanza::set_attr(&mut fin, "complete", Some("true".into()));
    }
    Ok(Some(fin))
}

impl Mam {
    async fn query(&self, cx: Context, st: Stanza) -> IqResult {
        let user = own(&st)?.to_string();
        let (Some(session), Some(payload)) = (cx.session(), st.iq_payload()) else {
            return Err(bad("archive queries come from a client"));
        };
        let archive = session.jid.to_bare().to_string();
        let sizes = (self.cfg.default_page_size, self.cfg.max_page_size);
        answer(&cx, &user, &archive, payload, sizes).await
    }

    async fn prefs(&self, cx: Context, st: Stanza) -> IqResult {
        let user = own(&st)?.to_string();
        let payload = st.iq_payload().ok_or_else(|| bad("no preferences"))?;
        if st.type_attr() == Some("set") {
            let default = payload
                .attr("default")
                .and_then(Mode::parse)
                .ok_or_else(|| bad("'default' must be always, never or roster"))?;
            let jids = |name: &str| -> Vec<String> {
                payload
                    .get_child(name, NS_MAM)
                    .map(|l| {
                        l.children()
                            .filter(|c| c.is("jid", NS_MAM))
                            .filter_map(|c| hearth_core::jid::Jid::parse(&c.text()).ok())
                            .map(|j| j.to_bare().to_string())
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let prefs = ArchivePrefs {
                default_mode: default.as_str().to_string(),
                always: jids("always"),
                never: jids("never"),
            };
            cx.store()
                .archive_set_prefs(&user, prefs)
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "cannot store archiving preferences");
                    StanzaError::new(Condition::InternalServerError)
                })?;
            self.prefs.lock().expect("prefs lock").remove(&user);
        }
        let prefs = self.prefs_of(&cx.server, &user).await;
        let (default, always, never) = match prefs.as_deref() {
            Some(p) => (p.default_mode.clone(), p.always.clone(), p.never.clone()),
            None => (
                self.cfg.default.as_str().to_string(),
                Vec::new(),
                Vec::new(),
            ),
        };
        let list = |name: &str, jids: &[String]| {
            let mut l = Element::bare(name, NS_MAM);
            for j in jids {
                l.append_child(text("jid", NS_MAM, j));
            }
            l
        };
        Ok(Some(
            Element::builder("prefs", NS_MAM)
                .attr(ncname("default"), default)
                .append(list("always", &always))
                .append(list("never", &never))
                .build(),
        ))
    }
}

/// The first and last archived messages (XEP-0313 §5.1.2, #extended).
async fn metadata(cx: Context, st: Stanza) -> IqResult {
    let user = own(&st)?.to_string();
    let bounds = cx.store().archive_bounds(&user).await.map_err(|e| {
        tracing::error!(error = %e, "archive metadata failed");
        StanzaError::new(Condition::InternalServerError)
    })?;
    let mut md = Element::bare("metadata", NS_MAM);
    if let Some((first, last)) = bounds {
        for (name, m) in [("start", first), ("end", last)] {
            md.append_child(
                Element::builder(name, NS_MAM)
                    .attr(ncname("id"), m.stanza_id)
                    .attr(ncname("timestamp"), datetime::format_millis(m.stamp))
                    .build(),
            );
        }
    }
    Ok(Some(md))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_text_is_quoted() {
        assert_eq!(
            fulltext_query("brown fox").as_deref(),
            Some("\"brown\" \"fox\"")
        );
        assert_eq!(
            fulltext_query("a\"b OR").as_deref(),
            Some("\"a\"\"b\" \"OR\"")
        );
        assert_eq!(fulltext_query("   "), None);
    }

    #[test]
    fn queries_are_read() {
        let payload: Element = "<query xmlns='urn:xmpp:mam:2' queryid='q'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:xmpp:mam:2</value></field><field var='with'><value>b@x/r</value></field><field var='start'><value>2002-09-10T23:08:25Z</value></field></x><set xmlns='http://jabber.org/protocol/rsm'><max>500</max><before/></set><flip-page/></query>".parse().unwrap();
        let (q, flip) = parse_query(&payload, 50, 250).unwrap();
        assert!(flip && q.from_end);
        assert_eq!(q.max, 250, "capped");
        assert_eq!(q.with_bare.as_deref(), Some("b@x"));
        assert_eq!(q.with_resource.as_deref(), Some("r"));
        assert_eq!(q.start, Some(1_031_699_305_000));
        let bad_field: Element = "<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='submit'><field var='nope'><value>1</value></field></x></query>".parse().unwrap();
        assert!(parse_query(&bad_field, 50, 250).is_err());
    }

    #[test]
    fn results_splice_the_stored_message() {
        let m = Archived {
            stanza_id: "abc".into(),
            stamp: 0,
            stanza_xml: "<message xmlns='jabber:client'><body>x</body></message>".into(),
        };
        let bytes = result_bytes("a@x/r", "a@x", Some("q'1"), &m);
        let el: Element = std::str::from_utf8(&bytes)
            .unwrap()
            .replacen("<message", "<message xmlns='jabber:client'", 1)
            .parse()
            .unwrap();
        let result = el.get_child("result", NS_MAM).unwrap();
        assert_eq!(result.attr("queryid"), Some("q'1"));
        assert!(
            result
                .get_child("forwarded", NS_FORWARD)
                .unwrap()
                .get_child("message", "jabber:client")
                .is_some()
        );
    }
}
