//! A real Debian 12 target machine: a bookworm chroot made by mmdebstrap (`.ci/target-chroot`,
//! cached under /var/cache/dkms-rs-tests/target/) with build-essential and the headers of two
//! kernel flavours. Two copies of it live side by side through the same steps, done with apt
//! and dpkg as an admin does them:
//!
//! - the **engine**: `dkms-rs` (built from `debian/` by [`debian_packages::built`]) installed
//!   with apt from a local repository (a `file:` source made by apt-ftparchive);
//! - the **reference**: Debian's own dkms 3.0.10 from the archive.
//!
//! On each: unmodified -dkms packages from Debian's archive, built with Debian's dh_dkms, and
//! one made by dkms-mkdeb, install and build for every kernel with headers; `apt-get install`
//! of a third kernel flavour's headers builds them all for it (the kernel hooks), removing that
//! kernel takes its modules out, and `apt-get purge` leaves no trace. The reference's
//! `dkms status` and module files are the oracle for the engine's at every step. The reference
//! also goes over to the engine and back (dpkg's Replaces: no rebuild), and the engine passes
//! Debian's own autopkgtest for -dkms packages (`/usr/lib/dkms/dkms-autopkgtest`).

use crate::debian_packages;
use crate::support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::{require_tool, run, run_ok};

/// Debian's -dkms packages the machines install from the archive: built by dh_dkms, each
/// with its own dkms.conf style (acpi-call: one module; v4l2loopback: sources its version;
/// bbswitch; tp-smapi: three modules).
const ARCHIVE_PACKAGES: [&str; 4] = [
    "acpi-call-dkms",
    "v4l2loopback-dkms",
    "bbswitch-dkms",
    "tp-smapi-dkms",
];

/// The package dkms-mkdeb makes of examples/hello.
const MKDEB_PACKAGE: &str = "hello-dkms";

/// A copy of the target machine, its steps run in a chroot with a private mount namespace
/// (its /proc, /dev and apt cache mounts vanish with the command).
pub(crate) struct Machine {
    name: &'static str,
    root: tempfile::TempDir,
    /// The host's dir bound on the chroot's /var/cache/apt/archives: packages are downloaded
    /// once per machine, not once per run.
    archives: PathBuf,
}

impl Machine {
    /// A copy of the machine with the flat apt repository `repo` (its files) as a `file:`
    /// source.
    fn new(name: &'static str, tarball: &Path, cache: &Path, repo: &Path) -> Machine {
        let machine = Machine::bare(name, tarball, cache);
        let srv = machine.root.path().join("srv/repo");
        std::fs::create_dir_all(&srv).unwrap();
        for entry in std::fs::read_dir(repo).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, srv.join(path.file_name().unwrap())).unwrap();
        }
        machine.add_source("local", "deb [trusted=yes] file:/srv/repo ./");
        machine
    }

    /// A copy of the machine as `.ci/target-chroot` made it, its downloads kept in
    /// `<cache>/archives-<name>`.
    pub(crate) fn bare(name: &'static str, tarball: &Path, cache: &Path) -> Machine {
        // DKMS_RS_KEEP_TARGET=1 keeps the machines' trees, to look at after a failure.
        let root = tempfile::Builder::new()
            .prefix(&format!("target-{name}-"))
            .disable_cleanup(std::env::var_os("DKMS_RS_KEEP_TARGET").is_some())
            .tempdir()
            .unwrap();
        run_ok(
            Command::new("tar")
                .args(["-x", "--same-owner", "-p", "-f"])
                .arg(tarball)
                .arg("-C")
                .arg(root.path()),
        );
        let archives = cache.join(format!("archives-{name}"));
        std::fs::create_dir_all(archives.join("partial")).unwrap();
        std::fs::copy("/etc/resolv.conf", root.path().join("etc/resolv.conf")).unwrap();
        Machine {
            name,
            root,
            archives,
        }
    }

    /// The machine's root directory, seen from the host.
    pub(crate) fn root(&self) -> &Path {
        self.root.path()
    }

    /// `line` as the apt source list `/etc/apt/sources.list.d/<name>.list`.
    pub(crate) fn add_source(&self, name: &str, line: &str) {
        std::fs::write(
            self.root
                .path()
                .join(format!("etc/apt/sources.list.d/{name}.list")),
            format!("{line}\n"),
        )
        .unwrap();
    }

    /// `script` run by `sh -e` as root in the chroot: (exit code, stdout, stderr).
    pub(crate) fn sh(&self, script: &str) -> (i32, String, String) {
        let mut cmd = support::command("unshare");
        cmd.args(["-m", "--propagation", "private", "sh", "-ec"])
            .arg(concat!(
                "mount -t proc proc \"$0/proc\"; ",
                "mount --rbind /dev \"$0/dev\"; ",
                "mount --bind \"$1\" \"$0/var/cache/apt/archives\"; ",
                "exec chroot \"$0\" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin ",
                "HOME=/root LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive sh -ec \"$2\"",
            ))
            .arg(self.root.path())
            .arg(&self.archives)
            .arg(script);
        run(&mut cmd)
    }

    /// [`Machine::sh`] that must succeed; its stdout.
    pub(crate) fn ok(&self, script: &str) -> String {
        let (code, out, err) = self.sh(script);
        assert!(
            code == 0,
            "{}: `{script}` exits {code}:\n{out}\n{err}",
            self.name
        );
        out
    }

    pub(crate) fn apt(&self, args: &str) -> String {
        self.ok(&format!(
            "apt-get -y -q -o Dpkg::Use-Pty=0 --no-install-recommends {args} 2>&1"
        ))
    }

    /// The lines `script` prints, sorted.
    fn sorted_lines(&self, script: &str) -> Vec<String> {
        let mut lines: Vec<String> = self.ok(script).lines().map(str::to_owned).collect();
        lines.sort();
        lines
    }

    /// `dkms status`, sorted (dkms 3.0.10 sorts by module, then version; the engine too, but
    /// the comparison is of the lines, not their order).
    fn status(&self) -> Vec<String> {
        self.sorted_lines("dkms status")
    }

    /// The kernel releases with headers (`/lib/modules/*/build`), as dkms sees them.
    fn kernels(&self) -> Vec<String> {
        self.sorted_lines(
            "for b in /lib/modules/*/build; do [ -d \"$b\" ] && basename \"${b%/build}\" || true; done",
        )
    }

    /// Every kernel release in /lib/modules, with headers or not.
    fn releases(&self) -> Vec<String> {
        self.sorted_lines("ls /lib/modules")
    }

    /// Every file and directory under /lib/modules/*/updates, with the modinfo vermagic of
    /// each module: where dkms installed what, built against which kernel.
    fn module_files(&self) -> BTreeMap<String, String> {
        self.ok(concat!(
            "find /lib/modules/*/updates 2>/dev/null | sort | while read -r f; do ",
            "if [ -f \"$f\" ]; then echo \"$f $(modinfo -F vermagic \"$f\" | cut -d' ' -f1)\"; ",
            "else echo \"$f\"; fi; done",
        ))
        .lines()
        .map(|l| match l.split_once(' ') {
            Some((path, vermagic)) => (path.to_owned(), vermagic.to_owned()),
            None => (l.to_owned(), String::new()),
        })
        .collect()
    }

    /// Inode, size and mtime of each module file: unchanged when no rebuild happened.
    fn module_stamps(&self) -> String {
        self.ok("find /lib/modules/*/updates -type f -printf '%p %i %s %T@\\n' | sort")
    }
}

/// The target machine's tarball (made once by `.ci/target-chroot`) and the cache dir its
/// machines keep their downloads in.
pub(crate) fn target_tarball() -> (PathBuf, PathBuf) {
    let cache = std::env::var_os("DKMS_RS_TEST_CACHE")
        .map_or_else(|| PathBuf::from("/var/cache/dkms-rs-tests"), PathBuf::from)
        .join("target");
    let mut make =
        support::command(Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/target-chroot"));
    if let Some(cache) = std::env::var_os("DKMS_RS_TEST_CACHE") {
        make.env("DKMS_RS_TEST_CACHE", cache);
    }
    (PathBuf::from(run_ok(&mut make).trim()), cache)
}

/// The state both machines must agree on after a step, and that the reference's own
/// consistency is checked on.
#[derive(Debug, Clone, PartialEq)]
struct Snapshot {
    status: Vec<String>,
    files: BTreeMap<String, String>,
}

fn snapshot(machine: &Machine) -> Snapshot {
    Snapshot {
        status: machine.status(),
        files: machine.module_files(),
    }
}

/// Each `dkms status` line `name/version, kernel, arch: state` as (name, kernel, state).
fn status_entries(status: &[String]) -> Vec<(String, String, String)> {
    status
        .iter()
        .map(|line| {
            let (head, state) = line
                .rsplit_once(": ")
                .unwrap_or_else(|| panic!("status line {line:?}"));
            let mut parts = head.split(", ");
            let name = parts.next().unwrap().split('/').next().unwrap().to_owned();
            let kernel = parts.next().unwrap_or_default().to_owned();
            (name, kernel, state.to_owned())
        })
        .collect()
}

/// Every module of `modules` is installed for each of `kernels`, but where its dkms.conf
/// restricts the kernels it builds for (`BUILD_EXCLUSIVE_*`: v4l2loopback needs V4L2, which
/// the cloud flavour lacks), and then it is at least installed for one; every line of
/// `dkms status` is `installed` (with the suffix of a module the kernel has a newer copy of); every module file under `updates/` was built for the kernel
/// it is installed for (modinfo's vermagic).
fn assert_all_installed(who: &str, snap: &Snapshot, modules: &Modules, kernels: &[String]) {
    let entries = status_entries(&snap.status);
    for (module, exclusive) in &modules.0 {
        let on: Vec<&String> = kernels
            .iter()
            .filter(|kernel| {
                entries
                    .iter()
                    .any(|(m, k, s)| m == module && k == *kernel && s.starts_with("installed"))
            })
            .collect();
        assert!(
            on.len() == kernels.len() || (*exclusive && !on.is_empty()),
            "{who}: {module} is installed for {on:?} of {kernels:?}:\n{}",
            snap.status.join("\n")
        );
    }
    assert!(
        entries
            .iter()
            .all(|(_, _, state)| state.starts_with("installed")),
        "{who}: a module is not installed:\n{}",
        snap.status.join("\n")
    );
    let kos: Vec<_> = snap
        .files
        .iter()
        .filter(|(path, _)| path.contains(".ko"))
        .collect();
    for kernel in kernels {
        assert!(
            kos.iter()
                .any(|(path, _)| path.starts_with(&format!("/lib/modules/{kernel}/"))),
            "{who}: no module file for {kernel}: {kos:?}"
        );
    }
    for (path, vermagic) in kos {
        let kernel = path.split('/').nth(3).unwrap();
        assert_eq!(vermagic, kernel, "{who}: {path} was built for {vermagic}");
    }
}

/// `reference` with what dkms 3.2.2 installs and 3.0.10 does not: a module file that the
/// kernel has a copy of, when neither copy has a version or a srcversion and their bytes
/// differ (3.2.2's check_version_sanity compares them by `diff`; 3.0.10 refuses any equal
/// versions, and says "Diff between built and installed module" in the status). Each such
/// file of the engine's is checked to be that case (modinfo in the engine's chroot), and its
/// module's status line taken as the engine's.
fn with_unversioned_twins(
    machine: &Machine,
    engine: &Snapshot,
    mut reference: Snapshot,
) -> Snapshot {
    let extra: Vec<&String> = engine
        .files
        .keys()
        .filter(|path| path.contains(".ko") && !reference.files.contains_key(*path))
        .collect();
    for path in extra {
        let kernel = path.split('/').nth(3).unwrap();
        let file = Path::new(path.as_str())
            .file_name()
            .unwrap()
            .to_string_lossy();
        let theirs = machine.ok(&format!(
            "find /lib/modules/{kernel}/kernel -name '{file}' -o -name '{file}.*' | head -n 2"
        ));
        let theirs: Vec<&str> = theirs.lines().collect();
        assert_eq!(
            theirs.len(),
            1,
            "engine installed {path}; the kernel's: {theirs:?}"
        );
        for f in [path.as_str(), theirs[0]] {
            let info = machine.ok(&format!(
                "modinfo -F version {f}; modinfo -F srcversion {f}"
            ));
            assert!(info.trim().is_empty(), "{f} has a version: {info}");
        }
        let same = machine.sh(&format!("cmp -s {path} {}", theirs[0])).0 == 0;
        assert!(!same, "{path} is the kernel's own {}", theirs[0]);
        reference
            .files
            .insert(path.clone(), engine.files[path].clone());
        // Its module's status line for that kernel is the engine's, suffix and all.
        let dir = Path::new(path.as_str())
            .parent()
            .unwrap()
            .display()
            .to_string();
        let owner = machine.ok(&format!(
            "for l in /var/lib/dkms/*/kernel-{kernel}-*; do \
             m=$(readlink -f \"$l\"); [ -e \"$m/module/{file}\" ] && basename \"$(dirname \"$l\")\"; done; true"
        ));
        let owner = owner.trim();
        assert!(
            !owner.is_empty(),
            "no dkms module holds {file} for {kernel} (dir {dir})"
        );
        let ours = |status: &[String]| {
            status.iter().position(|l| {
                l.starts_with(&format!("{owner}/")) && l.contains(&format!(", {kernel}, "))
            })
        };
        if let (Some(i), Some(j)) = (ours(&reference.status), ours(&engine.status)) {
            reference.status[i] = engine.status[j].clone();
        }
    }
    reference.status.sort();
    reference
}

fn assert_same(step: &str, engine: &Snapshot, reference: &Snapshot) {
    assert_eq!(
        engine, reference,
        "after {step}, the engine's dkms status and module files (left) are not Debian's dkms's (right)"
    );
}

/// What a -dkms package purge must not leave: /var/lib/dkms (but the MOK key pair), the
/// sources in /usr/src (but the kernel headers), anything under /lib/modules/*/updates.
fn leftovers(machine: &Machine) -> String {
    machine.ok(concat!(
        "find /var/lib/dkms -mindepth 1 ! -name mok.key ! -name mok.pub; ",
        "find /usr/src -mindepth 1 -maxdepth 1 ! -name 'linux-headers-*' ! -name 'linux-kbuild-*'; ",
        "find /lib/modules/*/updates 2>/dev/null || true",
    ))
}

/// The local repository both machines install from: the engine, the packager's tools, and
/// dkms-mkdeb's package of examples/hello.
fn local_repo(dir: &Path, built: &debian_packages::Built) -> PathBuf {
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    for deb in [&built.engine, &built.tools] {
        std::fs::copy(deb, repo.join(deb.file_name().unwrap())).unwrap();
    }
    run_ok(
        support::command(env!("CARGO_BIN_EXE_dkms-mkdeb"))
            .args(["--maintainer", "dkms-rs tests <tests@example.org>", "-o"])
            .arg(&repo)
            .arg(support::hello_source()),
    );
    let packages = run_ok(
        Command::new("apt-ftparchive")
            .arg("packages")
            .arg(".")
            .current_dir(&repo),
    );
    std::fs::write(repo.join("Packages"), packages).unwrap();
    repo
}

/// The dkms modules the packages installed: PACKAGE_NAME of each /usr/src/*/dkms.conf, read
/// by bash as dkms-autopkgtest reads it, and whether the file has a `BUILD_EXCLUSIVE_`
/// directive.
#[derive(Debug, PartialEq)]
struct Modules(Vec<(String, bool)>);

fn module_names(machine: &Machine) -> Modules {
    let mut names: Vec<(String, bool)> = machine
        .ok(concat!(
            "for c in /usr/src/*/dkms.conf; do ",
            "n=$(bash -c \". $c >/dev/null; echo \\$PACKAGE_NAME\"); ",
            "if grep -q BUILD_EXCLUSIVE_ \"$c\"; then echo \"$n exclusive\"; else echo \"$n\"; fi; done",
        ))
        .lines()
        .map(|l| match l.strip_suffix(" exclusive") {
            Some(name) => (name.to_owned(), true),
            None => (l.to_owned(), false),
        })
        .collect();
    names.sort();
    Modules(names)
}

/// Run `f` on both machines at once; both results.
fn both<T: Send>(
    engine: &Machine,
    reference: &Machine,
    f: impl Fn(&Machine) -> T + Sync,
) -> (T, T) {
    std::thread::scope(|s| {
        let e = s.spawn(|| f(engine));
        let r = f(reference);
        (e.join().unwrap(), r)
    })
}

#[test]
fn debian_dkms_packages_live_through_the_kernel_lifecycle_on_the_engine_as_on_dkms() {
    if !support::scratch::is_root() && !support::missing("root (chroot, mounts)") {
        return;
    }
    for tool in ["mmdebstrap", "unshare", "chroot", "tar", "apt-ftparchive"] {
        if !require_tool(tool) {
            return;
        }
    }
    let Some(built) = debian_packages::built() else {
        return;
    };
    let (tarball, cache) = target_tarball();
    let scratch = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let repo = local_repo(scratch.path(), built);
    let engine = Machine::new("engine", &tarball, &cache, &repo);
    let reference = Machine::new("reference", &tarball, &cache, &repo);

    // The dkms of each side, then the -dkms packages: their postinst builds and installs for
    // every kernel with headers (the chroot has two flavours).
    engine.apt("update");
    reference.apt("update");
    let packages = format!("{} {MKDEB_PACKAGE}", ARCHIVE_PACKAGES.join(" "));
    both(&engine, &reference, |m| {
        let dkms = if m.name == "engine" {
            "dkms-rs"
        } else {
            "dkms"
        };
        m.apt(&format!("install {dkms}"));
        m.apt(&format!("install {packages}"))
    });
    let kernels = reference.kernels();
    assert!(kernels.len() >= 2, "the target has headers of {kernels:?}");
    assert_eq!(engine.kernels(), kernels);
    let modules = module_names(&reference);
    assert_eq!(module_names(&engine), modules);
    assert!(
        modules.0.len() > ARCHIVE_PACKAGES.len(),
        "modules of {packages}: {modules:?}"
    );
    let (e, r) = both(&engine, &reference, snapshot);
    assert_all_installed("dkms", &r, &modules, &kernels);
    assert_all_installed("engine", &e, &modules, &kernels);
    assert_same(&format!("apt-get install {packages}"), &e, &r);
    // The (module, kernel) pairs Debian's dkms did not build (BUILD_EXCLUSIVE): what
    // dkms-autopkgtest must skip (exit 77), and nothing else.
    let excluded = modules.0.len() * kernels.len() - r.status.len();

    // Another flavour: its image first (as apt unpacks `linux-image-X linux-headers-X`: the
    // postinst.d hook finds no headers and builds nothing), then its headers: the
    // header_postinst.d hook builds everything for it, with no command from the user. Then
    // the removal of both (prerm.d: the modules go, and no directory of that kernel is left).
    // The image before the headers, because 3.0.10 and 3.2.2 differ the other way round:
    // 3.2.2's kernel_preinst (which the engine follows) unbuilds what the headers built.
    // Where they differ then: tp_smapi's hdaps.ko beside the rt image's own, neither with a
    // version (see with_unversioned_twins, and tests/core/original.rs against 3.2.2).
    let arch = built.arch.as_str();
    let image = format!("linux-image-rt-{arch}");
    both(&engine, &reference, |m| m.apt(&format!("install {image}")));
    let releases = reference.releases();
    let new: Vec<&String> = releases.iter().filter(|k| !kernels.contains(k)).collect();
    assert_eq!(new.len(), 1, "{image} added {new:?} to {kernels:?}");
    let rt = new[0].clone();
    assert_eq!(engine.releases(), releases);
    assert_eq!(engine.kernels(), kernels, "{rt} has no headers yet");
    let (e, r) = both(&engine, &reference, snapshot);
    assert_same(&format!("apt-get install {image}"), &e, &r);
    let headers = format!("linux-headers-{rt}");
    both(&engine, &reference, |m| {
        m.apt(&format!("install {headers}"))
    });
    let with_rt = reference.kernels();
    assert_eq!(with_rt.len(), kernels.len() + 1, "{with_rt:?}");
    assert_eq!(engine.kernels(), with_rt);
    let (e, r) = both(&engine, &reference, snapshot);
    assert_all_installed("dkms", &r, &modules, &with_rt);
    assert_all_installed("engine", &e, &modules, &with_rt);
    let r = with_unversioned_twins(&engine, &e, r);
    assert_same(&format!("apt-get install {headers}"), &e, &r);

    both(&engine, &reference, |m| {
        m.apt(&format!("purge linux-image-{rt} {headers} {image}"))
    });
    let (e, mut r) = both(&engine, &reference, snapshot);
    assert_all_installed("engine", &e, &modules, &kernels);
    // 3.0.10's prerm.d hook removes only the modules whose status is exactly `installed`
    // (its `read` puts a suffix in the state): it leaves tp_smapi (hdaps skipped, "Diff between
    // built and installed") for the removed kernel. 3.2.2's kernel_prerm, the engine's, takes
    // every module out. That leftover, and only it, is not the engine's to match.
    let (gone, kept): (Vec<String>, Vec<String>) = r
        .status
        .drain(..)
        .partition(|line| line.contains(&format!(", {rt}, ")));
    r.status = kept;
    assert!(
        gone.iter().all(|line| line.contains(": installed (")),
        "dkms 3.0.10 left for the removed {rt}:\n{}",
        gone.join("\n")
    );
    r.files
        .retain(|path, _| !path.starts_with(&format!("/lib/modules/{rt}/")));
    assert_same(&format!("apt-get purge linux-image-{rt}"), &e, &r);
    assert!(
        !status_entries(&e.status).iter().any(|(_, k, _)| *k == rt),
        "engine: {rt} is gone, its modules are still in dkms status:\n{}",
        e.status.join("\n")
    );
    let left = engine.ok(&format!(
        "ls -d /lib/modules/{rt} /var/lib/dkms/*/*/{rt} /var/lib/dkms/*/kernel-{rt}-* 2>/dev/null || true"
    ));
    assert!(left.is_empty(), "engine: {rt} removed, left:\n{left}");

    // Debian's dkms replaced by the engine and back: the same tree and the same module files
    // (inode, size, mtime: nothing rebuilt), and each one's `dkms status` reads the other's.
    let stamps = reference.module_stamps();
    let before = snapshot(&reference);
    // (package, what /usr/sbin/dkms then is)
    for (package, dkms) in [("dkms-rs", "/usr/bin/dkms-rs"), ("dkms", "/usr/sbin/dkms")] {
        reference.apt(&format!("install {package}"));
        let now = reference.ok("readlink -f /usr/sbin/dkms");
        assert_eq!(now.trim(), dkms, "{package} installed");
        // The same states; the suffix words are each tool's own (3.2.2's for the engine).
        let words = |snap: Snapshot| Snapshot {
            status: snap
                .status
                .iter()
                .map(|l| {
                    support::suffixes_of_3_2_2(&format!("{l}\n"))
                        .trim_end()
                        .to_owned()
                })
                .collect(),
            files: snap.files,
        };
        assert_eq!(
            words(snapshot(&reference)),
            words(before.clone()),
            "{package} replaced the other"
        );
        assert_eq!(
            reference.module_stamps(),
            stamps,
            "modules rebuilt when {package} replaced the other"
        );
    }
    // The engine's preinst.d hook, a conffile Debian 12's dkms does not have, stays: with
    // that dkms (no kernel_preinst) it says and does nothing.
    let preinst = reference.ok(&format!(
        "sh /etc/kernel/preinst.d/dkms {} 2>&1",
        kernels[0]
    ));
    assert!(
        preinst.is_empty(),
        "preinst.d/dkms under dkms 3.0.10:\n{preinst}"
    );
    assert_eq!(
        reference.module_stamps(),
        stamps,
        "preinst.d/dkms under dkms 3.0.10"
    );

    // Debian's autopkgtest for -dkms packages (from Debian's dkms, the host's copy: the
    // engine's machine has no Debian dkms), run against the engine.
    std::fs::copy(
        "/usr/lib/dkms/dkms-autopkgtest",
        engine.root.path().join("root/dkms-autopkgtest"),
    )
    .unwrap();
    let (code, out, err) = engine.sh(&format!(
        "sh /root/dkms-autopkgtest {} 2>&1",
        ARCHIVE_PACKAGES.join(" ")
    ));
    assert!(code == 0, "dkms-autopkgtest exits {code}:\n{out}{err}");
    let summary: Vec<&str> = out
        .lines()
        .filter(|l| {
            l.starts_with("I: PASS ") || l.starts_with("I: FAIL ") || l.starts_with("I: SKIP ")
        })
        .collect();
    assert_eq!(
        summary.len(),
        ARCHIVE_PACKAGES.len() * kernels.len(),
        "dkms-autopkgtest summary:\n{out}"
    );
    let skipped = summary.iter().filter(|l| l.starts_with("I: SKIP ")).count();
    assert!(
        summary
            .iter()
            .all(|l| l.starts_with("I: PASS ") || l.starts_with("I: SKIP "))
            && skipped == excluded,
        "dkms-autopkgtest (Debian's dkms left out {excluded} module/kernel pairs):\n{out}"
    );

    // Purge every -dkms package: nothing left but the MOK key pair.
    both(&engine, &reference, |m| m.apt(&format!("purge {packages}")));
    let (e, r) = both(&engine, &reference, snapshot);
    assert_same(&format!("apt-get purge {packages}"), &e, &r);
    assert!(e.status.is_empty(), "engine status: {:?}", e.status);
    let left = leftovers(&engine);
    assert!(left.is_empty(), "engine: purged, left:\n{left}");
}
