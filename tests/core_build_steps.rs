//! The build steps around make: patches, PRE_BUILD, a failing CLEAN (a warning), strip -g,
//! POST_BUILD and POST_INSTALL, make.log with the command and its exit status.

mod core_support;
mod support;

use std::os::unix::fs::PermissionsExt;

use core_support::{Scratch, TRIVIAL, ok};

fn script(path: &std::path::Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn patches_scripts_clean_and_strip() {
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
        .join(format!("steps/1.0/{k}/x86_64/module/steps.ko"));
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
            .join(format!("steps/1.0/{k}/x86_64/log/make.log")),
    )
    .unwrap();
    assert!(
        log.starts_with(&format!(
            "DKMS make.log for steps-1.0 for kernel {k} (x86_64)\n"
        )),
        "{log}"
    );
    assert!(log.contains(&format!("KERNELRELEASE={k} -C ")), "{log}");
    assert!(log.contains("# exit status 0 after "), "{log}");
    assert!(
        s.dkms_tree
            .join(format!("steps/1.0/{k}/x86_64/log/.config"))
            .is_file()
    );
}
