//! The maintainer-script logic of a `-dkms` package on the target machine: what Debian's
//! `/usr/lib/dkms/common.postinst` does on `configure`, and the prerm's removal, natively
//! on top of [`crate::action::Session`].
//!
//! `configure` follows common.postinst (dkms 3.0.10) step by step, with three deliberate
//! differences, each explained where it is made:
//! - the same version already in the tree is kept when it is current (common.postinst removes
//!   and rebuilds it), so a second `configure` is a no-op;
//! - on an upgrade, older versions of the module are removed (common.postinst's comment says
//!   "we never want to keep an older version side by side", but its code only removes the
//!   same version and leaves older ones to the old package's prerm);
//!
//! Prebuilt modules are loaded as common.postinst loads them: when the package ships
//! `/usr/share/<package>/<m>-<v>.dkms.tar.gz` (see [`Hook::tarball_root`]), it is loaded with
//! `ldtarball` instead of a plain `add`, so the kernels it has modules for are installed
//! without compiling. Unlike dkms 3.0.10 (whose load loop keeps only the first kernel of a
//! tarball), every kernel in it is loaded.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use crate::action::Session;
use crate::console::Console;
use crate::error::{ActionError, io_error};
use crate::framework::Framework;
use crate::kernel::{KernelRelease, Target, has_headers, machine_arch, version_key};
use crate::tree::{ModuleVersion, Roots, Tree};

/// The hook: a [`Session`] on the tree plus the facts common.postinst reads from the system.
#[derive(Debug, Clone)]
pub struct Hook {
    pub session: Session,
    /// `uname -r`, or the kernel to treat as running.
    pub running_kernel: KernelRelease,
    /// Where `config-<k>` files tell which kernels are installed (/boot).
    pub boot_dir: PathBuf,
    /// Where the package keeps its prebuilt-module tarball `<m>-<v>.dkms.tar.gz`
    /// (common.postinst's TARBALL_ROOT): by default `/usr/share/$DPKG_MAINTSCRIPT_PACKAGE`,
    /// which dpkg sets for maintainer scripts; `None` outside them.
    pub tarball_root: Option<PathBuf>,
}

impl Hook {
    /// The hook as the machine is set up: framework.conf read from the etc dir, roots
    /// overridden by `roots`, jobs from `parallel_jobs` or the CPU count.
    pub fn open(
        roots: Roots,
        running_kernel: Option<KernelRelease>,
        console: Console,
    ) -> Result<Hook, ActionError> {
        let etc = roots.etc_dir();
        let framework = Framework::read(&etc).map_err(|e| io_error(&etc, e))?;
        let tree = Tree::from_framework(&framework, roots);
        let running_kernel = match running_kernel {
            Some(k) => k,
            None => KernelRelease::running()
                .map_err(|e| io_error(Path::new("/proc/sys/kernel/osrelease"), e))?,
        };
        Ok(Hook {
            session: Session::new(tree, &framework, console),
            running_kernel,
            boot_dir: PathBuf::from("/boot"),
            tarball_root: std::env::var("DPKG_MAINTSCRIPT_PACKAGE")
                .ok()
                .filter(|p| !p.is_empty() && !p.contains('/'))
                .map(|p| Path::new("/usr/share").join(p)),
        })
    }

    fn say(&self, line: &str) {
        self.session.console.say(line);
    }

    fn tree(&self) -> &Tree {
        &self.session.tree
    }

    /// `configure NAME VERSION [PREVIOUS]`: add the module from `<source_tree>/NAME-VERSION`,
    /// then build and install it for the kernels common.postinst picks. A failed build ends
    /// the run with dkms's exit code (10 for make), as common.postinst's `exit $?` does: the
    /// package stays unconfigured and dpkg reports the failure. A BUILD_EXCLUSIVE mismatch
    /// (dkms's 77) and a kernel without headers are skipped with a message, not failures.
    pub fn configure(&self, mv: &ModuleVersion, previous: Option<&str>) -> Result<(), ActionError> {
        let tree = self.tree();
        let no_autoinstall = tree.etc_dir.join("no-autoinstall");
        if no_autoinstall.exists() {
            // common.postinst stops here, before adding anything.
            self.say("autoinstall for dkms modules has been disabled.");
            return Ok(());
        }
        // For the whole run, not per verb: what is read between the verbs (stale, added,
        // built) must still hold when the next one runs. The verbs' own lock is this one.
        let lock = self.session.lock()?;
        lock.run(|| {
            let arch = machine_arch();
            let first = Target {
                kernel: self.running_kernel.clone(),
                arch: arch.clone(),
            };
            if previous.is_some_and(|p| !p.is_empty()) {
                self.remove_older_versions(mv)?;
            }
            if tree.is_added(mv) && self.is_stale(mv) {
                self.say(&format!(
                    "Removing old {}-{} DKMS files...",
                    mv.module, mv.version
                ));
                let targets = self.session.built_targets(mv)?;
                self.session.remove(mv, &targets)?;
            }
            let tarball = self
                .tarball_root
                .as_ref()
                .map(|root| root.join(format!("{}-{}.dkms.tar.gz", mv.module, mv.version)))
                .filter(|t| t.is_file());
            if let Some(tarball) = tarball.filter(|_| !tree.is_added(mv))
                && let Err(e) = self.session.ldtarball(&tarball, &first)
            {
                // common.postinst: "Unable to load DKMS tarball", exit 2.
                if !matches!(e, ActionError::Reported { .. }) {
                    e.report(&self.session.console);
                }
                self.session.console.warn(&format!(
                    "unable to load the DKMS tarball {}",
                    tarball.display()
                ));
                return Err(ActionError::Reported { code: 2 });
            }
            if !tree.is_added(mv) && tree.source_tree_dir(mv).is_dir() {
                self.say(&format!(
                    "Loading new {}-{} DKMS files...",
                    mv.module, mv.version
                ));
                self.session.add(mv, &first)?;
            }

            let kernels = self.kernels(previous.is_some_and(|p| !p.is_empty()));
            self.say(&format!("Building for {}", and_list(&kernels)));
            for kernel in kernels {
                self.configure_kernel(
                    mv,
                    Target {
                        kernel,
                        arch: arch.clone(),
                    },
                )?;
            }
            Ok(())
        })
    }

    /// One kernel of common.postinst's loop: build if not built, install if not installed.
    fn configure_kernel(&self, mv: &ModuleVersion, target: Target) -> Result<(), ActionError> {
        let tree = self.tree();
        let kernel = &target.kernel;
        if kernel.as_str().contains("BOOT") {
            self.say(&format!(
                "\nModule build and install for {kernel} was skipped as \nit is a BOOT variant"
            ));
            return Ok(());
        }
        let conf = if tree.is_added(mv) {
            Some(self.session.read_conf(mv, &target)?)
        } else {
            None
        };
        let built = |conf: &Option<_>| conf.as_ref().is_some_and(|c| tree.is_built(mv, &target, c));
        if !built(&conf) {
            if !tree.source_dir(mv).is_symlink() {
                self.say(&format!(
                    "This package appears to be a binaries-only package\n you will not be able to build against kernel {kernel}\n since the package source was not provided"
                ));
                return Ok(());
            }
            if !has_headers(&tree.headers_dir(kernel)) {
                self.say(&format!(
                    "Module build for kernel {kernel} was skipped since the\nkernel headers for this kernel do not seem to be installed."
                ));
                return Ok(());
            }
            if conf.as_ref().is_some_and(|c| c.build_exclude) {
                // dkms build would exit 77; common.postinst says "Skipped." and goes on.
                self.say(&format!(
                    "Skipped {mv} for kernel {kernel}: BUILD_EXCLUSIVE in its dkms.conf does not match this kernel."
                ));
                return Ok(());
            }
            self.say(&format!("Building initial module for {kernel}"));
            match self.session.build(mv, std::slice::from_ref(&target)) {
                Ok(()) => self.say("Done."),
                Err(ActionError::BuildExcluded { .. }) => {
                    self.say("Skipped.");
                    return Ok(());
                }
                Err(ActionError::Reported { code: 77 }) => {
                    self.say("Skipped.");
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        let conf = self.session.read_conf(mv, &target)?;
        if tree.is_built(mv, &target, &conf) && !tree.is_installed(mv, &target) {
            self.session.install(mv, std::slice::from_ref(&target))?;
        }
        Ok(())
    }

    /// The kernels common.postinst builds for: unless `autoinstall_all_kernels` is set, the
    /// running kernel and the newest installed one; when the running kernel has no
    /// `<install_tree>/<k>` (a chroot or a build daemon), every kernel there, or on an
    /// upgrade only the newest. Kernels are in `ls -v` order.
    pub fn kernels(&self, upgrade: bool) -> Vec<KernelRelease> {
        let tree = self.tree();
        let mut all: Vec<KernelRelease> = std::fs::read_dir(&tree.install_tree)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .map(KernelRelease)
            .collect();
        all.sort_by_key(|k| version_key(k.as_str()));
        if self.session.settings.autoinstall_all_kernels {
            return all;
        }
        let current = &self.running_kernel;
        let newest = self.newest_kernel();
        if tree.kernel_modules_dir(current).exists() {
            match newest {
                Some(n) if &n != current => vec![current.clone(), n],
                _ => vec![current.clone()],
            }
        } else {
            self.say(&format!(
                "It is likely that {current} belongs to a chroot's host"
            ));
            match newest {
                Some(n) if upgrade => vec![n],
                _ => all,
            }
        }
    }

    /// common.postinst's `get_newest_kernel` on Debian: among `<boot>/config-<k>`, the last
    /// (in glob order) whose `<version>-<abi>` is at least the running kernel's and every
    /// earlier pick's, by `dpkg --compare-versions`; only if `<install_tree>/<k>` exists.
    /// The flavour is ignored, as in common.postinst.
    pub fn newest_kernel(&self) -> Option<KernelRelease> {
        if !Path::new("/usr/bin/dpkg").exists() {
            return None;
        }
        let version_abi = |k: &str| -> String {
            let version = k.split('-').next().unwrap_or("");
            let abi = k.split('-').nth(1).unwrap_or(k);
            format!("{version}-{abi}")
        };
        let mut configs: Vec<String> = std::fs::read_dir(&self.boot_dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().is_file())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter_map(|n| n.strip_prefix("config-").map(str::to_string))
            .collect();
        configs.sort();
        let current = self.running_kernel.as_str();
        let current_abi = current.split_once('-').map_or(current, |(_, rest)| rest);
        let current = format!(
            "{}-{}",
            current.split('-').next().unwrap_or(""),
            current_abi.split('-').next().unwrap_or(current_abi)
        );
        let mut newest: Option<String> = None;
        for kernel in configs {
            let compare_to = newest.as_deref().map_or(current.clone(), version_abi);
            let ge = Command::new("dpkg")
                .args([
                    "--compare-versions",
                    &version_abi(&kernel),
                    "ge",
                    &compare_to,
                ])
                .status()
                .is_ok_and(|s| s.success());
            if ge {
                newest = Some(kernel);
            }
        }
        newest
            .map(KernelRelease)
            .filter(|k| self.tree().kernel_modules_dir(k).exists())
    }

    /// Whether the version in the tree must be redone before configuring: its source is not
    /// the link `add` makes to `<source_tree>/<m>-<v>`, or a source file changed (ctime: dpkg
    /// keeps the package's mtimes, but unpacking sets ctime) after a module was built.
    /// common.postinst removes the same version unconditionally; keeping a current one makes
    /// a second `configure` (dpkg-reconfigure, a retried failed configure) a no-op.
    fn is_stale(&self, mv: &ModuleVersion) -> bool {
        let tree = self.tree();
        let link = tree.source_dir(mv);
        let expected = tree.source_tree_dir(mv);
        if std::fs::read_link(&link).ok().as_deref() != Some(expected.as_path()) {
            return true;
        }
        let newest_source = walkdir::WalkDir::new(&expected)
            .follow_links(false)
            .into_iter()
            .flatten()
            .filter_map(|e| e.metadata().ok())
            .filter_map(|m| change_time(&m))
            .max();
        let Some(newest_source) = newest_source else {
            return false;
        };
        tree.target_dirs(mv, None, None).iter().any(|t| {
            std::fs::metadata(tree.built_dir(mv, t).join("module"))
                .ok()
                .and_then(|m| m.modified().ok())
                .is_some_and(|built| built < newest_source)
        })
    }

    /// On an upgrade: every other version of the module older than the one configured goes,
    /// as `dkms remove --all` would (common.postinst's intent: no older version side by side).
    /// A version whose source is gone cannot be read any more; it is named and left alone.
    fn remove_older_versions(&self, mv: &ModuleVersion) -> Result<(), ActionError> {
        let tree = self.tree();
        for old in tree.added_modules(Some(&mv.module), None) {
            if old.version == mv.version || version_key(&old.version) >= version_key(&mv.version) {
                continue;
            }
            if !tree.source_dir(&old).join("dkms.conf").is_file() {
                self.session.console.warn(&format!(
                    "{old} stays in {}: its source {} is gone (remove it with `dkms-rs remove {old} --all`)",
                    tree.dkms_tree.display(),
                    tree.source_dir(&old).display()
                ));
                continue;
            }
            self.say(&format!("Removing older version {old} of the module..."));
            let targets = self.session.built_targets(&old)?;
            self.session.remove(&old, &targets)?;
        }
        Ok(())
    }

    /// `remove NAME VERSION` (prerm on remove, upgrade, deconfigure): uninstall and delete the
    /// version from every kernel, as `dkms remove --all`; nothing to do when it is not there.
    pub fn remove(&self, mv: &ModuleVersion) -> Result<(), ActionError> {
        let tree = self.tree();
        let lock = self.session.lock()?;
        lock.run(|| {
            if !tree.is_added(mv) {
                return Ok(());
            }
            let targets = self.session.built_targets(mv)?;
            self.session.remove(mv, &targets)
        })
    }
}

/// The inode change time of a file.
fn change_time(meta: &std::fs::Metadata) -> Option<SystemTime> {
    use std::os::unix::fs::MetadataExt;
    let secs = u64::try_from(meta.ctime()).ok()?;
    let nanos = u32::try_from(meta.ctime_nsec()).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(std::time::Duration::new(secs, nanos))
}

/// `a, b and c`, as common.postinst's `tr | sed` prints its kernel list.
fn and_list(kernels: &[KernelRelease]) -> String {
    let names: Vec<&str> = kernels.iter().map(KernelRelease::as_str).collect();
    match names.as_slice() {
        [] => String::new(),
        [one] => (*one).to_string(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_list_reads_like_common_postinst() {
        let k = |s: &str| KernelRelease(s.to_string());
        assert_eq!(and_list(&[]), "");
        assert_eq!(and_list(&[k("a")]), "a");
        assert_eq!(and_list(&[k("a"), k("b"), k("c")]), "a, b and c");
    }
}
