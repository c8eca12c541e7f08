//! SASL2 (XEP-0388) with Bind2 (XEP-0386): authentication, resumption or resource binding,
//! and the features a client wants on (carbons, Stream Management) in one round trip, so a
//! phone reconnects without the several exchanges of RFC 6120.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use minidom::Element;
use sha2::{Digest, Sha256};

use super::{Action, Conn, End, stream_error, xml_escape};
use crate::jid::Jid;
use crate::ns;
use crate::router::{Context, Origin};
use crate::session::Sessions;
use crate::stanza::ncname;

pub(super) const NS: &str = "urn:xmpp:sasl:2";
pub(super) const NS_BIND2: &str = "urn:xmpp:bind:0";

impl Conn {
    /// The `<authentication/>` stream feature: mechanisms, and what may be done inline.
    pub(super) fn sasl2_feature(&self) -> Element {
        let mut auth = Element::bare("authentication", NS);
        for m in hearth_auth::offered_mechanisms(&self.cb, self.server.password_check()) {
            auth.append_child(Element::builder("mechanism", NS).append(m.name()).build());
        }
        let mut bind_inline = Element::bare("inline", NS_BIND2);
        let mut inline_features: Vec<&str> = self
            .server
            .regs
            .bind2_inline
            .iter()
            .map(|(ns, _)| ns.as_str())
            .collect();
        if self.server.config.c2s.stream_management.enabled {
            inline_features.push(crate::sm::NS);
        }
        for f in inline_features {
            bind_inline.append_child(
                Element::builder("feature", NS_BIND2)
                    .attr(ncname("var"), f)
                    .build(),
            );
        }
        let mut inline = Element::builder("inline", NS)
            .append(
                Element::builder("bind", NS_BIND2)
                    .append(bind_inline)
                    .build(),
            )
            .build();
        if self.server.config.c2s.stream_management.enabled {
            inline.append_child(Element::bare("sm", crate::sm::NS));
        }
        if let Some(fast) = self.fast_feature() {
            inline.append_child(fast);
        }
        auth.append_child(inline);
        auth
    }

    /// Authentication succeeded inside `<authenticate/>`: issue a FAST token if asked (or
    /// `rotate` says the one used is due), resume the session it names, or bind a resource
    /// with the inline features, and say so in one `<success/>`.
    pub(super) async fn sasl2_success(
        &mut self,
        username: String,
        additional: Option<Vec<u8>>,
        authenticate: Element,
        rotate: Option<hearth_auth::HtMechanism>,
    ) -> Result<Action, End> {
        self.user = Some(username.clone());
        let account =
            Jid::parse(&format!("{username}@{}", self.server.domain())).map_err(|_| {
                stream_error("internal-server-error", "account name is not a valid JID")
            })?;
        let mut inline = self.fast_token(&account, &authenticate, rotate).await;
        let mut action = Action::Continue;
        let mut resend = None;
        if let Some(resume) = authenticate.get_child("resume", crate::sm::NS)
            && let (Some(previd), Some(h)) = (
                resume.attr("previd"),
                resume.attr("h").and_then(|h| h.parse::<u32>().ok()),
            )
        {
            match self.resume(&username, previd, h).await? {
                Ok((resumed, queue, r)) => {
                    inline.push_str(&resumed);
                    action = Action::Bound(queue);
                    resend = Some(r);
                }
                Err(failed) => inline.push_str(&failed),
            }
        }
        if matches!(action, Action::Continue)
            && let Some(bind) = authenticate.get_child("bind", NS_BIND2)
        {
            let agent = authenticate
                .get_child("user-agent", NS)
                .and_then(|u| u.attr("id"));
            let tag = bind.get_child("tag", NS_BIND2).map(Element::text);
            let jid = account
                .with_resource(&resource(tag.as_deref(), agent))
                .map_err(|_| stream_error("internal-server-error", "cannot make a resource"))?;
            let queue = self.bind_session(jid).await;
            let bound = self.bind2_inline(bind).await;
            inline.push_str(&bound);
            action = Action::Bound(queue);
        }
        let authz = self
            .session
            .as_ref()
            .map_or_else(|| account.to_string(), |s| s.jid.to_string());
        let data = additional
            .map(|d| format!("<additional-data>{}</additional-data>", B64.encode(d)))
            .unwrap_or_default();
        self.out.extend_from_slice(
            format!(
                "<success xmlns='{NS}'>{data}<authorization-identifier>{}</authorization-identifier>{inline}</success>",
                xml_escape(&authz)
            )
            .as_bytes(),
        );
        // XEP-0388 §2.5: the features of the authenticated stream follow at once (there is no
        // restart); a bound stream has none left to negotiate.
        if self.session.is_some() {
            self.out.extend_from_slice(b"<stream:features/>");
        } else {
            self.send_features();
        }
        if let Some(r) = resend {
            self.resend(r);
        }
        Ok(action)
    }

    /// What Bind2 enables inline: Stream Management here, the rest by the modules that
    /// registered it (carbons). Returns the `<bound/>` element.
    async fn bind2_inline(&mut self, bind: &Element) -> String {
        let mut bound = String::new();
        if let Some(enable) = bind.get_child("enable", crate::sm::NS) {
            bound.push_str(&self.sm_enable(enable));
        }
        let Some(session) = self.session.clone() else {
            return String::new();
        };
        let handlers = self.server.regs.bind2_inline.clone();
        for child in bind.children() {
            if let Some((_, f)) = handlers.iter().find(|(ns, _)| child.ns() == *ns) {
                let cx = Context::new(self.server.clone(), Origin::Client(session.clone()));
                if let Some(answer) = f(cx, child.clone()).await {
                    let mut out = Vec::new();
                    hearth_xml::write_element(&answer, ns::CLIENT, &mut out);
                    bound.push_str(&String::from_utf8_lossy(&out));
                }
            }
        }
        format!("<bound xmlns='{NS_BIND2}'>{bound}</bound>")
    }
}

/// XEP-0386 §"Resource": the client's tag and a suffix stable for its user-agent id, so a
/// device keeps its resource across logins; a random one without an id.
fn resource(tag: Option<&str>, agent: Option<&str>) -> String {
    let tag: String = tag
        .unwrap_or("hearth")
        .chars()
        .filter(|c| !c.is_control() && *c != '/')
        .take(32)
        .collect();
    match agent {
        Some(id) => {
            let digest = Sha256::digest(id.as_bytes());
            let suffix: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
            format!("{tag}.{suffix}")
        }
        None => format!("{tag}.{}", &Sessions::generate_resource()[7..15]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_are_stable_per_device() {
        let a = resource(
            Some("Conversations.Android"),
            Some("d4565fa7-4d72-4749-b3d3-740edbf87770"),
        );
        assert_eq!(
            a,
            resource(
                Some("Conversations.Android"),
                Some("d4565fa7-4d72-4749-b3d3-740edbf87770")
            )
        );
        assert!(a.starts_with("Conversations.Android."));
        assert_ne!(a, resource(Some("Conversations.Android"), Some("other")));
        assert_ne!(resource(None, None), resource(None, None));
    }
}
