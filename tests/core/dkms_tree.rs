//! dkms-rs reads what real dkms 3.0.10 did, and undoes it: same tree, same status lines.

use crate::support;

use support::scratch::{Scratch, TRIVIAL, ok};

#[test]
fn dkms_rs_status_reports_what_real_dkms_did() {
    let arch = support::arch();
    if !support::require_tool("dkms") {
        return;
    }
    let Some(kernels) = support::require_kernels(2) else {
        return;
    };
    let (k1, k2) = (kernels[0].as_str(), kernels[1].as_str());
    let s = Scratch::new(&kernels);
    s.add_hello_source();
    s.write_module("alpha", "1.0", "", TRIVIAL);
    s.write_module("alpha-extra", "2.0", "", TRIVIAL);
    for m in ["hello/0.1", "alpha/1.0", "alpha-extra/2.0"] {
        ok(&mut s.dkms(&["add", m]));
    }
    assert_eq!(
        ok(&mut s.dkms_rs(&["status"])),
        ok(&mut s.dkms(&["status"]))
    );

    ok(&mut s.dkms(&["build", "hello/0.1", "-k", k1]));
    ok(&mut s.dkms(&["install", "hello/0.1", "-k", k1, "--no-depmod"]));
    ok(&mut s.dkms(&["build", "hello/0.1", "-k", k2]));
    ok(&mut s.dkms(&["build", "alpha/1.0", "-k", k2]));
    let theirs = ok(&mut s.dkms(&["status"]));
    assert_eq!(ok(&mut s.dkms_rs(&["status"])), theirs);
    assert!(
        theirs.contains(&format!("hello/0.1, {k1}, {arch}: installed")),
        "{theirs}"
    );
    assert!(theirs.contains("alpha-extra/2.0: added"), "{theirs}");
    for filter in [vec!["-m", "hello"], vec!["-k", k2], vec!["alpha/1.0"]] {
        assert_eq!(
            ok(s.dkms_rs(&["status"]).args(&filter)),
            ok(s.dkms(&["status"]).args(&filter)),
            "status {filter:?}"
        );
    }

    // A module file changed behind dkms's back shows dkms's warning suffix in both.
    let installed = s.installed_module(k1, "hello");
    let mut bytes = std::fs::read(&installed).unwrap();
    bytes.push(0);
    std::fs::write(&installed, bytes).unwrap();
    let theirs = ok(&mut s.dkms(&["status", "-m", "hello"]));
    assert!(
        theirs.contains("(WARNING! Diff between built and installed module!)"),
        "{theirs}"
    );
    // The same finding, in dkms 3.2.2's words.
    assert_eq!(
        ok(&mut s.dkms_rs(&["status", "-m", "hello"])),
        support::suffixes_of_3_2_2(&theirs)
    );
    ok(&mut s.dkms(&["uninstall", "hello/0.1", "-k", k1, "--no-depmod"]));
    ok(&mut s.dkms(&["install", "hello/0.1", "-k", k1, "--no-depmod"]));

    // dkms-rs undoes real dkms's work.
    ok(&mut s.dkms_rs(&["uninstall", "hello/0.1", "-k", k1]));
    assert!(!installed.exists());
    assert_eq!(
        ok(&mut s.dkms_rs(&["status", "hello/0.1"])),
        ok(&mut s.dkms(&["status", "hello/0.1"]))
    );
    ok(&mut s.dkms_rs(&["remove", "hello/0.1", "--all"]));
    ok(&mut s.dkms_rs(&["remove", "alpha/1.0", "--all"]));
    assert_eq!(ok(&mut s.dkms(&["status"])), "alpha-extra/2.0: added\n");
    assert!(!s.dkms_tree.join("hello").exists());
}

#[test]
fn real_dkms_undoes_what_dkms_rs_did() {
    if !support::require_tool("dkms") {
        return;
    }
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let k = kernels[0].as_str();
    let s = Scratch::new(&kernels);
    s.add_hello_source();
    ok(&mut s.dkms_rs(&["install", "hello/0.1", "-k", k]));
    let installed = s.installed_module(k, "hello");
    assert!(installed.exists());
    ok(&mut s.dkms(&["remove", "hello/0.1", "--all", "--no-depmod"]));
    assert!(!installed.exists());
    assert!(!s.dkms_tree.join("hello").exists());
    assert_eq!(ok(&mut s.dkms_rs(&["status"])), "");
}
