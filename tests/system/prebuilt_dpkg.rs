//! `dkms-mkdeb --binaries-only`: the `<name>-modules-<kernel>` package, lintian clean,
//! installed for real with dpkg (the module lands in /lib/modules/<k>/updates/dkms, its
//! postinst runs depmod so modinfo finds it by name) and removed again (postrm's depmod
//! forgets it). The module name is one no real package uses.

use crate::support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::dpkg::{TestModule, no_signing};
use support::{require_kernels, require_tool, run_ok};

const MODULE: TestModule = TestModule {
    name: "dkmsrstest-bin",
    object: "dkmsrstest_bin",
};
const NAME: &str = MODULE.name;
const OBJECT: &str = MODULE.object;

fn modinfo_filename(kernel: &str) -> Option<String> {
    let out = Command::new("modinfo")
        .args(["-k", kernel, "-F", "filename", OBJECT])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn binaries_only_package_installs_and_removes_with_dpkg() {
    if !require_tool("dpkg") || !require_tool("modinfo") || !require_tool("lintian") {
        return;
    }
    let Some(kernels) = require_kernels(1) else {
        return;
    };
    let k = kernels[0].as_str();
    let work = tempfile::tempdir().unwrap();
    let src = MODULE.source(work.path());
    let out = run_ok(
        support::command(env!("CARGO_BIN_EXE_dkms-mkdeb"))
            .args(["--maintainer", "Jane Doe <jane@example.org>", "-o"])
            .arg(work.path())
            .args(["--binaries-only", "-k", k])
            .arg(&src),
    );
    let package = format!("{NAME}-modules-{k}");
    let deb = work.path().join(format!("{package}_0.1_amd64.deb"));
    assert_eq!(out.trim(), deb.display().to_string());
    let field = |f: &str| run_ok(Command::new("dpkg-deb").arg("-f").arg(&deb).arg(f));
    assert_eq!(field("Depends").trim(), format!("linux-image-{k}"));
    assert_eq!(field("Provides").trim(), format!("{NAME}-modules"));

    let lintian = Command::new("lintian")
        .args(["-EI", "--pedantic", "--fail-on", "error,warning"])
        .arg(&deb)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&lintian.stdout);
    assert!(lintian.status.success(), "lintian:\n{said}");

    let ko = PathBuf::from(format!("/lib/modules/{k}/updates/dkms/{OBJECT}.ko"));
    let installed = MODULE.guard(&[package.as_str()], None);
    assert!(!ko.exists(), "{} is there before the test", ko.display());
    // The machine has the kernel's headers, not its linux-image package: the one Depends
    // is forced, nothing else.
    let has_image = Command::new("dpkg")
        .args(["-s", &format!("linux-image-{k}")])
        .output()
        .is_ok_and(|o| o.status.success());
    let mut install = Command::new("dpkg");
    install.arg("-i");
    if !has_image {
        install.arg("--force-depends");
    }
    run_ok(no_signing(install.arg(&deb)));
    assert!(ko.is_file());
    let info = run_ok(Command::new("modinfo").arg(&ko));
    assert!(info.contains(&format!("vermagic:       {k} ")), "{info}");
    if Path::new(&format!("/lib/modules/{k}/modules.dep")).exists() {
        // The postinst's depmod indexed it: modinfo finds it by name.
        assert_eq!(modinfo_filename(k), Some(ko.display().to_string()));
    }

    run_ok(no_signing(Command::new("dpkg").args(["-r", &package])));
    assert!(!ko.exists());
    assert_eq!(modinfo_filename(k), None, "postrm's depmod left it indexed");
    assert!(
        !Path::new(&format!("/lib/modules/{k}/updates/dkms")).exists()
            || fs::read_dir(format!("/lib/modules/{k}/updates/dkms"))
                .unwrap()
                .all(|e| !e.unwrap().file_name().to_string_lossy().contains(OBJECT))
    );
    drop(installed);
}
