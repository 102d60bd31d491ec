//! build, install, uninstall, unbuild, remove: the per-target verbs, their plan and jobs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use crate::build::{self, BuildRequest};
use crate::conf::{ModuleConf, Reader};
use crate::error::ActionError;
use crate::install;
use crate::jobs::{self, Job, Outcome};
use crate::kernel::Target;
use crate::tree::ModuleVersion;
use crate::tree::conf_cache::{self, ConfCache, Lookup};
use crate::tree::record::settle_limit;

use super::{Session, distinct, first_failure, remove_dir_by_rename};

/// What `build` and `install` plan for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Goal {
    Built,
    Installed,
}

impl Goal {
    /// dkms's words in "Module M already <these> kernel K, skip.".
    fn done_words(self) -> &'static str {
        match self {
            Goal::Built => "built for",
            Goal::Installed => "installed on",
        }
    }
}

impl Session {
    /// `build`: build for every target (in parallel); already built targets are skipped.
    pub fn build(&self, mv: &ModuleVersion, targets: &[Target]) -> Result<(), ActionError> {
        let lock = self.lock()?;
        lock.run(|| {
            let todo = self.plan(mv, targets, Goal::Built)?;
            first_failure(self.build_all(todo, |_, _, _| Ok(None)))
        })
    }

    /// The targets still to do for `build`/`install`, each with its conf, adding the module
    /// first when it is not. A target where the goal is reached is skipped with dkms's
    /// message ("already built for kernel"), or with `--force` first undone.
    pub(super) fn plan(
        &self,
        mv: &ModuleVersion,
        targets: &[Target],
        goal: Goal,
    ) -> Result<Vec<(ModuleVersion, Target, ModuleConf)>, ActionError> {
        let done = |target: &Target, conf: &ModuleConf| match goal {
            Goal::Built => self.tree.is_built(mv, target, conf),
            Goal::Installed => {
                self.tree.is_installed(mv, target) && self.tree.is_built(mv, target, conf)
            }
        };
        let undo = |target: &Target, conf: &ModuleConf| match goal {
            Goal::Built => self.unbuild_one(mv, target),
            // dkms 3.2.2's maybe_install_module: do_uninstall (its depmod), a blank line.
            Goal::Installed => {
                self.uninstall_target(mv, target, conf)?;
                self.depmod_all_marked()?;
                self.console.say("");
                Ok(())
            }
        };
        let done_what = goal.done_words();
        let given = targets;
        let targets = distinct(targets);
        if self.tree.is_broken(mv) {
            return Err(ActionError::Broken { module: mv.clone() });
        }
        if let Some(first) = targets.first()
            && !self.tree.is_added(mv)
        {
            self.add(mv, first)?;
            // dkms 3.2.2's do_build after its add_module.
            self.console.say("");
        }
        let mut todo = Vec::new();
        let mut planned = BTreeSet::new();
        for target in given {
            // Given twice: planned once; said again when it was done before this command.
            if !planned.insert(target.clone()) {
                if !todo
                    .iter()
                    .any(|(_, t, _): &(ModuleVersion, Target, ModuleConf)| t == target)
                    && let Ok(conf) = self.read_conf(mv, target)
                    && done(target, &conf)
                {
                    self.console.say(&format!(
                        "Module {mv} already {done_what} kernel {target}, skip. You may override by specifying --force."
                    ));
                }
                continue;
            }
            let conf = self.read_conf(mv, target)?;
            if done(target, &conf) {
                if !self.flags.force {
                    self.console.say(&format!(
                        "Module {mv} already {done_what} kernel {target}, skip. You may override by specifying --force."
                    ));
                    continue;
                }
                undo(target, &conf)?;
            }
            // dkms 3.2.2's do_build reads the conf strictly; install, only when it builds.
            if goal == Goal::Built || !self.tree.is_built(mv, target, &conf) {
                super::add::strict(&conf, &conf.path, target)?;
            }
            todo.push((mv.clone(), target.clone(), conf));
        }
        Ok(todo)
    }

    /// `install`: build what is not built, install, one depmod per kernel.
    pub fn install(&self, mv: &ModuleVersion, targets: &[Target]) -> Result<(), ActionError> {
        let lock = self.lock()?;
        lock.run(|| {
            let todo = self.plan(mv, targets, Goal::Installed)?;
            let installed = Mutex::new(Vec::new());
            let outcomes = self.build_all(todo, |mv, target, conf| {
                self.install_one(mv, target, conf, &installed)
            });
            let result = first_failure(outcomes);
            let installed = installed.into_inner().unwrap_or_default();
            let targets: Vec<Target> = distinct(
                &installed
                    .iter()
                    .map(|(_, t, _)| t.clone())
                    .collect::<Vec<_>>(),
            );
            self.depmod_or_roll_back(installed)?;
            result?;
            // dkms 3.2.2's do_install ends with check_and_rebuild_dependent_modules.
            for target in &targets {
                self.rebuild_dependents(target, 0)?;
            }
            Ok(())
        })
    }

    /// Install one built module and depmod its kernel at once, then rebuild what depends on
    /// it: dkms 3.2.2's do_install, as autoinstall and the rebuild of a dependent run it.
    /// Where depmod fails, the module is uninstalled again. `installed` serializes the
    /// installs and collects them.
    pub(super) fn install_now(
        &self,
        mv: &ModuleVersion,
        target: &Target,
        conf: &ModuleConf,
        installed: &Mutex<Vec<(ModuleVersion, Target, ModuleConf)>>,
        depth: usize,
    ) -> Result<(), ActionError> {
        {
            let mut done = installed.lock().unwrap_or_else(|e| e.into_inner());
            self.install_locked(mv, target, conf)?;
            if self.tree.pending_depmod(&target.kernel).exists()
                && let Err(e) = self.depmod_marked(&target.kernel)
            {
                self.uninstall_target(mv, target, conf)?;
                return Err(e);
            }
            done.push((mv.clone(), target.clone(), conf.clone()));
        }
        self.rebuild_dependents(target, depth)
    }

    /// dkms 3.2.2's check_and_rebuild_dependent_modules: every module built for `target`
    /// with BUILD_DEPENDS and BUILD_DEPENDS_REBUILD whose `.dep_<dep>` files do not name the
    /// newest version of each dependency now (or are missing) is uninstalled, unbuilt,
    /// built and installed again (which checks again, `depth` deep); not with `--force`.
    pub(super) fn rebuild_dependents(
        &self,
        target: &Target,
        depth: usize,
    ) -> Result<(), ActionError> {
        // A rebuild records the versions it saw, so the next check finds nothing to do; the
        // bound is against a tree changing under this command.
        if self.flags.force || depth > 8 {
            return Ok(());
        }
        let mut todo = Vec::new();
        // Every built module's dkms.conf, as 3.2.2 reads them; one whose kept facts hold
        // (tree::conf_cache) and say no BUILD_DEPENDS_REBUILD costs a stat.
        let cache_path = self.tree.dkms_tree.join(conf_cache::CACHE_FILE);
        let cache = ConfCache::read(&cache_path);
        let mut seen = ConfCache::default();
        let etc_names = self.tree.etc_names();
        let host = crate::conf::ResolveContext::new("", "");
        let limit = settle_limit(std::time::SystemTime::now());
        for (mv, broken) in self.tree.added_modules_judged() {
            // dkms 3.2.2's module_status: broken ones have no built targets.
            if broken || !self.tree.built_dir(&mv, target).join("module").is_dir() {
                continue;
            }
            let path = self.tree.source_dir(&mv).join("dkms.conf");
            let mut to_keep = None;
            if self.flags.conf_override.is_none() {
                match cache.lookup(etc_names.as_ref(), &mv.module, &mv, &path, &host) {
                    Lookup::Kept(_, facts) if !facts.rebuilds => continue,
                    Lookup::Kept(..) | Lookup::Read => {}
                    Lookup::Keep(key, stat) => to_keep = Some((key, stat)),
                }
            }
            let conf = match to_keep {
                Some((key, stat)) => {
                    let ctx = self.tree.resolve_context(target, Some(&mv));
                    let res = self.confs.get(&path)?.evaluate(&ctx, Reader::Auto)?;
                    if let Some(facts) = conf_cache::Facts::of(&res, &ctx) {
                        seen.insert(&key, stat, facts, limit);
                    }
                    res.into_result()?
                }
                None => self.read_conf(&mv, target)?,
            };
            if conf.build_depends.is_empty() || !conf.build_depends_rebuild {
                continue;
            }
            if build::dependencies_updated(&self.tree, &mv, target, &conf) {
                todo.push((mv, conf));
            }
        }
        if !seen.is_empty() {
            // Another command's facts written meanwhile may be lost: they only save time.
            let mut merged = ConfCache::read(&cache_path);
            merged.extend(seen);
            let _ = merged.write(&cache_path);
        }
        for (mv, conf) in todo {
            self.console.say("");
            self.console.say(&format!(
                "Rebuilding module {mv} due to updated dependencies"
            ));
            self.console.say("");
            // do_uninstall, its depmod whether or not it was installed.
            if !self.tree.is_installed(&mv, target) {
                self.console
                    .say(&format!("Module {mv} for kernel {target}:"));
                self.console
                    .say("This module version was INACTIVE for this kernel.");
                self.mark_depmod(&target.kernel)?;
            }
            self.uninstall_target(&mv, target, &conf)?;
            if self.tree.pending_depmod(&target.kernel).exists() {
                self.depmod_marked(&target.kernel)?;
            }
            self.unbuild_one(&mv, target)?;
            let installed = Mutex::new(Vec::new());
            let outcomes = self.build_all(vec![(mv, target.clone(), conf)], |mv, t, c| {
                self.install_now(mv, t, c, &installed, depth + 1)
                    .map(|()| None)
            });
            first_failure(outcomes)?;
        }
        Ok(())
    }

    pub(super) fn install_one(
        &self,
        mv: &ModuleVersion,
        target: &Target,
        conf: &ModuleConf,
        installed: &Mutex<Vec<(ModuleVersion, Target, ModuleConf)>>,
    ) -> Result<Option<String>, ActionError> {
        // Installs touch shared files (modules dir, links): one at a time.
        let mut done = installed.lock().unwrap_or_else(|e| e.into_inner());
        self.install_locked(mv, target, conf)?;
        done.push((mv.clone(), target.clone(), conf.clone()));
        Ok(None)
    }

    /// dkms 3.2.2's do_install up to its depmod (read_conf_strict_or_die, then the files),
    /// depmod marked due for the kernel; the caller holds the install lock.
    fn install_locked(
        &self,
        mv: &ModuleVersion,
        target: &Target,
        conf: &ModuleConf,
    ) -> Result<(), ActionError> {
        super::add::strict(conf, &conf.path, target)?;
        let due = self.mark_depmod(&target.kernel)?;
        install::install(
            &self.tree,
            mv,
            target,
            conf,
            self.install_options(),
            &self.console,
        )
        .inspect_err(|_| self.unmark_depmod(due))
    }

    /// depmod once per kernel whose modules changed (see [`Session::mark_depmod`]); where
    /// it fails, uninstall what this command installed there.
    pub(super) fn depmod_or_roll_back(
        &self,
        installed: Vec<(ModuleVersion, Target, ModuleConf)>,
    ) -> Result<(), ActionError> {
        let mut first_error = None;
        for kernel in self.tree.pending_depmods() {
            if let Err(e) = self.depmod_marked(&kernel) {
                for (mv, target, conf) in installed.iter().filter(|(_, t, _)| t.kernel == kernel) {
                    self.uninstall_target(mv, target, conf)?;
                }
                e.report(&self.console);
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// [`Session::depmod_or_roll_back`] of one kernel, if its depmod is due.
    pub(super) fn depmod_or_roll_back_kernel(
        &self,
        kernel: &crate::kernel::KernelRelease,
        installed: Vec<(ModuleVersion, Target, ModuleConf)>,
    ) -> Result<(), ActionError> {
        if !self.tree.pending_depmod(kernel).exists() {
            return Ok(());
        }
        if let Err(e) = self.depmod_marked(kernel) {
            for (mv, target, conf) in installed.iter().filter(|(_, t, _)| t.kernel == *kernel) {
                self.uninstall_target(mv, target, conf)?;
            }
            e.report(&self.console);
            return Err(e);
        }
        Ok(())
    }

    /// Uninstall `mv` from a target where it is installed, depmod due for the kernel.
    pub(super) fn uninstall_target(
        &self,
        mv: &ModuleVersion,
        target: &Target,
        conf: &ModuleConf,
    ) -> Result<bool, ActionError> {
        if !self.tree.is_installed(mv, target) {
            return install::uninstall(&self.tree, mv, target, conf, &self.console);
        }
        let due = self.mark_depmod(&target.kernel)?;
        install::uninstall(&self.tree, mv, target, conf, &self.console).inspect_err(|_| {
            // Failed before its first change (its record is not there): nothing to depmod.
            if !self.tree.pending_install(&mv.module, target).exists() {
                self.unmark_depmod(due);
            }
        })
    }

    /// Build (in parallel) the given (module, target) pairs, then run `after` on each success.
    pub(super) fn build_all(
        &self,
        todo: Vec<(ModuleVersion, Target, ModuleConf)>,
        after: impl Fn(&ModuleVersion, &Target, &ModuleConf) -> Result<Option<String>, ActionError>
        + Sync,
    ) -> Vec<Outcome> {
        let deps = vec![Vec::new(); todo.len()];
        self.run_jobs(todo, deps, after)
    }

    /// Run build(+after) jobs with dependencies; skips the build when already built.
    pub(super) fn run_jobs(
        &self,
        todo: Vec<(ModuleVersion, Target, ModuleConf)>,
        deps: Vec<Vec<usize>>,
        after: impl Fn(&ModuleVersion, &Target, &ModuleConf) -> Result<Option<String>, ActionError>
        + Sync,
    ) -> Vec<Outcome> {
        self.run_jobs_saying(todo, deps, false, after)
    }

    /// [`Session::run_jobs`] as autoinstall runs them: each job says "Autoinstall of module
    /// M/V for kernel K (A)" first, and a failed one reports its error and a blank line
    /// itself (its outcome is then [`ActionError::Reported`] with the error's exit code).
    pub(super) fn run_announced_jobs(
        &self,
        todo: Vec<(ModuleVersion, Target, ModuleConf)>,
        deps: Vec<Vec<usize>>,
        after: impl Fn(&ModuleVersion, &Target, &ModuleConf) -> Result<Option<String>, ActionError>
        + Sync,
    ) -> Vec<Outcome> {
        self.run_jobs_saying(todo, deps, true, after)
    }

    fn run_jobs_saying(
        &self,
        todo: Vec<(ModuleVersion, Target, ModuleConf)>,
        deps: Vec<Vec<usize>>,
        announce: bool,
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
        // Only a parallel schedule uses the costs (jobs::run): one at a time, the order given.
        let mut costs: BTreeMap<ModuleVersion, u64> = BTreeMap::new();
        let jobs: Vec<Job<(ModuleVersion, Target, ModuleConf)>> = todo
            .into_iter()
            .zip(deps)
            .map(|(item, after)| Job {
                name: format!("{}, {}, {}", item.0, item.1.kernel, item.1.arch),
                after,
                cost: if self.concurrency() > 1 {
                    *costs
                        .entry(item.0.clone())
                        .or_insert_with(|| self.build_cost(&item.0))
                } else {
                    0
                },
                item,
            })
            .collect();
        let signing = self.prepare_signing(jobs.iter().map(|j| &j.item), announce);
        jobs::run(
            &jobs,
            self.concurrency(),
            &self.console,
            |(mv, target, conf)| {
                // dkms 3.2.2's lines for this build, said as it goes: jobs::run holds a
                // job's lines and writes them together, in the jobs' order.
                let header = format!("Autoinstall of module {mv} for kernel {target}");
                let said_header = std::cell::Cell::new(false);
                let say_header = || {
                    if announce && !said_header.replace(true) {
                        self.console.say(&header);
                    }
                };
                let fail = |e: ActionError| {
                    if announce {
                        say_header();
                        e.report(&self.console);
                        self.console.say("");
                        return Err(ActionError::Reported {
                            code: e.exit_code(),
                        });
                    }
                    Err(e)
                };
                if !self.tree.is_built(mv, target, conf) {
                    let build_dir = if shared.contains(mv) {
                        // One build dir per kernel when the same module builds for several at once.
                        self.tree
                            .version_dir(mv)
                            .join(format!(".build-{}-{}", target.kernel, target.arch))
                    } else {
                        self.tree.build_dir(mv)
                    };
                    let request = BuildRequest {
                        tree: &self.tree,
                        module: mv,
                        target,
                        conf,
                        jobs: self.settings.jobs,
                        build_dir,
                        signing: signing.get(target).and_then(Option::as_ref),
                        force: self.flags.force,
                        build_user: self.settings.build_user.as_ref(),
                    };
                    // dkms 3.2.2's do_build checks all but BUILD_DEPENDS before it prepares
                    // the kernel (its blank line); autoinstall prepares it before it announces
                    // the module.
                    if !announce
                        && let Err(e) = build::check_buildable(&request)
                        && !matches!(e, ActionError::MissingBuildDepends { .. })
                    {
                        return fail(e);
                    }
                    self.prepare_target(target);
                    say_header();
                    let missing = build::missing_build_depends(&request);
                    if self.flags.force && !missing.is_empty() {
                        // dkms 3.2.2's do_build under --force: a warning, and on.
                        self.console.warn(&format!(
                            "Trying to build module {mv} for kernel {target} despite of missing BUILD_DEPENDS: {}.",
                            missing.join(" ")
                        ));
                    }
                    if let Err(e) = build::build(&request, &self.console) {
                        return fail(e);
                    }
                } else {
                    say_header();
                }
                match after(mv, target, conf) {
                    Ok(Some(more)) => self.console.say(&more),
                    Ok(None) => {}
                    Err(e) => return fail(e),
                }
                Ok(String::new())
            },
        )
    }

    /// A build's estimated cost in milliseconds, known before it starts, for the parallel
    /// schedule (jobs::run starts the largest first): the longest time a build of the same
    /// module version took for another kernel (the `# elapsed time` lines of its make.log:
    /// after an ABI bump every module has one), else its source's size in bytes at 32 KiB
    /// a second (bench/README.md, "corpus": the corpus's builds alone run at 10 to 50 KiB/s
    /// on the bench machine, plus kbuild's few seconds for the smallest).
    fn build_cost(&self, mv: &ModuleVersion) -> u64 {
        let logs = std::fs::read_dir(self.tree.version_dir(mv))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|kernel| kernel.file_type().is_ok_and(|t| t.is_dir()))
            .flat_map(|kernel| {
                std::fs::read_dir(kernel.path())
                    .into_iter()
                    .flatten()
                    .flatten()
            })
            .map(|arch| arch.path().join("log/make.log"));
        let recorded = logs
            .filter_map(|log| std::fs::read_to_string(log).ok())
            .map(|text| {
                text.lines()
                    .filter_map(|line| line.strip_prefix("# elapsed time: "))
                    .filter_map(|hms| {
                        let mut parts = hms.trim().split(':').map(|p| p.parse::<u64>().ok());
                        Some(parts.next()?? * 3600 + parts.next()?? * 60 + parts.next()??)
                    })
                    .sum::<u64>()
            })
            .max();
        if let Some(seconds) = recorded {
            return seconds * 1000;
        }
        let bytes: u64 = walkdir::WalkDir::new(self.tree.source_dir(mv))
            .follow_links(false)
            .into_iter()
            .flatten()
            .filter(|entry| entry.file_type().is_file())
            .filter_map(|entry| entry.metadata().ok())
            .map(|meta| meta.len())
            .sum();
        bytes * 1000 / 32768
    }

    /// dkms 3.2.2's `prepare_signing`, once per kernel that has a build to do (headers there,
    /// not BUILD_EXCLUSIVE), in order, before the builds start: its lines come before them,
    /// and a missing MOK pair is made once, not by two builds at a time.
    ///
    /// `build` and `install` prepare it for a build that passes do_build's first checks;
    /// autoinstall for any module not built, BUILD_EXCLUSIVE or not (3.2.2 prepares the
    /// kernel and signing before it installs each module).
    fn prepare_signing<'a>(
        &self,
        items: impl Iterator<Item = &'a (ModuleVersion, Target, ModuleConf)>,
        autoinstall: bool,
    ) -> BTreeMap<Target, Option<build::Signing>> {
        let mut prepared = BTreeMap::new();
        let Some(conf) = &self.settings.signing else {
            return prepared;
        };
        let mut before = self.prepared.1.lock().unwrap_or_else(|e| e.into_inner());
        for (mv, target, module_conf) in items {
            // Prepared by an earlier build of this command: its lines said then.
            if let Some(signing) = before.get(target) {
                prepared.insert(target.clone(), signing.clone());
                continue;
            }
            if prepared.contains_key(target)
                || self.tree.is_built(mv, target, module_conf)
                || !crate::kernel::has_headers(&self.tree.headers_dir(&target.kernel))
            {
                continue;
            }
            let request = BuildRequest {
                tree: &self.tree,
                module: mv,
                target,
                conf: module_conf,
                jobs: None,
                build_dir: self.tree.build_dir(mv),
                signing: None,
                force: self.flags.force,
                build_user: None,
            };
            if !autoinstall
                && let Err(e) = build::check_buildable(&request)
                && !matches!(e, ActionError::MissingBuildDepends { .. })
            {
                continue;
            }
            let ctx = self.tree.resolve_context(target, Some(mv));
            // Its blank line after these comes with the build's lines (prepare_target).
            let signing = conf.prepare(&ctx, &self.console);
            before.insert(target.clone(), signing.clone());
            prepared.insert(target.clone(), signing);
        }
        prepared
    }

    pub(super) fn unbuild_one(
        &self,
        mv: &ModuleVersion,
        target: &Target,
    ) -> Result<(), ActionError> {
        let dir = self.tree.built_dir(mv, target);
        remove_dir_by_rename(&dir)?;
        if let Some(kernel_dir) = dir.parent() {
            // dkms removes <k> when no other arch is left in it.
            let _ = std::fs::remove_dir(kernel_dir);
        }
        Ok(())
    }

    /// `uninstall`: for each target where this version is installed, depmod after each (as
    /// dkms 3.2.2's uninstall_module), a blank line between targets.
    pub fn uninstall(&self, mv: &ModuleVersion, targets: &[Target]) -> Result<(), ActionError> {
        let lock = self.lock()?;
        lock.run(|| {
            self.require_added(mv)?;
            for (i, target) in distinct(targets).iter().enumerate() {
                if i > 0 {
                    self.console.say("");
                }
                let conf = self.read_conf(mv, target)?;
                if let Err(e) = self.maybe_uninstall(mv, target, &conf) {
                    return self.depmod_after_failure(e);
                }
            }
            self.depmod_all_marked()
        })
    }

    /// dkms 3.2.2's maybe_uninstall_module: uninstall and depmod where this version is
    /// installed, else say it is not.
    fn maybe_uninstall(
        &self,
        mv: &ModuleVersion,
        target: &Target,
        conf: &ModuleConf,
    ) -> Result<(), ActionError> {
        // dkms 3.2.2's is_module_installed: the module/ dir and the kernel link (an
        // incomplete build, its module file gone, is still uninstalled).
        let built = self.tree.built_dir(mv, target).join("module").is_dir();
        if !(built && self.tree.is_installed(mv, target)) {
            self.console.say(&format!(
                "Module {mv} is not installed for kernel {target}. Skipping..."
            ));
            return Ok(());
        }
        self.uninstall_target(mv, target, conf)?;
        self.depmod_all_marked()
    }

    /// A command failing after it changed modules still runs depmod for them, so that
    /// modules.dep tells the truth; the failure is what the command returns.
    pub(super) fn depmod_after_failure(&self, error: ActionError) -> Result<(), ActionError> {
        if let Err(e) = self.depmod_all_marked() {
            e.report(&self.console);
        }
        Err(error)
    }

    /// `unbuild`: uninstall and forget the build for each target.
    pub fn unbuild(&self, mv: &ModuleVersion, targets: &[Target]) -> Result<(), ActionError> {
        let lock = self.lock()?;
        lock.run(|| {
            self.require_added(mv)?;
            if let Err(e) = self.uninstall_and_unbuild(mv, targets, false) {
                return self.depmod_after_failure(e);
            }
            self.depmod_all_marked()
        })
    }

    /// dkms 3.2.2's unbuild_module (`blank_after`: remove_module's loop, a blank line after
    /// each target instead of between them).
    pub(super) fn uninstall_and_unbuild(
        &self,
        mv: &ModuleVersion,
        targets: &[Target],
        blank_after: bool,
    ) -> Result<(), ActionError> {
        for (i, target) in distinct(targets).iter().enumerate() {
            if i > 0 && !blank_after {
                self.console.say("");
            }
            let conf = self.read_conf(mv, target)?;
            self.maybe_uninstall(mv, target, &conf)?;
            if self.tree.is_built(mv, target, &conf) {
                self.unbuild_one(mv, target)?;
            } else {
                self.console.say(&format!(
                    "Module {mv} is not built for kernel {target}. Skipping..."
                ));
            }
            if blank_after {
                self.console.say("");
            }
        }
        Ok(())
    }

    /// `remove`: uninstall, unbuild, and drop the version from the tree once no kernel is left.
    pub fn remove(&self, mv: &ModuleVersion, targets: &[Target]) -> Result<(), ActionError> {
        let lock = self.lock()?;
        lock.run(|| {
            self.require_added(mv)?;
            if let Err(e) = self.uninstall_and_unbuild(mv, targets, true) {
                return self.depmod_after_failure(e);
            }
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
                    "Deleting module {mv} completely from the DKMS tree."
                ));
                if let Err(e) = remove_dir_by_rename(&version_dir) {
                    return self.depmod_after_failure(e);
                }
                let module_dir = self.tree.module_dir(&mv.module);
                let empty = std::fs::read_dir(&module_dir)
                    .map(|d| {
                        d.flatten()
                            .all(|e| e.file_name().to_string_lossy().starts_with('.'))
                    })
                    .unwrap_or(false);
                if empty {
                    // As dkms's `rmdir`: best effort (the next command removes an empty one).
                    let _ = std::fs::remove_dir_all(&module_dir);
                }
            }
            self.depmod_all_marked()
        })
    }
}
