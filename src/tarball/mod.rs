//! dkms's tarball of a module version (source and/or prebuilt modules): its layout and names,
//! what goes in it; written reproducibly ([`write()`]) and loaded without trusting its names
//! ([`extract()`]). The verbs (mktarball, ldtarball) are in `action`.
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
//! `--force`), then the module is added. Nothing is loaded before the whole tarball passed
//! (one refused entry refuses it, exit 7): no absolute names, no `..`, no entry under a
//! symlink, no devices or fifos, hard links only to a file extracted before them (loaded as a
//! copy); every symlink resolved, link after link as the kernel resolves it, beneath the
//! directory it is loaded as (openat2's `RESOLVE_BENEATH`, see `resolve`); PACKAGE_NAME and
//! PACKAGE_VERSION are checked where every dkms.conf is read (`conf`). The merge into `<source_tree>/<m>-<v>` and the moves into the
//! dkms tree never follow a symlink already there.

pub mod extract;
mod resolve;
pub mod write;

pub use extract::{copy_merge, extract};
pub use resolve::Escape;
pub use write::write;

use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::deb::DataTree;
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
        reason: Refusal,
    },
    #[error("{archive} is not a valid DKMS tarball: {detail}")]
    Invalid { archive: PathBuf, detail: String },
    #[error("{module} is already added in {dir} (use --force to load the tarball over it)")]
    AlreadyAdded { module: ModuleVersion, dir: PathBuf },
    #[error(
        "no modules built for {target} in {dir}: modules must be built before they are archived"
    )]
    NotBuilt { target: Target, dir: PathBuf },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: io::Error },
}

/// Why one entry makes a tarball unsafe to load (the end of [`TarballError::Unsafe`]'s line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("is not UTF-8")]
    NotUtf8,
    #[error("is an absolute path")]
    Absolute,
    #[error("contains `..`")]
    DotDot,
    #[error("names the extraction directory itself")]
    ExtractionDir,
    #[error("lies under a symlink")]
    UnderSymlink,
    #[error("replaces a directory")]
    ReplacesDir,
    #[error("replaces a file with a directory")]
    ReplacesFile,
    #[error("is a symlink without a target")]
    SymlinkWithoutTarget,
    #[error("is a symlink that does not stay inside {root}: {escape}")]
    SymlinkOut { root: String, escape: Escape },
    #[error("is a symlink where a dkms tarball has a directory")]
    SymlinkForLayoutDir,
    #[error("is a hard link without a target")]
    HardLinkWithoutTarget,
    #[error("is a hard link out of the archive")]
    HardLinkOut,
    #[error("is a hard link to no regular file extracted before it (not through a symlink)")]
    HardLinkToNoFile,
    #[error("is not a file, directory or symlink (devices and fifos are not loaded)")]
    NotFileDirOrSymlink,
    #[error("would be merged through the symlink {link} (links already there are not followed)")]
    MergeThroughSymlink { link: PathBuf },
    #[error("would make the symlink {link} lead out of {root}: {escape}")]
    RedirectsSymlink {
        link: PathBuf,
        root: PathBuf,
        escape: Escape,
    },
    #[error("would be moved through the symlink {link} (links already there are not followed)")]
    MoveThroughSymlink { link: PathBuf },
    #[error("is named as the dkms tree's own {name:?} directory, not as a kernel")]
    TreeDirName { name: String },
}

impl TarballError {
    /// dkms 3.0.10's exit codes: 2 archive missing, 7 not a DKMS tarball, 8 already added,
    /// 6 nothing built or the tarball not written, 9 no write access.
    pub fn exit_code(&self) -> i32 {
        match self {
            TarballError::Missing { .. } => 2,
            TarballError::Unsafe { .. } | TarballError::Invalid { .. } => 7,
            TarballError::AlreadyAdded { .. } => 8,
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

pub fn read_dir_names(dir: &Path) -> Result<Vec<String>, TarballError> {
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

#[cfg(test)]
mod tests {
    use super::extract::{link_root, safe_name};
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
    fn links_stay_inside_what_they_are_loaded_as() {
        let root = |rel: &str| link_root(Path::new(rel));
        assert_eq!(
            root("dkms_source_tree/a/l"),
            Some("dkms_source_tree".into())
        );
        assert_eq!(
            root("dkms_binaries_only/dkms.conf"),
            Some("dkms_binaries_only".into())
        );
        assert_eq!(
            root("dkms_main_tree/6.1.0-999-amd64/an-arch/module/l"),
            Some("dkms_main_tree/6.1.0-999-amd64/an-arch".into())
        );
        assert_eq!(root("elsewhere/l"), Some(PathBuf::new()));
        for layout in [
            "dkms_source_tree",
            "dkms_binaries_only",
            "dkms_main_tree",
            "dkms_main_tree/k",
            "dkms_main_tree/k/a",
        ] {
            assert_eq!(root(layout), None, "{layout}");
        }
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
