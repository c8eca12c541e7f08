//! Per-account documents: Private XML Storage (XEP-0049) keyed by namespace, and the
//! vCard-temp (XEP-0054) with the hash of its photo (XEP-0153).

use crate::{Result, Store};

impl Store {
    /// The stored XML for `namespace`, if any.
    pub async fn private_get(&self, username: &str, namespace: &str) -> Result<Option<String>> {
        dispatch!(self.private_get(username, namespace))
    }

    /// Replaces the XML stored for `namespace`.
    pub async fn private_set(&self, username: &str, namespace: &str, xml: &str) -> Result<()> {
        dispatch!(self.private_set(username, namespace, xml))
    }

    pub async fn vcard_get(&self, username: &str) -> Result<Option<String>> {
        dispatch!(self.vcard_get(username))
    }

    /// Replaces the vCard and the SHA-1 of its photo (`None`: no photo).
    pub async fn vcard_set(
        &self,
        username: &str,
        xml: &str,
        photo_sha1: Option<&str>,
    ) -> Result<()> {
        dispatch!(self.vcard_set(username, xml, photo_sha1))
    }

    /// The SHA-1 of the vCard photo: `None` without vCard, `Some(None)` without photo.
    pub async fn vcard_photo_sha1(&self, username: &str) -> Result<Option<Option<String>>> {
        dispatch!(self.vcard_photo_sha1(username))
    }
}
