//! kernel_preinst, kernel_postinst, kernel_prerm: what the kernel hooks
//! (`/etc/kernel/{preinst.d,postinst.d,header_postinst.d,prerm.d}/dkms`) ask of dkms when a
//! kernel package comes, is upgraded or goes. dkms 3.2.2's verbs (dkms 3.0.10 has none: its
//! prerm hook ran `dkms remove` per module and it had no preinst hook); each follows the
//! function of the same name in 3.2.2's /usr/sbin/dkms.

use std::path::Path;

use crate::error::ActionError;
use crate::kernel::Target;
use crate::tree::ModuleVersion;

use super::Session;

/// Which modules a kernel's removal takes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    /// kernel_preinst: those with AUTOINSTALL, which kernel_postinst builds again.
    Autoinstall,
    /// kernel_prerm: every module built for the kernel, AUTOINSTALL or not.
    All,
}

impl Session {
    /// `kernel_postinst -k K`: a new kernel (image or headers) gets every AUTOINSTALL module,
    /// in parallel, a failing one not stopping the others (dkms 3.2.2: "A wrapper for
    /// 'autoinstall'"). Exit 11 when any failed, as autoinstall.
    /// Autoinstall's lock, and its `<etc>/no-autoinstall` check and message, are its own.
    pub fn kernel_postinst(&self, target: &Target) -> Result<(), ActionError> {
        self.autoinstall(std::slice::from_ref(target))
    }

    /// `kernel_preinst -k K`: before a kernel package is unpacked over the same version,
    /// uninstall and unbuild its AUTOINSTALL modules so that kernel_postinst rebuilds them
    /// against the new headers; on a first install nothing is built and this does nothing.
    pub fn kernel_preinst(&self, target: &Target) -> Result<(), ActionError> {
        self.take_out("kernel_preinst", target, Which::Autoinstall)
    }

    /// `kernel_prerm -k K`: a kernel being removed takes every module built for it out
    /// (uninstall and unbuild, dkms 3.2.2's compromise: `remove` would drop the source the
    /// other kernels use), depmod once, then its empty directories.
    pub fn kernel_prerm(&self, target: &Target) -> Result<(), ActionError> {
        self.take_out("kernel_prerm", target, Which::All)
    }

    /// kernel_preinst's and kernel_prerm's shared loop (3.2.2 has it twice): for each added
    /// module version built for `target` (and with AUTOINSTALL for preinst), "dkms: removing
    /// module m/v for kernel K (arch)" on stderr and unbuild it; one failing does not stop
    /// the others. Then depmod once if anything changed, the empty directories under
    /// `<installtree>/K` (3.2.2: `find ... -type d -empty -delete`), and die 14 naming every
    /// module that failed with its exit code.
    fn take_out(
        &self,
        action: &'static str,
        target: &Target,
        which: Which,
    ) -> Result<(), ActionError> {
        let lock = self.lock()?;
        lock.run(|| {
            let mut failed = Vec::new();
            for mv in self.tree.added_modules(None, None) {
                let conf = match self.read_conf(&mv, target) {
                    Ok(conf) => conf,
                    // 3.2.2's prerm needs no dkms.conf to see a build; preinst dies (8) without
                    // one. Here it is this module's failure, the others still go.
                    Err(e) => {
                        if self.tree.built_dir(&mv, target).join("module").is_dir() {
                            e.report(&self.console);
                            failed.push(format!("{mv}({})", e.exit_code()));
                        }
                        continue;
                    }
                };
                if !self.tree.is_built(&mv, target, &conf) {
                    continue;
                }
                if which == Which::Autoinstall && !conf.autoinstall {
                    continue;
                }
                if !self.console.quiet {
                    crate::console::err_line(&format!(
                        "dkms: removing module {mv} for kernel {target}"
                    ));
                }
                if let Err(e) = self.unbuild_for_kernel(&mv, target, &conf) {
                    e.report(&self.console);
                    failed.push(format!("{mv}({})", e.exit_code()));
                }
            }
            let depmod = self.depmod_all_marked();
            let dir = self.tree.kernel_modules_dir(&target.kernel);
            remove_stale_depmod_files(&dir);
            remove_empty_dirs(&dir);
            if !failed.is_empty() {
                if let Err(e) = depmod {
                    e.report(&self.console);
                }
                return Err(ActionError::KernelHook {
                    action,
                    target: target.clone(),
                    failed,
                });
            }
            depmod
        })
    }

    /// Uninstall (depmod left due) and unbuild one module version for one target.
    fn unbuild_for_kernel(
        &self,
        mv: &ModuleVersion,
        target: &Target,
        conf: &crate::conf::ModuleConf,
    ) -> Result<(), ActionError> {
        // dkms 3.2.2's unbuild_module (maybe_uninstall_module, do_unbuild), then its blank line.
        if self.tree.is_installed(mv, target) {
            self.uninstall_target(mv, target, conf)?;
        } else {
            self.console.say(&format!(
                "Module {mv} is not installed for kernel {target}. Skipping..."
            ));
        }
        self.unbuild_one(mv, target)?;
        self.console.say("");
        Ok(())
    }
}

/// dkms 3.2.2's do_depmod, after depmod: an empty modules.dep means the last module of a
/// kernel that is no longer installed just went, so its depmod files go too (and the
/// directory, when that empties it: [`remove_empty_dirs`]).
fn remove_stale_depmod_files(dir: &Path) {
    if !std::fs::metadata(dir.join("modules.dep")).is_ok_and(|m| m.is_file() && m.len() == 0) {
        return;
    }
    let names = ["alias", "dep", "devname", "softdep", "symbols", "weakdep"];
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("modules.") else {
            continue;
        };
        if names.contains(&rest) || rest.ends_with(".bin") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// `find DIR -type d -empty -delete`: every empty directory under `dir`, deepest first, and
/// `dir` itself when that leaves it empty; a directory that cannot go stays (best effort, as
/// find's failures do not change dkms's exit status).
fn remove_empty_dirs(dir: &Path) {
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return;
    };
    if !meta.is_dir() {
        return;
    }
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_empty_dirs(&entry.path());
        }
    }
    let _ = std::fs::remove_dir(dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_dirs_go_deepest_first_and_files_keep_theirs() {
        let tmp = tempfile::tempdir().unwrap();
        let k = tmp.path().join("k");
        std::fs::create_dir_all(k.join("updates/dkms")).unwrap();
        std::fs::create_dir_all(k.join("kernel/drivers")).unwrap();
        std::fs::write(k.join("kernel/drivers/x.ko"), "").unwrap();
        remove_empty_dirs(&k);
        assert!(!k.join("updates").exists());
        assert!(k.join("kernel/drivers/x.ko").exists());
        let empty = tmp.path().join("e");
        std::fs::create_dir_all(empty.join("a/b")).unwrap();
        remove_empty_dirs(&empty);
        assert!(!empty.exists());
    }
}
