//! Why a dkms action failed ([`ActionError`]), and dkms 3's exit code for each reason.

use std::path::{Path, PathBuf};

use crate::conf::ConfError;
use crate::console::Console;
use crate::kernel::{KernelRelease, Target};
use crate::tree::ModuleVersion;

/// Why an action failed; [`ActionError::exit_code`] is dkms 3's exit code for it.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// A command line dkms would refuse (worded by the binary that parsed it).
    #[error("{0}")]
    Usage(String),
    /// An option given to an action it does not apply to (dkms 3.2.2's exit code for an
    /// unknown option).
    #[error("{option} does not apply to the action {action} (it is for: {for_actions})")]
    OptionNotForAction {
        option: String,
        action: String,
        for_actions: String,
    },
    #[error("the templatekernel and the specified kernel version are the same")]
    SameTemplateKernel { kernel: KernelRelease },
    /// framework.conf's `build_user` names a user this machine does not have.
    #[error("{}: build_user={user}: no such user", file.display())]
    NoBuildUser { file: PathBuf, user: String },
    #[error("SOURCE_DATE_EPOCH {value:?} is not a whole number of seconds")]
    BadSourceDateEpoch { value: String },
    #[error(
        "DKMS tree already contains: {module}\nYou cannot add the same module/version combo more than once."
    )]
    AlreadyAdded { module: ModuleVersion, dir: PathBuf },
    #[error("The module/version combo: {module} is not located in the DKMS tree.")]
    NotAdded {
        module: ModuleVersion,
        tree: PathBuf,
    },
    /// dkms 3.2.2's distro_version, before any action: neither /etc/os-release nor
    /// /usr/lib/os-release.
    #[error("System is missing os-release file.")]
    NoOsRelease,
    /// dkms 3.2.2's read_conf_or_die, after read_conf said why.
    #[error("Bad conf file.\nFile: {} does not represent a valid dkms.conf file.", path.display())]
    BadConf { path: PathBuf },
    /// dkms 3.2.2's module_is_broken_and_die.
    #[error(
        "{module} is broken!\nMissing the source directory or the symbolic link pointing to it.\nManual intervention is required!"
    )]
    Broken { module: ModuleVersion },
    #[error("Could not find module source directory.\nDirectory: {} does not exist.", dir.display())]
    SourceMissing { dir: PathBuf },
    #[error("{dir} must contain a dkms.conf file")]
    NotASourceTree { dir: PathBuf },
    #[error("could not locate dkms.conf: {path} does not exist")]
    ConfMissing { path: PathBuf },
    #[error(transparent)]
    Conf(#[from] ConfError),
    #[error("already built: {dir} exists (use remove or unbuild first)")]
    AlreadyBuilt { dir: PathBuf },
    /// dkms 3.2.2's diewarn 77 (a warning, not an error); `conf` is the path it names,
    /// `<m>/<v>/<k>/<a>/dkms.conf`.
    #[error(
        "The {}\nfor module {what} includes a BUILD_EXCLUSIVE directive\nwhich does not match this kernel/arch/config.\nThis indicates that it should not be built.",
        conf.display()
    )]
    BuildExcluded { what: String, conf: PathBuf },
    #[error("The directory {} does not appear to have module source located within it.\nBuild halted.", dir.display())]
    NoSource { dir: PathBuf },
    #[error(
        "Your kernel headers for kernel {kernel} cannot be found at {} or {}.\nPlease install the linux-headers-{kernel} package or use the --kernelsourcedir option to tell DKMS where it's located.",
        dir.display(), dir.with_file_name("source").display()
    )]
    NoHeaders { kernel: KernelRelease, dir: PathBuf },
    #[error("Aborting build of module {what} due to missing BUILD_DEPENDS: {}.\nYou may override by specifying --force.", missing.join(" "))]
    MissingBuildDepends { what: String, missing: Vec<String> },
    /// dkms 3.2.2 refuses, at build, a patch whose `patches/<name>` has a `/../`.
    #[error("Patch {patch} as specified in dkms.conf contains '..' path component.")]
    PatchDotDot { patch: String },
    #[error("Patch {patch} as specified in dkms.conf cannot be\nfound in {}/.", dir.display())]
    PatchMissing { patch: String, dir: PathBuf },
    #[error("Application of patch {patch} failed.\nConsult {}/make.log for more information.", dir.display())]
    PatchFailed { patch: String, dir: PathBuf },
    #[error(
        "Bad return status for module build on kernel: {}\nConsult {} for more information.",
        .0.target, .0.log.display()
    )]
    MakeFailed(Box<MakeFailure>),
    /// dkms 3.2.2's do_install: a built module's file is not there (6).
    #[error("Missing module {name} in {}", dir.display())]
    MissingBuiltModule { name: String, dir: PathBuf },
    /// dkms 3.2.2's do_build: make ended well but a module of the conf is not where the conf
    /// says it is built (`name` with its BUILT_MODULE_LOCATION).
    #[error(
        "Build of {name} failed for: {target}\nMake sure the name and location of the generated module are correct,\nor consult {} for more information.",
        log.display()
    )]
    ModuleNotProduced {
        name: String,
        target: Target,
        log: PathBuf,
    },
    #[error("{dir} does not exist: cannot install a module onto a non-existent kernel")]
    NoKernelDir { dir: PathBuf },
    #[error("Installation aborted.")]
    InstallAborted { module: ModuleVersion },
    #[error("pre_install failed, aborting install.\nYou may override by specifying --force.")]
    PreInstall { module: ModuleVersion },
    #[error("depmod failed for kernel {kernel}: {detail}")]
    Depmod {
        kernel: KernelRelease,
        detail: String,
    },
    #[error("{} failed ({}){}", command_line(argv), exit_text(*code), stderr_text(stderr))]
    Command {
        /// The program and its arguments.
        argv: Vec<std::ffi::OsString>,
        /// Its exit status, `None` when a signal ended it.
        code: Option<i32>,
        /// What it printed on stderr, trimmed.
        stderr: String,
    },
    #[error(
        "One or more modules failed to install during autoinstall.\nRefer to previous errors for more information."
    )]
    Autoinstall { failed: Vec<String> },
    /// dkms 3.2.2's die 4 from have_one_kernel.
    #[error(
        "The action {action} requires exactly one kernel version parameter on the command line."
    )]
    OneKernel { action: &'static str },
    /// dkms 3.2.2's die 4 from have_one_kernel, for the actions other than kernel_*.
    #[error(
        "The action {action} does not support multiple kernel version parameters on the command line."
    )]
    MultipleKernels { action: &'static str },
    /// dkms 3.2.2's die 5 from check_all_is_banned.
    #[error("The action {action} does not support the --all parameter.")]
    AllNotSupported { action: &'static str },
    /// dkms 3.2.2's die 14: `kernel_preinst`/`kernel_prerm` could not take a module out.
    #[error("dkms {action} for kernel {target} failed for module(s) {}", failed.join(" "))]
    KernelHook {
        action: &'static str,
        target: crate::kernel::Target,
        /// `<m>/<v>(<exit code>)` each, as dkms names them.
        failed: Vec<String>,
    },
    /// A failure already printed (by the line of its finished job); carries its exit code.
    #[error("exit status {code}")]
    Reported { code: i32 },
    #[error(transparent)]
    Tarball(Box<crate::tarball::TarballError>),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ActionError {
    /// dkms 3's exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            ActionError::Usage(_)
            | ActionError::SameTemplateKernel { .. }
            | ActionError::BadSourceDateEpoch { .. }
            // dkms 3.2.2 checks no framework.conf value (it sources the file); 1 is its code
            // for a bad value of the environment, as for SOURCE_DATE_EPOCH above.
            | ActionError::NoBuildUser { .. } => 1,
            ActionError::AlreadyAdded { .. }
            | ActionError::NotAdded { .. }
            | ActionError::AlreadyBuilt { .. } => 3,
            ActionError::SourceMissing { .. } | ActionError::OptionNotForAction { .. } => 2,
            ActionError::Broken { .. } | ActionError::NoOsRelease => 4,
            ActionError::BadConf { .. } => 8,
            ActionError::NotASourceTree { .. } => 9,
            ActionError::ConfMissing { .. } => 4,
            ActionError::Conf(e) => e.exit_code(),
            ActionError::BuildExcluded { .. } => 77,
            ActionError::NoSource { .. } => 8,
            ActionError::NoHeaders { .. } => 21,
            ActionError::MissingBuildDepends { .. } => 13,
            ActionError::PatchMissing { .. } | ActionError::PatchDotDot { .. } => 5,
            ActionError::PatchFailed { .. } => 6,
            ActionError::MakeFailed(_) => 10,
            ActionError::ModuleNotProduced { .. } => 7,
            ActionError::NoKernelDir { .. }
            | ActionError::MissingBuiltModule { .. }
            | ActionError::InstallAborted { .. }
            | ActionError::Depmod { .. } => 6,
            ActionError::PreInstall { .. } => 101,
            ActionError::Command { .. } => 1,
            ActionError::Autoinstall { .. } => 11,
            ActionError::KernelHook { .. } => 14,
            ActionError::OneKernel { .. } | ActionError::MultipleKernels { .. } => 4,
            ActionError::AllNotSupported { .. } => 5,
            ActionError::Reported { code } => *code,
            ActionError::Tarball(e) => e.exit_code(),
            ActionError::Io { .. } => 1,
        }
    }
}

/// A failed make run: what and where its log is.
#[derive(Debug)]
pub struct MakeFailure {
    pub module: ModuleVersion,
    pub target: Target,
    pub status: i32,
    pub log: PathBuf,
    /// The command make.log shows (dkms prints it as "Failed command:").
    pub command: String,
    /// make.log's first errors and the lines around them, and its path
    /// (`build::make::log_excerpt`).
    pub excerpt: String,
}

/// `argv` as a shell would read it back.
fn command_line(argv: &[std::ffi::OsString]) -> String {
    argv.iter()
        .map(|word| crate::templates::shell_quote(&word.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn exit_text(code: Option<i32>) -> String {
    code.map_or_else(
        || "killed by a signal".into(),
        |c| format!("exit status {c}"),
    )
}

fn stderr_text(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

/// An I/O error about a path.
pub fn io_error(path: &Path, source: std::io::Error) -> ActionError {
    ActionError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl ActionError {
    /// Print this error on `console`: one line, and for a failed build its make.log's first
    /// errors.
    pub fn report(&self, console: &Console) {
        let details = match self {
            // dkms 3.2.2 names the log and shows none of it: dkms-rs (the `dkms` command)
            // shows the excerpt only to a person (stderr a terminal), its output elsewhere
            // staying 3.2.2's; its other programs always show it.
            ActionError::MakeFailed(_)
                if console.program == "dkms-rs" && !crate::console::stderr_terminal() =>
            {
                ""
            }
            ActionError::MakeFailed(failure) => failure.excerpt.as_str(),
            ActionError::Conf(e) if console.program == "dkms-rs" => {
                // dkms 3.2.2's read_conf says each problem, then read_conf_or_die dies.
                if let Some((lines, conf)) = e.dkms_lines() {
                    for line in lines.iter().flat_map(|l| l.lines()) {
                        crate::console::err_line(line);
                    }
                    let bad = ActionError::BadConf {
                        path: conf.to_path_buf(),
                    };
                    console.error(&bad, "");
                    return;
                }
                ""
            }
            ActionError::BuildExcluded { .. } if console.program == "dkms-rs" => {
                // dkms 3.2.2's diewarn: a warning, then the exit code.
                for (i, line) in self.to_string().lines().enumerate() {
                    if !console.quiet {
                        crate::console::err_line(&if i == 0 {
                            format!("Warning: {line}")
                        } else {
                            line.to_string()
                        });
                    }
                }
                return;
            }
            _ => "",
        };
        console.error(self, details);
    }
}

impl From<crate::tarball::TarballError> for ActionError {
    fn from(e: crate::tarball::TarballError) -> Self {
        ActionError::Tarball(Box::new(e))
    }
}
