//! The dkms actions (add, build, install, uninstall, unbuild, remove, autoinstall, match) as
//! the CLI runs them, their errors and dkms's exit codes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use crate::build::{self, BuildRequest};
use crate::conf::ModuleConf;
use crate::console::Console;
use crate::error::{ActionError, io_error};
use crate::framework::Framework;
use crate::install::{self, InstallOptions};
use crate::jobs::{self, Job, Outcome};
use crate::kernel::{KernelRelease, Target, version_key};
use crate::tree::{ModuleVersion, Tree};

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

    /// `add`: link `<source_tree>/<m>-<v>` into the tree after checking its dkms.conf.
    pub fn add(&self, mv: &ModuleVersion, target: &Target) -> Result<(), ActionError> {
        self.check_addable(mv)?;
        let conf_path = self
            .conf_override
            .clone()
            .unwrap_or_else(|| self.tree.source_tree_dir(mv).join("dkms.conf"));
        let conf = read_conf_at(&self.tree, &conf_path, target, Some(mv))?;
        self.link_source(mv, &conf)
    }

    /// What dkms's `add_module` checks before reading dkms.conf: not added yet (exit 3), the
    /// source directory is there (exit 2).
    fn check_addable(&self, mv: &ModuleVersion) -> Result<(), ActionError> {
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
    fn link_source(&self, mv: &ModuleVersion, conf: &ModuleConf) -> Result<(), ActionError> {
        let source = self.tree.source_tree_dir(mv);
        let link = self.tree.source_dir(mv);
        self.console.say(&format!(
            "Creating symlink {} -> {}",
            link.display(),
            source.display()
        ));
        let build_dir = self.tree.build_dir(mv);
        std::fs::create_dir_all(&build_dir).map_err(|e| io_error(&build_dir, e))?;
        let tmp = self.tree.version_dir(mv).join(".source.dkms-rs");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&source, &tmp).map_err(|e| io_error(&link, e))?;
        std::fs::rename(&tmp, &link).map_err(|e| io_error(&link, e))?;
        if let Some(script) = &conf.post_add {
            build::run_script("post_add", script, &link, None, &self.console)?;
        }
        Ok(())
    }

    /// `add <dir>`: copy a source tree to `<source_tree>/<m>-<v>` (unless it is there) and add it.
    pub fn add_source_tree(
        &self,
        dir: &Path,
        target: &Target,
    ) -> Result<ModuleVersion, ActionError> {
        let from = dir.canonicalize().map_err(|e| io_error(dir, e))?;
        let conf_path = from.join("dkms.conf");
        if !conf_path.is_file() {
            return Err(ActionError::NotASourceTree { dir: from });
        }
        // Read once: with no `-m`, the conf is read as `-m PACKAGE_NAME -v PACKAGE_VERSION`
        // (see `ResolveContext::module`), which is what `add` would read again.
        let conf = read_conf_at(&self.tree, &conf_path, target, None)?;
        let mv = ModuleVersion {
            module: conf.package_name.clone(),
            version: conf.package_version.clone(),
        };
        let dest = self.tree.source_tree_dir(&mv);
        if from != dest {
            if self.force {
                build::remove_dir_if_exists(&dest)?;
            }
            std::fs::create_dir_all(&dest).map_err(|e| io_error(&dest, e))?;
            let status = std::process::Command::new("cp")
                .arg("-fr")
                .arg(format!("{}/.", from.display()))
                .arg(&dest)
                .status()
                .map_err(|e| io_error(&dest, e))?;
            if !status.success() {
                return Err(ActionError::Command {
                    command: format!("cp -fr {} {}", from.display(), dest.display()),
                    detail: format!("exit status {status}"),
                });
            }
        }
        if self.conf_override.is_some() {
            self.add(&mv, target)?;
        } else {
            self.check_addable(&mv)?;
            self.link_source(&mv, &conf)?;
        }
        Ok(mv)
    }

    /// `build`: build for every target (in parallel); already built targets are skipped.
    pub fn build(&self, mv: &ModuleVersion, targets: &[Target]) -> Result<(), ActionError> {
        let todo = self.plan(
            mv,
            targets,
            "built for",
            |target, conf| self.tree.is_built(mv, target, conf),
            |target, _| self.unbuild_one(mv, target),
        )?;
        first_failure(self.build_all(todo, |_, _, _| Ok(None)))
    }

    /// The targets still to do for `build`/`install`, each with its conf, adding the module
    /// first when it is not. A target that is `done` is skipped with dkms's message
    /// ("already <done_what> kernel"), or with `--force` first undone by `undo`.
    fn plan(
        &self,
        mv: &ModuleVersion,
        targets: &[Target],
        done_what: &str,
        done: impl Fn(&Target, &ModuleConf) -> bool,
        undo: impl Fn(&Target, &ModuleConf) -> Result<(), ActionError>,
    ) -> Result<Vec<(ModuleVersion, Target, ModuleConf)>, ActionError> {
        if let Some(first) = targets.first()
            && !self.tree.is_added(mv)
        {
            self.add(mv, first)?;
        }
        let mut todo = Vec::new();
        for target in targets {
            let conf = self.read_conf(mv, target)?;
            if done(target, &conf) {
                if !self.force {
                    self.console.say(&format!(
                        "Module {mv} already {done_what} kernel {target}, skip. You may override by specifying --force."
                    ));
                    continue;
                }
                undo(target, &conf)?;
            }
            todo.push((mv.clone(), target.clone(), conf));
        }
        Ok(todo)
    }

    /// `install`: build what is not built, install, one depmod per kernel.
    pub fn install(&self, mv: &ModuleVersion, targets: &[Target]) -> Result<(), ActionError> {
        let todo = self.plan(
            mv,
            targets,
            "installed on",
            |target, conf| {
                self.tree.is_installed(mv, target) && self.tree.is_built(mv, target, conf)
            },
            |target, conf| {
                install::uninstall(&self.tree, mv, target, conf, &self.console).map(|_| ())
            },
        )?;
        let installed = Mutex::new(Vec::new());
        let outcomes = self.build_all(todo, |mv, target, conf| {
            self.install_one(mv, target, conf, &installed)
        });
        let result = first_failure(outcomes);
        self.depmod_or_roll_back(installed.into_inner().unwrap_or_default())?;
        result
    }

    fn install_one(
        &self,
        mv: &ModuleVersion,
        target: &Target,
        conf: &ModuleConf,
        installed: &Mutex<Vec<(ModuleVersion, Target, ModuleConf)>>,
    ) -> Result<Option<String>, ActionError> {
        // Installs touch shared files (modules dir, links): one at a time.
        let mut done = installed.lock().unwrap_or_else(|e| e.into_inner());
        install::install(
            &self.tree,
            mv,
            target,
            conf,
            self.install_options(),
            &self.console,
        )?;
        done.push((mv.clone(), target.clone(), conf.clone()));
        let dir = self.tree.kernel_modules_dir(&target.kernel).join(
            conf.modules
                .first()
                .map(|r| r.dest_location.trim_start_matches('/'))
                .unwrap_or(""),
        );
        Ok(Some(format!("installed to {}/", dir.display())))
    }

    /// depmod once per kernel touched; on failure uninstall what this command installed there.
    fn depmod_or_roll_back(
        &self,
        installed: Vec<(ModuleVersion, Target, ModuleConf)>,
    ) -> Result<(), ActionError> {
        if self.no_depmod {
            return Ok(());
        }
        let kernels: BTreeSet<KernelRelease> =
            installed.iter().map(|(_, t, _)| t.kernel.clone()).collect();
        let mut first_error = None;
        for kernel in kernels {
            if let Err(e) = install::depmod(&self.tree, &kernel) {
                for (mv, target, conf) in installed.iter().filter(|(_, t, _)| t.kernel == kernel) {
                    install::uninstall(&self.tree, mv, target, conf, &self.console)?;
                }
                e.report(&self.console);
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Build (in parallel) the given (module, target) pairs, then run `after` on each success.
    fn build_all(
        &self,
        todo: Vec<(ModuleVersion, Target, ModuleConf)>,
        after: impl Fn(&ModuleVersion, &Target, &ModuleConf) -> Result<Option<String>, ActionError>
        + Sync,
    ) -> Vec<Outcome> {
        let deps = vec![Vec::new(); todo.len()];
        self.run_jobs(todo, deps, after)
    }

    /// Run build(+after) jobs with dependencies; skips the build when already built.
    fn run_jobs(
        &self,
        todo: Vec<(ModuleVersion, Target, ModuleConf)>,
        deps: Vec<Vec<usize>>,
        after: impl Fn(&ModuleVersion, &Target, &ModuleConf) -> Result<Option<String>, ActionError>
        + Sync,
    ) -> Vec<Outcome> {
        let mut per_module: BTreeMap<&ModuleVersion, usize> = BTreeMap::new();
        for (mv, _, _) in &todo {
            *per_module.entry(mv).or_default() += 1;
        }
        let shared: BTreeSet<ModuleVersion> = per_module
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|(mv, _)| mv.clone())
            .collect();
        let jobs: Vec<Job<(ModuleVersion, Target, ModuleConf)>> = todo
            .into_iter()
            .zip(deps)
            .map(|(item, after)| Job {
                name: format!("{}, {}, {}", item.0, item.1.kernel, item.1.arch),
                after,
                item,
            })
            .collect();
        jobs::run(
            &jobs,
            self.concurrency(),
            &self.console,
            |(mv, target, conf)| {
                let name = format!("{mv}, {}, {}", target.kernel, target.arch);
                let mut line = String::new();
                if !self.tree.is_built(mv, target, conf) {
                    let build_dir = if shared.contains(mv) {
                        // One build dir per kernel when the same module builds for several at once.
                        self.tree
                            .version_dir(mv)
                            .join(format!(".build-{}-{}", target.kernel, target.arch))
                    } else {
                        self.tree.build_dir(mv)
                    };
                    let started = Instant::now();
                    build::build(
                        &BuildRequest {
                            tree: &self.tree,
                            module: mv,
                            target,
                            conf,
                            jobs: self.jobs,
                            build_dir,
                            signing: &self.signing,
                        },
                        &self.console,
                    )?;
                    line = format!("{name}: built in {:.1} s", started.elapsed().as_secs_f64());
                }
                match after(mv, target, conf)? {
                    Some(more) if line.is_empty() => Ok(format!("{name}: {more}")),
                    Some(more) => Ok(format!("{line}, {more}")),
                    None => Ok(line),
                }
            },
        )
    }

    fn unbuild_one(&self, mv: &ModuleVersion, target: &Target) -> Result<(), ActionError> {
        let dir = self.tree.built_dir(mv, target);
        build::remove_dir_if_exists(&dir)?;
        if let Some(kernel_dir) = dir.parent() {
            // dkms removes <k> when no other arch is left in it.
            let _ = std::fs::remove_dir(kernel_dir);
        }
        Ok(())
    }

    /// `uninstall`: for each target where this version is installed.
    pub fn uninstall(&self, mv: &ModuleVersion, targets: &[Target]) -> Result<(), ActionError> {
        self.require_added(mv)?;
        let mut touched = BTreeSet::new();
        for target in targets {
            let conf = self.read_conf(mv, target)?;
            if !(self.tree.is_built(mv, target, &conf) && self.tree.is_installed(mv, target)) {
                self.console.say(&format!(
                    "Module {} {} is not installed for kernel {target}. Skipping...",
                    mv.module, mv.version
                ));
                continue;
            }
            install::uninstall(&self.tree, mv, target, &conf, &self.console)?;
            self.console
                .say(&format!("Module {mv} uninstalled from kernel {target}"));
            touched.insert(target.kernel.clone());
        }
        self.depmod_kernels(touched)
    }

    fn depmod_kernels(&self, kernels: BTreeSet<KernelRelease>) -> Result<(), ActionError> {
        if self.no_depmod {
            return Ok(());
        }
        for kernel in kernels {
            install::depmod(&self.tree, &kernel)?;
        }
        Ok(())
    }

    /// `unbuild`: uninstall and forget the build for each target.
    pub fn unbuild(&self, mv: &ModuleVersion, targets: &[Target]) -> Result<(), ActionError> {
        self.require_added(mv)?;
        let touched = self.uninstall_and_unbuild(mv, targets)?;
        self.depmod_kernels(touched)
    }

    fn uninstall_and_unbuild(
        &self,
        mv: &ModuleVersion,
        targets: &[Target],
    ) -> Result<BTreeSet<KernelRelease>, ActionError> {
        let mut touched = BTreeSet::new();
        for target in targets {
            let conf = self.read_conf(mv, target)?;
            if self.tree.is_built(mv, target, &conf) && self.tree.is_installed(mv, target) {
                install::uninstall(&self.tree, mv, target, &conf, &self.console)?;
                touched.insert(target.kernel.clone());
            }
            if self.tree.is_built(mv, target, &conf) {
                self.unbuild_one(mv, target)?;
                self.console
                    .say(&format!("Module {mv} unbuilt for kernel {target}"));
            } else {
                self.console.say(&format!(
                    "Module {} {} is not built for kernel {target}. Skipping...",
                    mv.module, mv.version
                ));
            }
        }
        Ok(touched)
    }

    /// `remove`: uninstall, unbuild, and drop the version from the tree once no kernel is left.
    pub fn remove(&self, mv: &ModuleVersion, targets: &[Target]) -> Result<(), ActionError> {
        self.require_added(mv)?;
        let touched = self.uninstall_and_unbuild(mv, targets)?;
        let version_dir = self.tree.version_dir(mv);
        let kernels_left = std::fs::read_dir(&version_dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.'))
            // dkms keeps the version while any dir other than these is left.
            .any(|n| {
                !["build", "tarball", "driver_disk", "rpm", "deb", "source"]
                    .iter()
                    .any(|s| n.ends_with(s))
            });
        if !kernels_left {
            self.console.say(&format!(
                "Deleting module {}-{} completely from the DKMS tree.",
                mv.module, mv.version
            ));
            build::remove_dir_if_exists(&version_dir)?;
            let module_dir = self.tree.module_dir(&mv.module);
            let empty = std::fs::read_dir(&module_dir)
                .map(|d| {
                    d.flatten()
                        .all(|e| e.file_name().to_string_lossy().starts_with('.'))
                })
                .unwrap_or(false);
            if empty {
                build::remove_dir_if_exists(&module_dir)?;
            }
        }
        self.depmod_kernels(touched)
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

    /// `autoinstall`: build and install, for each target, the newest version of every added
    /// module with AUTOINSTALL that is not installed there, in BUILD_DEPENDS order, in parallel.
    /// `<etc>/no-autoinstall` turns it off, and a kernel without headers is skipped, as
    /// Debian's dkms_autoinstaller (the kernel hook) does before calling dkms.
    pub fn autoinstall(&self, targets: &[Target]) -> Result<(), ActionError> {
        if self.tree.etc_dir.join("no-autoinstall").exists() {
            self.console.say(&format!(
                "{}: autoinstall for dkms modules has been disabled ({})",
                self.console.program,
                self.tree.etc_dir.join("no-autoinstall").display()
            ));
            return Ok(());
        }
        let with_headers: Vec<Target> = targets
            .iter()
            .filter(|t| {
                let ok = crate::kernel::has_headers(&self.tree.headers_dir(&t.kernel));
                if !ok {
                    self.console.say(&format!(
                        "{}: autoinstall for kernel {} was skipped since the kernel headers for this kernel do not seem to be installed",
                        self.console.program, t.kernel
                    ));
                }
                ok
            })
            .cloned()
            .collect();
        let targets = with_headers.as_slice();
        let mut todo: Vec<(ModuleVersion, Target, ModuleConf)> = Vec::new();
        let mut failed = Vec::new();
        let mut by_module: BTreeMap<String, Vec<ModuleVersion>> = BTreeMap::new();
        for mv in self.tree.added_modules(None, None) {
            by_module.entry(mv.module.clone()).or_default().push(mv);
        }
        for versions in by_module.values_mut() {
            versions.sort_by_key(|mv| std::cmp::Reverse(version_key(&mv.version)));
        }
        for target in targets {
            for versions in by_module.values() {
                // The common no-op: the newest version is installed; no dkms.conf to read.
                if versions
                    .first()
                    .is_some_and(|mv| self.tree.is_installed(mv, target))
                {
                    continue;
                }
                // Else the newest version with AUTOINSTALL, unless that one is installed.
                for mv in versions {
                    let conf = match self.read_conf(mv, target) {
                        Ok(conf) => conf,
                        Err(e) => {
                            e.report(&self.console);
                            failed.push(format!("{mv} ({target})"));
                            break;
                        }
                    };
                    if !conf.autoinstall {
                        continue;
                    }
                    if !self.tree.is_installed(mv, target) {
                        todo.push((mv.clone(), target.clone(), conf));
                    }
                    break;
                }
            }
        }
        // BUILD_DEPENDS: wait for the dependency's job on the same target; a dependency that
        // is neither planned nor installed there means this module cannot be built.
        let mut deps = vec![Vec::new(); todo.len()];
        let mut runnable = vec![true; todo.len()];
        for (i, (mv, target, conf)) in todo.iter().enumerate() {
            for dep in &conf.build_depends {
                if let Some(j) = todo
                    .iter()
                    .position(|(m, t, _)| &m.module == dep && t == target)
                {
                    deps[i].push(j);
                } else if self.tree.installed_version(dep, target).is_none() {
                    self.console.say(&format!(
                        "{mv} autoinstall failed due to missing dependencies: {dep}"
                    ));
                    runnable[i] = false;
                }
            }
        }
        // What waits for a module that cannot be built cannot be built either: dkms's
        // autoinstall loop never sees its dependency installed and fails it the same way.
        let mut settled = false;
        while !settled {
            settled = true;
            for (i, (mv, _, _)) in todo.iter().enumerate() {
                if !runnable[i] {
                    continue;
                }
                if let Some(&j) = deps[i].iter().find(|&&j| !runnable[j]) {
                    self.console.say(&format!(
                        "{mv} autoinstall failed due to missing dependencies: {}",
                        todo[j].0.module
                    ));
                    runnable[i] = false;
                    settled = false;
                }
            }
        }
        let mut kept = Vec::new();
        let mut index_map = vec![None; todo.len()];
        for (i, item) in todo.into_iter().enumerate() {
            if runnable[i] {
                index_map[i] = Some(kept.len());
                kept.push((item, std::mem::take(&mut deps[i])));
            } else {
                failed.push(format!("{} ({})", item.0, item.1));
            }
        }
        let (todo, deps): (Vec<_>, Vec<_>) = kept
            .into_iter()
            .map(|(item, d)| {
                let d: Vec<usize> = d.iter().filter_map(|&j| index_map[j]).collect();
                (item, d)
            })
            .unzip();
        let names: Vec<String> = todo
            .iter()
            .map(|(mv, t, _)| format!("{mv} ({t})"))
            .collect();
        let installed = Mutex::new(Vec::new());
        let outcomes = self.run_jobs(todo, deps, |mv, target, conf| {
            self.install_one(mv, target, conf, &installed)
        });
        for (name, outcome) in names.into_iter().zip(outcomes) {
            match outcome {
                Outcome::Done(_) => {}
                // BUILD_EXCLUSIVE: not for this kernel, which is not a failure.
                Outcome::Failed(ActionError::BuildExcluded { .. }) => {}
                Outcome::Failed(_) => failed.push(name),
                Outcome::Blocked(why) => {
                    self.console.say(&format!(
                        "{name} autoinstall failed due to missing dependencies: {}",
                        why.join(" ")
                    ));
                    failed.push(name);
                }
            }
        }
        if let Err(e) = self.depmod_or_roll_back(installed.into_inner().unwrap_or_default()) {
            failed.push(e.to_string());
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(ActionError::Autoinstall { failed })
        }
    }

    /// `match --templatekernel T -k K [module]`: install on K what is installed on T.
    pub fn match_kernel(
        &self,
        template: &KernelRelease,
        target: &Target,
        module: Option<&str>,
    ) -> Result<(), ActionError> {
        if &target.kernel == template {
            return Err(ActionError::Usage(
                "the templatekernel and the specified kernel version are the same".into(),
            ));
        }
        let template_target = Target {
            kernel: template.clone(),
            arch: target.arch.clone(),
        };
        self.console.say(&format!(
            "Matching modules in kernel: {target} to the configuration of kernel: {template_target}"
        ));
        for mv in self.tree.added_modules(module, None) {
            if self.tree.is_installed(&mv, &template_target) {
                self.install(&mv, std::slice::from_ref(target))?;
            }
        }
        Ok(())
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
