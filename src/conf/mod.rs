//! dkms.conf: read once ([`ConfFile`]), resolve for each (kernel, arch), hand a typed
//! [`ModuleConf`] to the rest.
//!
//! dkms 3 sources dkms.conf as bash at every step; here a native reader handles declarative
//! files without spawning anything and hands over to bash (with dkms's own prelude) for files
//! that need the shell.
//!
//! - [`ConfFile`]: the bytes of one dkms.conf, read once, resolved for any number of kernels;
//! - [`lexer`]: shell words of declarative files;
//! - [`native`]: dkms's `safe_source` without a shell;
//! - [`bash`]: dkms's `safe_source` in bash, for everything else;
//! - [`resolve`]: read_conf's rules (defaults, MAKE_MATCH, overrides, validation);
//! - [`show`](mod@show): `dkms-rs conf show` rendering.

pub mod bash;
mod file;
pub mod lexer;
pub mod native;
mod posix;
pub mod resolve;
pub mod show;
pub mod vars;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::framework;
pub use file::{ConfFile, target_overrides_there};
pub use resolve::{ReadBy, Resolution};
pub use show::{ShowFormat, Shown, UnknownShowFormat, show};

/// Everything dkms exposes to dkms.conf while reading it for one kernel and architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveContext {
    /// `$kernelver`
    pub kernelver: String,
    /// `$arch`
    pub arch: String,
    /// `$kernel_source_dir`: `/lib/modules/<k>/build` unless given.
    pub kernel_source_dir: PathBuf,
    /// `$dkms_tree`, default `/var/lib/dkms`.
    pub dkms_tree: PathBuf,
    /// `$source_tree`, default `/usr/src`.
    pub source_tree: PathBuf,
    /// `$install_tree`, default `/lib/modules`.
    pub install_tree: PathBuf,
    /// Where `/etc/dkms/<module>*.conf` overrides are looked up.
    pub etc_dir: PathBuf,
    /// `$kernel_config`: `<kernel_source_dir>/.config` unless given (`--config`).
    pub kernel_config: PathBuf,
    /// Whether `kernel_config` was given (`--config`): signing reads it then, as dkms 3.2.2's
    /// `kconfig_fromcli`, instead of the headers' own.
    pub kernel_config_given: bool,
    /// `$module` as dkms has it while reading (`-m`); `None`: PACKAGE_NAME of the file
    /// itself (read twice, as `dkms build` after `dkms add` sees it).
    pub module: Option<String>,
    /// `$module_version` (`-v`); `None`: PACKAGE_VERSION of the file itself.
    pub module_version: Option<String>,
    /// What dkms's `distro_version` says (`debian` here): picks the DEST_MODULE_LOCATION
    /// override.
    pub running_distribution: String,
    /// `$ADDON_MODULES_DIR`: when set, every module goes to `/<it>` (dkms checks it first).
    pub addon_modules_dir: Option<String>,
    /// `--no-exec`: a file the native reader cannot read without bash (the dkms.conf or an
    /// `/etc/dkms` override) is refused ([`ConfError::NotRun`]) instead of run by bash.
    pub no_exec: bool,
    /// The names in `etc_dir`, listed once by a caller that resolves many files (`status`):
    /// an override not among them is not looked for (one stat less per file, six per
    /// target). `None`: each override path is checked.
    pub etc_names: Option<std::sync::Arc<std::collections::HashSet<std::ffi::OsString>>>,
}

impl ResolveContext {
    /// dkms's defaults for `kernelver`/`arch`: trees `/var/lib/dkms`, `/usr/src`,
    /// `/lib/modules`, overrides in `/etc/dkms`, headers in `/lib/modules/<k>/build`.
    pub fn new(kernelver: &str, arch: &str) -> Self {
        let kernel_source_dir = crate::kernel::default_headers_dir(kernelver);
        let (running_distribution, addon_modules_dir) = host_distribution().clone();
        ResolveContext {
            kernelver: kernelver.to_owned(),
            arch: arch.to_owned(),
            kernel_config: kernel_source_dir.join(".config"),
            kernel_config_given: false,
            kernel_source_dir,
            dkms_tree: PathBuf::from(framework::DEFAULT_DKMS_TREE),
            source_tree: PathBuf::from(framework::DEFAULT_SOURCE_TREE),
            install_tree: PathBuf::from(framework::DEFAULT_INSTALL_TREE),
            etc_dir: PathBuf::from(framework::DEFAULT_ETC_DIR),
            module: None,
            module_version: None,
            running_distribution,
            addon_modules_dir,
            no_exec: false,
            etc_names: None,
        }
    }

    /// Point `$kernel_source_dir` (and `$kernel_config` with it) elsewhere, as `--kernelsourcedir`.
    pub fn with_kernel_source_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.kernel_source_dir = dir.into();
        if !self.kernel_config_given {
            self.kernel_config = self.kernel_source_dir.join(".config");
        }
        self
    }

    /// Read as `dkms <action> -m <module> -v <version>` does.
    pub fn with_module(mut self, module: &str, version: &str) -> Self {
        self.module = Some(module.to_owned());
        self.module_version = Some(version.to_owned());
        self
    }
}

/// dkms's `distro_version` (from `/etc/os-release`) and `ADDON_MODULES_DIR`, once per process.
fn host_distribution() -> &'static (String, Option<String>) {
    static HOST: OnceLock<(String, Option<String>)> = OnceLock::new();
    HOST.get_or_init(|| {
        let mut addon = std::env::var("ADDON_MODULES_DIR")
            .ok()
            .filter(|s| !s.is_empty());
        if addon.is_none() && Path::new("/etc/sysconfig/module-init-tools").exists() {
            addon = bash::snippet(
                ". /etc/sysconfig/module-init-tools >/dev/null; printf %s \"$ADDON_MODULES_DIR\"",
            )
            .filter(|s| !s.is_empty());
        }
        let distro = if addon.is_some() {
            String::new()
        } else {
            distro_version()
        };
        (distro, addon)
    })
}

/// dkms's `distro_version` for the usual declarative `/etc/os-release`; bash otherwise.
fn distro_version() -> String {
    let declarative = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|text| lexer::parse(&text).ok())
        .filter(|assigns| {
            assigns
                .iter()
                .all(|a| a.value.iter().all(|p| matches!(p, lexer::Part::Lit(_))))
        });
    let Some(assigns) = declarative else {
        return bash::snippet(DISTRO_VERSION)
            .map(|s| s.trim_end_matches('\n').to_owned())
            .unwrap_or_default();
    };
    let value = |name: &str| {
        assigns.iter().rev().find(|a| a.name == name).map(|a| {
            a.value
                .iter()
                .map(|p| match p {
                    lexer::Part::Lit(s) | lexer::Part::Var(s) => s.as_str(),
                })
                .collect::<String>()
        })
    };
    // `echo $ID` unquoted: blank runs collapse.
    let echo = |s: String| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let id = value("ID").unwrap_or_default();
    if id == "ubuntu" {
        return id;
    }
    match value("ID_LIKE") {
        Some(like) => echo(like),
        None if !id.is_empty() || Path::new("/etc/os-release").exists() => echo(id),
        None => bash::snippet(DISTRO_VERSION)
            .map(|s| s.trim_end_matches('\n').to_owned())
            .unwrap_or_default(),
    }
}

/// dkms 3.0.10's `distro_version`, for hosts whose os-release is not plain assignments.
const DISTRO_VERSION: &str = r#"
if [[ -r /etc/os-release ]]; then
    . /etc/os-release
    if [[ "$ID" = "ubuntu" ]]; then echo $ID
    elif [[ ${#ID_LIKE[@]} != 0 ]]; then echo ${ID_LIKE[0]}
    else echo $ID; fi
    exit
fi
DISTRIB_ID=
if [ -r /etc/lsb-release ]; then . /etc/lsb-release
elif type lsb_release >/dev/null 2>&1; then DISTRIB_ID=$(lsb_release -i -s); fi
case ${DISTRIB_ID} in
    Fedora) echo fedora ;;
    RedHatEnterprise*|CentOS|ScientificSL) echo rhel ;;
    SUSE*) echo sles ;;
    *) if [[ ${DISTRIB_ID} ]]; then echo "${DISTRIB_ID}"; else echo unknown; fi ;;
esac
"#;

/// One `BUILT_MODULE_NAME[i]` record, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleRecord {
    pub built_name: String,
    pub built_location: String,
    pub dest_name: String,
    /// With Debian's `/updates/dkms` override already applied.
    pub dest_location: String,
    pub strip: bool,
}

impl ModuleRecord {
    /// The directory this module is installed into under `modules_dir`
    /// (`/lib/modules/<kernel>`): dkms's `$install_tree/$kernelver${dest_module_location[i]}`,
    /// joined without `dest_location`'s leading `/` (which would make the join absolute).
    pub fn dest_dir(&self, modules_dir: &Path) -> PathBuf {
        modules_dir.join(self.dest_location.trim_start_matches('/'))
    }
}

/// A dkms.conf resolved for one (kernel, arch), as dkms 3.0.10 would see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleConf {
    /// The dkms.conf this was read from.
    pub path: PathBuf,
    pub package_name: String,
    pub package_version: String,
    /// The make command chosen through MAKE/MAKE_MATCH, before dkms adds `-jN KERNELRELEASE=`.
    pub make_command: String,
    pub clean: String,
    pub modules: Vec<ModuleRecord>,
    /// Patch file names under `<source>/patches/`, chosen through PATCH/PATCH_MATCH.
    pub patches: Vec<String>,
    pub pre_build: Option<String>,
    pub post_build: Option<String>,
    pub pre_install: Option<String>,
    pub post_install: Option<String>,
    pub post_add: Option<String>,
    pub post_remove: Option<String>,
    pub autoinstall: bool,
    pub build_depends: Vec<String>,
    /// dkms 3.2.2's BUILD_DEPENDS_REBUILD="yes": record the BUILD_DEPENDS versions a build
    /// saw (`.dep_<dep>`) and rebuild when another is installed.
    pub build_depends_rebuild: bool,
    /// BUILD_EXCLUSIVE_* says: not for this kernel/arch.
    pub build_exclude: bool,
    /// BUILD_EXCLUSIVE_CONFIG as written: packages using it need dkms >= 3.0.3 (dh_dkms).
    pub build_exclusive_config: Option<String>,
    pub obsolete_by: Option<String>,
    /// What dkms 3.2.2 says is deprecated, `REMAKE_INITRD (<file>)`... (add, build, install
    /// print `Deprecated feature: ` and each).
    pub deprecated: Vec<String>,
}

/// What is wrong with a dkms.conf: dkms 3.2.2's read_conf problems, then dkms-rs's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    NoBuiltModuleName,
    BuiltNameSuffix,
    DestNameSuffix,
    NoDestModuleLocation,
    BadDestModuleLocation,
    NoPackageName,
    NoPackageVersion,
    /// dkms 3.2.2: a conf-set lowercase record array longer than the records.
    LengthMismatch,
    /// dkms 3.2.2's check_yes_no_value: AUTOINSTALL, BUILD_DEPENDS_REBUILD or NO_WEAK_MODULES
    /// neither empty, `yes` nor `no` (any case).
    Unsupported(Box<str>),
    /// Not checked by dkms 3.0.10: PACKAGE_NAME names the module's directories in every tree
    /// (`<dkms_tree>/<name>/`, `<source_tree>/<name>-<version>/`), so it must be one component.
    BadPackageName(NameFault),
    /// Not checked by dkms 3.0.10: PACKAGE_VERSION names `<dkms_tree>/<name>/<version>/`.
    BadPackageVersion(NameFault),
    /// Not checked by dkms 3.0.10: the module file `<built location>/<name>.ko`.
    BadBuiltModuleName(NameFault),
    /// Not checked by dkms 3.0.10: the stored and installed `<name>.ko`; with `../` the
    /// module lands outside the trees and `remove --all` leaves it there.
    BadDestModuleName(NameFault),
    /// Not checked by dkms 3.0.10: `..` reaches outside the module's build directory.
    BuiltLocationOutside,
    /// Not checked by dkms 3.0.10 (which only wants `/kernel`, `/updates` or `/extra` first):
    /// `..` reaches outside the kernel's modules directory.
    DestLocationOutside,
}

/// Why a name is not a single path component (what `/`, `.`, `..`, NUL and newline do to
/// the paths built from it; a newline also breaks dkms's line-based `status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameFault {
    Slash,
    Dot,
    DotDot,
    Newline,
    Nul,
}

impl NameFault {
    /// What is wrong with `name` as one path component; `None` when it is one (empty names
    /// are dkms's own problems: no PACKAGE_NAME, no BUILT_MODULE_NAME, ...).
    pub fn of(name: &str) -> Option<NameFault> {
        if name == "." {
            Some(NameFault::Dot)
        } else if name == ".." {
            Some(NameFault::DotDot)
        } else if name.contains('/') {
            Some(NameFault::Slash)
        } else if name.contains('\n') {
            Some(NameFault::Newline)
        } else if name.contains('\0') {
            Some(NameFault::Nul)
        } else {
            None
        }
    }
}

impl std::fmt::Display for NameFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NameFault::Slash => "it contains '/'",
            NameFault::Dot => "it is '.'",
            NameFault::DotDot => "it is '..'",
            NameFault::Newline => "it contains a newline",
            NameFault::Nul => "it contains a NUL byte",
        })
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Problem::NoBuiltModuleName => "no 'BUILT_MODULE_NAME' directive specified",
            Problem::BuiltNameSuffix => "'BUILT_MODULE_NAME' directive ends in '.o' or '.ko'",
            Problem::DestNameSuffix => "'DEST_MODULE_NAME' directive ends in '.o' or '.ko'",
            Problem::NoDestModuleLocation => "no 'DEST_MODULE_LOCATION' directive specified",
            Problem::BadDestModuleLocation => {
                "directive 'DEST_MODULE_LOCATION' does not begin with '/kernel', '/updates', or '/extra'"
            }
            Problem::NoPackageName => "no 'PACKAGE_NAME' directive specified",
            Problem::NoPackageVersion => "no 'PACKAGE_VERSION' directive specified",
            Problem::LengthMismatch => "module name/location array length mismatch",
            Problem::Unsupported(value) => return write!(f, "unsupported value '{value}'"),
            Problem::BadPackageName(why) => return not_one_component(f, "PACKAGE_NAME", why),
            Problem::BadPackageVersion(why) => {
                return not_one_component(f, "PACKAGE_VERSION", why);
            }
            Problem::BadBuiltModuleName(why) => {
                return not_one_component(f, "BUILT_MODULE_NAME", why);
            }
            Problem::BadDestModuleName(why) => {
                return not_one_component(f, "DEST_MODULE_NAME", why);
            }
            Problem::BuiltLocationOutside => {
                "'BUILT_MODULE_LOCATION' directive has a '..' component"
            }
            Problem::DestLocationOutside => "'DEST_MODULE_LOCATION' directive has a '..' component",
        })
    }
}

impl Problem {
    /// dkms 3.2.2's words for this problem of record `record` (its own `echo`, after
    /// `dkms.conf: Error! `; a second line stands alone), or `None` for dkms-rs's own checks.
    pub fn dkms_words(&self, directive: &str, record: Option<usize>) -> Option<String> {
        let r = record.unwrap_or(0);
        Some(match self {
            Problem::NoPackageName => "No 'PACKAGE_NAME' directive specified.".into(),
            Problem::NoPackageVersion => "No 'PACKAGE_VERSION' directive specified.".into(),
            Problem::NoBuiltModuleName => {
                format!("No 'BUILT_MODULE_NAME' directive specified for record #{r}.")
            }
            Problem::BuiltNameSuffix => {
                format!("'BUILT_MODULE_NAME' directive ends in '.o' or '.ko' in record #{r}.")
            }
            Problem::DestNameSuffix => {
                format!("'DEST_MODULE_NAME' directive ends in '.o' or '.ko' in record #{r}.")
            }
            Problem::NoDestModuleLocation => {
                format!("No 'DEST_MODULE_LOCATION' directive specified for record #{r}.")
            }
            Problem::BadDestModuleLocation => format!(
                "Directive 'DEST_MODULE_LOCATION' does not begin with\n'/kernel', '/updates', or '/extra' in record #{r}."
            ),
            Problem::LengthMismatch => "Module name/location array length mismatch.".into(),
            Problem::Unsupported(value) => format!("Unsupported {directive} value '{value}'"),
            _ => return None,
        })
    }
}

fn not_one_component(
    f: &mut std::fmt::Formatter<'_>,
    directive: &str,
    why: &NameFault,
) -> std::fmt::Result {
    write!(
        f,
        "'{directive}' directive is not a single path component: {why}"
    )
}

fn place(path: &Path, line: &Option<usize>) -> String {
    match line {
        Some(l) => format!("{}:{l}", path.display()),
        None => path.display().to_string(),
    }
}

fn more_text(more: &[ConfError]) -> String {
    match more.len() {
        0 => String::new(),
        1 => " and 1 more problem".into(),
        n => format!(" and {n} more problems"),
    }
}

fn record_text(record: &Option<usize>) -> String {
    record
        .map(|r| format!(" in record #{r}"))
        .unwrap_or_default()
}

/// Where and why a file needs bash to be read: the first thing in it the native reader does
/// not model. bash then sources it, running whatever shell code it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeedsShell {
    /// The dkms.conf, or the `/etc/dkms` override, that needs bash.
    pub file: PathBuf,
    /// Its line; 0 when the reason is not on one line (bytes that are not UTF-8, the
    /// environment).
    pub line: usize,
    /// What the native reader met: "command substitution", "a command or shell syntax", ...
    pub what: &'static str,
}

impl std::fmt::Display for NeedsShell {
    /// `<file>:<line>: needs bash (<what>)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let line = (self.line > 0).then_some(self.line);
        write!(
            f,
            "{}: needs bash ({})",
            place(&self.file, &line),
            self.what
        )
    }
}

/// Why a dkms.conf could not be read or is not valid; [`ConfError::exit_code`] is dkms's.
#[derive(Debug, thiserror::Error)]
pub enum ConfError {
    /// dkms: "Could not locate dkms.conf file." (exit 4).
    #[error("{}: could not locate dkms.conf file: {source}", path.display())]
    Missing {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A validation failure of read_conf (exit 8): the first problem, the others in `more`.
    #[error(
        "{}: {kind}{} ({directive}){}",
        place(path, line),
        record_text(record),
        more_text(&rest.more)
    )]
    Invalid {
        /// The file that assigned the offending directive (the dkms.conf or an override).
        path: PathBuf,
        /// Line of the directive (native reader only).
        line: Option<usize>,
        directive: &'static str,
        /// The record index (`BUILT_MODULE_NAME[i]`...) or patch index.
        record: Option<usize>,
        kind: Problem,
        /// The dkms.conf read and the problems after this one (boxed: errors stay small).
        rest: Box<Rest>,
    },
    /// Not a file dkms-rs reads as a dkms.conf (exit 8, as a bad conf): not a regular file,
    /// or larger than [`MAX_CONF_SIZE`]. A link to /dev/zero or a FIFO is never read.
    #[error("{}: {why}", path.display())]
    Refused { path: PathBuf, why: Refusal },
    /// `--no-exec` ([`ResolveContext::no_exec`]): the file needs bash, which would run its
    /// shell code, so it is not read at all (exit 8, as a bad conf).
    #[error("{shell}: --no-exec refuses to run its shell code")]
    NotRun { shell: NeedsShell },
    /// bash could not evaluate the file at all (exit 8, as a bad conf).
    #[error("{}: {failure}", path.display())]
    Shell {
        /// The dkms.conf (or, for [`ShellFailure::NeedsBash`], the override) concerned.
        path: PathBuf,
        failure: ShellFailure,
    },
}

/// What a [`ConfError::Invalid`] says besides its first problem.
#[derive(Debug, Clone)]
pub struct Rest {
    /// The dkms.conf read (what dkms's "Bad conf file." names).
    pub conf: PathBuf,
    /// The problems after the first, in dkms's order (each an `Invalid` with none after).
    pub more: Vec<ConfError>,
}

/// The largest dkms.conf read (the biggest of Debian's -dkms packages is about 10 KiB).
pub const MAX_CONF_SIZE: u64 = 1 << 20;

/// Why a dkms.conf is refused unread: what [`ConfError::Refused`] says after the file's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// What it is instead: "a directory", "a FIFO", "a character device", ...
    #[error("not a regular file ({0})")]
    NotRegular(&'static str),
    /// At least this many bytes (the size it has, or what was read before giving up).
    #[error("larger than 1 MiB ({size} bytes), the most dkms-rs reads of a dkms.conf")]
    TooLarge { size: u64 },
}

/// Why a dkms.conf was not evaluated: what [`ConfError::Shell`] says after the file's name.
#[derive(Debug, thiserror::Error)]
pub enum ShellFailure {
    /// `Reader::Native` only: the file uses shell the native reader does not model.
    #[error("line {line}: needs bash: {what}")]
    NeedsBash { line: usize, what: &'static str },
    /// bash could not be started.
    #[error("cannot run bash: {0}")]
    Spawn(std::io::Error),
    /// bash ended (the file killed it, or bash itself failed) before printing the variables.
    #[error("bash exited with {status} before dkms's variables could be read: {stderr}")]
    Ended {
        status: std::process::ExitStatus,
        /// What bash printed on stderr, trimmed.
        stderr: String,
    },
    /// bash printed an array index that is not a number.
    #[error("unexpected index {index:?} for {name}")]
    BadIndex { name: String, index: String },
}

impl Clone for ShellFailure {
    fn clone(&self) -> Self {
        match self {
            ShellFailure::NeedsBash { line, what } => ShellFailure::NeedsBash { line: *line, what },
            ShellFailure::Spawn(e) => {
                ShellFailure::Spawn(std::io::Error::new(e.kind(), e.to_string()))
            }
            ShellFailure::Ended { status, stderr } => ShellFailure::Ended {
                status: *status,
                stderr: stderr.clone(),
            },
            ShellFailure::BadIndex { name, index } => ShellFailure::BadIndex {
                name: name.clone(),
                index: index.clone(),
            },
        }
    }
}

impl Clone for ConfError {
    fn clone(&self) -> Self {
        match self {
            ConfError::Missing { path, source } => ConfError::Missing {
                path: path.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            ConfError::Invalid {
                path,
                line,
                directive,
                record,
                kind,
                rest,
            } => ConfError::Invalid {
                path: path.clone(),
                line: *line,
                directive,
                record: *record,
                kind: kind.clone(),
                rest: rest.clone(),
            },
            ConfError::Refused { path, why } => ConfError::Refused {
                path: path.clone(),
                why: *why,
            },
            ConfError::Shell { path, failure } => ConfError::Shell {
                path: path.clone(),
                failure: failure.clone(),
            },
            ConfError::NotRun { shell } => ConfError::NotRun {
                shell: shell.clone(),
            },
        }
    }
}

impl ConfError {
    /// What dkms 3.2.2's read_conf prints for an [`ConfError::Invalid`] (each problem, dkms's
    /// first then dkms-rs's own, `dkms.conf: Error! ...`) and the dkms.conf it then names;
    /// `None` for the other errors.
    pub fn dkms_lines(&self) -> Option<(Vec<String>, &Path)> {
        let ConfError::Invalid { rest, .. } = self else {
            return None;
        };
        let mut lines = Vec::new();
        for problem in std::iter::once(self).chain(&rest.more) {
            if let ConfError::Invalid {
                path,
                line,
                directive,
                record,
                kind,
                ..
            } = problem
            {
                let words = kind.dkms_words(directive, *record).unwrap_or_else(|| {
                    format!("{kind}{} ({}).", record_text(record), place(path, line))
                });
                lines.push(format!("dkms.conf: Error! {words}"));
            }
        }
        Some((lines, &rest.conf))
    }

    /// dkms's exit code: 4 when the file is missing, 8 for a bad conf.
    pub fn exit_code(&self) -> i32 {
        match self {
            ConfError::Missing { .. } => 4,
            ConfError::Invalid { .. }
            | ConfError::Refused { .. }
            | ConfError::Shell { .. }
            | ConfError::NotRun { .. } => 8,
        }
    }
}

/// Which reader produced a [`Resolution`] (for tests and benchmarks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    /// Only the native reader: lets tests compare both paths.
    Native,
    /// Only bash.
    Bash,
    /// Native, handing over to bash when the file needs it (what [`read`] does).
    Auto,
}

/// Read `path` (a dkms.conf) as dkms 3.0.10's `read_conf` does for `ctx`
/// ([`ConfFile::read`] then [`ConfFile::resolve`]).
pub fn read(path: &Path, ctx: &ResolveContext) -> Result<ModuleConf, ConfError> {
    ConfFile::read(path)?.resolve(ctx)
}

/// PACKAGE_NAME and PACKAGE_VERSION of a dkms.conf, fully validated, for any kernel
/// ([`ConfFile::identity`]).
pub fn read_identity(path: &Path) -> Result<(String, String), ConfError> {
    ConfFile::read(path)?.identity()
}

/// Resolve `path` for `ctx` without failing on validation ([`ConfFile::evaluate`]); `Err`
/// also when the file is missing.
pub fn evaluate(
    path: &Path,
    ctx: &ResolveContext,
    reader: Reader,
) -> Result<Resolution, ConfError> {
    ConfFile::read(path)?.evaluate(ctx, reader)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_one_path_component() {
        for (name, want) in [
            ("hello", None),
            ("a b", None),
            ("1.0~rc1+git", None),
            ("..hidden", None),
            ("a..b", None),
            (".", Some(NameFault::Dot)),
            ("..", Some(NameFault::DotDot)),
            ("../x", Some(NameFault::Slash)),
            ("a/b", Some(NameFault::Slash)),
            ("/abs", Some(NameFault::Slash)),
            ("x/", Some(NameFault::Slash)),
            // No reader lets these through (safe_source echoes values unquoted); checked all
            // the same, for values that reach a ModuleConf another way.
            ("a\nb", Some(NameFault::Newline)),
            ("a\0b", Some(NameFault::Nul)),
        ] {
            assert_eq!(NameFault::of(name), want, "{name:?}");
        }
        let shown = Problem::BadDestModuleName(NameFault::Slash).to_string();
        assert_eq!(
            shown,
            "'DEST_MODULE_NAME' directive is not a single path component: it contains '/'"
        );
    }

    #[test]
    fn dest_dir_is_under_the_modules_dir() {
        let record = |dest: &str| ModuleRecord {
            built_name: "m".into(),
            built_location: String::new(),
            dest_name: "m".into(),
            dest_location: dest.into(),
            strip: true,
        };
        let lib = Path::new("/lib/modules/6.1.0-999-amd64");
        for (dest, want) in [
            ("/updates/dkms", "/lib/modules/6.1.0-999-amd64/updates/dkms"),
            (
                "/kernel/drivers/net",
                "/lib/modules/6.1.0-999-amd64/kernel/drivers/net",
            ),
            ("//extra", "/lib/modules/6.1.0-999-amd64/extra"),
            ("extra", "/lib/modules/6.1.0-999-amd64/extra"),
        ] {
            assert_eq!(record(dest).dest_dir(lib), Path::new(want), "{dest}");
        }
        // The field keeps dkms's spelling.
        assert_eq!(record("/updates/dkms").dest_location, "/updates/dkms");
    }
}
