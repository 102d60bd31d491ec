//! What a killed command left, finished by the next one that takes the tree lock.
//!
//! Every change to the tree is ordered so that a kill at any step leaves "not yet done",
//! "done", or one of these, each recognisable by its name alone (dpkg's `.dpkg-new` and
//! half-installed records work the same way):
//! - `.<name>.dkms-rs-new`: a file or link being written (see [`atomic::temp_beside`]);
//! - `.<name>.dkms-rs-old`: a directory on its way out ([`atomic::remove_dir_by_rename`]),
//!   such as `<v>/<k>/.<a>.dkms-rs-old`;
//! - `.stage-<k>-<a>`, `.build-<k>-<a>` in a version directory: a build being stored, a
//!   build directory of one kernel of several (`build/` stays: a failed build's make.log
//!   is there, and the next build starts it afresh);
//! - an empty `<k>` directory in a version directory, an empty version or module directory;
//! - `<m>/.kernel-<k>-<a>.dkms-rs-pending`: an install or uninstall between its first and
//!   last change to the modules directory ([`install::recover_pending`]);
//! - `<dkms_tree>/.depmod-<k>.dkms-rs-pending`: modules changed since depmod last ran;
//! - `<source_tree>/.<m>-<v>.dkms-rs-new` or `-old`: a source dir being made or replaced.

use std::path::Path;

use crate::atomic;
use crate::error::{ActionError, io_error};
use crate::install;
use crate::kernel::KernelRelease;
use crate::tree::{ModuleVersion, PENDING_SUFFIX};

use super::Session;

/// Directories of a version directory that are dkms's, never a kernel's.
const VERSION_DIR_PARTS: [&str; 7] = [
    "source",
    "build",
    "tarball",
    "driver_disk",
    "rpm",
    "deb",
    "log",
];

impl Session {
    /// Finish what killed commands left in the tree (see the module's list). Run by the
    /// command that takes the lock, before it reads the tree. `modules`: look in every
    /// module directory too; not needed when the command that held the lock last ended well
    /// (see [`crate::tree::TreeLock::done`]): only a command under the lock changes them.
    /// The top of the tree and of the source tree are looked at always: `status` writes its
    /// record there without the lock, and a killed one leaves its temp file.
    pub(super) fn recover(&self, modules: bool) -> Result<(), ActionError> {
        let tree_dir = &self.tree.dkms_tree;
        for entry in read_dir(tree_dir) {
            let path = entry.path();
            let name = entry.file_name();
            if atomic::is_leftover(&name) {
                self.discard(&path)?;
            } else if modules && !name.to_string_lossy().starts_with('.') && is_real_dir(&path) {
                self.recover_module(&name.to_string_lossy())?;
            }
        }
        // A source dir that ldtarball or `add DIR` was making or replacing.
        for entry in read_dir(&self.tree.source_tree) {
            if atomic::is_leftover(&entry.file_name()) {
                self.discard(&entry.path())?;
            }
        }
        // Last: the pending installs above may have changed modules too.
        for kernel in self.tree.pending_depmods() {
            self.console.say(&format!(
                "Running depmod for kernel {kernel}, which an interrupted command did not"
            ));
            self.depmod_marked(&kernel)?;
        }
        Ok(())
    }

    fn recover_module(&self, module: &str) -> Result<(), ActionError> {
        let module_dir = self.tree.module_dir(module);
        let mut pending = Vec::new();
        for entry in read_dir(&module_dir) {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if atomic::is_leftover(entry.file_name().as_os_str()) {
                self.discard(&path)?;
            } else if name.starts_with('.') && name.ends_with(PENDING_SUFFIX) {
                pending.push(path);
            } else if !name.starts_with('.') && name != "original_module" && is_real_dir(&path) {
                recover_version_dir(&path)?;
            }
        }
        for record in pending {
            let Some((version, target)) = install::read_pending(&record) else {
                self.discard(&record)?;
                continue;
            };
            let mv = ModuleVersion {
                module: module.to_owned(),
                version,
            };
            match self.read_conf(&mv, &target) {
                Ok(conf) => {
                    self.console.say(&format!(
                        "Completing an interrupted install or uninstall of {mv} for kernel {target}"
                    ));
                    let _ = self.mark_depmod(&target.kernel)?;
                    install::recover_pending(&self.tree, &mv, &target, &conf, &self.console)?;
                }
                Err(e) => {
                    // No dkms.conf to say where its files went: nothing can be done with it.
                    self.console.warn(&format!(
                        "{}: an interrupted command's record, for {mv} whose dkms.conf cannot be read ({e}): removed",
                        record.display()
                    ));
                    self.discard(&record)?;
                }
            }
        }
        // A module directory a killed `add` or `remove` left empty.
        let _ = std::fs::remove_dir(&module_dir);
        Ok(())
    }

    fn discard(&self, path: &Path) -> Result<(), ActionError> {
        self.console.verbose(&format!(
            "Removing {}, left by an interrupted command",
            path.display()
        ));
        atomic::remove_leftover(path).map_err(|e| io_error(path, e))
    }

    /// Record that `kernel`'s modules are about to change, so that depmod runs for it even if
    /// this command is killed before its own depmod; nothing with `--no-depmod` (the caller
    /// runs depmod).
    ///
    /// Returns the record if this call wrote it, for [`Session::unmark_depmod`] when the
    /// change fails with the modules as they were.
    pub(super) fn mark_depmod(
        &self,
        kernel: &KernelRelease,
    ) -> Result<Option<std::path::PathBuf>, ActionError> {
        if self.flags.no_depmod {
            return Ok(None);
        }
        let record = self.tree.pending_depmod(kernel);
        if record.exists() {
            return Ok(None);
        }
        atomic::write_into_place(&record, format!("{kernel}\n").as_bytes())
            .map_err(|e| io_error(&record, e))?;
        Ok(Some(record))
    }

    /// Take back a record [`Session::mark_depmod`] wrote, when nothing changed after all.
    pub(super) fn unmark_depmod(&self, written: Option<std::path::PathBuf>) {
        if let Some(record) = written {
            let _ = atomic::remove_leftover(&record);
        }
    }

    /// depmod for a kernel whose record is there, then the record goes. A kernel whose
    /// modules directory is gone (its package removed) has nothing to depmod.
    pub(super) fn depmod_marked(&self, kernel: &KernelRelease) -> Result<(), ActionError> {
        if self.tree.kernel_modules_dir(kernel).is_dir() {
            // invoke_command's words for dkms 3.2.2's do_depmod.
            match install::depmod(&self.tree, kernel) {
                Ok(()) => self.console.say("Running depmod... done."),
                Err(e) => {
                    self.console.say("Running depmod...(bad exit status: 1)");
                    return Err(e);
                }
            }
        }
        let record = self.tree.pending_depmod(kernel);
        atomic::remove_leftover(&record).map_err(|e| io_error(&record, e))
    }

    /// depmod for every kernel whose modules changed; the first failure after trying all.
    pub(super) fn depmod_all_marked(&self) -> Result<(), ActionError> {
        let mut first_error = None;
        for kernel in self.tree.pending_depmods() {
            if let Err(e) = self.depmod_marked(&kernel) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// A version directory's leftovers: hidden stages and build dirs, a build dir with content,
/// empty kernel dirs; then the directory itself if that left it empty.
fn recover_version_dir(dir: &Path) -> Result<(), ActionError> {
    for entry in read_dir(dir) {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let stale = atomic::is_leftover(entry.file_name().as_os_str())
            || name.starts_with(".stage-")
            || name.starts_with(".build-");
        if stale {
            atomic::remove_leftover(&path).map_err(|e| io_error(&path, e))?;
        } else if !name.starts_with('.')
            && !VERSION_DIR_PARTS.contains(&name.as_str())
            && is_real_dir(&path)
        {
            // A kernel dir: its arch dirs on their way out, then itself if empty (a killed
            // build or unbuild).
            for arch in read_dir(&path) {
                if atomic::is_leftover(&arch.file_name()) {
                    let arch = arch.path();
                    atomic::remove_leftover(&arch).map_err(|e| io_error(&arch, e))?;
                }
            }
            let _ = std::fs::remove_dir(&path);
        }
    }
    let _ = std::fs::remove_dir(dir);
    Ok(())
}

fn read_dir(dir: &Path) -> impl Iterator<Item = std::fs::DirEntry> {
    std::fs::read_dir(dir).into_iter().flatten().flatten()
}

/// A directory, not a link to one.
fn is_real_dir(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}
