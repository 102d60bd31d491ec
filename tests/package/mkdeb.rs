//! dkms-mkdeb end to end: the package it writes, read back by dpkg-deb, judged by lintian,
//! rebuilt for reproducibility, and refused cleanly on bad input.

use crate::support;

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::cargo::cargo_bin;
use support::{hello_source, require_tool, run_ok};

const MAINTAINER: &str = "Jane Doe <jane@example.org>";

/// `dkms-mkdeb` with a cleared environment: no maintainer or SOURCE_DATE_EPOCH leaking in.
fn mkdeb() -> Command {
    support::command(cargo_bin("dkms-mkdeb"))
}

/// Build the package of `source` into `out`; returns the .deb path the tool printed.
pub(crate) fn build(source: &Path, out: &Path, extra: &[&str]) -> PathBuf {
    let stdout = run_ok(
        mkdeb()
            .args(["--maintainer", MAINTAINER, "-o"])
            .arg(out)
            .args(extra)
            .arg(source),
    );
    let path = PathBuf::from(stdout.trim());
    assert!(
        path.is_file(),
        "dkms-mkdeb printed {path:?}, which is not a file"
    );
    path
}

/// Copy a directory tree (files, dirs, symlinks), keeping modes.
pub(crate) fn copy_tree(from: &Path, to: &Path) {
    run_ok(Command::new("cp").arg("-a").arg(from).arg(to));
}

fn dpkg_deb(args: &[&str], deb: &Path) -> String {
    run_ok(Command::new("dpkg-deb").args(args).arg(deb))
}

/// The `dpkg-deb --field` value of `field`.
pub(crate) fn field(deb: &Path, field: &str) -> String {
    run_ok(Command::new("dpkg-deb").arg("--field").arg(deb).arg(field))
        .trim()
        .to_string()
}

/// Names in the data archive, as dpkg-deb lists them.
pub(crate) fn contents(deb: &Path) -> Vec<String> {
    dpkg_deb(&["--contents"], deb)
        .lines()
        .map(|l| {
            // perms owner size date time name [-> target]
            let name = l.split_whitespace().nth(5).unwrap_or_default();
            name.to_string()
        })
        .collect()
}

pub(crate) fn lintian_clean(deb: &Path) {
    if !require_tool("lintian") {
        return;
    }
    let out = Command::new("lintian")
        .args(["-EI", "--pedantic", "--fail-on", "error,warning"])
        .arg(deb)
        .output()
        .expect("run lintian");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "lintian fails on {deb:?}:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("E: ") || l.starts_with("W: ")),
        "lintian reports errors or warnings:\n{text}"
    );
}

#[test]
fn hello_package_reads_back_with_dpkg_deb() {
    if !require_tool("dpkg-deb") {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let deb = build(&hello_source(), out.path(), &[]);
    assert_eq!(deb.file_name().unwrap(), "hello-dkms_0.1_all.deb");

    let info = dpkg_deb(&["--info"], &deb);
    for line in [
        " Package: hello-dkms",
        " Source: hello-dkms",
        " Version: 0.1",
        " Architecture: all",
        &format!(" Maintainer: {MAINTAINER}"),
        " Depends: dkms-rs | dkms (>= 2.1.0.0)",
        " Section: kernel",
        " Priority: optional",
        " Description: hello kernel module source for DKMS",
    ] {
        assert!(info.lines().any(|l| l == line), "no {line:?} in:\n{info}");
    }
    for member in ["control", "md5sums", "postinst", "prerm"] {
        assert!(
            info.lines()
                .any(|l| l.split_whitespace().last() == Some(member)
                    || l.contains(&format!(" {member}"))),
            "control.tar lacks {member}:\n{info}"
        );
    }

    let names = contents(&deb);
    for name in [
        "./",
        "./usr/",
        "./usr/src/",
        "./usr/src/hello-0.1/",
        "./usr/src/hello-0.1/Makefile",
        "./usr/src/hello-0.1/dkms.conf",
        "./usr/src/hello-0.1/hello.c",
        "./usr/share/",
        "./usr/share/doc/",
        "./usr/share/doc/hello-dkms/",
        "./usr/share/doc/hello-dkms/changelog.gz",
        "./usr/share/doc/hello-dkms/copyright",
    ] {
        assert!(names.iter().any(|n| n == name), "no {name} in {names:?}");
    }
    assert_eq!(names.len(), 12, "unexpected entries: {names:?}");

    // The control and fsys tarballs come out whole; the sources are the ones we packaged.
    let ctrl = Command::new("dpkg-deb")
        .arg("--ctrl-tarfile")
        .arg(&deb)
        .output()
        .unwrap();
    assert!(ctrl.status.success());
    let fsys = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(&deb)
        .output()
        .unwrap();
    assert!(fsys.status.success());

    let root = out.path().join("root");
    run_ok(Command::new("dpkg-deb").arg("-R").arg(&deb).arg(&root));
    for f in ["hello.c", "Makefile", "dkms.conf"] {
        assert_eq!(
            fs::read(root.join("usr/src/hello-0.1").join(f)).unwrap(),
            fs::read(hello_source().join(f)).unwrap(),
            "{f} differs"
        );
    }
    // md5sums covers every regular file and matches.
    run_ok(
        Command::new("md5sum")
            .args(["--check", "--strict", "DEBIAN/md5sums"])
            .current_dir(&root),
    );
    let md5sums = fs::read_to_string(root.join("DEBIAN/md5sums")).unwrap();
    assert_eq!(md5sums.lines().count(), 5, "{md5sums}");
    // The changelog is a Debian changelog dpkg-parsechangelog can read.
    let changelog = run_ok(
        Command::new("sh")
            .arg("-c")
            .arg("zcat usr/share/doc/hello-dkms/changelog.gz > cl && dpkg-parsechangelog -l cl -S Version")
            .current_dir(&root),
    );
    assert_eq!(changelog.trim(), "0.1");
}

#[test]
fn installed_size_is_what_dpkg_gencontrol_counts() {
    if !require_tool("dpkg-gencontrol") {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let deb = build(&hello_source(), out.path(), &[]);
    let staged = out.path().join("staged");
    run_ok(Command::new("dpkg-deb").arg("-R").arg(&deb).arg(&staged));
    // dpkg-gencontrol counts before control and md5sums exist.
    fs::remove_file(staged.join("DEBIAN/control")).unwrap();
    fs::remove_file(staged.join("DEBIAN/md5sums")).unwrap();
    let src = out.path().join("src");
    fs::create_dir_all(src.join("debian")).unwrap();
    fs::write(
        src.join("debian/control"),
        "Source: hello-dkms\nMaintainer: Jane Doe <jane@example.org>\n\n\
         Package: hello-dkms\nArchitecture: all\nDescription: x\n y\n",
    )
    .unwrap();
    fs::write(
        src.join("debian/changelog"),
        "hello-dkms (0.1) unstable; urgency=medium\n\n  * x\n\n -- Jane Doe <jane@example.org>  Thu, 01 Jan 1970 00:00:00 +0000\n",
    )
    .unwrap();
    let printed = run_ok(
        Command::new("dpkg-gencontrol")
            .arg(format!("-P{}", staged.display()))
            .args(["-O", "-phello-dkms"])
            .current_dir(&src),
    );
    let expected = printed
        .lines()
        .find_map(|l| l.strip_prefix("Installed-Size: "))
        .expect("dpkg-gencontrol printed Installed-Size");
    assert_eq!(field(&deb, "Installed-Size"), expected);
}

#[test]
fn hello_package_is_lintian_clean() {
    let out = tempfile::tempdir().unwrap();
    let deb = build(&hello_source(), out.path(), &[]);
    lintian_clean(&deb);
}

/// A source with what trips archive writers: a path past tar's 100 bytes, an executable
/// script, a symlink, a file checked out 0600, an empty directory.
fn awkward_source(dir: &Path) -> PathBuf {
    let src = dir.join("awkward");
    copy_tree(&hello_source(), &src);
    fs::write(
        src.join("dkms.conf"),
        "PACKAGE_NAME=\"awkward\"\nPACKAGE_VERSION=\"2.0.1\"\nBUILT_MODULE_NAME[0]=\"hello\"\nDEST_MODULE_LOCATION[0]=\"/updates\"\nAUTOINSTALL=\"yes\"\n",
    )
    .unwrap();
    let deep =
        src.join("include/very-long-directory-name-for-testing/and-another-long-directory-name");
    fs::create_dir_all(&deep).unwrap();
    fs::write(
        deep.join("a-header-file-with-a-long-name.h"),
        "/* long */\n",
    )
    .unwrap();
    fs::write(src.join("gen-version.sh"), "#!/bin/sh\necho 2.0.1\n").unwrap();
    fs::set_permissions(
        src.join("gen-version.sh"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    symlink("hello.c", src.join("hello-link.c")).unwrap();
    fs::write(src.join("private.h"), "/* private */\n").unwrap();
    fs::set_permissions(src.join("private.h"), fs::Permissions::from_mode(0o600)).unwrap();
    src
}

#[test]
fn awkward_package_is_lintian_clean_and_keeps_its_shape() {
    let dir = tempfile::tempdir().unwrap();
    let src = awkward_source(dir.path());
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    let deb = build(&src, &out, &[]);
    let listing = dpkg_deb(&["--contents"], &deb);
    let long = "./usr/src/awkward-2.0.1/include/very-long-directory-name-for-testing/and-another-long-directory-name/a-header-file-with-a-long-name.h";
    assert!(long.len() > 100);
    assert!(listing.contains(long), "{listing}");
    let line = |name: &str| {
        listing
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{name} not in {listing}"))
            .to_string()
    };
    assert!(line("gen-version.sh").starts_with("-rwxr-xr-x root/root"));
    assert!(line("private.h").starts_with("-rw-r--r-- root/root"));
    assert!(line("hello-link.c").starts_with("lrwxrwxrwx root/root"));
    assert!(line("hello-link.c").ends_with("-> hello.c"));
    lintian_clean(&deb);
}

/// What editors leave in a worked-in tree is not shipped (dpkg-source's default ignores, and
/// emacs's auto-save files); a file merely named like one elsewhere in the name is.
#[test]
fn editor_backups_are_not_shipped() {
    if !require_tool("dpkg-deb") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    copy_tree(&hello_source(), &src);
    for junk in [
        "hello.c~",
        ".hello.c.swp",
        ".dkms.conf.swo",
        "#hello.c#",
        "Makefile.orig~",
    ] {
        fs::write(src.join(junk), "junk\n").unwrap();
    }
    // emacs's lock: a dangling symlink.
    symlink("jane@host.1234:1700000000", src.join(".#hello.c")).unwrap();
    fs::write(src.join("notes.swp.txt"), "kept\n").unwrap();
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    let deb = build(&src, &out, &[]);
    let names = contents(&deb);
    let shipped: Vec<&String> = names
        .iter()
        .filter(|n| n.contains('~') || n.contains(".sw") || n.contains('#'))
        .collect();
    assert_eq!(shipped, ["./usr/src/hello-0.1/notes.swp.txt"], "{names:#?}");
}

#[test]
fn two_builds_are_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    copy_tree(&hello_source(), &a);
    copy_tree(&hello_source(), &b);
    // Source b: other modes and mtimes older than SOURCE_DATE_EPOCH.
    for f in ["hello.c", "Makefile", "dkms.conf"] {
        fs::set_permissions(b.join(f), fs::Permissions::from_mode(0o664)).unwrap();
        run_ok(
            Command::new("touch")
                .args(["-d", "@1000000000"])
                .arg(b.join(f)),
        );
    }
    let out_a = dir.path().join("out-a");
    let out_b = dir.path().join("out-b");
    fs::create_dir(&out_a).unwrap();
    fs::create_dir(&out_b).unwrap();
    let epoch = "1700000000";
    let run = |src: &Path, out: &Path, umask: &str, threads: &str, cwd: &Path| {
        let script = format!(
            "umask {umask} && exec \"$0\" --maintainer '{MAINTAINER}' --threads {threads} -o \"$1\" \"$2\""
        );
        let stdout = run_ok(
            Command::new("sh")
                .arg("-c")
                .arg(script)
                .arg(cargo_bin("dkms-mkdeb"))
                .arg(out)
                .arg(src)
                .env("SOURCE_DATE_EPOCH", epoch)
                .current_dir(cwd),
        );
        fs::read(stdout.trim()).unwrap()
    };
    let deb_a = run(&a, &out_a, "022", "1", dir.path());
    let deb_b = run(&b, &out_b, "077", "2", &b);
    assert!(deb_a == deb_b, "builds differ");

    // Without SOURCE_DATE_EPOCH: rebuilding an unchanged tree (even into itself) is stable.
    let first = build(&a, &a, &[]);
    let bytes = fs::read(&first).unwrap();
    let second = build(&a, &a, &["--threads", "2"]);
    assert_eq!(first, second);
    assert!(fs::read(&second).unwrap() == bytes, "rebuild differs");
}

#[test]
fn every_compression_reads_back() {
    if !require_tool("dpkg-deb") {
        return;
    }
    for (kind, member) in [
        ("xz", "data.tar.xz"),
        ("gzip", "data.tar.gz"),
        ("zstd", "data.tar.zst"),
        ("none", "data.tar"),
    ] {
        let out = tempfile::tempdir().unwrap();
        let deb = build(&hello_source(), out.path(), &["-Z", kind]);
        let members = run_ok(Command::new("ar").arg("t").arg(&deb));
        let members: Vec<&str> = members.lines().collect();
        assert_eq!(members[0], "debian-binary", "{kind}");
        assert_eq!(members[2], member, "{kind}");
        assert!(
            contents(&deb).iter().any(|n| n.ends_with("hello.c")),
            "{kind}"
        );
    }
}

/// Run dkms-mkdeb expecting failure: returns (exit code, stderr); asserts one line and no .deb.
pub(crate) fn refused(source: &Path, out: &Path, extra: &[&str]) -> (i32, String) {
    let o = mkdeb()
        .args(["--maintainer", MAINTAINER, "-o"])
        .arg(out)
        .args(extra)
        .arg(source)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "succeeded: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "not one line: {stderr}"
    );
    if out.is_dir() {
        let left: Vec<_> = fs::read_dir(out)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert!(
            left.iter().all(|p| !p.to_string_lossy().ends_with(".deb")
                && !p.file_name().unwrap().to_string_lossy().starts_with(".tmp")),
            "left behind: {left:?}"
        );
    }
    (o.status.code().unwrap_or(-1), stderr)
}

#[test]
fn bad_input_gets_one_clear_line_and_no_package() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    let src = dir.path().join("src");
    copy_tree(&hello_source(), &src);
    let conf = src.join("dkms.conf");
    let good = fs::read_to_string(&conf).unwrap();

    fs::remove_file(&conf).unwrap();
    let (code, err) = refused(&src, &out, &[]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("dkms.conf"), "{err}");

    fs::write(&conf, good.replace("PACKAGE_NAME=\"hello\"\n", "")).unwrap();
    let (code, err) = refused(&src, &out, &[]);
    assert_eq!(code, 8, "{err}");
    assert!(err.contains("PACKAGE_NAME"), "{err}");

    fs::write(&conf, good.replace("PACKAGE_VERSION=\"0.1\"\n", "")).unwrap();
    let (code, err) = refused(&src, &out, &[]);
    assert_eq!(code, 8, "{err}");
    assert!(err.contains("PACKAGE_VERSION"), "{err}");

    fs::write(&conf, good.replace("\"0.1\"", "\"v0.1_beta\"")).unwrap();
    let (code, err) = refused(&src, &out, &[]);
    assert_eq!(code, 8, "{err}");
    assert!(
        err.contains("PACKAGE_VERSION") && err.contains("v0.1_beta"),
        "{err}"
    );

    // A PACKAGE_NAME whose derived package name (lowercase, `_` as `-`) is still no Debian
    // name: dkms.conf's field is named, exit 8 as for any bad dkms.conf.
    fs::write(
        &conf,
        good.replace("PACKAGE_NAME=\"hello\"", "PACKAGE_NAME=\"hello@work\""),
    )
    .unwrap();
    let (code, err) = refused(&src, &out, &[]);
    assert_eq!(code, 8, "{err}");
    assert!(
        err.contains("dkms.conf") && err.contains("PACKAGE_NAME") && err.contains("--package-name"),
        "{err}"
    );

    fs::write(&conf, &good).unwrap();
    let (code, err) = refused(&src, &out, &["--closes", "#123"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--closes \"#123\""), "{err}");

    let (_, err) = refused(&src, &out, &["-Z", "bzip2"]);
    assert!(err.contains("bzip2"), "{err}");

    // A FIFO cannot be packaged.
    run_ok(Command::new("mkfifo").arg(src.join("hello.pipe")));
    let (_, err) = refused(&src, &out, &[]);
    assert!(err.contains("hello.pipe"), "{err}");
    fs::remove_file(src.join("hello.pipe")).unwrap();

    let missing_out = dir.path().join("no-such-dir");
    let (_, err) = refused(&src, &missing_out, &[]);
    assert!(err.contains("no-such-dir"), "{err}");

    let (_, err) = refused(
        &src,
        &out,
        &["--templates", dir.path().join("none").to_str().unwrap()],
    );
    assert!(err.contains("none"), "{err}");

    let tpl = dir.path().join("tpl");
    fs::create_dir(&tpl).unwrap();
    fs::write(
        tpl.join("postinst"),
        "#!/bin/sh\n{{ nonexistent_variable }}\n",
    )
    .unwrap();
    let (_, err) = refused(&src, &out, &["--templates", tpl.to_str().unwrap()]);
    assert!(err.contains("postinst"), "{err}");
}

/// Permissions only bind a user who is not root: packagers are not, and dkms-mkdeb needs no
/// root, so these cases run it as `nobody` when the tests run as root.
#[test]
fn unreadable_source_and_unwritable_output_as_a_plain_user() {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let src = dir.path().join("src");
    copy_tree(&hello_source(), &src);
    fs::set_permissions(&src, fs::Permissions::from_mode(0o755)).unwrap();
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    fs::set_permissions(&out, fs::Permissions::from_mode(0o777)).unwrap();
    // A copy of the binary the plain user can reach whatever the checkout's permissions.
    let bin = dir.path().join("dkms-mkdeb");
    fs::copy(cargo_bin("dkms-mkdeb"), &bin).unwrap();
    let plain = |extra: &[&str], out: &Path| {
        let mut cmd = if running_as_root() {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
            c.arg(&bin);
            c
        } else {
            Command::new(&bin)
        };
        cmd.env_remove("SOURCE_DATE_EPOCH")
            .args(["--maintainer", MAINTAINER, "-o"])
            .arg(out)
            .args(extra)
            .arg(&src);
        let o = cmd.output().unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    // The plain user can build it at all (so the failures below are the ones we cause).
    let (ok, err) = plain(&[], &out);
    assert!(ok, "{err}");
    for e in fs::read_dir(&out).unwrap().flatten() {
        fs::remove_file(e.path()).unwrap();
    }

    fs::set_permissions(src.join("hello.c"), fs::Permissions::from_mode(0o000)).unwrap();
    let (ok, err) = plain(&[], &out);
    assert!(!ok && err.trim_end().lines().count() == 1, "{err}");
    assert!(err.contains("hello.c"), "{err}");
    assert_eq!(fs::read_dir(&out).unwrap().count(), 0, "left files behind");
    fs::set_permissions(src.join("hello.c"), fs::Permissions::from_mode(0o644)).unwrap();

    let locked = dir.path().join("locked");
    fs::create_dir(&locked).unwrap();
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o555)).unwrap();
    let (ok, err) = plain(&[], &locked);
    assert!(!ok && err.trim_end().lines().count() == 1, "{err}");
    assert!(err.contains("locked"), "{err}");
    assert_eq!(
        fs::read_dir(&locked).unwrap().count(),
        0,
        "left files behind"
    );
}

fn running_as_root() -> bool {
    run_ok(Command::new("id").arg("-u")).trim() == "0"
}

#[test]
fn bad_templates_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    let src = hello_source();

    let (_, err) = refused(
        &src,
        &out,
        &["--templates", dir.path().join("none").to_str().unwrap()],
    );
    assert!(err.contains("none"), "{err}");
}

/// The same files and directories a packager gets today from `dh` + `dh_dkms`.
#[test]
fn data_files_equal_the_debhelper_reference() {
    if !support::debhelper::require_debhelper() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let reference =
        support::debhelper::build_dh_reference(&hello_source(), "hello", "0.1", work.path());
    let out = work.path().join("out");
    fs::create_dir(&out).unwrap();
    let ours = build(&hello_source(), &out, &[]);
    let mut expected = contents(&reference);
    let mut got = contents(&ours);
    expected.sort();
    got.sort();
    assert_eq!(got, expected, "ours (left) vs dh_dkms (right)");
}

/// What the package says, for review: the control file and the maintainer scripts as dpkg-deb
/// extracts them, and the changelog and copyright as installed.
#[test]
fn rendered_files_of_hello() {
    if !require_tool("dpkg-deb") {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    // A fixed epoch: a checkout's mtimes (the default) differ from clone to clone.
    let deb = run_ok(
        mkdeb()
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .args(["--maintainer", MAINTAINER, "-o"])
            .arg(out.path())
            .arg(hello_source()),
    );
    let root = out.path().join("root");
    run_ok(
        Command::new("dpkg-deb")
            .arg("-R")
            .arg(deb.trim())
            .arg(&root),
    );
    for file in ["control", "postinst", "prerm"] {
        let text = fs::read_to_string(root.join("DEBIAN").join(file)).unwrap();
        insta::assert_snapshot!(format!("hello_{file}"), text);
    }
    let doc = root.join("usr/share/doc/hello-dkms");
    let changelog = run_ok(Command::new("zcat").arg(doc.join("changelog.gz")));
    insta::assert_snapshot!("hello_changelog", changelog);
    insta::assert_snapshot!(
        "hello_copyright",
        fs::read_to_string(doc.join("copyright")).unwrap()
    );
}

/// The dkms alternative of Depends is the one dh_dkms computes for the same dkms.conf:
/// `>= 2.1.0.0`, or `>= 3.0.3-4~` once BUILD_EXCLUSIVE_CONFIG is used.
#[test]
fn dkms_dependency_matches_dh_dkms() {
    if !support::debhelper::require_debhelper() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("exclusive");
    copy_tree(&hello_source(), &src);
    let conf = fs::read_to_string(src.join("dkms.conf")).unwrap();
    fs::write(
        src.join("dkms.conf"),
        conf.replace("PACKAGE_NAME=\"hello\"", "PACKAGE_NAME=\"exclusive\"")
            + "BUILD_EXCLUSIVE_CONFIG=\"CONFIG_MODULES\"\n",
    )
    .unwrap();
    for (source, name) in [(hello_source(), "hello"), (src, "exclusive")] {
        let refdir = work.path().join(format!("ref-{name}"));
        fs::create_dir(&refdir).unwrap();
        let reference = support::debhelper::build_dh_reference(&source, name, "0.1", &refdir);
        let expected = field(&reference, "Depends");
        let out = work.path().join(format!("out-{name}"));
        fs::create_dir(&out).unwrap();
        let ours = build(&source, &out, &[]);
        assert_eq!(
            field(&ours, "Depends"),
            format!("dkms-rs | {expected}"),
            "{name}"
        );
    }
}
