//! Tarballs: arbitrary bytes extracted as a dkms tarball, and its `dkms_source_tree/` merged
//! twice into a source dir as ldtarball does, never panic, never write outside the two
//! directories given (nor change what was extracted while merging), and leave no symlink that
//! leads out of them, as the kernel's own `openat2(RESOLVE_BENEATH)` judges it.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use dkms::tarball::{copy_merge, extract};

/// What one name under a directory is: a directory, a symlink and its target, or a regular
/// file's bytes (anything else fails the check: the extractor makes nothing else).
#[derive(Debug, PartialEq, Eq)]
enum Node {
    Dir,
    Symlink(PathBuf),
    File(Vec<u8>),
}

/// Everything under `root` (not following links), by path relative to it; the directories
/// in `skip` (relative) are listed but not entered.
fn snapshot(root: &Path, skip: &[&Path]) -> BTreeMap<PathBuf, Node> {
    let mut out = BTreeMap::new();
    let mut walk = walkdir::WalkDir::new(root).min_depth(1).into_iter();
    while let Some(entry) = walk.next() {
        let entry = entry.unwrap_or_else(|e| panic!("walk {}: {e}", root.display()));
        let rel = entry
            .path()
            .strip_prefix(root)
            .expect("under root")
            .to_path_buf();
        let meta = entry.path().symlink_metadata().expect("lstat");
        let node = if meta.is_dir() {
            if skip.contains(&rel.as_path()) {
                walk.skip_current_dir();
            }
            Node::Dir
        } else if meta.file_type().is_symlink() {
            Node::Symlink(std::fs::read_link(entry.path()).expect("readlink"))
        } else if meta.is_file() {
            // A hard link to anything would let a later write reach it.
            assert_eq!(meta.nlink(), 1, "{} is hard-linked", entry.path().display());
            Node::File(std::fs::read(entry.path()).expect("read file"))
        } else {
            panic!(
                "{} is neither file, dir nor symlink",
                entry.path().display()
            );
        };
        out.insert(rel, node);
    }
    out
}

/// No symlink under `root` resolves out of it: opening each with `RESOLVE_BENEATH` from
/// `root` never fails with EXDEV (a dangling or looping link is fine: it leads nowhere).
fn links_stay_beneath(root: &Path) {
    let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).expect("no NUL in a path");
    let dir = std::fs::File::open(root).expect("open root");
    for (rel, node) in snapshot(root, &[]) {
        if !matches!(node, Node::Symlink(_)) {
            continue;
        }
        // SAFETY: open_how is plain integers (non-exhaustive: no struct literal).
        let mut how: libc::open_how = unsafe { std::mem::zeroed() };
        how.flags = (libc::O_PATH | libc::O_CLOEXEC) as u64;
        how.resolve = libc::RESOLVE_BENEATH;
        let name = c(&rel);
        // SAFETY: valid fd, NUL-terminated path, `how` of the size passed.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                name.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if fd >= 0 {
            // SAFETY: the fd was just opened here.
            unsafe { libc::close(fd as i32) };
            continue;
        }
        let err = std::io::Error::last_os_error();
        assert_ne!(
            err.raw_os_error(),
            Some(libc::EXDEV),
            "{}/{} leads out of {}",
            root.display(),
            rel.display(),
            root.display()
        );
    }
}

/// Extract `data` and merge its source tree, checking what [the module](self) says.
pub fn extract_stays_inside(data: &[u8]) {
    let base = tempfile::tempdir().expect("temp dir");
    let archive = base.path().join("archive");
    std::fs::write(&archive, data).expect("write archive");
    let extracted = base.path().join("trees/extracted");
    let sources = base.path().join("trees/src");
    std::fs::create_dir_all(&extracted).expect("extraction dir");
    std::fs::create_dir_all(&sources).expect("source tree");
    let merged = sources.join("m-1");
    if extract(&archive, &extracted).is_ok() {
        links_stay_beneath(&extracted);
        let before = snapshot(&extracted, &[]);
        let from = extracted.join("dkms_source_tree");
        if from.symlink_metadata().is_ok_and(|m| m.is_dir()) {
            // Twice: the second merges into what the first left (links included).
            for _ in 0..2 {
                if copy_merge(&archive, "dkms_source_tree", &from, &merged, false).is_err() {
                    break;
                }
                links_stay_beneath(&merged);
            }
        }
        assert!(
            snapshot(&extracted, &[]) == before,
            "merging changed the extracted tree"
        );
    }
    let rel = |p: &Path| {
        p.strip_prefix(base.path())
            .expect("under base")
            .to_path_buf()
    };
    let outside = snapshot(base.path(), &[&rel(&extracted), &rel(&merged)]);
    let mut expected = vec![
        PathBuf::from("archive"),
        PathBuf::from("trees"),
        rel(&extracted),
        rel(&sources),
    ];
    if merged.symlink_metadata().is_ok() {
        expected.push(rel(&merged));
    }
    expected.sort();
    let names: Vec<PathBuf> = outside.keys().cloned().collect();
    assert_eq!(
        names, expected,
        "written outside the extraction and merge dirs"
    );
    assert!(
        outside[&PathBuf::from("archive")] == Node::File(data.to_vec()),
        "the archive itself was changed"
    );
}
