//! XEP-0030: Service Discovery for the server and for accounts. Features, identities and items
//! come from what the loaded modules registered; this module only answers.

use std::sync::Arc;

use hearth_core::jid::Jid;
use hearth_core::module::{DiscoScope, IqTarget, IqType, Module, Registrar, Spec, SupportStatus};
use hearth_core::ns::{DISCO_INFO, DISCO_ITEMS};
use hearth_core::router::{Context, IqResult};
use hearth_core::stanza::{Condition, Stanza, StanzaError, ncname, set_attr};
use hearth_store::Subscription;
use minidom::Element;
use serde::Deserialize;

pub struct Disco;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {}

impl Module for Disco {
    const NAME: &'static str = "disco";
    const SPECS: &'static [Spec] = &[Spec {
        id: "XEP-0030",
        version: "2.5.0",
        status: SupportStatus::Complete,
        note: "server and account JIDs; the server's caps node",
    }];
    type Config = Config;

    fn init(_: Config, reg: &mut Registrar) -> anyhow::Result<Arc<Self>> {
        for scope in [DiscoScope::Host, DiscoScope::Account] {
            reg.feature(scope, DISCO_INFO);
            reg.feature(scope, DISCO_ITEMS);
        }
        reg.identity(DiscoScope::Host, "server", "im", Some("hearth"));
        reg.identity(DiscoScope::Account, "account", "registered", None);
        reg.iq(
            IqType::Get,
            IqTarget::Host,
            DISCO_INFO,
            "query",
            |cx, iq| async move { host_info(&cx, &iq) },
        );
        reg.iq(
            IqType::Get,
            IqTarget::Host,
            DISCO_ITEMS,
            "query",
            |cx, iq| async move { host_items(&cx, &iq) },
        );
        reg.iq(
            IqType::Get,
            IqTarget::Account,
            DISCO_INFO,
            "query",
            |cx, iq| async move { account_info(&cx, &iq).await },
        );
        reg.iq(
            IqType::Get,
            IqTarget::Account,
            DISCO_ITEMS,
            "query",
            |cx, iq| async move {
                account_visible(&cx, &iq).await?;
                Ok(Some(query(DISCO_ITEMS, None)))
            },
        );
        Ok(Arc::new(Disco))
    }
}

fn query(ns: &str, node: Option<&str>) -> Element {
    let mut q = Element::bare("query", ns);
    if let Some(n) = node {
        set_attr(&mut q, "node", Some(n.to_string()));
    }
    q
}

/// Accounts have no nodes: a query for one is `item-not-found` (XEP-0030 §3.1).
fn no_node(iq: &Stanza) -> Result<(), StanzaError> {
    match iq.iq_payload().and_then(|q| q.attr("node")) {
        Some(_) => Err(StanzaError::new(Condition::ItemNotFound)),
        None => Ok(()),
    }
}

/// A disco#info result from identities and features, sorted and de-duplicated, and extension
/// forms (XEP-0128).
pub fn info_result<'a>(
    identities: impl Iterator<Item = &'a hearth_core::module::Identity>,
    features: impl Iterator<Item = &'a str>,
    forms: impl Iterator<Item = &'a Element>,
) -> Element {
    let mut q = query(DISCO_INFO, None);
    for id in identities {
        let mut el = Element::builder("identity", DISCO_INFO)
            .attr(ncname("category"), id.category.as_str())
            .attr(ncname("type"), id.type_.as_str())
            .build();
        if let Some(name) = &id.name {
            set_attr(&mut el, "name", Some(name.clone()));
        }
        q.append_child(el);
    }
    let mut features: Vec<&str> = features.collect();
    features.sort_unstable();
    features.dedup();
    for f in features {
        q.append_child(
            Element::builder("feature", DISCO_INFO)
                .attr(ncname("var"), f)
                .build(),
        );
    }
    for form in forms {
        q.append_child(form.clone());
    }
    q
}

/// An extension form for disco#info (XEP-0128): a `result` form with the hidden `FORM_TYPE`
/// and `fields` as (var, values).
pub fn result_form<'a>(
    form_type: &str,
    fields: impl IntoIterator<Item = (&'a str, &'a [String])>,
) -> Element {
    const NS_DATA: &str = "jabber:x:data";
    let field = |var: &str, values: &[String]| {
        let mut f = Element::builder("field", NS_DATA)
            .attr(ncname("var"), var)
            .build();
        for v in values {
            f.append_child(
                Element::builder("value", NS_DATA)
                    .append(v.as_str())
                    .build(),
            );
        }
        f
    };
    let mut x = Element::builder("x", NS_DATA)
        .attr(ncname("type"), "result")
        .build();
    let mut form_type_field = field("FORM_TYPE", &[form_type.to_string()]);
    set_attr(&mut form_type_field, "type", Some("hidden".into()));
    x.append_child(form_type_field);
    for (var, values) in fields {
        x.append_child(field(var, values));
    }
    x
}

fn host_info(cx: &Context, iq: &Stanza) -> IqResult {
    let s = &cx.server;
    let mut info = info_result(
        s.identities(DiscoScope::Host),
        s.features(DiscoScope::Host),
        s.disco_forms(DiscoScope::Host),
    );
    let Some(node) = iq.iq_payload().and_then(|q| q.attr("node")) else {
        return Ok(Some(info));
    };
    // The node of the server's own entity caps (XEP-0115 §6.2) names this same information.
    if node == format!("{}#{}", crate::caps::SERVER_NODE, crate::caps::ver(&info)) {
        set_attr(&mut info, "node", Some(node.to_string()));
        return Ok(Some(info));
    }
    let requester = iq.from().ok_or(StanzaError::new(Condition::ItemNotFound))?;
    let node_info = s
        .disco_nodes()
        .iter()
        .find_map(|nodes| nodes.info(s, requester, node))
        .unwrap_or(Err(StanzaError::new(Condition::ItemNotFound)))?;
    let mut info = info_result(
        node_info.identities.iter(),
        node_info.features.iter().map(String::as_str),
        std::iter::empty(),
    );
    set_attr(&mut info, "node", Some(node.to_string()));
    Ok(Some(info))
}

fn host_items(cx: &Context, iq: &Stanza) -> IqResult {
    let s = &cx.server;
    let node = iq.iq_payload().and_then(|q| q.attr("node"));
    let items = match (node, iq.from()) {
        (None, _) => s.disco_items().to_vec(),
        (Some(node), Some(requester)) => s
            .disco_nodes()
            .iter()
            .find_map(|nodes| nodes.items(s, requester, node))
            .ok_or(StanzaError::new(Condition::ItemNotFound))?,
        (Some(_), None) => return Err(StanzaError::new(Condition::ItemNotFound)),
    };
    let mut q = query(DISCO_ITEMS, node);
    for item in items {
        let mut el = Element::builder("item", DISCO_ITEMS)
            .attr(ncname("jid"), item.jid)
            .build();
        set_attr(&mut el, "node", item.node);
        set_attr(&mut el, "name", item.name);
        q.append_child(el);
    }
    Ok(Some(q))
}

/// Account information is shown to the account itself and to contacts it shares presence with;
/// anyone else gets `service-unavailable`, which tells nothing about whether the account exists.
async fn account_visible(cx: &Context, iq: &Stanza) -> Result<(), StanzaError> {
    no_node(iq)?;
    let unavailable = || StanzaError::new(Condition::ServiceUnavailable);
    let (Some(from), to) = (iq.from(), iq.to()) else {
        return Err(unavailable());
    };
    let account: Jid = to.map(Jid::to_bare).unwrap_or_else(|| from.to_bare());
    if from.bare() == account.bare() {
        return Ok(());
    }
    let Some(user) = account.node() else {
        return Err(unavailable());
    };
    match cx.store().roster_item(user, &from.bare().to_string()).await {
        Ok(Some(item)) if matches!(item.subscription, Subscription::From | Subscription::Both) => {
            Ok(())
        }
        _ => Err(unavailable()),
    }
}

async fn account_info(cx: &Context, iq: &Stanza) -> IqResult {
    account_visible(cx, iq).await?;
    let s = &cx.server;
    Ok(Some(info_result(
        s.identities(DiscoScope::Account),
        s.features(DiscoScope::Account),
        s.disco_forms(DiscoScope::Account),
    )))
}
