//! Scratch dkms trees for the core tests: temp `--dkmstree/--sourcetree/--installtree`,
//! the real `dkms-rs` binary and the real dkms 3.0.10 run against the same tree.
#![allow(dead_code)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

#[allow(unused_imports)]
pub use super::{run, run_ok as ok};

/// A temp dir holding `tree/`, `src/`, `lib/modules/<k>/` for each kernel and `etc/`, the
/// `/etc/dkms` of the tools run on it: nothing of the host's dkms configuration is read.
pub struct Scratch {
    pub dir: tempfile::TempDir,
    pub dkms_tree: PathBuf,
    pub source_tree: PathBuf,
    pub install_tree: PathBuf,
    pub etc_dir: PathBuf,
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
            // The kernel's headers where dkms 3.2.2 and dkms-rs look, under the install tree.
            let headers = Path::new("/lib/modules").join(k).join("build");
            if headers.is_dir() {
                std::os::unix::fs::symlink(&headers, install_tree.join(k).join("build"))
                    .expect("build link");
            }
        }
        std::fs::create_dir_all(&dkms_tree).expect("dkms tree");
        std::fs::create_dir_all(&source_tree).expect("source tree");
        let etc_dir = dir.path().join("etc");
        std::fs::create_dir_all(&etc_dir).expect("etc dir");
        // Signing tool and MOK pair in the scratch, where there are none: modules are not
        // signed, and neither tool reads (or, dkms, creates) the host's /var/lib/dkms/mok.*.
        // Builds as root (dkms's way) even where the engine package made its build user:
        // the scratch is a 0700 temp dir (tests/core/build_user.rs opens it for one).
        let d = dir.path().display();
        std::fs::write(
            etc_dir.join("framework.conf"),
            format!(
                "# dkms-rs tests: the scratch tree's framework.conf\n\
                 sign_file=\"{d}/no-sign-file\"\nmok_signing_key=\"{d}/mok.key\"\n\
                 mok_certificate=\"{d}/mok.pub\"\n\
                 build_user=root\n"
            ),
        )
        .expect("framework.conf");
        Scratch {
            dir,
            dkms_tree,
            source_tree,
            install_tree,
            etc_dir,
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

    /// `dkms-rs <args> <tree options> --etcdir <etc>`, in the scratch dir, with a cleared
    /// environment ([`super::command`]).
    pub fn dkms_rs(&self, args: &[&str]) -> Command {
        self.ours(env!("CARGO_BIN_EXE_dkms-rs"), args)
    }

    /// `dkms-postinst <args> <tree options> --etcdir <etc>`, as [`Scratch::dkms_rs`].
    pub fn dkms_postinst(&self, args: &[&str]) -> Command {
        self.ours(env!("CARGO_BIN_EXE_dkms-postinst"), args)
    }

    fn ours(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = super::command(program);
        cmd.args(args)
            .args(self.tree_args())
            .arg("--etcdir")
            .arg(&self.etc_dir)
            .current_dir(self.dir.path());
        cmd
    }

    /// The real dkms 3.0.10 on the same tree, in the scratch dir, with a cleared environment.
    /// It has no option for its /etc/dkms: as root it runs in a private mount namespace
    /// where the scratch `etc/` is bind-mounted there. Otherwise it reads the host's, and
    /// `sign_file` in the environment (dkms keeps it when framework.conf sets none) still
    /// keeps it from making a MOK pair in /var/lib/dkms.
    pub fn dkms(&self, args: &[&str]) -> Command {
        let mut cmd = if is_root() {
            let mut cmd = super::command("unshare");
            cmd.args(["-m", "--propagation", "private", "sh", "-c"])
                .arg("mount --bind \"$0\" /etc/dkms && exec /usr/sbin/dkms \"$@\"")
                .arg(&self.etc_dir);
            cmd
        } else {
            let mut cmd = super::command("/usr/sbin/dkms");
            cmd.env("sign_file", self.dir.path().join("no-sign-file"));
            cmd
        };
        cmd.args(args)
            .args(self.tree_args())
            .current_dir(self.dir.path());
        cmd
    }

    /// `dkms ARGS <tree options>` by Debian's dkms 3.2.2 extracted at `reference`
    /// ([`super::dkms_3_2_2`]) on the same tree, in a private mount namespace where the
    /// scratch `etc/` is its /etc/dkms (root only).
    pub fn dkms_3_2_2(&self, reference: &Path, args: &[&str]) -> Command {
        let mut cmd = super::command("unshare");
        cmd.args(["-m", "--propagation", "private", "sh", "-c"])
            .arg("etc=$1 dkms=$2; shift 2; mount --bind \"$etc\" /etc/dkms && exec bash \"$dkms\" \"$@\"")
            .arg("sh")
            .arg(&self.etc_dir)
            .arg(reference.join("usr/sbin/dkms"))
            .args(args)
            .args(self.tree_args())
            .current_dir(self.dir.path());
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

/// What [`Scratch::dkms_rs_on_small_fs`] saw: the command's exit code and output, and the
/// small file system's entries just before and just after it (`<path> f <size>` for files,
/// `<path> <type>` for the rest, sorted), taken inside the namespace: the tmpfs is gone after.
#[derive(Debug)]
pub struct SmallFsRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub before: Vec<String>,
    pub after: Vec<String>,
}

impl Scratch {
    /// `dkms-rs <args>` (as [`Scratch::dkms_rs`]) in a private mount namespace (`unshare -m`,
    /// as root) where the scratch directory `at` (one of its trees) is a tmpfs of `size`
    /// (`mount -o size=`) holding a copy of what `at` held: a disk that fills up under the
    /// command. What `at` holds outside the namespace is not changed.
    pub fn dkms_rs_on_small_fs(&self, at: &Path, size: &str, args: &[&str]) -> SmallFsRun {
        let work = tempfile::tempdir().expect("temp dir");
        let saved = work.path().join("saved");
        std::fs::create_dir(&saved).expect("saved dir");
        let script = r#"set -e
saved=$1 at=$2 size=$3 out=$4; shift 4
cp -a "$at/." "$saved/"
mount -t tmpfs -o "size=$size" dkms-rs-test "$at"
cp -a "$saved/." "$at/"
list() { find "$at" -mindepth 1 \( -type f -printf '%P f %s
' \) -o -printf '%P %y
' | LC_ALL=C sort; }
list >"$out/before"
set +e
"$@" >"$out/stdout" 2>"$out/stderr"
echo $? >"$out/code"
list >"$out/after"
"#;
        let cmd = self.dkms_rs(args);
        let mut unshare = super::command("unshare");
        unshare
            .args(["-m", "--propagation", "private", "sh", "-c", script, "sh"])
            .arg(&saved)
            .arg(at)
            .arg(size)
            .arg(work.path())
            .arg(cmd.get_program())
            .args(cmd.get_args())
            .current_dir(self.dir.path());
        ok(&mut unshare);
        let read = |name: &str| {
            std::fs::read_to_string(work.path().join(name))
                .unwrap_or_else(|e| panic!("{name} of the small-fs run: {e}"))
        };
        let lines = |name: &str| read(name).lines().map(str::to_owned).collect();
        SmallFsRun {
            code: read("code").trim().parse().expect("exit code"),
            stdout: read("stdout"),
            stderr: read("stderr"),
            before: lines("before"),
            after: lines("after"),
        }
    }
}

/// Whether this process runs as root (the real dkms is then given the scratch /etc/dkms).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A module body that loads and unloads cleanly.
pub const TRIVIAL: &str = "static int __init m_init(void) { return 0; }\nstatic void __exit m_exit(void) {}\nmodule_init(m_init);\nmodule_exit(m_exit);\n";

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

/// How many builds finished in a job run's output (dkms 3.2.2's `Building module(s)... done.`
/// line each).
pub fn built_lines(out: &str) -> usize {
    out.lines()
        .filter(|l| *l == "Building module(s)... done.")
        .count()
}

impl Scratch {
    /// Builds in this scratch as `user` from now on (framework.conf's `build_user`, the last
    /// assignment winning over [`Scratch::new`]'s `root`), the scratch dir (a 0700 temp dir)
    /// opened for it.
    pub fn set_build_user(&self, user: &str) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(self.dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("scratch dir mode");
        let conf = self.etc_dir.join("framework.conf");
        let text = std::fs::read_to_string(&conf).expect("framework.conf");
        std::fs::write(&conf, format!("{text}build_user={user}\n")).expect("framework.conf");
    }

    /// A module `<name>-1.0` (AUTOINSTALL) that says who runs its code: its PRE_BUILD
    /// (`who.sh pre`), its make (`make KDIR=$kernel_source_dir`, a Makefile that then runs
    /// kbuild) and its POST_BUILD (`who.sh post`) each print `who-<step>: uid=<id -u>
    /// user=<id -un> dir=<stat -c %U of its cwd, the build dir>` into make.log; the Makefile
    /// first tries (`-touch`, a failure not failing it) to create `outside`, a path outside
    /// the build dir.
    pub fn write_identity_module(&self, name: &str, outside: &Path) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let dir = self.write_module(
            name,
            "1.0",
            "AUTOINSTALL=\"yes\"\nMAKE[0]=\"make KDIR=${kernel_source_dir}\"\n\
             PRE_BUILD=\"who.sh pre\"\nPOST_BUILD=\"who.sh post\"\n",
            TRIVIAL,
        );
        let who = dir.join("who.sh");
        std::fs::write(
            &who,
            "#!/bin/sh\necho \"who-$1: uid=$(id -u) user=$(id -un) dir=$(stat -c %U .)\"\n",
        )
        .expect("who.sh");
        std::fs::set_permissions(&who, std::fs::Permissions::from_mode(0o755)).expect("who.sh");
        std::fs::write(
            dir.join("Makefile"),
            format!(
                "all:\n\
                 \t@echo \"who-make: uid=$$(id -u) user=$$(id -un) dir=$$(stat -c %U .)\"\n\
                 \t-touch '{}'\n\
                 \t$(MAKE) -C '$(KDIR)' M=\"$$PWD\" modules\n",
                outside.display()
            ),
        )
        .expect("Makefile");
        dir
    }

    /// The make.log kept with the build of `<m>/<v>` for `kernel` (this machine's arch).
    pub fn kept_make_log(&self, mv: &str, kernel: &str) -> String {
        let log = self
            .dkms_tree
            .join(mv)
            .join(kernel)
            .join(super::arch())
            .join("log/make.log");
        std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()))
    }

    /// The lines of a make.log that [`Scratch::write_identity_module`]'s steps printed, in order.
    pub fn identity_lines(log: &str) -> Vec<&str> {
        log.lines()
            .filter(|l| {
                ["who-pre: ", "who-make: ", "who-post: "]
                    .iter()
                    .any(|p| l.starts_with(p))
            })
            .collect()
    }

    /// `dkms-rs status --format json` and `--format plain` of this tree, each record as
    /// `[module, version, kernel, arch, state]` (`None` where absent): the json read by
    /// serde_json, the plain split at its tabs (`-` absent), the two lists equal.
    pub fn status_records(&self) -> Vec<[Option<String>; 5]> {
        let json = super::run_ok(&mut self.dkms_rs(&["status", "--format", "json"]));
        let doc: serde_json::Value = serde_json::from_str(&json).expect("one JSON document");
        let fields = ["module", "version", "kernel", "arch", "state"];
        let from_json: Vec<[Option<String>; 5]> = doc
            .as_array()
            .expect("a JSON array")
            .iter()
            .map(|o| fields.map(|f| o[f].as_str().map(str::to_owned)))
            .collect();
        let plain = super::run_ok(&mut self.dkms_rs(&["status", "--format", "plain"]));
        let from_plain: Vec<[Option<String>; 5]> = plain
            .lines()
            .map(|line| {
                let v: Vec<&str> = line.split('\t').collect();
                assert_eq!(v.len(), 10, "{line:?}");
                [0, 1, 2, 3, 4].map(|i| Some(v[i].to_owned()).filter(|s| s != "-"))
            })
            .collect();
        assert_eq!(from_plain, from_json, "plain:\n{plain}\njson:\n{json}");
        from_json
    }

    /// What a build of [`Scratch::write_identity_module`]'s `who/1.0` for `k` as `user` left
    /// (started by any of the tools): the kept make.log's PRE_BUILD, make and POST_BUILD
    /// lines are `user`'s (uid and name as `id` says, the build dir `user`'s), the stored and
    /// installed `who.ko` are root's, depmod ran, and `status --format json|plain` say
    /// `installed` for `k`, as the text status of dkms-rs and of dkms 3.2.2 do. Returns the
    /// kept make.log.
    pub fn assert_who_built_as(&self, k: &str, user: &str) -> String {
        use std::os::unix::fs::MetadataExt;
        let log = self.kept_make_log("who/1.0", k);
        let id = |flag: &str| {
            super::run_ok(Command::new("id").args([flag, user]))
                .trim()
                .to_owned()
        };
        let (uid, name) = (id("-u"), id("-un"));
        let who = format!("uid={uid} user={name} dir={name}");
        assert_eq!(
            Scratch::identity_lines(&log),
            [
                format!("who-pre: {who}"),
                format!("who-make: {who}"),
                format!("who-post: {who}")
            ],
            "{log}"
        );
        let arch = super::arch();
        let stored = self
            .dkms_tree
            .join(format!("who/1.0/{k}/{arch}/module/who.ko"));
        for file in [stored, self.installed_module(k, "who")] {
            let meta =
                std::fs::metadata(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            assert_eq!((meta.uid(), meta.gid()), (0, 0), "{}", file.display());
        }
        let dep = std::fs::read_to_string(self.install_tree.join(k).join("modules.dep")).unwrap();
        assert!(
            dep.contains("updates/dkms/who.ko:"),
            "depmod did not run: {dep}"
        );
        assert_eq!(
            self.status_records(),
            [["who", "1.0", k, &arch, "installed"].map(|f| Some(f.to_owned()))],
            "status records"
        );
        let line = format!("who/1.0, {k}, {arch}: installed\n");
        assert_eq!(
            super::run_ok(&mut self.dkms_rs(&["status"])),
            line,
            "dkms-rs's text status"
        );
        if let Some(reference) = super::dkms_3_2_2() {
            assert_eq!(
                super::run_ok(&mut self.dkms_3_2_2(&reference, &["status"])),
                line,
                "dkms 3.2.2's status"
            );
        }
        log
    }
}
