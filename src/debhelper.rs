//! dh_dkms-rs: the debhelper command that turns binary packages of a `debian/` source package
//! into DKMS packages, as Debian's `dh_dkms` does, with dkms-rs's maintainer scripts and Depends.
//!
//! For each package it acts on that has a `debian/<package>.dkms` (or is given a file on the
//! command line) it installs the dkms.conf as `usr/src/<name>-<version>/dkms.conf`, adds the
//! postinst/prerm bodies that dkms-mkdeb's packages carry (`templates/autoscripts/`) as
//! debhelper autoscripts, and puts dkms-mkdeb's Depends into `${misc:Depends}`.
//!
//! What it shares with every dh_* command is ported from debhelper's `Dh_Lib.pm` and
//! `Dh_Getopt.pm` (Debian 12, debhelper 13): package selection (`-p -N -i -a`, `DH_OPTIONS`,
//! `DH_INTERNAL_OPTIONS` from dh's override targets, `-O` pass-through with unknown options
//! ignored), `pkgfile()`, `autoscript()`, `addsubstvar()` and `tmpdir()`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;
use minijinja::context;

use crate::conf::{self, ConfError, ResolveContext};
use crate::package::dkms_depends;
use crate::templates::{TemplateError, Templates};

/// The command's name, as written into the autoscript markers and messages.
pub const TOOL_NAME: &str = "dh_dkms-rs";

/// The placeholder dh_dkms replaces with the `-V` version in dkms.conf.
pub const MODULE_VERSION_PLACEHOLDER: &str = "#MODULE_VERSION#";

/// The options of dh_dkms-rs: debhelper's common ones, and dh_dkms's `-V` and file argument.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct DhArgs {
    /// Act on the package PKG (repeatable). Default: every package of debian/control that is
    /// built on this architecture.
    #[arg(short = 'p', long = "package", value_name = "PKG")]
    pub packages: Vec<String>,

    /// Do not act on the package PKG (repeatable), even if -p or -i/-a selects it.
    #[arg(short = 'N', long = "no-package", value_name = "PKG")]
    pub no_packages: Vec<String>,

    /// Act on all architecture-independent packages (Architecture: all).
    #[arg(short = 'i', long)]
    pub indep: bool,

    /// Act on all architecture-dependent packages built on this architecture.
    #[arg(short = 'a', long)]
    pub arch: bool,

    /// Use DIR as the package build directory instead of debian/<package> (one package only).
    #[arg(short = 'P', long, value_name = "DIR")]
    pub tmpdir: Option<PathBuf>,

    /// Say what is done (DH_VERBOSE=1 does the same).
    #[arg(short = 'v', long)]
    pub verbose: bool,

    /// Change nothing; with -v, say what would be done (DH_NO_ACT=1 does the same).
    #[arg(long)]
    pub no_act: bool,

    /// An option from dh: applied when dh_dkms-rs knows it, ignored otherwise.
    #[arg(
        short = 'O',
        value_name = "OPTION",
        allow_hyphen_values = true,
        hide_short_help = true
    )]
    pub passthrough: Vec<String>,

    /// Replace #MODULE_VERSION# in dkms.conf with VERSION; -V alone: the upstream version of
    /// debian/changelog (without epoch and Debian revision).
    #[arg(
        short = 'V',
        value_name = "VERSION",
        num_args = 0..=1,
        default_missing_value = "",
        require_equals = false
    )]
    pub module_version: Option<String>,

    /// Install FILE as dkms.conf of the first package acted on, instead of the one
    /// debian/<package>.dkms names.
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
}

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

#[derive(Debug, thiserror::Error)]
pub enum DhError {
    #[error("{path}: {reason}")]
    Control { path: PathBuf, reason: String },
    #[error("{option} {name}: no such package in debian/control (known: {known})")]
    UnknownPackage {
        option: &'static str,
        name: String,
        known: String,
    },
    #[error("-P was given, but more than one package would be acted on ({packages})")]
    TmpdirWithManyPackages { packages: String },
    #[error("{list}: names {name}, which is in neither {tried}")]
    ListedConfMissing {
        list: PathBuf,
        name: String,
        tried: String,
    },
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
    #[error("{path}: {reason}")]
    Changelog { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Substvars { path: PathBuf, reason: String },
    #[error("dpkg-architecture: {reason}")]
    Architecture { reason: String },
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

/// A binary package stanza of debian/control, with what package selection needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryPackage {
    pub name: String,
    /// The Architecture field: `all`, `any`, or a list of architectures and wildcards.
    pub architecture: String,
    /// The Build-Profiles field, when there is one.
    pub build_profiles: Option<String>,
}

/// The parts of debian/control dh_dkms-rs needs: the binary packages, in file order.
#[derive(Debug, Clone)]
pub struct SourceControl {
    pub source: String,
    pub packages: Vec<BinaryPackage>,
}

impl SourceControl {
    /// Parse `path` (debian/control).
    pub fn read(path: &Path) -> Result<Self, DhError> {
        let text = std::fs::read_to_string(path).map_err(|source| DhError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parse the text of a debian/control; `path` is for messages.
    pub fn parse(path: &Path, text: &str) -> Result<Self, DhError> {
        let bad = |reason: String| DhError::Control {
            path: path.to_path_buf(),
            reason,
        };
        let deb822: deb822_lossless::Deb822 =
            text.parse().map_err(|e: deb822_lossless::ParseError| {
                bad(e.0.first().cloned().unwrap_or_else(|| "not deb822".into()))
            })?;
        let mut paragraphs = deb822.paragraphs();
        let source = paragraphs
            .next()
            .and_then(|p| p.get("Source"))
            .map(|s| s.trim().to_string())
            .ok_or_else(|| bad("no Source field in the first paragraph".into()))?;
        let mut packages: Vec<BinaryPackage> = Vec::new();
        for p in paragraphs {
            let name = p
                .get("Package")
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .ok_or_else(|| bad("a binary paragraph has no Package field".into()))?;
            if packages.iter().any(|q| q.name == name) {
                return Err(bad(format!("package {name} is listed twice")));
            }
            packages.push(BinaryPackage {
                architecture: p
                    .get("Architecture")
                    .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
                    .unwrap_or_default(),
                build_profiles: p.get("Build-Profiles"),
                name,
            });
        }
        if packages.is_empty() {
            return Err(bad("no binary package (no Package paragraph)".into()));
        }
        Ok(SourceControl { source, packages })
    }
}

/// Debian's host architecture facts, from the environment dpkg-buildpackage sets, else from
/// dpkg-architecture (as Dh_Lib's `dpkg_architecture_value`).
struct HostArch<'e> {
    env: &'e DhEnv,
    cache: BTreeMap<String, String>,
}

impl<'e> HostArch<'e> {
    fn new(env: &'e DhEnv) -> Self {
        HostArch {
            env,
            cache: BTreeMap::new(),
        }
    }

    fn value(&mut self, var: &str) -> Result<String, DhError> {
        if let Some(v) = self.env.get(var) {
            return Ok(v.to_string());
        }
        if let Some(v) = self.cache.get(var) {
            return Ok(v.clone());
        }
        let out = Command::new("dpkg-architecture")
            .arg(format!("-q{var}"))
            .output()
            .map_err(|e| DhError::Architecture {
                reason: format!("cannot run it: {e}"),
            })?;
        if !out.status.success() {
            return Err(DhError::Architecture {
                reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
        self.cache.insert(var.to_string(), v.clone());
        Ok(v)
    }

    /// Whether an Architecture field (not `all`) includes the host (Dh_Lib's `samearch`);
    /// wildcards such as `linux-any` are asked of dpkg-architecture.
    fn builds(&mut self, architecture: &str) -> Result<bool, DhError> {
        let host = self.value("DEB_HOST_ARCH")?;
        for arch in architecture.split_whitespace() {
            if arch == "any" || arch == host {
                return Ok(true);
            }
            if arch.contains("any") {
                let ok = Command::new("dpkg-architecture")
                    .arg(format!("-a{host}"))
                    .arg(format!("-i{arch}"))
                    .stderr(std::process::Stdio::null())
                    .status()
                    .map_err(|e| DhError::Architecture {
                        reason: format!("cannot run it: {e}"),
                    })?
                    .success();
                if ok {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }
}

/// Whether a Build-Profiles formula (`<!nocheck> <stage1 cross>`) admits `active` profiles:
/// one group whose terms all hold (Debian's BuildProfileSpec).
pub fn build_profiles_admit(formula: &str, active: &[&str]) -> bool {
    let groups: Vec<&str> = formula
        .split('<')
        .filter_map(|g| g.split('>').next())
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .collect();
    if groups.is_empty() {
        return true;
    }
    groups.iter().any(|group| {
        group
            .split_whitespace()
            .all(|term| match term.strip_prefix('!') {
                Some(name) => !active.contains(&name),
                None => active.contains(&term),
            })
    })
}

/// Which packages are `indep` and `arch` for this build (Dh_Lib's `getpackages`).
struct PackageKinds {
    all: Vec<String>,
    indep: Vec<String>,
    arch: Vec<String>,
}

impl PackageKinds {
    fn of(control: &SourceControl, host: &mut HostArch, env: &DhEnv) -> Result<Self, DhError> {
        let profiles: Vec<&str> = env
            .get("DEB_BUILD_PROFILES")
            .map(|p| p.split_whitespace().collect())
            .unwrap_or_default();
        let mut kinds = PackageKinds {
            all: Vec::new(),
            indep: Vec::new(),
            arch: Vec::new(),
        };
        for p in &control.packages {
            kinds.all.push(p.name.clone());
            if let Some(formula) = &p.build_profiles
                && !build_profiles_admit(formula, &profiles)
            {
                continue;
            }
            if p.architecture == "all" {
                kinds.indep.push(p.name.clone());
            } else if host.builds(&p.architecture)? {
                kinds.arch.push(p.name.clone());
            }
        }
        Ok(kinds)
    }

    /// `both`: the packages built here, in debian/control's order.
    fn both(&self) -> Vec<String> {
        self.all
            .iter()
            .filter(|p| self.indep.contains(p) || self.arch.contains(p))
            .cloned()
            .collect()
    }
}

/// One way a package gets selected, in the order the options came.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pick {
    Indep,
    Arch,
    Package(String),
}

/// Options gathered from DH_INTERNAL_OPTIONS, DH_OPTIONS, the command line and `-O`.
#[derive(Debug, Default)]
struct Gathered {
    picks: Vec<Pick>,
    excludes: Vec<String>,
    tmpdir: Option<PathBuf>,
    verbose: bool,
    no_act: bool,
    module_version: Option<String>,
    file: Option<PathBuf>,
}

/// Parses option words that come from elsewhere than the command line (`-O`, DH_OPTIONS,
/// DH_INTERNAL_OPTIONS).
#[derive(Parser, Debug)]
#[command(
    no_binary_name = true,
    disable_help_flag = true,
    disable_version_flag = true
)]
struct Strict {
    #[command(flatten)]
    args: DhArgs,
}

impl Gathered {
    fn absorb(&mut self, args: DhArgs) {
        if args.indep {
            self.picks.push(Pick::Indep);
        }
        if args.arch {
            self.picks.push(Pick::Arch);
        }
        self.picks
            .extend(args.packages.into_iter().map(Pick::Package));
        self.excludes.extend(args.no_packages);
        self.tmpdir = args.tmpdir.or(self.tmpdir.take());
        self.verbose |= args.verbose;
        self.no_act |= args.no_act;
        self.module_version = args.module_version.or(self.module_version.take());
        self.file = args.file.or(self.file.take());
        for option in args.passthrough {
            self.absorb_words(&[option]);
        }
    }

    /// Apply what is known among `words`, skipping unknown options as Getopt::Long does for
    /// debhelper; returns false when some were skipped.
    fn absorb_words(&mut self, words: &[String]) -> bool {
        use clap::error::{ContextKind, ContextValue, ErrorKind};
        let mut words = words.to_vec();
        let mut all = true;
        loop {
            match Strict::try_parse_from(&words) {
                Ok(parsed) => {
                    self.absorb(parsed.args);
                    return all;
                }
                Err(e) if e.kind() == ErrorKind::UnknownArgument => {
                    all = false;
                    let Some(ContextValue::String(unknown)) = e.get(ContextKind::InvalidArg) else {
                        return false;
                    };
                    // clap names `--opt=value` as `--opt`: drop the word it came from.
                    let Some(at) = words
                        .iter()
                        .position(|w| w == unknown || w.starts_with(&format!("{unknown}=")))
                    else {
                        return false;
                    };
                    words.remove(at);
                }
                Err(_) => return false,
            }
        }
    }
}

/// Where the command's chatter goes: verbose lines (stdout) and warnings (stderr).
pub struct Console<'w> {
    pub out: &'w mut dyn Write,
    pub err: &'w mut dyn Write,
}

impl Console<'_> {
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
    /// Where dkms.conf went.
    pub dkms_conf: PathBuf,
    /// What went into `${misc:Depends}`.
    pub depends: String,
}

/// Run dh_dkms-rs in the source package in the current directory.
pub fn run(args: DhArgs, env: &DhEnv, console: &mut Console) -> Result<Vec<PackageDone>, DhError> {
    let control_path = Path::new("debian/control");
    if !control_path.is_file() {
        return Err(DhError::Control {
            path: control_path.to_path_buf(),
            reason: "not found: run dh_dkms-rs in the top directory of a source package".into(),
        });
    }
    let control = SourceControl::read(control_path)?;
    let mut host = HostArch::new(env);
    let kinds = PackageKinds::of(&control, &mut host, env)?;

    let known = |name: &str, option: &'static str| -> Result<(), DhError> {
        if kinds.all.iter().any(|p| p == name) {
            Ok(())
        } else {
            Err(DhError::UnknownPackage {
                option,
                name: name.to_string(),
                known: kinds.all.join(", "),
            })
        }
    };

    // DH_INTERNAL_OPTIONS: what dh passes into an override target. Its selection becomes
    // exclusions, so that -p on the override's command line can still narrow it (Dh_Getopt).
    let mut excluded: BTreeSet<String> = BTreeSet::new();
    let mut opts = Gathered::default();
    if let Some(internal) = env.get("DH_INTERNAL_OPTIONS") {
        let words: Vec<String> = internal.split('\x1e').map(str::to_string).collect();
        let mut inner = Gathered::default();
        inner.absorb_words(&words);
        if !inner.picks.is_empty() {
            let chosen = resolve_picks(&inner.picks, &kinds, &known)?;
            excluded.extend(kinds.all.iter().filter(|p| !chosen.contains(p)).cloned());
        }
        for p in &inner.excludes {
            known(p, "-N/--no-package")?;
        }
        excluded.extend(inner.excludes.drain(..));
        inner.picks.clear();
        opts = inner;
    }
    if let Some(dh_options) = env.get("DH_OPTIONS") {
        let words: Vec<String> = dh_options.split_whitespace().map(str::to_string).collect();
        if !opts.absorb_words(&words) {
            console.warn("ignored unknown options in DH_OPTIONS");
        }
    }
    opts.absorb(args);
    opts.verbose |= env.get("DH_VERBOSE").is_some();
    opts.no_act |= env.get("DH_NO_ACT").is_some();

    for p in &opts.excludes {
        known(p, "-N/--no-package")?;
    }
    excluded.extend(opts.excludes.iter().cloned());

    let mut selected = resolve_picks(&opts.picks, &kinds, &known)?;
    if selected.is_empty() {
        if opts
            .picks
            .iter()
            .any(|p| matches!(p, Pick::Indep | Pick::Arch))
        {
            console.warn(
                "You asked that all arch in(dep) packages be built, but there are none of that type.",
            );
            return Ok(Vec::new());
        }
        if !opts.picks.is_empty() {
            console.warn("All requested packages have been excluded (e.g. via a Build-Profile).");
            return Ok(Vec::new());
        }
        selected = kinds.both();
    }
    let mut seen = BTreeSet::new();
    selected.retain(|p| !excluded.contains(p) && seen.insert(p.clone()));
    if selected.is_empty() {
        console.warn("No packages to build. Possible architecture mismatch.");
        return Ok(Vec::new());
    }
    if opts.tmpdir.is_some() && selected.len() > 1 {
        return Err(DhError::TmpdirWithManyPackages {
            packages: selected.join(","),
        });
    }

    let main_package = kinds.all.first().cloned().unwrap_or_default();
    let templates = Templates::load(None)?;
    let mut done = Vec::new();
    for (i, package) in selected.iter().enumerate() {
        let ctx = PackageContext {
            package,
            main_package: &main_package,
            tmpdir: opts
                .tmpdir
                .clone()
                .unwrap_or_else(|| Path::new("debian").join(package)),
            file: if i == 0 { opts.file.as_deref() } else { None },
            module_version: opts.module_version.as_deref(),
            no_act: opts.no_act,
            verbose: opts.verbose,
        };
        if let Some(d) = dkms_package(&ctx, &templates, &mut host, console)? {
            done.push(d);
        }
    }

    // Inside an override target dh asks each command to log itself (Dh_Lib's END), so that
    // `--remaining-packages` knows what ran.
    if env.get("DH_INTERNAL_OVERRIDE").is_some() && !opts.no_act {
        for package in &selected {
            let log = PathBuf::from(format!("debian/{package}.debhelper.log"));
            let mut text = std::fs::read_to_string(&log).unwrap_or_default();
            text.push_str(TOOL_NAME);
            text.push('\n');
            replace_file(&log, text.as_bytes(), 0o644, None)?;
        }
    }
    Ok(done)
}

/// The packages the picks select, in order (duplicates kept; the caller drops them).
fn resolve_picks(
    picks: &[Pick],
    kinds: &PackageKinds,
    known: &dyn Fn(&str, &'static str) -> Result<(), DhError>,
) -> Result<Vec<String>, DhError> {
    let mut out = Vec::new();
    for pick in picks {
        match pick {
            Pick::Indep => out.extend(kinds.indep.iter().cloned()),
            Pick::Arch => out.extend(kinds.arch.iter().cloned()),
            Pick::Package(p) => {
                known(p, "-p/--package")?;
                // A package the build profiles leave out is silently skipped (Dh_Getopt).
                if kinds.indep.contains(p) || kinds.arch.contains(p) {
                    out.push(p.clone());
                }
            }
        }
    }
    Ok(out)
}

/// debhelper's `pkgfile()`: the packager's file `<name>` for `package`, most specific first:
/// `debian/<package>.<name>.<host arch>`, `.<host os>` (looked for only when some
/// `debian/*.<name>.*` exists, as debhelper does to save dpkg-architecture calls),
/// `debian/<package>.<name>`, and `debian/<name>` for the first package of debian/control.
/// Generated `*.debhelper` files never count.
fn pkgfile(
    package: &str,
    main_package: &str,
    name: &str,
    host: &mut HostArch,
) -> Result<Option<PathBuf>, DhError> {
    let debian = Path::new("debian");
    let infix = format!(".{name}.");
    let expensive = std::fs::read_dir(debian)
        .map(|entries| {
            entries.flatten().any(|e| {
                let f = e.file_name().to_string_lossy().into_owned();
                f.contains(&infix) && !f.ends_with(".debhelper")
            })
        })
        .unwrap_or(false);
    let mut tries = Vec::new();
    if expensive {
        for var in ["DEB_HOST_ARCH", "DEB_HOST_ARCH_OS"] {
            tries.push(debian.join(format!("{package}.{name}.{}", host.value(var)?)));
        }
    }
    tries.push(debian.join(format!("{package}.{name}")));
    if package == main_package {
        tries.push(debian.join(name));
    }
    Ok(tries.into_iter().find(|p| p.is_file()))
}

struct PackageContext<'a> {
    package: &'a str,
    main_package: &'a str,
    tmpdir: PathBuf,
    file: Option<&'a Path>,
    module_version: Option<&'a str>,
    no_act: bool,
    verbose: bool,
}

impl PackageContext<'_> {
    fn say(&self, console: &mut Console, line: &str) {
        if self.verbose {
            let _ = writeln!(console.out, "\t{line}");
        }
    }
}

/// A `debian/<package>.dkms` is a dkms.conf itself when it assigns PACKAGE_NAME anywhere (dh_dkms
/// looks for `PACKAGE_NAME="..."`; an unquoted assignment counts here too), else it names one.
fn is_dkms_conf(text: &str) -> bool {
    text.lines().any(|l| l.contains("PACKAGE_NAME="))
}

/// Where the dkms.conf of `package` is: the FILE argument, or what `debian/<package>.dkms`
/// is or names (looked up in `.` then `debian/tmp`, as dh_dkms's `filearray` does).
fn conf_source(ctx: &PackageContext, host: &mut HostArch) -> Result<Option<PathBuf>, DhError> {
    if let Some(file) = ctx.file {
        return Ok(Some(file.to_path_buf()));
    }
    let Some(list) = pkgfile(ctx.package, ctx.main_package, "dkms", host)? else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&list).map_err(|source| DhError::Read {
        path: list.clone(),
        source,
    })?;
    if is_dkms_conf(&text) {
        return Ok(Some(list));
    }
    // debhelper's config-file syntax: words, `#` comments, blank lines.
    let words: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .flat_map(str::split_whitespace)
        .collect();
    let name = match words.as_slice() {
        [] => return Err(DhError::ListsNothing { list }),
        [one] => *one,
        more => {
            return Err(DhError::ListsMany {
                list,
                count: more.len(),
            });
        }
    };
    let dirs = [Path::new("."), Path::new("debian/tmp")];
    for dir in dirs {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Ok(Some(if dir == Path::new(".") {
                PathBuf::from(name)
            } else {
                candidate
            }));
        }
    }
    Err(DhError::ListedConfMissing {
        list,
        name: name.to_string(),
        tried: ". nor debian/tmp".into(),
    })
}

/// The upstream version of the package's changelog (pkgfile `changelog`, else
/// debian/changelog): the first entry's version without epoch and Debian revision.
fn changelog_upstream_version(
    ctx: &PackageContext,
    host: &mut HostArch,
) -> Result<String, DhError> {
    let path = pkgfile(ctx.package, ctx.main_package, "changelog", host)?
        .unwrap_or_else(|| PathBuf::from("debian/changelog"));
    let text = std::fs::read_to_string(&path).map_err(|source| DhError::Read {
        path: path.clone(),
        source,
    })?;
    let bad = |reason: &str| DhError::Changelog {
        path: path.clone(),
        reason: reason.to_string(),
    };
    let first = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .ok_or_else(|| bad("no changelog entry"))?;
    // "package (version) distribution; urgency=..." (Policy 4.4).
    let version = first
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(v, _)| v.trim())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| bad("the first line has no (version)"))?;
    let without_epoch = version.split_once(':').map_or(version, |(_, v)| v);
    let upstream = without_epoch
        .rsplit_once('-')
        .map_or(without_epoch, |(u, _)| u);
    Ok(upstream.to_string())
}

/// Do dh_dkms's work for one package; `None` when it has no dkms.conf to install.
fn dkms_package(
    ctx: &PackageContext,
    templates: &Templates,
    host: &mut HostArch,
    console: &mut Console,
) -> Result<Option<PackageDone>, DhError> {
    let Some(source) = conf_source(ctx, host)? else {
        return Ok(None);
    };
    ctx.say(
        console,
        &format!("installing {} as dkms.conf", source.display()),
    );
    let original = std::fs::read(&source).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            DhError::Conf(ConfError::Missing {
                path: source.clone(),
                source: e,
            })
        } else {
            DhError::Read {
                path: source.clone(),
                source: e,
            }
        }
    })?;

    // -V: dh_dkms writes the substituted copy to debian/<package>.dkms.debhelper (which
    // dh_clean removes) and installs that.
    let mut _no_act_copy = None;
    let conf_path = match ctx.module_version {
        None => source.clone(),
        Some(given) => {
            let version = if given.is_empty() {
                changelog_upstream_version(ctx, host)?
            } else {
                given.to_string()
            };
            let text =
                String::from_utf8_lossy(&original).replace(MODULE_VERSION_PLACEHOLDER, &version);
            let generated = PathBuf::from(format!("debian/{}.dkms.debhelper", ctx.package));
            ctx.say(
                console,
                &format!(
                    "sed s/{MODULE_VERSION_PLACEHOLDER}/{version}/g {} > {}",
                    source.display(),
                    generated.display()
                ),
            );
            if ctx.no_act {
                // Nothing may be written into the source package: read a scratch copy.
                let mut tmp = tempfile::NamedTempFile::new().map_err(|source| DhError::Write {
                    path: std::env::temp_dir(),
                    source,
                })?;
                tmp.write_all(text.as_bytes())
                    .map_err(|source| DhError::Write {
                        path: tmp.path().to_path_buf(),
                        source,
                    })?;
                let path = tmp.path().to_path_buf();
                _no_act_copy = Some(tmp);
                path
            } else {
                replace_file(&generated, text.as_bytes(), 0o644, None)?;
                generated
            }
        }
    };

    // Resolved for no kernel in particular: what the package carries holds for all (as mkdeb).
    let conf = conf::read(&conf_path, &ResolveContext::new("", ""))?;
    if conf.package_version.contains(MODULE_VERSION_PLACEHOLDER) {
        return Err(DhError::VersionPlaceholder { path: conf_path });
    }
    let depends = dkms_depends(&conf).to_string();
    let installed = std::fs::read(&conf_path).map_err(|source| DhError::Read {
        path: conf_path.clone(),
        source,
    })?;
    let mtime = std::fs::metadata(&conf_path)
        .and_then(|m| m.modified())
        .ok();

    let rendered = |name: &str| {
        templates.render(
            name,
            &context! {
                name => &conf.package_name,
                version => &conf.package_version,
                package => ctx.package,
            },
        )
    };
    let postinst = rendered("autoscripts/postinst-dkms")?;
    let prerm = rendered("autoscripts/prerm-dkms")?;

    let dest = ctx
        .tmpdir
        .join(format!(
            "usr/src/{}-{}",
            conf.package_name, conf.package_version
        ))
        .join("dkms.conf");

    // Everything is computed; now the files, each complete or not at all.
    add_substvar(ctx, "misc:Depends", &depends)?;
    autoscript(ctx, console, "postinst", "postinst-dkms", &postinst)?;
    autoscript(ctx, console, "prerm", "prerm-dkms", &prerm)?;
    ctx.say(
        console,
        &format!(
            "install -p -D -m644 {} {}",
            conf_path.display(),
            dest.display()
        ),
    );
    if !ctx.no_act {
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|source| DhError::Write {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        replace_file(&dest, &installed, 0o644, mtime)?;
    }
    Ok(Some(PackageDone {
        package: ctx.package.to_string(),
        module: conf.package_name.clone(),
        module_version: conf.package_version.clone(),
        dkms_conf: dest,
        depends,
    }))
}

/// debhelper's `autoscript()`: add `snippet` to `debian/<package>.<script>.debhelper` between
/// its markers, at the end, or at the top for prerm/postrm so that removal runs in reverse.
fn autoscript(
    ctx: &PackageContext,
    console: &mut Console,
    script: &str,
    snippet_name: &str,
    snippet: &str,
) -> Result<(), DhError> {
    let outfile = PathBuf::from(format!("debian/{}.{script}.debhelper", ctx.package));
    let existing = match std::fs::read_to_string(&outfile) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(DhError::Read {
                path: outfile,
                source,
            });
        }
    };
    let mut block = format!(
        "# Automatically added by {TOOL_NAME}/{}\n{snippet}",
        env!("CARGO_PKG_VERSION")
    );
    if !block.ends_with('\n') {
        block.push('\n');
    }
    block.push_str("# End automatically added section\n");
    let prepend = existing.is_some() && (script == "prerm" || script == "postrm");
    ctx.say(
        console,
        &format!(
            "[META] {} autosnippet \"{snippet_name}\" to {script} [{}]",
            if prepend { "Prepend" } else { "Append" },
            outfile.display()
        ),
    );
    if ctx.no_act {
        return Ok(());
    }
    let existing = existing.unwrap_or_default();
    let text = if prepend {
        block + &existing
    } else {
        existing + &block
    };
    replace_file(&outfile, text.as_bytes(), 0o644, None)
}

/// debhelper's `addsubstvar()`: add `item` to `substvar` in `debian/<package>.substvars`,
/// keeping the items of an existing line (sorted, `, `-separated) and adding nothing that is
/// already there, so running twice gives one entry.
fn add_substvar(ctx: &PackageContext, substvar: &str, item: &str) -> Result<(), DhError> {
    let path = PathBuf::from(format!("debian/{}.substvars", ctx.package));
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => return Err(DhError::Read { path, source }),
    };
    let updated = substvars_with(&text, substvar, item);
    if updated == text || ctx.no_act {
        return Ok(());
    }
    replace_file(&path, updated.as_bytes(), 0o644, None)
}

/// The text of a substvars file with `item` added to `substvar` (see [`add_substvar`]).
pub fn substvars_with(text: &str, substvar: &str, item: &str) -> String {
    let mut present = false;
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines() {
        // `name=value` or `name?=value` (dpkg-substvars(5): ?= is "required only if used").
        let assignment = line.strip_prefix(substvar).and_then(|rest| {
            rest.strip_prefix("?=")
                .map(|v| ("?=", v))
                .or_else(|| rest.strip_prefix('=').map(|v| ("=", v)))
        });
        match assignment {
            Some((op, value)) => {
                present = true;
                let mut items: BTreeSet<&str> =
                    value.split(", ").filter(|i| !i.is_empty()).collect();
                if items.contains(item) {
                    lines.push(line.to_string());
                } else {
                    items.insert(item);
                    lines.push(format!(
                        "{substvar}{op}{}",
                        items.into_iter().collect::<Vec<_>>().join(", ")
                    ));
                }
            }
            None => lines.push(line.to_string()),
        }
    }
    if !present {
        lines.push(format!("{substvar}={item}"));
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// Write `bytes` to `path` through a temporary file in the same directory and a rename, so
/// readers see the old file or the new one, never half of it.
fn replace_file(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    mtime: Option<std::time::SystemTime>,
) -> Result<(), DhError> {
    let err = |source| DhError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
    tmp.write_all(bytes).map_err(err)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(err)?;
    if let Some(t) = mtime {
        tmp.as_file().set_modified(t).map_err(err)?;
    }
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substvar_is_added_once_and_merged_with_other_items() {
        let dep = "dkms-rs | dkms (>= 2.1.0.0)";
        let once = substvars_with("", "misc:Depends", dep);
        assert_eq!(once, format!("misc:Depends={dep}\n"));
        assert_eq!(substvars_with(&once, "misc:Depends", dep), once);
        let other = "misc:Pre-Depends=foo\nmisc:Depends=zzz, aaa\n";
        assert_eq!(
            substvars_with(other, "misc:Depends", dep),
            format!("misc:Pre-Depends=foo\nmisc:Depends=aaa, {dep}, zzz\n")
        );
        assert_eq!(
            substvars_with("misc:Depends?=x\n", "misc:Depends", "y"),
            "misc:Depends?=x, y\n"
        );
    }

    #[test]
    fn build_profiles_follow_the_formula() {
        assert!(build_profiles_admit("<!nocheck>", &[]));
        assert!(!build_profiles_admit("<!nocheck>", &["nocheck"]));
        assert!(build_profiles_admit("<stage1> <pkg.x.y>", &["pkg.x.y"]));
        assert!(!build_profiles_admit("<stage1 cross>", &["stage1"]));
        assert!(build_profiles_admit("<stage1 cross>", &["cross", "stage1"]));
    }

    #[test]
    fn control_lists_binary_packages_in_order() {
        let text = "Source: hello-dkms\nBuild-Depends: debhelper-compat (= 13)\n\n\
                    # a comment\nPackage: hello-dkms\nArchitecture: all\n\n\
                    Package: hello-tools\nArchitecture: amd64\n  i386\nBuild-Profiles: <!nocheck>\n";
        let c = SourceControl::parse(Path::new("debian/control"), text).unwrap();
        assert_eq!(c.source, "hello-dkms");
        assert_eq!(c.packages.len(), 2);
        assert_eq!(c.packages[0].name, "hello-dkms");
        assert_eq!(c.packages[1].architecture, "amd64 i386");
        assert_eq!(c.packages[1].build_profiles.as_deref(), Some("<!nocheck>"));
    }

    #[test]
    fn control_without_packages_is_an_error_naming_the_file() {
        let err = SourceControl::parse(Path::new("debian/control"), "Source: x\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("debian/control: "), "{err}");
    }

    #[test]
    fn passthrough_applies_known_options_and_skips_unknown_ones() {
        let mut g = Gathered::default();
        let all = g.absorb_words(&[
            "-O--buildsystem=cmake".to_string(),
            "-O-v".to_string(),
            "-Nfoo".to_string(),
        ]);
        assert!(all, "-O values are applied or skipped, never refused");
        assert!(g.verbose);
        assert_eq!(g.excludes, vec!["foo".to_string()]);
        let mut g = Gathered::default();
        assert!(!g.absorb_words(&["--frobnicate".to_string(), "-i".to_string()]));
        assert_eq!(g.picks, vec![Pick::Indep]);
    }

    #[test]
    fn a_dkms_file_is_a_conf_when_it_assigns_package_name() {
        assert!(is_dkms_conf(
            "PACKAGE_NAME=\"hello\"\nPACKAGE_VERSION=0.1\n"
        ));
        assert!(is_dkms_conf("  PACKAGE_NAME=hello\n"));
        assert!(is_dkms_conf("if true; then PACKAGE_NAME=hello; fi\n"));
        assert!(!is_dkms_conf("dkms.conf\n"));
    }
}
