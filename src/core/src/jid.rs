//! Addresses. The bare part (`node@domain`) is normalised by the `jid` crate (RFC 6122 nodeprep and
//! IDNA, as Prosody and ejabberd do, so federated comparisons agree). The resource is ours: the
//! `jid` crate's resourceprep rejects code points unassigned in Unicode 3.2 (emoji), which real
//! clients put in resources and MUC nicknames, so a resource that fails resourceprep is accepted
//! when it passes the PRECIS OpaqueString profile (RFC 8265), which is what RFC 7622 prescribes.

use std::fmt;
use std::sync::Arc;

pub use jid::BareJid;

/// RFC 7622 §3.1: each part is at most 1023 bytes.
const MAX_PART: usize = 1023;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JidError {
    #[error("invalid address: {0}")]
    Invalid(String),
}

/// A bare or full address. Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Jid {
    bare: BareJid,
    resource: Option<Arc<str>>,
}

impl Jid {
    pub fn parse(s: &str) -> Result<Self, JidError> {
        let (bare, resource) = match s.split_once('/') {
            Some((b, r)) => (b, Some(r)),
            None => (s, None),
        };
        let bare = BareJid::new(bare).map_err(|e| JidError::Invalid(format!("{s:?}: {e}")))?;
        let resource = match resource {
            None => None,
            Some(r) => {
                Some(normalise_resource(r).map_err(|e| JidError::Invalid(format!("{s:?}: {e}")))?)
            }
        };
        Ok(Self { bare, resource })
    }

    pub fn from_bare(bare: BareJid) -> Self {
        Self {
            bare,
            resource: None,
        }
    }

    /// The domain-only address of a service or server.
    pub fn domain_jid(domain: &str) -> Result<Self, JidError> {
        let j = Self::parse(domain)?;
        if j.node().is_some() || j.resource.is_some() {
            return Err(JidError::Invalid(format!("{domain:?} is not a domain")));
        }
        Ok(j)
    }

    /// This address with `resource` (normalised) as its resourcepart.
    pub fn with_resource(&self, resource: &str) -> Result<Self, JidError> {
        Ok(Self {
            bare: self.bare.clone(),
            resource: Some(normalise_resource(resource)?),
        })
    }

    pub fn bare(&self) -> &BareJid {
        &self.bare
    }

    pub fn to_bare(&self) -> Jid {
        Self {
            bare: self.bare.clone(),
            resource: None,
        }
    }

    pub fn node(&self) -> Option<&str> {
        self.bare.node().map(|n| n.as_str())
    }

    pub fn domain(&self) -> &str {
        self.bare.domain().as_str()
    }

    pub fn resource(&self) -> Option<&str> {
        self.resource.as_deref()
    }

    pub fn is_bare(&self) -> bool {
        self.resource.is_none()
    }

    pub fn is_full(&self) -> bool {
        self.resource.is_some()
    }

    /// True for an account address (`user@domain`, no resource).
    pub fn is_account(&self) -> bool {
        self.node().is_some() && self.resource.is_none()
    }
}

impl fmt::Display for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.resource {
            Some(r) => write!(f, "{}/{}", self.bare, r),
            None => write!(f, "{}", self.bare),
        }
    }
}

impl fmt::Debug for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Jid({self})")
    }
}

impl std::str::FromStr for Jid {
    type Err = JidError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl From<BareJid> for Jid {
    fn from(bare: BareJid) -> Self {
        Self::from_bare(bare)
    }
}

/// Normalises a resourcepart: resourceprep first (agrees with stringprep-based servers), then the
/// PRECIS OpaqueString profile for what resourceprep cannot express (unassigned code points).
pub fn normalise_resource(r: &str) -> Result<Arc<str>, JidError> {
    if r.is_empty() {
        return Err(JidError::Invalid("empty resource".into()));
    }
    let out = match stringprep::resourceprep(r) {
        Ok(p) => p.into_owned(),
        Err(_) => {
            use precis_profiles::precis_core::profile::Profile;
            precis_profiles::OpaqueString::new()
                .enforce(r)
                .map_err(|e| JidError::Invalid(format!("resource {r:?} is not allowed: {e:?}")))?
                .into_owned()
        }
    };
    if out.is_empty() || out.len() > MAX_PART {
        return Err(JidError::Invalid("resource must be 1 to 1023 bytes".into()));
    }
    Ok(out.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_part_is_normalised() {
        let j = Jid::parse("Juliet@Example.COM/Balcony").unwrap();
        assert_eq!(j.to_string(), "juliet@example.com/Balcony");
        assert_eq!(j.node(), Some("juliet"));
        assert_eq!(j.domain(), "example.com");
        assert_eq!(j.resource(), Some("Balcony"));
    }

    #[test]
    fn emoji_resource_is_accepted() {
        let j = Jid::parse("room@muc.example/😀 Alice").unwrap();
        assert_eq!(j.resource(), Some("😀 Alice"));
    }

    #[test]
    fn resource_may_contain_slash_and_at() {
        let j = Jid::parse("a@b/c/d@e").unwrap();
        assert_eq!(j.resource(), Some("c/d@e"));
    }

    #[test]
    fn invalid_addresses_are_refused() {
        for s in [
            "",
            "@example.com",
            "a@",
            "a@b/",
            "a b@example.com",
            "a@exa mple.com",
        ] {
            assert!(Jid::parse(s).is_err(), "{s:?} should be refused");
        }
        let long = format!("a@b/{}", "x".repeat(1024));
        assert!(Jid::parse(&long).is_err());
    }

    #[test]
    fn control_characters_in_resource_are_refused() {
        assert!(Jid::parse("a@b/x\u{0007}y").is_err());
    }
}
