//! The module source as a package carries it: `/usr/src/<name>-<version>/` without VCS
//! metadata, editor backups, kbuild leftovers or packages, and only names dpkg can carry.

use std::ffi::OsStr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::deb::DataTree;

use super::PackageError;

/// VCS metadata, editor backups, kbuild leftovers and packages: never part of a packaged
/// module source (the VCS set `dpkg-source -i` ignores, what `make modules` leaves behind, and
/// a previous run's .deb when the output directory is the source directory).
pub(super) fn is_excluded(name: &OsStr, is_dir: bool) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    const VCS: &[&str] = &[
        ".git",
        ".svn",
        ".hg",
        ".bzr",
        "CVS",
        "_darcs",
        ".pc",
        ".gitignore",
        ".gitattributes",
        ".gitmodules",
        ".gitreview",
        ".mailmap",
        ".cvsignore",
        ".hgignore",
        ".hgtags",
        ".bzrignore",
        ".bzrtags",
        ".arch-ids",
    ];
    const BUILD_FILES: &[&str] = &["Module.symvers", "modules.order", "Module.markers"];
    const BUILD_SUFFIXES: &[&str] = &[
        ".o", ".ko", ".mod", ".mod.c", ".a", ".ko.xz", ".ko.zst", ".ko.gz", ".deb",
    ];
    if VCS.contains(&name) || is_editor_backup(name) {
        return true;
    }
    if is_dir {
        return name == ".tmp_versions";
    }
    BUILD_FILES.contains(&name)
        || BUILD_SUFFIXES.iter().any(|s| name.ends_with(s))
        || (name.starts_with('.') && (name.ends_with(".cmd") || name.ends_with(".d")))
}

/// What editors leave in a worked-in tree: the backup, emacs-lock and vi-swap names of
/// dpkg-source's default ignore list (`*~`, `.#*`, `.*.sw?`: Dpkg/Source/Package.pm), and
/// emacs's auto-save files (`#*#`).
fn is_editor_backup(name: &str) -> bool {
    let vi_swap = name.len() > 4
        && name.starts_with('.')
        && name
            .char_indices()
            .rev()
            .nth(3)
            .is_some_and(|(i, _)| i > 0 && name[i..].starts_with(".sw"));
    name.ends_with('~')
        || name.starts_with(".#")
        || vi_swap
        || (name.len() > 2 && name.starts_with('#') && name.ends_with('#'))
}

/// Add the source tree under `prefix`; returns the newest mtime of its files and links
/// (directories are left out: writing the .deb into the source dir changes theirs).
pub(super) fn add_source_tree(
    data: &mut DataTree,
    source: &Path,
    prefix: &str,
) -> Result<u64, PackageError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PackageError::Io { path, source }
    };
    let meta = std::fs::metadata(source).map_err(io(source))?;
    if !meta.is_dir() {
        return Err(PackageError::Unsupported {
            path: source.to_path_buf(),
            reason: "the module source must be a directory holding dkms.conf",
        });
    }
    data.add_dir(prefix);
    let mut newest = 0u64;
    let walker = walkdir::WalkDir::new(source)
        .min_depth(1)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            // dkms-mkdeb.control describes the packaging, not the module's source.
            let packaging = e.depth() == 1 && e.file_name() == super::declared::CONTROL_FILE;
            !(packaging || is_excluded(e.file_name(), e.file_type().is_dir()))
        });
    for entry in walker {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(source).to_path_buf();
            PackageError::Io {
                path,
                source: e.into(),
            }
        })?;
        let path = entry.path();
        let rel = path.strip_prefix(source).unwrap_or(path);
        let Some(rel) = rel.to_str() else {
            return Err(PackageError::Unsupported {
                path: path.to_path_buf(),
                reason: "file name is not UTF-8",
            });
        };
        // Checked over the whole tree before anything is written (the walk only collects).
        if rel.contains('\n') {
            return Err(PackageError::UnpackableName {
                path: path.to_path_buf(),
                reason: "file name has a newline, which dpkg refuses (dpkg-deb: \"newline not allowed in pathname\")",
            });
        }
        let target = format!("{prefix}/{rel}");
        let meta = entry.metadata().map_err(|e| PackageError::Io {
            path: path.to_path_buf(),
            source: e.into(),
        })?;
        let ft = meta.file_type();
        if ft.is_dir() {
            data.add_dir(&target);
            continue;
        }
        newest = newest.max(meta.mtime().max(0) as u64);
        if ft.is_symlink() {
            let link = std::fs::read_link(path).map_err(io(path))?;
            let Some(link) = link.to_str() else {
                return Err(PackageError::Unsupported {
                    path: path.to_path_buf(),
                    reason: "symlink target is not UTF-8",
                });
            };
            data.add_symlink(&target, link);
        } else if ft.is_file() {
            // Fail here, with the file's name, rather than half-way through the archive.
            std::fs::File::open(path).map_err(io(path))?;
            let executable = meta.permissions().mode() & 0o111 != 0;
            data.add_file_from_disk(&target, path.to_path_buf(), executable);
        } else {
            return Err(PackageError::Unsupported {
                path: path.to_path_buf(),
                reason: "not a regular file, directory or symlink (sockets, fifos and devices cannot be packaged)",
            });
        }
    }
    Ok(newest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_leftovers_and_vcs_are_excluded() {
        for n in [
            ".git",
            "hello.o",
            "hello.ko",
            ".hello.o.cmd",
            "Module.symvers",
            "modules.order",
            "hello.mod.c",
            ".gitignore",
            "hello.c~",
            ".hello.c.swp",
            ".hello.c.swo",
            "#hello.c#",
            ".#hello.c",
        ] {
            assert!(is_excluded(OsStr::new(n), n == ".git"), "{n}");
        }
        for n in [
            "hello.c",
            "Makefile",
            "dkms.conf",
            "Kbuild",
            "hello.h",
            "cmd",
            ".swp",
            "#",
            "a.swp",
        ] {
            assert!(!is_excluded(OsStr::new(n), false), "{n}");
        }
    }
}
