//! Push Notifications (XEP-0357): a phone's app registers its app server; when a message
//! arrives for a user who is offline, or whose session for that device is hibernated (Stream
//! Management keeps it while the phone sleeps), hearth publishes a notification to the app
//! server, which wakes the app. Bodies leave the server only when the admin allows it.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hearth_core::jid::Jid;
use hearth_core::module::{DiscoScope, IqTarget, IqType, Module, Registrar, Spec, SupportStatus};
use hearth_core::router::{Context, Flow, OFFLINE_EVENT};
use hearth_core::session::Urgency;
use hearth_core::stanza::{Condition, Kind, Stanza, StanzaError, ncname};
use hearth_store::PushRegistration;
use minidom::Element;
use serde::Deserialize;

const NS_PUSH: &str = "urn:xmpp:push:0";
const NS_PUBSUB: &str = "http://jabber.org/protocol/pubsub";
const NS_DATA: &str = "jabber:x:data";
/// Ids of the notifications hearth sends, to recognise the app servers' answers.
const ID_PREFIX: &str = "push-";

/// A registration: (user, app server JID, node).
type Device = (String, String, String);

pub struct Push {
    cfg: Config,
    /// When each registration (user, service, node) was last notified, and for which sender.
    last: Mutex<HashMap<Device, (Instant, String)>>,
    /// Notifications awaiting the app server's answer: id → (user, service, node).
    pending: Mutex<HashMap<String, Device>>,
    next_id: AtomicU64,
}

/// Notifications awaiting an answer, at most.
const MAX_PENDING: usize = 10_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Put the message body into notifications (`last-message-body`). Off: app servers are
    /// third parties, and Conversations does not need it.
    pub include_body: bool,
    /// Seconds between two notifications to one device for the same sender; a new sender
    /// always notifies.
    pub min_interval_secs: u64,
    /// Most app servers one account may register.
    pub max_registrations_per_user: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            include_body: false,
            min_interval_secs: 5,
            max_registrations_per_user: 20,
        }
    }
}

impl Module for Push {
    const NAME: &'static str = "push";
    const SPECS: &'static [Spec] = &[Spec {
        id: "XEP-0357",
        version: "0.4.1",
        status: SupportStatus::Complete,
        note: "notifies for offline users and hibernated sessions (XEP-0198); summary form without body unless modules.push.include_body",
    }];
    type Config = Config;

    fn init(cfg: Config, reg: &mut Registrar) -> anyhow::Result<Arc<Self>> {
        anyhow::ensure!(
            cfg.max_registrations_per_user > 0,
            "max_registrations_per_user must be at least 1"
        );
        let this = Arc::new(Push {
            cfg,
            last: Mutex::default(),
            pending: Mutex::default(),
            next_id: AtomicU64::new(1),
        });
        reg.feature(DiscoScope::Account, NS_PUSH);
        for name in ["enable", "disable"] {
            reg.iq_with(
                IqType::Set,
                IqTarget::Account,
                NS_PUSH,
                name,
                &this,
                |m, cx, st| async move { m.configure(cx, st).await },
            );
        }
        reg.hook_with(OFFLINE_EVENT, 40, &this, |m, cx, st| async move {
            m.offline(&cx, &st);
            Flow::Continue(st)
        });
        for event in ["message/bare", "message/full"] {
            reg.hook_with(event, 40, &this, |m, cx, st| async move {
                m.hibernated(&cx, &st);
                Flow::Continue(st)
            });
        }
        reg.hook_with("iq/host", 10, &this, |m, cx, st| async move {
            m.answer(cx, st).await
        });
        Ok(this)
    }
}

/// Worth waking a phone for: what Client State Indication would send at once (a body, an
/// encrypted payload, a call).
fn important(st: &Stanza) -> bool {
    st.kind() == Kind::Message
        && matches!(st.stanza_type(), "chat" | "normal")
        && hearth_core::csi::urgency(st) == Urgency::Urgent
}

fn bad(text: &str) -> StanzaError {
    StanzaError::new(Condition::BadRequest).with_text(text)
}

impl Push {
    /// `<enable/>` and `<disable/>` from the user's own client.
    async fn configure(&self, cx: Context, st: Stanza) -> hearth_core::router::IqResult {
        let (Some(from), Some(payload)) = (st.from(), st.iq_payload()) else {
            return Err(bad("no sender"));
        };
        if st.to().is_some_and(|to| to.to_bare() != from.to_bare()) {
            return Err(StanzaError::new(Condition::Forbidden)
                .with_text("push notifications are configured on one's own account"));
        }
        let user = from.node().unwrap_or_default().to_string();
        let service = payload
            .attr("jid")
            .and_then(|j| Jid::parse(j).ok())
            .ok_or_else(|| bad("'jid' must be the push service's address"))?
            .to_string();
        let node = payload.attr("node").filter(|n| !n.is_empty());
        if payload.name() == "disable" {
            cx.store()
                .push_disable(&user, &service, node)
                .await
                .map_err(internal)?;
            tracing::debug!(account = %user, %service, "push notifications disabled");
            return Ok(None);
        }
        let node = node.ok_or_else(|| bad("'node' is required to enable push notifications"))?;
        let options = payload.get_child("x", NS_DATA).map(|x| {
            let mut out = Vec::new();
            hearth_xml::write_element(x, "", &mut out);
            String::from_utf8_lossy(&out).into_owned()
        });
        let registration = PushRegistration {
            service: service.clone(),
            node: node.to_string(),
            resource: from.resource().unwrap_or_default().to_string(),
            options,
        };
        let added = cx
            .store()
            .push_enable(&user, registration, self.cfg.max_registrations_per_user)
            .await
            .map_err(internal)?;
        if !added {
            return Err(StanzaError::new(Condition::ResourceConstraint)
                .with_text("too many push registrations for this account"));
        }
        tracing::debug!(account = %user, %service, "push notifications enabled");
        Ok(None)
    }

    /// A message went to offline storage: every registered device is woken.
    fn offline(self: &Arc<Self>, cx: &Context, st: &Stanza) {
        if important(st) {
            self.notify(cx, st, None);
        }
    }

    /// A message reaches sessions that are hibernated: their devices are woken.
    fn hibernated(self: &Arc<Self>, cx: &Context, st: &Stanza) {
        let Some(to) = st.to() else { return };
        if !important(st) {
            return;
        }
        let resources: Vec<String> = cx
            .server
            .sessions
            .of(to.bare())
            .iter()
            .filter(|s| s.is_hibernated())
            .filter(|s| {
                if to.is_full() {
                    s.jid == *to
                } else {
                    s.is_available() && s.priority() >= 0
                }
            })
            .filter_map(|s| s.jid.resource().map(str::to_string))
            .collect();
        if !resources.is_empty() {
            self.notify(cx, st, Some(resources));
        }
    }

    /// Publishes a notification to the user's registrations (of `resources` only, if given),
    /// in the background: delivery does not wait for the database or the app server.
    fn notify(self: &Arc<Self>, cx: &Context, st: &Stanza, resources: Option<Vec<String>>) {
        let (Some(user), Some(sender)) = (
            st.to().and_then(|t| t.node()).map(str::to_string),
            st.from().map(|f| f.to_string()),
        ) else {
            return;
        };
        let body = self.cfg.include_body.then(|| st.body()).flatten();
        let this = self.clone();
        let server = cx.server.clone();
        tokio::spawn(async move {
            let registrations = match server.store.push_list(&user).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, account = %user, "cannot read push registrations; no notification sent");
                    return;
                }
            };
            for r in registrations {
                if resources
                    .as_ref()
                    .is_some_and(|res| !res.contains(&r.resource))
                    || !this.due(&user, &r, &sender)
                {
                    continue;
                }
                let Some(iq) = this.notification(&server, &user, &r, &sender, body.as_deref())
                else {
                    tracing::warn!(account = %user, service = %r.service, "push registration unusable; removing it");
                    let _ = server
                        .store
                        .push_disable(&user, &r.service, Some(&r.node))
                        .await;
                    continue;
                };
                tracing::debug!(account = %user, service = %r.service, "sending push notification");
                server.route(iq).await;
            }
        });
    }

    /// Rate limit: one notification per device and sender per `min_interval_secs`.
    fn due(&self, user: &str, r: &PushRegistration, sender: &str) -> bool {
        let key = (user.to_string(), r.service.clone(), r.node.clone());
        let min = Duration::from_secs(self.cfg.min_interval_secs);
        let mut last = self.last.lock().expect("push lock");
        if let Some((at, previous)) = last.get(&key)
            && previous == sender
            && at.elapsed() < min
        {
            return false;
        }
        last.insert(key, (Instant::now(), sender.to_string()));
        true
    }

    /// The XEP-0357 §5 publish, with the summary form and the registration's publish-options.
    fn notification(
        &self,
        server: &hearth_core::server::Server,
        user: &str,
        r: &PushRegistration,
        sender: &str,
        body: Option<&str>,
    ) -> Option<Stanza> {
        let to = Jid::parse(&r.service).ok()?;
        let field = |var: &str, value: &str| {
            Element::builder("field", NS_DATA)
                .attr(ncname("var"), var)
                .append(
                    Element::builder("value", NS_DATA)
                        .append(value.to_string())
                        .build(),
                )
                .build()
        };
        let mut summary = Element::builder("x", NS_DATA)
            .attr(ncname("type"), "submit")
            .append(field("FORM_TYPE", "urn:xmpp:push:summary"))
            .append(field("message-count", "1"))
            .append(field("last-message-sender", sender))
            .build();
        if let Some(body) = body {
            summary.append_child(field("last-message-body", body));
        }
        let notification = Element::builder("notification", NS_PUSH)
            .append(summary)
            .build();
        let publish = Element::builder("publish", NS_PUBSUB)
            .attr(ncname("node"), r.node.as_str())
            .append(
                Element::builder("item", NS_PUBSUB)
                    .append(notification)
                    .build(),
            )
            .build();
        let mut pubsub = Element::builder("pubsub", NS_PUBSUB)
            .append(publish)
            .build();
        if let Some(options) = &r.options {
            let form = options.parse::<Element>().ok()?;
            pubsub.append_child(
                Element::builder("publish-options", NS_PUBSUB)
                    .append(form)
                    .build(),
            );
        }
        let id = format!(
            "{ID_PREFIX}{}",
            self.next_id
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        {
            let mut pending = self.pending.lock().expect("push lock");
            // App servers that never answer must not grow this map.
            if pending.len() >= MAX_PENDING {
                pending.clear();
            }
            pending.insert(
                id.clone(),
                (user.to_string(), r.service.clone(), r.node.clone()),
            );
        }
        let mut iq = Stanza::new(Kind::Iq);
        iq.set_type(Some("set"));
        iq.set_id(Some(&id));
        iq.set_from(Jid::domain_jid(server.domain()).ok());
        iq.set_to(Some(to));
        iq.element_mut().append_child(pubsub);
        Some(iq)
    }

    /// The app server's answer to a notification. An error other than a temporary one
    /// disables the registration (XEP-0357 §"Publish Errors").
    async fn answer(&self, cx: Context, st: Stanza) -> Flow {
        let Some(id) = st
            .id()
            .filter(|id| st.kind() == Kind::Iq && id.starts_with(ID_PREFIX))
        else {
            return Flow::Continue(st);
        };
        if !matches!(st.type_attr(), Some("result" | "error")) {
            return Flow::Continue(st);
        }
        let Some((user, service, node)) = self.pending.lock().expect("push lock").remove(id) else {
            return Flow::Stop;
        };
        if st.from().map(|f| f.to_string()).as_deref() != Some(service.as_str()) {
            return Flow::Stop;
        }
        let error = st.element().get_child("error", hearth_core::ns::CLIENT);
        if let Some(error) = error
            && error.attr("type") != Some("wait")
        {
            let condition = error
                .children()
                .find(|c| c.ns() == hearth_core::ns::STANZAS)
                .map(|c| c.name().to_string())
                .unwrap_or_default();
            tracing::info!(account = %user, %service, %condition, "push service refused a notification; disabling that registration (XEP-0357)");
            if let Err(e) = cx.store().push_disable(&user, &service, Some(&node)).await {
                tracing::error!(error = %e, "cannot disable push registration");
            }
        }
        Flow::Stop
    }
}

fn internal(e: hearth_store::StoreError) -> StanzaError {
    tracing::error!(error = %e, "push registration storage failed");
    StanzaError::new(Condition::InternalServerError)
}
