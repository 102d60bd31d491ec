//! framework.conf's `build_user`: the module's code (cp, patches, scripts, make, strip) runs
//! as that user, and the result is what a root build gives. `nobody` is the user: real, on
//! every Debian machine, and owning nothing. Root only (the tests switch users).

use crate::support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use support::scratch::{Scratch, is_root, ok};

/// Root, and kernel headers; `None` (a skip, a failure under CI) without them.
fn setup() -> Option<Vec<String>> {
    if !is_root() {
        support::missing("root (the build switches to the build user)");
        return None;
    }
    support::require_kernels(1)
}

/// Builds in `s` as `user` from now on ([`Scratch::set_build_user`]).
fn build_as(s: &Scratch, user: &str) {
    s.set_build_user(user);
}

/// Every entry under `dir` but `skip` and the tree's lock file (`<path> <size> <mtime>`, dirs
/// by name, links not followed), sorted. The lock file is dkms-rs's own: a command that takes
/// the lock empties its `clean` mark, and a failed one leaves it empty.
fn listing(dir: &Path, skip: &Path) -> Vec<String> {
    let mut out: Vec<String> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_entry(|e| e.path() != skip && e.file_name() != ".dkms-rs.lock")
        .flatten()
        .map(|e| {
            let m = e.path().symlink_metadata().unwrap();
            use std::os::unix::fs::MetadataExt;
            if m.is_dir() {
                // A dir's mtime moves when the build dir in it is made again.
                format!("{} dir", e.path().display())
            } else {
                format!(
                    "{} {} {}.{}",
                    e.path().display(),
                    m.len(),
                    m.mtime(),
                    m.mtime_nsec()
                )
            }
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_build_as_nobody_is_byte_identical_to_a_root_build() {
    let Some(kernels) = setup() else { return };
    let k = kernels[0].as_str();
    let arch = support::arch();
    let s = Scratch::new(&kernels);
    s.add_hello_source();
    ok(&mut s.dkms_rs(&["add", "hello/0.1"]));
    // One path for both builds: the build ID hashes the debug info, which names the build dir.
    let built = s
        .dkms_tree
        .join(format!("hello/0.1/{k}/{arch}/module/hello.ko"));
    ok(&mut s.dkms_rs(&["build", "hello/0.1", "-k", k]));
    let by_root = s.dir.path().join("by-root.ko");
    std::fs::copy(&built, &by_root).unwrap();
    ok(&mut s.dkms_rs(&["unbuild", "hello/0.1", "-k", k]));
    build_as(&s, "nobody");
    ok(&mut s.dkms_rs(&["build", "hello/0.1", "-k", k]));
    ok(std::process::Command::new("cmp").arg(&by_root).arg(&built));
    // Stored by root: the tree's files are root's, whoever built.
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&built).unwrap().uid(), 0);
}

#[test]
fn a_makefile_cannot_write_outside_its_build_dir() {
    let Some(kernels) = setup() else { return };
    let k = kernels[0].as_str();
    let s = Scratch::new(&kernels);
    s.add_hello_source();
    ok(&mut s.dkms_rs(&["add", "hello/0.1"]));
    let marker = "/etc/dkms-rs-build-user-test";
    let other = s.dkms_tree.join("hello/0.1/planted");
    let install = s.install_tree.join(k).join("planted");
    let dir = s.source_tree.join("evil-1");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("dkms.conf"),
        "PACKAGE_NAME=evil\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME[0]=evil\nDEST_MODULE_LOCATION[0]=/updates\nMAKE[0]=\"make\"\n",
    )
    .unwrap();
    // Each write is tried (`-`), then the build fails as a Makefile that needs them would.
    std::fs::write(
        dir.join("Makefile"),
        format!(
            "all:\n\tid -u\n\t-touch {marker}\n\t-touch {}\n\t-touch {}\n\tfalse\n",
            other.display(),
            install.display()
        ),
    )
    .unwrap();
    ok(&mut s.dkms_rs(&["add", "evil/1"]));
    build_as(&s, "nobody");
    let build_dir = s.dkms_tree.join("evil/1/build");
    let before = listing(s.dir.path(), &build_dir);
    let (code, out, err) = support::run(&mut s.dkms_rs(&["build", "evil/1", "-k", k]));
    assert_eq!(code, 10, "{out}{err}");
    let log = std::fs::read_to_string(build_dir.join("make.log")).unwrap();
    assert!(log.contains("\n65534\n"), "make ran as nobody:\n{log}");
    for target in [
        marker.to_string(),
        other.display().to_string(),
        install.display().to_string(),
    ] {
        assert!(
            log.contains(&format!(
                "touch: cannot touch '{target}': Permission denied"
            )),
            "{target}:\n{log}"
        );
    }
    assert!(!Path::new(marker).exists());
    assert_eq!(listing(s.dir.path(), &build_dir), before);
}

#[test]
fn a_build_user_that_does_not_exist_is_one_line_naming_framework_conf() {
    let Some(kernels) = setup() else { return };
    let k = kernels[0].as_str();
    let s = Scratch::new(&kernels);
    s.add_hello_source();
    ok(&mut s.dkms_rs(&["add", "hello/0.1"]));
    build_as(&s, "no-such-user-dkms-rs");
    let (code, out, err) = support::run(&mut s.dkms_rs(&["build", "hello/0.1", "-k", k]));
    assert_eq!(code, 1, "{out}{err}");
    let conf = s.etc_dir.join("framework.conf");
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("build_user")).collect();
    assert_eq!(
        lines,
        [format!(
            "Error! {}: build_user=no-such-user-dkms-rs: no such user",
            conf.display()
        )],
        "{out}{err}"
    );
    // Refused before the source is copied (`add` made the build dir, empty).
    let build_dir = s.dkms_tree.join("hello/0.1/build");
    assert_eq!(std::fs::read_dir(build_dir).unwrap().count(), 0);
    assert!(!s.dkms_tree.join("hello/0.1").join(k).exists());
}

/// The small modules of the conf corpus (each builds in seconds, with no dependency on
/// other modules): openafs, lttng, dahdi and the other large ones take minutes each, too
/// slow for every run. `DKMS_RS_BUILD_USER_CORPUS=all` builds all of them.
const SMALL: [&str; 6] = [
    "vpoll-dkms",
    "acpi-call-dkms",
    "bbswitch-dkms",
    "librem-ec-acpi-dkms",
    "lime-forensics-dkms",
    "tp-smapi-dkms",
];

/// Add and build each source in a fresh scratch (as `user`, unless `None`); for each, the
/// build's exit code and the stored module files' names.
fn build_all(kernels: &[String], sources: &[&Path], user: Option<&str>) -> Vec<(i32, Vec<String>)> {
    let k = kernels[0].as_str();
    let s = Scratch::new(kernels);
    if let Some(user) = user {
        build_as(&s, user);
    }
    sources
        .iter()
        .map(|source| {
            let name = source.file_name().unwrap();
            let dest = s.source_tree.join(name);
            ok(std::process::Command::new("cp")
                .arg("-a")
                .arg(source)
                .arg(&dest));
            let added = ok(&mut s.dkms_rs(&["add", dest.to_str().unwrap()]));
            // "Creating symlink <tree>/<m>/<v>/source -> ...": the module and version.
            let link = added
                .split_whitespace()
                .find(|w| w.ends_with("/source"))
                .unwrap_or_else(|| panic!("{added}"));
            let rel = Path::new(link)
                .strip_prefix(&s.dkms_tree)
                .unwrap()
                .parent()
                .unwrap();
            let mv = rel.display().to_string();
            let (code, _, _) = support::run(&mut s.dkms_rs(&["build", &mv, "-k", k]));
            let module_dir = s
                .dkms_tree
                .join(rel)
                .join(k)
                .join(support::arch())
                .join("module");
            (code, support::file_names(&module_dir))
        })
        .collect()
}

#[test]
fn debian_sources_build_as_nobody_as_they_build_as_root() {
    let Some(kernels) = setup() else { return };
    let Some(corpus) = support::dkms_conf_corpus() else {
        return;
    };
    let all = std::env::var("DKMS_RS_BUILD_USER_CORPUS").is_ok_and(|v| v == "all");
    let mut sources: Vec<&Path> = corpus
        .iter()
        .filter(|(pkg, _)| all || SMALL.contains(&pkg.as_str()))
        .map(|(_, conf)| conf.parent().unwrap())
        .collect();
    sources.dedup();
    assert!(all || sources.len() == SMALL.len(), "{sources:?}");
    let by_root = build_all(&kernels, &sources, None);
    let by_nobody = build_all(&kernels, &sources, Some("nobody"));
    let built = by_root.iter().filter(|(code, _)| *code == 0).count();
    assert!(built > 0, "nothing built: {by_root:?}");
    for ((source, root), nobody) in sources.iter().zip(&by_root).zip(&by_nobody) {
        eprintln!(
            "{}: as root {root:?}, as nobody {nobody:?}",
            source.display()
        );
        assert_eq!(root, nobody, "{}", source.display());
    }
}

/// The kernel postinst.d hook (hooks/etc/kernel/postinst.d/dkms, as a kernel image package
/// runs it: the kernel release as $1, `dkms` from PATH: dkms-rs on a scratch tree building
/// as `user`) on the first kernel with headers, with the identity module `who` added:
/// `kernel_postinst` builds it with its PRE_BUILD, make and POST_BUILD run as `user` in a
/// build dir it owns (`id` and `stat` in the module's steps say so in the kept make.log),
/// and installs it as root; `status --format json|plain` say `installed` for the kernel, as
/// dkms 3.2.2's text `status` on the same tree does. Returns the make.log and the path the
/// whether the Makefile's write outside its build dir made the file.
fn hook_builds_as(user: &str) -> Option<(String, bool)> {
    let kernels = setup()?;
    let k = kernels[0].as_str();
    let s = Scratch::new(&kernels[..1]);
    build_as(&s, user);
    let outside = s.dir.path().join("written-by-make");
    s.write_identity_module("who", &outside);
    ok(&mut s.dkms_rs(&["add", "who/1.0"]));
    let bin = s.dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let tree: Vec<String> = s
        .tree_args()
        .iter()
        .chain([&"--etcdir".into(), &s.etc_dir.clone().into_os_string()])
        .map(|a| format!("'{}'", a.to_string_lossy()))
        .collect();
    std::fs::write(
        bin.join("dkms"),
        format!(
            "#!/bin/sh\nexec '{}' \"$@\" {}\n",
            env!("CARGO_BIN_EXE_dkms-rs"),
            tree.join(" ")
        ),
    )
    .unwrap();
    std::fs::set_permissions(bin.join("dkms"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let hook = Path::new(env!("CARGO_MANIFEST_DIR")).join("hooks/etc/kernel/postinst.d/dkms");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let (code, out, err) = support::run(
        support::command(&hook)
            .arg(k)
            .env("PATH", path)
            .current_dir(s.dir.path()),
    );
    assert_eq!(code, 0, "{out}\n{err}");

    let log = s.assert_who_built_as(k, user);
    // The scratch (and `outside` in it) goes with `s`: whether make wrote there is said now.
    Some((log, outside.exists()))
}

#[test]
fn the_kernel_hook_builds_as_the_build_user_and_installs_as_root() {
    let Some((log, wrote)) = hook_builds_as("nobody") else {
        return;
    };
    assert!(!wrote, "make wrote outside its build dir:\n{log}");
    let denied: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.starts_with("touch: cannot touch '")
                && l.ends_with("/written-by-make': Permission denied")
        })
        .collect();
    assert_eq!(denied.len(), 1, "{log}");
}

#[test]
fn the_kernel_hook_with_build_user_root_builds_as_root() {
    let Some((log, wrote)) = hook_builds_as("root") else {
        return;
    };
    assert!(
        wrote,
        "root's make could write outside its build dir, and did not:\n{log}"
    );
}
