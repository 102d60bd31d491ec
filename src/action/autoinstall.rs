//! autoinstall and match: every AUTOINSTALL module for the given kernels, newest version,
//! in BUILD_DEPENDS order.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::conf::ModuleConf;
use crate::error::ActionError;
use crate::jobs::Outcome;
use crate::kernel::{KernelRelease, Target, version_key};
use crate::tree::ModuleVersion;

use super::{Session, distinct};

impl Session {
    /// `autoinstall`: build and install, for each target, the newest version of every added
    /// module with AUTOINSTALL that is not installed there, in BUILD_DEPENDS order, in parallel,
    /// saying what dkms 3.2.2's autoinstall says. `<etc>/no-autoinstall` turns it off; a
    /// kernel without headers fails it (21) when there is something to build, as in 3.2.2.
    pub fn autoinstall(&self, targets: &[Target]) -> Result<(), ActionError> {
        // A kernel hook's autoinstall races a package's install of the same module: one waits.
        let lock = self.lock()?;
        lock.run(|| {
            if self.tree.etc_dir.join("no-autoinstall").exists() {
                self.console
                    .say("Automatic installation of modules has been disabled.");
                return Ok(());
            }
            let targets = distinct(targets);
            if self.concurrency() > 1 && targets.len() > 1 {
                return self.autoinstall_together(&targets);
            }
            let mut first_error = None;
            for target in targets {
                if let Err(e) = self.autoinstall_target(&target) {
                    if !matches!(e, ActionError::Reported { .. }) {
                        e.report(&self.console);
                    }
                    first_error.get_or_insert(ActionError::Reported {
                        code: e.exit_code(),
                    });
                }
            }
            first_error.map_or(Ok(()), Err)
        })
    }

    /// [`Session::autoinstall`] for one target.
    fn autoinstall_target(&self, target: &Target) -> Result<(), ActionError> {
        let Some(mut plan) = self.autoinstall_plan(target)? else {
            return Ok(());
        };
        let installed = Mutex::new(Vec::new());
        // dkms 3.2.2's install_module for each: do_install (its depmod, the rebuild of the
        // modules that depend on it), then autoinstall's blank line.
        let outcomes = self.run_announced_jobs(
            std::mem::take(&mut plan.todo),
            plan.deps.clone(),
            |mv, target, conf| {
                self.install_now(mv, target, conf, &installed, 0)
                    .map(|()| Some(String::new()))
            },
        );
        let installed = installed.into_inner().unwrap_or_default();
        self.autoinstall_finish(target, plan, outcomes, installed, false)
    }

    /// Several kernels' autoinstalls as one batch of builds, so that `-j` builds of one
    /// kernel run beside another's (on 2 cores the corpus's wall was one kernel's longest
    /// build after the other's: bench/README.md, "corpus"); each kernel's lines, depmod and
    /// summary after it, in the order given, as its own autoinstall would say them. A kernel
    /// that cannot be planned (no headers) fails alone, as in the loop one kernel at a time.
    fn autoinstall_together(&self, targets: &[Target]) -> Result<(), ActionError> {
        let mut first_error = None;
        let failed_early = |e: ActionError, first_error: &mut Option<ActionError>| {
            if !matches!(e, ActionError::Reported { .. }) {
                e.report(&self.console);
            }
            first_error.get_or_insert(ActionError::Reported {
                code: e.exit_code(),
            });
        };
        let mut plans = Vec::new();
        for target in targets {
            match self.autoinstall_plan(target) {
                Ok(Some(plan)) => plans.push((target, plan)),
                Ok(None) => {}
                Err(e) => failed_early(e, &mut first_error),
            }
        }
        // One list of jobs, each target's dependencies shifted to its place in it.
        let mut todo = Vec::new();
        let mut deps = Vec::new();
        for (_, plan) in &mut plans {
            let start = todo.len();
            deps.extend(
                plan.deps
                    .iter()
                    .map(|after| after.iter().map(|d| d + start).collect::<Vec<_>>()),
            );
            todo.append(&mut plan.todo);
        }
        // One lock for every install of the batch, as for one kernel's (install_now).
        let installed = Mutex::new(Vec::new());
        let mut outcomes = self.run_announced_jobs(todo, deps, |mv, target, conf| {
            self.install_now(mv, target, conf, &installed, 0)
                .map(|()| Some(String::new()))
        });
        let mut installed = installed.into_inner().unwrap_or_default();
        for (target, plan) in plans {
            let mine: Vec<Outcome> = outcomes.drain(..plan.deps.len()).collect();
            let (done, rest) = installed.into_iter().partition(|(_, t, _)| t == target);
            installed = rest;
            if let Err(e) = self.autoinstall_finish(target, plan, mine, done, true) {
                failed_early(e, &mut first_error);
            }
        }
        // Anything left due (a rebuild of another kernel's dependents, a recovered mark).
        if let Err(e) = self.depmod_or_roll_back(Vec::new()) {
            first_error.get_or_insert(ActionError::Reported {
                code: e.exit_code(),
            });
        }
        first_error.map_or(Ok(()), Err)
    }

    /// What autoinstall will do for `target`, or `None` when there is nothing to build and
    /// nothing to say; `Err` when it cannot start (no headers: 21, as 3.2.2's prepare_kernel).
    fn autoinstall_plan(&self, target: &Target) -> Result<Option<Plan>, ActionError> {
        let mut todo: Vec<(ModuleVersion, Target, ModuleConf)> = Vec::new();
        let mut failed: Vec<String> = Vec::new();
        let mut by_module: BTreeMap<String, Vec<ModuleVersion>> = BTreeMap::new();
        for mv in self.tree.added_modules(None, None) {
            if self.tree.is_broken(&mv) {
                // dkms 3.2.2's autoinstall: said, and left out.
                self.console.error(
                    &format!(
                        "{mv} is broken! Missing the source directory or the symbolic link pointing to it.\nManual intervention is required!"
                    ),
                    "",
                );
                continue;
            }
            by_module.entry(mv.module.clone()).or_default().push(mv);
        }
        for versions in by_module.values_mut() {
            versions.sort_by_key(|mv| std::cmp::Reverse(version_key(&mv.version)));
        }
        // dkms 3.2.2 counts the modules already installed among those that "succeeded".
        let mut succeeded = Vec::new();
        for (module, versions) in &by_module {
            // The common no-op: the newest version is installed; no dkms.conf to read.
            if versions
                .first()
                .is_some_and(|mv| self.tree.is_installed(mv, target))
            {
                succeeded.push(module.clone());
                continue;
            }
            // Else the newest version with AUTOINSTALL, unless that one is installed.
            for mv in versions {
                let conf = match self.read_conf(mv, target) {
                    Ok(conf) => conf,
                    Err(e) => {
                        e.report(&self.console);
                        failed.push(format!("{}({})", mv.module, e.exit_code()));
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
        if todo.is_empty() && failed.is_empty() {
            return Ok(None);
        }
        // dkms 3.2.2's prepare_kernel dies (21) before the first build when there are no headers.
        let headers = self.tree.headers_dir(&target.kernel);
        if todo
            .iter()
            .any(|(mv, t, conf)| !self.tree.is_built(mv, t, conf))
            && !crate::kernel::has_headers(&headers)
        {
            return Err(ActionError::NoHeaders {
                kernel: target.kernel.clone(),
                dir: headers,
            });
        }
        let planned: Vec<(&str, &Target, &[String])> = todo
            .iter()
            .map(|(mv, t, conf)| (mv.module.as_str(), t, conf.build_depends.as_slice()))
            .collect();
        let order = build_order(&planned, |dep, target| {
            self.tree.installed_version(dep, target).is_some()
        });
        // What each planned module depends on, for what cannot be installed in the end.
        let wanted: Vec<(ModuleVersion, Vec<String>)> = todo
            .iter()
            .map(|(mv, _, conf)| (mv.clone(), conf.build_depends.clone()))
            .collect();
        let not_run: Vec<usize> = order.blocked.iter().map(|(i, _)| *i).collect();
        // The runnable builds as they were planned.
        let todo: Vec<_> = todo
            .into_iter()
            .enumerate()
            .filter(|(i, _)| order.runnable.contains(i))
            .map(|(_, item)| item)
            .collect();
        let deps = order.waits_for;
        // dkms 3.2.2 installs in rounds (a module once what it depends on is in) and lists
        // the modules in that order: each job's round.
        let mut round = vec![0usize; deps.len()];
        for _ in 0..deps.len() {
            for i in 0..deps.len() {
                round[i] = deps[i].iter().map(|&d| round[d] + 1).max().unwrap_or(0);
            }
        }
        let names: Vec<(ModuleVersion, Target)> = todo
            .iter()
            .map(|(mv, t, _)| (mv.clone(), t.clone()))
            .collect();
        Ok(Some(Plan {
            todo,
            deps,
            round,
            names,
            wanted,
            not_run,
            succeeded,
            failed,
        }))
    }

    /// The end of autoinstall for `target` once its builds ran (`outcomes`, in the plan's
    /// order): its depmod (of this kernel alone when `own_kernel`: other kernels of the same
    /// batch have their own), then 3.2.2's summary lines.
    fn autoinstall_finish(
        &self,
        target: &Target,
        plan: Plan,
        outcomes: Vec<Outcome>,
        installed: Vec<(ModuleVersion, Target, ModuleConf)>,
        own_kernel: bool,
    ) -> Result<(), ActionError> {
        let Plan {
            round,
            names,
            wanted,
            mut not_run,
            mut succeeded,
            mut failed,
            ..
        } = plan;
        let mut skipped = Vec::new();
        let mut done = Vec::new();
        for (i, ((mv, _), outcome)) in names.into_iter().zip(outcomes).enumerate() {
            match outcome {
                Outcome::Done(_) => done.push((round[i], i, mv.module)),
                // BUILD_EXCLUSIVE: not for this kernel, which is not a failure.
                Outcome::Failed(ActionError::Reported { code: 77 }) => {
                    skipped.push((round[i], i, mv.module))
                }
                Outcome::Failed(e) => failed.push(format!("{}({})", mv.module, e.exit_code())),
                Outcome::Blocked(_) => {
                    if let Some(at) = wanted.iter().position(|(w, _)| *w == mv) {
                        not_run.push(at);
                    }
                }
            }
        }
        done.sort();
        skipped.sort();
        succeeded.extend(done.into_iter().map(|(_, _, module)| module));
        let skipped: Vec<String> = skipped.into_iter().map(|(_, _, module)| module).collect();
        // dkms 3.2.2: each module left, with what it still waits for (not installed, not
        // skipped), in the order they were planned.
        not_run.sort();
        not_run.dedup();
        let missing_deps: Vec<String> = not_run
            .iter()
            .map(|&i| {
                let (mv, depends) = &wanted[i];
                let left: Vec<&str> = depends
                    .iter()
                    .map(String::as_str)
                    .filter(|d| !succeeded.iter().chain(&skipped).any(|m| m == d))
                    .collect();
                format!(
                    "{mv} autoinstall failed due to missing dependencies: {}.",
                    left.join(" ")
                )
            })
            .collect();
        let depmod = if own_kernel {
            self.depmod_or_roll_back_kernel(&target.kernel, installed)
        } else {
            self.depmod_or_roll_back(installed)
        };
        if let Err(e) = depmod {
            failed.push(format!("depmod({})", e.exit_code()));
        }
        let k = &target.kernel;
        if !succeeded.is_empty() {
            self.console.say(&format!(
                "Autoinstall on {k} succeeded for module(s) {}.",
                succeeded.join(" ")
            ));
        }
        if !skipped.is_empty() {
            self.console.say(&format!(
                "Autoinstall on {k} was skipped for module(s) {}.",
                skipped.join(" ")
            ));
        }
        if !failed.is_empty() {
            self.console.say(&format!(
                "Autoinstall on {k} failed for module(s) {}.",
                failed.join(" ")
            ));
        }
        for line in &missing_deps {
            self.console.say(line);
        }
        if failed.is_empty() && missing_deps.is_empty() {
            Ok(())
        } else {
            Err(ActionError::Autoinstall {
                failed: failed.into_iter().chain(missing_deps).collect(),
            })
        }
    }

    /// `match --templatekernel T -k K [module]`: install on K what is installed on T.
    pub fn match_kernel(
        &self,
        template: &KernelRelease,
        target: &Target,
        module: Option<&str>,
    ) -> Result<(), ActionError> {
        let lock = self.lock()?;
        lock.run(|| {
            if &target.kernel == template {
                return Err(ActionError::SameTemplateKernel {
                    kernel: template.clone(),
                });
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
        })
    }
}

/// BUILD_DEPENDS among the builds autoinstall plans: which can run, in what order, and which
/// cannot, each with the dependency it lacks, in the order dkms reports them.
#[derive(Debug, PartialEq, Eq)]
struct BuildOrder {
    /// The builds that can run (indices into the plan), in plan order.
    runnable: Vec<usize>,
    /// For each runnable build (same order), the runnable builds it waits for (indices into
    /// `runnable`).
    waits_for: Vec<Vec<usize>>,
    /// The builds that cannot run and the dependency that stops each: first the ones whose
    /// dependency is neither planned nor installed on their target, then, pass by pass, the
    /// ones waiting for such a build (dkms's autoinstall loop never sees that dependency
    /// installed and fails them the same way).
    blocked: Vec<(usize, String)>,
}

/// Order `planned` builds, each `(module, target, BUILD_DEPENDS)`: a dependency is waited for
/// when it is planned for the same target, fine when `installed(dep, target)`, else missing.
fn build_order<T: PartialEq>(
    planned: &[(&str, &T, &[String])],
    installed: impl Fn(&str, &T) -> bool,
) -> BuildOrder {
    let mut deps = vec![Vec::new(); planned.len()];
    let mut runnable = vec![true; planned.len()];
    let mut blocked = Vec::new();
    for (i, (_, target, build_depends)) in planned.iter().enumerate() {
        for dep in *build_depends {
            if let Some(j) = planned.iter().position(|(m, t, _)| m == dep && t == target) {
                deps[i].push(j);
            } else if !installed(dep, target) {
                blocked.push((i, dep.clone()));
                runnable[i] = false;
            }
        }
    }
    let mut settled = false;
    while !settled {
        settled = true;
        for i in 0..planned.len() {
            if !runnable[i] {
                continue;
            }
            if let Some(&j) = deps[i].iter().find(|&&j| !runnable[j]) {
                blocked.push((i, planned[j].0.to_string()));
                runnable[i] = false;
                settled = false;
            }
        }
    }
    // What waits, directly or not, for itself (a cycle) cannot start either.
    let mut resolved = vec![false; planned.len()];
    let mut progress = true;
    while progress {
        progress = false;
        for i in 0..planned.len() {
            if runnable[i] && !resolved[i] && deps[i].iter().all(|&j| resolved[j]) {
                resolved[i] = true;
                progress = true;
            }
        }
    }
    for i in 0..planned.len() {
        if runnable[i] && !resolved[i] {
            runnable[i] = false;
            blocked.push((i, planned[i].0.to_string()));
        }
    }
    let kept: Vec<usize> = (0..planned.len()).filter(|&i| runnable[i]).collect();
    let position = |j: usize| kept.iter().position(|&k| k == j);
    let waits_for = kept
        .iter()
        .map(|&i| deps[i].iter().filter_map(|&j| position(j)).collect())
        .collect();
    BuildOrder {
        runnable: kept,
        waits_for,
        blocked,
    }
}

/// One kernel's autoinstall, planned ([`Session::autoinstall_plan`]): the builds to run in
/// order with what each waits for, and what is known before they run.
struct Plan {
    todo: Vec<(ModuleVersion, Target, ModuleConf)>,
    deps: Vec<Vec<usize>>,
    /// Each job's install round (3.2.2 lists the modules in that order).
    round: Vec<usize>,
    names: Vec<(ModuleVersion, Target)>,
    /// Every planned module with its BUILD_DEPENDS, for what is left waiting.
    wanted: Vec<(ModuleVersion, Vec<String>)>,
    not_run: Vec<usize>,
    succeeded: Vec<String>,
    failed: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_order_waits_for_planned_and_blocks_what_cannot_be_built() {
        let deps = |d: &[&str]| d.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (a, b, c, d, e) = (
            deps(&["b"]),
            deps(&[]),
            deps(&["gone"]),
            deps(&["c"]),
            deps(&["base"]),
        );
        let (k1, k2) = (1, 2);
        let planned: Vec<(&str, &i32, &[String])> = vec![
            ("a", &k1, &a),
            ("b", &k1, &b),
            ("c", &k1, &c),
            ("d", &k1, &d),
            ("e", &k1, &e),
            // Same module on another kernel: its dependency b is not planned there.
            ("a", &k2, &a),
        ];
        let order = build_order(&planned, |dep, _| dep == "base");
        assert_eq!(order.runnable, vec![0, 1, 4]);
        assert_eq!(order.waits_for, vec![vec![1], vec![], vec![]]);
        assert_eq!(
            order.blocked,
            vec![
                (2, "gone".to_string()),
                (5, "b".to_string()),
                (3, "c".to_string())
            ]
        );
    }
}
