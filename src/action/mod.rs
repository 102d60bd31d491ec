//! The dkms verbs on resolved values: a [`Session`] (the tree, the console, framework.conf's
//! settings and the command's flags) and one file per group of verbs: `add`, `build_install`
//! (build, install, uninstall, unbuild, remove), `autoinstall` (and match), `tarball`.

use std::path::{Path, PathBuf};

use crate::build;
use crate::conf::ModuleConf;
use crate::console::Console;
use crate::error::ActionError;
use crate::framework::Framework;
use crate::install::InstallOptions;
use crate::jobs::{self, Outcome};
use crate::kernel::{Target, version_key};
use crate::tree::{ModuleVersion, Tree};

mod add;
mod autoinstall;
mod build_install;
mod tarball;

/// Everything one command works with.
#[derive(Debug, Clone)]
pub struct Session {
    pub tree: Tree,
    pub console: Console,
    /// `-j`: make's job count and how many builds run at once; `None` = bare `-j` (`-j0`).
    pub jobs: Option<usize>,
    pub force: bool,
    pub force_version_override: bool,
    pub no_depmod: bool,
    pub symlink_modules: bool,
    /// `-c`: a dkms.conf to use instead of the module's own.
    pub conf_override: Option<PathBuf>,
    /// framework.conf `autoinstall_all_kernels`.
    pub autoinstall_all_kernels: bool,
    /// framework.conf's module signing settings.
    pub signing: build::SigningConf,
}

impl Session {
    /// A session on `tree` with framework.conf's settings (`verbose`, `parallel_jobs`,
    /// `symlink_modules`, `autoinstall_all_kernels`, the signing keys) and nothing forced.
    pub fn new(tree: Tree, framework: &Framework, console: Console) -> Session {
        Session {
            tree,
            console: Console {
                verbose: console.verbose || framework.verbose,
                ..console
            },
            jobs: jobs::limit(framework.parallel_jobs),
            force: false,
            force_version_override: false,
            no_depmod: false,
            symlink_modules: framework.symlink_modules,
            conf_override: None,
            autoinstall_all_kernels: framework.autoinstall_all_kernels,
            signing: build::SigningConf {
                sign_file: framework.sign_file.clone(),
                mok_signing_key: framework.mok_signing_key.clone(),
                mok_certificate: framework.mok_certificate.clone(),
            },
        }
    }

    fn concurrency(&self) -> usize {
        self.jobs.unwrap_or(1).max(1)
    }

    fn install_options(&self) -> InstallOptions {
        InstallOptions {
            force: self.force,
            force_version_override: self.force_version_override,
            symlink_modules: self.symlink_modules,
        }
    }

    /// The module's dkms.conf resolved for a target.
    pub fn read_conf(
        &self,
        mv: &ModuleVersion,
        target: &Target,
    ) -> Result<ModuleConf, ActionError> {
        let path = self
            .conf_override
            .clone()
            .unwrap_or_else(|| self.tree.source_dir(mv).join("dkms.conf"));
        read_conf_at(&self.tree, &path, target, Some(mv))
    }

    fn require_added(&self, mv: &ModuleVersion) -> Result<(), ActionError> {
        if self.tree.is_added(mv) {
            Ok(())
        } else {
            Err(ActionError::NotAdded {
                module: mv.clone(),
                tree: self.tree.dkms_tree.clone(),
            })
        }
    }

    /// The targets a module version is built for (what `--all` means), in dkms's order.
    pub fn built_targets(&self, mv: &ModuleVersion) -> Vec<Target> {
        let mut targets: Vec<Target> = self
            .tree
            .target_dirs(mv, None, None)
            .into_iter()
            .filter(|t| {
                self.read_conf(mv, t)
                    .is_ok_and(|conf| self.tree.is_built(mv, t, &conf))
            })
            .collect();
        targets.sort_by_key(|a| version_key(&a.kernel.0));
        targets
    }
}

/// Read a dkms.conf for a target, with dkms's "missing" error first.
pub fn read_conf_at(
    tree: &Tree,
    path: &Path,
    target: &Target,
    module: Option<&ModuleVersion>,
) -> Result<ModuleConf, ActionError> {
    if !path.is_file() {
        return Err(ActionError::ConfMissing {
            path: path.to_path_buf(),
        });
    }
    Ok(crate::conf::read(
        path,
        &tree.resolve_context(target, module),
    )?)
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
