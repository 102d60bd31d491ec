//! dpkg round trips, which install for real: a renamed copy of examples/hello that no real
//! package uses, and a guard that holds the machine-wide lock of these tests and removes every
//! trace of the test module (packages, dkms tree, /usr/src, installed .ko) however a test ends.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One lock for every test that runs dpkg: the dpkg database is the machine's.
const LOCK: &str = "/tmp/dkms-rs-tests-dpkg.lock";

/// A module named so that nothing real is touched: PACKAGE_NAME `name`, `<object>.ko`,
/// version 0.1.
#[derive(Debug, Clone, Copy)]
pub struct TestModule {
    pub name: &'static str,
    pub object: &'static str,
}

impl TestModule {
    /// examples/hello under `dir/<name>`, renamed.
    pub fn source(&self, dir: &Path) -> PathBuf {
        let (name, object) = (self.name, self.object);
        let src = dir.join(name);
        fs::create_dir(&src).unwrap();
        let hello = super::hello_source();
        fs::copy(hello.join("hello.c"), src.join(format!("{object}.c"))).unwrap();
        let makefile = fs::read_to_string(hello.join("Makefile")).unwrap();
        fs::write(
            src.join("Makefile"),
            makefile.replace("obj-m := hello.o", &format!("obj-m := {object}.o")),
        )
        .unwrap();
        let conf = fs::read_to_string(hello.join("dkms.conf"))
            .unwrap()
            .replace(
                "PACKAGE_NAME=\"hello\"",
                &format!("PACKAGE_NAME=\"{name}\""),
            )
            .replace(
                "BUILT_MODULE_NAME[0]=\"hello\"",
                &format!("BUILT_MODULE_NAME[0]=\"{object}\""),
            );
        fs::write(src.join("dkms.conf"), conf).unwrap();
        src
    }

    /// Where dkms puts the module for `kernel` on this machine.
    pub fn installed_ko(&self, kernel: &str) -> PathBuf {
        PathBuf::from(format!(
            "/lib/modules/{kernel}/updates/dkms/{}.ko",
            self.object
        ))
    }

    /// Take the lock (waiting for other dpkg tests), clean up what a crashed run may have
    /// left, and clean up again when the guard drops. `packages` are purged with `path` as
    /// PATH when given (so maintainer scripts find the binaries under test).
    pub fn guard(&self, packages: &[&str], path: Option<OsString>) -> DpkgGuard {
        let guard = DpkgGuard {
            _lock: hold_lock(),
            module: *self,
            packages: packages.iter().map(|p| p.to_string()).collect(),
            path,
        };
        guard.clean();
        guard
    }
}

/// The dpkg tests' lock alone (waiting for them), for a test that installs nothing but runs
/// what reads the machine's dpkg or debconf databases: Debian's common.postinst sources
/// debconf's confmodule, which fails while a dpkg run of those tests holds config.dat.
pub fn hold_lock() -> fs::File {
    let lock = fs::File::create(LOCK).unwrap();
    lock.lock().unwrap();
    lock
}

/// The dpkg tests' lock shared (waiting while one of them runs; with other sharers at once),
/// for a test whose mount namespace lays overlays on the machine's /usr or /lib/modules:
/// a dpkg run changing those lower dirs under a mounted overlay would change what it sees.
pub fn share_lock() -> fs::File {
    let lock = fs::File::create(LOCK).unwrap();
    lock.lock_shared().unwrap();
    lock
}

/// Held while a test installs for real; see [`TestModule::guard`].
pub struct DpkgGuard {
    _lock: fs::File,
    module: TestModule,
    packages: Vec<String>,
    path: Option<OsString>,
}

impl DpkgGuard {
    fn clean(&self) {
        let name = self.module.name;
        for package in &self.packages {
            let mut purge = Command::new("dpkg");
            purge.args(["--purge", package]);
            if let Some(path) = &self.path {
                purge.env("PATH", path);
            }
            let _ = no_signing(&mut purge).output();
        }
        let _ = no_signing(Command::new("dkms").args(["remove", &format!("{name}/0.1"), "--all"]))
            .output();
        let _ = fs::remove_dir_all(format!("/var/lib/dkms/{name}"));
        let _ = fs::remove_dir_all(format!("/usr/src/{name}-0.1"));
        for kernel in fs::read_dir("/lib/modules").into_iter().flatten().flatten() {
            let kernel = kernel.file_name().to_string_lossy().into_owned();
            if fs::remove_file(self.module.installed_ko(&kernel)).is_ok() {
                let _ = Command::new("depmod").args(["-a", &kernel]).output();
            }
        }
    }
}

impl Drop for DpkgGuard {
    fn drop(&mut self) {
        self.clean();
    }
}

/// dkms 3.0.10 (as 3.2.2 and dkms-rs) makes a MOK key pair in /var/lib/dkms to sign with
/// when there is none: not on a test run. (A `sign_file` that is not there turns signing off;
/// dkms-rs, as dkms, takes it from the environment when framework.conf sets none.)
pub fn no_signing(cmd: &mut Command) -> &mut Command {
    cmd.env("sign_file", "/nonexistent/sign-file")
}
