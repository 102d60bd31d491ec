//! Writes .deb files exactly as `dpkg-deb --root-owner-group --build` would: knows nothing of dkms.
//!
//! One small piece per archive layer: [`tar`] (GNU tar headers), `compress` (xz, gzip, zstd or
//! none, dpkg-deb's defaults), `data` (the data.tar stream with md5sums and Installed-Size),
//! `control` (control.tar) and `ar` (the outer archive). The result depends only on the
//! [`DataTree`], the scripts, the mtime and the compression settings: not on the umask, the
//! modes or mtimes of the source files, the working directory or the number of threads.
//!
//! The data tar is streamed (files read once, md5 computed on the way, compressed into a
//! temp file next to the output), then the output appears by rename, or not at all.

mod ar;
mod compress;
mod control;
mod data;
pub mod tar;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::atomic::PendingFile;

pub use compress::{
    Compression, CompressionKind, Compressor, UnknownCompression, xz_block_size, xz_block_size_for,
};

/// One entry of the package's file system tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataEntry {
    Dir,
    File {
        content: FileContent,
        executable: bool,
    },
    Symlink {
        target: String,
    },
}

/// Where a regular file's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileContent {
    /// Read while the archive is written (one read, md5 computed on the way).
    Disk(PathBuf),
    Bytes(Vec<u8>),
}

/// The files of a package, keyed by their path relative to `/` (e.g.
/// `usr/src/hello-0.1/hello.c`; the root is the empty path and always present).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataTree {
    entries: BTreeMap<String, DataEntry>,
}

impl Default for DataTree {
    fn default() -> Self {
        Self::new()
    }
}

impl DataTree {
    pub fn new() -> Self {
        let mut entries = BTreeMap::new();
        entries.insert(String::new(), DataEntry::Dir);
        DataTree { entries }
    }

    /// Adds a directory and its missing parents.
    pub fn add_dir(&mut self, path: &str) {
        let path = normalise(path);
        self.add_parents(&path);
        self.entries.insert(path, DataEntry::Dir);
    }

    /// Adds a regular file read from `source` when the archive is written; its mode in the
    /// package is 0755 if `executable`, else 0644, whatever the source's mode.
    pub fn add_file_from_disk(&mut self, path: &str, source: PathBuf, executable: bool) {
        self.add(
            path,
            DataEntry::File {
                content: FileContent::Disk(source),
                executable,
            },
        );
    }

    /// Adds a regular file with the given content.
    pub fn add_file_bytes(&mut self, path: &str, bytes: Vec<u8>, executable: bool) {
        self.add(
            path,
            DataEntry::File {
                content: FileContent::Bytes(bytes),
                executable,
            },
        );
    }

    /// Adds a symlink to `target` (stored as given: relative or absolute).
    pub fn add_symlink(&mut self, path: &str, target: &str) {
        self.add(
            path,
            DataEntry::Symlink {
                target: target.to_string(),
            },
        );
    }

    /// All paths, root (`""`) first, sorted as a tree: each directory's children by name
    /// (bytewise), a directory's contents right after it.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.sorted().into_iter().map(|(path, _)| path)
    }

    /// The entry at `path`, if any.
    pub fn get(&self, path: &str) -> Option<&DataEntry> {
        self.entries.get(&normalise(path))
    }

    /// Number of entries, the root included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when only the root is there.
    pub fn is_empty(&self) -> bool {
        self.entries.len() == 1
    }

    fn add(&mut self, path: &str, entry: DataEntry) {
        let path = normalise(path);
        if path.is_empty() {
            // The root is a directory; nothing else can take its place.
            return;
        }
        self.add_parents(&path);
        self.entries.insert(path, entry);
    }

    fn add_parents(&mut self, path: &str) {
        let mut end = 0;
        while let Some(slash) = path[end..].find('/') {
            end += slash;
            self.entries
                .entry(path[..end].to_string())
                .or_insert(DataEntry::Dir);
            end += 1;
        }
    }

    /// Tree order: component by component, so `sub/`, `sub/c` come before `sub-y` and `sub.x`
    /// (dpkg-deb walks the tree with each directory's entries sorted).
    fn sorted(&self) -> Vec<(&str, &DataEntry)> {
        let mut all: Vec<(&str, &DataEntry)> =
            self.entries.iter().map(|(p, e)| (p.as_str(), e)).collect();
        all.sort_by(|a, b| a.0.split('/').cmp(b.0.split('/')));
        all
    }

    /// The data.tar order: tree order, symlinks moved to the end (dpkg-deb's build.c does so,
    /// "so we can make sure that symlinks will not appear before their target").
    fn archive_order(&self) -> Vec<(&str, &DataEntry)> {
        let (mut order, links): (Vec<_>, Vec<_>) = self
            .sorted()
            .into_iter()
            .partition(|(_, e)| !matches!(e, DataEntry::Symlink { .. }));
        order.extend(links);
        order
    }
}

/// `./a//b/` and `/a/b` both become `a/b`; `.` components go.
fn normalise(path: &str) -> String {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// A control.tar member besides `control` and `md5sums`: `postinst`, `prerm`, ...
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlMember {
    pub name: String,
    pub bytes: Vec<u8>,
    pub executable: bool,
}

/// Everything that goes into one .deb, except the control file (see [`write_deb`]).
#[derive(Debug, Clone)]
pub struct DebBuild<'a> {
    pub data: &'a DataTree,
    pub maintainer_scripts: Vec<ControlMember>,
    /// The mtime of every entry of both tars and of the ar members (SOURCE_DATE_EPOCH, or the
    /// newest source mtime: the caller decides).
    pub mtime: u64,
    pub compression: Compression,
}

/// What [`write_deb`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenDeb {
    pub path: PathBuf,
    /// The Installed-Size given to the control renderer, in KiB.
    pub installed_size_kib: u64,
    /// Size of the .deb in bytes.
    pub size: u64,
    /// Size of the uncompressed data.tar in bytes.
    pub data_tar_size: u64,
}

/// Why a .deb could not be written; each names the file or directory concerned.
#[derive(thiserror::Error, Debug)]
pub enum DebError {
    #[error("cannot read {path}: {source}")]
    ReadSource { path: PathBuf, source: io::Error },
    #[error("{path} is not a regular file")]
    NotAFile { path: PathBuf },
    #[error("{path} changed size while it was archived")]
    SourceChanged { path: PathBuf },
    #[error("cannot write in output directory {dir}: {source}")]
    OutputDir { dir: PathBuf, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("maintainer script name `{name}` is not allowed in control.tar")]
    BadControlMember { name: String },
    #[error("cannot render the control file: {0}")]
    Control(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

/// SOURCE_DATE_EPOCH, as reproducible-builds.org specifies it: unset or empty means none;
/// otherwise a whole number of seconds (blanks around it allowed), else `Err` with the value,
/// which the caller refuses ("the build process SHOULD exit with a non-zero error code").
pub fn source_date_epoch() -> Result<Option<u64>, String> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.is_empty() => v.trim().parse().map(Some).map_err(|_| v),
        _ => Ok(None),
    }
}

/// Writes `out` (by temp file in out's directory + rename; a failure leaves no file).
///
/// `render_control` gets the Installed-Size (KiB, as dpkg-gencontrol counts it: the data tree,
/// the package root and a `DEBIAN/` dir holding the maintainer scripts) and returns the full
/// `control` file text.
pub fn write_deb<E: Into<DebError>>(
    build: &DebBuild,
    render_control: impl FnOnce(u64) -> Result<String, E>,
    out: &Path,
) -> Result<WrittenDeb, DebError> {
    control::check_member_names(&build.maintainer_scripts)?;
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let temp = |suffix: &str| {
        PendingFile::create(out, suffix).map_err(|source| DebError::OutputDir {
            dir: dir.clone(),
            source,
        })
    };

    let data_tmp = temp(".data")?;
    let data = data::write_data_tar(build, data_tmp.file(), data_tmp.path())?;

    let installed_size_kib = data.installed_kib + control::installed_kib(&build.maintainer_scripts);
    let control_text = render_control(installed_size_kib).map_err(Into::into)?;
    let control_tar =
        control::control_tar(build, control_text.as_bytes(), &data.md5sums).map_err(|source| {
            DebError::Write {
                path: out.to_path_buf(),
                source,
            }
        })?;

    let deb_tmp = temp("")?;
    let ext = build.compression.effective_kind().extension();
    ar::write_ar(
        deb_tmp.file(),
        build.mtime,
        &control_tar,
        data_tmp.file(),
        ext,
    )
    .map_err(|source| DebError::Write {
        path: deb_tmp.path().to_path_buf(),
        source,
    })?;
    drop(data_tmp);
    let size = deb_tmp
        .file()
        .metadata()
        .map_err(|source| DebError::Write {
            path: deb_tmp.path().to_path_buf(),
            source,
        })?
        .len();
    deb_tmp.commit().map_err(|source| DebError::Write {
        path: out.to_path_buf(),
        source,
    })?;
    Ok(WrittenDeb {
        path: out.to_path_buf(),
        installed_size_kib,
        size,
        data_tar_size: data.tar_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_are_added_and_order_is_tree_order() {
        let mut t = DataTree::new();
        t.add_file_bytes("usr/src/a/sub-y", vec![], false);
        t.add_file_bytes("usr/src/a/sub/c", vec![], false);
        t.add_file_bytes("usr/src/a/sub.x", vec![], false);
        t.add_symlink("usr/src/a/link", "sub");
        t.add_dir("/usr/share/");
        let paths: Vec<&str> = t.paths().collect();
        assert_eq!(
            paths,
            [
                "",
                "usr",
                "usr/share",
                "usr/src",
                "usr/src/a",
                "usr/src/a/link",
                "usr/src/a/sub",
                "usr/src/a/sub/c",
                "usr/src/a/sub-y",
                "usr/src/a/sub.x"
            ]
        );
        let archive: Vec<&str> = t.archive_order().into_iter().map(|(p, _)| p).collect();
        assert_eq!(archive.last(), Some(&"usr/src/a/link"));
    }

    #[test]
    fn the_root_cannot_be_replaced() {
        let mut t = DataTree::new();
        t.add_file_bytes("./", vec![1], false);
        assert_eq!(t.get(""), Some(&DataEntry::Dir));
        assert!(t.is_empty());
    }
}
