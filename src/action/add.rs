//! `add`: a module version joins the tree (a link to its source, or a copied source dir).

use std::path::Path;

use crate::build;
use crate::conf::ModuleConf;
use crate::error::{ActionError, io_error};
use crate::kernel::Target;
use crate::tree::ModuleVersion;

use super::Session;

impl Session {
    /// `add`: link `<source_tree>/<m>-<v>` into the tree after checking its dkms.conf.
    pub fn add(&self, mv: &ModuleVersion, target: &Target) -> Result<(), ActionError> {
        let lock = self.lock()?;
        lock.run(|| {
            self.check_addable(mv)?;
            let conf_path = self
                .flags
                .conf_override
                .clone()
                .unwrap_or_else(|| self.tree.source_tree_dir(mv).join("dkms.conf"));
            let conf = self.conf_at(&conf_path, target, Some(mv))?;
            strict(&conf, &conf_path, target)?;
            self.link_source(mv, &conf)
        })
    }

    /// What dkms's `add_module` checks before reading dkms.conf: not added yet (exit 3), the
    /// source directory is there (exit 2).
    pub(super) fn check_addable(&self, mv: &ModuleVersion) -> Result<(), ActionError> {
        if self.tree.is_added(mv) {
            return Err(ActionError::AlreadyAdded {
                module: mv.clone(),
                dir: self.tree.version_dir(mv),
            });
        }
        let source = self.tree.source_tree_dir(mv);
        if !source.is_dir() {
            return Err(ActionError::SourceMissing { dir: source });
        }
        Ok(())
    }

    /// The `source` link of an added module, then POST_ADD.
    pub(super) fn link_source(
        &self,
        mv: &ModuleVersion,
        conf: &ModuleConf,
    ) -> Result<(), ActionError> {
        let source = self.tree.source_tree_dir(mv);
        let link = self.tree.source_dir(mv);
        self.console.say(&format!(
            "Creating symlink {} -> {}",
            link.display(),
            source.display()
        ));
        let build_dir = self.tree.build_dir(mv);
        std::fs::create_dir_all(&build_dir).map_err(|e| io_error(&build_dir, e))?;
        crate::atomic::symlink_into_place(&source, &link).map_err(|e| io_error(&link, e))?;
        if let Some(script) = &conf.post_add {
            build::run_script(
                build::ScriptKind::PostAdd,
                script,
                &link,
                None,
                &self.console,
            )?;
        }
        Ok(())
    }

    /// `add <dir>`: copy a source tree to `<source_tree>/<m>-<v>` (unless it is there) and add it.
    /// The copy (merged into what is there, as dkms's `cp -fr`, or replacing it with `--force`)
    /// is made beside it and renamed into place whole: a full disk leaves the source tree as
    /// it was.
    pub fn add_source_tree(
        &self,
        dir: &Path,
        target: &Target,
    ) -> Result<ModuleVersion, ActionError> {
        let lock = self.lock()?;
        lock.run(|| {
            let from = dir.canonicalize().map_err(|e| io_error(dir, e))?;
            let conf_path = from.join("dkms.conf");
            if !conf_path.is_file() {
                return Err(ActionError::NotASourceTree { dir: from });
            }
            // Read once: with no `-m`, the conf is read as `-m PACKAGE_NAME -v PACKAGE_VERSION`
            // (see `ResolveContext::module`), which is what `add` would read again.
            let conf = self.conf_at(&conf_path, target, None)?;
            let mv = ModuleVersion {
                module: conf.package_name.clone(),
                version: conf.package_version.clone(),
            };
            let dest = self.tree.source_tree_dir(&mv);
            if from != dest {
                let source_tree = &self.tree.source_tree;
                std::fs::create_dir_all(source_tree).map_err(|e| io_error(source_tree, e))?;
                let copy = || -> std::io::Result<()> {
                    let merge = !self.flags.force && dest.is_dir();
                    // cp -fr into a link to a directory writes in that directory: so does this.
                    let place = if merge && dest.is_symlink() {
                        dest.canonicalize()?
                    } else {
                        dest.clone()
                    };
                    let pending = crate::atomic::PendingDir::create(&place)?;
                    if merge {
                        pending.copy_in("-a", &place)?;
                    }
                    pending.copy_in("-fr", &from)?;
                    pending.commit()
                };
                copy().map_err(|e| io_error(&dest, e))?;
            }
            if self.flags.conf_override.is_some() {
                self.add(&mv, target)?;
            } else {
                self.check_addable(&mv)?;
                // dkms 3.2.2 reads the copy: its deprecation lines name that.
                let copied = self.tree.source_tree_dir(&mv).join("dkms.conf");
                let mut conf = conf;
                let (was, is) = (
                    format!("({})", conf_path.display()),
                    format!("({})", copied.display()),
                );
                for what in &mut conf.deprecated {
                    *what = what.replace(&was, &is);
                }
                strict(&conf, &copied, target)?;
                self.link_source(&mv, &conf)?;
            }
            Ok(mv)
        })
    }
}

/// dkms 3.2.2's read_conf_strict (add, build, install) after read_conf: the deprecated
/// directives said (by its safe_source), zero modules a warning, and a module named twice in
/// BUILT_MODULE_NAME or DEST_MODULE_NAME makes the file invalid (each duplicate said, then
/// "Bad conf file.", exit 8).
pub(super) fn strict(
    conf: &ModuleConf,
    path: &std::path::Path,
    target: &Target,
) -> Result<(), ActionError> {
    // dkms 3.2.2's read_conf sources (and safe_source warns) once per module, version,
    // kernel and arch in a process (its last_mvka): install after build says them once.
    static SAID: std::sync::Mutex<Vec<(std::path::PathBuf, Target)>> =
        std::sync::Mutex::new(Vec::new());
    let mut said = SAID.lock().unwrap_or_else(|e| e.into_inner());
    let key = (
        std::fs::canonicalize(&conf.path).unwrap_or_else(|_| conf.path.clone()),
        target.clone(),
    );
    if !said.contains(&key) {
        for what in &conf.deprecated {
            crate::console::err_line(&format!("Deprecated feature: {what}"));
        }
        said.push(key);
    }
    drop(said);
    if conf.modules.is_empty() {
        crate::console::err_line("dkms.conf: Warning! Zero modules specified.");
    }
    let mut said = Vec::new();
    for (what, names) in [
        (
            "BUILT_MODULE_NAME",
            conf.modules
                .iter()
                .map(|m| format!("{}{}", m.built_location, m.built_name))
                .collect::<Vec<_>>(),
        ),
        (
            "DEST_MODULE_NAME",
            conf.modules
                .iter()
                .map(|m| m.dest_name.clone())
                .collect::<Vec<_>>(),
        ),
    ] {
        for (i, name) in names.iter().enumerate() {
            if names[..i].contains(name) {
                said.push(format!(
                    "dkms.conf: Error! Duplicate module '{name}' in '{what}[{i}]'."
                ));
            }
        }
    }
    if said.is_empty() {
        return Ok(());
    }
    for line in &said {
        crate::console::err_line(line);
    }
    Err(ActionError::BadConf {
        path: path.to_path_buf(),
    })
}
