//! autoinstall and match: every AUTOINSTALL module for the given kernels, newest version,
//! in BUILD_DEPENDS order.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::conf::ModuleConf;
use crate::error::ActionError;
use crate::jobs::Outcome;
use crate::kernel::{KernelRelease, Target, version_key};
use crate::tree::ModuleVersion;

use super::Session;

impl Session {
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
