//! dh_dkms-rs, the debhelper command: [`run`] in a source package's root, and its error type.
//!
//! For each package it acts on that has a `debian/<package>.dkms` (or is given a file on the
//! command line) it installs the dkms.conf as `usr/src/<name>-<version>/dkms.conf`, adds the
//! postinst/prerm bodies that dkms-mkdeb's packages carry (`templates/autoscripts/`) as
//! debhelper autoscripts, and puts dkms-mkdeb's Depends into `${misc:Depends}`.
//!
//! What it shares with every dh_* command is ported from debhelper's `Dh_Getopt.pm` and
//! `Dh_Lib.pm` (Debian 12, debhelper 13):
//! - [`getopt`]: the options (`-p -N -i -a -P -v --no-act -O`, `DH_OPTIONS`,
//!   `DH_INTERNAL_OPTIONS` from dh's override targets) and the packages they select;
//! - [`control`]: debian/control's packages, which of them this host builds;
//! - [`dh_lib`]: `pkgfile()`, `autoscript()`, `addsubstvar()`, the log dh reads;
//! - [`dkms`]: what Debian's `dh_dkms` does with them.
//!
//! Everything works under the root directory it is given, never the process's current one.
//! Paths in results, messages and errors are relative to that root, as debhelper prints them
//! (absolute only when given so, e.g. `-P /abs`).

pub mod control;
pub mod dh_lib;
pub mod dkms;
pub mod getopt;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::conf::ConfError;
use crate::templates::TemplateError;

pub use control::ControlError;
pub use getopt::{DhArgs, GetoptError, PackageOption};

/// The command's name, as written into the autoscript markers and messages.
pub const TOOL_NAME: &str = "dh_dkms-rs";

/// The placeholder dh_dkms replaces with the `-V` version in dkms.conf.
pub const MODULE_VERSION_PLACEHOLDER: &str = "#MODULE_VERSION#";

/// The environment debhelper commands read, captured once (tests pass their own).
#[derive(Debug, Clone, Default)]
pub struct DhEnv {
    vars: BTreeMap<String, String>,
}

impl DhEnv {
    /// The variables of this process that debhelper commands look at.
    pub fn from_process() -> Self {
        let names = [
            "DH_VERBOSE",
            "DH_NO_ACT",
            "DH_OPTIONS",
            "DH_INTERNAL_OPTIONS",
            "DH_INTERNAL_OVERRIDE",
            "DEB_BUILD_PROFILES",
            "DEB_HOST_ARCH",
            "DEB_HOST_ARCH_OS",
        ];
        let vars = names
            .iter()
            .filter_map(|n| std::env::var(n).ok().map(|v| (n.to_string(), v)))
            .collect();
        DhEnv { vars }
    }

    /// An environment with exactly these variables.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        DhEnv {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// A variable's value; debhelper treats set-but-empty as unset.
    fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// The writers dh_dkms-rs prints to (stdout, stderr: verbose lines and warnings), given by the
/// caller so that the tests capture them; what [`crate::console::Console`] is for the dkms
/// verbs, in debhelper's wording.
pub struct Streams<'w> {
    pub out: &'w mut dyn Write,
    pub err: &'w mut dyn Write,
}

impl Streams<'_> {
    /// Dh_Lib's `warning()`.
    fn warn(&mut self, message: &str) {
        let _ = writeln!(self.err, "{TOOL_NAME}: warning: {message}");
    }
}

/// What dh_dkms-rs did (or, with --no-act, would do) for one package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageDone {
    pub package: String,
    /// PACKAGE_NAME and PACKAGE_VERSION of the installed dkms.conf.
    pub module: String,
    pub module_version: String,
    /// Where dkms.conf went, relative to the root.
    pub dkms_conf: PathBuf,
    /// What went into `${misc:Depends}`.
    pub depends: String,
}

/// Why dh_dkms-rs stopped. Paths are relative to the source package root.
#[derive(Debug, thiserror::Error)]
pub enum DhError {
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error("{option} {name}: no such package in debian/control (known: {})", known.join(", "))]
    UnknownPackage {
        option: PackageOption,
        name: String,
        /// Every binary package of debian/control, in its order.
        known: Vec<String>,
    },
    #[error(
        "-P was given, but more than one package would be acted on ({})",
        packages.join(",")
    )]
    TmpdirWithManyPackages { packages: Vec<String> },
    #[error("{list}: names {name}, which is in neither . nor debian/tmp")]
    ListedConfMissing { list: PathBuf, name: String },
    #[error("{list}: names {count} files; it can name only one dkms.conf")]
    ListsMany { list: PathBuf, count: usize },
    #[error("{list}: names no file and is not a dkms.conf (no PACKAGE_NAME=)")]
    ListsNothing { list: PathBuf },
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Conf(#[from] ConfError),
    #[error(
        "{path}: PACKAGE_VERSION is {MODULE_VERSION_PLACEHOLDER}: pass -V VERSION (or -V for debian/changelog's version)"
    )]
    VersionPlaceholder { path: PathBuf },
    #[error("{path}: no changelog entry")]
    ChangelogEmpty { path: PathBuf },
    #[error("{path}: the first line has no (version)")]
    ChangelogWithoutVersion { path: PathBuf },
    #[error("dpkg-architecture: cannot run it: {source}")]
    ArchitectureNotRun { source: std::io::Error },
    #[error("dpkg-architecture: {stderr}")]
    ArchitectureFailed {
        /// What dpkg-architecture said, trimmed.
        stderr: String,
    },
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("{path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl DhError {
    /// dkms's code for a missing (4) or bad (8) dkms.conf; else 255, as debhelper's `error()`.
    pub fn exit_code(&self) -> i32 {
        match self {
            DhError::Conf(e) => e.exit_code(),
            _ => 255,
        }
    }
}

/// Run dh_dkms-rs in the source package whose top directory is `root`, with the command
/// line's `args` (see [`DhArgs::parse`]) and the environment `env`.
pub fn run(
    root: &Path,
    args: DhArgs,
    env: &DhEnv,
    streams: &mut Streams,
) -> Result<Vec<PackageDone>, DhError> {
    let control = control::SourceControl::read(root)?;
    let mut host = dh_lib::HostArch::new(env);
    let kinds = control::PackageKinds::of(&control, &mut host, env)?;
    let Some(options) = getopt::Options::gather(args, env, &kinds, streams)? else {
        return Ok(Vec::new());
    };
    let dh = dh_lib::Dh {
        root,
        verbose: options.verbose,
        no_act: options.no_act,
    };
    let done = dkms::dh_dkms(&dh, &options, control.main_package(), &mut host, streams)?;
    // Inside an override target dh asks each command to log itself (Dh_Lib's END), so that
    // `--remaining-packages` knows what ran.
    if env.get("DH_INTERNAL_OVERRIDE").is_some() && !dh.no_act {
        for package in &options.packages {
            dh_lib::write_log(&dh, package)?;
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_works_under_the_given_root_and_names_paths_relative_to_it() {
        let root = tempfile::tempdir().unwrap();
        let debian = root.path().join("debian");
        std::fs::create_dir(&debian).unwrap();
        std::fs::write(
            debian.join("control"),
            "Source: hello\n\nPackage: hello-dkms\nArchitecture: all\n",
        )
        .unwrap();
        let conf = include_str!("../../examples/hello/dkms.conf");
        std::fs::write(debian.join("hello-dkms.dkms"), conf).unwrap();
        let env = DhEnv::from_pairs([("DEB_HOST_ARCH", "amd64")]);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut streams = Streams {
            out: &mut out,
            err: &mut err,
        };
        let done = run(root.path(), DhArgs::default(), &env, &mut streams).unwrap();
        let dkms_conf = PathBuf::from("debian/hello-dkms/usr/src/hello-0.1/dkms.conf");
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].dkms_conf, dkms_conf);
        assert_eq!(
            std::fs::read_to_string(root.path().join(&dkms_conf)).unwrap(),
            conf
        );
        for written in ["hello-dkms.substvars", "hello-dkms.postinst.debhelper"] {
            assert!(debian.join(written).is_file(), "{written}");
        }
        assert!(!Path::new("debian/hello-dkms").exists());
    }
}
