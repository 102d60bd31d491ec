//! `dkms-postinst configure/remove` in temp trees against real headers: it builds and installs
//! for the kernels common.postinst picks, twice is a no-op, an upgrade removes the older
//! version, BUILD_EXCLUSIVE is a skip, a failing build fails as common.postinst's does, and
//! real dkms 3.0.10 reads the result.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use support::scratch::{Scratch, TRIVIAL, ok, run};

/// A scratch tree, with its own etc dir: the machine's /etc/dkms plays no part.
struct Hooked {
    s: Scratch,
}

impl Hooked {
    fn new(kernels: &[String]) -> Hooked {
        Hooked {
            s: Scratch::new(kernels),
        }
    }

    /// `dkms-postinst <args> <tree options> --etcdir <etc>`.
    fn hook(&self, args: &[&str]) -> Command {
        self.s.dkms_postinst(args)
    }

    /// `dkms status` of real dkms and of dkms-rs, which must agree.
    fn status(&self) -> String {
        let ours = ok(&mut self.s.dkms_rs(&["status"]));
        if support::require_tool("dkms") {
            assert_eq!(
                ok(&mut self.s.dkms(&["status"])),
                ours,
                "dkms and dkms-rs disagree"
            );
        }
        ours
    }
}

/// Every path under `dir` with its mtime: a run that changes nothing leaves this equal. The
/// tree's lock file is not in it: every command that takes the lock empties it and, ending
/// well, writes its `clean` mark again (the callers compare its content).
fn snapshot(dir: &Path) -> Vec<(PathBuf, SystemTime)> {
    let mut v: Vec<(PathBuf, SystemTime)> = walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_name() != ".dkms-rs.lock")
        .filter_map(|e| {
            let m = e.path().symlink_metadata().ok()?.modified().ok()?;
            Some((e.path().to_path_buf(), m))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn configure_installs_for_every_kernel_with_headers_and_twice_is_a_no_op() {
    let arch = support::arch();
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    if !support::require_tool("modinfo") {
        return;
    }
    let h = Hooked::new(&kernels);
    // A kernel without headers is skipped with a message, not a failure.
    std::fs::create_dir_all(h.s.install_tree.join("5.0.0-999-noheaders")).unwrap();
    h.s.write_module("pihook", "1.0", "", TRIVIAL);

    // The running kernel (uname -r) is not in the temp install tree: every kernel there.
    let (code, out, err) = run(&mut h.hook(&["configure", "pihook", "1.0"]));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("Loading new pihook-1.0 DKMS files..."),
        "{out}"
    );
    assert!(
        out.contains("Module build for kernel 5.0.0-999-noheaders was skipped"),
        "{out}"
    );
    let status = h.status();
    for k in &kernels {
        let ko = h.s.installed_module(k, "pihook");
        let vermagic = ok(Command::new("modinfo").args(["-F", "vermagic"]).arg(&ko));
        assert!(vermagic.starts_with(&format!("{k} ")), "{vermagic}");
        assert!(
            status.contains(&format!("pihook/1.0, {k}, {arch}: installed\n")),
            "{status}"
        );
        let dep = std::fs::read_to_string(h.s.install_tree.join(k).join("modules.dep")).unwrap();
        assert!(
            dep.contains("updates/dkms/pihook.ko:"),
            "depmod did not run for {k}"
        );
    }
    assert_eq!(status.lines().count(), kernels.len(), "{status}");

    let before = snapshot(h.s.dir.path());
    let lock = h.s.dkms_tree.join(".dkms-rs.lock");
    let mark = std::fs::read(&lock).unwrap();
    let (code, out, err) = run(&mut h.hook(&["configure", "pihook", "1.0"]));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(!out.contains("Building initial module"), "{out}");
    assert_eq!(
        snapshot(h.s.dir.path()),
        before,
        "a second configure changed files"
    );
    assert_eq!(std::fs::read(&lock).unwrap(), mark, "the lock file's mark");
    assert_eq!(h.status(), status);

    // prerm's step: everything goes, and a second remove finds nothing to do.
    ok(&mut h.hook(&["remove", "pihook", "1.0"]));
    ok(&mut h.hook(&["remove", "pihook", "1.0"]));
    assert_eq!(h.status(), "");
    assert!(!h.s.dkms_tree.join("pihook").exists());
    for k in &kernels {
        assert!(!h.s.installed_module(k, "pihook").exists());
    }
}

#[test]
fn installed_running_kernel_is_the_only_one_built() {
    let arch = support::arch();
    let Some(kernels) = support::require_kernels(2) else {
        return;
    };
    let h = Hooked::new(&kernels);
    h.s.write_module("pihook", "1.0", "", TRIVIAL);
    let running = kernels[1].as_str();
    let (code, out, err) =
        run(&mut h.hook(&["configure", "pihook", "1.0", "--running-kernel", running]));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(!out.contains("chroot"), "{out}");
    assert_eq!(
        h.status(),
        format!("pihook/1.0, {running}, {arch}: installed\n")
    );
}

#[test]
fn upgrade_removes_the_older_version() {
    let arch = support::arch();
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    if !support::require_tool("modinfo") {
        return;
    }
    let h = Hooked::new(&kernels);
    h.s.write_module("pihook", "1.0", "", TRIVIAL);
    ok(&mut h.hook(&["configure", "pihook", "1.0"]));
    h.s.write_module("pihook", "2.0", "", TRIVIAL);
    let (code, out, err) = run(&mut h.hook(&["configure", "pihook", "2.0", "1.0-1"]));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(!h.s.dkms_tree.join("pihook/1.0").exists(), "{out}");
    let status = h.status();
    for k in &kernels {
        assert!(
            status.contains(&format!("pihook/2.0, {k}, {arch}: installed\n")),
            "{status}"
        );
        let ko = h.s.installed_module(k, "pihook");
        let version = ok(Command::new("modinfo").args(["-F", "version"]).arg(&ko));
        assert_eq!(version.trim(), "2.0");
    }
    assert_eq!(status.lines().count(), kernels.len(), "{status}");
}

#[test]
fn changed_source_of_the_same_version_is_rebuilt() {
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    if !support::require_tool("modinfo") {
        return;
    }
    let h = Hooked::new(&kernels);
    h.s.write_module("pihook", "1.0", "", TRIVIAL);
    ok(&mut h.hook(&["configure", "pihook", "1.0"]));
    // A reinstall whose prerm did not remove the module: new source, same version.
    std::thread::sleep(std::time::Duration::from_millis(20));
    h.s.write_module(
        "pihook",
        "1.0",
        "",
        &format!("{TRIVIAL}MODULE_DESCRIPTION(\"rebuilt\");\n"),
    );
    let (code, out, err) = run(&mut h.hook(&["configure", "pihook", "1.0"]));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("Removing old pihook-1.0 DKMS files..."),
        "{out}"
    );
    for k in &kernels {
        let ko = h.s.installed_module(k, "pihook");
        let d = ok(Command::new("modinfo").args(["-F", "description"]).arg(&ko));
        assert_eq!(d.trim(), "rebuilt");
    }
}

#[test]
fn build_exclusive_is_skipped_without_failing() {
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let h = Hooked::new(&kernels);
    h.s.write_module(
        "pihook",
        "1.0",
        "BUILD_EXCLUSIVE_KERNEL=\"^2\\.6\\.\"\n",
        TRIVIAL,
    );
    let (code, out, err) = run(&mut h.hook(&["configure", "pihook", "1.0"]));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("BUILD_EXCLUSIVE"), "{out}");
    assert_eq!(h.status(), "pihook/1.0: added\n");
}

#[test]
fn failing_build_fails_configure_with_make_log_like_common_postinst() {
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let h = Hooked::new(&kernels);
    h.s.write_module("pihook", "1.0", "", "this is not C;\n");
    let (code, out, err) = run(&mut h.hook(&["configure", "pihook", "1.0"]));
    // common.postinst: `exit $?` with dkms build's status, 10 for make.
    assert_eq!(code, 10, "{out}\n{err}");
    let log = h.s.dkms_tree.join("pihook/1.0/build/make.log");
    assert!(err.contains(&log.display().to_string()), "{err}");
    assert!(log.is_file());
    // It stops at the first failing kernel, as common.postinst does.
    assert_eq!(out.matches("Building initial module").count(), 1, "{out}");
    assert_eq!(h.status(), "pihook/1.0: added\n");
}

#[test]
fn no_autoinstall_turns_configure_off() {
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let h = Hooked::new(&kernels);
    h.s.write_module("pihook", "1.0", "", TRIVIAL);
    std::fs::write(h.s.etc_dir.join("no-autoinstall"), "").unwrap();
    let (code, out, err) = run(&mut h.hook(&["configure", "pihook", "1.0"]));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("autoinstall for dkms modules has been disabled"),
        "{out}"
    );
    assert_eq!(h.status(), "");
}

#[test]
fn autoinstall_all_kernels_builds_for_every_kernel_even_when_running_one_is_installed() {
    let arch = support::arch();
    let Some(kernels) = support::require_kernels(2) else {
        return;
    };
    let h = Hooked::new(&kernels);
    // framework.conf.d, read after the scratch framework.conf (which keeps signing off).
    let conf_d = h.s.etc_dir.join("framework.conf.d");
    std::fs::create_dir_all(&conf_d).unwrap();
    std::fs::write(
        conf_d.join("all-kernels.conf"),
        "autoinstall_all_kernels=\"yes\"\n",
    )
    .unwrap();
    h.s.write_module("pihook", "1.0", "", TRIVIAL);
    let (code, out, err) = run(&mut h.hook(&[
        "configure",
        "pihook",
        "1.0",
        "--running-kernel",
        &kernels[0],
    ]));
    assert_eq!(code, 0, "{out}\n{err}");
    let status = h.status();
    for k in &kernels {
        assert!(
            status.contains(&format!("pihook/1.0, {k}, {arch}: installed\n")),
            "{status}"
        );
    }
}

#[test]
fn usage_errors_are_one_line() {
    let (code, _out, err) =
        run(support::command(env!("CARGO_BIN_EXE_dkms-postinst")).arg("configure"));
    assert_eq!(code, 2);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("dkms-postinst: error:"), "{err}");
}
