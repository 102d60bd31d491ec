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
//! - [`dkms`]: what Debian's `dh_dkms` does with them;
//! - [`rules`]: debian/rules's targets of Debian's `dh_dkms` (overrides, hooks), which
//!   [`run_as`] runs as dh would, and its calls of `dh_dkms` by name.
//!
//! Everything works under the root directory it is given, never the process's current one.
//! Paths in results, messages and errors are relative to that root, as debhelper prints them
//! (absolute only when given so, e.g. `-P /abs`).

pub mod control;
pub mod dh_lib;
pub mod dkms;
pub mod getopt;
pub mod rules;

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
    #[error("{path}: cannot ask make for its targets: {source}")]
    RulesNotRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("debian/rules {target}: cannot run it: {source}")]
    RulesTargetNotRun {
        target: String,
        source: std::io::Error,
    },
    #[error("debian/rules {target} failed ({status})")]
    RulesTargetFailed {
        target: String,
        status: std::process::ExitStatus,
    },
    #[error(
        "{package}: no dkms.conf: no debian/{package}.dkms{}, no FILE argument, none under {}/usr/src/",
        if *main { " or debian/dkms" } else { "" },
        tmpdir.display()
    )]
    NoDkmsConf {
        package: String,
        tmpdir: PathBuf,
        /// The first package of debian/control, for which debian/dkms counts too.
        main: bool,
    },
    #[error("{package}: no dkms.conf under {}/usr/src/ after debian/rules {target}", tmpdir.display())]
    NoDkmsConfAfter {
        package: String,
        tmpdir: PathBuf,
        /// The override target that covered the package.
        target: String,
    },
    #[error(
        "{path}: Debian's dh_dkms already added its scripts for {package} ({calls}): call dh_dkms-rs there instead"
    )]
    DebianDhDkmsRan {
        path: PathBuf,
        package: String,
        /// Where debian/rules calls dh_dkms by name, or that it was run otherwise.
        calls: String,
    },
}

impl DhError {
    /// dkms's code for a missing (4) or bad (8) dkms.conf; else 255, as debhelper's `error()`.
    pub fn exit_code(&self) -> i32 {
        match self {
            DhError::Conf(e) => e.exit_code(),
            DhError::NoDkmsConf { .. } | DhError::NoDkmsConfAfter { .. } => 4,
            DhError::RulesTargetFailed { status, .. } => status.code().unwrap_or(255),
            _ => 255,
        }
    }
}

/// How the binary was started, for running debian/rules's targets of `dh_dkms`.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The dh_dkms-rs executable, which the `dh_dkms` put on PATH for those targets runs.
    pub exe: PathBuf,
    /// Started as `dh_dkms` (by a recipe of such a target): never runs the targets again.
    pub as_dh_dkms: bool,
}

/// Run dh_dkms-rs in the source package whose top directory is `root`, with the command
/// line's `args` (see [`DhArgs::parse`]) and the environment `env`, as a library call: the
/// targets of Debian's `dh_dkms` in debian/rules are not run (see [`run_as`]).
pub fn run(
    root: &Path,
    args: DhArgs,
    env: &DhEnv,
    streams: &mut Streams,
) -> Result<Vec<PackageDone>, DhError> {
    run_as(root, args, env, None, streams)
}

/// [`run`] for the binary started as `invocation` says.
///
/// As dh's sequence step (started as dh_dkms-rs, not inside an override target: no
/// DH_INTERNAL_OVERRIDE), it does for Debian's `dh_dkms` what dh does for a command: runs
/// `execute_before_dh_dkms`, then `override_dh_dkms` in place of its own work for the packages
/// that target covers (each also `-arch`/`-indep`, as dh splits them), then its own work for
/// the others, then `execute_after_dh_dkms`; in those targets `dh_dkms` is dh_dkms-rs (a
/// link first on PATH), so `dh_dkms -V`, `-p`, FILE keep their meaning. Afterwards every
/// package acted on that is named `*-dkms` must have a dkms.conf.
///
/// Unless started by such a target, it warns about what Debian's dh_dkms leaves behind in the
/// packaging: those targets (naming their line), calls of `dh_dkms` by name elsewhere in
/// debian/rules, and a `Depends: dkms` without `dkms-rs` in debian/control.
pub fn run_as(
    root: &Path,
    args: DhArgs,
    env: &DhEnv,
    invocation: Option<&Invocation>,
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
    let in_override = env.get("DH_INTERNAL_OVERRIDE");
    let as_dh_dkms = invocation.is_some_and(|i| i.as_dh_dkms);
    let step = invocation.filter(|_| !as_dh_dkms && in_override.is_none());
    let lint = !as_dh_dkms && in_override != Some(rules::DH_DKMS);
    let targets = if lint {
        rules::Targets::read(root)?
    } else {
        rules::Targets::default()
    };
    if lint {
        warn_packaging(root, &options.packages, &targets, step.is_some(), streams);
    }

    let mut ours = options.clone();
    let mut hooks = None;
    if let Some(invocation) = step {
        let shim = Hooks::new(&dh, &control, &targets, invocation)?;
        let mut covered = BTreeMap::new();
        shim.run(
            "execute_before_dh_dkms",
            &options.packages,
            &mut covered,
            streams,
        )?;
        covered.clear();
        ours.packages = shim.run("override_dh_dkms", &options.packages, &mut covered, streams)?;
        // The packages an override covered are checked as they are now.
        for (package, target) in &covered {
            let tmpdir = options
                .tmpdir
                .clone()
                .unwrap_or_else(|| Path::new("debian").join(package));
            if !dh.no_act
                && dkms::is_dkms_package_name(package)
                && !dkms::conf_installed(root, &tmpdir)
            {
                return Err(DhError::NoDkmsConfAfter {
                    package: package.clone(),
                    tmpdir,
                    target: target.clone(),
                });
            }
        }
        hooks = Some(shim);
    }
    if step.is_some() {
        refuse_debian_dh_dkms(root, &ours.packages, &targets)?;
    }
    let done = dkms::dh_dkms(
        &dh,
        &ours,
        control.main_package(),
        &mut host,
        streams,
        step.is_some(),
    )?;
    if let Some(shim) = &hooks {
        shim.run(
            "execute_after_dh_dkms",
            &options.packages,
            &mut BTreeMap::new(),
            streams,
        )?;
    }
    // Inside an override target dh asks each command to log itself (Dh_Lib's END), so that
    // `--remaining-packages` knows what ran.
    if in_override.is_some() && !dh.no_act {
        for package in &ours.packages {
            dh_lib::write_log(&dh, package)?;
        }
    }
    Ok(done)
}

/// The warnings about what Debian's dh_dkms leaves in the packaging of `packages`.
fn warn_packaging(
    root: &Path,
    packages: &[String],
    targets: &rules::Targets,
    step: bool,
    streams: &mut Streams,
) {
    for target in targets.dh_dkms_targets() {
        let ours = target.replacen(rules::DH_DKMS, TOOL_NAME, 1);
        let what = if step {
            format!(
                "dh_dkms-rs runs it in dh's place, with dh_dkms being dh_dkms-rs (name it {ours})"
            )
        } else {
            format!("not run: dh runs override_{TOOL_NAME} instead of dh_dkms-rs (name it {ours})")
        };
        streams.warn(&format!(
            "{}: {target} is a target of Debian's dh_dkms: {what}",
            targets.location(&target)
        ));
    }
    for (line, target) in targets.dh_dkms_calls() {
        streams.warn(&format!(
            "{}:{line}: {target} calls dh_dkms, which is Debian's, not dh_dkms-rs: call dh_dkms-rs",
            rules::RULES
        ));
    }
    if let Ok(text) = std::fs::read_to_string(root.join("debian/control")) {
        for d in control::dkms_only_depends(&text) {
            if packages.contains(&d.package) {
                streams.warn(&format!(
                    "debian/control:{}: {}: Depends: {} has no dkms-rs alternative, so the 'dkms-rs | dkms' of ${{misc:Depends}} is swallowed: write 'dkms-rs | {}'",
                    d.line, d.package, d.entry, d.entry
                ));
            }
        }
    }
}

/// Debian's dh_dkms ran for one of `packages` (its marker in the postinst snippets): its
/// scripts and ours would both run. An error naming where debian/rules calls it.
fn refuse_debian_dh_dkms(
    root: &Path,
    packages: &[String],
    targets: &rules::Targets,
) -> Result<(), DhError> {
    for package in packages {
        let path = PathBuf::from(format!("debian/{package}.postinst.debhelper"));
        let Ok(text) = std::fs::read_to_string(root.join(&path)) else {
            continue;
        };
        if text.contains("# Automatically added by dh_dkms/") {
            let calls: Vec<String> = targets
                .dh_dkms_calls()
                .iter()
                .map(|(line, _)| format!("{}:{line}", rules::RULES))
                .collect();
            return Err(DhError::DebianDhDkmsRan {
                path,
                package: package.clone(),
                calls: if calls.is_empty() {
                    "dh_dkms was run before dh_dkms-rs".to_string()
                } else {
                    format!("{} calls dh_dkms", calls.join(", "))
                },
            });
        }
    }
    Ok(())
}

/// Running debian/rules's targets of Debian's `dh_dkms` as dh would (SequencerUtil's
/// `run_hook_target`), with a `dh_dkms` that is dh_dkms-rs first on PATH.
struct Hooks<'a> {
    dh: &'a dh_lib::Dh<'a>,
    control: &'a control::SourceControl,
    targets: &'a rules::Targets,
    /// Holds the `dh_dkms` link; removed on drop.
    shim: tempfile::TempDir,
}

impl<'a> Hooks<'a> {
    fn new(
        dh: &'a dh_lib::Dh<'a>,
        control: &'a control::SourceControl,
        targets: &'a rules::Targets,
        invocation: &Invocation,
    ) -> Result<Self, DhError> {
        let shim = tempfile::Builder::new()
            .prefix("dh_dkms-rs.")
            .tempdir()
            .map_err(|source| DhError::Write {
                path: std::env::temp_dir(),
                source,
            })?;
        let link = shim.path().join(rules::DH_DKMS);
        std::os::unix::fs::symlink(&invocation.exe, &link)
            .map_err(|source| DhError::Write { path: link, source })?;
        Ok(Hooks {
            dh,
            control,
            targets,
            shim,
        })
    }

    /// Run `stem`, `stem-arch` and `stem-indep` for the packages they cover among
    /// `packages`; returns those no defined target covered (an empty target covers its
    /// packages and runs nothing), and puts the others in `covered` with their target.
    fn run(
        &self,
        stem: &str,
        packages: &[String],
        covered: &mut BTreeMap<String, String>,
        streams: &mut Streams,
    ) -> Result<Vec<String>, DhError> {
        let mut todo = packages.to_vec();
        for override_type in [None, Some("arch"), Some("indep")] {
            let target = rules::target_name(stem, override_type);
            let Some(does_something) = self.targets.get(&target) else {
                continue;
            };
            let (mine, rest): (Vec<String>, Vec<String>) =
                todo.iter().cloned().partition(|p| match override_type {
                    None => true,
                    Some(t) => self.is_arch_all(p) == (t == "indep"),
                });
            todo = rest;
            covered.extend(mine.iter().map(|p| (p.clone(), target.clone())));
            if !does_something || mine.is_empty() {
                continue;
            }
            let _ = writeln!(streams.out, "   debian/rules {target}");
            if self.dh.no_act {
                continue;
            }
            self.run_target(&target, &mine)?;
        }
        Ok(todo)
    }

    fn is_arch_all(&self, package: &str) -> bool {
        self.control
            .packages
            .iter()
            .any(|p| p.name == package && p.architecture == "all")
    }

    /// `debian/rules <target>` as dh runs an override: DH_INTERNAL_OPTIONS selects `packages`,
    /// DH_INTERNAL_OVERRIDE names the command overridden.
    fn run_target(&self, target: &str, packages: &[String]) -> Result<(), DhError> {
        let root = if self.dh.root.as_os_str().is_empty() {
            Path::new(".")
        } else {
            self.dh.root
        };
        let root = std::fs::canonicalize(root).map_err(|source| DhError::RulesTargetNotRun {
            target: target.to_string(),
            source,
        })?;
        let path = std::env::join_paths(std::iter::once(self.shim.path().to_path_buf()).chain(
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
        ))
        .map_err(|e| DhError::RulesTargetNotRun {
            target: target.to_string(),
            source: std::io::Error::other(e),
        })?;
        let options: Vec<String> = packages.iter().map(|p| format!("-p{p}")).collect();
        let status = std::process::Command::new(root.join(rules::RULES))
            .arg(target)
            .current_dir(&root)
            .env("PATH", path)
            .env("DH_INTERNAL_OPTIONS", options.join("\x1e"))
            .env("DH_INTERNAL_OVERRIDE", rules::DH_DKMS)
            .status()
            .map_err(|source| DhError::RulesTargetNotRun {
                target: target.to_string(),
                source,
            })?;
        if !status.success() {
            return Err(DhError::RulesTargetFailed {
                target: target.to_string(),
                status,
            });
        }
        Ok(())
    }
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
