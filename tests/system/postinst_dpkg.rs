//! The package dkms-mkdeb makes, installed for real with dpkg on a machine where `dkms-postinst`
//! and `dkms-rs` are on PATH: the postinst takes the dkms-postinst branch, the module is built
//! and installed for every kernel with headers (real dkms agrees), a second configure changes
//! nothing, and `dpkg -r` (prerm: `dkms-postinst remove`) takes it all away again. Uses a
//! module name no real package uses, the machine-wide dpkg test lock, and cleans up.

use crate::support;

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::dpkg::{TestModule, no_signing};
use support::{require_kernels, require_tool, run_ok};

const MODULE: TestModule = TestModule {
    name: "dkmsrstest-hook",
    object: "dkmsrstest_hook",
};
const NAME: &str = MODULE.name;
const OBJECT: &str = MODULE.object;
const PACKAGE: &str = "dkmsrstest-hook-dkms";

/// Copies of the built dkms-postinst and dkms-rs in `dir`, and a PATH that finds them first.
fn path_with_binaries(dir: &Path) -> OsString {
    fs::create_dir(dir).unwrap();
    for (name, built) in [
        ("dkms-postinst", env!("CARGO_BIN_EXE_dkms-postinst")),
        ("dkms-rs", env!("CARGO_BIN_EXE_dkms-rs")),
    ] {
        fs::copy(built, dir.join(name)).unwrap();
    }
    let mut dirs = vec![dir.to_path_buf()];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(dirs).unwrap()
}

/// Real dkms's status of the test module (without making MOK keys).
fn dkms_status() -> String {
    run_ok(
        Command::new("dkms")
            .args(["status", "-m", NAME])
            .env("sign_file", "/nonexistent/sign-file"),
    )
}

#[test]
fn dpkg_with_dkms_postinst_installs_builds_and_removes_the_module() {
    let arch = support::arch();
    if !require_tool("dpkg") || !require_tool("dkms") || !require_tool("modinfo") {
        return;
    }
    let Some(kernels) = require_kernels(1) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let src = MODULE.source(dir.path());
    let deb = run_ok(
        support::command(env!("CARGO_BIN_EXE_dkms-mkdeb"))
            .args(["--maintainer", "dkms-rs tests <dkms-rs@example.org>", "-o"])
            .arg(dir.path())
            .arg(&src),
    );
    let deb = PathBuf::from(deb.trim());
    let path = path_with_binaries(&dir.path().join("bin"));

    let installed = MODULE.guard(&[PACKAGE], Some(path.clone()));
    let out = run_ok(no_signing(
        Command::new("dpkg").arg("-i").arg(&deb).env("PATH", &path),
    ));
    // dkms-postinst's lines, not common.postinst's `dkms install` chatter.
    assert!(out.contains("\nBuilding module(s)... done.\n"), "{out}");
    assert!(
        !out.contains("Running module version sanity check"),
        "{out}"
    );

    let status = dkms_status();
    let ours = run_ok(support::command(env!("CARGO_BIN_EXE_dkms-rs")).args(["status", "-m", NAME]));
    assert_eq!(ours, status, "dkms-rs and dkms disagree");
    for kernel in &kernels {
        let ko = MODULE.installed_ko(kernel);
        assert!(
            ko.is_file(),
            "{} missing; dkms status:\n{status}",
            ko.display()
        );
        let vermagic = run_ok(Command::new("modinfo").args(["-F", "vermagic"]).arg(&ko));
        assert!(vermagic.starts_with(&format!("{kernel} ")), "{vermagic}");
        let deps = fs::read_to_string(format!("/lib/modules/{kernel}/modules.dep")).unwrap();
        assert!(
            deps.contains(&format!("updates/dkms/{OBJECT}.ko:")),
            "depmod did not see the module for {kernel}"
        );
        assert!(
            status
                .lines()
                .any(|l| l == format!("{NAME}/0.1, {kernel}, {arch}: installed")),
            "dkms status for {kernel}:\n{status}"
        );
    }

    // A second configure (dpkg-reconfigure, a retried configure) changes nothing.
    let info = |script: &str| format!("/var/lib/dpkg/info/{PACKAGE}.{script}");
    let before: Vec<_> = kernels
        .iter()
        .map(|k| {
            fs::metadata(MODULE.installed_ko(k))
                .unwrap()
                .modified()
                .unwrap()
        })
        .collect();
    let again = run_ok(no_signing(
        Command::new("sh")
            .arg(info("postinst"))
            .args(["configure", "0.1"])
            .env("PATH", &path),
    ));
    assert!(!again.contains("Building initial module"), "{again}");
    assert_eq!(
        dkms_status(),
        status,
        "a second configure changed the state"
    );
    let after: Vec<_> = kernels
        .iter()
        .map(|k| {
            fs::metadata(MODULE.installed_ko(k))
                .unwrap()
                .modified()
                .unwrap()
        })
        .collect();
    assert_eq!(before, after, "a second configure reinstalled the module");

    run_ok(no_signing(
        Command::new("dpkg")
            .args(["-r", PACKAGE])
            .env("PATH", &path),
    ));
    for kernel in &kernels {
        assert!(
            !MODULE.installed_ko(kernel).exists(),
            "module left for {kernel}"
        );
        let deps = fs::read_to_string(format!("/lib/modules/{kernel}/modules.dep")).unwrap();
        assert!(
            !deps.contains(OBJECT),
            "modules.dep of {kernel} still names it"
        );
    }
    assert_eq!(dkms_status(), "");
    assert!(!Path::new(&format!("/usr/src/{NAME}-0.1")).exists());
    assert!(!Path::new(&format!("/var/lib/dkms/{NAME}")).exists());
    drop(installed);
}
