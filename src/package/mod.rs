//! mkdeb: a module source tree -> `<name>-dkms_<version>_all.deb`, the package `dkms mkdeb` made
//! (with `-k`, carrying prebuilt modules: [`mkdeb_with_prebuilt`]); mkbmdeb: built modules ->
//! `<name>-modules-<kernel>_<version>_<arch>.deb` ([`mkbmdeb`]); mkdsc: the Debian source
//! package that builds the -dkms package with debhelper ([`mkdsc`]).
//!
//! The package holds the source under `/usr/src/<name>-<version>/` (where dkms looks for it),
//! a copyright file and a changelog, and maintainer scripts that hand the module to dkms-rs or,
//! on a machine without it, to Debian's dkms (see `templates/postinst`, `templates/prerm`).
//! Everything the package says is rendered from `templates/`; every byte is reproducible.

mod declared;
mod dkms_deb;
mod dsc;
mod in_tree;
mod maker;
mod modules_deb;
mod policy;
mod prebuilt;
mod source;

pub use declared::{
    CONTROL_FILE, Declared, DeclaredOptions, InstallFile, OTHER_FIELDS, RELATION_FIELDS,
};
pub use dkms_deb::{mkdeb, mkdeb_with_prebuilt};
pub use dsc::{BUILD_DEPENDS, STANDARDS_VERSION, WrittenDsc, mkdsc};
pub use in_tree::{mkbmdeb_in_tree, mkdeb_in_tree, mkdeb_in_tree_prebuilt, mkdsc_in_tree};
pub use modules_deb::mkbmdeb;
pub use policy::{
    COMMON_LICENSES, PackageIdentity, check_version, dkms_depends, maintainer_from_env,
};
pub use prebuilt::{Prebuilt, build_prebuilt, prebuilt_scratch, reproducible_kcflags};

use std::io::Write;
use std::path::PathBuf;

use crate::conf::ConfError;
use crate::deb::{self, Compression, DebError};
use crate::templates::TemplateError;
use crate::tree::ModuleVersion;

/// Everything `dkms-mkdeb` can be told about the package to make.
#[derive(Debug, Clone)]
pub struct MkdebOptions {
    /// The module source: a directory holding dkms.conf.
    pub source_dir: PathBuf,
    /// Where the .deb is written.
    pub output_dir: PathBuf,
    /// `Name <email>`; when `None`, taken from the environment as Debian's tools do.
    pub maintainer: Option<String>,
    /// Debian revision appended to PACKAGE_VERSION (`0.1` + `1` -> `0.1-1`).
    pub revision: Option<String>,
    /// Debian bug numbers the changelog entry closes (`Closes: #N`): the ITP of a package
    /// meant for the archive.
    pub closes: Vec<String>,
    /// Description: first line the synopsis, the rest the extended description.
    pub description: Option<String>,
    /// Binary package name; default `<PACKAGE_NAME>-dkms`.
    pub package_name: Option<String>,
    /// A directory of templates overriding the built-in ones file by file.
    pub templates: Option<PathBuf>,
    /// Short license name for the generated copyright file (one of [`COMMON_LICENSES`]).
    pub license: String,
    /// A copyright file to ship as it is instead of the generated one.
    pub copyright_file: Option<PathBuf>,
    pub compression: Compression,
    /// Every entry's mtime; `None`: SOURCE_DATE_EPOCH from the environment, else the newest
    /// mtime of the source files.
    pub source_date_epoch: Option<u64>,
    /// `dkms-rs --no-exec mkdeb`: a dkms.conf that needs bash is refused, not run.
    pub no_exec: bool,
    /// Control fields and files outside /usr/src given as options (over `dkms-mkdeb.control`).
    pub declared: DeclaredOptions,
}

/// What a packager sets about a package: a dkms-mkdeb option, or the environment. The binary
/// names the option that sets it; the library names the setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    Maintainer,
    License,
    PackageName,
    Revision,
    /// A bug the changelog entry closes.
    Closes,
    /// The kernels of the prebuilt modules.
    Kernels,
    SourceDateEpoch,
    /// A control field (as debian/control names it: `Recommends`, `Multi-Arch`).
    Field(&'static str),
    /// A file to install outside /usr/src.
    Install,
}

impl std::fmt::Display for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Setting::Maintainer => "maintainer",
            Setting::License => "license",
            Setting::PackageName => "package name",
            Setting::Revision => "revision",
            Setting::Closes => "bug to close",
            Setting::Kernels => "kernel",
            Setting::SourceDateEpoch => "SOURCE_DATE_EPOCH",
            Setting::Field(name) => name,
            Setting::Install => "file to install",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error(transparent)]
    Conf(#[from] ConfError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Deb(#[from] DebError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {field} {value:?} {reason}")]
    BadField {
        path: PathBuf,
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error("{setting} {value:?}: {reason}")]
    BadOption {
        setting: Setting,
        value: String,
        reason: String,
    },
    /// A bad line of `dkms-mkdeb.control` (1-based).
    #[error("{}:{line}: {reason}", path.display())]
    ControlFile {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{path}: {reason}")]
    Unsupported { path: PathBuf, reason: &'static str },
    /// A source file whose name dpkg cannot carry; the name is shown quoted and escaped, so
    /// the message stays one line.
    #[error("{path:?}: {reason}")]
    UnpackableName { path: PathBuf, reason: &'static str },
    #[error(
        "no maintainer: pass --maintainer 'Name <email>' or set DEBFULLNAME and DEBEMAIL (as for dch)"
    )]
    NoMaintainer,
    #[error(transparent)]
    Tarball(#[from] crate::tarball::TarballError),
    /// The dkms core failed: building the prebuilt modules (the make.log path is in the
    /// message), or the module is not in the tree.
    #[error(transparent)]
    Action(Box<crate::error::ActionError>),
    #[error("building {module} for the prebuilt modules failed (status {code}); see {}", log.display())]
    BuildFailed {
        module: ModuleVersion,
        code: i32,
        log: PathBuf,
    },
}

impl PackageError {
    /// The exit code dkms uses for the same failure (4 no dkms.conf, 8 bad dkms.conf), else 1.
    pub fn exit_code(&self) -> i32 {
        match self {
            PackageError::Conf(e) => e.exit_code(),
            PackageError::BadField { .. } | PackageError::ControlFile { .. } => 8,
            PackageError::Tarball(e) => e.exit_code(),
            PackageError::Action(e) => e.exit_code(),
            PackageError::BuildFailed { code, .. } => *code,
            _ => 1,
        }
    }
}

/// [`deb::source_date_epoch`], a bad value refused as a bad option.
pub(super) fn source_date_epoch_from_env() -> Result<Option<u64>, PackageError> {
    deb::source_date_epoch().map_err(|value| PackageError::BadOption {
        setting: Setting::SourceDateEpoch,
        value,
        reason: "is not a whole number of seconds".into(),
    })
}

/// gzip as `gzip -9n` does it: best compression, no name, mtime 0 (lintian
/// `changelog-not-compressed-with-max-compression`, `package-contains-timestamped-gzip`).
pub(super) fn gzip_max(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(3)
        .write(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(bytes);
    enc.finish().unwrap_or_default()
}
