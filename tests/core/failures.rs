//! Failures keep dkms's exit codes and leave the tree as it was: a failing make (10, make.log
//! kept, module stays added), BUILD_EXCLUSIVE (77), missing BUILD_DEPENDS (13), autoinstall (11).
//!
//! The oracle for each code is Debian's dkms 3.0.10 (`/usr/sbin/dkms`) run on the same scenario
//! in a scratch tree of its own; the literal codes stay as the documented expectation. Where 3.0.10
//! is older than the 3.2.2 the project follows, the test says so and checks what 3.0.10 does.

use crate::support;

use support::scratch::{Scratch, TRIVIAL, ok, run};

/// One module of a scenario, `<name>/1.0`, as [`Scratch::write_module`] writes it.
struct Module {
    name: &'static str,
    conf_extra: &'static str,
    c_body: &'static str,
}

/// The scenario's modules written alike into two scratch trees on `kernels`: ours, added by
/// dkms-rs, and theirs, added by Debian's dkms (`None` when dkms is missing outside CI; under
/// `CI=true` [`support::require_tool`] fails the test instead).
fn trees(kernels: &[String], modules: &[Module]) -> (Scratch, Option<Scratch>) {
    let ours = Scratch::new(kernels);
    for m in modules {
        ours.add_module(m.name, "1.0", m.conf_extra, m.c_body);
    }
    if !support::require_tool("dkms") {
        return (ours, None);
    }
    let theirs = Scratch::new(kernels);
    for m in modules {
        theirs.write_module(m.name, "1.0", m.conf_extra, m.c_body);
        ok(&mut theirs.dkms(&["add", &format!("{}/1.0", m.name)]));
    }
    (ours, Some(theirs))
}

/// Debian's dkms `args` on its own tree: (exit code, stdout, stderr).
fn dkms_on(theirs: &Scratch, args: &[&str]) -> (i32, String, String) {
    run(&mut theirs.dkms(args))
}

/// Whether the oracle is dkms 3.0.10, whose known differences from 3.2.2 the tests below name.
fn dkms_is_3_0_10() -> bool {
    let out = std::process::Command::new("/usr/sbin/dkms")
        .arg("--version")
        .output()
        .expect("dkms --version");
    String::from_utf8_lossy(&out.stdout).trim() == "dkms-3.0.10"
}

/// The machine's architecture as dkms names it in `status` (`uname -m`, dkms's `$arch`).
fn machine_arch() -> String {
    support::run_ok(std::process::Command::new("uname").arg("-m"))
        .trim()
        .to_string()
}

#[test]
fn failing_build_exits_10_keeps_make_log_and_stays_added() {
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let k = kernels[0].as_str();
    let broken = Module {
        name: "broken",
        conf_extra: "",
        c_body: "this is not C;\n",
    };
    let (s, theirs) = trees(&kernels, &[broken]);
    let args = ["build", "broken/1.0", "-k", k];
    let (code, _out, err) = run(&mut s.dkms_rs(&args));
    // dkms: `report_build_problem 10 "Bad return status for module build ..."`.
    assert_eq!(code, 10, "{err}");
    if let Some(theirs) = &theirs {
        let (their_code, their_out, their_err) = dkms_on(theirs, &args);
        assert_eq!(
            code, their_code,
            "dkms-rs (left) vs dkms (right) on a failing make\n{their_out}{their_err}"
        );
        assert_eq!(ok(&mut theirs.dkms(&["status"])), "broken/1.0: added\n");
    }
    let log = s.dkms_tree.join("broken/1.0/build/make.log");
    assert!(err.contains(&log.display().to_string()), "{err}");
    // dkms 3.2.2's words: the error names the kernel and the log.
    assert!(
        err.contains(&format!(
            "\nError! Bad return status for module build on kernel: {k} ({})\nConsult {} for more information.\n",
            support::arch(),
            log.display()
        )),
        "{err}"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("error:"), "{text}");
    assert!(text.contains("# exit code: 2"), "{text}");
    assert!(!s.dkms_tree.join(format!("broken/1.0/{k}")).exists());
    assert_eq!(ok(&mut s.dkms_rs(&["status"])), "broken/1.0: added\n");
    if theirs.is_some() {
        // Real dkms reads our tree as we do.
        assert_eq!(ok(&mut s.dkms(&["status"])), "broken/1.0: added\n");
    }
}

#[test]
fn build_exclusive_is_exit_77_and_builds_nothing() {
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let k = kernels[0].as_str();
    let excl = Module {
        name: "excl",
        conf_extra: "BUILD_EXCLUSIVE_KERNEL=\"^2\\.6\\.\"\n",
        c_body: TRIVIAL,
    };
    let (s, theirs) = trees(&kernels, &[excl]);
    let args = ["build", "excl/1.0", "-k", k];
    let (code, _, err) = run(&mut s.dkms_rs(&args));
    // dkms: `die 77` when BUILD_EXCLUSIVE_* does not match the kernel/arch/config.
    assert_eq!(code, 77, "{err}");
    if let Some(theirs) = &theirs {
        let (their_code, their_out, their_err) = dkms_on(theirs, &args);
        assert_eq!(
            code, their_code,
            "dkms-rs (left) vs dkms (right) on BUILD_EXCLUSIVE\n{their_out}{their_err}"
        );
        assert_eq!(ok(&mut theirs.dkms(&["status"])), "excl/1.0: added\n");
    }
    assert!(err.contains("BUILD_EXCLUSIVE"), "{err}");
    assert_eq!(ok(&mut s.dkms_rs(&["status"])), "excl/1.0: added\n");
}

#[test]
fn missing_build_depends_is_exit_13() {
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let k = kernels[0].as_str();
    let needy = Module {
        name: "needy",
        conf_extra: "BUILD_DEPENDS[0]=\"base\"\n",
        c_body: TRIVIAL,
    };
    let (s, theirs) = trees(&kernels, &[needy]);
    let args = ["build", "needy/1.0", "-k", k];
    let (code, _, err) = run(&mut s.dkms_rs(&args));
    // 3.2.2's "Aborting build of module ... due to missing BUILD_DEPENDS", exit 13 (upstream
    // run_test.sh: `run_with_expected_error 13 dkms build ... dkms_dependencies_test`).
    assert_eq!(code, 13, "{err}");
    assert!(err.contains("base"), "{err}");
    let Some(theirs) = &theirs else {
        return;
    };
    let (their_code, their_out, their_err) = dkms_on(theirs, &args);
    if dkms_is_3_0_10() {
        // dkms 3.0.10 never checks BUILD_DEPENDS at build time: it reads the array only into
        // autoinstall's ordering (`build_depends[...]` in its autoinstall()), so it builds and
        // exits 0. That it really does is what can be checked here.
        assert_eq!(
            their_code, 0,
            "dkms 3.0.10 was expected to build despite BUILD_DEPENDS\n{their_out}{their_err}"
        );
        assert_eq!(
            ok(&mut theirs.dkms(&["status"])),
            format!("needy/1.0, {k}, {}: built\n", machine_arch())
        );
    } else {
        assert_eq!(
            code, their_code,
            "dkms-rs (left) vs dkms (right) on missing BUILD_DEPENDS\n{their_out}{their_err}"
        );
    }
}

#[test]
fn autoinstall_exits_11_when_a_module_fails_and_installs_the_rest() {
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let k = kernels[0].as_str();
    let modules = [
        Module {
            name: "good",
            conf_extra: "AUTOINSTALL=yes\n",
            c_body: TRIVIAL,
        },
        Module {
            name: "bad",
            conf_extra: "AUTOINSTALL=yes\n",
            c_body: "this is not C;\n",
        },
        Module {
            name: "manual",
            conf_extra: "",
            c_body: TRIVIAL,
        },
        Module {
            name: "excl",
            conf_extra: "AUTOINSTALL=yes\nBUILD_EXCLUSIVE_ARCH=\"^sparc\"\n",
            c_body: TRIVIAL,
        },
    ];
    let (s, theirs) = trees(&kernels, &modules);
    // --no-depmod for real dkms: its depmod runs on /lib/modules/<k>, not on --installtree.
    let their_args = ["autoinstall", "-k", k, "--no-depmod"];
    let (code, out, err) = run(&mut s.dkms_rs(&["autoinstall", "-k", k]));
    // dkms: `die 11 "One or more modules failed to install during autoinstall."`.
    assert_eq!(code, 11, "{out}\n{err}");
    assert!(err.contains("bad/1.0"), "{err}");
    assert!(
        !err.contains("excl/1.0 ("),
        "BUILD_EXCLUSIVE is a skip, not a failure: {err}"
    );
    assert!(s.installed_module(k, "good").exists());
    assert!(!s.installed_module(k, "manual").exists(), "no AUTOINSTALL");
    let status = ok(&mut s.dkms_rs(&["status"]));
    assert!(
        status.contains(&format!("good/1.0, {k}, {}: installed", machine_arch())),
        "{status}"
    );
    assert!(status.contains("bad/1.0: added"), "{status}");
    if let Some(theirs) = &theirs {
        let (their_code, their_out, their_err) = dkms_on(theirs, &their_args);
        assert_eq!(
            code, their_code,
            "dkms-rs (left) vs dkms (right) on autoinstall\n{their_out}{their_err}"
        );
        assert!(theirs.installed_module(k, "good").exists());
        assert!(!theirs.installed_module(k, "manual").exists());
        assert_eq!(
            status,
            ok(&mut theirs.dkms(&["status"])),
            "status after autoinstall: dkms-rs (left) vs dkms (right)"
        );
    }

    // Once the failing module is gone, a second autoinstall has nothing to do and succeeds.
    ok(&mut s.dkms_rs(&["remove", "bad/1.0", "--all"]));
    let out = ok(&mut s.dkms_rs(&["autoinstall", "-k", k]));
    assert!(!out.contains("built"), "{out}");
    let Some(theirs) = &theirs else {
        return;
    };
    ok(&mut theirs.dkms(&["remove", "bad/1.0", "--all"]));
    let (their_code, their_out, their_err) = dkms_on(theirs, &their_args);
    if dkms_is_3_0_10() {
        // dkms 3.0.10 counts a BUILD_EXCLUSIVE module as a failed autoinstall (its
        // install_module dies 77 and autoinstall() adds it to failed_modules): 11. 3.2.2 skips
        // it ("dkms autoinstall on <k>/<a> was skipped for ...", exit 0 in upstream run_test.sh's
        // "Running dkms autoinstall (1 x skip)"), which is what dkms-rs follows.
        assert_eq!(
            their_code, 11,
            "dkms 3.0.10 was expected to fail on BUILD_EXCLUSIVE\n{their_out}{their_err}"
        );
        assert!(their_err.contains("BUILD_EXCLUSIVE"), "{their_err}");
    } else {
        assert_eq!(
            0, their_code,
            "dkms-rs (left) vs dkms (right) on autoinstall with a BUILD_EXCLUSIVE skip\n\
             {their_out}{their_err}"
        );
    }
}
