//! Modules built in a scratch dkms tree to travel in a package (dkms-mkdeb -k).

use std::path::{Path, PathBuf};

use crate::console::Console;
use crate::kernel::Target;
use crate::tree::{ModuleVersion, Tree};

use super::policy::PackageIdentity;
use super::{PackageError, Setting};
use crate::deb::DataTree;

/// Modules built in a dkms tree, to travel in a package (see [`super::mkdeb_with_prebuilt`]).
#[derive(Debug, Clone)]
pub struct Prebuilt {
    pub tree: Tree,
    pub module: ModuleVersion,
    /// Every one must be built (`<m>/<v>/<k>/<a>/module/`), all of one architecture.
    pub targets: Vec<Target>,
}

impl Prebuilt {
    /// The Debian architecture of the modules (`x86_64` -> `amd64`, as dpkg-architecture maps
    /// GNU CPU names); one package has one Architecture, so the targets must agree.
    pub fn deb_arch(&self) -> Result<&'static str, PackageError> {
        let mut arches: Vec<&str> = self.targets.iter().map(|t| t.arch.as_str()).collect();
        arches.dedup();
        let [arch] = arches.as_slice() else {
            return Err(PackageError::BadOption {
                setting: Setting::Kernels,
                value: arches.join(", "),
                reason: "prebuilt modules of one package must be of one architecture".into(),
            });
        };
        crate::kernel::debian_arch(arch).ok_or_else(|| PackageError::BadOption {
            setting: Setting::Kernels,
            value: arch.to_string(),
            reason: "is not an architecture dkms-mkdeb knows the Debian name of".into(),
        })
    }
}

impl Prebuilt {
    /// Add `/usr/share/<package>/<m>-<v>.dkms.tar.gz` to `data`: a `dkms mktarball
    /// --binaries-only` tarball of the targets' `module/` dirs (no make.log: it carries build
    /// dates and paths), written with `mtime` into a temp dir that the caller keeps until the
    /// package is written (the data tree reads the file from there).
    pub(super) fn add_tarball(
        &self,
        data: &mut DataTree,
        id: &PackageIdentity,
        mtime: u64,
    ) -> Result<tempfile::TempDir, PackageError> {
        if (self.module.module.as_str(), self.module.version.as_str())
            != (id.name.as_str(), id.version.as_str())
        {
            return Err(PackageError::BadOption {
                setting: Setting::Kernels,
                value: self.module.to_string(),
                reason: format!("the prebuilt modules are not of {}/{}", id.name, id.version),
            });
        }
        let conf = self.tree.source_dir(&self.module).join("dkms.conf");
        let collected = crate::tarball::collect(
            &self.tree,
            &self.module,
            &self.targets,
            crate::tarball::TarballContent::BinariesOnly,
            &conf,
            true,
        )?;
        let temp = tempfile::Builder::new()
            .prefix("dkms-mkdeb-prebuilt.")
            .tempdir()
            .map_err(|source| PackageError::Io {
                path: std::env::temp_dir(),
                source,
            })?;
        let file = temp
            .path()
            .join(format!("{}-{}.dkms.tar.gz", id.name, id.version));
        crate::tarball::write(&collected.data, &file, mtime)?;
        data.add_file_from_disk(
            &format!(
                "usr/share/{}/{}-{}.dkms.tar.gz",
                id.package, id.name, id.version
            ),
            file,
            false,
        );
        Ok(temp)
    }

    /// The paragraph the extended description gets: the kernels the modules are built for,
    /// wrapped (lintian's extended-description-line-too-long is past 80 columns).
    pub(super) fn description(&self) -> String {
        let mut text = String::from(
            "\n\nIt also carries the module prebuilt for these kernels, where it is\ninstalled without compiling:",
        );
        let mut column = 80;
        for (i, t) in self.targets.iter().enumerate() {
            let word = format!(
                "{}{}",
                t.kernel,
                if i + 1 < self.targets.len() { "," } else { "." }
            );
            if column + 1 + word.len() > 72 {
                text.push('\n');
                column = 0;
            } else {
                text.push(' ');
                column += 1;
            }
            column += word.len();
            text.push_str(&word);
        }
        text
    }
}

/// The scratch directory [`build_prebuilt`] builds in (a temp dir; the caller keeps it until
/// the package is written, and keeps it for good when the build fails: the error names its
/// make.log).
pub fn prebuilt_scratch() -> Result<tempfile::TempDir, PackageError> {
    tempfile::Builder::new()
        .prefix("dkms-mkdeb-build.")
        .tempdir()
        .map_err(|source| PackageError::Io {
            path: std::env::temp_dir(),
            source,
        })
}

/// KCFLAGS for reproducible modules: kbuild links each module with a build ID hashed over its
/// debug info, which holds the (random) scratch path; mapping it to a fixed name makes two
/// builds of the same source against the same headers give the same bytes (the
/// reproducible-builds.org recipe, `-ffile-prefix-map`). `current` is KCFLAGS as it was.
pub fn reproducible_kcflags(scratch: &Path, current: Option<&str>) -> String {
    let map = format!(
        "-ffile-prefix-map={}=/usr/src/dkms-mkdeb",
        scratch.display()
    );
    match current.map(str::trim).filter(|c| !c.is_empty()) {
        Some(c) => format!("{c} {map}"),
        None => map,
    }
}

/// Build the module of `source_dir` for `targets` in a scratch dkms tree under `scratch`
/// (source copied in, headers from `/lib/modules/<k>/build`, no framework.conf overrides, no
/// module signing: the packager's MOK key means nothing on the machines the package goes to).
/// make inherits the environment: see [`reproducible_kcflags`].
pub fn build_prebuilt(
    scratch: &Path,
    source_dir: &Path,
    targets: &[Target],
) -> Result<Prebuilt, PackageError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PackageError::Io { path, source }
    };
    let tree = Tree {
        dkms_tree: scratch.join("tree"),
        source_tree: scratch.join("src"),
        install_tree: PathBuf::from("/lib/modules"),
        etc_dir: scratch.join("etc"),
        kernel_source_dir: None,
        kernel_config: None,
        no_exec: false,
    };
    for dir in [&tree.dkms_tree, &tree.source_tree, &tree.etc_dir] {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let session = crate::action::Session {
        tree: tree.clone(),
        console: Console {
            program: "dkms-mkdeb",
            quiet: true,
            verbose: false,
        },
        settings: crate::action::Settings {
            jobs: Some(std::thread::available_parallelism().map_or(1, |n| n.get())),
            // The packager's MOK key means nothing on the machines the package goes to.
            signing: None,
            ..Default::default()
        },
        flags: crate::action::Flags {
            no_depmod: true,
            ..Default::default()
        },
        confs: Default::default(),
        prepared: Default::default(),
    };
    let Some(first) = targets.first() else {
        return Err(PackageError::BadOption {
            setting: Setting::Kernels,
            value: String::new(),
            reason: "no kernel given".into(),
        });
    };
    let module = session
        .add_source_tree(source_dir, first)
        .map_err(|e| PackageError::Action(Box::new(e)))?;
    if let Err(e) = session.build(&module, targets) {
        // The quiet console printed nothing: name the failed build's log here.
        if let crate::error::ActionError::Reported { code } = e {
            let log = walkdir::WalkDir::new(tree.version_dir(&module))
                .into_iter()
                .flatten()
                .find(|e| e.file_name() == "make.log")
                .map(|e| e.path().to_path_buf());
            if let Some(log) = log {
                return Err(PackageError::BuildFailed {
                    module: module.clone(),
                    code,
                    log,
                });
            }
        }
        return Err(PackageError::Action(Box::new(e)));
    }
    Ok(Prebuilt {
        tree,
        module,
        targets: targets.to_vec(),
    })
}
