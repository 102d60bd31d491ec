//! The tree lock: a second command waits, with a message, instead of interleaving or failing.

use crate::support;

use std::process::Stdio;
use std::time::Duration;

use support::scratch::{Scratch, TRIVIAL, ok};

/// `add hello/0.1` started while the test holds the tree's lock file.
fn spawn_add(s: &Scratch) -> std::process::Child {
    s.dkms_rs(&["add", "hello/0.1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// After a while, `child` still waits and has done nothing.
fn assert_still_waiting(s: &Scratch, child: &mut std::process::Child, why: &str) {
    std::thread::sleep(Duration::from_millis(800));
    assert!(child.try_wait().unwrap().is_none(), "{why}");
    assert!(
        !s.dkms_tree.join("hello").exists(),
        "nothing done while waiting"
    );
}

#[test]
fn a_command_waits_while_another_holds_the_lock() {
    let s = Scratch::new(&[]);
    s.add_hello_source();
    let lock = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(s.dkms_tree.join(".dkms-rs.lock"))
        .unwrap();
    lock.lock().unwrap();
    let mut child = spawn_add(&s);
    assert_still_waiting(&s, &mut child, "add must wait for the lock");
    lock.unlock().unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("Waiting for"), "{err}");
    assert!(s.dkms_tree.join("hello/0.1/source").is_symlink());
}

/// The lock file goes with the last module (a purge of every -dkms package leaves nothing in
/// the tree); a command that was waiting on the removed file takes the lock on the file the
/// name is now, so it still waits for a command holding that one.
#[test]
fn the_lock_file_goes_with_the_last_module_and_a_waiter_follows_the_name() {
    let s = Scratch::new(&[]);
    s.add_hello_source();
    let lock_path = s.dkms_tree.join(".dkms-rs.lock");
    ok(&mut s.dkms_rs(&["add", "hello/0.1"]));
    assert!(
        lock_path.exists(),
        "a tree with a module keeps its lock file"
    );
    ok(&mut s.dkms_rs(&["remove", "hello/0.1", "--all"]));
    let left: Vec<_> = std::fs::read_dir(&s.dkms_tree)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "the emptied tree holds {left:?}");

    let open = || {
        std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .unwrap()
    };
    let old = open();
    old.lock().unwrap();
    let mut child = spawn_add(&s);
    assert_still_waiting(&s, &mut child, "add must wait");
    // What a holder that emptied the tree does: the name goes while the lock is held. A
    // third command then takes the lock on a new file of that name.
    std::fs::remove_file(&lock_path).unwrap();
    let new = open();
    new.lock().unwrap();
    old.unlock().unwrap();
    assert_still_waiting(
        &s,
        &mut child,
        "add went on while the lock file of the tree was held",
    );
    new.unlock().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(s.dkms_tree.join("hello/0.1/source").is_symlink());
}

#[test]
fn two_builds_at_once_take_turns() {
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let k = kernels[0].as_str();
    let s = Scratch::new(&kernels);
    s.add_module("one", "1.0", "", TRIVIAL);
    s.add_module("two", "1.0", "", TRIVIAL);
    let spawn = |m: &str| {
        s.dkms_rs(&["install", m, "-k", k])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let children = [spawn("one/1.0"), spawn("two/1.0")];
    let mut waited = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        waited += usize::from(err.contains("Waiting for"));
    }
    assert_eq!(waited, 1, "exactly one of the two commands waited");
    for m in ["one", "two"] {
        assert!(s.installed_module(k, m).exists());
    }
}

/// A finished command of a round: what was run, its exit code and output.
struct Ran {
    what: String,
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "=== {} -> exit {}\n--- stdout\n{}--- stderr\n{}",
            self.what, self.code, self.stdout, self.stderr
        )
    }
}

/// Paths under `dir` that a finished command must not leave: build and stage directories,
/// files being written (`.<name>.dkms-rs-new`).
fn leftovers(dir: &std::path::Path) -> Vec<String> {
    support::scratch::listing(dir)
        .into_iter()
        .filter(|p| {
            let name = p.rsplit('/').next().unwrap_or(p);
            name.starts_with(".stage-") || name.starts_with(".build-") || name.contains(".dkms-rs-")
        })
        .collect()
}

/// The kernel hook's race (issue 9): eight commands on one module started at once (two
/// installs, two autoinstalls, a build, two status, a dkms-postinst configure), twenty
/// rounds. Each must succeed, and the tree must end the same every time: installed for every
/// kernel with headers, as both dkms-rs and dkms 3.0.10 read it, depmod run, nothing left over.
#[test]
fn eight_mixed_commands_at_once_end_in_one_state() {
    const ROUNDS: usize = 20;
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    if !support::require_tool("dkms") {
        return;
    }
    let arch = support::arch();
    let mut with_k: Vec<&str> = Vec::new();
    for k in &kernels {
        with_k.extend(["-k", k.as_str()]);
    }
    let expected: String = kernels
        .iter()
        .map(|k| format!("race/1.0, {k}, {arch}: installed\n"))
        .collect();
    let started = std::time::Instant::now();
    for round in 1..=ROUNDS {
        let s = Scratch::new(&kernels);
        // autoinstall without -k and dkms-postinst configure then mean every kernel here.
        let conf_d = s.etc_dir.join("framework.conf.d");
        std::fs::create_dir_all(&conf_d).unwrap();
        std::fs::write(
            conf_d.join("all-kernels.conf"),
            "autoinstall_all_kernels=\"yes\"\n",
        )
        .unwrap();
        s.add_module("race", "1.0", "AUTOINSTALL=\"yes\"\n", TRIVIAL);
        let with = |first: &[&'static str]| -> Vec<&str> {
            first
                .iter()
                .copied()
                .chain(with_k.iter().copied())
                .collect()
        };
        let mut commands: Vec<(String, std::process::Command)> = Vec::new();
        let mut ours = |args: Vec<&str>| {
            commands.push((format!("dkms-rs {}", args.join(" ")), s.dkms_rs(&args)));
        };
        ours(with(&["install", "race/1.0"]));
        // One kernel per autoinstall (dkms 3.2.2 refuses two `-k` with 4).
        ours(vec!["autoinstall", "-k", kernels[0].as_str()]);
        ours(vec!["status"]);
        ours(with(&["build", "race/1.0"]));
        ours(vec!["autoinstall"]);
        ours(vec!["status", "race"]);
        ours(with(&["install", "-m", "race", "-v", "1.0"]));
        let configure = ["configure", "race", "1.0", "--running-kernel", &kernels[0]];
        commands.push((
            format!("dkms-postinst {}", configure.join(" ")),
            s.dkms_postinst(&configure),
        ));
        assert_eq!(commands.len(), 8);
        let start = std::sync::Barrier::new(commands.len());
        let ran: Vec<Ran> = std::thread::scope(|scope| {
            let handles: Vec<_> = commands
                .into_iter()
                .map(|(what, mut cmd)| {
                    let start = &start;
                    scope.spawn(move || {
                        start.wait();
                        let (code, stdout, stderr) = support::run(&mut cmd);
                        Ran {
                            what,
                            code,
                            stdout,
                            stderr,
                        }
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let all = || ran.iter().map(Ran::to_string).collect::<String>();
        assert!(
            ran.iter().all(|r| r.code == 0),
            "round {round}: a command failed\n{}",
            all()
        );
        let status = ok(&mut s.dkms_rs(&["status"]));
        assert_eq!(status, expected, "round {round}: dkms-rs status\n{}", all());
        assert_eq!(
            ok(&mut s.dkms(&["status"])),
            status,
            "round {round}: dkms 3.0.10 reads the tree otherwise\n{}",
            all()
        );
        for k in &kernels {
            let ko = s.installed_module(k, "race");
            assert!(
                ko.is_file(),
                "round {round}: no {}\n{}",
                ko.display(),
                all()
            );
            let dep = std::fs::read_to_string(s.install_tree.join(k).join("modules.dep"))
                .unwrap_or_default();
            assert!(
                dep.lines().any(|l| l.starts_with("updates/dkms/race.ko:")),
                "round {round}: modules.dep of {k} does not list race.ko (depmod)\n{dep}\n{}",
                all()
            );
        }
        let left: Vec<String> = [&s.dkms_tree, &s.install_tree]
            .into_iter()
            .flat_map(|d| leftovers(d))
            .collect();
        assert!(
            left.is_empty(),
            "round {round}: left over: {left:?}\n{}",
            all()
        );
    }
    // Shown with --nocapture: how long the rounds take on this machine.
    eprintln!(
        "{ROUNDS} rounds of 8 commands on {} kernel(s): {:.1} s",
        kernels.len(),
        started.elapsed().as_secs_f64()
    );
}

/// The same kernel given twice is one target: one build, not two makes in one build
/// directory (fixdep fails there), for each action that takes -k.
#[test]
fn a_kernel_given_twice_is_built_once() {
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let k = kernels[0].as_str();
    let s = Scratch::new(&kernels);
    for (m, action) in [
        ("twice-a", "autoinstall"),
        ("twice-b", "build"),
        ("twice-c", "install"),
    ] {
        s.add_module(m, "1.0", "AUTOINSTALL=\"yes\"\n", TRIVIAL);
        let args: Vec<&str> = if action == "autoinstall" {
            vec![action, "-k", k, "-k", k]
        } else {
            vec![action, m, "-v", "1.0", "-k", k, "-k", k]
        };
        let (code, out, err) = support::run(&mut s.dkms_rs(&args));
        if action == "autoinstall" {
            // dkms 3.2.2's have_one_kernel: refused, nothing built.
            assert_eq!(code, 4, "{args:?}\n{out}\n{err}");
            assert_eq!(
                err,
                "\nError! The action autoinstall does not support multiple kernel version parameters on the command line.\n"
            );
            ok(&mut s.dkms_rs(&["autoinstall", "-k", k]));
            continue;
        }
        assert_eq!(code, 0, "{args:?}\n{out}\n{err}");
        let built = support::scratch::built_lines(&out);
        // autoinstall also builds the modules added before this one (already done: none).
        assert_eq!(built, 1, "{args:?}: one build\n{out}\n{err}");
    }
    let status = ok(&mut s.dkms_rs(&["status", "-k", k, "-k", k]));
    let arch = support::arch();
    assert_eq!(
        status,
        format!(
            "twice-a/1.0, {k}, {arch}: installed\ntwice-b/1.0, {k}, {arch}: built\ntwice-c/1.0, {k}, {arch}: installed\n"
        ),
    );
}

/// Between commands the lock file tells the next one whether the last ended well (`clean`):
/// a killed command leaves it empty (it is emptied, synced, before anything changes), and so
/// does a failed one; only then are the module directories searched for what a killed
/// command leaves (here a `.stage-<k>-<a>` dir, a build being stored). After a command that
/// ended well they are not (dkms issue #32: one module's command must not cost the tree).
#[test]
fn the_module_dirs_are_searched_only_after_a_command_that_did_not_end_well() {
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let k = kernels[0].as_str();
    let s = Scratch::new(&kernels);
    let lock_path = s.dkms_tree.join(".dkms-rs.lock");
    let mark = || std::fs::read(&lock_path).unwrap();
    s.add_module("one", "1.0", "", TRIVIAL);
    assert_eq!(mark(), b"clean\n", "add ended well");
    let stage = s
        .dkms_tree
        .join(format!("one/1.0/.stage-{k}-{}", support::arch()));
    let plant = || std::fs::create_dir_all(stage.join("module")).unwrap();
    plant();

    // Fails (added already): the mark is taken and not given back.
    let (code, _, err) = support::run(&mut s.dkms_rs(&["add", "one/1.0"]));
    assert_ne!(code, 0, "{err}");
    assert!(stage.exists(), "after a clean command nothing is searched");
    assert_eq!(mark(), b"", "a failed command leaves no mark");
    s.add_module("two", "1.0", "MAKE[0]=\"sleep 20\"\n", TRIVIAL);
    assert!(
        !stage.exists(),
        "after a failed command the module dirs are searched"
    );
    assert_eq!(mark(), b"clean\n");

    // A command killed while it holds the lock (in two's make, which does not end).
    plant();
    let mut build = s
        .dkms_rs(&["build", "two/1.0", "-k", k])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !s.dkms_tree.join("two/1.0/build/make.log").exists()
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    build.kill().unwrap();
    build.wait().unwrap();
    assert_eq!(mark(), b"", "a killed command leaves no mark");
    s.add_module("three", "1.0", "", TRIVIAL);
    assert!(
        !stage.exists(),
        "after a killed command the module dirs are searched"
    );
    assert_eq!(mark(), b"clean\n");
}
