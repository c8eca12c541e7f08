//! Slot requests (XEP-0363 §4): checks, quota, the signed PUT URL and the GET URL.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use hearth_core::router::Context;
use hearth_core::stanza::{Condition, StanzaError, ncname};
use hearth_store::{OverQuota, Upload};
use hmac::{Hmac, Mac};
use minidom::Element;
use sha2::Sha256;

use super::{FileUpload, NS};

/// Random bytes in a slot id: 144 bits, unguessable; 24 characters in the URL.
const ID_BYTES: usize = 18;

impl FileUpload {
    /// Answers `<request filename size content-type/>` with a `<slot/>`.
    pub(super) async fn slot(
        &self,
        cx: &Context,
        request: &Element,
    ) -> Result<Element, StanzaError> {
        // The files use this server's disk and bandwidth: its own users only.
        let Some(username) = cx.session().and_then(|s| s.jid.node()) else {
            return Err(StanzaError::new(Condition::Forbidden)
                .with_text("file upload is for this server's users"));
        };
        let filename = request.attr("filename").unwrap_or_default();
        check_filename(filename).map_err(bad_request)?;
        let size: u64 = request
            .attr("size")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad_request("size must be the file's size in bytes"))?;
        if size > self.cfg.max_file_size {
            return Err(too_large(self.cfg.max_file_size));
        }
        let content_type = request.attr("content-type").filter(|c| !c.is_empty());
        if content_type.is_some_and(|c| !valid_content_type(c)) {
            return Err(bad_request(
                "content-type must be a media type such as image/jpeg",
            ));
        }
        let now = SystemTime::now();
        let slot = Upload {
            id: new_id(),
            username: username.to_string(),
            filename: filename.to_string(),
            size,
            content_type: content_type.map(String::from),
            created: now,
            put_deadline: whole_seconds_after(
                now + Duration::from_secs(self.cfg.slot_lifetime_secs),
            ),
            completed: None,
        };
        match cx
            .store()
            .upload_slot_create(slot.clone(), self.cfg.quota_bytes, now)
            .await
        {
            Ok(Ok(())) => {}
            Ok(Err(over)) => {
                tracing::info!(
                    user = username,
                    size,
                    used = over.used,
                    quota = self.cfg.quota_bytes,
                    "upload slot refused: over the quota (modules.upload.quota_bytes)"
                );
                return Err(self.over_quota(size, &over));
            }
            Err(e) => {
                tracing::error!(user = username, error = %e, "cannot record an upload slot");
                return Err(StanzaError::new(Condition::InternalServerError));
            }
        }
        tracing::info!(user = username, slot = %slot.id, size, content_type = ?slot.content_type,
            "upload slot handed out");
        let get = format!(
            "{}/{}/{}",
            self.url_prefix,
            slot.id,
            percent_encode(&slot.filename)
        );
        let put = format!("{get}?token={}", token(self.signing_key(), &slot));
        let url =
            |name: &str, url: String| Element::builder(name, NS).attr(ncname("url"), url).build();
        Ok(Element::builder("slot", NS)
            .append(url("put", put))
            .append(url("get", get))
            .build())
    }

    /// `resource-constraint`, with when to retry if expiry will free the oldest file.
    fn over_quota(&self, size: u64, over: &OverQuota) -> StanzaError {
        let quota = self.cfg.quota_bytes;
        let error = StanzaError::new(Condition::ResourceConstraint).with_text(format!(
            "upload quota reached: {} of {quota} bytes in use",
            over.used
        ));
        let retry = over
            .oldest
            .filter(|_| self.cfg.expire_after_secs > 0 && size <= quota);
        match retry {
            // The file expires, then the next sweep frees its space.
            Some(oldest) => {
                let at = oldest
                    + Duration::from_secs(
                        self.cfg.expire_after_secs + self.cfg.sweep_interval_secs,
                    );
                error.with_app(
                    Element::builder("retry", NS)
                        .attr(ncname("stamp"), hearth_core::datetime::format(at))
                        .build(),
                )
            }
            None => error,
        }
    }
}

fn bad_request(why: &str) -> StanzaError {
    StanzaError::new(Condition::BadRequest).with_text(why)
}

/// `not-acceptable` with the limit (XEP-0363 §6).
fn too_large(max: u64) -> StanzaError {
    StanzaError::new(Condition::NotAcceptable)
        .with_text(format!("the file is too large: the limit is {max} bytes"))
        .with_app(
            Element::builder("file-too-large", NS)
                .append(
                    Element::builder("max-file-size", NS)
                        .append(max.to_string())
                        .build(),
                )
                .build(),
        )
}

fn new_id() -> String {
    B64URL.encode(rand::random::<[u8; ID_BYTES]>())
}

/// Whether `s` has the shape of a slot id (files in the upload directory are named so).
pub(super) fn is_slot_id(s: &str) -> bool {
    s.len() == ID_BYTES * 4 / 3
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `t` rounded up to a whole second (the database keeps seconds): a slot is never valid for
/// less than its lifetime.
fn whole_seconds_after(t: SystemTime) -> SystemTime {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    UNIX_EPOCH + Duration::from_secs(d.as_secs() + u64::from(d.subsec_nanos() > 0))
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The HMAC over everything the PUT URL allows: which slot, how many bytes, of what type,
/// until when. The `\0`s keep the fields apart.
fn mac(key: &[u8], slot: &Upload) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    let fields = [
        slot.id.clone(),
        slot.size.to_string(),
        slot.content_type.clone().unwrap_or_default(),
        unix_secs(slot.put_deadline).to_string(),
    ];
    for field in fields {
        mac.update(field.as_bytes());
        mac.update(b"\0");
    }
    mac
}

/// The PUT URL's `token`.
pub(super) fn token(key: &[u8], slot: &Upload) -> String {
    B64URL.encode(mac(key, slot).finalize().into_bytes())
}

/// Whether `token` was made by [`token`] for this slot (compared in constant time).
pub(super) fn token_valid(key: &[u8], slot: &Upload, token: &str) -> bool {
    B64URL
        .decode(token)
        .is_ok_and(|t| mac(key, slot).verify_slice(&t).is_ok())
}

/// A filename ends up in a URL and a `Content-Disposition` header, never in a filesystem path.
fn check_filename(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 255 {
        return Err("the filename must have 1 to 255 bytes");
    }
    if name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| matches!(c, '/' | '\\') || c.is_control())
    {
        return Err("the filename must not be . or .., nor contain slashes or control characters");
    }
    Ok(())
}

/// `type/subtype`, optionally with parameters, in printable ASCII (it is sent back as a header).
pub(super) fn valid_content_type(c: &str) -> bool {
    c.len() <= 255
        && c.bytes().all(|b| (0x20..0x7f).contains(&b))
        && media_type(c)
            .split_once('/')
            .is_some_and(|(t, s)| !t.is_empty() && !s.is_empty() && !s.contains('/'))
}

/// The media type of a content type, lower case, without parameters.
pub(super) fn media_type(c: &str) -> String {
    c.split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Percent-encodes all but RFC 3986's unreserved characters: safe in a URL path segment and
/// in an RFC 5987 `filename*` value alike.
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot() -> Upload {
        Upload {
            id: new_id(),
            username: "alice".into(),
            filename: "cat.jpg".into(),
            size: 1234,
            content_type: Some("image/jpeg".into()),
            created: UNIX_EPOCH,
            put_deadline: UNIX_EPOCH + Duration::from_secs(1_700_000_300),
            completed: None,
        }
    }

    #[test]
    fn tokens_cover_the_slot_and_the_key() {
        let (key, s) = ([7u8; 32], slot());
        let t = token(&key, &s);
        assert!(token_valid(&key, &s, &t));
        assert!(!token_valid(&[8u8; 32], &s, &t));
        assert!(!token_valid(&key, &s, &t[1..]));
        assert!(!token_valid(&key, &s, "not base64!"));
        for other in [
            Upload {
                size: 1235,
                ..s.clone()
            },
            Upload {
                content_type: None,
                ..s.clone()
            },
            Upload {
                put_deadline: s.put_deadline + Duration::from_secs(1),
                ..s.clone()
            },
            Upload {
                id: new_id(),
                ..s.clone()
            },
        ] {
            assert!(!token_valid(&key, &other, &t), "{other:?}");
        }
    }

    #[test]
    fn slot_ids_are_random_and_recognisable() {
        let (a, b) = (new_id(), new_id());
        assert_ne!(a, b);
        assert!(is_slot_id(&a) && is_slot_id(&b));
        assert!(!is_slot_id("hearth.sqlite") && !is_slot_id(&format!("{a}.part")));
    }

    #[test]
    fn filenames() {
        for good in ["cat.jpg", "très cool.jpg", "..hidden", "a b#c?d%e"] {
            assert_eq!(check_filename(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../etc/passwd",
            "a/b",
            "a\\b",
            "a\nb",
            &"x".repeat(256),
        ] {
            assert!(check_filename(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn content_types() {
        assert!(valid_content_type("image/jpeg"));
        assert!(valid_content_type("text/plain; charset=utf-8"));
        for bad in [
            "jpeg",
            "image/",
            "/jpeg",
            "a/b/c",
            "text/plain\r\nX: y",
            "image/jpég",
        ] {
            assert!(!valid_content_type(bad), "{bad:?}");
        }
        assert_eq!(media_type(" Text/Plain ; charset=utf-8"), "text/plain");
    }

    #[test]
    fn percent_encoding_keeps_only_unreserved_characters() {
        assert_eq!(percent_encode("très cool.jpg"), "tr%C3%A8s%20cool.jpg");
        assert_eq!(percent_encode("a/b?c#d%e~f_g-h"), "a%2Fb%3Fc%23d%25e~f_g-h");
    }
}
