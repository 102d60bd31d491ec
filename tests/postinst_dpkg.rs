//! The package dkms-mkdeb makes, installed for real with dpkg on a machine where `dkms-postinst`
//! and `dkms-rs` are on PATH: the postinst takes the dkms-postinst branch, the module is built
//! and installed for every kernel with headers (real dkms agrees), a second configure changes
//! nothing, and `dpkg -r` (prerm: `dkms-postinst remove`) takes it all away again. Uses a
//! module name no real package uses, the machine-wide dpkg test lock, and cleans up.

mod support;

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::{hello_source, require_kernels, require_tool, run_ok};

const NAME: &str = "dkmsrstest-hook";
const OBJECT: &str = "dkmsrstest_hook";
const PACKAGE: &str = "dkmsrstest-hook-dkms";

/// Holds the machine-wide lock for dpkg round trips and undoes the install however the test ends.
struct Installed {
    _lock: fs::File,
    path: OsString,
}

impl Installed {
    fn lock(path: OsString) -> Self {
        let lock = fs::File::create("/tmp/dkms-rs-tests-dpkg.lock").unwrap();
        lock.lock().unwrap();
        let this = Installed { _lock: lock, path };
        this.clean();
        this
    }

    /// Remove every trace of the test package, whatever state it is in.
    fn clean(&self) {
        let _ = Command::new("dpkg")
            .args(["--purge", PACKAGE])
            .env("PATH", &self.path)
            .output();
        let _ = Command::new("dkms")
            .args(["remove", &format!("{NAME}/0.1"), "--all"])
            .env("sign_file", "/nonexistent/sign-file")
            .output();
        let _ = fs::remove_dir_all(format!("/var/lib/dkms/{NAME}"));
        let _ = fs::remove_dir_all(format!("/usr/src/{NAME}-0.1"));
        for kernel in fs::read_dir("/lib/modules").into_iter().flatten().flatten() {
            let ko = kernel.path().join(format!("updates/dkms/{OBJECT}.ko"));
            if fs::remove_file(&ko).is_ok() {
                let _ = Command::new("depmod")
                    .arg("-a")
                    .arg(kernel.file_name())
                    .output();
            }
        }
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        self.clean();
    }
}

/// examples/hello renamed so that nothing real is touched: module dkmsrstest_hook.ko.
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

fn module_path(kernel: &str) -> PathBuf {
    PathBuf::from(format!("/lib/modules/{kernel}/updates/dkms/{OBJECT}.ko"))
}

#[test]
fn dpkg_with_dkms_postinst_installs_builds_and_removes_the_module() {
    if !require_tool("dpkg") || !require_tool("dkms") || !require_tool("modinfo") {
        return;
    }
    let Some(kernels) = require_kernels(1) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let src = renamed_hello(dir.path());
    let deb = run_ok(
        Command::new(env!("CARGO_BIN_EXE_dkms-mkdeb"))
            .args(["--maintainer", "dkms-rs tests <dkms-rs@example.org>", "-o"])
            .arg(dir.path())
            .arg(&src),
    );
    let deb = PathBuf::from(deb.trim());
    let path = path_with_binaries(&dir.path().join("bin"));

    let installed = Installed::lock(path.clone());
    let out = run_ok(Command::new("dpkg").arg("-i").arg(&deb).env("PATH", &path));
    // dkms-postinst's lines, not common.postinst's `dkms install` chatter.
    assert!(out.contains(", x86_64: built in "), "{out}");
    assert!(
        !out.contains("Running module version sanity check"),
        "{out}"
    );

    let status = dkms_status();
    let ours = run_ok(Command::new(env!("CARGO_BIN_EXE_dkms-rs")).args(["status", "-m", NAME]));
    assert_eq!(ours, status, "dkms-rs and dkms disagree");
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
                .any(|l| l == format!("{NAME}/0.1, {kernel}, x86_64: installed")),
            "dkms status for {kernel}:\n{status}"
        );
    }

    // A second configure (dpkg-reconfigure, a retried configure) changes nothing.
    let info = |script: &str| format!("/var/lib/dpkg/info/{PACKAGE}.{script}");
    let before: Vec<_> = kernels
        .iter()
        .map(|k| fs::metadata(module_path(k)).unwrap().modified().unwrap())
        .collect();
    let again = run_ok(
        Command::new("sh")
            .arg(info("postinst"))
            .args(["configure", "0.1"])
            .env("PATH", &path),
    );
    assert!(!again.contains("Building initial module"), "{again}");
    assert_eq!(
        dkms_status(),
        status,
        "a second configure changed the state"
    );
    let after: Vec<_> = kernels
        .iter()
        .map(|k| fs::metadata(module_path(k)).unwrap().modified().unwrap())
        .collect();
    assert_eq!(before, after, "a second configure reinstalled the module");

    run_ok(
        Command::new("dpkg")
            .args(["-r", PACKAGE])
            .env("PATH", &path),
    );
    for kernel in &kernels {
        assert!(!module_path(kernel).exists(), "module left for {kernel}");
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
