//! mktarball / ldtarball: a module version as dkms's tarball (source and/or prebuilt
//! modules), written reproducibly and loaded without trusting its names.
//!
//! The layout is dkms 3.0.10's `make_tarball` (read `/usr/sbin/dkms`):
//!
//! ```text
//! ./dkms_main_tree/<kernel>/<arch>/module/*.ko    the built dir of each kernel (log/ too)
//! ./dkms_source_tree/...                          the source (not with --binaries-only)
//! ./dkms_binaries_only/{PACKAGE_NAME,PACKAGE_VERSION,dkms.conf}   only with --binaries-only
//! ```
//!
//! named `<m>-<v>-kernel<k>-<a>[-kernel<k>-<a>...].dkms.tar.gz`, `<m>-<v>-source-only.dkms.tar.gz`
//! or `<m>-<v>-manykernels.dkms.tar.gz`, in `<dkms_tree>/<m>/<v>/tarball/` unless `--archive`
//! names the file. Two deliberate differences: every kernel given is archived (dkms 3.0.10's
//! loop declares its paths `local -r`, so it archives the first kernel's directory for every
//! `-k`), and the bytes are reproducible (sorted entries, root/root, modes 0755/0644, one mtime:
//! SOURCE_DATE_EPOCH or the newest input; gzip with mtime 0).
//!
//! Loading follows `load_tarball`: the dkms.conf of `dkms_source_tree/` (else
//! `dkms_binaries_only/`) names the module; the source goes to `<source_tree>/<m>-<v>`, each
//! `dkms_main_tree/<k>/<a>` to `<dkms_tree>/<m>/<v>/<k>/<a>` (skipped when there, unless
//! `--force`), then the module is added. Entries are checked before anything is written: no
//! absolute names, no `..`, no symlink leading out of the archive, no entry under a symlink,
//! no devices; one refused entry refuses the whole tarball.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use crate::action::Session;
use crate::deb::tar::TarWriter;
use crate::deb::{Compression, CompressionKind, Compressor, DataEntry, DataTree, FileContent};
use crate::error::{ActionError, io_error};
use crate::kernel::Target;
use crate::tree::{ModuleVersion, Tree};

/// What a tarball carries besides the prebuilt modules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TarballContent {
    /// Source and the modules of the given kernels (dkms's default).
    Full,
    /// Source only, no kernel (`--source-only`).
    SourceOnly,
    /// Modules and dkms.conf, no source (`--binaries-only`).
    BinariesOnly,
}

/// Why a tarball could not be made or loaded; [`TarballError::exit_code`] is dkms's.
#[derive(Debug, thiserror::Error)]
pub enum TarballError {
    #[error("{path} does not exist")]
    Missing { path: PathBuf },
    #[error("refusing to load {archive}: entry {entry:?} {reason}")]
    Unsafe {
        archive: PathBuf,
        entry: String,
        reason: &'static str,
    },
    #[error("{archive} is not a valid DKMS tarball: {detail}")]
    Invalid { archive: PathBuf, detail: String },
    #[error("{module} is already added in {dir} (use --force to load the tarball over it)")]
    AlreadyAdded { module: ModuleVersion, dir: PathBuf },
    #[error(
        "no modules built for {target} in {dir}: modules must be built before they are archived"
    )]
    NotBuilt { target: Target, dir: PathBuf },
    #[error("--binaries-only and --source-only cannot be given together")]
    BothOnly,
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: io::Error },
}

impl TarballError {
    /// dkms 3.0.10's exit codes: 2 archive missing, 7 not a DKMS tarball, 8 already added or
    /// both --*-only options, 6 nothing built or the tarball not written, 9 no write access.
    pub fn exit_code(&self) -> i32 {
        match self {
            TarballError::Missing { .. } => 2,
            TarballError::Unsafe { .. } | TarballError::Invalid { .. } => 7,
            TarballError::AlreadyAdded { .. } | TarballError::BothOnly => 8,
            TarballError::NotBuilt { .. } => 6,
            TarballError::Write { source, .. }
                if source.kind() == io::ErrorKind::PermissionDenied =>
            {
                9
            }
            TarballError::Write { .. } => 6,
            TarballError::Read { .. } => 1,
        }
    }
}

impl From<TarballError> for ActionError {
    fn from(e: TarballError) -> Self {
        ActionError::Tarball(Box::new(e))
    }
}

/// What goes into a tarball: the archive's tree and the newest mtime among its inputs.
#[derive(Debug, Clone)]
pub struct TarballTree {
    pub data: DataTree,
    /// Newest mtime of the files and symlinks read (the default entry mtime).
    pub newest: u64,
}

/// `dkms_main_tree/<k>/<a>` of each target (all of `<k>/<a>`, or only `module/` when
/// `modules_only`), plus `dkms_source_tree/` or `dkms_binaries_only/` as `content` says.
/// `conf` is the dkms.conf copied for `--binaries-only` (`-c`, else the source's).
pub fn collect(
    tree: &Tree,
    mv: &ModuleVersion,
    targets: &[Target],
    content: TarballContent,
    conf: &Path,
    modules_only: bool,
) -> Result<TarballTree, TarballError> {
    let mut out = TarballTree {
        data: DataTree::new(),
        newest: 0,
    };
    out.data.add_dir("dkms_main_tree");
    if content != TarballContent::SourceOnly {
        for target in targets {
            let built = tree.built_dir(mv, target);
            if !built.is_dir() {
                return Err(TarballError::NotBuilt {
                    target: target.clone(),
                    dir: built,
                });
            }
            let prefix = format!("dkms_main_tree/{}/{}", target.kernel, target.arch);
            if modules_only {
                add_dir_tree(&mut out, &built.join("module"), &format!("{prefix}/module"))?;
            } else {
                add_dir_tree(&mut out, &built, &prefix)?;
            }
        }
    }
    match content {
        TarballContent::BinariesOnly => {
            let dir = "dkms_binaries_only";
            out.data.add_dir(dir);
            out.data.add_file_bytes(
                &format!("{dir}/PACKAGE_NAME"),
                format!("{}\n", mv.module).into_bytes(),
                false,
            );
            out.data.add_file_bytes(
                &format!("{dir}/PACKAGE_VERSION"),
                format!("{}\n", mv.version).into_bytes(),
                false,
            );
            let meta = std::fs::metadata(conf).map_err(|source| TarballError::Read {
                path: conf.to_path_buf(),
                source,
            })?;
            out.newest = out.newest.max(meta.mtime().max(0) as u64);
            out.data
                .add_file_from_disk(&format!("{dir}/dkms.conf"), conf.to_path_buf(), false);
        }
        TarballContent::Full | TarballContent::SourceOnly => {
            // dkms copies `$source_dir/*`: the top level's dot files stay behind.
            let source = tree.source_dir(mv);
            out.data.add_dir("dkms_source_tree");
            let mut names: Vec<_> = read_dir_names(&source)?
                .into_iter()
                .filter(|n| !n.starts_with('.'))
                .collect();
            names.sort();
            for name in names {
                add_dir_tree(
                    &mut out,
                    &source.join(&name),
                    &format!("dkms_source_tree/{name}"),
                )?;
            }
        }
    }
    Ok(out)
}

fn read_dir_names(dir: &Path) -> Result<Vec<String>, TarballError> {
    let read = |source| TarballError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read)? {
        let entry = entry.map_err(read)?;
        match entry.file_name().into_string() {
            Ok(n) => names.push(n),
            Err(_) => {
                return Err(TarballError::Read {
                    path: entry.path(),
                    source: io::Error::new(io::ErrorKind::InvalidData, "file name is not UTF-8"),
                });
            }
        }
    }
    Ok(names)
}

/// `path` (a file, symlink or directory, not followed) and everything under it, as `prefix`.
fn add_dir_tree(out: &mut TarballTree, path: &Path, prefix: &str) -> Result<(), TarballError> {
    for entry in walkdir::WalkDir::new(path).follow_links(false) {
        let entry = entry.map_err(|e| TarballError::Read {
            path: e.path().unwrap_or(path).to_path_buf(),
            source: e.into(),
        })?;
        let rel = entry.path().strip_prefix(path).unwrap_or(entry.path());
        let Some(rel) = rel.to_str() else {
            return Err(TarballError::Read {
                path: entry.path().to_path_buf(),
                source: io::Error::new(io::ErrorKind::InvalidData, "file name is not UTF-8"),
            });
        };
        let name = if rel.is_empty() {
            prefix.to_string()
        } else {
            format!("{prefix}/{rel}")
        };
        let meta = entry.metadata().map_err(|e| TarballError::Read {
            path: entry.path().to_path_buf(),
            source: e.into(),
        })?;
        let ft = meta.file_type();
        if ft.is_dir() {
            out.data.add_dir(&name);
            continue;
        }
        out.newest = out.newest.max(meta.mtime().max(0) as u64);
        if ft.is_symlink() {
            let target = std::fs::read_link(entry.path()).map_err(|source| TarballError::Read {
                path: entry.path().to_path_buf(),
                source,
            })?;
            out.data.add_symlink(&name, &target.to_string_lossy());
        } else if ft.is_file() {
            let executable = meta.permissions().mode() & 0o111 != 0;
            out.data
                .add_file_from_disk(&name, entry.path().to_path_buf(), executable);
        }
        // Sockets, fifos and devices: cp -r would recreate them; a module tree has none.
    }
    Ok(())
}

/// dkms's default file name: `<m>-<v>-kernel<k>-<a>...`, `-source-only`, or `-manykernels`
/// when the kernel list is 200 characters or more (dkms counts `wc -m` of it plus a newline).
pub fn default_name(mv: &ModuleVersion, targets: &[Target], content: TarballContent) -> String {
    let list = if content == TarballContent::SourceOnly {
        "source-only".to_string()
    } else {
        let list = targets
            .iter()
            .map(|t| format!("kernel{}-{}", t.kernel, t.arch))
            .collect::<Vec<_>>()
            .join("-");
        if list.chars().count() + 1 > 200 {
            "manykernels".to_string()
        } else {
            list
        }
    };
    format!("{}-{}-{list}.dkms.tar.gz", mv.module, mv.version)
}

/// The compression `tar -a` picks from the file name (gzip for `.tar.gz`/`.tgz`, xz, zstd,
/// none for `.tar`); gzip for anything else, as dkms's names all end in `.tar.gz`.
fn compression_for(path: &Path) -> Compression {
    let name = path.to_string_lossy();
    let kind = if name.ends_with(".tar.xz") || name.ends_with(".txz") {
        CompressionKind::Xz
    } else if name.ends_with(".tar.zst") || name.ends_with(".tzst") {
        CompressionKind::Zstd
    } else if name.ends_with(".tar") {
        CompressionKind::None
    } else {
        CompressionKind::Gzip
    };
    Compression {
        kind,
        level: None,
        threads: 0,
    }
}

/// Write `tree` to `out` (temp file next to it, then rename), every entry with `mtime`.
pub fn write(tree: &DataTree, out: &Path, mtime: u64) -> Result<(), TarballError> {
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let werr = |source| TarballError::Write {
        path: out.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(|source| TarballError::Write {
        path: dir.clone(),
        source,
    })?;
    let temp = tempfile::Builder::new()
        .prefix(".dkms-tarball.")
        .permissions(std::fs::Permissions::from_mode(0o644))
        .tempfile_in(&dir)
        .map_err(|source| TarballError::Write {
            path: dir.clone(),
            source,
        })?;
    let compressor = Compressor::new(BufWriter::new(temp.as_file()), &compression_for(out), None)
        .map_err(werr)?;
    let mut tar = TarWriter::new(compressor);
    let mut links = Vec::new();
    for path in tree.paths() {
        let Some(entry) = tree.get(path) else {
            continue;
        };
        let name = format!("./{path}");
        match entry {
            DataEntry::Dir if path.is_empty() => tar.dir("./", 0o755, mtime).map_err(werr)?,
            DataEntry::Dir => tar.dir(&format!("{name}/"), 0o755, mtime).map_err(werr)?,
            DataEntry::File {
                content,
                executable,
            } => {
                let mode = if *executable { 0o755 } else { 0o644 };
                match content {
                    FileContent::Bytes(bytes) => {
                        tar.file_bytes(&name, mode, bytes, mtime).map_err(werr)?
                    }
                    FileContent::Disk(source) => {
                        copy_file(&mut tar, &name, mode, source, mtime, out)?
                    }
                }
            }
            // After their targets, as dpkg-deb orders them.
            DataEntry::Symlink { target } => links.push((name, target.clone())),
        }
    }
    for (name, target) in links {
        tar.symlink(&name, &target, mtime).map_err(werr)?;
    }
    let compressor = tar.finish().map_err(werr)?;
    let buf = compressor.finish().map_err(werr)?;
    buf.into_inner()
        .map_err(|e| werr(e.into_error()))?
        .sync_all()
        .map_err(werr)?;
    temp.persist(out).map_err(|e| werr(e.error))?;
    Ok(())
}

/// One file from disk into the tar, streamed; a file that changes size meanwhile is an error.
fn copy_file<W: Write>(
    tar: &mut TarWriter<W>,
    name: &str,
    mode: u32,
    source: &Path,
    mtime: u64,
    out: &Path,
) -> Result<(), TarballError> {
    let rerr = |e| TarballError::Read {
        path: source.to_path_buf(),
        source: e,
    };
    let werr = |e| TarballError::Write {
        path: out.to_path_buf(),
        source: e,
    };
    let mut file = File::open(source).map_err(rerr)?;
    let size = file.metadata().map_err(rerr)?.len();
    tar.file_header(name, mode, size, mtime).map_err(werr)?;
    let mut left = size;
    let mut buf = vec![0u8; 64 << 10];
    while left > 0 {
        let n = file.read(&mut buf).map_err(rerr)?;
        if n == 0 {
            break;
        }
        let n = n.min(usize::try_from(left).unwrap_or(usize::MAX));
        tar.content(&buf[..n]).map_err(werr)?;
        left -= n as u64;
    }
    if left != 0 || file.read(&mut buf).map_err(rerr)? != 0 {
        return Err(rerr(io::Error::other(
            "the file changed size while it was archived",
        )));
    }
    tar.end_content().map_err(werr)
}

/// An archive name made safe: relative, no `..`, `./` and empty components dropped.
fn safe_name(raw: &[u8]) -> Result<PathBuf, &'static str> {
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
fn link_stays_inside(name: &Path, target: &Path) -> bool {
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
fn copy_merge(from: &Path, to: &Path) -> Result<(), TarballError> {
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
        let temp = dest.with_file_name(format!(
            ".{}.dkms-rs-tmp",
            dest.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        ));
        let _ = std::fs::remove_file(&temp);
        if ft.is_symlink() {
            let target = std::fs::read_link(entry.path()).map_err(|source| TarballError::Read {
                path: entry.path().to_path_buf(),
                source,
            })?;
            std::os::unix::fs::symlink(target, &temp).map_err(werr)?;
        } else {
            std::fs::copy(entry.path(), &temp).map_err(werr)?;
        }
        if dest.is_dir() && !dest.is_symlink() {
            let _ = std::fs::remove_file(&temp);
            return Err(TarballError::Write {
                path: dest.clone(),
                source: io::Error::new(io::ErrorKind::IsADirectory, "a directory is in the way"),
            });
        }
        std::fs::rename(&temp, &dest).map_err(werr)?;
    }
    Ok(())
}

/// Where a loaded tarball's dkms.conf was: which kind of tarball it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loc {
    SourceTree,
    BinariesOnly,
}

impl Loc {
    fn dir(self) -> &'static str {
        match self {
            Loc::SourceTree => "dkms_source_tree",
            Loc::BinariesOnly => "dkms_binaries_only",
        }
    }
}

impl Session {
    /// `mktarball`: the module version (built for `targets`, unless source-only) as a dkms
    /// tarball at `archive` or `<dkms_tree>/<m>/<v>/tarball/<default name>`; returns its path.
    /// `mtime` is every entry's (None: SOURCE_DATE_EPOCH, else the newest input file).
    pub fn mktarball(
        &self,
        mv: &ModuleVersion,
        targets: &[Target],
        content: TarballContent,
        archive: Option<&Path>,
        mtime: Option<u64>,
    ) -> Result<PathBuf, ActionError> {
        if !self.tree.is_added(mv) {
            return Err(ActionError::NotAdded {
                module: mv.clone(),
                tree: self.tree.dkms_tree.clone(),
            });
        }
        // dkms reads the conf first, for the first kernel (it dies with 8 on a bad one).
        let conf_path = self
            .conf_override
            .clone()
            .unwrap_or_else(|| self.tree.source_dir(mv).join("dkms.conf"));
        if let Some(first) = targets.first() {
            self.read_conf(mv, first)?;
        }
        if content != TarballContent::SourceOnly {
            for t in targets {
                self.console.say(&format!(
                    "Marking modules for {} ({}) for archiving...",
                    t.kernel, t.arch
                ));
            }
        }
        if content == TarballContent::BinariesOnly {
            self.console
                .say("\nCreating tarball structure to specifically accommodate binaries.");
        } else {
            self.console.say(&format!(
                "\nMarking {} for archiving...",
                self.tree.source_dir(mv).display()
            ));
        }
        let collected = collect(&self.tree, mv, targets, content, &conf_path, false)?;
        let out = match archive {
            Some(a) if a.parent().is_some_and(|p| !p.as_os_str().is_empty()) => a.to_path_buf(),
            Some(a) => self.tree.version_dir(mv).join("tarball").join(a),
            None => self
                .tree
                .version_dir(mv)
                .join("tarball")
                .join(default_name(mv, targets, content)),
        };
        let mtime = match mtime {
            Some(t) => t,
            None => source_date_epoch()?.unwrap_or(collected.newest),
        };
        self.console
            .say(&format!("\nTarball location: {}", out.display()));
        write(&collected.data, &out, mtime)?;
        Ok(out)
    }

    /// `ldtarball`: load a dkms tarball (see the module docs); returns the module loaded.
    /// `target` is the kernel dkms.conf is read for (dkms: the first `-k`, else the running one).
    /// A binaries-only tarball whose source is not in the source tree leaves a stub
    /// `<m>/<v>/source/dkms.conf` and ends with status 1 without adding, as dkms 3.0.10 does.
    pub fn ldtarball(&self, archive: &Path, target: &Target) -> Result<ModuleVersion, ActionError> {
        if !archive.exists() {
            return Err(TarballError::Missing {
                path: archive.to_path_buf(),
            }
            .into());
        }
        let tree = &self.tree;
        std::fs::create_dir_all(&tree.dkms_tree).map_err(|e| io_error(&tree.dkms_tree, e))?;
        // In the dkms tree (same file system: prebuilt dirs move into place by rename), and a
        // dot name that dkms's `$dkms_tree/*` globs do not see.
        let temp = tempfile::Builder::new()
            .prefix(".ldtarball.")
            .tempdir_in(&tree.dkms_tree)
            .map_err(|e| io_error(&tree.dkms_tree, e))?;
        extract(archive, temp.path())?;

        let mut found = None;
        for loc in [Loc::SourceTree, Loc::BinariesOnly] {
            let conf = temp.path().join(loc.dir()).join("dkms.conf");
            if conf.is_file() {
                let conf = crate::action::read_conf_at(tree, &conf, target, None)?;
                found = Some((
                    loc,
                    ModuleVersion {
                        module: conf.package_name,
                        version: conf.package_version,
                    },
                ));
                break;
            }
        }
        let Some((loc, mv)) = found else {
            return Err(TarballError::Invalid {
                archive: archive.to_path_buf(),
                detail: "no dkms.conf in dkms_source_tree/ or dkms_binaries_only/".into(),
            }
            .into());
        };
        if tree.is_added(&mv) && !self.force {
            return Err(TarballError::AlreadyAdded {
                dir: tree.version_dir(&mv),
                module: mv,
            }
            .into());
        }
        self.console.say(&format!(
            "\nLoading tarball for {}-{}",
            mv.module, mv.version
        ));
        let source_dest = tree.source_tree_dir(&mv);
        match loc {
            Loc::SourceTree => {
                if self.force {
                    crate::build::remove_dir_if_exists(&source_dest)?;
                }
                std::fs::create_dir_all(&tree.source_tree)
                    .map_err(|e| io_error(&tree.source_tree, e))?;
                copy_merge(&temp.path().join(loc.dir()), &source_dest)?;
            }
            Loc::BinariesOnly if !source_dest.is_dir() => {
                let stub = tree.source_dir(&mv);
                self.console.say(&format!("Creating {}", stub.display()));
                std::fs::create_dir_all(&stub).map_err(|e| io_error(&stub, e))?;
                self.console
                    .say(&format!("Copying dkms.conf to {} ...", stub.display()));
                copy_merge(
                    &temp.path().join(loc.dir()).join("dkms.conf"),
                    &stub.join("dkms.conf"),
                )?;
            }
            Loc::BinariesOnly => {}
        }

        let main = temp.path().join("dkms_main_tree");
        let kernels = if main.is_dir() {
            read_dir_names(&main)?
        } else {
            Vec::new()
        };
        let mut prebuilt = Vec::new();
        for k in kernels {
            if !main.join(&k).is_dir() {
                continue;
            }
            for a in read_dir_names(&main.join(&k))? {
                if main.join(&k).join(&a).is_dir() {
                    prebuilt.push((k.clone(), a));
                }
            }
        }
        prebuilt.sort();
        for (k, a) in prebuilt {
            let target = Target {
                kernel: crate::kernel::KernelRelease(k.clone()),
                arch: a.clone(),
            };
            let dest = tree.built_dir(&mv, &target);
            if dest.exists() && !self.force {
                self.console
                    .warn(&format!("{} already exists. Skipping...", dest.display()));
                continue;
            }
            self.console.say(&format!("Loading {}...", dest.display()));
            crate::build::remove_dir_if_exists(&dest)?;
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).map_err(|e| io_error(parent, e))?;
            }
            let from = main.join(&k).join(&a);
            std::fs::rename(&from, &dest).map_err(|e| io_error(&dest, e))?;
        }

        if loc == Loc::BinariesOnly && !source_dest.is_dir() {
            // dkms 3.0.10: `load_tarball` returns false here, so `add_module` is not run and
            // dkms exits 1 without a word; the stub makes the module "added" all the same.
            self.console.warn(&format!(
                "{mv} has no source in {}: loaded as binaries only, it cannot be built for other kernels",
                source_dest.display()
            ));
            return Err(ActionError::Reported { code: 1 });
        }
        self.add(&mv, target)?;
        Ok(mv)
    }
}

/// SOURCE_DATE_EPOCH (reproducible-builds.org): whole seconds, else an error naming it.
fn source_date_epoch() -> Result<Option<u64>, ActionError> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().map(Some).map_err(|_| {
            ActionError::Usage(format!(
                "SOURCE_DATE_EPOCH {v:?} is not a whole number of seconds"
            ))
        }),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_made_safe_or_refused() {
        assert_eq!(safe_name(b"./a/b/").unwrap(), PathBuf::from("a/b"));
        assert_eq!(safe_name(b"./").unwrap(), PathBuf::new());
        assert!(safe_name(b"/etc/passwd").is_err());
        assert!(safe_name(b"./a/../../x").is_err());
        assert!(safe_name(b"..").is_err());
    }

    #[test]
    fn links_must_stay_inside() {
        let inside = |n: &str, t: &str| link_stays_inside(Path::new(n), Path::new(t));
        assert!(inside("a/b/l", "../c"));
        assert!(inside("a/l", "../c"));
        assert!(!inside("a/l", "../../c"));
        assert!(!inside("l", "/etc/passwd"));
        assert!(!inside("l", ".."));
        assert!(inside("a/l", "./x/../y"));
    }

    #[test]
    fn default_names_are_dkms_names() {
        let mv = ModuleVersion {
            module: "hello".into(),
            version: "0.1".into(),
        };
        let t = |k: &str| Target {
            kernel: crate::kernel::KernelRelease(k.into()),
            arch: "x86_64".into(),
        };
        assert_eq!(
            default_name(&mv, &[t("6.1.0-999-amd64")], TarballContent::Full),
            "hello-0.1-kernel6.1.0-999-amd64-x86_64.dkms.tar.gz"
        );
        assert_eq!(
            default_name(&mv, &[t("6.1.0-999-amd64")], TarballContent::SourceOnly),
            "hello-0.1-source-only.dkms.tar.gz"
        );
        let many: Vec<Target> = (0..10).map(|i| t(&format!("6.1.0-{i}-amd64"))).collect();
        assert_eq!(
            default_name(&mv, &many, TarballContent::Full),
            "hello-0.1-manykernels.dkms.tar.gz"
        );
    }
}
