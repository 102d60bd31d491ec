//! mktarball and ldtarball: the dkms verbs on a module version's tarball.

use std::path::{Path, PathBuf};

use crate::kernel::Target;
use crate::tree::ModuleVersion;

use crate::action::Session;
use crate::error::{ActionError, io_error};
use crate::tarball::{self, Refusal, TarballContent, TarballError};

/// Where a loaded tarball's dkms.conf was: which kind of tarball it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loc {
    SourceTree,
    BinariesOnly,
}

impl Loc {
    fn dir(self) -> &'static str {
        match self {
            Loc::SourceTree => "dkms_source_tree",
            Loc::BinariesOnly => "dkms_binaries_only",
        }
    }
}

impl Session {
    /// `mktarball`: the module version (built for `targets`, unless source-only) as a dkms
    /// tarball at `archive` or `<dkms_tree>/<m>/<v>/tarball/<default name>`; returns its path.
    /// `mtime` is every entry's (None: SOURCE_DATE_EPOCH, else the newest input file).
    pub fn mktarball(
        &self,
        mv: &ModuleVersion,
        targets: &[Target],
        content: TarballContent,
        archive: Option<&Path>,
        mtime: Option<u64>,
    ) -> Result<PathBuf, ActionError> {
        let lock = self.lock()?;
        lock.run(|| {
            if !self.tree.is_added(mv) {
                return Err(ActionError::NotAdded {
                    module: mv.clone(),
                    tree: self.tree.dkms_tree.clone(),
                });
            }
            // dkms reads the conf first, for the first kernel (it dies with 8 on a bad one).
            let conf_path = self
                .flags
                .conf_override
                .clone()
                .unwrap_or_else(|| self.tree.source_dir(mv).join("dkms.conf"));
            if let Some(first) = targets.first() {
                self.read_conf(mv, first)?;
            }
            if content != TarballContent::SourceOnly {
                for t in targets {
                    self.console.say(&format!(
                        "Marking modules for {} ({}) for archiving...",
                        t.kernel, t.arch
                    ));
                }
            }
            if content == TarballContent::BinariesOnly {
                self.console
                    .say("\nCreating tarball structure to specifically accommodate binaries.");
            } else {
                self.console.say(&format!(
                    "\nMarking {} for archiving...",
                    self.tree.source_dir(mv).display()
                ));
            }
            let collected = tarball::collect(&self.tree, mv, targets, content, &conf_path, false)?;
            let out = match archive {
                Some(a) if a.parent().is_some_and(|p| !p.as_os_str().is_empty()) => a.to_path_buf(),
                Some(a) => self.tree.version_dir(mv).join("tarball").join(a),
                None => self
                    .tree
                    .version_dir(mv)
                    .join("tarball")
                    .join(tarball::default_name(mv, targets, content)),
            };
            let mtime = match mtime {
                Some(t) => t,
                None => source_date_epoch()?.unwrap_or(collected.newest),
            };
            self.console
                .say(&format!("\nTarball location: {}", out.display()));
            tarball::write(&collected.data, &out, mtime)?;
            Ok(out)
        })
    }

    /// `ldtarball`: load a dkms tarball (see the module docs); returns the module loaded.
    /// `target` is the kernel dkms.conf is read for (dkms: the first `-k`, else the running one).
    /// A binaries-only tarball whose source is not in the source tree leaves a stub
    /// `<m>/<v>/source/dkms.conf` and ends with status 1 without adding, as dkms 3.0.10 does.
    pub fn ldtarball(&self, archive: &Path, target: &Target) -> Result<ModuleVersion, ActionError> {
        let lock = self.lock()?;
        lock.run(|| {
            if !archive.exists() {
                return Err(TarballError::Missing {
                    path: archive.to_path_buf(),
                }
                .into());
            }
            let tree = &self.tree;
            std::fs::create_dir_all(&tree.dkms_tree).map_err(|e| io_error(&tree.dkms_tree, e))?;
            // In the dkms tree (same file system: prebuilt dirs move into place by rename), and a
            // dot name that dkms's `$dkms_tree/*` globs do not see.
            let temp = tempfile::Builder::new()
                .prefix(".ldtarball.")
                .tempdir_in(&tree.dkms_tree)
                .map_err(|e| io_error(&tree.dkms_tree, e))?;
            tarball::extract(archive, temp.path())?;

            let mut found = None;
            for loc in [Loc::SourceTree, Loc::BinariesOnly] {
                let conf = temp.path().join(loc.dir()).join("dkms.conf");
                if conf.is_file() {
                    let conf = self.conf_at(&conf, target, None)?;
                    found = Some((
                        loc,
                        ModuleVersion {
                            module: conf.package_name,
                            version: conf.package_version,
                        },
                    ));
                    break;
                }
            }
            let Some((loc, mv)) = found else {
                return Err(TarballError::Invalid {
                    archive: archive.to_path_buf(),
                    detail: "no dkms.conf in dkms_source_tree/ or dkms_binaries_only/".into(),
                }
                .into());
            };
            if tree.is_added(&mv) && !self.flags.force {
                return Err(TarballError::AlreadyAdded {
                    dir: tree.version_dir(&mv),
                    module: mv,
                }
                .into());
            }
            // Judged before anything is written (nothing half-loaded): where the prebuilt dirs go
            // here, the merge of the source in `copy_merge`.
            let prebuilt = self.prebuilt_dirs(archive, &temp.path().join("dkms_main_tree"), &mv)?;
            self.console.say(&format!(
                "\nLoading tarball for {}-{}",
                mv.module, mv.version
            ));
            let source_dest = tree.source_tree_dir(&mv);
            // The dkms.conf of the module is written anew below: read it again when needed.
            self.confs.forget(&tree.source_dir(&mv).join("dkms.conf"));
            self.confs.forget(&source_dest.join("dkms.conf"));
            match loc {
                Loc::SourceTree => {
                    std::fs::create_dir_all(&tree.source_tree)
                        .map_err(|e| io_error(&tree.source_tree, e))?;
                    // Made beside it and renamed into place whole (--force: replacing it).
                    tarball::copy_merge(
                        archive,
                        loc.dir(),
                        &temp.path().join(loc.dir()),
                        &source_dest,
                        self.flags.force,
                    )?;
                }
                Loc::BinariesOnly if !source_dest.is_dir() => {
                    let stub = tree.source_dir(&mv);
                    self.console.say(&format!("Creating {}", stub.display()));
                    std::fs::create_dir_all(&stub).map_err(|e| io_error(&stub, e))?;
                    self.console
                        .say(&format!("Copying dkms.conf to {} ...", stub.display()));
                    // Its content (extract kept any link inside dkms_binaries_only/), by rename.
                    let conf = stub.join("dkms.conf");
                    crate::atomic::copy_into_place(
                        &temp.path().join(loc.dir()).join("dkms.conf"),
                        &conf,
                    )
                    .map_err(|e| io_error(&conf, e))?;
                }
                Loc::BinariesOnly => {}
            }

            for (target, from) in prebuilt {
                let dest = tree.built_dir(&mv, &target);
                if dest.exists() && !self.flags.force {
                    self.console
                        .warn(&format!("{} already exists. Skipping...", dest.display()));
                    continue;
                }
                self.console.say(&format!("Loading {}...", dest.display()));
                crate::build::remove_dir_if_exists(&dest)?;
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| io_error(parent, e))?;
                }
                std::fs::rename(&from, &dest).map_err(|e| io_error(&dest, e))?;
            }

            if loc == Loc::BinariesOnly && !source_dest.is_dir() {
                // dkms 3.0.10: `load_tarball` returns false here, so `add_module` is not run and
                // dkms exits 1 without a word; the stub makes the module "added" all the same.
                self.console.warn(&format!(
                    "{mv} has no source in {}: loaded as binaries only, it cannot be built for other kernels",
                    source_dest.display()
                ));
                return Err(ActionError::Reported { code: 1 });
            }
            self.add(&mv, target)?;
            Ok(mv)
        })
    }

    /// Each `dkms_main_tree/<k>/<a>` of the extracted tarball under `main`, sorted, as the
    /// target it is for and the directory to move to `<tree>/<m>/<v>/<k>/<a>`; refused when a
    /// `<k>` is named as the tree's own directories there, or when the way there is a symlink
    /// (`<m>/<v>/source` is one): the move would land where that link leads.
    fn prebuilt_dirs(
        &self,
        archive: &Path,
        main: &Path,
        mv: &ModuleVersion,
    ) -> Result<Vec<(Target, PathBuf)>, TarballError> {
        let refuse = |entry: String, reason| TarballError::Unsafe {
            archive: archive.to_path_buf(),
            entry,
            reason,
        };
        // extract refused symlinks here: these are directories, or files that are skipped.
        let kernels = if main.is_dir() {
            tarball::read_dir_names(main)?
        } else {
            Vec::new()
        };
        let mut prebuilt = Vec::new();
        for k in kernels {
            if !main.join(&k).is_dir() {
                continue;
            }
            if TREE_DIRS.contains(&k.as_str()) {
                return Err(refuse(
                    format!("dkms_main_tree/{k}"),
                    Refusal::TreeDirName { name: k },
                ));
            }
            for a in tarball::read_dir_names(&main.join(&k))? {
                if main.join(&k).join(&a).is_dir() {
                    prebuilt.push((k.clone(), a));
                }
            }
        }
        prebuilt.sort();
        let mut out = Vec::new();
        for (k, a) in prebuilt {
            let target = Target {
                kernel: crate::kernel::KernelRelease(k.clone()),
                arch: a.clone(),
            };
            let dest = self.tree.built_dir(mv, &target);
            let kernel_dir = self.tree.version_dir(mv).join(&k);
            for (way, entry) in [
                (&kernel_dir, format!("dkms_main_tree/{k}")),
                (&dest, format!("dkms_main_tree/{k}/{a}")),
            ] {
                if way.is_symlink() {
                    return Err(refuse(
                        entry,
                        Refusal::MoveThroughSymlink { link: way.clone() },
                    ));
                }
            }
            out.push((target, main.join(&k).join(&a)));
        }
        Ok(out)
    }
}

/// What `<tree>/<m>/<v>/` holds besides kernels (dkms's `remove` keeps these too).
const TREE_DIRS: &[&str] = &[
    "build",
    "source",
    "tarball",
    "deb",
    "bmdeb",
    "rpm",
    "driver_disk",
];

/// [`crate::deb::source_date_epoch`], a bad value refused as a usage error.
fn source_date_epoch() -> Result<Option<u64>, ActionError> {
    crate::deb::source_date_epoch().map_err(|value| ActionError::BadSourceDateEpoch { value })
}
