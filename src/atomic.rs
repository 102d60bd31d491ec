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

/// What the names of [`temp_beside`] end with: `.hello.ko.dkms-rs-new` (dpkg's `.dpkg-new`).
pub const NEW_SUFFIX: &str = ".dkms-rs-new";
/// What [`remove_dir_by_rename`] names a directory on its way out: `.<name>.dkms-rs-old`.
pub const OLD_SUFFIX: &str = ".dkms-rs-old";

/// The hidden temporary name beside `dest` for the copies and links below:
/// `.<name>.dkms-rs-new`. One fixed name, as dpkg's `.dpkg-new`, so that whoever comes
/// after a killed command knows it for what it is: callers hold the tree lock, so no other
/// dkms-rs writes it at the same time, and a leftover is simply replaced.
pub fn temp_beside(dest: &Path) -> PathBuf {
    hidden_beside(dest, NEW_SUFFIX)
}

fn hidden_beside(dest: &Path, suffix: &str) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(".{name}{suffix}"))
}

/// Write `bytes` to `dest` through [`temp_beside`], flushed before the rename: `dest` holds
/// the old content or the new, whenever the writer is killed.
pub fn write_into_place(dest: &Path, bytes: &[u8]) -> io::Result<()> {
    let temp = temp_beside(dest);
    let written = std::fs::write(&temp, bytes)
        .and_then(|()| File::open(&temp))
        .and_then(|f| f.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(e);
    }
    rename_or_clean(&temp, dest)
}

/// Remove a directory tree so that it is whole or gone: renamed first to the hidden
/// `.<name>.dkms-rs-old` (one step), then deleted. A kill during the deletion leaves only
/// that hidden name, which [`is_leftover`] recognises. Missing is fine.
pub fn remove_dir_by_rename(dir: &Path) -> io::Result<()> {
    let old = hidden_beside(dir, OLD_SUFFIX);
    match std::fs::remove_dir_all(&old) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    match std::fs::rename(dir, &old) {
        Ok(()) => std::fs::remove_dir_all(&old),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether a file name is one that [`temp_beside`] or [`remove_dir_by_rename`] gives: what
/// a killed command left, to be removed by the next one holding the tree lock.
pub fn is_leftover(name: &std::ffi::OsStr) -> bool {
    let name = name.to_string_lossy();
    name.starts_with('.') && (name.ends_with(NEW_SUFFIX) || name.ends_with(OLD_SUFFIX))
}

/// Remove a leftover file or directory tree at `path` (see [`is_leftover`]); missing is fine.
pub fn remove_leftover(path: &Path) -> io::Result<()> {
    let removed = match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) => Err(e),
    };
    match removed {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
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
    // A leftover link there would be followed by the copy.
    let _ = std::fs::remove_file(&temp);
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
