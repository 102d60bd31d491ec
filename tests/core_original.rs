//! A module that an install would overwrite is kept in `original_module/` and put back, byte
//! for byte, on uninstall; both dkms-rs and real dkms show `(original_module exists)`.

mod core_support;
mod support;

use core_support::{Scratch, TRIVIAL, ok};

#[test]
fn original_module_is_backed_up_and_restored() {
    if !support::require_tool("modinfo") {
        return;
    }
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let k = kernels[0].as_str();
    // An older hello (0.0) already sits where dkms installs hello.
    let older = Scratch::new(&kernels);
    older.write_module("hello", "0.0", "", TRIVIAL);
    ok(&mut older.dkms_rs(&["build", "hello/0.0", "-k", k]));
    let old_ko = older
        .dkms_tree
        .join(format!("hello/0.0/{k}/x86_64/module/hello.ko"));

    let s = Scratch::new(&kernels);
    s.add_hello_source();
    let place = s.installed_module(k, "hello");
    std::fs::create_dir_all(place.parent().unwrap()).unwrap();
    std::fs::copy(&old_ko, &place).unwrap();
    let old_bytes = std::fs::read(&place).unwrap();

    ok(&mut s.dkms_rs(&["install", "hello/0.1", "-k", k]));
    let modinfo = ok(std::process::Command::new("modinfo").arg(&place));
    assert!(modinfo.contains("version:        0.1"), "{modinfo}");
    let kept = s
        .dkms_tree
        .join(format!("hello/original_module/{k}/x86_64/hello.ko"));
    assert_eq!(std::fs::read(&kept).unwrap(), old_bytes);
    let line = format!("hello/0.1, {k}, x86_64: installed (original_module exists)\n");
    assert_eq!(ok(&mut s.dkms_rs(&["status"])), line);
    if support::require_tool("dkms") {
        assert_eq!(ok(&mut s.dkms(&["status"])), line);
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
        format!("hello/0.1, {k}, x86_64: built\n")
    );
    let dep = std::fs::read_to_string(s.install_tree.join(k).join("modules.dep")).unwrap();
    assert!(
        dep.contains("updates/dkms/hello.ko:"),
        "depmod sees the restored module: {dep}"
    );
}

#[test]
fn a_newer_module_in_place_is_neither_replaced_nor_deleted() {
    if !support::require_tool("modinfo") {
        return;
    }
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let k = kernels[0].as_str();
    let newer = Scratch::new(&kernels);
    newer.write_module("hello", "0.2", "", TRIVIAL);
    ok(&mut newer.dkms_rs(&["build", "hello/0.2", "-k", k]));
    let new_ko = newer
        .dkms_tree
        .join(format!("hello/0.2/{k}/x86_64/module/hello.ko"));

    let s = Scratch::new(&kernels);
    s.add_hello_source();
    let place = s.installed_module(k, "hello");
    std::fs::create_dir_all(place.parent().unwrap()).unwrap();
    std::fs::copy(&new_ko, &place).unwrap();
    let new_bytes = std::fs::read(&place).unwrap();

    // dkms 3.0.10 counts the refused module as installed and keeps the newer file.
    let (code, _, err) = core_support::run(&mut s.dkms_rs(&["install", "hello/0.1", "-k", k]));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("not newer"), "{err}");
    assert_eq!(std::fs::read(&place).unwrap(), new_bytes);
    let ours = ok(&mut s.dkms_rs(&["status"]));
    assert_eq!(
        ours,
        format!(
            "hello/0.1, {k}, x86_64: installed (WARNING! Diff between built and installed module!)\n"
        )
    );
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
