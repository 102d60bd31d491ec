//! Where a symlink leads, resolved as the kernel resolves it, link after link, but never above
//! a root: openat2(2)'s `RESOLVE_BENEATH`, by hand, so that it also works on a view of a tree
//! that is not on disk yet (a tarball's tree merged over the source directory already there).
//!
//! By hand rather than through the openat2 syscall: the syscall resolves only what is on disk
//! now, and the merge must be judged before it is written (nothing half-loaded).

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};

/// What a name is in a tree, not followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Node {
    Dir,
    /// A file, device, socket: anything that is no directory and no symlink.
    Other,
    Symlink(PathBuf),
    Missing,
}

impl Node {
    /// `path` as lstat(2) sees it.
    pub(super) fn on_disk(path: &Path) -> io::Result<Node> {
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => Ok(Node::Symlink(std::fs::read_link(path)?)),
            Ok(m) if m.is_dir() => Ok(Node::Dir),
            Ok(_) => Ok(Node::Other),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Node::Missing),
            Err(e) => Err(e),
        }
    }
}

/// Why a symlink does not stay beneath its root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Escape {
    #[error("an absolute target on the way")]
    Absolute,
    #[error("`..` goes above it")]
    AboveRoot,
    /// The kernel's ELOOP: 40 links (`MAXSYMLINKS`).
    #[error("more than 40 links on the way (a loop)")]
    Loop,
    /// `..` after a name that is missing or no directory: the kernel fails (ENOENT, ENOTDIR)
    /// today, but a file loaded later there (a link) could make it lead anywhere.
    #[error("`..` after a name that is no directory there")]
    DotDotAfterMissing,
}

/// The kernel's limit of links followed in one lookup (`MAXSYMLINKS`, namei.c).
const MAX_LINKS: usize = 40;

/// One component of a target, owned (targets of links met are spliced in front of the rest).
enum Part {
    Root,
    Parent,
    Name(OsString),
}

fn parts(path: &Path) -> impl Iterator<Item = Part> + '_ {
    path.components().filter_map(|c| match c {
        Component::RootDir | Component::Prefix(_) => Some(Part::Root),
        Component::CurDir => None,
        Component::ParentDir => Some(Part::Parent),
        Component::Normal(s) => Some(Part::Name(s.to_os_string())),
    })
}

/// Resolve the target of the symlink `link` (relative to the root, its parents directories)
/// through the tree `lookup` describes (a relative path to its [`Node`]; the root itself is a
/// directory), following every symlink met, the last one too. `..` never goes above the root
/// and an absolute target anywhere on the way is refused, as with `RESOLVE_BENEATH`.
pub(super) fn resolve_beneath(
    lookup: &mut dyn FnMut(&Path) -> io::Result<Node>,
    link: &Path,
    target: &Path,
) -> io::Result<Result<(), Escape>> {
    let mut at: Vec<OsString> = parts(link.parent().unwrap_or(Path::new("")))
        .filter_map(|p| match p {
            Part::Name(s) => Some(s),
            _ => None,
        })
        .collect();
    let mut todo: VecDeque<Part> = parts(target).collect();
    let mut links = 0;
    let mut unresolved = false;
    while let Some(part) = todo.pop_front() {
        match part {
            Part::Root => return Ok(Err(Escape::Absolute)),
            Part::Parent if unresolved => return Ok(Err(Escape::DotDotAfterMissing)),
            Part::Parent => {
                if at.pop().is_none() {
                    return Ok(Err(Escape::AboveRoot));
                }
            }
            Part::Name(name) => {
                at.push(name);
                if unresolved {
                    continue;
                }
                match lookup(&at.iter().collect::<PathBuf>())? {
                    Node::Dir => {}
                    Node::Other | Node::Missing => unresolved = true,
                    Node::Symlink(t) => {
                        links += 1;
                        if links > MAX_LINKS {
                            return Ok(Err(Escape::Loop));
                        }
                        // The link's target replaces its name, relative to the link's dir.
                        at.pop();
                        for p in parts(&t).collect::<Vec<_>>().into_iter().rev() {
                            todo.push_front(p);
                        }
                    }
                }
            }
        }
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Resolve `target` of `link` in a tree given as (path, node) pairs (others missing).
    fn resolve(tree: &[(&str, Node)], link: &str, target: &str) -> Result<(), Escape> {
        let tree: BTreeMap<PathBuf, Node> = tree
            .iter()
            .map(|(p, n)| (PathBuf::from(p), n.clone()))
            .collect();
        let mut lookup = |p: &Path| Ok(tree.get(p).cloned().unwrap_or(Node::Missing));
        resolve_beneath(&mut lookup, Path::new(link), Path::new(target)).unwrap()
    }

    fn link(t: &str) -> Node {
        Node::Symlink(t.into())
    }

    #[test]
    fn text_inside_is_not_enough() {
        // The prober's chain: each link inside when read as text, `y1` already the root's
        // parent once `x` is followed.
        let mut tree = vec![("x", link("."))];
        let names: Vec<String> = (1..=11).map(|i| format!("y{i}")).collect();
        tree.push(("y1", link("x/..")));
        let targets: Vec<String> = (1..11).map(|i| format!("y{i}/..")).collect();
        for i in 1..11 {
            tree.push((&names[i], link(&targets[i - 1])));
        }
        assert_eq!(resolve(&tree, "x", "."), Ok(()));
        assert_eq!(resolve(&tree, "y1", "x/.."), Err(Escape::AboveRoot));
        assert_eq!(
            resolve(&tree, "secret", "y11/etc/passwd"),
            Err(Escape::AboveRoot)
        );
    }

    #[test]
    fn links_are_followed_beneath_the_root() {
        let tree = [
            ("a", Node::Dir),
            ("a/b", Node::Dir),
            ("a/f", Node::Other),
            ("up", link("a/b/..")),
            ("abs", link("/etc")),
            ("loop1", link("loop2")),
            ("loop2", link("loop1")),
        ];
        assert_eq!(resolve(&tree, "a/b/l", "../../a"), Ok(()));
        assert_eq!(resolve(&tree, "a/b/l", "../../.."), Err(Escape::AboveRoot));
        assert_eq!(resolve(&tree, "l", "up/../a"), Ok(()));
        assert_eq!(resolve(&tree, "l", "up/../.."), Err(Escape::AboveRoot));
        assert_eq!(resolve(&tree, "l", "abs"), Err(Escape::Absolute));
        assert_eq!(resolve(&tree, "l", "abs/../a"), Err(Escape::Absolute));
        assert_eq!(resolve(&tree, "l", "/a"), Err(Escape::Absolute));
        assert_eq!(resolve(&tree, "l", "loop1"), Err(Escape::Loop));
        // Dangling names are fine, `..` out of one is not: what is there later decides.
        assert_eq!(resolve(&tree, "l", "missing/x"), Ok(()));
        assert_eq!(
            resolve(&tree, "a/l", "missing/.."),
            Err(Escape::DotDotAfterMissing)
        );
        assert_eq!(
            resolve(&tree, "l", "a/f/.."),
            Err(Escape::DotDotAfterMissing)
        );
        assert_eq!(resolve(&tree, "l", "./a/./b/."), Ok(()));
    }
}
