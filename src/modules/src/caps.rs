//! Entity Capabilities (XEP-0115): the verification string of a disco#info result (clients'
//! caps, checked before they are believed; and the server's own, offered as a stream feature).

use std::sync::Arc;

use base64::Engine as _;
use hearth_core::module::{DiscoScope, FeaturePhase, Module, Registrar, Spec, SupportStatus};
use hearth_core::ns::DISCO_INFO;
use hearth_core::stanza::ncname;
use minidom::Element;
use serde::Deserialize;
use sha1::{Digest, Sha1};

pub const NS_CAPS: &str = "http://jabber.org/protocol/caps";
/// The node hearth names itself by in its caps.
pub const SERVER_NODE: &str = "https://hearth.invalid/caps";
const NS_DATA: &str = "jabber:x:data";
const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

/// A form field's var and values.
type Field = (String, Vec<String>);

/// XEP-0115 §5.1: identities, features and extended forms of a disco#info `<query/>`, sorted
/// and joined, SHA-1, base64.
pub fn ver(query: &Element) -> String {
    let mut s = String::new();
    let mut identities: Vec<String> = query
        .children()
        .filter(|c| c.is("identity", DISCO_INFO))
        .map(|i| {
            format!(
                "{}/{}/{}/{}",
                i.attr("category").unwrap_or_default(),
                i.attr("type").unwrap_or_default(),
                i.attr_ns(XML_NS, "lang").unwrap_or_default(),
                i.attr("name").unwrap_or_default()
            )
        })
        .collect();
    identities.sort();
    for i in identities {
        s.push_str(&i);
        s.push('<');
    }
    let mut features: Vec<&str> = query
        .children()
        .filter(|c| c.is("feature", DISCO_INFO))
        .filter_map(|f| f.attr("var"))
        .collect();
    features.sort_unstable();
    for f in features {
        s.push_str(f);
        s.push('<');
    }
    let mut forms: Vec<(String, Vec<Field>)> = query
        .children()
        .filter(|c| c.is("x", NS_DATA))
        .filter_map(|x| {
            let mut form_type = None;
            let mut fields = Vec::new();
            for f in x.children().filter(|f| f.is("field", NS_DATA)) {
                let var = f.attr("var").unwrap_or_default().to_string();
                let mut values: Vec<String> = f
                    .children()
                    .filter(|v| v.is("value", NS_DATA))
                    .map(Element::text)
                    .collect();
                if var == "FORM_TYPE" {
                    form_type = values.pop();
                } else {
                    values.sort();
                    fields.push((var, values));
                }
            }
            fields.sort();
            Some((form_type?, fields))
        })
        .collect();
    forms.sort();
    for (form_type, fields) in forms {
        s.push_str(&form_type);
        s.push('<');
        for (var, values) in fields {
            s.push_str(&var);
            s.push('<');
            for v in values {
                s.push_str(&v);
                s.push('<');
            }
        }
    }
    base64::engine::general_purpose::STANDARD.encode(Sha1::digest(s.as_bytes()))
}

/// The server's own caps (`<c/>` among the stream features after login), computed from what
/// every module registered: load it last.
pub struct ServerCaps;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {}

impl Module for ServerCaps {
    const NAME: &'static str = "caps";
    const SPECS: &'static [Spec] = &[Spec {
        id: "XEP-0115",
        version: "1.6.0",
        status: SupportStatus::Complete,
        note: "the server's caps as a stream feature; clients' caps verified and cached for PEP notifications",
    }];
    type Config = Config;

    fn init(_: Config, reg: &mut Registrar) -> anyhow::Result<Arc<Self>> {
        let ver = server_ver(reg);
        reg.stream_feature(
            FeaturePhase::PostAuth,
            Element::builder("c", NS_CAPS)
                .attr(ncname("hash"), "sha-1")
                .attr(ncname("node"), SERVER_NODE)
                .attr(ncname("ver"), ver)
                .build(),
        );
        Ok(Arc::new(ServerCaps))
    }
}

/// The verification string of the server's disco#info as the disco module answers it.
pub fn server_ver(reg: &Registrar) -> String {
    let identities = reg
        .identities()
        .iter()
        .filter(|(s, _)| *s == DiscoScope::Host)
        .map(|(_, i)| i);
    let features = reg
        .features()
        .iter()
        .filter(|(s, _)| *s == DiscoScope::Host)
        .map(|(_, f)| f.as_str());
    let forms = reg
        .disco_forms()
        .iter()
        .filter(|(s, _)| *s == DiscoScope::Host)
        .map(|(_, f)| f);
    ver(&crate::disco::info_result(identities, features, forms))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// XEP-0115 §5.2 (simple) and §5.3 (complex, with an extended form).
    #[test]
    fn verification_strings() {
        let simple: Element = "<query xmlns='http://jabber.org/protocol/disco#info'><identity category='client' name='Exodus 0.9.1' type='pc'/><feature var='http://jabber.org/protocol/caps'/><feature var='http://jabber.org/protocol/disco#info'/><feature var='http://jabber.org/protocol/disco#items'/><feature var='http://jabber.org/protocol/muc'/></query>".parse().unwrap();
        assert_eq!(ver(&simple), "QgayPKawpkPSDYmwT/WM94uAlu0=");
        let complex: Element = "<query xmlns='http://jabber.org/protocol/disco#info'><identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/><identity xml:lang='el' category='client' name='Ψ 0.11' type='pc'/><feature var='http://jabber.org/protocol/caps'/><feature var='http://jabber.org/protocol/disco#info'/><feature var='http://jabber.org/protocol/disco#items'/><feature var='http://jabber.org/protocol/muc'/><x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field><field var='ip_version'><value>ipv4</value><value>ipv6</value></field><field var='os'><value>Mac</value></field><field var='os_version'><value>10.5.1</value></field><field var='software'><value>Psi</value></field><field var='software_version'><value>0.11</value></field></x></query>".parse().unwrap();
        assert_eq!(ver(&complex), "q07IKJEyjvHSyhy//CH0CxmKi8w=");
    }
}
