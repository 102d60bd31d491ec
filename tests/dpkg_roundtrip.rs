//! The package dkms-mkdeb makes, installed for real with dpkg on a machine that has Debian's
//! dkms: the module is built and installed for every kernel with headers, and `dpkg -r` takes
//! it all away again. Uses a module name no real package uses, and cleans up after itself.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::cargo::cargo_bin;
use support::{hello_source, require_kernels, require_tool, run_ok};

const NAME: &str = "dkmsrstest-hello";
const OBJECT: &str = "dkmsrstest_hello";
const PACKAGE: &str = "dkmsrstest-hello-dkms";

/// Holds the machine-wide lock for dpkg round trips and undoes the install however the test ends.
struct Installed {
    _lock: fs::File,
}

impl Installed {
    fn lock() -> Self {
        let lock = fs::File::create("/tmp/dkms-rs-tests-dpkg.lock").unwrap();
        lock.lock().unwrap();
        let this = Installed { _lock: lock };
        this.clean();
        this
    }

    /// Remove every trace of the test package, whatever state it is in.
    fn clean(&self) {
        let _ = Command::new("dpkg").args(["--purge", PACKAGE]).output();
        let _ = Command::new("dkms")
            .args(["remove", &format!("{NAME}/0.1"), "--all"])
            .output();
        let _ = fs::remove_dir_all(format!("/var/lib/dkms/{NAME}"));
        let _ = fs::remove_dir_all(format!("/usr/src/{NAME}-0.1"));
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        self.clean();
    }
}

/// examples/hello renamed so that nothing real is touched: module dkmsrstest_hello.ko.
fn renamed_hello(dir: &Path) -> PathBuf {
    let src = dir.join(NAME);
    fs::create_dir(&src).unwrap();
    let hello = hello_source();
    fs::copy(hello.join("hello.c"), src.join(format!("{OBJECT}.c"))).unwrap();
    let makefile = fs::read_to_string(hello.join("Makefile")).unwrap();
    fs::write(
        src.join("Makefile"),
        makefile.replace("obj-m := hello.o", &format!("obj-m := {OBJECT}.o")),
    )
    .unwrap();
    let conf = fs::read_to_string(hello.join("dkms.conf")).unwrap();
    fs::write(
        src.join("dkms.conf"),
        conf.replace(
            "PACKAGE_NAME=\"hello\"",
            &format!("PACKAGE_NAME=\"{NAME}\""),
        )
        .replace(
            "BUILT_MODULE_NAME[0]=\"hello\"",
            &format!("BUILT_MODULE_NAME[0]=\"{OBJECT}\""),
        ),
    )
    .unwrap();
    src
}

fn dkms_status() -> String {
    run_ok(Command::new("dkms").args(["status", "-m", NAME]))
}

fn module_path(kernel: &str) -> PathBuf {
    PathBuf::from(format!("/lib/modules/{kernel}/updates/dkms/{OBJECT}.ko"))
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
    let src = renamed_hello(dir.path());
    let deb = run_ok(
        Command::new(cargo_bin("dkms-mkdeb"))
            .args(["--maintainer", "dkms-rs tests <dkms-rs@example.org>", "-o"])
            .arg(dir.path())
            .arg(&src),
    );
    let deb = PathBuf::from(deb.trim());

    let installed = Installed::lock();
    run_ok(Command::new("dpkg").arg("-i").arg(&deb));

    let status = dkms_status();
    for kernel in &kernels {
        let ko = module_path(kernel);
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
    run_ok(
        Command::new("sh")
            .arg(info("postinst"))
            .arg("abort-upgrade"),
    );
    run_ok(
        Command::new("sh")
            .arg(info("prerm"))
            .args(["failed-upgrade", "0.1"]),
    );
    assert_eq!(
        dkms_status(),
        status,
        "an unhandled argument changed the state"
    );

    // The maintainer scripts are safe to run twice.
    run_ok(
        Command::new("sh")
            .arg(info("postinst"))
            .args(["configure", "0.1"]),
    );
    assert_eq!(
        dkms_status(),
        status,
        "a second configure changed the state"
    );
    run_ok(Command::new("sh").arg(info("prerm")).arg("remove"));
    run_ok(Command::new("sh").arg(info("prerm")).arg("remove"));
    assert_eq!(dkms_status().trim(), "", "prerm left the module registered");

    run_ok(Command::new("dpkg").args(["-r", PACKAGE]));
    for kernel in &kernels {
        assert!(!module_path(kernel).exists(), "module left for {kernel}");
    }
    assert!(!Path::new(&format!("/usr/src/{NAME}-0.1")).exists());
    assert!(!Path::new(&format!("/var/lib/dkms/{NAME}")).exists());
    drop(installed);
}
