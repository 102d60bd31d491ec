//! Scratch dkms trees for the core tests: temp `--dkmstree/--sourcetree/--installtree`,
//! the real `dkms-rs` binary and the real dkms 3.0.10 run against the same tree.
#![allow(dead_code)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A temp dir holding `tree/`, `src/` and `lib/modules/<k>/` for each kernel.
pub struct Scratch {
    pub dir: tempfile::TempDir,
    pub dkms_tree: PathBuf,
    pub source_tree: PathBuf,
    pub install_tree: PathBuf,
    pub kernels: Vec<String>,
}

impl Scratch {
    pub fn new(kernels: &[String]) -> Scratch {
        let dir = tempfile::tempdir().expect("temp dir");
        let dkms_tree = dir.path().join("tree");
        let source_tree = dir.path().join("src");
        let install_tree = dir.path().join("lib/modules");
        for k in kernels {
            std::fs::create_dir_all(install_tree.join(k)).expect("install tree");
        }
        std::fs::create_dir_all(&dkms_tree).expect("dkms tree");
        std::fs::create_dir_all(&source_tree).expect("source tree");
        Scratch {
            dir,
            dkms_tree,
            source_tree,
            install_tree,
            kernels: kernels.to_vec(),
        }
    }

    pub fn tree_args(&self) -> Vec<OsString> {
        vec![
            "--dkmstree".into(),
            self.dkms_tree.clone().into(),
            "--sourcetree".into(),
            self.source_tree.clone().into(),
            "--installtree".into(),
            self.install_tree.clone().into(),
        ]
    }

    /// `dkms-rs <args> <tree options>`.
    pub fn dkms_rs(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dkms-rs"));
        cmd.args(args).args(self.tree_args());
        cmd
    }

    /// The real dkms on the same tree. `sign_file` pointing nowhere keeps dkms from making
    /// a MOK key in /var/lib/dkms (it reads the variable through its framework.conf sourcing).
    pub fn dkms(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("/usr/sbin/dkms");
        cmd.args(args)
            .args(self.tree_args())
            .env("sign_file", "/nonexistent/sign-file")
            .env("LC_ALL", "C.UTF-8");
        cmd
    }

    /// The seed's hello module as `<src>/hello-0.1`.
    pub fn add_hello_source(&self) -> PathBuf {
        let dest = self.source_tree.join("hello-0.1");
        let status = Command::new("cp")
            .arg("-r")
            .arg(crate::support::hello_source())
            .arg(&dest)
            .status()
            .expect("cp");
        assert!(status.success());
        dest
    }

    /// A small module `<name>-<version>` with a Kbuild file and dkms.conf (dkms's default make).
    pub fn write_module(
        &self,
        name: &str,
        version: &str,
        conf_extra: &str,
        c_body: &str,
    ) -> PathBuf {
        let dir = self.source_tree.join(format!("{name}-{version}"));
        std::fs::create_dir_all(&dir).expect("module dir");
        std::fs::write(dir.join("Kbuild"), format!("obj-m := {name}.o\n")).expect("Kbuild");
        std::fs::write(
            dir.join(format!("{name}.c")),
            format!(
                "#include <linux/module.h>\n{c_body}\nMODULE_LICENSE(\"GPL\");\nMODULE_VERSION(\"{version}\");\n"
            ),
        )
        .expect("c");
        std::fs::write(
            dir.join("dkms.conf"),
            format!(
                "PACKAGE_NAME=\"{name}\"\nPACKAGE_VERSION=\"{version}\"\nBUILT_MODULE_NAME[0]=\"{name}\"\nDEST_MODULE_LOCATION[0]=\"/updates\"\n{conf_extra}"
            ),
        )
        .expect("dkms.conf");
        dir
    }

    /// [`Scratch::write_module`], then `dkms-rs add <name>/<version>`.
    pub fn add_module(&self, name: &str, version: &str, conf_extra: &str, c_body: &str) {
        self.write_module(name, version, conf_extra, c_body);
        ok(&mut self.dkms_rs(&["add", &format!("{name}/{version}")]));
    }

    /// Where dkms (Debian's `/updates/dkms` override) installs module `name` for `kernel`.
    pub fn installed_module(&self, kernel: &str, name: &str) -> PathBuf {
        self.install_tree
            .join(kernel)
            .join("updates/dkms")
            .join(format!("{name}.ko"))
    }
}

/// A module body that loads and unloads cleanly.
pub const TRIVIAL: &str = "static int __init m_init(void) { return 0; }\nstatic void __exit m_exit(void) {}\nmodule_init(m_init);\nmodule_exit(m_exit);\n";

/// Run, returning (exit code, stdout, stderr).
pub fn run(cmd: &mut Command) -> (i32, String, String) {
    let out: Output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Run and require success.
pub fn ok(cmd: &mut Command) -> String {
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{cmd:?} failed\nstdout:\n{out}\nstderr:\n{err}");
    out
}

/// Files (and links) under a directory, relative, sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .flatten()
        .map(|e| {
            e.path()
                .strip_prefix(dir)
                .unwrap_or(e.path())
                .display()
                .to_string()
        })
        .collect();
    v.sort();
    v
}

/// How many builds finished in a job run's output (one `<m>/<v>, <k>, <a>: built in N s`
/// line each).
pub fn built_lines(out: &str) -> usize {
    out.lines().filter(|l| l.contains(": built in")).count()
}
