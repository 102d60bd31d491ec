//! The deb writer against dpkg-deb itself: the same staged tree built by `dpkg-deb
//! --root-owner-group --build` is the oracle for every byte we write.

use crate::support;

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use dkms::deb::{
    Compression, CompressionKind, ControlMember, DataTree, DebBuild, DebError, WrittenDeb,
    write_deb,
};
use support::{require_tool, run_ok};

/// SOURCE_DATE_EPOCH of every build here: older than the fixture files, so dpkg-deb's
/// `--clamp-mtime` brings all of them to it.
const MTIME: u64 = 1_600_000_000;
/// Where the module source lands in the package.
const PREFIX: &str = "usr/src/t-1.0";

enum Item {
    Dir(&'static str),
    File(String, Vec<u8>, bool),
    Link(&'static str, String),
}

fn long_dir() -> String {
    format!("deep/{}/{}", "d".repeat(60), "e".repeat(60))
}

/// The module source of every test: a long path, a long symlink target, an executable
/// script, a symlink, an empty dir, sizes around 1 KiB and names that sort differently
/// component-wise and as whole strings (`sub/`, `sub-y`, `sub.x`).
fn items() -> Vec<Item> {
    vec![
        Item::File(
            "hello.c".into(),
            b"int main(void) { return 0; }\n".to_vec(),
            false,
        ),
        Item::File("Makefile".into(), b"obj-m := hello.o\n".to_vec(), false),
        Item::File(
            "scripts/run.sh".into(),
            b"#!/bin/sh\necho run\n".to_vec(),
            true,
        ),
        Item::File("big.txt".into(), vec![b'x'; 5000], false),
        Item::File("kib.txt".into(), vec![b'y'; 1024], false),
        Item::File("empty.txt".into(), Vec::new(), false),
        Item::File(
            format!("{}/file.txt", long_dir()),
            b"deep\n".to_vec(),
            false,
        ),
        Item::File("sub/c".into(), b"c\n".to_vec(), false),
        Item::File("sub-y".into(), b"y\n".to_vec(), false),
        Item::File("sub.x".into(), b"x\n".to_vec(), false),
        Item::Dir("empty"),
        Item::Link("link", "hello.c".into()),
        Item::Link("longlink", format!("{}/file.txt", long_dir())),
    ]
}

const COPYRIGHT: &str = "usr/share/doc/t/copyright";

fn scripts() -> Vec<ControlMember> {
    vec![
        ControlMember {
            name: "postinst".into(),
            bytes: b"#!/bin/sh\nset -e\necho configured\n".to_vec(),
            executable: true,
        },
        ControlMember {
            name: "prerm".into(),
            bytes: b"#!/bin/sh\nset -e\n".to_vec(),
            executable: true,
        },
    ]
}

fn control_text(installed_kib: u64) -> String {
    format!(
        "Package: t\nVersion: 1.0\nArchitecture: all\nMaintainer: T <t@example.org>\n\
         Installed-Size: {installed_kib}\nDescription: test package\n long text\n"
    )
}

/// Writes the source tree with the given modes for plain files, executables and dirs.
fn write_source(root: &Path, file_mode: u32, exec_mode: u32) {
    for item in items() {
        match item {
            Item::Dir(p) => fs::create_dir_all(root.join(p)).unwrap(),
            Item::File(p, bytes, exec) => {
                let path = root.join(p);
                fs::create_dir_all(path.parent().unwrap()).unwrap();
                fs::write(&path, bytes).unwrap();
                let mode = if exec { exec_mode } else { file_mode };
                fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            }
            Item::Link(p, target) => symlink(target, root.join(p)).unwrap(),
        }
    }
}

/// The DataTree of the package built from the source at `src`.
fn data_tree(src: &Path) -> DataTree {
    let mut tree = DataTree::new();
    for item in items() {
        match item {
            Item::Dir(p) => tree.add_dir(&format!("{PREFIX}/{p}")),
            Item::File(p, _, exec) => {
                tree.add_file_from_disk(&format!("{PREFIX}/{p}"), src.join(&p), exec)
            }
            Item::Link(p, target) => tree.add_symlink(&format!("{PREFIX}/{p}"), &target),
        }
    }
    tree.add_file_bytes(COPYRIGHT, b"Copyright: nobody\n".to_vec(), false);
    tree
}

fn build(tree: &DataTree, compression: Compression, out: &Path) -> Result<WrittenDeb, DebError> {
    let build = DebBuild {
        data: tree,
        maintainer_scripts: scripts(),
        mtime: MTIME,
        compression,
    };
    write_deb(&build, |kib| Ok::<_, DebError>(control_text(kib)), out)
}

fn compression(kind: CompressionKind, threads: u32) -> Compression {
    Compression {
        kind,
        level: None,
        threads,
    }
}

/// Source dir (odd modes) + the package built from it.
struct Built {
    _dir: tempfile::TempDir,
    deb: PathBuf,
    written: WrittenDeb,
}

fn build_fixture(kind: CompressionKind, threads: u32) -> Built {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    // Checkout modes that must not leak into the package.
    write_source(&src, 0o600, 0o700);
    let deb = dir.path().join("t_1.0_all.deb");
    let written = build(&data_tree(&src), compression(kind, threads), &deb).unwrap();
    Built {
        _dir: dir,
        deb,
        written,
    }
}

/// The tree dpkg-deb gets: normalised modes, DEBIAN with the scripts only (as when
/// dh_gencontrol runs).
fn stage(root: &Path) {
    let src = root.join(PREFIX);
    write_source(&src, 0o644, 0o755);
    let copyright = root.join(COPYRIGHT);
    fs::create_dir_all(copyright.parent().unwrap()).unwrap();
    fs::write(&copyright, b"Copyright: nobody\n").unwrap();
    fs::create_dir_all(root.join("DEBIAN")).unwrap();
    for s in scripts() {
        let path = root.join("DEBIAN").join(&s.name);
        fs::write(&path, &s.bytes).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }
    for entry in walk_dirs(root) {
        fs::set_permissions(entry, fs::Permissions::from_mode(0o755)).unwrap();
    }
}

fn walk_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![root.to_path_buf()];
    let mut i = 0;
    while i < dirs.len() {
        for e in fs::read_dir(&dirs[i]).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                dirs.push(e.path());
            }
        }
        i += 1;
    }
    dirs
}

/// Installed-Size as the real dpkg-gencontrol computes it for the staged tree.
fn gencontrol_installed_size(staged: &Path) -> u64 {
    let pkg = tempfile::tempdir().unwrap();
    fs::create_dir(pkg.path().join("debian")).unwrap();
    fs::write(
        pkg.path().join("debian/control"),
        "Source: t\nMaintainer: T <t@example.org>\n\nPackage: t\nArchitecture: all\n\
         Description: test package\n long text\n",
    )
    .unwrap();
    fs::write(
        pkg.path().join("debian/changelog"),
        "t (1.0) unstable; urgency=medium\n\n  * Test.\n\n -- T <t@example.org>  Thu, 01 Jan 2020 00:00:00 +0000\n",
    )
    .unwrap();
    let out = run_ok(
        Command::new("dpkg-gencontrol")
            .arg("-pt")
            .arg(format!("-P{}", staged.display()))
            .arg("-O")
            .current_dir(pkg.path()),
    );
    out.lines()
        .find_map(|l| l.strip_prefix("Installed-Size: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Installed-Size in dpkg-gencontrol output:\n{out}"))
}

/// dh_md5sums' recipe, run in the staged tree.
fn dh_md5sums(staged: &Path) {
    run_ok(
        Command::new("sh")
            .arg("-c")
            .arg(
                "find . -type f ! -regex './DEBIAN/.*' -printf '%P\\0' | LC_ALL=C sort -z \
                 | xargs -r0 md5sum > DEBIAN/md5sums",
            )
            .current_dir(staged),
    );
}

/// Builds the reference with dpkg-deb from a staged copy of the fixture.
fn dpkg_deb_reference(dir: &Path, z: &str) -> (PathBuf, u64) {
    let staged = dir.join("staged");
    stage(&staged);
    let installed = gencontrol_installed_size(&staged);
    fs::write(staged.join("DEBIAN/control"), control_text(installed)).unwrap();
    dh_md5sums(&staged);
    let reference = dir.join("reference.deb");
    run_ok(
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Z", z, "--build"])
            .arg(&staged)
            .arg(&reference)
            .env("SOURCE_DATE_EPOCH", MTIME.to_string()),
    );
    (reference, installed)
}

fn dpkg_deb(args: &[&str], deb: &Path) -> Vec<u8> {
    let out = Command::new("dpkg-deb")
        .args(args)
        .arg(deb)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dpkg-deb {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn entries_left(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn uncompressed_deb_is_byte_identical_to_dpkg_deb_and_installed_size_to_dpkg_gencontrol() {
    if !require_tool("dpkg-deb") || !require_tool("dpkg-gencontrol") {
        return;
    }
    let ours = build_fixture(CompressionKind::None, 1);
    let dir = tempfile::tempdir().unwrap();
    let (reference, installed) = dpkg_deb_reference(dir.path(), "none");
    assert_eq!(ours.written.installed_size_kib, installed);
    let (a, b) = (fs::read(&ours.deb).unwrap(), fs::read(&reference).unwrap());
    if a != b {
        let list = |deb: &Path| String::from_utf8_lossy(&dpkg_deb(&["-c"], deb)).into_owned();
        panic!(
            "ours differs from dpkg-deb's\nours:\n{}\ndpkg-deb:\n{}",
            list(&ours.deb),
            list(&reference)
        );
    }
    assert_eq!(ours.written.size, a.len() as u64);
}

#[test]
fn xz_deb_holds_the_same_tars_as_dpkg_deb() {
    if !require_tool("dpkg-deb") || !require_tool("dpkg-gencontrol") || !require_tool("ar") {
        return;
    }
    let ours = build_fixture(CompressionKind::Xz, 0);
    let dir = tempfile::tempdir().unwrap();
    let (reference, _) = dpkg_deb_reference(dir.path(), "xz");
    let members = |deb: &Path| run_ok(Command::new("ar").arg("t").arg(deb));
    assert_eq!(members(&ours.deb), members(&reference));
    assert_eq!(
        members(&ours.deb),
        "debian-binary\ncontrol.tar.xz\ndata.tar.xz\n"
    );
    for what in ["--fsys-tarfile", "--ctrl-tarfile"] {
        assert!(
            dpkg_deb(&[what], &ours.deb) == dpkg_deb(&[what], &reference),
            "{what} differs"
        );
    }
    // `--info` says the same but for line 2, the compressed sizes.
    let info = |deb: &Path| {
        let text = String::from_utf8(dpkg_deb(&["--info"], deb)).unwrap();
        text.lines()
            .enumerate()
            .filter(|(i, _)| *i != 1)
            .map(|(_, l)| format!("{l}\n"))
            .collect::<String>()
    };
    assert_eq!(info(&ours.deb), info(&reference));
}

#[test]
fn every_compression_reads_back_with_dpkg_deb_and_md5sums_check() {
    if !require_tool("dpkg-deb") || !require_tool("md5sum") || !require_tool("ar") {
        return;
    }
    let plain = build_fixture(CompressionKind::None, 1);
    let plain_tar = dpkg_deb(&["--fsys-tarfile"], &plain.deb);
    for (kind, ext) in [
        (CompressionKind::Xz, ".xz"),
        (CompressionKind::Gzip, ".gz"),
        (CompressionKind::Zstd, ".zst"),
        (CompressionKind::None, ""),
    ] {
        let b = build_fixture(kind, 2);
        let members = run_ok(Command::new("ar").arg("t").arg(&b.deb));
        assert_eq!(
            members,
            format!("debian-binary\ncontrol.tar{ext}\ndata.tar{ext}\n")
        );
        let info = String::from_utf8(dpkg_deb(&["--info"], &b.deb)).unwrap();
        assert!(info.contains(" Package: t\n"), "{info}");
        assert!(
            info.contains(&format!(
                " Installed-Size: {}\n",
                b.written.installed_size_kib
            )),
            "{info}"
        );
        assert_eq!(dpkg_deb(&["--fsys-tarfile"], &b.deb), plain_tar, "{kind}");
        let ctrl = dpkg_deb(&["--ctrl-tarfile"], &b.deb);
        assert_eq!(
            tar_list(&ctrl, "-t"),
            "./\n./control\n./md5sums\n./postinst\n./prerm\n"
        );
        dpkg_deb(&["--contents"], &b.deb);

        let x = tempfile::tempdir().unwrap();
        run_ok(Command::new("dpkg-deb").arg("-x").arg(&b.deb).arg(x.path()));
        run_ok(
            Command::new("dpkg-deb")
                .arg("-e")
                .arg(&b.deb)
                .arg(x.path().join("DEBIAN")),
        );
        let check = run_ok(
            Command::new("md5sum")
                .args(["-c", "--strict", "DEBIAN/md5sums"])
                .current_dir(x.path()),
        );
        let regular_files = items()
            .iter()
            .filter(|i| matches!(i, Item::File(..)))
            .count()
            + 1;
        assert_eq!(
            check.lines().filter(|l| l.ends_with(": OK")).count(),
            regular_files
        );
    }
}

fn tar_list(tar: &[u8], flags: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("tar")
        .args([flags, "-f", "-", "--full-time", "--numeric-owner"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(tar).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn gnu_tar_sees_root_owner_normalised_modes_longlinks_and_dpkg_order() {
    if !require_tool("dpkg-deb") || !require_tool("tar") {
        return;
    }
    let b = build_fixture(CompressionKind::Xz, 1);
    let data = dpkg_deb(&["--fsys-tarfile"], &b.deb);
    let verbose = String::from_utf8_lossy(&data).into_owned();
    assert!(!verbose.contains("PaxHeader"), "no PAX headers");
    let listing = tar_list(&data, "-tv");
    let mut names = Vec::new();
    for line in listing.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (mode, owner, name) = (f[0], f[1], f[5]);
        assert_eq!(owner, "0/0", "{line}");
        let expected = match &mode[..1] {
            "d" => "drwxr-xr-x",
            "l" => "lrwxrwxrwx",
            _ if name.ends_with(".sh") => "-rwxr-xr-x",
            _ => "-rw-r--r--",
        };
        assert_eq!(mode, expected, "{line}");
        assert!(line.contains("2020-09-13 12:26:40"), "mtime of {line}");
        names.push(name.to_string());
    }
    let long = format!("./{PREFIX}/{}/file.txt", long_dir());
    assert!(long.len() > 100 && names.contains(&long));
    assert!(listing.contains(&format!("./{PREFIX}/longlink -> {}/file.txt", long_dir())));
    assert!(format!("{}/file.txt", long_dir()).len() > 100);
    // GNU tar's listing and dpkg-deb's agree, and symlinks come last as dpkg-deb puts them.
    let dpkg_names: Vec<String> = String::from_utf8(dpkg_deb(&["-c"], &b.deb))
        .unwrap()
        .lines()
        .map(|l| l.split_whitespace().nth(5).unwrap().to_string())
        .collect();
    assert_eq!(names, dpkg_names);
    let sub = |n: &str| {
        names
            .iter()
            .position(|x| x == &format!("./{PREFIX}/{n}"))
            .unwrap()
    };
    assert!(
        sub("sub/") < sub("sub/c") && sub("sub/c") < sub("sub-y") && sub("sub-y") < sub("sub.x")
    );
    assert!(sub("link") > sub("sub.x") && sub("empty/") < sub("empty.txt"));
    assert_eq!(names[0], "./");
}

#[test]
fn same_bytes_whatever_threads_source_modes_and_mtimes() {
    let first = build_fixture(CompressionKind::Xz, 1);
    let bytes = fs::read(&first.deb).unwrap();
    for threads in [2, 0] {
        let other = build_fixture(CompressionKind::Xz, threads);
        assert!(fs::read(&other.deb).unwrap() == bytes, "threads {threads}");
    }
    // Other checkout modes and mtimes older than the build's mtime.
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    write_source(&src, 0o666, 0o775);
    run_ok(
        Command::new("touch")
            .args(["-h", "-d", "@1000"])
            .arg(src.join("hello.c")),
    );
    let deb = dir.path().join("other.deb");
    build(&data_tree(&src), compression(CompressionKind::Xz, 2), &deb).unwrap();
    assert!(fs::read(&deb).unwrap() == bytes, "modes and mtimes leaked");
}

/// This process' umask, from /proc/self/status (Linux >= 4.7).
fn own_umask() -> u32 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .expect("Umask in /proc/self/status");
    u32::from_str_radix(line.trim(), 8).unwrap()
}

/// Runs only as a child of `same_bytes_under_another_umask` (which sets its umask).
#[test]
#[ignore = "helper run by same_bytes_under_another_umask"]
fn umask_child() {
    let Some(out) = std::env::var_os("DEB_FORMAT_UMASK_OUT") else {
        return;
    };
    let out = PathBuf::from(out);
    let src = out.with_extension("src");
    write_source(&src, 0o600, 0o700);
    build(&data_tree(&src), compression(CompressionKind::Xz, 1), &out).unwrap();
}

#[test]
fn same_bytes_under_another_umask_and_mode_follows_it() {
    let ours = build_fixture(CompressionKind::Xz, 1);
    let mode = fs::metadata(&ours.deb).unwrap().permissions().mode() & 0o7777;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("umask.deb");
    run_ok(
        Command::new("sh")
            .arg("-c")
            .arg("umask 077 && exec \"$0\" --exact deb_format::umask_child --ignored --nocapture")
            .arg(std::env::current_exe().unwrap())
            .env("DEB_FORMAT_UMASK_OUT", &out),
    );
    assert!(fs::read(&out).unwrap() == fs::read(&ours.deb).unwrap());
    assert_eq!(
        fs::metadata(&out).unwrap().permissions().mode() & 0o7777,
        0o600
    );
    // Under this process' own umask the .deb gets 0644 minus the umask, not the 0600 a
    // temp file starts with.
    assert_eq!(mode, 0o644 & !own_umask());
}

#[test]
fn vanished_source_file_names_it_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    write_source(&src, 0o644, 0o755);
    let tree = data_tree(&src);
    fs::remove_file(src.join("sub/c")).unwrap();
    let out_dir = dir.path().join("out");
    fs::create_dir(&out_dir).unwrap();
    let err = build(
        &tree,
        compression(CompressionKind::Xz, 1),
        &out_dir.join("t.deb"),
    )
    .unwrap_err();
    assert!(
        matches!(&err, DebError::ReadSource { path, .. } if path == &src.join("sub/c")),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains(&src.join("sub/c").display().to_string())
    );
    assert_eq!(entries_left(&out_dir), Vec::<String>::new());
}

#[test]
fn directory_where_a_file_is_expected_names_it_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    write_source(&src, 0o644, 0o755);
    let tree = data_tree(&src);
    fs::remove_file(src.join("hello.c")).unwrap();
    fs::create_dir(src.join("hello.c")).unwrap();
    let out_dir = dir.path().join("out");
    fs::create_dir(&out_dir).unwrap();
    let err = build(
        &tree,
        compression(CompressionKind::Gzip, 1),
        &out_dir.join("t.deb"),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains(&src.join("hello.c").display().to_string()),
        "{err}"
    );
    assert_eq!(entries_left(&out_dir), Vec::<String>::new());
}

#[test]
fn control_render_failure_leaves_nothing_and_keeps_an_older_deb() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    write_source(&src, 0o644, 0o755);
    let tree = data_tree(&src);
    let out = dir.path().join("out/t.deb");
    fs::create_dir(out.parent().unwrap()).unwrap();
    fs::write(&out, b"older").unwrap();
    let build = DebBuild {
        data: &tree,
        maintainer_scripts: scripts(),
        mtime: MTIME,
        compression: compression(CompressionKind::Xz, 1),
    };
    let err = write_deb(
        &build,
        |_| Err(DebError::Control("unknown variable `x` in control".into())),
        &out,
    )
    .unwrap_err();
    assert!(err.to_string().contains("unknown variable `x`"), "{err}");
    assert_eq!(entries_left(out.parent().unwrap()), ["t.deb"]);
    assert_eq!(fs::read(&out).unwrap(), b"older");
}

#[test]
fn missing_or_unusable_output_dir_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    write_source(&src, 0o644, 0o755);
    let tree = data_tree(&src);
    let missing = dir.path().join("no/such/dir");
    let not_a_dir = dir.path().join("src/hello.c");
    for out_dir in [missing, not_a_dir] {
        let err = build(
            &tree,
            compression(CompressionKind::Xz, 1),
            &out_dir.join("t.deb"),
        )
        .unwrap_err();
        assert!(
            matches!(&err, DebError::OutputDir { dir, .. } if dir == &out_dir),
            "{err:?}"
        );
        assert!(err.to_string().contains(&out_dir.display().to_string()));
    }
}

#[test]
fn reserved_control_member_names_are_refused() {
    let tree = DataTree::new();
    let dir = tempfile::tempdir().unwrap();
    for name in ["control", "md5sums", "a/b", ""] {
        let build = DebBuild {
            data: &tree,
            maintainer_scripts: vec![ControlMember {
                name: name.into(),
                bytes: vec![],
                executable: true,
            }],
            mtime: MTIME,
            compression: Compression::default(),
        };
        let err = write_deb(
            &build,
            |k| Ok::<_, DebError>(control_text(k)),
            &dir.path().join("t.deb"),
        )
        .unwrap_err();
        assert!(
            matches!(err, DebError::BadControlMember { .. }),
            "{name}: {err:?}"
        );
    }
    assert_eq!(entries_left(dir.path()), Vec::<String>::new());
}
