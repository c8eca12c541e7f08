//! The key signing PUT URLs, kept in `data_dir` so that a slot handed out just before a restart
//! can still be used after it.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

pub(super) type SigningKey = [u8; 32];

const FILE_NAME: &str = "upload-signing.key";

/// The key in `data_dir/upload-signing.key` (base64), made there on first start.
pub(super) fn load_or_create(data_dir: &Path) -> anyhow::Result<SigningKey> {
    let path = data_dir.join(FILE_NAME);
    match std::fs::read(&path) {
        Ok(text) => parse(&text).ok_or_else(|| malformed(&path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key: SigningKey = rand::random();
            let text = format!("{}\n", B64.encode(key));
            hearth_core::files::write_private(&path, text.as_bytes())?;
            tracing::info!(file = %path.display(), "made a new key for signing upload URLs");
            Ok(key)
        }
        Err(e) => Err(anyhow::anyhow!(
            "cannot read the upload signing key {}: {e} — check that hearth's user owns it",
            path.display()
        )),
    }
}

fn parse(text: &[u8]) -> Option<SigningKey> {
    let text = std::str::from_utf8(text).ok()?;
    B64.decode(text.trim()).ok()?.try_into().ok()
}

fn malformed(path: &Path) -> anyhow::Error {
    anyhow::anyhow!(
        "{} is not an upload signing key (32 bytes in base64): delete it, and hearth makes a new \
         one at its next start (upload URLs handed out before then stop working)",
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_made_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let made = load_or_create(dir.path()).unwrap();
        assert_eq!(load_or_create(dir.path()).unwrap(), made);
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert_eq!(B64.decode(text.trim()).unwrap(), made);
    }

    #[test]
    fn a_malformed_key_file_stops_the_start_and_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        for content in [
            &b"too short"[..],
            &B64.encode([1u8; 31]).into_bytes(),
            b"\xff\xfe",
        ] {
            std::fs::write(&path, content).unwrap();
            let e = load_or_create(dir.path()).unwrap_err().to_string();
            assert!(e.starts_with(&path.display().to_string()), "{e}");
            assert!(e.contains("delete it"), "{e}");
        }
    }
}
