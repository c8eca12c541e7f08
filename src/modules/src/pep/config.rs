//! Node configuration (XEP-0060 §16.4 `pubsub#node_config`), as PEP uses it: who may read a
//! node, how many items it keeps, and publish-options preconditions (XEP-0223).

use hearth_core::stanza::{Condition, StanzaError, ncname};
use minidom::Element;

pub const NS_DATA: &str = "jabber:x:data";
pub const NODE_CONFIG: &str = "http://jabber.org/protocol/pubsub#node_config";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Open,
    Presence,
    Roster,
    Whitelist,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Open => "open",
            Access::Presence => "presence",
            Access::Roster => "roster",
            Access::Whitelist => "whitelist",
        }
    }

    fn parse(s: &str) -> Option<Access> {
        Some(match s {
            "open" => Access::Open,
            "presence" => Access::Presence,
            "roster" => Access::Roster,
            "whitelist" => Access::Whitelist,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    pub access_model: Access,
    /// Items kept; `limit` when the client asked for "max".
    pub max_items: usize,
    pub persist_items: bool,
    pub notify_retract: bool,
    pub notify_delete: bool,
    pub deliver_payloads: bool,
    pub send_last_published_item: String,
    pub title: String,
}

impl NodeConfig {
    /// PEP defaults (XEP-0163 §4.3): presence access, the latest item kept.
    pub fn pep_default() -> Self {
        Self {
            access_model: Access::Presence,
            max_items: 1,
            persist_items: true,
            notify_retract: true,
            notify_delete: true,
            deliver_payloads: true,
            send_last_published_item: "on_sub_and_presence".into(),
            title: String::new(),
        }
    }

    pub fn to_lines(&self) -> String {
        format!(
            "access_model={}\nmax_items={}\npersist_items={}\nnotify_retract={}\nnotify_delete={}\ndeliver_payloads={}\nsend_last_published_item={}\ntitle={}",
            self.access_model.as_str(),
            self.max_items,
            self.persist_items,
            self.notify_retract,
            self.notify_delete,
            self.deliver_payloads,
            self.send_last_published_item,
            self.title.replace('\n', " ")
        )
    }

    pub fn from_lines(s: &str) -> Self {
        let mut c = Self::pep_default();
        for line in s.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            match k {
                "access_model" => c.access_model = Access::parse(v).unwrap_or(c.access_model),
                "max_items" => c.max_items = v.parse().unwrap_or(c.max_items),
                "persist_items" => c.persist_items = v == "true",
                "notify_retract" => c.notify_retract = v == "true",
                "notify_delete" => c.notify_delete = v == "true",
                "deliver_payloads" => c.deliver_payloads = v == "true",
                "send_last_published_item" => c.send_last_published_item = v.to_string(),
                "title" => c.title = v.to_string(),
                _ => {}
            }
        }
        c
    }

    /// Applies a submitted form (configure, or publish-options on a new node). Fields this
    /// server does not implement are refused, so a client never believes in a setting that
    /// has no effect.
    pub fn apply(&mut self, form: &Element, limit: usize) -> Result<(), StanzaError> {
        for (var, value) in fields(form) {
            let bad = || {
                StanzaError::new(Condition::NotAcceptable)
                    .with_text(format!("unsupported value for {var}"))
            };
            match var.as_str() {
                "FORM_TYPE" => {}
                "pubsub#access_model" => {
                    self.access_model = Access::parse(&value).ok_or_else(bad)?
                }
                "pubsub#max_items" => self.max_items = max_items(&value, limit).ok_or_else(bad)?,
                "pubsub#persist_items" => self.persist_items = boolean(&value).ok_or_else(bad)?,
                "pubsub#notify_retract" => self.notify_retract = boolean(&value).ok_or_else(bad)?,
                "pubsub#notify_delete" => self.notify_delete = boolean(&value).ok_or_else(bad)?,
                "pubsub#deliver_payloads" => {
                    self.deliver_payloads = boolean(&value).ok_or_else(bad)?
                }
                "pubsub#send_last_published_item" => {
                    if !matches!(value.as_str(), "never" | "on_sub" | "on_sub_and_presence") {
                        return Err(bad());
                    }
                    self.send_last_published_item = value;
                }
                "pubsub#title" => self.title = value,
                // Set by PEP itself; accepted when they say what PEP does anyway.
                "pubsub#publish_model" if value == "publishers" => {}
                "pubsub#notification_type" if value == "headline" => {}
                _ => {
                    return Err(StanzaError::new(Condition::NotAcceptable)
                        .with_text(format!("the option {var} is not supported")));
                }
            }
        }
        Ok(())
    }

    /// Whether the node's configuration meets publish-options preconditions (XEP-0060
    /// §7.1.5): every option given must equal the node's setting.
    pub fn satisfies(&self, options: &Element, limit: usize) -> bool {
        let mut wanted = self.clone();
        wanted.apply(options, limit).is_ok() && wanted == *self
    }

    /// The configuration form (type `form` to edit, `result` to show).
    pub fn to_form(&self, limit: usize) -> Element {
        let max = if self.max_items >= limit {
            "max".to_string()
        } else {
            self.max_items.to_string()
        };
        let access = {
            let mut f = field(
                "pubsub#access_model",
                "list-single",
                &[self.access_model.as_str()],
            );
            for a in ["open", "presence", "roster", "whitelist"] {
                f.append_child(
                    Element::builder("option", NS_DATA)
                        .append(Element::builder("value", NS_DATA).append(a).build())
                        .build(),
                );
            }
            f
        };
        let b = |v: bool| if v { "1" } else { "0" };
        Element::builder("x", NS_DATA)
            .attr(ncname("type"), "form")
            .append(field("FORM_TYPE", "hidden", &[NODE_CONFIG]))
            .append(access)
            .append(field("pubsub#max_items", "text-single", &[&max]))
            .append(field(
                "pubsub#persist_items",
                "boolean",
                &[b(self.persist_items)],
            ))
            .append(field(
                "pubsub#notify_retract",
                "boolean",
                &[b(self.notify_retract)],
            ))
            .append(field(
                "pubsub#notify_delete",
                "boolean",
                &[b(self.notify_delete)],
            ))
            .append(field(
                "pubsub#deliver_payloads",
                "boolean",
                &[b(self.deliver_payloads)],
            ))
            .append(field(
                "pubsub#send_last_published_item",
                "list-single",
                &[&self.send_last_published_item],
            ))
            .append(field("pubsub#title", "text-single", &[&self.title]))
            .build()
    }
}

fn field(var: &str, type_: &str, values: &[&str]) -> Element {
    let mut f = Element::builder("field", NS_DATA)
        .attr(ncname("var"), var)
        .attr(ncname("type"), type_)
        .build();
    for v in values {
        f.append_child(
            Element::builder("value", NS_DATA)
                .append(v.to_string())
                .build(),
        );
    }
    f
}

/// (var, first value) of each field of a form.
fn fields(form: &Element) -> Vec<(String, String)> {
    form.children()
        .filter(|f| f.is("field", NS_DATA))
        .filter_map(|f| {
            let var = f.attr("var")?.to_string();
            let value = f
                .get_child("value", NS_DATA)
                .map(Element::text)
                .unwrap_or_default();
            Some((var, value))
        })
        .collect()
}

fn boolean(v: &str) -> Option<bool> {
    match v {
        "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

/// `max` (XEP-0060 `pubsub#config-node-max`) is the server's limit.
fn max_items(v: &str, limit: usize) -> Option<usize> {
    if v == "max" {
        return Some(limit);
    }
    v.parse::<usize>()
        .ok()
        .filter(|n| *n >= 1)
        .map(|n| n.min(limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLISH_OPTIONS: &str = "http://jabber.org/protocol/pubsub#publish-options";

    fn form(fields: &str) -> Element {
        format!("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>{PUBLISH_OPTIONS}</value></field>{fields}</x>").parse().unwrap()
    }

    #[test]
    fn options_and_preconditions() {
        let mut c = NodeConfig::pep_default();
        let open = form(
            "<field var='pubsub#access_model'><value>open</value></field><field var='pubsub#max_items'><value>max</value></field>",
        );
        c.apply(&open, 1000).unwrap();
        assert_eq!((c.access_model, c.max_items), (Access::Open, 1000));
        assert!(c.satisfies(&open, 1000));
        let whitelist = form("<field var='pubsub#access_model'><value>whitelist</value></field>");
        assert!(!c.satisfies(&whitelist, 1000));
        assert!(
            c.apply(
                &form("<field var='pubsub#colour'><value>x</value></field>"),
                1000
            )
            .is_err()
        );
        assert_eq!(NodeConfig::from_lines(&c.to_lines()), c);
        let shown = c.to_form(1000);
        assert!(
            shown
                .children()
                .any(|f| f.attr("var") == Some("pubsub#max_items")
                    && f.get_child("value", NS_DATA).map(Element::text).as_deref() == Some("max"))
        );
    }
}
