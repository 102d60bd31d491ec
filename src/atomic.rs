//! Files appear by rename, or not at all: a reader (dpkg, modprobe, `dkms status`) never sees
//! half a file. Everything is first written beside its destination, under a hidden temporary
//! name, then renamed over it (dpkg's `.dpkg-new` then rename, in its unpack).
//!
//! Errors are plain `io::Error`s: each caller knows which path its message must name.

use std::fs::File;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A file being written that appears at its destination only on [`PendingFile::commit`];
/// dropped uncommitted, it leaves nothing behind.
#[derive(Debug)]
pub struct PendingFile {
    temp: tempfile::NamedTempFile,
    dest: PathBuf,
}

impl PendingFile {
    /// A new empty file beside `dest`, named `.<dest name>.<suffix><random>`, with mode 0644
    /// minus the umask once committed (as for any file a tool creates), whatever the temp
    /// file's own 0600.
    pub fn create(dest: &Path, suffix: &str) -> io::Result<PendingFile> {
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(suffix)
            .permissions(std::fs::Permissions::from_mode(0o644))
            .tempfile_in(parent_dir(dest))?;
        Ok(PendingFile {
            temp,
            dest: dest.to_path_buf(),
        })
    }

    /// The open file, to write to (or read back).
    pub fn file(&self) -> &File {
        self.temp.as_file()
    }

    /// Where the file is until it is committed.
    pub fn path(&self) -> &Path {
        self.temp.path()
    }

    /// Flush to disk and rename over the destination.
    pub fn commit(self) -> io::Result<PathBuf> {
        self.temp.as_file().sync_all()?;
        self.temp.persist(&self.dest).map_err(|e| e.error)?;
        Ok(self.dest)
    }
}

/// The directory a file at `path` is in (`.` for a bare name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A hidden temporary name beside `dest`, unique to this process, for the copies and links
/// below.
pub fn temp_beside(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(".{name}.dkms-rs-{}", std::process::id()))
}

/// Rename `temp` over `dest`; on failure `temp` is removed, so nothing is left half-done.
fn rename_or_clean(temp: &Path, dest: &Path) -> io::Result<()> {
    std::fs::rename(temp, dest).inspect_err(|_| {
        let _ = std::fs::remove_file(temp);
    })
}

/// Copy `from` to `dest`, so that `dest` appears complete or not at all.
pub fn copy_into_place(from: &Path, dest: &Path) -> io::Result<()> {
    let temp = temp_beside(dest);
    std::fs::copy(from, &temp).inspect_err(|_| {
        let _ = std::fs::remove_file(&temp);
    })?;
    rename_or_clean(&temp, dest)
}

/// Point `link` at `target`, replacing whatever file or link was there in one rename.
pub fn symlink_into_place(target: &Path, link: &Path) -> io::Result<()> {
    let temp = temp_beside(link);
    let _ = std::fs::remove_file(&temp);
    std::os::unix::fs::symlink(target, &temp)?;
    rename_or_clean(&temp, link)
}

/// Move a file to `to`: a rename, or across file systems (the dkms tree and /lib may differ)
/// a copy into place, then the removal of `from`.
pub fn move_into_place(from: &Path, to: &Path) -> io::Result<()> {
    if std::fs::rename(from, to).is_ok() {
        return Ok(());
    }
    copy_into_place(from, to)?;
    std::fs::remove_file(from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_file_appears_only_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("x.deb");
        let pending = PendingFile::create(&dest, ".part").unwrap();
        io::Write::write_all(&mut pending.file(), b"done").unwrap();
        assert!(!dest.exists());
        drop(pending);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let pending = PendingFile::create(&dest, "").unwrap();
        io::Write::write_all(&mut pending.file(), b"done").unwrap();
        assert_eq!(pending.commit().unwrap(), dest);
        assert_eq!(std::fs::read(&dest).unwrap(), b"done");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn links_and_copies_replace_in_one_step() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, link) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("l"),
        );
        std::fs::write(&a, "a").unwrap();
        std::fs::write(&link, "in the way").unwrap();
        symlink_into_place(&a, &link).unwrap();
        assert_eq!(std::fs::read_link(&link).unwrap(), a);
        copy_into_place(&a, &b).unwrap();
        move_into_place(&b, &dir.path().join("c")).unwrap();
        assert!(!b.exists());
        assert_eq!(std::fs::read(dir.path().join("c")).unwrap(), b"a");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 3, "no temp file left: {names:?}");
    }
}
