//! Files hearth keeps in `data_dir` (keys it generates).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::Context as _;

/// Writes `data` to `path`, readable by hearth's user only (mode 0600, never more while being
/// written), atomically: into a temporary file beside it, synced, then renamed over `path`,
/// with the directory synced too. A crash leaves the old file or the new one, never a part.
pub fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = Path::new(&temporary);
    let written = write_synced(temporary, data).and_then(|()| {
        std::fs::rename(temporary, path)?;
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        std::fs::File::open(dir.unwrap_or(Path::new(".")))?.sync_all()
    });
    if written.is_err() {
        let _ = std::fs::remove_file(temporary);
    }
    written.with_context(|| format!("cannot write {}", path.display()))
}

/// A new file at `path` (one left by a crash is replaced) holding `data`, on disk.
fn write_synced(path: &Path, data: &[u8]) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(data)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn private_files_replace_the_old_one_whole_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        std::fs::write(dir.path().join("secret.key.tmp"), "left by a crash").unwrap();
        write_private(&path, b"first").unwrap();
        write_private(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["secret.key"]);
    }

    #[test]
    fn a_failed_write_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("secret.key");
        let e = write_private(&path, b"key").unwrap_err();
        assert!(e.to_string().contains("missing/secret.key"), "{e}");
    }
}
