//! A module that an install would overwrite is kept in `original_module/` and put back, byte
//! for byte, on uninstall; dkms-rs shows 3.2.2's `(Original modules exist)` where 3.0.10 shows `(original_module exists)`.

use crate::support;

use support::scratch::{Scratch, TRIVIAL, ok};

/// A scratch tree with the seed's hello 0.1 in its source tree, and a hello.ko of `version`
/// (built by dkms-rs in another tree) already where dkms installs hello on the first kernel.
/// Returns the tree, that place and the bytes of the module there.
fn hello_with_another_in_place(
    kernels: &[String],
    version: &str,
) -> (Scratch, std::path::PathBuf, Vec<u8>) {
    let arch = support::arch();
    let k = kernels[0].as_str();
    let other = Scratch::new(kernels);
    other.write_module("hello", version, "", TRIVIAL);
    ok(&mut other.dkms_rs(&["build", &format!("hello/{version}"), "-k", k]));
    let other_ko = other
        .dkms_tree
        .join(format!("hello/{version}/{k}/{arch}/module/hello.ko"));

    let s = Scratch::new(kernels);
    s.add_hello_source();
    let place = s.installed_module(k, "hello");
    std::fs::create_dir_all(place.parent().unwrap()).unwrap();
    std::fs::copy(&other_ko, &place).unwrap();
    let bytes = std::fs::read(&place).unwrap();
    (s, place, bytes)
}

#[test]
fn original_module_is_backed_up_and_restored() {
    let arch = support::arch();
    if !support::require_tool("modinfo") {
        return;
    }
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let k = kernels[0].as_str();
    // An older hello (0.0) already sits where dkms installs hello.
    let (s, place, old_bytes) = hello_with_another_in_place(&kernels, "0.0");

    ok(&mut s.dkms_rs(&["install", "hello/0.1", "-k", k]));
    let modinfo = ok(std::process::Command::new("modinfo").arg(&place));
    assert!(modinfo.contains("version:        0.1"), "{modinfo}");
    let kept = s
        .dkms_tree
        .join(format!("hello/original_module/{k}/{arch}/hello.ko"));
    assert_eq!(std::fs::read(&kept).unwrap(), old_bytes);
    let line = format!("hello/0.1, {k}, {arch}: installed (Original modules exist)\n");
    assert_eq!(ok(&mut s.dkms_rs(&["status"])), line);
    if support::require_tool("dkms") {
        // dkms 3.0.10 reads the same state (its suffix words are older ones).
        assert_eq!(
            support::suffixes_of_3_2_2(&ok(&mut s.dkms(&["status"]))),
            line
        );
    }

    ok(&mut s.dkms_rs(&["uninstall", "hello/0.1", "-k", k]));
    assert_eq!(
        std::fs::read(&place).unwrap(),
        old_bytes,
        "original restored"
    );
    assert!(!s.dkms_tree.join("hello/original_module").exists());
    assert_eq!(
        ok(&mut s.dkms_rs(&["status"])),
        format!("hello/0.1, {k}, {arch}: built\n")
    );
    let dep = std::fs::read_to_string(s.install_tree.join(k).join("modules.dep")).unwrap();
    assert!(
        dep.contains("updates/dkms/hello.ko:"),
        "depmod sees the restored module: {dep}"
    );
}

#[test]
fn a_newer_module_in_place_is_neither_replaced_nor_deleted() {
    let arch = support::arch();
    if !support::require_tool("modinfo") {
        return;
    }
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let k = kernels[0].as_str();
    let (s, place, new_bytes) = hello_with_another_in_place(&kernels, "0.2");

    // dkms 3.2.2 (run_test.sh's multiversion section) refuses the older module, installs
    // nothing (6, "Installation aborted.") and keeps the newer file; 3.0.10 counted it installed.
    let (code, _, err) = support::scratch::run(&mut s.dkms_rs(&["install", "hello/0.1", "-k", k]));
    assert_eq!(code, 6, "{err}");
    assert!(
        err.contains("\nError! Module version 0.1 for hello.ko\nis not newer than what is already found in kernel ")
            && err.ends_with("\nError! Installation aborted.\n"),
        "{err}"
    );
    assert_eq!(std::fs::read(&place).unwrap(), new_bytes);
    let ours = ok(&mut s.dkms_rs(&["status"]));
    assert_eq!(ours, format!("hello/0.1, {k}, {arch}: built\n"));
    if support::require_tool("dkms") {
        assert_eq!(ok(&mut s.dkms(&["status"])), ours);
    }
    ok(&mut s.dkms_rs(&["uninstall", "hello/0.1", "-k", k]));
    assert_eq!(
        std::fs::read(&place).unwrap(),
        new_bytes,
        "not ours to delete"
    );
}
