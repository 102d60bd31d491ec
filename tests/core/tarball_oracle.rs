//! mktarball / ldtarball against dkms 3.0.10: each loads what the other made, into temp
//! trees, and both report the same status; unsafe tarballs are refused; output is reproducible.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::scratch::{Scratch, listing, ok, run};

/// A scratch tree with hello/0.1 added and built (by dkms-rs) for `kernels`.
fn built_hello(kernels: &[String]) -> Scratch {
    let s = Scratch::new(kernels);
    s.add_hello_source();
    ok(&mut s.dkms_rs(&["add", "hello/0.1"]));
    let mut build = s.dkms_rs(&["build", "hello/0.1"]);
    for k in kernels {
        build.args(["-k", k]);
    }
    ok(&mut build);
    s
}

/// Files of a tree as both tools leave them (dkms-rs's lock file is no part of the state).
fn tree_listing(s: &Scratch) -> Vec<String> {
    let mut all: Vec<String> = listing(&s.dkms_tree)
        .into_iter()
        .filter(|p| !p.ends_with(".dkms-rs.lock"))
        .collect();
    all.extend(
        listing(&s.source_tree)
            .into_iter()
            .map(|p| format!("src/{p}")),
    );
    all
}

fn status_both(s: &Scratch) -> (String, String) {
    (
        ok(&mut s.dkms(&["status"])),
        ok(&mut s.dkms_rs(&["status"])),
    )
}

#[test]
fn real_dkms_loads_what_dkms_rs_made_and_the_other_way_round() {
    let arch = support::arch();
    if !support::require_tool("dkms") {
        return;
    }
    let Some(kernels) = support::require_kernels(2) else {
        return;
    };
    let k1 = kernels[0].as_str();
    let maker = built_hello(&kernels);

    // dkms-rs makes a tarball of both kernels; real dkms loads it.
    let out = ok(&mut maker.dkms_rs(&[
        "mktarball",
        "hello/0.1",
        "-k",
        &kernels[0],
        "-k",
        &kernels[1],
    ]));
    let ours = maker.dkms_tree.join("hello/0.1/tarball").join(format!(
        "hello-0.1-kernel{}-{arch}-kernel{}-{arch}.dkms.tar.gz",
        kernels[0], kernels[1]
    ));
    assert!(ours.is_file(), "{out}");
    assert!(
        out.contains(&format!("Tarball location: {}", ours.display())),
        "{out}"
    );

    let by_dkms = Scratch::new(&kernels);
    ok(&mut by_dkms.dkms(&["ldtarball", ours.to_str().unwrap()]));
    let (theirs, mine) = status_both(&by_dkms);
    assert_eq!(mine, theirs);
    // dkms 3.0.10's load loop declares its paths `local -r`: it loads the first kernel of a
    // tarball only (the others stay for a build from source). dkms-rs loads them all.
    assert!(
        theirs.contains(&format!("hello/0.1, {k1}, {arch}: built")),
        "{theirs}"
    );
    let by_us = Scratch::new(&kernels);
    ok(&mut by_us.dkms_rs(&["ldtarball", ours.to_str().unwrap()]));
    let (theirs_view, mine) = status_both(&by_us);
    assert_eq!(mine, theirs_view);
    for k in &kernels {
        assert!(
            mine.contains(&format!("hello/0.1, {k}, {arch}: built")),
            "{mine}"
        );
    }
    // Real dkms installs the prebuilt module (no build) from what dkms-rs archived.
    ok(&mut by_dkms.dkms(&["install", "hello/0.1", "-k", k1, "--no-depmod"]));
    assert!(by_dkms.installed_module(k1, "hello").is_file());
    assert!(
        !by_dkms.dkms_tree.join("hello/0.1/build/hello.o").exists(),
        "dkms rebuilt the module instead of using the prebuilt one"
    );

    // Real dkms makes a tarball (one kernel: its multi-kernel loop archives the first one
    // only); dkms-rs and real dkms load it into two trees: same files, same status.
    ok(&mut maker.dkms(&["mktarball", "hello/0.1", "-k", k1]));
    let theirs_tarball = maker.dkms_tree.join(format!(
        "hello/0.1/tarball/hello-0.1-kernel{k1}-{arch}.dkms.tar.gz"
    ));
    assert!(theirs_tarball.is_file());
    let a = Scratch::new(&kernels);
    let b = Scratch::new(&kernels);
    ok(&mut a.dkms(&["ldtarball", theirs_tarball.to_str().unwrap()]));
    ok(&mut b.dkms_rs(&["ldtarball", theirs_tarball.to_str().unwrap()]));
    assert_eq!(tree_listing(&b), tree_listing(&a));
    let (theirs, mine) = status_both(&b);
    assert_eq!(mine, theirs);
    assert_eq!(theirs, format!("hello/0.1, {k1}, {arch}: built\n"));
    assert_eq!(status_both(&a).0, theirs);
    assert!(
        std::fs::read_link(b.dkms_tree.join("hello/0.1/source"))
            .is_ok_and(|l| l == b.source_tree.join("hello-0.1"))
    );

    // Loading again: both refuse with 8 (already added).
    let (code_theirs, _, _) = run(&mut a.dkms(&["ldtarball", theirs_tarball.to_str().unwrap()]));
    let (code_mine, _, err) = run(&mut b.dkms_rs(&["ldtarball", theirs_tarball.to_str().unwrap()]));
    assert_eq!((code_mine, code_theirs), (8, 8), "{err}");
    assert_eq!(err.lines().count(), 2, "{err}");

    // A missing archive: 2 for both.
    let (code_theirs, _, _) = run(&mut a.dkms(&["ldtarball", "--archive", "/nonexistent.tar.gz"]));
    let (code_mine, _, _) = run(&mut b.dkms_rs(&["ldtarball", "--archive", "/nonexistent.tar.gz"]));
    assert_eq!((code_mine, code_theirs), (2, 2));
}

#[test]
fn binaries_only_tarballs_load_the_same_in_both() {
    let arch = support::arch();
    if !support::require_tool("dkms") {
        return;
    }
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let k1 = kernels[0].as_str();
    let maker = built_hello(&kernels[..1]);
    let archive = maker.dir.path().join("bin.dkms.tar.gz");
    ok(&mut maker.dkms_rs(&[
        "mktarball",
        "hello/0.1",
        "-k",
        k1,
        "--binaries-only",
        "--archive",
        archive.to_str().unwrap(),
    ]));
    let listing_of = |tarball: &Path| -> Vec<String> {
        let out = support::run_ok(Command::new("tar").arg("tzf").arg(tarball));
        let mut v: Vec<String> = out.lines().map(str::to_string).collect();
        v.sort();
        v
    };
    let theirs_archive = maker.dir.path().join("theirs.dkms.tar.gz");
    ok(&mut maker.dkms(&[
        "mktarball",
        "hello/0.1",
        "-k",
        k1,
        "--binaries-only",
        "--archive",
        theirs_archive.to_str().unwrap(),
    ]));
    assert_eq!(listing_of(&archive), listing_of(&theirs_archive));

    // No source in the source tree: both leave a stub source/dkms.conf and exit 1.
    let a = Scratch::new(&kernels);
    let b = Scratch::new(&kernels);
    let (code_theirs, _, _) = run(&mut a.dkms(&["ldtarball", archive.to_str().unwrap()]));
    let (code_mine, _, _) = run(&mut b.dkms_rs(&["ldtarball", archive.to_str().unwrap()]));
    assert_eq!((code_mine, code_theirs), (1, 1));
    assert_eq!(tree_listing(&b), tree_listing(&a));
    assert_eq!(status_both(&a), status_both(&b));
    assert_eq!(status_both(&b).0, status_both(&b).1);

    // With the source in place (as a -dkms package ships it): loaded and added by both.
    let a = Scratch::new(&kernels);
    let b = Scratch::new(&kernels);
    a.add_hello_source();
    b.add_hello_source();
    ok(&mut a.dkms(&["ldtarball", "--archive", archive.to_str().unwrap()]));
    ok(&mut b.dkms_rs(&["ldtarball", "--archive", archive.to_str().unwrap()]));
    assert_eq!(tree_listing(&b), tree_listing(&a));
    let (theirs, mine) = status_both(&b);
    assert_eq!(mine, theirs);
    assert_eq!(theirs, format!("hello/0.1, {k1}, {arch}: built\n"));
}

/// A gzipped tar made by GNU tar from `dir` with `members` (-P keeps `..` and `/`).
fn gnu_tarball(dir: &Path, members: &[&str], out: &Path) {
    support::run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(dir)
            .arg("-czPf")
            .arg(out)
            .args(members),
    );
}

#[test]
fn unsafe_tarballs_are_refused_whole() {
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let good = work.path().join("good");
    std::fs::create_dir_all(good.join("dkms_source_tree")).unwrap();
    std::fs::create_dir_all(good.join("dkms_main_tree")).unwrap();
    for f in ["dkms.conf", "Makefile", "hello.c"] {
        std::fs::copy(
            support::hello_source().join(f),
            good.join("dkms_source_tree").join(f),
        )
        .unwrap();
    }
    let escape_dir = work.path().join("escape");
    std::fs::create_dir_all(&escape_dir).unwrap();
    std::fs::write(work.path().join("outside"), "x").unwrap();

    let cases: Vec<(&str, PathBuf)> = {
        let mut v = Vec::new();
        // `..` in a name.
        let t = work.path().join("dotdot.tar.gz");
        gnu_tarball(&good, &["./dkms_source_tree", "../outside"], &t);
        v.push(("..", t));
        // An absolute name.
        let t = work.path().join("abs.tar.gz");
        let abs = work.path().join("outside");
        gnu_tarball(&good, &["./dkms_source_tree", abs.to_str().unwrap()], &t);
        v.push(("absolute", t));
        // A symlink out of the archive, and a file written through it.
        let linked = work.path().join("linked");
        std::fs::create_dir_all(linked.join("dkms_source_tree")).unwrap();
        std::os::unix::fs::symlink(&escape_dir, linked.join("dkms_source_tree/evil")).unwrap();
        let t = work.path().join("symlink.tar.gz");
        gnu_tarball(&linked, &["./dkms_source_tree"], &t);
        v.push(("symlink", t));
        let relative = work.path().join("relative");
        std::fs::create_dir_all(relative.join("dkms_source_tree")).unwrap();
        std::os::unix::fs::symlink("../../..", relative.join("dkms_source_tree/up")).unwrap();
        let t = work.path().join("relative.tar.gz");
        gnu_tarball(&relative, &["./dkms_source_tree"], &t);
        v.push(("relative symlink", t));
        v
    };
    for (what, tarball) in cases {
        let s = Scratch::new(&kernels);
        let (code, out, err) = run(&mut s.dkms_rs(&["ldtarball", tarball.to_str().unwrap()]));
        assert_eq!(code, 7, "{what}: {out}{err}");
        assert_eq!(err.lines().count(), 2, "{what}: {err}");
        assert!(err.contains("refusing to load"), "{what}: {err}");
        assert_eq!(listing(&s.source_tree), Vec::<String>::new(), "{what}");
        assert!(!s.dkms_tree.join("hello").exists(), "{what}");
        assert_eq!(
            std::fs::read_dir(&escape_dir).unwrap().count(),
            0,
            "{what}: wrote through the link"
        );
        assert!(
            listing(&s.dkms_tree).iter().all(|p| p == ".dkms-rs.lock"),
            "{what}: extraction leftovers {:?}",
            listing(&s.dkms_tree)
        );
    }

    // Not a DKMS tarball at all: 7 as dkms says.
    let plain = work.path().join("plain.tar.gz");
    std::fs::create_dir_all(work.path().join("plain/x")).unwrap();
    gnu_tarball(&work.path().join("plain"), &["./x"], &plain);
    let s = Scratch::new(&kernels);
    let (code, _, err) = run(&mut s.dkms_rs(&["ldtarball", plain.to_str().unwrap()]));
    assert_eq!(code, 7, "{err}");
}

#[test]
fn tarballs_are_reproducible() {
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let k1 = kernels[0].as_str();
    let s = built_hello(&kernels[..1]);
    let make = |name: &str, epoch: Option<&str>| -> Vec<u8> {
        let out = s.dir.path().join(name);
        let mut cmd = s.dkms_rs(&[
            "mktarball",
            "hello/0.1",
            "-k",
            k1,
            "--archive",
            out.to_str().unwrap(),
        ]);
        match epoch {
            Some(e) => cmd.env("SOURCE_DATE_EPOCH", e),
            None => cmd.env_remove("SOURCE_DATE_EPOCH"),
        };
        ok(&mut cmd);
        std::fs::read(out).unwrap()
    };
    let a = make("a.dkms.tar.gz", Some("1700000000"));
    // Other mtimes and modes on the inputs, another umask: the same bytes.
    let source = s.source_tree.join("hello-0.1");
    support::run_ok(Command::new("touch").arg(source.join("hello.c")));
    support::run_ok(
        Command::new("chmod")
            .arg("0600")
            .arg(source.join("Makefile")),
    );
    let b = make("b.dkms.tar.gz", Some("1700000000"));
    assert!(a == b, "mktarball is not reproducible");
    // gzip header mtime 0; every entry root/root with the epoch.
    assert_eq!(&a[4..8], &[0, 0, 0, 0]);
    let listing = support::run_ok(
        Command::new("tar")
            .args(["--utc", "-tvzf"])
            .arg(s.dir.path().join("a.dkms.tar.gz")),
    );
    for line in listing.lines() {
        assert!(line.contains(" root/root "), "{line}");
        assert!(line.contains("2023-11-14 22:13"), "{line}");
    }
    // Without SOURCE_DATE_EPOCH: the newest input's mtime.
    let c = make("c.dkms.tar.gz", None);
    let d = make("d.dkms.tar.gz", None);
    assert!(c == d);
}
