//! `dkms-mkdeb -k`: the -dkms package carries prebuilt modules as a dkms tarball under
//! /usr/share/<package>/; it is lintian clean and reproducible, and both dkms-postinst and
//! Debian's common.postinst (with dkms 3.0.10) install the prebuilt module without make.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::scratch::{Scratch, ok, run};

fn mkdeb(source: &Path, out: &Path, kernels: &[&str]) -> PathBuf {
    let mut cmd = support::command(env!("CARGO_BIN_EXE_dkms-mkdeb"));
    cmd.arg("--maintainer")
        .arg("Jane Doe <jane@example.org>")
        .arg("-o")
        .arg(out)
        .env("SOURCE_DATE_EPOCH", "1700000000");
    for k in kernels {
        cmd.args(["-k", k]);
    }
    let stdout = support::run_ok(cmd.arg(source));
    PathBuf::from(stdout.trim())
}

/// A `make` that records it was run and fails: a build that needs it cannot pass.
fn poisoned_make(dir: &Path) -> (PathBuf, PathBuf) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let marker = dir.join("make-was-run");
    std::fs::write(
        bin.join("make"),
        format!("#!/bin/sh\necho \"$@\" >> {}\nexit 99\n", marker.display()),
    )
    .unwrap();
    ok(Command::new("chmod").arg("+x").arg(bin.join("make")));
    (bin, marker)
}

fn path_with(bin: &Path) -> String {
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

#[test]
fn package_with_prebuilt_modules_is_lintian_clean_and_reproducible() {
    let arch = support::arch();
    let Some(kernels) = support::require_kernels(2) else {
        return;
    };
    if !support::require_tool("lintian") || !support::require_tool("dpkg-deb") {
        return;
    }
    let (k1, k2) = (kernels[0].as_str(), kernels[1].as_str());
    let out = tempfile::tempdir().unwrap();
    let a = out.path().join("a");
    let b = out.path().join("b");
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let deb = mkdeb(&support::hello_source(), &a, &[k1, k2]);
    assert_eq!(deb, a.join("hello-dkms_0.1_amd64.deb"));
    let field = |f: &str| support::run_ok(Command::new("dpkg-deb").arg("-f").arg(&deb).arg(f));
    assert_eq!(field("Architecture").trim(), "amd64");
    let contents = support::run_ok(Command::new("dpkg-deb").arg("-c").arg(&deb));
    assert!(
        contents.contains("./usr/share/hello-dkms/hello-0.1.dkms.tar.gz"),
        "{contents}"
    );
    assert!(
        contents.contains("./usr/src/hello-0.1/hello.c"),
        "{contents}"
    );

    // The tarball inside: dkms's binaries-only layout, modules of both kernels, no logs.
    let x = out.path().join("x");
    support::run_ok(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&x));
    let tarball = x.join("usr/share/hello-dkms/hello-0.1.dkms.tar.gz");
    let listing = support::run_ok(Command::new("tar").arg("tzf").arg(&tarball));
    let mut names: Vec<&str> = listing.lines().filter(|l| !l.ends_with('/')).collect();
    names.sort();
    let mut expected = vec![
        "./dkms_binaries_only/PACKAGE_NAME".to_string(),
        "./dkms_binaries_only/PACKAGE_VERSION".to_string(),
        "./dkms_binaries_only/dkms.conf".to_string(),
        format!("./dkms_main_tree/{k1}/{arch}/module/hello.ko"),
        format!("./dkms_main_tree/{k2}/{arch}/module/hello.ko"),
    ];
    expected.sort();
    assert_eq!(names, expected);

    let lintian = Command::new("lintian")
        .args(["-EI", "--pedantic", "--fail-on", "error,warning"])
        .arg(&deb)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&lintian.stdout);
    assert!(lintian.status.success(), "lintian:\n{said}");
    assert!(
        !said
            .lines()
            .any(|l| l.starts_with("E:") || l.starts_with("W:")),
        "{said}"
    );

    // A second build from scratch (another scratch tree, another make run): same bytes.
    let again = mkdeb(&support::hello_source(), &b, &[k1, k2]);
    assert!(
        std::fs::read(&deb).unwrap() == std::fs::read(&again).unwrap(),
        "two dkms-mkdeb -k runs differ"
    );
}

#[test]
fn source_only_package_is_unchanged_by_the_prebuilt_feature() {
    let out = tempfile::tempdir().unwrap();
    let deb = mkdeb(&support::hello_source(), out.path(), &[]);
    assert_eq!(deb, out.path().join("hello-dkms_0.1_all.deb"));
    let contents = support::run_ok(Command::new("dpkg-deb").arg("-c").arg(&deb));
    assert!(!contents.contains("usr/share/hello-dkms"), "{contents}");
}

fn scratch_dirs() -> std::collections::BTreeSet<String> {
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("dkms-mkdeb-build."))
        .collect()
}

#[test]
fn failing_prebuilt_build_names_the_kept_make_log() {
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("broken");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("dkms.conf"),
        "PACKAGE_NAME=\"broken\"\nPACKAGE_VERSION=\"1.0\"\nBUILT_MODULE_NAME[0]=\"broken\"\nDEST_MODULE_LOCATION[0]=\"/updates\"\n",
    )
    .unwrap();
    std::fs::write(src.join("Kbuild"), "obj-m := broken.o\n").unwrap();
    std::fs::write(src.join("broken.c"), "this is not C\n").unwrap();
    let (code, out, err) = run(support::command(env!("CARGO_BIN_EXE_dkms-mkdeb"))
        .arg("--maintainer")
        .arg("Jane Doe <jane@example.org>")
        .arg("-o")
        .arg(dir.path())
        .args(["-k", &kernels[0]])
        .arg(&src));
    assert_eq!(code, 10, "{out}{err}");

    assert_eq!(err.lines().count(), 1, "{err}");
    let log = err
        .split_whitespace()
        .find(|w| w.ends_with("make.log"))
        .unwrap_or_else(|| panic!("no make.log in {err}"));
    assert!(Path::new(log).is_file(), "{log}");
    if let Some(scratch) = log.split("/tree/").next() {
        let _ = std::fs::remove_dir_all(scratch);
    }
    assert!(
        std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .all(|e| !e.file_name().to_string_lossy().ends_with(".deb")),
        "a package was written"
    );
    // A bad dkms.conf (no build started) leaves no scratch tree behind.
    let before = scratch_dirs();
    std::fs::write(src.join("dkms.conf"), "PACKAGE_NAME=\"broken\"\n").unwrap();
    let (code, _, err) = run(support::command(env!("CARGO_BIN_EXE_dkms-mkdeb"))
        .arg("--maintainer")
        .arg("Jane Doe <jane@example.org>")
        .arg("-o")
        .arg(dir.path())
        .args(["-k", &kernels[0]])
        .arg(&src));
    assert_eq!(code, 8, "{err}");
    assert!(scratch_dirs().is_subset(&before), "a scratch tree was left");
}

#[test]
fn dkms_postinst_installs_prebuilt_modules_without_make() {
    let arch = support::arch();
    let Some(kernels) = support::require_kernels(2) else {
        return;
    };
    if !support::require_tool("modinfo") || !support::require_tool("dpkg-deb") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let deb = mkdeb(
        &support::hello_source(),
        work.path(),
        &[&kernels[0], &kernels[1]],
    );
    let root = work.path().join("root");
    support::run_ok(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));

    // The package's files as dpkg leaves them: the source tree is the package's /usr/src.
    let s = Scratch::new(&kernels);
    std::fs::remove_dir(&s.source_tree).unwrap();
    ok(Command::new("cp")
        .arg("-a")
        .arg(root.join("usr/src"))
        .arg(&s.source_tree));
    let (bin, marker) = poisoned_make(work.path());
    // A running kernel that is not installed (a chroot): common.postinst's choice is every
    // kernel of the install tree, so both prebuilt kernels are configured.
    let out = ok(s
        .dkms_postinst(&[
            "configure",
            "hello",
            "0.1",
            "",
            "--running-kernel",
            "5.0.0-999-notinstalled",
        ])
        .env("PATH", path_with(&bin))
        .env("DPKG_MAINTSCRIPT_PACKAGE", "hello-dkms")
        .arg("--tarball-root")
        .arg(root.join("usr/share/hello-dkms")));
    assert!(
        !marker.exists(),
        "make was run: {}\n{out}",
        std::fs::read_to_string(&marker).unwrap_or_default()
    );
    assert!(out.contains("Loading tarball for hello-0.1"), "{out}");
    for k in &kernels {
        let ko = s.installed_module(k, "hello");
        assert!(ko.is_file(), "{} missing\n{out}", ko.display());
        let info = support::run_ok(Command::new("modinfo").arg("-F").arg("vermagic").arg(&ko));
        assert!(info.starts_with(&format!("{k} ")), "{info}");
        assert!(
            !s.dkms_tree
                .join(format!("hello/0.1/{k}/{arch}/log/make.log"))
                .exists()
        );
    }
    let status = ok(&mut s.dkms_rs(&["status"]));
    if support::require_tool("dkms") {
        assert_eq!(ok(&mut s.dkms(&["status"])), status);
    }
    for k in &kernels {
        assert!(
            status.contains(&format!("hello/0.1, {k}, {arch}: installed")),
            "{status}"
        );
    }
    // A second configure is still a no-op (and still no make).
    ok(s.dkms_postinst(&[
        "configure",
        "hello",
        "0.1",
        "",
        "--running-kernel",
        "5.0.0-999-notinstalled",
    ])
    .env("PATH", path_with(&bin))
    .arg("--tarball-root")
    .arg(root.join("usr/share/hello-dkms")));
    assert!(!marker.exists());
}

#[test]
fn debian_common_postinst_loads_the_prebuilt_tarball_too() {
    let arch = support::arch();
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    if !support::require_tool("dkms")
        || !support::require_tool("unshare")
        || !support::require_tool("dpkg-deb")
        || !(Path::new("/usr/lib/dkms/common.postinst").is_file()
            || support::missing("/usr/lib/dkms/common.postinst"))
    {
        return;
    }
    let k1 = kernels[0].as_str();
    let work = tempfile::tempdir().unwrap();
    let deb = mkdeb(&support::hello_source(), work.path(), &[k1]);
    let root = work.path().join("root");
    support::run_ok(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
    let (bin, marker) = poisoned_make(work.path());
    std::fs::write(
        bin.join("uname"),
        format!("#!/bin/sh\n[ \"$1\" = -r ] && echo '{k1}' && exit 0\nexec /bin/uname \"$@\"\n"),
    )
    .unwrap();
    ok(Command::new("chmod").arg("+x").arg(bin.join("uname")));
    let t = work.path();
    for d in ["src-work", "mod-up", "mod-work", "etc", "out"] {
        std::fs::create_dir(t.join(d)).unwrap();
    }
    // The package's /usr/src as the overlay's upper dir; its tarball root passed as dpkg
    // would (the postinst gives /usr/share/<package>; here the unpacked copy of it).
    std::fs::rename(root.join("usr/src"), t.join("src-up")).unwrap();
    let modules = std::fs::canonicalize("/lib/modules").unwrap();
    let script = format!(
        r#"set -e
mount -t tmpfs none /var/lib/dkms
mount --bind {t}/etc /etc/dkms
[ -f /usr/share/debconf/confmodule ] && mount --bind /dev/null /usr/share/debconf/confmodule
mount -t overlay overlay -o lowerdir=/usr/src,upperdir={t}/src-up,workdir={t}/src-work /usr/src
mount -t overlay overlay -o lowerdir={modules},upperdir={t}/mod-up,workdir={t}/mod-work {modules}
export PATH={bin}:$PATH sign_file=/nonexistent/sign-file LC_ALL=C.UTF-8
set +e
sh /usr/lib/dkms/common.postinst hello 0.1 {root}/usr/share/hello-dkms "" "" > {t}/out/log 2>&1
echo $? > {t}/out/rc
dkms status > {t}/out/status
[ -f {modules}/{k1}/updates/dkms/hello.ko ] && echo yes > {t}/out/installed
true
"#,
        t = t.display(),
        bin = bin.display(),
        root = root.display(),
        modules = modules.display(),
    );
    let (code, out, err) =
        run(Command::new("unshare").args(["-m", "--propagation", "private", "sh", "-c", &script]));
    assert_eq!(code, 0, "namespace failed:\n{out}\n{err}");
    let read = |f: &str| std::fs::read_to_string(t.join(f)).unwrap_or_default();
    let log = read("out/log");
    assert_eq!(read("out/rc").trim(), "0", "{log}");
    assert!(log.contains("Loading tarball for hello-0.1"), "{log}");
    assert!(!marker.exists(), "make was run:\n{log}");
    assert_eq!(
        read("out/status"),
        format!("hello/0.1, {k1}, {arch}: installed\n"),
        "{log}"
    );
    assert_eq!(read("out/installed").trim(), "yes", "{log}");
}

#[test]
fn dkms_rs_mkdeb_carries_the_kernels_it_is_told() {
    let arch = support::arch();
    let Some(kernels) = support::require_kernels(2) else {
        return;
    };
    let (k1, k2) = (kernels[0].as_str(), kernels[1].as_str());
    let s = Scratch::new(&kernels);
    s.add_hello_source();
    ok(&mut s.dkms_rs(&["build", "hello/0.1", "-k", k1]));
    let maintainer = ["--maintainer", "Jane Doe <jane@example.org>"];
    // k2 is not built: dkms's "modules must be built" (6), and no package.
    let (code, out, err) = run(s
        .dkms_rs(&["mkdeb", "hello/0.1", "-k", k1, "-k", k2])
        .args(maintainer));
    assert_eq!(code, 6, "{out}{err}");
    // dkms 3.2.2's framing: a blank line, then the one line of the error.
    assert_eq!(err.lines().filter(|l| !l.is_empty()).count(), 1, "{err}");
    let deb_dir = s.dkms_tree.join("hello/0.1/deb");
    assert!(
        std::fs::read_dir(&deb_dir)
            .map(|d| d.count() == 0)
            .unwrap_or(true)
    );
    let out = ok(s.dkms_rs(&["mkdeb", "hello/0.1", "--all"]).args(maintainer));
    let deb = deb_dir.join("hello-dkms_0.1_amd64.deb");
    assert!(out.contains(deb.to_str().unwrap()), "{out}");
    let x = s.dir.path().join("x");
    support::run_ok(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&x));
    let listing = support::run_ok(
        Command::new("tar")
            .arg("tzf")
            .arg(x.join("usr/share/hello-dkms/hello-0.1.dkms.tar.gz")),
    );
    assert!(
        listing.contains(&format!("./dkms_main_tree/{k1}/{arch}/module/hello.ko")),
        "{listing}"
    );
    assert!(!listing.contains(k2), "{listing}");
    // Without -k: the source-only package, as before.
    let out = ok(s.dkms_rs(&["mkdeb", "hello/0.1"]).args(maintainer));
    assert!(out.contains("hello-dkms_0.1_all.deb"), "{out}");

    // mkbmdeb: the module alone, for k1, in <m>/<v>/bmdeb/.
    let out = ok(s
        .dkms_rs(&["mkbmdeb", "hello/0.1", "-k", k1])
        .args(maintainer));
    let bm = s
        .dkms_tree
        .join(format!("hello/0.1/bmdeb/hello-modules-{k1}_0.1_amd64.deb"));
    assert_eq!(out.trim(), bm.display().to_string());
    let contents = support::run_ok(Command::new("dpkg-deb").arg("-c").arg(&bm));
    assert!(
        contents.contains(&format!("./lib/modules/{k1}/updates/dkms/hello.ko")),
        "{contents}"
    );
    let (code, _, err) = run(s
        .dkms_rs(&["mkbmdeb", "hello/0.1", "-k", k2])
        .args(maintainer));
    assert_eq!(code, 6, "{err}");
}

/// `--binaries-only` puts each module where dkms installs it: Debian's dkms 3.0.10, told
/// `ADDON_MODULES_DIR` (which overrides DEST_MODULE_LOCATION), is the oracle for the place.
#[test]
fn binaries_only_package_puts_modules_where_dkms_installs_them() {
    if !support::require_tool("dkms") || !support::require_tool("dpkg-deb") {
        return;
    }
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let k = kernels[0].as_str();
    let addon = "extra/dkms-rs-test";
    let s = Scratch::new(&kernels[..1]);
    s.add_hello_source();
    ok(s.dkms(&[
        "install",
        "-m",
        "hello",
        "-v",
        "0.1",
        "-k",
        k,
        "--no-depmod",
    ])
    .env("ADDON_MODULES_DIR", addon));
    let theirs: Vec<String> = support::scratch::listing(&s.install_tree)
        .into_iter()
        .filter(|p| p.contains(".ko"))
        .map(|p| format!("./lib/modules/{p}"))
        .collect();
    assert_eq!(theirs.len(), 1, "{theirs:?}");
    assert!(theirs[0].contains(addon), "{theirs:?}");

    let out = tempfile::tempdir().unwrap();
    let stdout = support::run_ok(
        support::command(env!("CARGO_BIN_EXE_dkms-mkdeb"))
            .args(["--maintainer", "Jane Doe <jane@example.org>", "-o"])
            .arg(out.path())
            .args(["--binaries-only", "-k", k])
            .arg(support::hello_source())
            .env("ADDON_MODULES_DIR", addon),
    );
    let listing = support::run_ok(Command::new("dpkg-deb").arg("-c").arg(stdout.trim()));
    let ours: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .filter(|p| p.contains(".ko"))
        .collect();
    assert_eq!(ours, theirs);
}
