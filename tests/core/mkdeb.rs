//! `dkms-rs mkdeb -m M -v V` packs an added module into `<dkmstree>/M/V/deb/` as the seed shows.

use crate::support;

use support::scratch::{Scratch, ok, run};

#[test]
fn mkdeb_writes_the_dkms_package_into_the_tree() {
    if !support::require_tool("dpkg-deb") {
        return;
    }
    let s = Scratch::new(&[]);
    s.add_hello_source();
    let (code, _, err) = run(&mut s.dkms_rs(&["mkdeb", "-m", "hello", "-v", "0.1"]));
    assert_eq!(code, 3, "not added yet: {err}");
    ok(&mut s.dkms_rs(&["add", "-m", "hello", "-v", "0.1"]));
    let out = ok(&mut s.dkms_rs(&[
        "mkdeb",
        "-m",
        "hello",
        "-v",
        "0.1",
        "--maintainer",
        "Test Maintainer <test@example.org>",
    ]));
    let deb = s.dkms_tree.join("hello/0.1/deb/hello-dkms_0.1_all.deb");
    assert_eq!(out.trim(), deb.display().to_string());
    let fields = ok(std::process::Command::new("dpkg-deb").arg("-f").arg(&deb));
    assert!(fields.contains("Package: hello-dkms"), "{fields}");
    assert!(fields.contains("Architecture: all"), "{fields}");
    let files = ok(std::process::Command::new("dpkg-deb").arg("-c").arg(&deb));
    for f in [
        "./usr/src/hello-0.1/dkms.conf",
        "./usr/src/hello-0.1/hello.c",
        "./usr/src/hello-0.1/Makefile",
    ] {
        assert!(files.contains(f), "{f} missing:\n{files}");
    }
    // The tree still reads as before: the deb/ directory is not a kernel.
    assert_eq!(ok(&mut s.dkms_rs(&["status"])), "hello/0.1: added\n");
    ok(&mut s.dkms_rs(&["remove", "hello/0.1", "--all"]));
    assert!(!s.dkms_tree.join("hello").exists());
}
