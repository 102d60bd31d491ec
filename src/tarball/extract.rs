//! Loading a dkms tarball safely: names checked, nothing written through a symlink, every
//! symlink resolved beneath the directory it is loaded as once all entries are out, and
//! nothing loaded before all of that passed; merging its trees into place without following a
//! symlink that was there.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use super::resolve::{Node, resolve_beneath};
use super::{Refusal, TarballError};
use crate::atomic;

/// An archive name made safe: relative, no `..`, `./` and empty components dropped.
pub(super) fn safe_name(raw: &[u8]) -> Result<PathBuf, Refusal> {
    let Ok(name) = std::str::from_utf8(raw) else {
        return Err(Refusal::NotUtf8);
    };
    if name.starts_with('/') {
        return Err(Refusal::Absolute);
    }
    let mut out = PathBuf::new();
    for c in Path::new(name).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => return Err(Refusal::DotDot),
            Component::RootDir | Component::Prefix(_) => return Err(Refusal::Absolute),
        }
    }
    Ok(out)
}

/// The directories of a dkms tarball's layout that are loaded (see the module docs).
const SOURCE: &str = "dkms_source_tree";
const BINARIES: &str = "dkms_binaries_only";
const MAIN: &str = "dkms_main_tree";

/// The directory a symlink at `rel` (in the extraction directory) must stay inside: the one it
/// is loaded as: `dkms_source_tree/` (it becomes `<src>/<m>-<v>`), `dkms_binaries_only/`, each
/// `dkms_main_tree/<k>/<a>/` (moved to `<tree>/<m>/<v>/<k>/<a>`); the extraction directory
/// for anything else (not loaded). `None` when `rel` is itself one of these directories, or
/// `dkms_main_tree/` or a `dkms_main_tree/<k>/`: the loader walks them as directories.
pub(super) fn link_root(rel: &Path) -> Option<PathBuf> {
    let names: Vec<&OsStr> = rel.components().map(Component::as_os_str).collect();
    match names.as_slice() {
        [top] if [SOURCE, BINARIES, MAIN].iter().any(|d| top == d) => None,
        [top, _] | [top, _, _] if *top == MAIN => None,
        [top, k, a, _, ..] if *top == MAIN => Some([top, k, a].iter().collect()),
        [top, _, ..] if *top == SOURCE || *top == BINARIES => Some(PathBuf::from(top)),
        _ => Some(PathBuf::new()),
    }
}

/// How a root of [`link_root`] is named in messages.
fn root_name(root: &Path) -> String {
    if root.as_os_str().is_empty() {
        "the archive".into()
    } else {
        format!("{}/", root.display())
    }
}

/// Whether a directory on the way from `dest` to `dest/name` is a symlink (the name itself
/// is not looked at).
fn under_symlink(dest: &Path, name: &Path) -> bool {
    let mut parent = dest.to_path_buf();
    name.parent()
        .into_iter()
        .flat_map(Path::components)
        .any(|c| {
            parent.push(c);
            parent.is_symlink()
        })
}

/// The decompressed stream of an archive, by its magic bytes (what `tar -xaf` does).
fn open_archive(archive: &Path) -> Result<Box<dyn Read>, TarballError> {
    let read_err = |source| TarballError::Read {
        path: archive.to_path_buf(),
        source,
    };
    let mut file = BufReader::new(File::open(archive).map_err(read_err)?);
    let mut magic = [0u8; 6];
    let mut got = 0;
    while got < magic.len() {
        match file.read(&mut magic[got..]).map_err(read_err)? {
            0 => break,
            n => got += n,
        }
    }
    let head = std::io::Cursor::new(magic[..got].to_vec()).chain(file);
    let magic = &magic[..got];
    Ok(if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(head))
    } else if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(liblzma::read::XzDecoder::new_multi_decoder(head))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::new(head).map_err(read_err)?)
    } else if magic.starts_with(b"BZh") {
        return Err(TarballError::Invalid {
            archive: archive.to_path_buf(),
            detail: "bzip2 compression is not supported (use gzip, xz or zstd)".into(),
        });
    } else {
        Box::new(head)
    })
}

/// Extract `archive` into the empty directory `dest`, refusing unsafe entries (see the module
/// docs). Modes keep only the executable bit (0755/0644); mtimes are not restored, as dkms's
/// `cp -rf` out of its extraction directory does not restore them either.
///
/// While entries are written, none is written under a symlink and a file never through one,
/// so nothing outside `dest` is touched. Where symlinks lead is judged once every entry is
/// out ([`check_symlinks`]): a link judged when it is written could be redirected by a later
/// entry (one of the names its target goes through, missing then, made a link).
pub fn extract(archive: &Path, dest: &Path) -> Result<(), TarballError> {
    let invalid = |detail: String| TarballError::Invalid {
        archive: archive.to_path_buf(),
        detail,
    };
    let unsafe_entry = |entry: &Path, reason| TarballError::Unsafe {
        archive: archive.to_path_buf(),
        entry: entry.display().to_string(),
        reason,
    };
    let werr = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TarballError::Write { path, source }
    };
    let mut tar = tar::Archive::new(open_archive(archive)?);
    let entries = tar.entries().map_err(|e| invalid(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| invalid(e.to_string()))?;
        let raw = entry.path_bytes().into_owned();
        let name = safe_name(&raw).map_err(|reason| TarballError::Unsafe {
            archive: archive.to_path_buf(),
            entry: String::from_utf8_lossy(&raw).into_owned(),
            reason,
        })?;
        let kind = entry.header().entry_type();
        if name.as_os_str().is_empty() {
            if kind.is_dir() {
                continue;
            }
            return Err(unsafe_entry(&name, Refusal::ExtractionDir));
        }
        // Nothing is written through a symlink the archive made.
        if under_symlink(dest, &name) {
            return Err(unsafe_entry(&name, Refusal::UnderSymlink));
        }
        let path = dest.join(&name);
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p).map_err(werr(p))?;
        }
        let replace = |path: &Path| -> Result<(), TarballError> {
            match std::fs::symlink_metadata(path) {
                Ok(m) if m.is_dir() => Err(unsafe_entry(&name, Refusal::ReplacesDir)),
                Ok(_) => std::fs::remove_file(path).map_err(werr(path)),
                Err(_) => Ok(()),
            }
        };
        // A new file, never through a link (`create_new` fails on one, dangling or not).
        let create = |path: &Path, executable: bool| {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(if executable { 0o755 } else { 0o644 })
                .open(path)
                .map_err(werr(path))
        };
        if kind.is_dir() {
            match std::fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(unsafe_entry(&name, Refusal::ReplacesFile)),
                Err(_) => std::fs::create_dir(&path).map_err(werr(&path))?,
            }
        } else if kind.is_file() || kind.is_contiguous() {
            replace(&path)?;
            let executable = entry.header().mode().unwrap_or(0o644) & 0o111 != 0;
            let mut out = create(&path, executable)?;
            // A read error is the archive's; a write error (a full disk) names the file.
            copy_entry(&mut entry, &mut out).map_err(|e| match e {
                Side::Read(e) => invalid(e.to_string()),
                Side::Write(e) => werr(&path)(e),
            })?;
            out.flush().map_err(werr(&path))?;
        } else if kind.is_symlink() {
            let Some(target) = entry.link_name_bytes() else {
                return Err(unsafe_entry(&name, Refusal::SymlinkWithoutTarget));
            };
            let target = PathBuf::from(String::from_utf8_lossy(&target).into_owned());
            replace(&path)?;
            std::os::unix::fs::symlink(&target, &path).map_err(werr(&path))?;
        } else if kind.is_hard_link() {
            // Loaded as a copy of a regular file this extraction wrote (`dest` was empty),
            // reached through directories only: what dkms's `cp -rf` out of its extraction
            // directory leaves, and no link to anything is ever made.
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| unsafe_entry(&name, Refusal::HardLinkWithoutTarget))
                .and_then(|t| {
                    safe_name(&t).map_err(|_| unsafe_entry(&name, Refusal::HardLinkOut))
                })?;
            let from = dest.join(&target);
            let is_file = std::fs::symlink_metadata(&from).is_ok_and(|m| m.is_file());
            if target.as_os_str().is_empty() || under_symlink(dest, &target) || !is_file {
                return Err(unsafe_entry(&name, Refusal::HardLinkToNoFile));
            }
            let mut input = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&from)
                .map_err(|source| TarballError::Read {
                    path: from.clone(),
                    source,
                })?;
            let executable = input
                .metadata()
                .is_ok_and(|m| m.permissions().mode() & 0o111 != 0);
            replace(&path)?;
            let mut out = create(&path, executable)?;
            io::copy(&mut input, &mut out).map_err(werr(&path))?;
            out.flush().map_err(werr(&path))?;
        } else if kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
            continue;
        } else {
            return Err(unsafe_entry(&name, Refusal::NotFileDirOrSymlink));
        }
    }
    check_symlinks(archive, dest)
}

/// Which side of a copy failed.
enum Side {
    Read(io::Error),
    Write(io::Error),
}

/// `io::copy`, telling the reader's errors from the writer's.
fn copy_entry(input: &mut impl Read, out: &mut impl Write) -> Result<(), Side> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Side::Read(e)),
        };
        out.write_all(&buf[..n]).map_err(Side::Write)?;
    }
}

/// Every symlink under `dest` resolves, link after link, beneath the directory it will be
/// loaded as ([`link_root`]), as openat2's `RESOLVE_BENEATH` would: the whole tarball is
/// refused otherwise, naming the first such link.
fn check_symlinks(archive: &Path, dest: &Path) -> Result<(), TarballError> {
    let read = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TarballError::Read { path, source }
    };
    for entry in walkdir::WalkDir::new(dest)
        .min_depth(1)
        .follow_links(false)
        .sort_by_file_name()
    {
        let entry = entry.map_err(|e| TarballError::Read {
            path: e.path().unwrap_or(dest).to_path_buf(),
            source: e.into(),
        })?;
        if !entry.file_type().is_symlink() {
            continue;
        }
        let rel = entry.path().strip_prefix(dest).unwrap_or(entry.path());
        let unsafe_entry = |reason| TarballError::Unsafe {
            archive: archive.to_path_buf(),
            entry: rel.display().to_string(),
            reason,
        };
        let Some(root) = link_root(rel) else {
            return Err(unsafe_entry(Refusal::SymlinkForLayoutDir));
        };
        let target = std::fs::read_link(entry.path()).map_err(read(entry.path()))?;
        let base = dest.join(&root);
        let mut lookup = |p: &Path| Node::on_disk(&base.join(p));
        let in_root = rel.strip_prefix(&root).unwrap_or(rel);
        if let Err(escape) =
            resolve_beneath(&mut lookup, in_root, &target).map_err(read(entry.path()))?
        {
            return Err(unsafe_entry(Refusal::SymlinkOut {
                root: root_name(&root),
                escape,
            }));
        }
    }
    Ok(())
}

/// One thing a merge writes, in the order written (a directory before what is in it).
struct Step {
    /// Relative to both the merged directory and its destination ("" for the directory).
    rel: PathBuf,
    kind: StepKind,
}

enum StepKind {
    Dir,
    File,
    Symlink(PathBuf),
}

/// Merge the directory `from` (extracted and checked by [`extract`]; its entries are named
/// `<entry_prefix>/<rel>` in `archive`) into `to`, as `cp -rf from/. to` does (`replace`: as
/// `rm -rf to; cp -r from to` does); judged whole before anything is written. The merged
/// directory is made beside `to` (a copy of `to` with `from` merged in, or `from` alone) and
/// put in its place in one rename ([`atomic::PendingDir`]): a refusal, a full disk or any other
/// error leaves `to` as it was and no temporary file.
///
/// Symlinks already at or under `to` (made by anyone: an earlier load, the admin, a package)
/// are never followed. Where the tarball has a directory and `to` a symlink, the tarball is
/// refused rather than the link replaced: replacing would delete what the link's owner meant
/// and merge into an empty directory instead, silently; refusing changes nothing and names the
/// link, for whoever owns it to decide. Where the tarball has a file or a symlink, one already
/// there is replaced by rename (not written through, as `cp -f` would). And no symlink ends up
/// leading out of `to`: neither the tarball's, resolved in the merged tree, nor one already
/// there that stayed inside until now (the tarball's links and files could redirect it).
pub fn copy_merge(
    archive: &Path,
    entry_prefix: &str,
    from: &Path,
    to: &Path,
    replace: bool,
) -> Result<(), TarballError> {
    let existing = (!replace).then_some(to);
    let steps = plan_merge(archive, entry_prefix, from, to, existing)?;
    let werr = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TarballError::Write { path, source }
    };
    let pending = atomic::PendingDir::create(to).map_err(werr(to))?;
    let new = pending.path();
    if existing.is_some() && Node::on_disk(to).map_err(werr(to))? == Node::Dir {
        // The merge is made on a copy of what is there.
        pending.copy_in("-a", to).map_err(werr(to))?;
    }
    for step in steps {
        // Written in the new directory; errors name where it is going.
        let (at, dest) = if step.rel.as_os_str().is_empty() {
            (new.to_path_buf(), to.to_path_buf())
        } else {
            (new.join(&step.rel), to.join(&step.rel))
        };
        match step.kind {
            StepKind::Dir => match Node::on_disk(&at).map_err(werr(&dest))? {
                Node::Dir => {}
                Node::Missing => std::fs::create_dir(&at).map_err(werr(&dest))?,
                // Changed since the plan: still never followed.
                Node::Symlink(_) | Node::Other => {
                    return Err(merge_refusal(archive, entry_prefix, &step.rel, &dest));
                }
            },
            StepKind::File => copy_new(&from.join(&step.rel), &at).map_err(werr(&dest))?,
            StepKind::Symlink(target) => {
                remove_non_dir(&at).map_err(werr(&dest))?;
                std::os::unix::fs::symlink(&target, &at).map_err(werr(&dest))?;
            }
        }
    }
    pending.commit().map_err(werr(to))
}

/// Remove the file or link at `path`, if any (never a directory: the plan kept those).
fn remove_non_dir(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            "a directory is in the way",
        )),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Copy the file `from` to `at` as a new file with `from`'s mode, replacing a file or link
/// there without writing through it.
fn copy_new(from: &Path, at: &Path) -> io::Result<()> {
    remove_non_dir(at)?;
    let mut input = File::open(from)?;
    let mode = input.metadata()?.permissions().mode() & 0o7777;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(at)?;
    io::copy(&mut input, &mut out)?;
    out.flush()
}

/// `<entry_prefix>/<rel>`, as an entry of the archive is named.
fn entry_name(entry_prefix: &str, rel: &Path) -> String {
    if rel.as_os_str().is_empty() {
        entry_prefix.to_string()
    } else {
        format!("{entry_prefix}/{}", rel.display())
    }
}

fn merge_refusal(archive: &Path, entry_prefix: &str, rel: &Path, link: &Path) -> TarballError {
    TarballError::Unsafe {
        archive: archive.to_path_buf(),
        entry: entry_name(entry_prefix, rel),
        reason: Refusal::MergeThroughSymlink {
            link: link.to_path_buf(),
        },
    }
}

/// What [`copy_merge`] writes, once it is known that writing it is safe; merged with what
/// `existing` (`to`, or `None`: `to` is replaced) has.
fn plan_merge(
    archive: &Path,
    entry_prefix: &str,
    from: &Path,
    to: &Path,
    existing: Option<&Path>,
) -> Result<Vec<Step>, TarballError> {
    let read = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TarballError::Read { path, source }
    };
    let in_the_way = |path: &Path, kind: io::ErrorKind, what: &str| TarballError::Write {
        path: path.to_path_buf(),
        source: io::Error::new(kind, format!("{what} is in the way")),
    };
    let mut steps = Vec::new();
    for entry in walkdir::WalkDir::new(from)
        .follow_links(false)
        .sort_by_file_name()
    {
        let entry = entry.map_err(|e| TarballError::Read {
            path: e.path().unwrap_or(from).to_path_buf(),
            source: e.into(),
        })?;
        let rel = entry
            .path()
            .strip_prefix(from)
            .unwrap_or(entry.path())
            .to_path_buf();
        let dest = to.join(&rel);
        let there = match existing {
            Some(_) => Node::on_disk(&dest).map_err(read(&dest))?,
            None => Node::Missing,
        };
        let ft = entry.file_type();
        let kind = if ft.is_dir() {
            match there {
                Node::Dir | Node::Missing => {}
                Node::Symlink(_) => return Err(merge_refusal(archive, entry_prefix, &rel, &dest)),
                Node::Other => {
                    return Err(in_the_way(&dest, io::ErrorKind::NotADirectory, "a file"));
                }
            }
            StepKind::Dir
        } else {
            if there == Node::Dir {
                return Err(in_the_way(
                    &dest,
                    io::ErrorKind::IsADirectory,
                    "a directory",
                ));
            }
            if ft.is_symlink() {
                StepKind::Symlink(std::fs::read_link(entry.path()).map_err(read(entry.path()))?)
            } else if ft.is_file() {
                StepKind::File
            } else {
                return Err(TarballError::Unsafe {
                    archive: archive.to_path_buf(),
                    entry: entry_name(entry_prefix, &rel),
                    reason: Refusal::NotFileDirOrSymlink,
                });
            }
        };
        steps.push(Step { rel, kind });
    }

    for step in &steps {
        let StepKind::Symlink(target) = &step.kind else {
            continue;
        };
        let mut over = Vec::new();
        let mut lookup = |p: &Path| merged_node(from, existing, &mut over, p);
        if let Err(escape) =
            resolve_beneath(&mut lookup, &step.rel, target).map_err(read(&from.join(&step.rel)))?
        {
            return Err(TarballError::Unsafe {
                archive: archive.to_path_buf(),
                entry: entry_name(entry_prefix, &step.rel),
                reason: Refusal::SymlinkOut {
                    root: to.display().to_string(),
                    escape,
                },
            });
        }
    }
    let Some(to) = existing.filter(|to| to.is_dir() && !to.is_symlink()) else {
        return Ok(steps);
    };
    for entry in walkdir::WalkDir::new(to)
        .min_depth(1)
        .follow_links(false)
        .sort_by_file_name()
    {
        let entry = entry.map_err(|e| TarballError::Read {
            path: e.path().unwrap_or(to).to_path_buf(),
            source: e.into(),
        })?;
        if !entry.file_type().is_symlink() {
            continue;
        }
        let rel = entry.path().strip_prefix(to).unwrap_or(entry.path());
        if Node::on_disk(&from.join(rel)).map_err(read(&from.join(rel)))? != Node::Missing {
            continue; // replaced by the tarball's entry, judged above
        }
        let target = std::fs::read_link(entry.path()).map_err(read(entry.path()))?;
        let mut alone = |p: &Path| Node::on_disk(&to.join(p));
        if resolve_beneath(&mut alone, rel, &target)
            .map_err(read(entry.path()))?
            .is_err()
        {
            continue; // led out before: not the tarball's doing, and not loaded by it
        }
        let mut over = Vec::new();
        let mut lookup = |p: &Path| merged_node(from, Some(to), &mut over, p);
        if let Err(escape) =
            resolve_beneath(&mut lookup, rel, &target).map_err(read(entry.path()))?
        {
            return Err(TarballError::Unsafe {
                archive: archive.to_path_buf(),
                entry: over
                    .first()
                    .map_or_else(|| entry_prefix.to_string(), |r| entry_name(entry_prefix, r)),
                reason: Refusal::RedirectsSymlink {
                    link: entry.path().to_path_buf(),
                    root: to.to_path_buf(),
                    escape,
                },
            });
        }
    }
    Ok(steps)
}

/// `rel` in the merged tree as it will be: the tarball's `from` over what `to` has (`None`:
/// nothing) ([`plan_merge`]'s checks make that exact: no directory of one meets a
/// non-directory of the other). `over` records the tarball's non-directories a resolution
/// went through.
fn merged_node(
    from: &Path,
    to: Option<&Path>,
    over: &mut Vec<PathBuf>,
    rel: &Path,
) -> io::Result<Node> {
    match Node::on_disk(&from.join(rel))? {
        Node::Missing => match to {
            Some(to) => Node::on_disk(&to.join(rel)),
            None => Ok(Node::Missing),
        },
        Node::Dir => Ok(Node::Dir),
        node => {
            over.push(rel.to_path_buf());
            Ok(node)
        }
    }
}
