//! Install, uninstall and depmod: placing built modules into `<install_tree>/<k>/`.
//!
//! Every module file appears by rename; a module that would be overwritten is moved to
//! `<m>/original_module/<k>/<a>/` first and put back on uninstall.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::atomic;
use crate::build::{ScriptKind, remove_dir_if_exists, run_script};
use crate::conf::ModuleConf;
use crate::console::Console;
use crate::error::{ActionError, io_error};
use crate::kernel::{self, KernelRelease, Target, version_key};
use crate::tree::{ModuleVersion, Tree};

/// Switches of `install`.
#[derive(Debug, Clone, Copy, Default)]
pub struct InstallOptions {
    pub force: bool,
    pub force_version_override: bool,
    /// framework.conf `symlink_modules`: link to the built module instead of copying it.
    pub symlink_modules: bool,
}

/// dkms's `get_module_verinfo`: a module file's `version:` and its `srcversion:` (or, from
/// an old modinfo, the checksum after the version), from modinfo; empty where it has none.
fn module_verinfo(file: &Path) -> (String, String) {
    let out = Command::new("modinfo").arg(file).output();
    let text = out
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let (mut version, mut checksum, mut srcversion) = (String::new(), String::new(), None);
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("version:") => {
                version = words.next().unwrap_or_default().to_string();
                checksum = words.next().unwrap_or_default().to_string();
            }
            Some("srcversion:") => srcversion = Some(words.next().unwrap_or_default().to_string()),
            _ => {}
        }
    }
    (version, srcversion.unwrap_or(checksum))
}

/// `version:` of a module file: the first line of [`module_verinfo`].
fn module_version(file: &Path) -> String {
    module_verinfo(file).0
}

/// Every `<name>.ko[.ext]` under a kernel's module directory (dkms's `find_module`).
fn find_modules(lib_dir: &Path, name: &str) -> Vec<PathBuf> {
    let plain = format!("{name}.ko");
    walkdir::WalkDir::new(lib_dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .filter(|e| {
            let n = e.file_name().to_string_lossy();
            n == plain.as_str()
                || n.strip_prefix(plain.as_str())
                    .is_some_and(|ext| [".gz", ".xz", ".zst"].contains(&ext))
        })
        .map(|e| e.into_path())
        .collect()
}

/// dkms's OBSOLETE_BY rule: the module is part of kernel `obsolete_by` and later ones.
fn obsoleted(kernel: &str, obsolete_by: &str) -> bool {
    let obs: Vec<&str> = obsolete_by.split('-').collect();
    let my: Vec<&str> = kernel.split('-').collect();
    let (Some(o0), Some(m0)) = (obs.first(), my.first()) else {
        return false;
    };
    if version_key(o0) == version_key(m0) {
        match (obs.get(1), my.get(1)) {
            (None, _) => true,
            (Some(o1), Some(m1)) => version_key(m1) >= version_key(o1),
            (Some(_), None) => false,
        }
    } else {
        version_key(m0) > version_key(o0)
    }
}

/// Why dkms 3.2.2's `check_version_sanity` skips a module, as it says it.
#[derive(Debug)]
enum Refusal {
    /// Said with dkms's `error` ("Error! ..."): a newer version is in the kernel.
    Error(String),
    /// Said on stderr as it is.
    Note(String),
}

/// dkms 3.2.2's `check_version_sanity`: `Err` when the kernel already has this module at
/// the same or a newer version (or the module is obsolete on this kernel); the module is
/// then not installed.
fn version_sanity(
    lib_dir: &Path,
    ours: &Path,
    dest_name: &str,
    kernel: &str,
    obsolete_by: Option<&str>,
    opts: InstallOptions,
) -> Result<(), Refusal> {
    if let Some(obs) = obsolete_by.filter(|o| !o.is_empty())
        && !opts.force
        && obsoleted(kernel, obs)
    {
        return Err(Refusal::Note(format!(
            "\nModule has been obsoleted due to being included in kernel {obs}.\n\
             We will avoid installing for future kernels above {obs}.\n\
             You may override by specifying --force."
        )));
    }
    // dkms still looks and compares under --force, then ignores the answer.
    if opts.force || opts.force_version_override {
        return Ok(());
    }
    let found = find_modules(lib_dir, dest_name);
    let [theirs] = found.as_slice() else {
        return Ok(());
    };
    let (their_ver, their_src) = module_verinfo(theirs);
    let (our_ver, our_src) = module_verinfo(ours);
    let file = ours.file_name().map_or_else(
        || format!("{dest_name}.ko"),
        |n| n.to_string_lossy().into_owned(),
    );
    // dkms 3.2.2's compare_module_version, then its check_version_sanity on the answer.
    if their_ver == our_ver {
        // "==" (same srcversion too) is refused when the module says a version or a
        // srcversion, or else when the files are the same (dkms's `diff`); "=" installs.
        let versioned = !our_ver.is_empty() || !our_src.is_empty();
        if their_src == our_src && (versioned || crate::tree::same_bytes(theirs, ours)) {
            return Err(Refusal::Note(if our_ver.is_empty() {
                format!(
                    "Module {} already installed (unversioned module), override by specifying --force",
                    theirs.display()
                )
            } else {
                format!(
                    "Module {} already installed at version {our_ver}, override by specifying --force",
                    theirs.display()
                )
            }));
        }
    } else if version_key(&their_ver) > version_key(&our_ver) {
        // dkms compares VER strings: an unversioned module is older than any version.
        return Err(Refusal::Error(format!(
            "Module version {our_ver} for {file}\n\
             is not newer than what is already found in kernel {kernel} ({their_ver}).\n\
             You may override by specifying --force."
        )));
    }
    Ok(())
}

/// Install a built module for one target, without depmod (the caller runs it once per kernel).
///
/// In the order that lets a kill at any step leave "not installed" or "installed", as dpkg
/// does with its status records: first [`Tree::pending_install`] (naming this version),
/// then the modules directory changes, then the `kernel-<k>-<a>` link (the step that makes
/// the module installed), then the record goes. A command that finds the record with no
/// link takes the files back out ([`recover_pending`]); a failure here does so at once.
pub fn install(
    tree: &Tree,
    mv: &ModuleVersion,
    target: &Target,
    conf: &ModuleConf,
    opts: InstallOptions,
    console: &Console,
) -> Result<(), ActionError> {
    let lib_dir = tree.kernel_modules_dir(&target.kernel);
    if !lib_dir.exists() {
        return Err(ActionError::NoKernelDir { dir: lib_dir });
    }
    let pending = tree.pending_install(&mv.module, target);
    write_pending(&pending, mv, target)?;
    match place_modules(tree, mv, target, conf, opts, console) {
        Ok(()) => remove_pending(&pending),
        Err(e) => {
            // What went in comes out; the original modules go back.
            if !tree.is_installed(mv, target) {
                clear_files(tree, mv, target, conf, console, false)?;
            }
            remove_pending(&pending)?;
            Err(e)
        }
    }
}

/// The part of [`install`] between its records: modules into place, then the link, saying
/// dkms 3.2.2's lines for them (an original kept, each module installed).
fn place_modules(
    tree: &Tree,
    mv: &ModuleVersion,
    target: &Target,
    conf: &ModuleConf,
    opts: InstallOptions,
    console: &Console,
) -> Result<(), ActionError> {
    let lib_dir = tree.kernel_modules_dir(&target.kernel);
    let built = tree.built_dir(mv, target).join("module");
    let compression = target.kernel.module_compression();
    let link = tree.kernel_link(&mv.module, target);
    let first_install = !link.is_symlink();
    let mut any_installed = false;
    for (count, record) in conf.modules.iter().enumerate() {
        let ours =
            kernel::module_file(&built, &record.dest_name, compression).ok_or_else(|| {
                ActionError::MissingBuiltModule {
                    name: record.dest_name.clone(),
                    dir: built.clone(),
                }
            })?;
        if let Err(why) = version_sanity(
            &lib_dir,
            &ours,
            &record.dest_name,
            target.kernel.as_str(),
            conf.obsolete_by.as_deref(),
            opts,
        ) {
            // dkms 3.2.2: said, and this module is not installed (none at all: aborted).
            if !console.quiet {
                match why {
                    Refusal::Error(message) => console.error(&message, ""),
                    Refusal::Note(message) => crate::console::err_line(&message),
                }
            }
            continue;
        }
        if count == 0
            && let Some(script) = &conf.pre_install
            && !run_script(
                ScriptKind::PreInstall,
                script,
                &tree.source_dir(mv),
                None,
                console,
            )?
            && !opts.force
        {
            return Err(ActionError::PreInstall { module: mv.clone() });
        }
        let dest_dir = record.dest_dir(&lib_dir);
        let file_name = ours
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        let dest = dest_dir.join(&file_name);
        if first_install
            && let Some(existing) = kernel::module_file(&dest_dir, &record.dest_name, compression)
            // Ours already, from an install that was killed: not an original to keep.
            && !crate::tree::same_bytes(&ours, &existing)
        {
            let keep = tree.original_dir(&mv.module, target);
            // dkms 3.2.2's do_install.
            console.say(&format!(
                "Found pre-existing {}, archiving for uninstallation",
                existing.display()
            ));
            std::fs::create_dir_all(&keep).map_err(|e| io_error(&keep, e))?;
            let kept_name = existing
                .file_name()
                .map(|n| n.to_os_string())
                .unwrap_or_default();
            move_file(&existing, &keep.join(kept_name))?;
        }
        std::fs::create_dir_all(&dest_dir).map_err(|e| io_error(&dest_dir, e))?;
        if opts.symlink_modules {
            replace_with_symlink(&ours, &dest)?;
        } else {
            copy_into_place(&ours, &dest)?;
        }
        console.say(&format!("Installing {}", dest.display()));
        any_installed = true;
    }
    // dkms 3.2.2: `((num_modules > 0))`, a module of zero modules installs nothing.
    if !any_installed && !conf.modules.is_empty() {
        return Err(ActionError::InstallAborted { module: mv.clone() });
    }
    let relative = Path::new(&mv.version)
        .join(target.kernel.as_str())
        .join(&target.arch);
    replace_with_symlink(&relative, &link)?;
    if let Some(script) = &conf.post_install {
        run_script(
            ScriptKind::PostInstall,
            script,
            &tree.source_dir(mv),
            None,
            console,
        )?;
    }
    Ok(())
}

/// Uninstall a module version from one target, without depmod. Returns whether it was
/// the active (installed) version there.
///
/// The mirror of [`install`]: the record, then the link goes (the module is no longer
/// installed), then its files and the originals go back, then the record goes.
pub fn uninstall(
    tree: &Tree,
    mv: &ModuleVersion,
    target: &Target,
    conf: &ModuleConf,
    console: &Console,
) -> Result<bool, ActionError> {
    let was_active = tree.is_installed(mv, target);
    if was_active {
        // dkms 3.2.2's do_uninstall.
        console.say(&format!("Module {mv} for kernel {target}:"));
        console.say("Before uninstall, this module version was ACTIVE on this kernel.");
        let pending = tree.pending_install(&mv.module, target);
        write_pending(&pending, mv, target)?;
        let link = tree.kernel_link(&mv.module, target);
        std::fs::remove_file(&link).map_err(|e| io_error(&link, e))?;
        clear_files(tree, mv, target, conf, console, true)?;
        remove_pending(&pending)?;
    }
    if let Some(script) = &conf.post_remove {
        run_script(
            ScriptKind::PostRemove,
            script,
            &tree.source_dir(mv),
            None,
            console,
        )?;
    }
    Ok(was_active)
}

/// Take a version's files out of the kernel's modules directory and put the originals back:
/// the body of [`uninstall`], and what finishes an install or uninstall that was killed.
/// Only a file of this version is ours to delete (dkms's find_actual_dest_module_location:
/// the install may have left a newer module of someone else in place).
/// `uninstalling`: an uninstall (dkms says where a module was not found), not a rollback.
fn clear_files(
    tree: &Tree,
    mv: &ModuleVersion,
    target: &Target,
    conf: &ModuleConf,
    console: &Console,
    uninstalling: bool,
) -> Result<(), ActionError> {
    let lib_dir = tree.kernel_modules_dir(&target.kernel);
    let compression = target.kernel.module_compression();
    let keep = tree.original_dir(&mv.module, target);
    let built = tree.built_dir(mv, target).join("module");
    for record in &conf.modules {
        let dest_dir = record.dest_dir(&lib_dir);
        let ours = kernel::module_file(&built, &record.dest_name, compression);
        let owned = |file: &Path| {
            ours.as_deref().is_some_and(|ours| {
                crate::tree::same_bytes(ours, file) || module_version(ours) == module_version(file)
            })
        };
        let mut deleted = false;
        while let Some(file) =
            kernel::module_file(&dest_dir, &record.dest_name, compression).filter(|f| owned(f))
        {
            std::fs::remove_file(&file).map_err(|e| io_error(&file, e))?;
            console.say(&format!("Deleting {}", file.display()));
            deleted = true;
        }
        if !deleted && uninstalling {
            // dkms 3.2.2's do_uninstall when find_actual_dest_module_location finds none.
            console.say(&format!(
                "Module {}.ko{} was not found within {}/",
                record.dest_name,
                compression.extension(),
                lib_dir.display()
            ));
        }
        // A copy a killed install was writing: under either name module_file finds.
        for ext in ["", compression.extension()] {
            let temp = atomic::temp_beside(&dest_dir.join(format!("{}.ko{ext}", record.dest_name)));
            atomic::remove_leftover(&temp).map_err(|e| io_error(&temp, e))?;
        }
        if let Some(original) = kernel::module_file(&keep, &record.dest_name, compression) {
            let name = original
                .file_name()
                .map(|n| n.to_os_string())
                .unwrap_or_default();
            // dkms 3.2.2's do_uninstall.
            console.say(&format!(
                "Restoring archived original module {}",
                dest_dir.join(&name).display()
            ));
            std::fs::create_dir_all(&dest_dir).map_err(|e| io_error(&dest_dir, e))?;
            move_file(&original, &dest_dir.join(name))?;
        } else {
            remove_empty_dirs(&dest_dir, &lib_dir);
        }
    }
    if keep.is_dir() && !keep.join("collisions").exists() {
        remove_dir_if_exists(&keep)?;
        if let Some(kernel_dir) = keep.parent() {
            let _ = std::fs::remove_dir(kernel_dir);
            if let Some(originals) = kernel_dir.parent() {
                let _ = std::fs::remove_dir(originals);
            }
        }
    }
    Ok(())
}

/// What [`Tree::pending_install`] holds: the version, kernel and arch, a line each.
fn write_pending(path: &Path, mv: &ModuleVersion, target: &Target) -> Result<(), ActionError> {
    let text = format!("{}\n{}\n{}\n", mv.version, target.kernel, target.arch);
    atomic::write_into_place(path, text.as_bytes()).map_err(|e| io_error(path, e))
}

fn remove_pending(path: &Path) -> Result<(), ActionError> {
    atomic::remove_leftover(path).map_err(|e| io_error(path, e))
}

/// A [`Tree::pending_install`] record that a killed command left: the version and target
/// it names.
pub fn read_pending(path: &Path) -> Option<(String, Target)> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    let (version, kernel, arch) = (lines.next()?, lines.next()?, lines.next()?);
    Some((
        version.to_owned(),
        Target {
            kernel: KernelRelease(kernel.to_owned()),
            arch: arch.to_owned(),
        },
    ))
}

/// Finish what a killed install or uninstall of `mv` on `target` left (its record is
/// there): installed if the link says so, otherwise not installed, its files out and the
/// originals back. Returns whether the modules directory changed.
pub fn recover_pending(
    tree: &Tree,
    mv: &ModuleVersion,
    target: &Target,
    conf: &ModuleConf,
    console: &Console,
) -> Result<bool, ActionError> {
    let pending = tree.pending_install(&mv.module, target);
    let installed = tree.is_installed(mv, target);
    if !installed {
        clear_files(tree, mv, target, conf, console, false)?;
    }
    remove_pending(&pending)?;
    Ok(!installed)
}

/// Remove `dir` and its parents while empty, stopping at `stop` (dkms: `rmdir -p --ignore-fail-on-non-empty`).
fn remove_empty_dirs(dir: &Path, stop: &Path) {
    let mut current = Some(dir);
    while let Some(d) = current {
        if d == stop || !d.starts_with(stop) {
            break;
        }
        match std::fs::remove_dir(d) {
            // Gone already: a killed command removed it, and maybe not its parent.
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => break,
            _ => {}
        }
        current = d.parent();
    }
}

/// `depmod -a <k>` (with `-F /boot/System.map-<k>` when present) against the install tree.
/// For a tree other than /lib/modules, depmod's `-b` needs `<base>/lib/modules/<k>`: a
/// temporary base with a `lib/modules` link gives it that for any directory.
pub fn depmod(tree: &Tree, kernel: &KernelRelease) -> Result<(), ActionError> {
    let mut cmd = Command::new("depmod");
    cmd.arg("-a");
    let _base_guard;
    if tree.install_tree != Path::new("/lib/modules") {
        let install = tree
            .install_tree
            .canonicalize()
            .map_err(|e| io_error(&tree.install_tree, e))?;
        let base = match install.strip_suffix_path("lib/modules") {
            Some(base) => base,
            None => {
                let dir = tempfile::tempdir().map_err(|e| io_error(&install, e))?;
                let lib = dir.path().join("lib");
                std::fs::create_dir(&lib).map_err(|e| io_error(&lib, e))?;
                std::os::unix::fs::symlink(&install, lib.join("modules"))
                    .map_err(|e| io_error(&lib, e))?;
                let base = dir.path().to_path_buf();
                _base_guard = dir;
                base
            }
        };
        cmd.arg("-b").arg(base);
    }
    cmd.arg(kernel.as_str());
    let system_map = PathBuf::from(format!("/boot/System.map-{kernel}"));
    if system_map.is_file() {
        cmd.arg("-F").arg(&system_map);
    }
    let out = cmd.output().map_err(|e| io_error(Path::new("depmod"), e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(ActionError::Depmod {
            kernel: kernel.clone(),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

trait StripSuffixPath {
    fn strip_suffix_path(&self, suffix: &str) -> Option<PathBuf>;
}

impl StripSuffixPath for Path {
    fn strip_suffix_path(&self, suffix: &str) -> Option<PathBuf> {
        if self.ends_with(suffix) {
            let mut base = self.to_path_buf();
            for _ in Path::new(suffix).components() {
                base.pop();
            }
            Some(base)
        } else {
            None
        }
    }
}

/// [`atomic::copy_into_place`], its error naming `dest`.
fn copy_into_place(from: &Path, dest: &Path) -> Result<(), ActionError> {
    atomic::copy_into_place(from, dest).map_err(|e| io_error(dest, e))
}

/// [`atomic::move_into_place`], its error naming `from`.
fn move_file(from: &Path, to: &Path) -> Result<(), ActionError> {
    atomic::move_into_place(from, to).map_err(|e| io_error(from, e))
}

/// [`atomic::symlink_into_place`], its error naming `link`.
fn replace_with_symlink(target: &Path, link: &Path) -> Result<(), ActionError> {
    atomic::symlink_into_place(target, link).map_err(|e| io_error(link, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn obsolete_by_follows_dkms() {
        assert!(obsoleted("6.1.0-999-amd64", "6.1.0"));
        assert!(obsoleted("6.2.0-1", "6.1.0-5"));
        assert!(!obsoleted("6.0.0-1", "6.1.0-5"));
        assert!(obsoleted("6.1.0-7", "6.1.0-5"));
        assert!(!obsoleted("6.1.0-3", "6.1.0-5"));
    }
}
