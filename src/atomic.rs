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

/// A directory being filled beside `dest` under a hidden temporary name, that appears at `dest`
/// whole on [`PendingDir::commit`]; dropped uncommitted (an error half-way, a full disk), it
/// is removed with all it holds, leaving `dest` as it was.
#[derive(Debug)]
pub struct PendingDir {
    temp: PathBuf,
    dest: PathBuf,
    committed: bool,
}

impl PendingDir {
    /// A new empty directory beside `dest` ([`temp_beside`]: same file system, so the commit is
    /// a rename), its mode as `mkdir` makes it (0777 minus the umask); one a killed command
    /// left under that name is removed first.
    pub fn create(dest: &Path) -> io::Result<PendingDir> {
        let temp = temp_beside(dest);
        remove_leftover(&temp)?;
        std::fs::create_dir(&temp)?;
        Ok(PendingDir {
            temp,
            dest: dest.to_path_buf(),
            committed: false,
        })
    }

    /// Where the directory is until it is committed.
    pub fn path(&self) -> &Path {
        &self.temp
    }

    /// Copy what the directory `from` holds into this one: `cp <options> from/. <this>`
    /// (`-a`: a faithful copy; `-r`: dkms's). The error is cp's first complaint (a full disk:
    /// "cp: error writing '<file>': No space left on device"), naming the file where it was
    /// going under `dest`, not the temporary name.
    pub fn copy_in(&self, options: &str, from: &Path) -> io::Result<()> {
        let out = std::process::Command::new("cp")
            .arg(options)
            .arg("--")
            .arg(from.join("."))
            .arg(&self.temp)
            .stdin(std::process::Stdio::null())
            .output()?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let first = stderr.lines().next().unwrap_or("").trim();
        let why = match first {
            "" => format!("cp {options} failed ({})", out.status),
            line => line.replace(
                &self.temp.to_string_lossy().into_owned(),
                &self.dest.to_string_lossy(),
            ),
        };
        Err(io::Error::other(why))
    }

    /// Put the directory at `dest`: renamed there when nothing is; otherwise exchanged with
    /// what is in one step (`renameat2(RENAME_EXCHANGE)`: a reader finds the old or the new,
    /// never neither), then the old removed. Where the file system cannot exchange, the old
    /// is renamed aside first.
    pub fn commit(mut self) -> io::Result<()> {
        match std::fs::symlink_metadata(&self.dest) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::rename(&self.temp, &self.dest)?;
                self.committed = true;
                return Ok(());
            }
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        let old = match exchange(&self.temp, &self.dest) {
            // The temporary name now holds the old directory.
            Ok(()) => self.temp.clone(),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) => {
                let old = hidden_beside(&self.dest, OLD_SUFFIX);
                remove_leftover(&old)?;
                std::fs::rename(&self.dest, &old)?;
                if let Err(e) = std::fs::rename(&self.temp, &self.dest) {
                    let _ = std::fs::rename(&old, &self.dest);
                    return Err(e);
                }
                old
            }
            Err(e) => return Err(e),
        };
        // The new one is in place whatever happens next; the old goes (a leftover name).
        self.committed = true;
        let _ = remove_leftover(&old);
        Ok(())
    }
}

impl Drop for PendingDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = remove_leftover(&self.temp);
        }
    }
}

/// Swap the two paths in one step (both must exist).
fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a path with a NUL byte"))
    };
    let (a, b) = (c(a)?, c(b)?);
    // SAFETY: two valid NUL-terminated paths, relative to the working directory.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
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
    fn pending_dir_appears_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("m-1");
        // Dropped: nothing left.
        let pending = PendingDir::create(&dest).unwrap();
        std::fs::write(pending.path().join("a"), "a").unwrap();
        drop(pending);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        // Committed where nothing was: renamed.
        let pending = PendingDir::create(&dest).unwrap();
        std::fs::write(pending.path().join("a"), "new").unwrap();
        pending.commit().unwrap();
        assert_eq!(std::fs::read(dest.join("a")).unwrap(), b"new");
        // Committed over a directory: exchanged, the old one gone.
        std::fs::write(dest.join("old-only"), "x").unwrap();
        let pending = PendingDir::create(&dest).unwrap();
        std::fs::write(pending.path().join("b"), "b").unwrap();
        pending.commit().unwrap();
        let names: Vec<_> = std::fs::read_dir(&dest)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, ["b"]);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp dir left"
        );
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
