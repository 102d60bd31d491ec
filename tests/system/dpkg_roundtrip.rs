//! The package dkms-mkdeb makes, installed for real with dpkg on a machine that has Debian's
//! dkms: the module is built and installed for every kernel with headers, and `dpkg -r` takes
//! it all away again. Uses a module name no real package uses, and cleans up after itself.

use crate::support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::cargo::cargo_bin;
use support::dpkg::{TestModule, no_signing};
use support::{require_kernels, require_tool, run_ok};

const MODULE: TestModule = TestModule {
    name: "dkmsrstest-hello",
    object: "dkmsrstest_hello",
};
const NAME: &str = MODULE.name;
const OBJECT: &str = MODULE.object;
const PACKAGE: &str = "dkmsrstest-hello-dkms";

fn dkms_status() -> String {
    run_ok(Command::new("dkms").args(["status", "-m", NAME]))
}

#[test]
fn dpkg_installs_builds_and_removes_the_module() {
    if !require_tool("dpkg") || !require_tool("dkms") || !require_tool("modinfo") {
        return;
    }
    let Some(kernels) = require_kernels(1) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let src = MODULE.source(dir.path());
    let deb = run_ok(
        support::command(cargo_bin("dkms-mkdeb"))
            .args(["--maintainer", "dkms-rs tests <dkms-rs@example.org>", "-o"])
            .arg(dir.path())
            .arg(&src),
    );
    let deb = PathBuf::from(deb.trim());

    let installed = MODULE.guard(&[PACKAGE], None);
    run_ok(no_signing(Command::new("dpkg").arg("-i").arg(&deb)));

    let status = dkms_status();
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
                .any(|l| l.starts_with(&format!("{NAME}/0.1, {kernel}, "))
                    && l.ends_with(": installed")),
            "dkms status for {kernel}:\n{status}"
        );
    }

    // Arguments the scripts do not handle change nothing.
    let info = |script: &str| format!("/var/lib/dpkg/info/{PACKAGE}.{script}");
    run_ok(no_signing(
        Command::new("sh")
            .arg(info("postinst"))
            .arg("abort-upgrade"),
    ));
    run_ok(no_signing(
        Command::new("sh")
            .arg(info("prerm"))
            .args(["failed-upgrade", "0.1"]),
    ));
    assert_eq!(
        dkms_status(),
        status,
        "an unhandled argument changed the state"
    );

    // The maintainer scripts are safe to run twice.
    run_ok(no_signing(
        Command::new("sh")
            .arg(info("postinst"))
            .args(["configure", "0.1"]),
    ));
    assert_eq!(
        dkms_status(),
        status,
        "a second configure changed the state"
    );
    run_ok(no_signing(
        Command::new("sh").arg(info("prerm")).arg("remove"),
    ));
    run_ok(no_signing(
        Command::new("sh").arg(info("prerm")).arg("remove"),
    ));
    assert_eq!(dkms_status().trim(), "", "prerm left the module registered");

    run_ok(no_signing(Command::new("dpkg").args(["-r", PACKAGE])));
    for kernel in &kernels {
        assert!(
            !MODULE.installed_ko(kernel).exists(),
            "module left for {kernel}"
        );
    }
    assert!(!Path::new(&format!("/usr/src/{NAME}-0.1")).exists());
    assert!(!Path::new(&format!("/var/lib/dkms/{NAME}")).exists());
    drop(installed);
}
