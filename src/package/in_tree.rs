//! mkdeb, mkdsc and mkbmdeb of a module already in a dkms tree (`dkms-rs mkdeb`, `mkdsc`,
//! `mkbmdeb`), writing into `<m>/<v>/deb/`, `<m>/<v>/dsc/` and `<m>/<v>/bmdeb/` as dkms did.

use std::path::PathBuf;

use crate::action::distinct;
use crate::deb::Compression;
use crate::kernel::Target;
use crate::tree::{ModuleVersion, Tree, TreeLock};

use super::dkms_deb::{mkdeb, mkdeb_with_prebuilt};
use super::dsc::mkdsc;
use super::modules_deb::mkbmdeb;
use super::prebuilt::Prebuilt;
use super::{MkdebOptions, PackageError};

/// The tree's lock, for the whole package: it reads the module's builds and writes into
/// `<m>/<v>/`, which a command on the same tree (an unbuild, a remove) must not change meanwhile.
fn lock(tree: &Tree) -> Result<TreeLock, PackageError> {
    tree.lock().map_err(|source| PackageError::Io {
        path: tree.dkms_tree.clone(),
        source,
    })
}

/// dkms-mkdeb's defaults for a module added to `tree`, writing into `<m>/<v>/<subdir>/`
/// (where dkms's mkdeb and mkbmdeb put their packages: `deb`, `bmdeb`).
pub(super) fn tree_options(
    tree: &Tree,
    mv: &ModuleVersion,
    maintainer: Option<String>,
    subdir: &str,
) -> Result<MkdebOptions, PackageError> {
    if !tree.is_added(mv) {
        return Err(PackageError::Action(Box::new(
            crate::error::ActionError::NotAdded {
                module: mv.clone(),
                tree: tree.dkms_tree.clone(),
            },
        )));
    }
    // A dkms.conf the package cannot be made of (invalid, or refused by --no-exec) is the
    // error before `<subdir>/` is made.
    super::policy::PackageIdentity::read(&tree.source_dir(mv), None, None, tree.no_exec)?;
    let output_dir = tree.version_dir(mv).join(subdir);
    std::fs::create_dir_all(&output_dir).map_err(|source| PackageError::Io {
        path: output_dir.clone(),
        source,
    })?;
    Ok(MkdebOptions {
        source_dir: tree.source_dir(mv),
        output_dir,
        maintainer,
        revision: None,
        closes: Vec::new(),
        description: None,
        package_name: None,
        templates: None,
        license: "GPL-2".to_string(),
        copyright_file: None,
        compression: Compression::default(),
        source_date_epoch: None,
        no_exec: tree.no_exec,
        declared: Default::default(),
    })
}

/// `dkms-rs mkdeb`: the `<m>-dkms` package of a module added to `tree`, written to
/// `<m>/<v>/deb/` as `dkms mkdeb` did (the seed's workflow). The maintainer comes from
/// `maintainer` or, as for Debian's tools, DEBFULLNAME/DEBEMAIL.
pub fn mkdeb_in_tree(
    tree: &Tree,
    mv: &ModuleVersion,
    maintainer: Option<String>,
) -> Result<PathBuf, PackageError> {
    let _lock = lock(tree)?;
    let opts = tree_options(tree, mv, maintainer, "deb")?;
    Ok(mkdeb(&opts)?.path)
}

/// `dkms-rs mkdsc`: the source package ([`mkdsc`]) of a module added to `tree`, written to
/// `<m>/<v>/dsc/` as `dkms mkdsc` did; returns the .dsc's path.
pub fn mkdsc_in_tree(
    tree: &Tree,
    mv: &ModuleVersion,
    maintainer: Option<String>,
) -> Result<PathBuf, PackageError> {
    let _lock = lock(tree)?;
    // A failed run leaves the tree as it was: without a `dsc/` it made.
    let dir = tree.version_dir(mv).join("dsc");
    let made_dir = !dir.exists();
    let written = tree_options(tree, mv, maintainer, "dsc").and_then(|opts| mkdsc(&opts));
    if written.is_err() && made_dir {
        let _ = std::fs::remove_dir(&dir);
    }
    Ok(written?.dsc)
}

/// `dkms-rs mkdeb -k ...`: [`mkdeb_in_tree`]'s package also carrying the module's builds for
/// `targets` (all must be built).
pub fn mkdeb_in_tree_prebuilt(
    tree: &Tree,
    mv: &ModuleVersion,
    maintainer: Option<String>,
    targets: &[Target],
) -> Result<PathBuf, PackageError> {
    let _lock = lock(tree)?;
    let opts = tree_options(tree, mv, maintainer, "deb")?;
    let prebuilt = Prebuilt {
        tree: tree.clone(),
        module: mv.clone(),
        targets: distinct(targets),
    };
    Ok(mkdeb_with_prebuilt(&opts, Some(&prebuilt))?.path)
}

/// `dkms-rs mkbmdeb -k ...`: the binary-modules packages ([`mkbmdeb`]) of a module added to
/// `tree` and built for `targets`, written to `<m>/<v>/bmdeb/` as `dkms mkbmdeb` did.
pub fn mkbmdeb_in_tree(
    tree: &Tree,
    mv: &ModuleVersion,
    maintainer: Option<String>,
    targets: &[Target],
) -> Result<Vec<PathBuf>, PackageError> {
    let _lock = lock(tree)?;
    let opts = tree_options(tree, mv, maintainer, "bmdeb")?;
    let prebuilt = Prebuilt {
        tree: tree.clone(),
        module: mv.clone(),
        targets: distinct(targets),
    };
    let written = mkbmdeb(&opts, &prebuilt)?;
    Ok(written.into_iter().map(|w| w.path).collect())
}
