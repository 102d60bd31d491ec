//! The seed's session (add, build, install, build for two kernels, status, remove --all)
//! replayed with dkms-rs against real headers, with real dkms reading the same tree.

use crate::support;

use support::scratch::{Scratch, built_lines, listing, ok};

#[test]
fn seed_session_with_dkms_rs_reads_the_same_in_real_dkms() {
    let arch = support::arch();
    if !support::require_tool("dkms") || !support::require_tool("modinfo") {
        return;
    }
    let Some(kernels) = support::require_kernels(2) else {
        return;
    };
    let (k1, k2) = (kernels[0].as_str(), kernels[1].as_str());
    let s = Scratch::new(&kernels);
    s.add_hello_source();

    let out = ok(&mut s.dkms_rs(&["add", "-m", "hello", "-v", "0.1"]));
    assert!(out.contains("Creating symlink"), "{out}");
    let link = s.dkms_tree.join("hello/0.1/source");
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        s.source_tree.join("hello-0.1")
    );
    assert_eq!(ok(&mut s.dkms(&["status"])), "hello/0.1: added\n");

    ok(&mut s.dkms_rs(&["build", "-m", "hello", "-v", "0.1", "-k", k1]));
    let log = s
        .dkms_tree
        .join(format!("hello/0.1/{k1}/{arch}/log/make.log"));
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(log_text.contains("make -j"), "{log_text}");
    assert!(
        log_text.contains(&format!("KERNELRELEASE={k1} all KVERSION={k1}")),
        "{log_text}"
    );
    assert!(log_text.contains("# exit code: 0"), "{log_text}");
    assert!(
        !s.dkms_tree.join("hello/0.1/build").exists(),
        "build dir is cleaned up"
    );

    ok(&mut s.dkms_rs(&["install", "-m", "hello", "-v", "0.1", "-k", k1]));
    let installed = s.installed_module(k1, "hello");
    let modinfo = ok(std::process::Command::new("modinfo").arg(&installed));
    assert!(
        modinfo.contains(&format!("vermagic:       {k1} ")),
        "{modinfo}"
    );
    // depmod ran against the temp tree.
    let dep = std::fs::read_to_string(s.install_tree.join(k1).join("modules.dep")).unwrap();
    assert!(dep.contains("updates/dkms/hello.ko:"), "{dep}");

    ok(&mut s.dkms_rs(&["build", "-m", "hello", "-v", "0.1", "-k", k2]));
    ok(&mut s.dkms_rs(&["install", "hello/0.1", "-k", k2]));
    let modinfo = ok(std::process::Command::new("modinfo").arg(s.installed_module(k2, "hello")));
    assert!(
        modinfo.contains(&format!("vermagic:       {k2} ")),
        "{modinfo}"
    );

    let ours = ok(&mut s.dkms_rs(&["status"]));
    let theirs = ok(&mut s.dkms(&["status"]));
    assert_eq!(ours, theirs);
    assert_eq!(
        ours,
        format!("hello/0.1, {k1}, {arch}: installed\nhello/0.1, {k2}, {arch}: installed\n")
    );
    // Filters as dkms has them.
    assert_eq!(
        ok(&mut s.dkms_rs(&["status", "-k", k2])),
        ok(&mut s.dkms(&["status", "-k", k2]))
    );

    ok(&mut s.dkms_rs(&["remove", "-m", "hello", "-v", "0.1", "--all"]));
    assert!(
        listing(&s.dkms_tree).iter().all(|p| p.starts_with('.')),
        "{:?}",
        listing(&s.dkms_tree)
    );
    assert!(!installed.exists());
    assert_eq!(ok(&mut s.dkms(&["status"])), "");
}

#[test]
fn build_for_two_kernels_at_once() {
    let arch = support::arch();
    let Some(kernels) = support::require_kernels(2) else {
        return;
    };
    let s = Scratch::new(&kernels);
    s.add_hello_source();
    let out = ok(&mut s.dkms_rs(&[
        "build",
        "hello/0.1",
        "-k",
        &kernels[0],
        "-k",
        &kernels[1],
        "-j",
        "2",
    ]));
    // One line per finished build.
    assert_eq!(built_lines(&out), 2, "{out}");
    for k in &kernels {
        let ko = s
            .dkms_tree
            .join(format!("hello/0.1/{k}/{arch}/module/hello.ko"));
        let modinfo = ok(std::process::Command::new("modinfo").arg(&ko));
        assert!(
            modinfo.contains(&format!("vermagic:       {k} ")),
            "{modinfo}"
        );
    }
    let hidden: Vec<String> = listing(&s.dkms_tree.join("hello/0.1"))
        .into_iter()
        .filter(|p| p.starts_with(".build") || p.starts_with(".stage"))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");
    if support::require_tool("dkms") {
        assert_eq!(
            ok(&mut s.dkms_rs(&["status"])),
            ok(&mut s.dkms(&["status"]))
        );
    }
}
