//! The dkms verbs on resolved values: a [`Session`] (the tree, the console, framework.conf's
//! settings and the command's flags) and one file per group of verbs: `add`, `build_install`
//! (build, install, uninstall, unbuild, remove), `autoinstall` (and match), `kernel` (the
//! kernel hooks' kernel_preinst, kernel_postinst, kernel_prerm), `tarball`, `mok`
//! (generate_mok).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::build;
use crate::conf::{ConfFile, ModuleConf};
use crate::console::Console;
use crate::error::{ActionError, io_error};
use crate::framework::Framework;
use crate::install::InstallOptions;
use crate::jobs::{self, Outcome};
use crate::kernel::{Target, version_key};
use crate::tree::{ModuleVersion, Tree};

mod add;
mod autoinstall;
mod build_install;
mod kernel;
mod mok;
mod recover;
mod tarball;

/// Everything one command works with: where (the tree), what the user sees (the console),
/// how this machine builds (framework.conf's [`Settings`]) and what the command line asked
/// ([`Flags`]).
#[derive(Debug, Clone)]
pub struct Session {
    pub tree: Tree,
    pub console: Console,
    pub settings: Settings,
    pub flags: Flags,
    /// The dkms.conf files this command has read.
    pub confs: ConfFiles,
    /// The targets this command has prepared a build for (see [`Session::prepare_target`]).
    pub prepared: Prepared,
}

/// The targets a command has prepared builds for: dkms 3.2.2's `prepare_kernel_and_signing`
/// runs once per kernel and arch in a command, and its output (the signing prologue, then a
/// blank line) comes before the first build there.
#[derive(Debug, Clone)]
pub struct Prepared(
    /// This command's number in the process: its blank lines are its own
    /// ([`Session::prepare_target`]), not another command's.
    u64,
    /// Each kernel's signing as prepared, for the builds after the first (a dependent
    /// rebuilt after an install is signed without the prologue said again).
    Arc<Mutex<BTreeMap<Target, Option<crate::build::Signing>>>>,
);

impl Default for Prepared {
    fn default() -> Self {
        static COMMANDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let id = COMMANDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Prepared(id, Arc::default())
    }
}

/// The dkms.conf files a command has read, by real path (`<m>/<v>/source/dkms.conf` is the
/// `<source_tree>/<m>-<v>/dkms.conf` that `add` read): each is read once per command, then
/// resolved for each kernel from that one read (dkms re-reads it at every step).
#[derive(Debug, Clone, Default)]
pub struct ConfFiles(Arc<Mutex<BTreeMap<PathBuf, Arc<ConfFile>>>>);

impl ConfFiles {
    /// The file at `path`, read now unless this command read it before; dkms's "missing"
    /// error when it is not a file.
    fn get(&self, path: &Path) -> Result<Arc<ConfFile>, ActionError> {
        if !path.is_file() {
            return Err(ActionError::ConfMissing {
                path: path.to_path_buf(),
            });
        }
        let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let mut files = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(file) = files.get(&key) {
            return Ok(file.clone());
        }
        let file = Arc::new(ConfFile::read(path)?);
        files.insert(key, file.clone());
        Ok(file)
    }

    /// Forget `path`: this command is about to write a new dkms.conf there.
    fn forget(&self, path: &Path) {
        let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
    }
}

/// How this machine builds and installs: framework.conf, and `-j` on top of it.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// make's job count and how many builds run at once; `None` = bare `-j` (`-j0`).
    pub jobs: Option<usize>,
    /// framework.conf `symlink_modules`: install links into the tree, not copies.
    pub symlink_modules: bool,
    /// framework.conf `autoinstall_all_kernels`.
    pub autoinstall_all_kernels: bool,
    /// How modules are signed; `None`: they are not (packages' prebuilt modules: the
    /// packager's MOK key means nothing on the machines the package goes to).
    pub signing: Option<build::SigningConf>,
    /// framework.conf's `post_transaction` command (see [`Session::post_transaction`]).
    pub post_transaction: Option<String>,
    /// framework.conf's `build_user` and the file that set it ([`build::BuildUser::resolve`]).
    pub build_user: Option<(String, std::path::PathBuf)>,
}

impl Settings {
    /// framework.conf's settings (`parallel_jobs`, `symlink_modules`,
    /// `autoinstall_all_kernels`, the signing keys).
    pub fn from_framework(framework: &Framework) -> Settings {
        Settings {
            jobs: jobs::limit(framework.parallel_jobs),
            symlink_modules: framework.symlink_modules,
            autoinstall_all_kernels: framework.autoinstall_all_kernels,
            signing: Some(
                build::SigningConf {
                    sign_file: framework.sign_file.clone(),
                    mok_signing_key: framework.mok_signing_key.clone(),
                    mok_certificate: framework.mok_certificate.clone(),
                }
                .or_environment(),
            ),
            post_transaction: framework.post_transaction.clone(),
            build_user: framework.build_user.clone(),
        }
    }
}

/// What the command line asked of this one command.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    /// `--force`: rebuild/reinstall even if done; skip the version sanity check.
    pub force: bool,
    /// `--force-version-override`: install over a same or newer version.
    pub force_version_override: bool,
    /// `--no-depmod`.
    pub no_depmod: bool,
    /// `-c`: a dkms.conf to use instead of the module's own.
    pub conf_override: Option<PathBuf>,
}

impl Session {
    /// A session on `tree` with framework.conf's settings (and its `verbose`) and no flags.
    pub fn new(tree: Tree, framework: &Framework, console: Console) -> Session {
        Session {
            tree,
            console: Console {
                verbose: console.verbose || framework.verbose,
                ..console
            },
            settings: Settings::from_framework(framework),
            flags: Flags::default(),
            confs: ConfFiles::default(),
            prepared: Prepared::default(),
        }
    }

    /// dkms 3.2.2's execute_post_transaction, after a successful install, uninstall, unbuild
    /// or remove: framework.conf's `post_transaction` (its `$kernelver` the first kernel of
    /// the command) run by bash, its output in `<dkms_tree>/post_transaction.log` framed as
    /// invoke_command frames a command. Its failure is said, not returned (dkms's exit is the
    /// action's).
    pub fn post_transaction(
        &self,
        kernel: &crate::kernel::KernelRelease,
    ) -> Result<(), ActionError> {
        let Some(command) = &self.settings.post_transaction else {
            return Ok(());
        };
        let command = command
            .replace("${kernelver}", kernel.as_str())
            .replace("$kernelver", kernel.as_str());
        let log_path = self.tree.dkms_tree.join("post_transaction.log");
        let started = std::time::Instant::now();
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(&command)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| io_error(Path::new("bash"), e))?;
        let code = out.status.code().unwrap_or(-1);
        let secs = started.elapsed().as_secs();
        let log = format!(
            "\nExecuting post-transaction command\n# command: {command}\n{}{}\n# exit code: {code}\n# elapsed time: {:02}:{:02}:{:02}\n{}\n",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            "-".repeat(64)
        );
        crate::atomic::write_into_place(&log_path, log.as_bytes())
            .map_err(|e| io_error(&log_path, e))?;
        if out.status.success() {
            self.console
                .say("Executing post-transaction command... done.");
        } else {
            self.console.say(&format!(
                "Executing post-transaction command...(bad exit status: {code})\nFailed command:\n{command}"
            ));
        }
        Ok(())
    }

    /// The blank line dkms 3.2.2 prints when it first prepares `target` in a command (after
    /// signing's prologue), said once per command and target: of parallel jobs, the first in
    /// the jobs' order says it (their lines are written in that order, [`jobs::run`]), as when
    /// they run one after the other.
    pub(crate) fn prepare_target(&self, target: &Target) {
        self.console
            .say_once(format!("{} {target}", self.prepared.0), "");
    }

    /// Take the tree's lock until the guard drops (waiting for another command's). Every
    /// verb here that changes the tree takes it itself, so no caller can forget it; a caller
    /// that reads the tree before a verb (`--all`'s targets) takes it first, for the whole
    /// command: taken again by the same thread, it is the same lock (see [`Tree::lock`]).
    ///
    /// The command that takes the lock first finishes what a killed command left (see
    /// [`recover`]), so every verb starts from a tree that tells the truth; when the command
    /// before it ended well ([`crate::tree::TreeLock::done`]) nothing can be left in the
    /// module directories, and they are not searched (a command on one module costs the
    /// same whatever the tree holds).
    /// A verb calls `done` on its guard when it succeeds.
    pub fn lock(&self) -> Result<crate::tree::TreeLock, ActionError> {
        let lock = self
            .tree
            .lock()
            .map_err(|e| io_error(&self.tree.dkms_tree, e))?;
        if lock.is_outermost() {
            self.recover(!lock.was_clean())?;
            lock.recovered();
        }
        Ok(lock)
    }

    fn concurrency(&self) -> usize {
        self.settings.jobs.unwrap_or(1).max(1)
    }

    fn install_options(&self) -> InstallOptions {
        InstallOptions {
            force: self.flags.force,
            force_version_override: self.flags.force_version_override,
            symlink_modules: self.settings.symlink_modules,
        }
    }

    /// The module's dkms.conf resolved for a target.
    pub fn read_conf(
        &self,
        mv: &ModuleVersion,
        target: &Target,
    ) -> Result<ModuleConf, ActionError> {
        let path = self
            .flags
            .conf_override
            .clone()
            .unwrap_or_else(|| self.tree.source_dir(mv).join("dkms.conf"));
        self.conf_at(&path, target, Some(mv))
    }

    /// The dkms.conf at `path` (read once per command) resolved for `target`, as dkms reads
    /// it for `module` (or, when `None`, to learn the module's name and version).
    pub fn conf_at(
        &self,
        path: &Path,
        target: &Target,
        module: Option<&ModuleVersion>,
    ) -> Result<ModuleConf, ActionError> {
        let file = self.confs.get(path)?;
        Ok(file.resolve(&self.tree.resolve_context(target, module))?)
    }

    fn require_added(&self, mv: &ModuleVersion) -> Result<(), ActionError> {
        if self.tree.is_broken(mv) {
            return Err(ActionError::Broken { module: mv.clone() });
        }
        if self.tree.is_added(mv) {
            Ok(())
        } else {
            Err(ActionError::NotAdded {
                module: mv.clone(),
                tree: self.tree.dkms_tree.clone(),
            })
        }
    }

    /// The targets a module version is built for (what `--all` means), in dkms's order; a
    /// target whose dkms.conf cannot be read is not built, as for dkms, but under `--no-exec`
    /// one that needs bash is the command's error (else `remove --all` would remove nothing
    /// and exit 0).
    pub fn built_targets(&self, mv: &ModuleVersion) -> Result<Vec<Target>, ActionError> {
        let mut targets = Vec::new();
        for t in self.tree.target_dirs(mv, None, None) {
            match self.read_conf(mv, &t) {
                Ok(conf) if self.tree.is_built(mv, &t, &conf) => targets.push(t),
                Err(ActionError::Conf(e @ crate::conf::ConfError::NotRun { .. })) => {
                    return Err(e.into());
                }
                Ok(_) | Err(_) => {}
            }
        }
        targets.sort_by_key(|a| version_key(&a.kernel.0));
        Ok(targets)
    }
}

/// [`crate::atomic::remove_dir_by_rename`], its error naming `dir`.
fn remove_dir_by_rename(dir: &Path) -> Result<(), ActionError> {
    crate::atomic::remove_dir_by_rename(dir).map_err(|e| io_error(dir, e))
}

/// `targets` without repeats, each where it first came: a kernel given twice (`-k K -k K`)
/// is one target, not two makes in one build directory.
pub fn distinct(targets: &[Target]) -> Vec<Target> {
    let mut seen = std::collections::BTreeSet::new();
    targets
        .iter()
        .filter(|t| seen.insert(*t))
        .cloned()
        .collect()
}

/// The first failure among job outcomes (jobs print their own lines as they finish).
fn first_failure(outcomes: Vec<Outcome>) -> Result<(), ActionError> {
    for outcome in outcomes {
        match outcome {
            Outcome::Done(_) => {}
            Outcome::Failed(e) => {
                return Err(ActionError::Reported {
                    code: e.exit_code(),
                });
            }
            Outcome::Blocked(_) => return Err(ActionError::Reported { code: 1 }),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::KernelRelease;

    #[test]
    fn a_target_given_twice_is_kept_once_where_it_first_came() {
        let t = |k: &str, a: &str| Target {
            kernel: KernelRelease(k.to_string()),
            arch: a.to_string(),
        };
        let given = [
            t("b", "x"),
            t("a", "x"),
            t("b", "x"),
            t("b", "y"),
            t("a", "x"),
        ];
        assert_eq!(
            distinct(&given),
            vec![t("b", "x"), t("a", "x"), t("b", "y")]
        );
    }
}
