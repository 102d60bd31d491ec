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
    /// module with AUTOINSTALL that is not installed there, in BUILD_DEPENDS order, in parallel.
    /// `<etc>/no-autoinstall` turns it off, and a kernel without headers is skipped, as
    /// Debian's dkms_autoinstaller (the kernel hook) does before calling dkms.
    pub fn autoinstall(&self, targets: &[Target]) -> Result<(), ActionError> {
        // A kernel hook's autoinstall races a package's install of the same module: one waits.
        let _lock = self.lock()?;
        if self.tree.etc_dir.join("no-autoinstall").exists() {
            self.console.say(&format!(
                "{}: autoinstall for dkms modules has been disabled ({})",
                self.console.program,
                self.tree.etc_dir.join("no-autoinstall").display()
            ));
            return Ok(());
        }
        let with_headers: Vec<Target> = distinct(targets)
            .into_iter()
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
        let planned: Vec<(&str, &Target, &[String])> = todo
            .iter()
            .map(|(mv, t, conf)| (mv.module.as_str(), t, conf.build_depends.as_slice()))
            .collect();
        let order = build_order(&planned, |dep, target| {
            self.tree.installed_version(dep, target).is_some()
        });
        for (i, dep) in &order.blocked {
            self.console.say(&format!(
                "{} autoinstall failed due to missing dependencies: {dep}",
                todo[*i].0
            ));
        }
        // The failures in plan order, the runnable builds as they were planned.
        let mut runnable = Vec::new();
        for (i, item) in todo.into_iter().enumerate() {
            if order.runnable.contains(&i) {
                runnable.push(item);
            } else {
                failed.push(format!("{} ({})", item.0, item.1));
            }
        }
        let todo = runnable;
        let deps = order.waits_for;
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
        let _lock = self.lock()?;
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
