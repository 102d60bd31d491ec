//! The build steps around make: patches, PRE_BUILD, a failing CLEAN (a warning), strip -g,
//! POST_BUILD and POST_INSTALL, make.log with the command and its exit status.

use crate::support;

use std::os::unix::fs::PermissionsExt;

use support::scratch::{Scratch, TRIVIAL, built_lines, ok};

fn script(path: &std::path::Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn patches_scripts_clean_and_strip() {
    let arch = support::arch();
    if !support::require_tool("patch") || !support::require_tool("readelf") {
        return;
    }
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let k = kernels[0].as_str();
    let s = Scratch::new(&kernels);
    let marks = s.dir.path().join("marks");
    std::fs::create_dir(&marks).unwrap();
    let m = marks.display();
    let dir = s.write_module(
        "steps",
        "1.0",
        "PATCH[0]=\"describe.patch\"\nPRE_BUILD=\"pre.sh\"\nPOST_BUILD=\"post.sh\"\nPOST_INSTALL=\"inst.sh arg1\"\nCLEAN=\"false\"\n",
        TRIVIAL,
    );
    std::fs::create_dir(dir.join("patches")).unwrap();
    std::fs::write(
        dir.join("patches/describe.patch"),
        "--- a/Kbuild\n+++ b/Kbuild\n@@ -1 +1,2 @@\n obj-m := steps.o\n+ccflags-y += -DPATCHED\n",
    )
    .unwrap();
    let c = std::fs::read_to_string(dir.join("steps.c")).unwrap();
    std::fs::write(
        dir.join("steps.c"),
        format!("{c}#ifdef PATCHED\nMODULE_DESCRIPTION(\"patched\");\n#endif\n"),
    )
    .unwrap();
    script(&dir.join("pre.sh"), &format!("pwd > {m}/pre"));
    script(&dir.join("post.sh"), &format!("ls *.ko > {m}/post"));
    script(&dir.join("inst.sh"), &format!("echo \"$1\" > {m}/inst"));

    ok(&mut s.dkms_rs(&["install", "steps/1.0", "-k", k]));
    let built = s
        .dkms_tree
        .join(format!("steps/1.0/{k}/{arch}/module/steps.ko"));
    let modinfo = ok(std::process::Command::new("modinfo").arg(&built));
    assert!(modinfo.contains("description:    patched"), "{modinfo}");
    let sections = ok(std::process::Command::new("readelf").arg("-S").arg(&built));
    assert!(
        !sections.contains(".debug_info"),
        "strip -g ran:\n{sections}"
    );
    let build_dir = s.dkms_tree.join("steps/1.0/build");
    assert_eq!(
        std::fs::read_to_string(marks.join("pre")).unwrap().trim(),
        build_dir.display().to_string()
    );
    assert_eq!(
        std::fs::read_to_string(marks.join("post")).unwrap().trim(),
        "steps.ko"
    );
    assert_eq!(
        std::fs::read_to_string(marks.join("inst")).unwrap().trim(),
        "arg1"
    );
    let log = std::fs::read_to_string(
        s.dkms_tree
            .join(format!("steps/1.0/{k}/{arch}/log/make.log")),
    )
    .unwrap();
    // dkms 3.2.2's make.log: its header naming `dkms --version`, then the make section.
    let version = ok(&mut s.dkms_rs(&["--version"]));
    assert!(
        log.starts_with(&format!(
            "DKMS ({}) make.log for steps/1.0 for kernel {k} ({arch})\n",
            version.trim()
        )),
        "{log}"
    );
    assert!(
        log.contains("\n\nBuilding module(s)\n# command: make -j"),
        "{log}"
    );
    assert!(log.contains(&format!("KERNELRELEASE={k} -C ")), "{log}");
    assert!(
        log.contains("\n# exit code: 0\n# elapsed time: 00:00:")
            && log.ends_with(&format!("\n{}\n", "-".repeat(64))),
        "{log}"
    );
    assert!(
        s.dkms_tree
            .join(format!("steps/1.0/{k}/{arch}/log/.config"))
            .is_file()
    );
}

#[test]
fn add_from_a_directory_then_skip_or_force_as_dkms_does() {
    let arch = support::arch();
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let k = kernels[0].as_str();
    let s = Scratch::new(&kernels);
    let marks = s.dir.path().join("marks");
    let written = s.write_module("fromdir", "1.0", "POST_ADD=\"post_add.sh\"\n", TRIVIAL);
    script(
        &written.join("post_add.sh"),
        &format!("echo added >> {}", marks.display()),
    );
    // `add <dir>` copies a directory from outside the source tree to `<src>/<m>-<v>`.
    let elsewhere = s.dir.path().join("checkout");
    std::fs::rename(&written, &elsewhere).unwrap();
    ok(&mut s.dkms_rs(&["add", elsewhere.to_str().unwrap()]));
    assert!(s.source_tree.join("fromdir-1.0/dkms.conf").is_file());
    assert!(s.dkms_tree.join("fromdir/1.0/source").is_symlink());
    assert_eq!(std::fs::read_to_string(&marks).unwrap(), "added\n");

    ok(&mut s.dkms_rs(&["install", "fromdir/1.0", "-k", k, "--no-depmod"]));
    let built = s
        .dkms_tree
        .join(format!("fromdir/1.0/{k}/{arch}/module/fromdir.ko"));
    let first_build = std::fs::metadata(&built).unwrap().modified().unwrap();
    for (action, done) in [("build", "built for"), ("install", "installed on")] {
        let args = [action, "fromdir/1.0", "-k", k, "--no-depmod"];
        let out = ok(&mut s.dkms_rs(&args));
        let line = format!(
            "Module fromdir/1.0 already {done} kernel {k} ({arch}), skip. You may override by specifying --force."
        );
        assert!(out.contains(&line), "{out}");
        if support::require_tool("dkms") {
            let theirs = ok(&mut s.dkms(&args));
            assert!(theirs.contains(&line), "dkms says otherwise: {theirs}");
        }
    }
    // --force redoes the build (a new module file) and the install.
    let out = ok(&mut s.dkms_rs(&["build", "fromdir/1.0", "-k", k, "--force"]));
    assert_eq!(built_lines(&out), 1, "{out}");
    assert_ne!(
        std::fs::metadata(&built).unwrap().modified().unwrap(),
        first_build
    );
    ok(&mut s.dkms_rs(&["install", "fromdir/1.0", "-k", k, "--force", "--no-depmod"]));
    assert!(s.installed_module(k, "fromdir").is_file());
    assert_eq!(std::fs::read_to_string(&marks).unwrap(), "added\n");
}
