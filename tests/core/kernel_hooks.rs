//! The kernel hooks under hooks/ (installed as /etc/kernel/{postinst.d,header_postinst.d,
//! preinst.d,prerm.d}/dkms and /usr/lib/kernel/install.d/40-dkms.install), run as the kernel
//! packages run them, with `dkms` on PATH being dkms-rs on a scratch tree.
//!
//! The oracle is Debian trixie's dkms 3.2.2 (`.ci/fetch-dkms-3.2.2` extracts it, never
//! installed): its own hooks, its dkms_autoinstaller and its /usr/sbin/dkms, run on a scratch
//! tree of their own inside a private mount namespace where they sit at the paths they name
//! (/usr/sbin/dkms, /usr/lib/dkms/dkms_autoinstaller, /etc/dkms: the scratch etc/).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support;

use support::scratch::{Scratch, TRIVIAL, ok, run};

/// The repository's hooks.
fn hooks() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("hooks")
}

/// dkms 3.2.2 as `.ci/fetch-dkms-3.2.2` extracted it; `None` (skip, or fail under CI) when
/// it is not there or the namespace it runs in cannot be made (not root).
fn reference() -> Option<PathBuf> {
    let dir = support::dkms_3_2_2()?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 || !Path::new("/usr/lib/dkms/dkms_autoinstaller").exists() {
        support::missing("root and /usr/lib/dkms/dkms_autoinstaller (to bind 3.2.2's over)");
        return None;
    }
    Some(dir)
}

/// One side of a comparison: a scratch tree on one kernel (its `build` linked to the real
/// headers, where dkms 3.2.2 looks for them under its install tree), the scenario's modules
/// added, a `bin/` with `dkms` (the tool under test on this tree) and `depmod` (logging each
/// run to `depmod.log`).
struct Side {
    s: Scratch,
    bin: PathBuf,
    /// dkms 3.2.2's extracted root for the oracle; `None` for dkms-rs.
    reference: Option<PathBuf>,
    /// Debian 12's dkms 3.0.10 with its hooks (/etc/kernel/*/dkms on this machine).
    bookworm: bool,
}

/// A module of the scenarios: `<name>/1.0`.
struct Module {
    name: &'static str,
    conf_extra: &'static str,
    c_body: &'static str,
}

const AUTO: &str = "AUTOINSTALL=\"yes\"\n";
const BROKEN: &str = "this is not C;\n";

impl Side {
    fn new(kernel: &str, modules: &[Module], reference: Option<PathBuf>) -> Side {
        Side::make(kernel, modules, reference, false)
    }

    /// A side running Debian 12's dkms 3.0.10 and its hooks, in a namespace with the scratch
    /// etc/ as /etc/dkms ([`Scratch::dkms`]'s way).
    fn bookworm(kernel: &str, modules: &[Module]) -> Side {
        Side::make(kernel, modules, None, true)
    }

    fn make(kernel: &str, modules: &[Module], reference: Option<PathBuf>, bookworm: bool) -> Side {
        let s = Scratch::new(&[kernel.to_string()]);
        // Two builds at once, as dkms 3.2.2's -j and dkms-rs's job count.
        let mut fw = std::fs::read_to_string(s.etc_dir.join("framework.conf")).unwrap();
        fw.push_str("parallel_jobs=2\n");
        std::fs::write(s.etc_dir.join("framework.conf"), fw).unwrap();
        let bin = s.dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let tree = s
            .tree_args()
            .iter()
            .map(|a| format!("'{}'", a.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" ");
        let dkms = match &reference {
            _ if bookworm => format!("exec /usr/sbin/dkms \"$@\" {tree}\n"),
            Some(_) => format!("exec /usr/sbin/dkms \"$@\" {tree}\n"),
            None => format!(
                "exec '{}' \"$@\" {tree} --etcdir '{}'\n",
                env!("CARGO_BIN_EXE_dkms-rs"),
                s.etc_dir.display()
            ),
        };
        write_script(&bin.join("dkms"), &dkms);
        let log = s.dir.path().join("depmod.log");
        let depmod = support::find_tool("depmod").expect("depmod");
        write_script(
            &bin.join("depmod"),
            &format!(
                "echo \"$*\" >>'{}'\nexec '{}' \"$@\"\n",
                log.display(),
                depmod.display()
            ),
        );
        let side = Side {
            s,
            bin,
            reference,
            bookworm,
        };
        for m in modules {
            side.s.write_module(m.name, "1.0", m.conf_extra, m.c_body);
            ok(&mut side.dkms(&["add", &format!("{}/1.0", m.name)]));
        }
        side
    }

    /// `dkms ARGS` on this side's tree (in the oracle's namespace for 3.2.2).
    fn dkms(&self, args: &[&str]) -> Command {
        let mut cmd = self.sh("exec dkms \"$@\"");
        cmd.args(args);
        cmd
    }

    /// The hook at `rel` (under hooks/ for dkms-rs, under 3.2.2's root for the oracle) with
    /// its arguments, as a kernel package's maintainer script runs it.
    fn hook(&self, rel: &str, args: &[&str]) -> Command {
        let root = match &self.reference {
            _ if self.bookworm => PathBuf::from("/"),
            Some(r) => r.clone(),
            None => hooks(),
        };
        let mut cmd = self.sh("exec \"$@\"");
        cmd.arg(root.join(rel)).args(args);
        if self.reference.is_none() && !self.bookworm {
            // 40-dkms.install finds the hooks beside it, not in the host's /etc/kernel.
            cmd.env("DKMS_KERNEL_HOOKS", hooks().join("etc/kernel"));
        }
        cmd
    }

    /// `sh -c SCRIPT sh ARGS...` with bin/ first on PATH; for the oracle, inside a private
    /// mount namespace where 3.2.2's files are bound over the paths its scripts name.
    fn sh(&self, script: &str) -> Command {
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = match &self.reference {
            _ if self.bookworm => {
                let mut cmd = support::command("unshare");
                cmd.args(["-m", "--propagation", "private", "sh", "-c"])
                    .arg(format!(
                        "mount --bind '{}' /etc/dkms && {script}",
                        self.s.etc_dir.display()
                    ))
                    .arg("sh");
                cmd
            }
            None => {
                let mut cmd = support::command("sh");
                cmd.arg("-c").arg(script).arg("sh");
                cmd
            }
            Some(r) => {
                let mut cmd = support::command("unshare");
                cmd.args(["-m", "--propagation", "private", "sh", "-c"])
                    .arg(format!(
                        "mount --bind '{etc}' /etc/dkms && \
                         mount --bind '{r}/usr/sbin/dkms' /usr/sbin/dkms && \
                         mount --bind '{r}/usr/lib/dkms/dkms_autoinstaller' /usr/lib/dkms/dkms_autoinstaller && \
                         {script}",
                        etc = self.s.etc_dir.display(),
                        r = r.display()
                    ))
                    .arg("sh");
                cmd
            }
        };
        cmd.env("PATH", path).current_dir(self.s.dir.path());
        cmd
    }

    /// The modules installed for `kernel`, by name, sorted.
    fn installed(&self, kernel: &str) -> Vec<String> {
        support::file_names(&self.s.install_tree.join(kernel).join("updates/dkms"))
    }

    /// `dkms status`, sorted lines.
    fn status(&self) -> Vec<String> {
        let mut lines: Vec<String> = ok(&mut self.dkms(&["status"]))
            .lines()
            .map(str::to_owned)
            .collect();
        lines.sort();
        lines
    }

    fn depmod_runs(&self) -> usize {
        std::fs::read_to_string(self.s.dir.path().join("depmod.log"))
            .unwrap_or_default()
            .lines()
            .count()
    }

    fn clear_depmod_log(&self) {
        let _ = std::fs::remove_file(self.s.dir.path().join("depmod.log"));
    }
}

fn write_script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Ours (dkms-rs with hooks/) and, when dkms 3.2.2 can be run, theirs, on the first kernel
/// with headers.
fn sides(modules: &[Module]) -> Option<(String, Side, Option<Side>)> {
    let kernels = support::require_kernels(1)?;
    let k = kernels[0].clone();
    let ours = Side::new(&k, modules, None);
    let theirs = reference().map(|r| Side::new(&k, modules, Some(r)));
    Some((k, ours, theirs))
}

fn scenario() -> Vec<Module> {
    vec![
        Module {
            name: "alpha",
            conf_extra: AUTO,
            c_body: TRIVIAL,
        },
        Module {
            name: "beta",
            conf_extra: AUTO,
            c_body: TRIVIAL,
        },
        Module {
            name: "broken",
            conf_extra: AUTO,
            c_body: BROKEN,
        },
        Module {
            name: "manual",
            conf_extra: "",
            c_body: TRIVIAL,
        },
    ]
}

#[test]
fn postinst_hooks_build_every_autoinstall_module_and_a_failure_exits_as_debians() {
    let Some((k, ours, theirs)) = sides(&scenario()) else {
        return;
    };
    for hook in [
        "etc/kernel/postinst.d/dkms",
        "etc/kernel/header_postinst.d/dkms",
    ] {
        let (code, out, err) = run(&mut ours.hook(hook, &[&k]));
        assert_eq!(
            ours.installed(&k),
            ["alpha.ko", "beta.ko"],
            "{hook}: the modules that build are installed, manual (no AUTOINSTALL) is not\n{out}{err}"
        );
        let make_log = ours.s.dkms_tree.join("broken/1.0/build/make.log");
        assert!(make_log.is_file(), "{hook}: broken's make.log is kept");
        assert!(
            err.contains(&make_log.display().to_string()),
            "{hook}: the failure names its make.log\n{err}"
        );
        // dkms 3.2.2's hook execs dkms_autoinstaller, whose last command is `test $res = 0`.
        assert_eq!(code, 1, "{hook}: exit status\n{out}{err}");
        if let Some(theirs) = &theirs {
            let (their_code, their_out, their_err) = run(&mut theirs.hook(hook, &[&k]));
            assert_eq!(
                code, their_code,
                "{hook}: dkms-rs (left) vs dkms 3.2.2 (right)\n{their_out}{their_err}"
            );
            assert_eq!(ours.installed(&k), theirs.installed(&k), "{hook}");
            assert_eq!(ours.status(), theirs.status(), "{hook}: dkms status");
        }
    }
    // Debian 12's hook (dkms 3.0.10, whose dkms_autoinstaller ends with `log_end_msg $res`)
    // exits with autoinstall's 11 for the same failure: a difference, 3.2.2 is followed.
    if theirs.is_some() && support::require_tool("dkms") {
        let bookworm = Side::bookworm(&k, &scenario());
        let (code, out, err) = run(&mut bookworm.hook("etc/kernel/postinst.d/dkms", &[&k]));
        assert_eq!(code, 11, "dkms 3.0.10's hook\n{out}{err}");
        assert_eq!(bookworm.installed(&k), ["alpha.ko", "beta.ko"]);
    }
    // The action itself exits as autoinstall does (11), as 3.2.2's kernel_postinst.
    let (code, _, err) = run(&mut ours.dkms(&["kernel_postinst", "-k", &k]));
    assert_eq!(code, 11, "{err}");
    if let Some(theirs) = &theirs {
        let (their_code, _, their_err) = run(&mut theirs.dkms(&["kernel_postinst", "-k", &k]));
        assert_eq!(code, their_code, "kernel_postinst\n{their_err}");
    }
}

#[test]
fn kernel_install_plugin_adds_and_removes() {
    let modules = [Module {
        name: "alpha",
        conf_extra: AUTO,
        c_body: TRIVIAL,
    }];
    let Some((k, ours, _)) = sides(&modules) else {
        return;
    };
    let plugin = "usr/lib/kernel/install.d/40-dkms.install";
    let image = format!("/boot/vmlinuz-{k}");
    let (code, out, err) = run(&mut ours.hook(plugin, &["add", &k, &image]));
    assert_eq!(
        (code, ours.installed(&k)),
        (0, vec!["alpha.ko".to_string()]),
        "{out}{err}"
    );
    let (code, out, err) = run(&mut ours.hook(plugin, &["remove", &k]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(ours.installed(&k).is_empty(), "{out}{err}");
    assert_eq!(ours.status(), ["alpha/1.0: added"]);
}

#[test]
fn prerm_hook_takes_every_module_out_with_one_depmod() {
    let modules = [
        Module {
            name: "alpha",
            conf_extra: AUTO,
            c_body: TRIVIAL,
        },
        Module {
            name: "manual",
            conf_extra: "",
            c_body: TRIVIAL,
        },
    ];
    let Some((k, ours, theirs)) = sides(&modules) else {
        return;
    };
    let mut all: Vec<&Side> = vec![&ours];
    all.extend(theirs.as_ref());
    let mut results = Vec::new();
    for side in &all {
        ok(&mut side.hook("etc/kernel/postinst.d/dkms", &[&k]));
        ok(&mut side.dkms(&["install", "manual/1.0", "-k", &k]));
        assert_eq!(side.installed(&k), ["alpha.ko", "manual.ko"]);
        side.clear_depmod_log();
        let (code, out, err) = run(&mut side.hook("etc/kernel/prerm.d/dkms", &[&k]));
        assert_eq!(code, 0, "{out}{err}");
        assert!(side.installed(&k).is_empty(), "{out}{err}");
        let mut removing: Vec<&str> = err
            .lines()
            .filter(|l| l.starts_with("dkms: removing module"))
            .collect();
        removing.sort();
        results.push((
            side.status(),
            removing.join("\n"),
            support::scratch::listing(&side.s.install_tree),
        ));
        if side.reference.is_none() {
            assert_eq!(side.depmod_runs(), 1, "depmod once\n{out}{err}");
            assert!(
                !side.s.dkms_tree.join("alpha/1.0").join(&k).exists(),
                "unbuilt, not just uninstalled"
            );
        }
    }
    assert_eq!(
        results[0].0,
        ["alpha/1.0: added", "manual/1.0: added"],
        "every module, AUTOINSTALL or not, goes; the source stays"
    );
    if let [ours, theirs] = results.as_slice() {
        assert_eq!(
            ours, theirs,
            "dkms-rs (left) vs dkms 3.2.2 (right): status, lines, files"
        );
    }
}

#[test]
fn preinst_hook_takes_autoinstall_modules_out_and_postinst_rebuilds_them() {
    let modules = [
        Module {
            name: "alpha",
            conf_extra: AUTO,
            c_body: TRIVIAL,
        },
        Module {
            name: "manual",
            conf_extra: "",
            c_body: TRIVIAL,
        },
    ];
    let Some((k, ours, theirs)) = sides(&modules) else {
        return;
    };
    let mut all: Vec<&Side> = vec![&ours];
    all.extend(theirs.as_ref());
    let mut statuses = Vec::new();
    for side in &all {
        ok(&mut side.hook("etc/kernel/postinst.d/dkms", &[&k]));
        ok(&mut side.dkms(&["install", "manual/1.0", "-k", &k]));
        let (code, out, err) = run(&mut side.hook("etc/kernel/preinst.d/dkms", &[&k]));
        assert_eq!(code, 0, "{out}{err}");
        // The same kernel version's package is being unpacked: AUTOINSTALL modules go, to
        // be built again by its postinst; manual stays (3.2.2: `[[ $AUTOINSTALL ]] || continue`).
        assert_eq!(side.installed(&k), ["manual.ko"], "{out}{err}");
        statuses.push(side.status());
        let (code, out, err) = run(&mut side.hook("etc/kernel/postinst.d/dkms", &[&k]));
        assert_eq!(code, 0, "{out}{err}");
        assert_eq!(side.installed(&k), ["alpha.ko", "manual.ko"], "{out}{err}");
        if side.reference.is_none() {
            assert_eq!(
                support::scratch::built_lines(&out),
                1,
                "alpha rebuilt\n{out}"
            );
        }
    }
    if let [ours, theirs] = statuses.as_slice() {
        assert_eq!(
            ours, theirs,
            "status after preinst: dkms-rs (left) vs dkms 3.2.2"
        );
    }
}

#[test]
fn hook_for_a_kernel_without_headers_says_so_in_one_line_and_exits_0() {
    let modules = [Module {
        name: "alpha",
        conf_extra: AUTO,
        c_body: TRIVIAL,
    }];
    let Some((_, ours, theirs)) = sides(&modules) else {
        return;
    };
    let k = support::FAKE_KERNEL;
    for hook in [
        "etc/kernel/postinst.d/dkms",
        "etc/kernel/header_postinst.d/dkms",
    ] {
        let (code, out, err) = run(&mut ours.hook(hook, &[k]));
        assert_eq!(code, 0, "{hook}\n{out}{err}");
        assert_eq!(
            (out.lines().count(), err.as_str()),
            (1, ""),
            "{hook}\n{out}{err}"
        );
        assert!(out.contains(k) && out.contains("headers"), "{out}");
        if let Some(theirs) = &theirs {
            let (their_code, their_out, their_err) = run(&mut theirs.hook(hook, &[k]));
            assert_eq!(
                (code, out.as_str(), err.as_str()),
                (their_code, their_out.as_str(), their_err.as_str()),
                "{hook}: dkms-rs (left) vs dkms 3.2.2 (right)"
            );
        }
    }
    // preinst and prerm for a kernel nothing was built for: nothing to do, exit 0.
    for hook in ["etc/kernel/preinst.d/dkms", "etc/kernel/prerm.d/dkms"] {
        let (code, out, err) = run(&mut ours.hook(hook, &[k]));
        assert_eq!(code, 0, "{hook}\n{out}{err}");
    }
    assert_eq!(ours.status(), ["alpha/1.0: added"]);
}

#[test]
fn no_autoinstall_is_honoured_by_the_hooks() {
    let modules = [Module {
        name: "alpha",
        conf_extra: AUTO,
        c_body: TRIVIAL,
    }];
    let Some((k, ours, theirs)) = sides(&modules) else {
        return;
    };
    let mut all: Vec<&Side> = vec![&ours];
    all.extend(theirs.as_ref());
    let mut codes = Vec::new();
    for side in &all {
        std::fs::write(side.s.etc_dir.join("no-autoinstall"), "").unwrap();
        let (code, out, err) = run(&mut side.hook("etc/kernel/postinst.d/dkms", &[&k]));
        assert!(side.installed(&k).is_empty(), "{out}{err}");
        assert_eq!(side.status(), ["alpha/1.0: added"]);
        codes.push((code, out));
    }
    assert_eq!(
        codes[0],
        (
            0,
            "Automatic installation of modules has been disabled.\n".to_string()
        )
    );
    if let [ours, theirs] = codes.as_slice() {
        assert_eq!(ours, theirs, "dkms-rs (left) vs dkms 3.2.2 (right)");
    }
}

#[test]
fn two_hooks_at_once_for_one_kernel_take_turns_on_each_module() {
    let modules = [
        Module {
            name: "alpha",
            conf_extra: AUTO,
            c_body: TRIVIAL,
        },
        Module {
            name: "beta",
            conf_extra: AUTO,
            c_body: TRIVIAL,
        },
        Module {
            name: "broken",
            conf_extra: AUTO,
            c_body: BROKEN,
        },
    ];
    let Some((k, ours, _)) = sides(&modules) else {
        return;
    };
    // apt configuring linux-headers-K and linux-image-K: header_postinst.d and postinst.d.
    let a = ours
        .hook("etc/kernel/header_postinst.d/dkms", &[&k])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let b = ours
        .hook("etc/kernel/postinst.d/dkms", &[&k])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let (ta, tb) = (text(&a), text(&b));
    // Both see broken fail (it is tried by each), as dkms's hooks do.
    assert_eq!(
        (a.status.code(), b.status.code()),
        (Some(1), Some(1)),
        "{ta}\n---\n{tb}"
    );
    // Each good module built once: the second hook waited and found it installed.
    for m in ["alpha", "beta"] {
        // autoinstall's "Autoinstall of module M/V for kernel K (A)", then the build's line.
        let text = format!("{ta}{tb}");
        let lines: Vec<&str> = text.lines().collect();
        let builds = lines
            .windows(2)
            .filter(|w| {
                w[0].starts_with(&format!("Autoinstall of module {m}/1.0 for kernel "))
                    && w[1] == "Building module(s)... done."
            })
            .count();
        assert_eq!(builds, 1, "{m}\n{ta}\n---\n{tb}");
    }
    assert_eq!(ours.installed(&k), ["alpha.ko", "beta.ko"]);
    let arch = support::arch();
    assert_eq!(
        ours.status(),
        [
            format!("alpha/1.0, {k}, {arch}: installed"),
            format!("beta/1.0, {k}, {arch}: installed"),
            "broken/1.0: added".to_string(),
        ]
    );
    // Nothing half-done left in the tree: no stage, trash or pending record.
    let leftovers: Vec<String> = support::scratch::listing(&ours.s.dkms_tree)
        .into_iter()
        .filter(|p| p.contains(".dkms-rs-") || p.contains(".stage-") || p.contains("pending"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn kernel_actions_need_exactly_one_kernel_as_in_3_2_2() {
    let Some((k, ours, theirs)) = sides(&[]) else {
        return;
    };
    for args in [
        vec!["kernel_prerm"],
        vec!["kernel_preinst", "-k", &k, "-k", &k],
        vec!["kernel_postinst", "--all"],
    ] {
        let (code, _, err) = run(&mut ours.dkms(&args));
        assert_eq!(
            code,
            if args.contains(&"--all") { 5 } else { 4 },
            "{args:?}: {err}"
        );
        if let Some(theirs) = &theirs {
            let (their_code, _, their_err) = run(&mut theirs.dkms(&args));
            assert_eq!(code, their_code, "{args:?}\n{their_err}");
        }
    }
}

#[test]
fn hooks_are_posix_sh_and_shellcheck_clean() {
    if !support::require_tool("shellcheck") {
        return;
    }
    let files = [
        "etc/kernel/postinst.d/dkms",
        "etc/kernel/header_postinst.d/dkms",
        "etc/kernel/preinst.d/dkms",
        "etc/kernel/prerm.d/dkms",
        "usr/lib/kernel/install.d/40-dkms.install",
    ];
    let mut cmd = Command::new("shellcheck");
    cmd.args(["--shell=sh", "--severity=style"]);
    for f in files {
        let path = hooks().join(f);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("#!/bin/sh\n"), "{f}: #!/bin/sh");
        cmd.arg(path);
    }
    support::run_ok(&mut cmd);
}

#[test]
fn postinst_hook_builds_modules_in_parallel_bounded_by_parallel_jobs() {
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let k = kernels[0].clone();
    let ours = Side::new(&k, &[], None);
    // Each make says how many makes run beside it (itself included), then lingers long
    // enough (6 s) for the next job to start beside it on a loaded machine.
    let running = ours.s.dir.path().join("running");
    std::fs::create_dir(&running).unwrap();
    let counts = ours.s.dir.path().join("counts");
    let names = ["one", "two", "three"];
    for name in names {
        let conf = format!(
            "AUTOINSTALL=yes\nMAKE[0]=\"mkdir {r}/{name} && ls {r} | wc -l >>{c} && sleep 6 && \
             rmdir {r}/{name} && make -C $kernel_source_dir M=$dkms_tree/{name}/1.0/build\"\n",
            r = running.display(),
            c = counts.display()
        );
        ours.s.write_module(name, "1.0", &conf, TRIVIAL);
        ok(&mut ours.dkms(&["add", &format!("{name}/1.0")]));
    }
    let (code, out, err) = run(&mut ours.hook("etc/kernel/postinst.d/dkms", &[&k]));
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(ours.installed(&k), ["one.ko", "three.ko", "two.ko"]);
    let seen: Vec<usize> = std::fs::read_to_string(&counts)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    // framework.conf's parallel_jobs=2 (Side::new): two at once, never three.
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(
        seen.iter().max(),
        Some(&2),
        "makes at once: {seen:?}\n{out}"
    );
}
