//! A disk that fills up under `ldtarball` or `add DIR` (issue 9): one line naming the file and
//! ENOSPC, a non-zero exit, and the trees exactly as before (no half-written source dir, no
//! temp file). The source (or dkms) tree is a 2 MiB tmpfs in a private mount namespace
//! ([`Scratch::dkms_rs_on_small_fs`]); the module carries 3 MiB of random bytes (incompressible).
//! The same commands with room to spare succeed: the control that nothing else failed.

use crate::support;

use std::io::Read;
use std::path::PathBuf;
use std::process::Command;

use support::scratch::{Scratch, SmallFsRun, is_root, listing, ok};

const KERNEL: &str = support::FAKE_KERNEL;
const CONF: &str = "PACKAGE_NAME=full\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME[0]=full\n\
                    DEST_MODULE_LOCATION[0]=/updates\n";

/// Root, unshare and tar, or skip (fail under CI).
fn ready() -> bool {
    if !is_root() && !support::missing("root (to mount a tmpfs in a private mount namespace)") {
        return false;
    }
    support::require_tool("unshare") && support::require_tool("tar")
}

/// `<scratch>/in/full`: a module source with dkms.conf, two small files, `big.bin` (3 MiB
/// from /dev/urandom) and one more small file after it.
fn module_dir(s: &Scratch) -> PathBuf {
    let dir = s.dir.path().join("in/full");
    std::fs::create_dir_all(&dir).expect("module dir");
    std::fs::write(dir.join("dkms.conf"), CONF).expect("dkms.conf");
    std::fs::write(dir.join("a.c"), "a\n").expect("a.c");
    std::fs::write(dir.join("Kbuild"), "obj-m := full.o\n").expect("Kbuild");
    let mut big = Vec::new();
    std::fs::File::open("/dev/urandom")
        .expect("/dev/urandom")
        .take(3 << 20)
        .read_to_end(&mut big)
        .expect("random bytes");
    std::fs::write(dir.join("big.bin"), big).expect("big.bin");
    std::fs::write(dir.join("z.c"), "z\n").expect("z.c");
    dir
}

/// A source tarball of [`module_dir`], made by tar.
fn tarball(s: &Scratch) -> PathBuf {
    let dir = module_dir(s);
    let stage = s.dir.path().join("stage");
    std::fs::create_dir_all(&stage).expect("stage");
    ok(Command::new("cp")
        .arg("-r")
        .arg(&dir)
        .arg(stage.join("dkms_source_tree")));
    let archive = s.dir.path().join("full.dkms.tar.gz");
    ok(Command::new("tar")
        .arg("-C")
        .arg(&stage)
        .arg("-czf")
        .arg(&archive)
        .arg("dkms_source_tree"));
    archive
}

/// The scratch dir's listing outside the small file system, without the tree lock.
fn rest(s: &Scratch) -> Vec<String> {
    let mut l = listing(s.dir.path());
    l.retain(|p| p != "tree/.dkms-rs.lock");
    l
}

/// Failed with `code` and one line that names `file` and ENOSPC; the small file system
/// as before.
fn assert_refused(what: &str, r: &SmallFsRun, code: i32, file: &str) {
    assert_eq!(r.code, code, "{what}: {r:?}");
    assert_eq!(r.stderr.lines().count(), 2, "{what}: {}", r.stderr);
    assert!(r.stderr.starts_with("\nError! "), "{what}: {}", r.stderr);
    assert!(
        r.stderr.contains("No space left on device") && r.stderr.contains(file),
        "{what}: {}",
        r.stderr
    );
    assert_eq!(r.after, r.before, "{what}: the full file system changed");
}

#[test]
fn ldtarball_on_a_full_disk_leaves_the_trees_as_they_were() {
    if !ready() {
        return;
    }
    let s = Scratch::new(&[KERNEL.to_owned()]);
    let archive = tarball(&s);
    let archive = archive.to_str().expect("utf-8");
    let load = ["ldtarball", archive, "-k", KERNEL];
    let src = s.source_tree.clone();
    let in_src = |name: &str| format!("{}/full-1/{name}", src.display());

    // The source tree fills up while the source is copied into it.
    let before = rest(&s);
    let r = s.dkms_rs_on_small_fs(&src, "2m", &load);
    assert_refused("empty source tree", &r, 6, &in_src("big.bin"));
    assert!(r.before.is_empty(), "{:?}", r.before);
    assert_eq!(rest(&s), before, "the dkms tree changed");

    // Over a source dir that is there (not added): merged on a copy, so it stays as it was.
    let old = src.join("full-1");
    std::fs::create_dir_all(&old).expect("old source");
    std::fs::write(old.join("dkms.conf"), CONF).expect("old conf");
    std::fs::write(old.join("old.c"), "old\n").expect("old file");
    let before = rest(&s);
    for (what, extra) in [("merge", None), ("--force", Some("--force"))] {
        let mut args = load.to_vec();
        args.extend(extra);
        let r = s.dkms_rs_on_small_fs(&src, "2m", &args);
        assert_refused(what, &r, 6, &in_src("big.bin"));
        assert!(
            r.before.iter().any(|l| l.starts_with("full-1/old.c f ")),
            "{r:?}"
        );
        assert_eq!(rest(&s), before, "{what}: the trees changed");
    }

    // The dkms tree (where the tarball is extracted first) fills up.
    let r = s.dkms_rs_on_small_fs(&s.dkms_tree, "2m", &load);
    assert_refused("dkms tree", &r, 6, "/dkms_source_tree/big.bin");
    assert_eq!(rest(&s), before, "the source tree changed");

    // With room, the same load succeeds, merged over what was there.
    let r = s.dkms_rs_on_small_fs(&src, "16m", &load);
    assert_eq!(r.code, 0, "{r:?}");
    for name in ["old.c", "big.bin", "z.c"] {
        assert!(
            r.after
                .iter()
                .any(|l| l.starts_with(&format!("full-1/{name} f "))),
            "{r:?}"
        );
    }
}

#[test]
fn add_of_a_directory_on_a_full_disk_leaves_the_trees_as_they_were() {
    if !ready() {
        return;
    }
    let s = Scratch::new(&[KERNEL.to_owned()]);
    let dir = module_dir(&s);
    let add = ["add", dir.to_str().expect("utf-8"), "-k", KERNEL];
    let src = s.source_tree.clone();
    let big = format!("{}/full-1/./big.bin", src.display());

    let before = rest(&s);
    let r = s.dkms_rs_on_small_fs(&src, "2m", &add);
    assert_refused("empty source tree", &r, 1, &big);
    assert!(r.before.is_empty(), "{:?}", r.before);
    assert_eq!(rest(&s), before, "the dkms tree changed");

    let old = src.join("full-1");
    std::fs::create_dir_all(&old).expect("old source");
    std::fs::write(old.join("old.c"), "old\n").expect("old file");
    let before = rest(&s);
    for (what, extra) in [("merge", None), ("--force", Some("--force"))] {
        let mut args = add.to_vec();
        args.extend(extra);
        let r = s.dkms_rs_on_small_fs(&src, "2m", &args);
        assert_refused(what, &r, 1, &big);
        assert_eq!(rest(&s), before, "{what}: the trees changed");
    }

    let r = s.dkms_rs_on_small_fs(&src, "16m", &add);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.after.iter().any(|l| l.starts_with("full-1/old.c f ")),
        "{r:?}"
    );
    assert!(s.dkms_tree.join("full/1/source").is_symlink());
}
