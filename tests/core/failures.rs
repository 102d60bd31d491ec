//! Failures keep dkms's exit codes and leave the tree as it was: a failing make (10, make.log
//! kept, module stays added), BUILD_EXCLUSIVE (77), missing BUILD_DEPENDS (13), autoinstall (11).

use crate::support;

use support::scratch::{Scratch, TRIVIAL, ok, run};

#[test]
fn failing_build_exits_10_keeps_make_log_and_stays_added() {
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let k = kernels[0].as_str();
    let s = Scratch::new(&kernels);
    s.add_module("broken", "1.0", "", "this is not C;\n");
    let (code, _out, err) = run(&mut s.dkms_rs(&["build", "broken/1.0", "-k", k]));
    assert_eq!(code, 10, "{err}");
    let log = s.dkms_tree.join("broken/1.0/build/make.log");
    assert!(err.contains(&log.display().to_string()), "{err}");
    // The last lines of make.log come with the error.
    assert!(err.contains("error:"), "{err}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("error:"), "{text}");
    assert!(text.contains("# exit status 2"), "{text}");
    assert!(!s.dkms_tree.join(format!("broken/1.0/{k}")).exists());
    assert_eq!(ok(&mut s.dkms_rs(&["status"])), "broken/1.0: added\n");
    if support::require_tool("dkms") {
        assert_eq!(ok(&mut s.dkms(&["status"])), "broken/1.0: added\n");
    }
}

#[test]
fn build_exclusive_is_exit_77_and_builds_nothing() {
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let k = kernels[0].as_str();
    let s = Scratch::new(&kernels);
    s.add_module(
        "excl",
        "1.0",
        "BUILD_EXCLUSIVE_KERNEL=\"^2\\.6\\.\"\n",
        TRIVIAL,
    );
    let (code, _, err) = run(&mut s.dkms_rs(&["build", "excl/1.0", "-k", k]));
    assert_eq!(code, 77, "{err}");
    assert!(err.contains("BUILD_EXCLUSIVE"), "{err}");
    assert_eq!(ok(&mut s.dkms_rs(&["status"])), "excl/1.0: added\n");
    if support::require_tool("dkms") {
        // Real dkms says the same of this module and kernel.
        let (code, _, _) = run(&mut s.dkms(&["build", "excl/1.0", "-k", k]));
        assert_eq!(code, 77);
    }
}

#[test]
fn missing_build_depends_is_exit_13() {
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let k = kernels[0].as_str();
    let s = Scratch::new(&kernels);
    s.add_module("needy", "1.0", "BUILD_DEPENDS[0]=\"base\"\n", TRIVIAL);
    let (code, _, err) = run(&mut s.dkms_rs(&["build", "needy/1.0", "-k", k]));
    assert_eq!(code, 13, "{err}");
    assert!(err.contains("base"), "{err}");
}

#[test]
fn autoinstall_exits_11_when_a_module_fails_and_installs_the_rest() {
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let k = kernels[0].as_str();
    let s = Scratch::new(&kernels);
    s.write_module("good", "1.0", "AUTOINSTALL=yes\n", TRIVIAL);
    s.write_module("bad", "1.0", "AUTOINSTALL=yes\n", "this is not C;\n");
    s.write_module("manual", "1.0", "", TRIVIAL);
    s.write_module(
        "excl",
        "1.0",
        "AUTOINSTALL=yes\nBUILD_EXCLUSIVE_ARCH=\"^sparc\"\n",
        TRIVIAL,
    );
    for m in ["good/1.0", "bad/1.0", "manual/1.0", "excl/1.0"] {
        ok(&mut s.dkms_rs(&["add", m]));
    }
    let (code, out, err) = run(&mut s.dkms_rs(&["autoinstall", "-k", k]));
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
        status.contains(&format!("good/1.0, {k}, x86_64: installed")),
        "{status}"
    );
    assert!(status.contains("bad/1.0: added"), "{status}");

    // Once the failing module is gone, a second autoinstall has nothing to do and succeeds.
    ok(&mut s.dkms_rs(&["remove", "bad/1.0", "--all"]));
    let out = ok(&mut s.dkms_rs(&["autoinstall", "-k", k]));
    assert!(!out.contains("built"), "{out}");
}
