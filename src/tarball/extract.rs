//! Loading a dkms tarball safely: names checked, links kept inside, nothing written before
//! every entry passed; merging its trees into place.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use super::TarballError;
use crate::atomic;

/// An archive name made safe: relative, no `..`, `./` and empty components dropped.
pub(super) fn safe_name(raw: &[u8]) -> Result<PathBuf, &'static str> {
    let Ok(name) = std::str::from_utf8(raw) else {
        return Err("is not UTF-8");
    };
    if name.starts_with('/') {
        return Err("is an absolute path");
    }
    let mut out = PathBuf::new();
    for c in Path::new(name).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => return Err("contains `..`"),
            Component::RootDir | Component::Prefix(_) => return Err("is an absolute path"),
        }
    }
    Ok(out)
}

/// Whether a symlink at `name` pointing to `target` stays inside the archive root, read
/// lexically (every other link was checked the same way when it was extracted).
pub(super) fn link_stays_inside(name: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut depth: Vec<&std::ffi::OsStr> = name
        .parent()
        .map(|p| {
            p.components()
                .filter_map(|c| match c {
                    Component::Normal(s) => Some(s),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    for c in target.components() {
        match c {
            Component::Normal(s) => depth.push(s),
            Component::CurDir => {}
            Component::ParentDir => {
                if depth.pop().is_none() {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// The decompressed stream of an archive, by its magic bytes (what `tar -xaf` does).
fn open_archive(archive: &Path) -> Result<Box<dyn Read>, TarballError> {
    let read_err = |source| TarballError::Read {
        path: archive.to_path_buf(),
        source,
    };
    let mut file = BufReader::new(File::open(archive).map_err(read_err)?);
    let mut magic = [0u8; 6];
    let mut got = 0;
    while got < magic.len() {
        match file.read(&mut magic[got..]).map_err(read_err)? {
            0 => break,
            n => got += n,
        }
    }
    let head = std::io::Cursor::new(magic[..got].to_vec()).chain(file);
    let magic = &magic[..got];
    Ok(if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(head))
    } else if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(liblzma::read::XzDecoder::new_multi_decoder(head))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::new(head).map_err(read_err)?)
    } else if magic.starts_with(b"BZh") {
        return Err(TarballError::Invalid {
            archive: archive.to_path_buf(),
            detail: "bzip2 compression is not supported (use gzip, xz or zstd)".into(),
        });
    } else {
        Box::new(head)
    })
}

/// Extract `archive` into the empty directory `dest`, refusing unsafe entries (see the module
/// docs). Modes keep only the executable bit (0755/0644); mtimes are not restored, as dkms's
/// `cp -rf` out of its extraction directory does not restore them either.
pub fn extract(archive: &Path, dest: &Path) -> Result<(), TarballError> {
    let invalid = |detail: String| TarballError::Invalid {
        archive: archive.to_path_buf(),
        detail,
    };
    let unsafe_entry = |entry: &Path, reason| TarballError::Unsafe {
        archive: archive.to_path_buf(),
        entry: entry.display().to_string(),
        reason,
    };
    let werr = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TarballError::Write { path, source }
    };
    let mut tar = tar::Archive::new(open_archive(archive)?);
    let entries = tar.entries().map_err(|e| invalid(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| invalid(e.to_string()))?;
        let raw = entry.path_bytes().into_owned();
        let name = safe_name(&raw).map_err(|reason| TarballError::Unsafe {
            archive: archive.to_path_buf(),
            entry: String::from_utf8_lossy(&raw).into_owned(),
            reason,
        })?;
        let kind = entry.header().entry_type();
        if name.as_os_str().is_empty() {
            if kind.is_dir() {
                continue;
            }
            return Err(unsafe_entry(&name, "names the extraction directory itself"));
        }
        // Nothing is written through a symlink the archive made.
        let mut parent = dest.to_path_buf();
        for c in name.parent().into_iter().flat_map(Path::components) {
            parent.push(c);
            if parent.is_symlink() {
                return Err(unsafe_entry(&name, "lies under a symlink"));
            }
        }
        let path = dest.join(&name);
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p).map_err(werr(p))?;
        }
        let replace = |path: &Path| -> Result<(), TarballError> {
            match std::fs::symlink_metadata(path) {
                Ok(m) if m.is_dir() => Err(unsafe_entry(&name, "replaces a directory")),
                Ok(_) => std::fs::remove_file(path).map_err(werr(path)),
                Err(_) => Ok(()),
            }
        };
        if kind.is_dir() {
            match std::fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(unsafe_entry(&name, "replaces a file with a directory")),
                Err(_) => std::fs::create_dir(&path).map_err(werr(&path))?,
            }
        } else if kind.is_file() || kind.is_contiguous() {
            replace(&path)?;
            let mode = if entry.header().mode().unwrap_or(0o644) & 0o111 != 0 {
                0o755
            } else {
                0o644
            };
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&path)
                .map_err(werr(&path))?;
            io::copy(&mut entry, &mut out).map_err(|e| invalid(e.to_string()))?;
            out.flush().map_err(werr(&path))?;
        } else if kind.is_symlink() {
            let Some(target) = entry.link_name_bytes() else {
                return Err(unsafe_entry(&name, "is a symlink without a target"));
            };
            let target = PathBuf::from(String::from_utf8_lossy(&target).into_owned());
            if !link_stays_inside(&name, &target) {
                return Err(unsafe_entry(
                    &name,
                    "is a symlink leading out of the archive",
                ));
            }
            replace(&path)?;
            std::os::unix::fs::symlink(&target, &path).map_err(werr(&path))?;
        } else if kind.is_hard_link() {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| unsafe_entry(&name, "is a hard link without a target"))
                .and_then(|t| {
                    safe_name(&t)
                        .map_err(|_| unsafe_entry(&name, "is a hard link out of the archive"))
                })?;
            let from = dest.join(&target);
            if !std::fs::symlink_metadata(&from).is_ok_and(|m| m.is_file()) {
                return Err(unsafe_entry(
                    &name,
                    "is a hard link to no regular file extracted before it",
                ));
            }
            replace(&path)?;
            std::fs::hard_link(&from, &path).map_err(werr(&path))?;
        } else if kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
            continue;
        } else {
            return Err(unsafe_entry(
                &name,
                "is not a file, directory or symlink (devices and fifos are not loaded)",
            ));
        }
    }
    Ok(())
}

/// Copy `from` into `to` as `cp -rf from/. to` does (merging into what is there; symlinks
/// copied as symlinks), each file by temp + rename.
pub fn copy_merge(from: &Path, to: &Path) -> Result<(), TarballError> {
    for entry in walkdir::WalkDir::new(from)
        .follow_links(false)
        .sort_by_file_name()
    {
        let entry = entry.map_err(|e| TarballError::Read {
            path: e.path().unwrap_or(from).to_path_buf(),
            source: e.into(),
        })?;
        let rel = entry.path().strip_prefix(from).unwrap_or(entry.path());
        let dest = if rel.as_os_str().is_empty() {
            to.to_path_buf()
        } else {
            to.join(rel)
        };
        let werr = |source| TarballError::Write {
            path: dest.clone(),
            source,
        };
        let ft = entry.file_type();
        if ft.is_dir() {
            if !dest.is_dir() {
                std::fs::create_dir_all(&dest).map_err(werr)?;
            }
            continue;
        }
        if dest.is_dir() && !dest.is_symlink() {
            return Err(TarballError::Write {
                path: dest.clone(),
                source: io::Error::new(io::ErrorKind::IsADirectory, "a directory is in the way"),
            });
        }
        if ft.is_symlink() {
            let target = std::fs::read_link(entry.path()).map_err(|source| TarballError::Read {
                path: entry.path().to_path_buf(),
                source,
            })?;
            atomic::symlink_into_place(&target, &dest).map_err(werr)?;
        } else {
            atomic::copy_into_place(entry.path(), &dest).map_err(werr)?;
        }
    }
    Ok(())
}
