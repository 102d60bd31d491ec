//! Crash safety (issue 9): dkms-rs is killed at every filesystem step of build, install,
//! uninstall, unbuild and remove, for one kernel and for two, and given a full disk at every
//! write. The faults are strace's (`-e inject=SYSCALL:signal=KILL:when=N`, then
//! `:error=ENOSPC`), on dkms-rs's own steps (`-j 1`: one job at a time, on its one thread;
//! make, cp and depmod are its children, not traced).
//!
//! After each kill, `dkms-rs status` reports only states that are on disk, and a module file
//! in the modules directory that no "installed" line accounts for has its pending record.
//! Running the same command again then finishes the job: `dkms status` (Debian's dkms 3.0.10,
//! reading the tree) and the modules directory (files and modules.dep, made by depmod) are
//! what dkms 3.0.10 itself leaves from the same start, and nothing temporary is left.
//! After a full disk, the command fails with one line naming the disk full, and the state
//! is the one from before.

use crate::support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::scratch::{Scratch, ok};

/// The filesystem steps a kill lands on: every call that changes a directory.
const STEPS: [&str; 12] = [
    "rename",
    "renameat",
    "renameat2",
    "unlink",
    "unlinkat",
    "rmdir",
    "mkdir",
    "mkdirat",
    "symlink",
    "symlinkat",
    "link",
    "linkat",
];

/// The calls a full disk fails: the steps that allocate, and the writes.
const WRITES: [&str; 13] = [
    "write",
    "pwrite64",
    "writev",
    "copy_file_range",
    "sendfile",
    "fallocate",
    "rename",
    "renameat2",
    "mkdir",
    "mkdirat",
    "symlink",
    "symlinkat",
    "linkat",
];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Verb {
    Build,
    Install,
    Uninstall,
    Unbuild,
    Remove,
}

impl Verb {
    fn name(self) -> &'static str {
        match self {
            Verb::Build => "build",
            Verb::Install => "install",
            Verb::Uninstall => "uninstall",
            Verb::Unbuild => "unbuild",
            Verb::Remove => "remove",
        }
    }

    /// The state the verb starts from: added, built or installed, made by dkms-rs.
    fn prepare(self, s: &Scratch, kernels: &[String]) {
        let source = s.add_hello_source();
        ok(&mut s.dkms_rs(&["add", "hello/0.1"]));
        let before = match self {
            Verb::Build => return prebuilt_make(s, &source, kernels),
            Verb::Install => "build",
            _ => "install",
        };
        ok(&mut s.dkms_rs(&args(before, kernels)));
    }
}

/// Make `build` cheap to repeat, for the hundreds of builds a kill at every step runs: the
/// module is built once by real make against each kernel's headers, and its `MAKE[0]` is
/// then a copy of that build's hello.ko (make is dkms-rs's child, not traced: the steps
/// killed are dkms-rs's own either way, and both dkms-rs and dkms 3.0.10 run the same copy).
fn prebuilt_make(s: &Scratch, source: &Path, kernels: &[String]) {
    ok(&mut s.dkms_rs(&args("build", kernels)));
    let arch = support::arch();
    for k in kernels {
        let dir = source.join("prebuilt").join(k);
        std::fs::create_dir_all(&dir).unwrap();
        let built = s
            .dkms_tree
            .join(format!("hello/0.1/{k}/{arch}/module/hello.ko"));
        std::fs::copy(&built, dir.join("hello.ko")).unwrap();
    }
    // Back to the state `add` leaves (its empty build/ included).
    ok(&mut s.dkms_rs(&["remove", "hello/0.1", "--all"]));
    let conf = source.join("dkms.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    let text = text.replace(
        "MAKE[0]=\"make all KVERSION=$kernelver\"",
        "MAKE[0]=\"cp prebuilt/$kernelver/hello.ko .\"",
    );
    assert!(
        text.contains("prebuilt/"),
        "hello's MAKE[0] changed: {text}"
    );
    std::fs::write(&conf, text).unwrap();
    ok(&mut s.dkms_rs(&["add", "hello/0.1"]));
}

/// `<verb> hello/0.1 -k K...` (`remove` takes `--all`), one job at a time (`-j`, which only
/// the verbs that build take).
fn args<'a>(verb: &'a str, kernels: &'a [String]) -> Vec<&'a str> {
    let mut v = vec![verb, "hello/0.1"];
    if matches!(verb, "build" | "install") {
        v.extend(["-j", "1"]);
    }
    if verb == "remove" {
        v.push("--all");
    } else {
        for k in kernels {
            v.extend(["-k", k.as_str()]);
        }
    }
    v
}

/// One verb on one or two kernels: its start state kept as a template beside the scratch,
/// copied back before every run (the tree holds absolute links into the scratch).
struct Bench {
    s: Scratch,
    template: tempfile::TempDir,
    kernels: Vec<String>,
    verb: Verb,
    /// What dkms 3.0.10 leaves when it runs the verb from the start state.
    reference: Facts,
}

/// What a finished command leaves, as the real tools see it.
#[derive(Debug, PartialEq)]
struct Facts {
    /// `dkms status` of Debian's dkms 3.0.10.
    status: String,
    /// Module files and directories under each kernel's modules directory (not depmod's
    /// indexes: dkms 3.0.10 runs depmod on /lib/modules whatever `--installtree` says, so
    /// modules.dep is checked against the files instead, by [`Bench::modules_dep_is_true`]).
    modules: BTreeMap<String, Vec<String>>,
}

impl Bench {
    fn new(verb: Verb, kernels: &[String]) -> Bench {
        let s = Scratch::new(kernels);
        verb.prepare(&s, kernels);
        let template = tempfile::tempdir().expect("template dir");
        copy_dir(s.dir.path(), template.path());
        let mut bench = Bench {
            s,
            template,
            kernels: kernels.to_vec(),
            verb,
            reference: Facts {
                status: String::new(),
                modules: BTreeMap::new(),
            },
        };
        ok(&mut bench.s.dkms(&args(verb.name(), kernels)));
        bench.reference = bench.facts();
        bench
    }

    fn restore(&self) {
        for entry in std::fs::read_dir(self.s.dir.path()).expect("scratch") {
            let path = entry.expect("entry").path();
            std::fs::remove_dir_all(&path).expect("clear scratch");
        }
        copy_dir(self.template.path(), self.s.dir.path());
    }

    fn argv(&self) -> Vec<String> {
        args(self.verb.name(), &self.kernels)
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    /// dkms-rs under strace with `inject` (`SYSCALL:signal=KILL:when=N`...), or just traced
    /// (`trace` with `-o log`) when `inject` is `None`.
    fn traced(&self, syscalls: &str, inject: Option<&str>, log: &Path) -> Command {
        let mut cmd = support::command("strace");
        cmd.args(["-qq", "-o"]).arg(log);
        cmd.arg(format!("--trace={syscalls}"));
        if let Some(inject) = inject {
            cmd.arg(format!("--inject={inject}"));
        }
        cmd.arg(env!("CARGO_BIN_EXE_dkms-rs"))
            .args(self.argv())
            .args(self.s.tree_args())
            .arg("--etcdir")
            .arg(&self.s.etc_dir)
            .current_dir(self.s.dir.path());
        cmd
    }

    /// How many times the uninterrupted command makes each of `syscalls`.
    fn count(&self, syscalls: &[&str]) -> BTreeMap<String, usize> {
        self.restore();
        let log = self.template.path().join("strace.log");
        ok(&mut self.traced(&syscalls.join(","), None, &log));
        let text = std::fs::read_to_string(&log).expect("strace log");
        std::fs::remove_file(&log).expect("rm log");
        let mut counts = BTreeMap::new();
        for line in text.lines() {
            let name = line.split('(').next().unwrap_or("");
            if syscalls.contains(&name) {
                *counts.entry(name.to_owned()).or_insert(0) += 1;
            }
        }
        counts
    }

    fn facts(&self) -> Facts {
        let status = ok(&mut self.s.dkms(&["status"]));
        let modules = self
            .kernels
            .iter()
            .map(|k| {
                let dir = self.s.install_tree.join(k);
                let files = support::scratch::listing(&dir)
                    .into_iter()
                    .filter(|p| !p.starts_with("modules.") && !p.starts_with("build"))
                    .collect();
                (k.clone(), files)
            })
            .collect();
        Facts { status, modules }
    }

    /// Check what a killed run left, then run the command again and check it is finished.
    fn after_kill(&self, what: &str) {
        let status = ok(&mut self.s.dkms_rs(&["status"]));
        self.status_is_on_disk(&status, what);
        let (code, out, err) = support::run(
            &mut self
                .s
                .dkms_rs(&self.argv().iter().map(String::as_str).collect::<Vec<_>>()),
        );
        // Killed after its last change, `remove` finds nothing to remove: dkms's exit 3.
        let finished = code == 0 || (self.verb == Verb::Remove && code == 3);
        assert!(
            finished,
            "{what}: the same command again exited {code}\n{out}\n{err}\n{}",
            listing(self.s.dir.path())
        );
        let facts = self.facts();
        assert_eq!(
            facts,
            self.reference,
            "{what}: after the command again, not what dkms 3.0.10 leaves\n{}",
            listing(self.s.dir.path())
        );
        self.modules_dep_is_true(what);
        let left = leftovers(self.s.dir.path());
        assert!(left.is_empty(), "{what}: left behind: {left:?}");
    }

    /// Every line of `dkms-rs status` is true of the disk; a module file in a modules
    /// directory that no "installed" line accounts for has its pending record.
    fn status_is_on_disk(&self, status: &str, what: &str) {
        let tree = &self.s.dkms_tree;
        let arch = support::arch();
        let mut installed_on: Vec<String> = Vec::new();
        for line in status.lines() {
            let (target, state) = line.rsplit_once(": ").unwrap_or((line, ""));
            let parts: Vec<&str> = target.split(", ").collect();
            let source = tree.join("hello/0.1/source/dkms.conf");
            assert!(
                source.is_file(),
                "{what}: `{line}` but no {}",
                source.display()
            );
            let [_, k, _] = parts.as_slice() else {
                assert_eq!(parts, ["hello/0.1"], "{what}: {line}");
                assert_eq!(state, "added", "{what}: {line}");
                continue;
            };
            let built = tree.join(format!("hello/0.1/{k}/{arch}/module/hello.ko"));
            assert!(
                built.is_file(),
                "{what}: `{line}` but no {}",
                built.display()
            );
            if state == "installed" {
                let link = tree.join(format!("hello/kernel-{k}-{arch}"));
                assert_eq!(
                    std::fs::read_link(&link).ok(),
                    Some(PathBuf::from(format!("0.1/{k}/{arch}"))),
                    "{what}: `{line}`"
                );
                let placed = self.s.installed_module(k, "hello");
                assert_eq!(
                    std::fs::read(&placed).ok(),
                    std::fs::read(&built).ok(),
                    "{what}: `{line}` but {} is not the built module",
                    placed.display()
                );
                installed_on.push((*k).to_owned());
            } else {
                assert_eq!(state, "built", "{what}: {line}");
            }
        }
        for k in &self.kernels {
            let placed = self.s.installed_module(k, "hello");
            let pending = tree.join(format!("hello/.kernel-{k}-{arch}.dkms-rs-pending"));
            assert!(
                !placed.exists() || installed_on.contains(k) || pending.is_file(),
                "{what}: {} is there, status says:\n{status}\nand there is no {}",
                placed.display(),
                pending.display()
            );
        }
    }

    /// Each kernel's modules.dep names exactly the module files under its directory (none
    /// when there is no modules.dep).
    fn modules_dep_is_true(&self, what: &str) {
        for k in &self.kernels {
            let dir = self.s.install_tree.join(k);
            let dep = std::fs::read_to_string(dir.join("modules.dep")).unwrap_or_default();
            let mut listed: Vec<String> = dep
                .lines()
                .filter_map(|l| l.split(':').next())
                .map(str::to_owned)
                .collect();
            listed.sort();
            let on_disk: Vec<String> = support::scratch::listing(&dir)
                .into_iter()
                .filter(|p| p.ends_with(".ko") || p.contains(".ko."))
                .collect();
            assert_eq!(listed, on_disk, "{what}: modules.dep of {k}");
        }
    }

    /// Kill at every step: one run per (syscall, Nth call).
    fn kill_at_every_step(&self) -> usize {
        let counts = self.count(&STEPS);
        let log = Path::new("/dev/null");
        let mut runs = 0;
        for (syscall, n) in &counts {
            for when in 1..=*n {
                self.restore();
                let what = format!(
                    "{} on {} kernel(s), killed at {syscall} #{when} of {n}",
                    self.verb.name(),
                    self.kernels.len()
                );
                let inject = format!("{syscall}:signal=KILL:when={when}");
                let (code, out, err) = support::run(&mut self.traced(syscall, Some(&inject), log));
                assert_eq!(code, -1, "{what}: not killed\n{out}\n{err}");
                self.after_kill(&what);
                runs += 1;
            }
        }
        assert!(runs > 0, "{}: no step to kill at", self.verb.name());
        runs
    }

    /// A full disk at every write: one line naming it, and the state from before; for the
    /// verbs that are several steps (unbuild is uninstall then unbuild, remove is both then
    /// the version's removal), the state after a step that was done, as dkms 3.0.10 leaves it.
    fn disk_full_at_every_write(&self) -> usize {
        let counts = self.count(&WRITES);
        let log = Path::new("/dev/null");
        let done_steps: &[&str] = match self.verb {
            Verb::Unbuild => &["uninstall"],
            Verb::Remove => &["uninstall", "unbuild"],
            _ => &[],
        };
        let mut after_step = Vec::new();
        for step in done_steps {
            self.restore();
            ok(&mut self.s.dkms(&args(step, &self.kernels)));
            after_step.push(self.facts());
        }
        self.restore();
        let before = state(self.s.dir.path());
        let start = self.facts();
        let mut runs = 0;
        for (syscall, n) in &counts {
            for when in 1..=*n {
                self.restore();
                let what = format!(
                    "{} on {} kernel(s), ENOSPC at {syscall} #{when} of {n}",
                    self.verb.name(),
                    self.kernels.len()
                );
                let inject = format!("{syscall}:error=ENOSPC:when={when}");
                let (code, out, err) = support::run(&mut self.traced(syscall, Some(&inject), log));
                runs += 1;
                if code == 0 {
                    // A write whose failure changes nothing (a message line): the command
                    // did its job, as the check of the end state shows.
                    self.after_kill(&what);
                    continue;
                }
                let errors: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
                assert!(
                    errors.iter().any(|l| l.contains("No space left on device")),
                    "{what}: exit {code}, no line names the full disk\n{out}\n{err}"
                );
                let status = ok(&mut self.s.dkms_rs(&["status"]));
                self.status_is_on_disk(&status, &what);
                let facts = self.facts();
                if facts == start {
                    assert_eq!(
                        state(self.s.dir.path()),
                        before,
                        "{what}: the tree is not as before\n{out}\n{err}"
                    );
                } else {
                    assert!(
                        after_step.contains(&facts),
                        "{what}: neither the state from before nor one after a step: {facts:?}\n{out}\n{err}"
                    );
                    self.modules_dep_is_true(&what);
                    let left = leftovers(self.s.dir.path());
                    assert!(left.is_empty(), "{what}: left behind: {left:?}");
                }
            }
        }
        runs
    }
}

/// `cp -a from/. to/`.
fn copy_dir(from: &Path, to: &Path) {
    ok(Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to));
}

/// Names a finished command must not leave: a killed one's temporaries and records.
fn leftovers(dir: &Path) -> Vec<String> {
    support::scratch::listing(dir)
        .into_iter()
        .filter(|p| {
            let name = p.rsplit('/').next().unwrap_or(p);
            name.starts_with(".stage-")
                || name.starts_with(".build-")
                || name.ends_with(".dkms-rs-new")
                || name.ends_with(".dkms-rs-old")
                || name.ends_with(".dkms-rs-pending")
        })
        .collect()
}

/// The listing for a failure message.
fn listing(dir: &Path) -> String {
    support::scratch::listing(dir).join("\n")
}

/// Every path under `dir` with its link target or file bytes' length and hash: what "the
/// state from before" compares. Not the build directory's content: a failed build keeps
/// it, as dkms does, for its make.log.
fn state(dir: &Path) -> Vec<String> {
    support::scratch::listing(dir)
        .into_iter()
        .filter(|p| p != "tree/.dkms-rs.lock" && !p.starts_with("tree/hello/0.1/build/"))
        .map(|p| {
            let path = dir.join(&p);
            match std::fs::read_link(&path) {
                Ok(target) => format!("{p} -> {}", target.display()),
                Err(_) if path.is_file() => {
                    let bytes = std::fs::read(&path).unwrap_or_default();
                    format!("{p} {} {:x}", bytes.len(), fnv(&bytes))
                }
                Err(_) => format!("{p}/"),
            }
        })
        .collect()
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The kernels a case runs on (one or two of those with headers), or `None` to skip.
fn kernels(n: usize) -> Option<Vec<String>> {
    if !support::require_tool("strace") || !support::require_tool("/usr/sbin/dkms") {
        return None;
    }
    support::require_kernels(n).map(|k| k[..n].to_vec())
}

fn kill_case(verb: Verb, n: usize) {
    let Some(kernels) = kernels(n) else {
        return;
    };
    let bench = Bench::new(verb, &kernels);
    let runs = bench.kill_at_every_step();
    eprintln!("{} on {n} kernel(s): killed at {runs} steps", verb.name());
}

fn disk_full_case(verb: Verb, n: usize) {
    let Some(kernels) = kernels(n) else {
        return;
    };
    let bench = Bench::new(verb, &kernels);
    let runs = bench.disk_full_at_every_write();
    eprintln!(
        "{} on {n} kernel(s): disk full at {runs} writes",
        verb.name()
    );
}

#[test]
fn install_survives_a_kill_at_every_step() {
    kill_case(Verb::Install, 1);
    kill_case(Verb::Install, 2);
}

#[test]
fn uninstall_survives_a_kill_at_every_step() {
    kill_case(Verb::Uninstall, 1);
    kill_case(Verb::Uninstall, 2);
}

#[test]
fn unbuild_survives_a_kill_at_every_step() {
    kill_case(Verb::Unbuild, 1);
    kill_case(Verb::Unbuild, 2);
}

#[test]
fn remove_survives_a_kill_at_every_step() {
    kill_case(Verb::Remove, 1);
    kill_case(Verb::Remove, 2);
}

#[test]
fn build_survives_a_kill_at_every_step() {
    kill_case(Verb::Build, 1);
    kill_case(Verb::Build, 2);
}

/// On one kernel: with two, the other kernel's target is done (dkms's targets are
/// independent), which the kill cases cover.
#[test]
fn a_full_disk_leaves_the_state_from_before() {
    for verb in [
        Verb::Build,
        Verb::Install,
        Verb::Uninstall,
        Verb::Unbuild,
        Verb::Remove,
    ] {
        disk_full_case(verb, 1);
    }
}
