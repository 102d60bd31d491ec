//! BUILD_DEPENDS: autoinstall builds a module only once what it depends on is installed, for
//! each kernel, with builds of independent modules running in parallel.

use crate::support;

use support::scratch::{Scratch, TRIVIAL, built_lines, ok, run};

#[test]
fn autoinstall_follows_build_depends_on_two_kernels() {
    let Some(kernels) = support::require_kernels(2) else {
        return;
    };
    let s = Scratch::new(&kernels);
    let install_tree = s.install_tree.display().to_string();
    // The dependent's make fails unless the base module is already installed for that kernel:
    // the build order is proven by the build itself.
    s.write_module(
        "upper",
        "1.0",
        &format!(
            "AUTOINSTALL=yes\nBUILD_DEPENDS[0]=\"base\"\n\
             MAKE[0]=\"test -f {install_tree}/$kernelver/updates/dkms/base.ko && make -C $kernel_source_dir M=$dkms_tree/upper/1.0/build\"\n"
        ),
        TRIVIAL,
    );
    s.write_module("base", "1.0", "AUTOINSTALL=yes\n", TRIVIAL);
    s.write_module("side", "1.0", "AUTOINSTALL=yes\n", TRIVIAL);
    for m in ["upper/1.0", "base/1.0", "side/1.0"] {
        ok(&mut s.dkms_rs(&["add", m]));
    }
    // One kernel per autoinstall: dkms 3.2.2 refuses two `-k` (exit 4).
    let (code, _, err) =
        run(&mut s.dkms_rs(&["autoinstall", "-k", &kernels[0], "-k", &kernels[1]]));
    assert_eq!(code, 4, "{err}");
    let mut out = String::new();
    for k in &kernels[..2] {
        out.push_str(&ok(&mut s.dkms_rs(&["autoinstall", "-k", k, "-j", "2"])));
    }
    assert_eq!(built_lines(&out), 6, "{out}");
    for k in &kernels {
        for m in ["base", "upper", "side"] {
            assert!(s.installed_module(k, m).exists(), "{m} on {k}\n{out}");
        }
        let dep = std::fs::read_to_string(s.install_tree.join(k).join("modules.dep")).unwrap();
        assert!(dep.contains("updates/dkms/upper.ko:"), "{dep}");
    }
    if support::require_tool("dkms") {
        assert_eq!(
            ok(&mut s.dkms_rs(&["status"])),
            ok(&mut s.dkms(&["status"]))
        );
    }
}

#[test]
fn a_module_waiting_for_one_that_cannot_be_built_is_not_built_either() {
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let k = kernels[0].as_str();
    let s = Scratch::new(&kernels);
    // base is built (not installed) while it still builds; then it gains a BUILD_DEPENDS that
    // nothing provides, so autoinstall can never install it.
    let base = s.write_module("base", "1.0", "AUTOINSTALL=yes\n", TRIVIAL);
    ok(&mut s.dkms_rs(&["build", "base/1.0", "-k", k]));
    let conf = std::fs::read_to_string(base.join("dkms.conf")).unwrap();
    std::fs::write(
        base.join("dkms.conf"),
        format!("{conf}BUILD_DEPENDS[0]=\"ghost\"\n"),
    )
    .unwrap();
    s.add_module(
        "upper",
        "1.0",
        "AUTOINSTALL=yes\nBUILD_DEPENDS[0]=\"base\"\n",
        TRIVIAL,
    );
    let (code, out, err) = run(&mut s.dkms_rs(&["autoinstall", "-k", k]));
    assert_eq!(code, 11, "{out}\n{err}");
    // dkms's autoinstall: what waits for a module that is never installed fails the same way.
    for (m, dep) in [("base", "ghost"), ("upper", "base")] {
        let line = format!("{m}/1.0 autoinstall failed due to missing dependencies: {dep}");
        assert!(out.contains(&line), "{line}\n{out}\n{err}");
        assert!(!s.installed_module(k, m).exists(), "{m} installed");
    }
    if support::require_tool("dkms") {
        let (code, theirs, err) = run(&mut s.dkms(&["autoinstall", "-k", k]));
        assert_eq!(code, 11, "{theirs}\n{err}");
        for (m, dep) in [("base", "ghost"), ("upper", "base")] {
            let line = format!("{m}/1.0 autoinstall failed due to missing dependencies: {dep}");
            assert!(theirs.contains(&line), "dkms: {line}\n{theirs}\n{err}");
            assert!(!s.installed_module(k, m).exists(), "dkms installed {m}");
        }
    }
}
