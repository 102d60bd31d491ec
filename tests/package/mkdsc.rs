//! mkdsc (`dkms-mkdeb --source-package`, `dkms-rs mkdsc`): the Debian source package of a
//! module, unpacked by dpkg-source (which verifies the .dsc's checksums), built by
//! dpkg-buildpackage with debhelper and our dh addon, judged by lintian, compared with
//! dkms-mkdeb's .deb of the same source, rebuilt for reproducibility, refused cleanly on bad
//! input.

use crate::support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::cargo::cargo_bin;
use support::scratch::Scratch;
use support::{hello_source, require_tool, run, run_ok};

const MAINTAINER: &str = "Jane Doe <jane@example.org>";

/// dpkg-source, dpkg-buildpackage and dh, lintian, dpkg-deb, sha256sum, md5sum.
pub(crate) fn require_tools() -> bool {
    [
        "dpkg-source",
        "dpkg-buildpackage",
        "dh",
        "lintian",
        "dpkg-deb",
        "sha1sum",
        "sha256sum",
        "md5sum",
    ]
    .iter()
    .all(|t| require_tool(t))
}

/// `dkms-mkdeb --source-package` of `source` into `out` (made); returns the printed .dsc path.
fn mkdsc(source: &Path, out: &Path, extra: &[&str]) -> PathBuf {
    let mut args = vec!["--maintainer", MAINTAINER];
    args.extend_from_slice(extra);
    mkdsc_with_env(source, out, &args, &[])
}

/// `dkms-mkdeb --source-package <extra>` of `source` into `out` (made) with `env` set;
/// returns the printed .dsc path.
pub(crate) fn mkdsc_with_env(
    source: &Path,
    out: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> PathBuf {
    fs::create_dir_all(out).unwrap();
    let stdout = run_ok(
        support::command(cargo_bin("dkms-mkdeb"))
            .envs(env.iter().copied())
            .args(["--source-package", "-o"])
            .arg(out)
            .args(extra)
            .arg(source),
    );
    let dsc = PathBuf::from(stdout.trim());
    assert!(dsc.is_file(), "dkms-mkdeb printed {dsc:?}, not a file");
    dsc
}

/// dkms-mkdeb's .deb of the same source, for comparison.
fn mkdeb(source: &Path, out: &Path, extra: &[&str]) -> PathBuf {
    fs::create_dir_all(out).unwrap();
    let stdout = run_ok(
        support::command(cargo_bin("dkms-mkdeb"))
            .args(["--maintainer", MAINTAINER, "-o"])
            .arg(out)
            .args(extra)
            .arg(source),
    );
    PathBuf::from(stdout.trim())
}

/// `dpkg-source -x` of `dsc` into `dest`, refusing weak checksums: dpkg checks every file's
/// size, SHA-1 and SHA-256 against the .dsc.
pub(crate) fn unpack(dsc: &Path, dest: &Path) {
    run_ok(
        support::command("dpkg-source")
            .args(["--require-strong-checksums", "-x"])
            .arg(dsc)
            .arg(dest),
    );
}

/// `dpkg-buildpackage -b` in the unpacked `tree`, with the built dh_dkms-rs first on PATH and
/// our dh addon (debhelper/) on PERL5LIB; `-d`: dh-sequence-dkms-rs is Build-Depends but
/// not installed here. Returns the one .deb written beside `tree`.
pub(crate) fn build_binary(tree: &Path) -> PathBuf {
    let work = tree.parent().unwrap();
    let bin = work.join("bin");
    fs::create_dir_all(&bin).unwrap();
    let link = bin.join("dh_dkms-rs");
    if !link.exists() {
        std::os::unix::fs::symlink(cargo_bin("dh_dkms-rs"), &link).unwrap();
    }
    let path = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    run_ok(
        support::command("dpkg-buildpackage")
            .args(["-b", "-us", "-uc", "-d"])
            .current_dir(tree)
            .env("PATH", path)
            .env(
                "PERL5LIB",
                Path::new(env!("CARGO_MANIFEST_DIR")).join("debhelper"),
            ),
    );
    let debs: Vec<PathBuf> = fs::read_dir(work)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "dpkg-buildpackage made {debs:?}");
    debs[0].clone()
}

/// Names in the data archive, as dpkg-deb lists them, sorted.
pub(crate) fn contents(deb: &Path) -> Vec<String> {
    let mut names: Vec<String> = run_ok(Command::new("dpkg-deb").arg("--contents").arg(deb))
        .lines()
        .map(|l| l.split_whitespace().nth(5).unwrap_or_default().to_string())
        .collect();
    names.sort();
    names
}

fn field(deb: &Path, name: &str) -> String {
    run_ok(Command::new("dpkg-deb").arg("--field").arg(deb).arg(name))
        .trim()
        .to_string()
}

fn lintian_clean(deb: &Path) {
    let out = Command::new("lintian")
        .args(["-EI", "--pedantic", "--fail-on", "error,warning"])
        .arg(deb)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && !text
                .lines()
                .any(|l| l.starts_with("E: ") || l.starts_with("W: ")),
        "lintian on {deb:?}:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The names in `dir`, hidden ones included, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `field` of the .dsc, by its own parsing: the value after `Field: ` on its line.
fn dsc_field(dsc: &Path, name: &str) -> Option<String> {
    fs::read_to_string(dsc).unwrap().lines().find_map(|l| {
        l.strip_prefix(&format!("{name}: "))
            .map(|v| v.trim().to_string())
    })
}

/// The .dsc's checksum lines of `list` (`Files`, `Checksums-Sha256`, ...): (sum, size, name).
fn dsc_list(dsc: &Path, list: &str) -> Vec<(String, u64, String)> {
    let text = fs::read_to_string(dsc).unwrap();
    let header = format!("{list}:");
    text.lines()
        .skip_while(|l| *l != header)
        .skip(1)
        .take_while(|l| l.starts_with(' '))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_string(), f[1].parse().unwrap(), f[2].to_string())
        })
        .collect()
}

/// What `tool` (sha256sum, ...) says of `file`.
fn sum(tool: &str, file: &Path) -> String {
    run_ok(Command::new(tool).arg(file))
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// The .dsc's three lists agree with md5sum, sha1sum and sha256sum, and with the sizes, for
/// exactly the files `expected` (beside the .dsc); returns nothing, panics otherwise.
fn checksums_are_right(dsc: &Path, expected: &[&str]) {
    let dir = dsc.parent().unwrap();
    for (list, tool) in [
        ("Files", "md5sum"),
        ("Checksums-Sha1", "sha1sum"),
        ("Checksums-Sha256", "sha256sum"),
    ] {
        let entries = dsc_list(dsc, list);
        let listed: Vec<&str> = entries.iter().map(|(_, _, n)| n.as_str()).collect();
        assert_eq!(listed, expected, "{list} of {}", dsc.display());
        for (digest, size, name) in &entries {
            let file = dir.join(name);
            assert_eq!(*digest, sum(tool, &file), "{list}: {name}");
            assert_eq!(*size, fs::metadata(&file).unwrap().len(), "{list}: {name}");
        }
    }
}

/// A copy of hello with PACKAGE_VERSION `version`, in `dir`.
fn hello_with_version(dir: &Path, version: &str) -> PathBuf {
    let src = dir.join(format!("hello-{version}"));
    run_ok(Command::new("cp").arg("-a").arg(hello_source()).arg(&src));
    let conf = src.join("dkms.conf");
    let text = fs::read_to_string(&conf).unwrap().replace(
        "PACKAGE_VERSION=\"0.1\"",
        &format!("PACKAGE_VERSION=\"{version}\""),
    );
    assert!(text.contains(version), "hello's dkms.conf changed: {text}");
    fs::write(&conf, text).unwrap();
    src
}

/// Make the source package of `source` with `extra`, check its files and the .dsc, unpack and
/// build it, and compare the .deb with dkms-mkdeb's: same file list and Depends, both lintian
/// clean, and the source package too. `files` are the tarballs the .dsc must list, in its
/// order, `format` its Format.
fn source_package_round_trip(source: &Path, extra: &[&str], format: &str, files: &[&str]) {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let dsc = mkdsc(source, &out, extra);
    let dsc_name = dsc.file_name().unwrap().to_string_lossy().into_owned();
    let mut expected: Vec<String> = files.iter().map(|f| f.to_string()).collect();
    expected.push(dsc_name);
    expected.sort();
    assert_eq!(names(&out), expected, "what mkdsc wrote");
    assert_eq!(dsc_field(&dsc, "Format").as_deref(), Some(format));
    assert_eq!(
        dsc_field(&dsc, "Build-Depends").as_deref(),
        Some("debhelper-compat (= 13), dh-sequence-dkms-rs")
    );
    checksums_are_right(&dsc, files);

    let tree = work.path().join("build/unpacked");
    fs::create_dir_all(tree.parent().unwrap()).unwrap();
    unpack(&dsc, &tree);
    let format_file = fs::read_to_string(tree.join("debian/source/format")).unwrap();
    assert_eq!(format_file.trim(), format);
    let built = build_binary(&tree);
    let reference = mkdeb(source, &work.path().join("mkdeb"), extra);
    assert_eq!(
        built.file_name(),
        reference.file_name(),
        "dpkg-buildpackage (left) vs dkms-mkdeb (right)"
    );
    assert_eq!(
        contents(&built),
        contents(&reference),
        "dpkg-buildpackage (left) vs dkms-mkdeb (right)"
    );
    assert_eq!(field(&built, "Depends"), field(&reference, "Depends"));
    assert_eq!(field(&built, "Version"), field(&reference, "Version"));
    lintian_clean(&built);
    lintian_clean(&reference);
    // The source package too (it is what a packager uploads).
    lintian_clean(&dsc);
}

#[test]
fn native_source_package_builds_the_package_mkdeb_makes() {
    if !require_tools() {
        return;
    }
    source_package_round_trip(
        &hello_source(),
        &[],
        "3.0 (native)",
        &["hello-dkms_0.1.tar.gz"],
    );
}

#[test]
fn revision_makes_a_quilt_package_with_an_orig_tarball() {
    if !require_tools() {
        return;
    }
    source_package_round_trip(
        &hello_source(),
        &["--revision", "1"],
        "3.0 (quilt)",
        &[
            "hello-dkms_0.1.orig.tar.gz",
            "hello-dkms_0.1-1.debian.tar.gz",
        ],
    );
}

#[test]
fn version_with_a_dash_is_quilt_as_dpkg_wants_it() {
    if !require_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // dpkg-source refuses `3.0 (native)` for a version with a revision: 1.2-3 is upstream 1.2.
    let source = hello_with_version(dir.path(), "1.2-3");
    // Upstream changelogs at the top, which dh_installchangelogs would also put into
    // /usr/share/doc of a non-native package: they stay in /usr/src, as in dkms-mkdeb's.
    fs::write(source.join("ChangeLog"), "1.2: first\n").unwrap();
    fs::write(source.join("HISTORY.md"), "# History\n").unwrap();
    source_package_round_trip(
        &source,
        &[],
        "3.0 (quilt)",
        &[
            "hello-dkms_1.2.orig.tar.gz",
            "hello-dkms_1.2-3.debian.tar.gz",
        ],
    );
}

/// Every file's bytes in `dir`, by name.
fn bytes_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
    names(dir)
        .into_iter()
        .map(|n| {
            let bytes = fs::read(dir.join(&n)).unwrap();
            (n, bytes)
        })
        .collect()
}

#[test]
fn source_packages_are_reproducible() {
    if !require_tool("sh") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    // The second copy: same mtimes (cp -a), other modes, made by another umask, later.
    let copy = work.path().join("copy");
    run_ok(Command::new("cp").arg("-a").arg(hello_source()).arg(&copy));
    for f in ["hello.c", "Makefile"] {
        fs::set_permissions(copy.join(f), fs::Permissions::from_mode(0o600)).unwrap();
    }
    for extra in [&[][..], &["--revision", "2"][..]] {
        let run_in = |source: &Path, out: &str, umask: &str| {
            let out = work.path().join(out);
            fs::create_dir_all(&out).unwrap();
            run_ok(
                support::command("sh")
                    .arg("-c")
                    .arg(format!("umask {umask} && exec \"$@\""))
                    .arg("sh")
                    .arg(cargo_bin("dkms-mkdeb"))
                    .args(["--source-package", "--maintainer", MAINTAINER, "-o"])
                    .arg(&out)
                    .args(extra)
                    .arg(source),
            );
            bytes_of(&out)
        };
        let tag = extra.len();
        let first = run_in(&hello_source(), &format!("a{tag}"), "022");
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let second = run_in(&copy, &format!("b{tag}"), "077");
        assert!(!first.is_empty());
        assert_eq!(
            first.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            second.iter().map(|(n, _)| n).collect::<Vec<_>>()
        );
        for ((name, a), (_, b)) in first.iter().zip(&second) {
            assert!(a == b, "{name} differs between two runs ({extra:?})");
        }
    }
}

#[test]
fn dkms_rs_mkdsc_writes_the_source_package_into_the_tree() {
    if !require_tool("dpkg-source") {
        return;
    }
    let s = Scratch::new(&[]);
    let src = s.add_hello_source();
    run_ok(&mut s.dkms_rs(&["add", "-m", "hello", "-v", "0.1"]));
    let stdout = run_ok(
        s.dkms_rs(&[
            "mkdsc",
            "-m",
            "hello",
            "-v",
            "0.1",
            "--maintainer",
            MAINTAINER,
        ])
        .env("SOURCE_DATE_EPOCH", "1700000000"),
    );
    let dsc = s.dkms_tree.join("hello/0.1/dsc/hello-dkms_0.1.dsc");
    assert_eq!(stdout.trim(), dsc.display().to_string());
    checksums_are_right(&dsc, &["hello-dkms_0.1.tar.gz"]);
    unpack(&dsc, &s.dir.path().join("unpacked"));
    // The same bytes as dkms-mkdeb's of the tree's source.
    let out = s.dir.path().join("direct");
    fs::create_dir_all(&out).unwrap();
    run_ok(
        support::command(cargo_bin("dkms-mkdeb"))
            .args(["--source-package", "--maintainer", MAINTAINER, "-o"])
            .arg(&out)
            .arg(&src)
            .env("SOURCE_DATE_EPOCH", "1700000000"),
    );
    assert!(bytes_of(&out) == bytes_of(dsc.parent().unwrap()));

    // Not added: 3, dkms's words, as for mkdeb; nothing made in the tree.
    let (code, _, stderr) = run(&mut s.dkms_rs(&["mkdsc", "-m", "nosuch", "-v", "1"]));
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("nosuch/1 is not located in the DKMS tree"),
        "{stderr}"
    );
    assert!(!s.dkms_tree.join("nosuch").exists());
}

/// dkms-mkdeb --source-package on bad input: exit `code`, one line naming `what`, nothing
/// (not even a hidden temp file) in the output directory.
fn refused(source: &Path, extra: &[&str], code: i32, what: &str) {
    let out = tempfile::tempdir().unwrap();
    let (got, stdout, stderr) = run(support::command(cargo_bin("dkms-mkdeb"))
        .args(["--source-package", "--maintainer", MAINTAINER, "-o"])
        .arg(out.path())
        .args(extra)
        .arg(source));
    assert_eq!(got, code, "stdout {stdout:?} stderr {stderr:?}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(what), "{stderr:?} does not name {what:?}");
    assert_eq!(names(out.path()), Vec::<String>::new());
}

#[test]
fn bad_input_is_refused_with_one_line_and_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    // A source that has its own packaging already.
    let packaged = dir.path().join("packaged");
    run_ok(
        Command::new("cp")
            .arg("-a")
            .arg(hello_source())
            .arg(&packaged),
    );
    fs::create_dir(packaged.join("debian")).unwrap();
    refused(&packaged, &[], 1, "debian");
    // A revision dpkg refuses.
    refused(&hello_source(), &["--revision", "a_b"], 1, "a_b");
    // A PACKAGE_VERSION dpkg refuses (8: a bad dkms.conf, as dkms says).
    let odd = hello_with_version(dir.path(), "v1");
    refused(&odd, &[], 8, "PACKAGE_VERSION");
    // A fifo in the source: dpkg cannot carry it; found before anything is written.
    let fifo = dir.path().join("fifo");
    run_ok(Command::new("cp").arg("-a").arg(hello_source()).arg(&fifo));
    run_ok(Command::new("mkfifo").arg(fifo.join("pipe")));
    refused(&fifo, &[], 1, "pipe");
    // No dkms.conf: 4, as dkms.
    refused(dir.path(), &[], 4, "dkms.conf");

    // The output directory inside the source: the package would hold itself.
    let inside = dir.path().join("inside");
    run_ok(
        Command::new("cp")
            .arg("-a")
            .arg(hello_source())
            .arg(&inside),
    );
    let (code, _, stderr) = run(support::command(cargo_bin("dkms-mkdeb"))
        .args(["--source-package", "--maintainer", MAINTAINER, "-o"])
        .arg(&inside)
        .arg(&inside));
    assert_eq!(
        (code, stderr.trim_end().lines().count()),
        (1, 1),
        "{stderr}"
    );
    assert!(stderr.contains("inside the module source"), "{stderr}");
    assert_eq!(names(&inside), names(&hello_source()));

    // Options that mean nothing for a source package.
    let (code, _, stderr) = run(support::command(cargo_bin("dkms-mkdeb"))
        .args(["--source-package", "-k", "x"])
        .arg(hello_source()));
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn a_full_disk_leaves_no_source_package_behind() {
    if !support::scratch::is_root()
        && !support::missing("root (to mount a tmpfs in a private mount namespace)")
    {
        return;
    }
    if !require_tool("unshare") {
        return;
    }
    let s = Scratch::new(&[]);
    let src = s.add_hello_source();
    // 3 MiB of random bytes: incompressible, more than the 1 MiB the tree gets.
    let mut big = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(fs::File::open("/dev/urandom").unwrap(), 3 << 20),
        &mut big,
    )
    .unwrap();
    fs::write(src.join("big.bin"), big).unwrap();
    run_ok(&mut s.dkms_rs(&["add", "-m", "hello", "-v", "0.1"]));
    let r = s.dkms_rs_on_small_fs(
        &s.dkms_tree,
        "1m",
        &[
            "mkdsc",
            "-m",
            "hello",
            "-v",
            "0.1",
            "--maintainer",
            MAINTAINER,
        ],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("hello-dkms_0.1.tar.gz") && r.stderr.contains("No space left on device"),
        "{}",
        r.stderr
    );
    let lock = |l: &[String]| -> Vec<String> {
        l.iter()
            .filter(|p| !p.starts_with(".dkms-rs.lock"))
            .cloned()
            .collect()
    };
    assert_eq!(lock(&r.after), lock(&r.before), "the tree changed");
}
