//! mkdeb: a module source tree -> `<name>-dkms_<version>_all.deb`, the package `dkms mkdeb` made
//! (with `-k`, carrying prebuilt modules: [`mkdeb_with_prebuilt`]); mkbmdeb: built modules ->
//! `<name>-modules-<kernel>_<version>_<arch>.deb` ([`mkbmdeb`]).
//!
//! The package holds the source under `/usr/src/<name>-<version>/` (where dkms looks for it),
//! a copyright file and a changelog, and maintainer scripts that hand the module to dkms-rs or,
//! on a machine without it, to Debian's dkms (see `templates/postinst`, `templates/prerm`).
//! Everything the package says is rendered from `templates/`; every byte is reproducible.

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use minijinja::context;

use crate::conf::{self, ConfError, ModuleConf, ResolveContext};
use crate::console::Console;
use crate::deb::{self, Compression, ControlMember, DataTree, DebBuild, DebError, WrittenDeb};
use crate::kernel::Target;
use crate::templates::{TemplateError, Templates};
use crate::tree::{ModuleVersion, Tree};

/// What the packaged module depends on: dkms-rs, else Debian's dkms of the version that brought
/// common.postinst, or of the one that understands BUILD_EXCLUSIVE_CONFIG when the module uses
/// it (the floors dh_dkms puts into `${misc:Depends}`).
pub fn dkms_depends(conf: &ModuleConf) -> &'static str {
    if conf.build_exclusive_config.is_some() {
        "dkms-rs | dkms (>= 3.0.3-4~)"
    } else {
        "dkms-rs | dkms (>= 2.1.0.0)"
    }
}

/// Licenses whose text Debian ships in /usr/share/common-licenses (base-files), so that the
/// generated copyright file can point to it instead of carrying the text.
pub const COMMON_LICENSES: &[&str] = &[
    "Apache-2.0",
    "Artistic",
    "BSD",
    "CC0-1.0",
    "GFDL-1.2",
    "GFDL-1.3",
    "GPL-1",
    "GPL-2",
    "GPL-3",
    "LGPL-2",
    "LGPL-2.1",
    "LGPL-3",
    "MPL-1.1",
    "MPL-2.0",
];

/// Everything `dkms-mkdeb` can be told about the package to make.
#[derive(Debug, Clone)]
pub struct MkdebOptions {
    /// The module source: a directory holding dkms.conf.
    pub source_dir: PathBuf,
    /// Where the .deb is written.
    pub output_dir: PathBuf,
    /// `Name <email>`; when `None`, taken from the environment as Debian's tools do.
    pub maintainer: Option<String>,
    /// Debian revision appended to PACKAGE_VERSION (`0.1` + `1` -> `0.1-1`).
    pub revision: Option<String>,
    /// Description: first line the synopsis, the rest the extended description.
    pub description: Option<String>,
    /// Binary package name; default `<PACKAGE_NAME>-dkms`.
    pub package_name: Option<String>,
    /// A directory of templates overriding the built-in ones file by file.
    pub templates: Option<PathBuf>,
    /// Short license name for the generated copyright file (one of [`COMMON_LICENSES`]).
    pub license: String,
    /// A copyright file to ship as it is instead of the generated one.
    pub copyright_file: Option<PathBuf>,
    pub compression: Compression,
    /// Every entry's mtime; `None`: SOURCE_DATE_EPOCH from the environment, else the newest
    /// mtime of the source files.
    pub source_date_epoch: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error(transparent)]
    Conf(#[from] ConfError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Deb(#[from] DebError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {field} {value:?} {reason}")]
    BadField {
        path: PathBuf,
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error("{option} {value:?}: {reason}")]
    BadOption {
        option: &'static str,
        value: String,
        reason: String,
    },
    #[error("{path}: {reason}")]
    Unsupported { path: PathBuf, reason: &'static str },
    #[error(
        "no maintainer: pass --maintainer 'Name <email>' or set DEBFULLNAME and DEBEMAIL (as for dch)"
    )]
    NoMaintainer,
    #[error(transparent)]
    Tarball(#[from] crate::tarball::TarballError),
    /// The dkms core failed: building the prebuilt modules (the make.log path is in the
    /// message), or the module is not in the tree.
    #[error(transparent)]
    Action(Box<crate::error::ActionError>),
    #[error("building {module} for the prebuilt modules failed (status {code}); see {}", log.display())]
    BuildFailed {
        module: ModuleVersion,
        code: i32,
        log: PathBuf,
    },
}

impl PackageError {
    /// The exit code dkms uses for the same failure (4 no dkms.conf, 8 bad dkms.conf), else 1.
    pub fn exit_code(&self) -> i32 {
        match self {
            PackageError::Conf(e) => e.exit_code(),
            PackageError::BadField { .. } => 8,
            PackageError::Tarball(e) => e.exit_code(),
            PackageError::Action(e) => e.exit_code(),
            PackageError::BuildFailed { code, .. } => *code,
            _ => 1,
        }
    }
}

/// A module identified from its dkms.conf, with the Debian names derived from it.
#[derive(Debug, Clone)]
pub struct PackageIdentity {
    /// PACKAGE_NAME
    pub name: String,
    /// PACKAGE_VERSION
    pub version: String,
    /// The binary package name, `<name>-dkms` unless overridden.
    pub package: String,
    /// The Debian version: PACKAGE_VERSION, plus `-<revision>` when given.
    pub deb_version: String,
    /// The package's Depends.
    pub depends: &'static str,
}

impl PackageIdentity {
    /// Read and check PACKAGE_NAME and PACKAGE_VERSION from `source_dir/dkms.conf`.
    pub fn read(
        source_dir: &Path,
        package_name: Option<&str>,
        revision: Option<&str>,
    ) -> Result<Self, PackageError> {
        let conf_path = source_dir.join("dkms.conf");
        // Resolved for no kernel in particular: what the package carries holds for all.
        let conf = conf::read(&conf_path, &ResolveContext::new("", ""))?;
        let depends = dkms_depends(&conf);
        let (name, version) = (conf.package_name, conf.package_version);
        let package = match package_name {
            Some(p) => {
                check_package_name(p).map_err(|reason| PackageError::BadOption {
                    option: "--package-name",
                    value: p.to_string(),
                    reason,
                })?;
                p.to_string()
            }
            None => {
                let p = format!("{name}-dkms");
                check_package_name(&p).map_err(|reason| PackageError::BadField {
                    path: conf_path.clone(),
                    field: "PACKAGE_NAME",
                    value: name.clone(),
                    reason: format!("{reason} (choose one with --package-name)"),
                })?;
                p
            }
        };
        check_version(&version).map_err(|reason| PackageError::BadField {
            path: conf_path.clone(),
            field: "PACKAGE_VERSION",
            value: version.clone(),
            reason,
        })?;
        let deb_version = match revision {
            Some(rev) => {
                let full = format!("{version}-{rev}");
                check_version(&full).map_err(|reason| PackageError::BadOption {
                    option: "--revision",
                    value: rev.to_string(),
                    reason,
                })?;
                full
            }
            None => version.clone(),
        };
        Ok(PackageIdentity {
            name,
            version,
            package,
            deb_version,
            depends,
        })
    }

    /// `<package>_<version without epoch>_all.deb`, as dpkg-name names it.
    pub fn deb_file_name(&self) -> String {
        self.deb_file_name_for("all")
    }

    /// `<package>_<version without epoch>_<arch>.deb`.
    pub fn deb_file_name_for(&self, arch: &str) -> String {
        let version = self
            .deb_version
            .split_once(':')
            .map_or(self.deb_version.as_str(), |(_, v)| v);
        format!("{}_{}_{arch}.deb", self.package, version)
    }

    /// Non-native packages (with a Debian revision) ship `changelog.Debian.gz` (Policy 12.7).
    fn changelog_name(&self) -> &'static str {
        if self.deb_version.contains('-') && self.deb_version != self.version {
            "changelog.Debian.gz"
        } else {
            "changelog.gz"
        }
    }
}

/// Make the `-dkms` package of the module in `opts.source_dir`; returns what was written.
pub fn mkdeb(opts: &MkdebOptions) -> Result<WrittenDeb, PackageError> {
    mkdeb_with_prebuilt(opts, None)
}

/// Modules built in a dkms tree, to travel in a package (see [`mkdeb_with_prebuilt`]).
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
                option: "-k",
                value: arches.join(", "),
                reason: "prebuilt modules of one package must be of one architecture".into(),
            });
        };
        crate::kernel::debian_arch(arch).ok_or_else(|| PackageError::BadOption {
            option: "-k",
            value: arch.to_string(),
            reason: "is not an architecture dkms-mkdeb knows the Debian name of".into(),
        })
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
        jobs: Some(std::thread::available_parallelism().map_or(1, |n| n.get())),
        force: false,
        force_version_override: false,
        no_depmod: true,
        symlink_modules: false,
        conf_override: None,
        autoinstall_all_kernels: false,
        signing: crate::build::SigningConf {
            sign_file: Some(PathBuf::from("/nonexistent/sign-file")),
            mok_signing_key: None,
            mok_certificate: None,
        },
    };
    let Some(first) = targets.first() else {
        return Err(PackageError::BadOption {
            option: "-k",
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

/// The -dkms package, carrying `prebuilt` modules when given: then it also holds
/// `/usr/share/<package>/<m>-<v>.dkms.tar.gz`, a `dkms mktarball --binaries-only` tarball of
/// their `module/` dirs (no make.log: it carries build dates and paths), which the postinst
/// loads (common.postinst's `dkms ldtarball`, or dkms-postinst) so that matching kernels get
/// the module without compiling. Such a package is `Architecture: <arch of the modules>`, as
/// `dkms mkdeb` made it without `--source-only` (Policy 5.6.8: binaries are not `all`).
pub fn mkdeb_with_prebuilt(
    opts: &MkdebOptions,
    prebuilt: Option<&Prebuilt>,
) -> Result<WrittenDeb, PackageError> {
    let id = PackageIdentity::read(
        &opts.source_dir,
        opts.package_name.as_deref(),
        opts.revision.as_deref(),
    )?;
    if !COMMON_LICENSES.contains(&opts.license.as_str()) && opts.copyright_file.is_none() {
        return Err(PackageError::BadOption {
            option: "--license",
            value: opts.license.clone(),
            reason: format!(
                "is not in /usr/share/common-licenses ({}); ship your own text with --copyright FILE",
                COMMON_LICENSES.join(", ")
            ),
        });
    }
    let maintainer = match &opts.maintainer {
        Some(m) => m.clone(),
        None => maintainer_from_env(|k| std::env::var(k).ok()).ok_or(PackageError::NoMaintainer)?,
    };
    check_maintainer(&maintainer).map_err(|reason| PackageError::BadOption {
        option: "--maintainer",
        value: maintainer.clone(),
        reason,
    })?;
    let templates = Templates::load(opts.templates.as_deref())?;

    let mut data = DataTree::new();
    let src_prefix = format!("usr/src/{}-{}", id.name, id.version);
    let newest = add_source_tree(&mut data, &opts.source_dir, &src_prefix)?;
    let mtime = match opts.source_date_epoch {
        Some(t) => t,
        None => source_date_epoch_from_env()?.unwrap_or(newest),
    };

    let (synopsis, mut description) = describe(&id, opts.description.as_deref());
    let mut architecture = "all";
    // Kept until the package is written: the data tree reads it from there.
    let mut _prebuilt_tarball = None;
    if let Some(p) = prebuilt {
        architecture = p.deb_arch()?;
        if (p.module.module.as_str(), p.module.version.as_str())
            != (id.name.as_str(), id.version.as_str())
        {
            return Err(PackageError::BadOption {
                option: "-k",
                value: p.module.to_string(),
                reason: format!("the prebuilt modules are not of {}/{}", id.name, id.version),
            });
        }
        let conf = p.tree.source_dir(&p.module).join("dkms.conf");
        let collected = crate::tarball::collect(
            &p.tree,
            &p.module,
            &p.targets,
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
        // Wrapped: lintian's extended-description-line-too-long is past 80 columns.
        let mut text = String::from(
            "\n\nIt also carries the module prebuilt for these kernels, where it is\ninstalled without compiling:",
        );
        let mut column = 80;
        for (i, t) in p.targets.iter().enumerate() {
            let word = format!(
                "{}{}",
                t.kernel,
                if i + 1 < p.targets.len() { "," } else { "." }
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
        description.push_str(&text);
        _prebuilt_tarball = Some(temp);
    }
    let maintainer_name = maintainer
        .split_once('<')
        .map_or(maintainer.as_str(), |(n, _)| n)
        .trim()
        .to_string();
    let date = chrono::DateTime::from_timestamp(mtime as i64, 0).unwrap_or_default();
    let ctx = context! {
        name => &id.name,
        version => &id.version,
        package => &id.package,
        deb_version => &id.deb_version,
        maintainer => &maintainer,
        maintainer_name => maintainer_name,
        depends => id.depends,
        architecture => architecture,
        synopsis => synopsis,
        description => description,
        license => &opts.license,
        // Debian changelog dates are RFC 2822 (Policy 4.4).
        date => date.format("%a, %d %b %Y %H:%M:%S +0000").to_string(),
        year => date.format("%Y").to_string(),
    };

    let doc = format!("usr/share/doc/{}", id.package);
    let copyright = match &opts.copyright_file {
        Some(path) => std::fs::read(path).map_err(|source| PackageError::Io {
            path: path.clone(),
            source,
        })?,
        None => templates.render("copyright", &ctx)?.into_bytes(),
    };
    data.add_file_bytes(&format!("{doc}/copyright"), copyright, false);
    let changelog = templates.render("changelog", &ctx)?;
    data.add_file_bytes(
        &format!("{doc}/{}", id.changelog_name()),
        gzip_max(changelog.as_bytes()),
        false,
    );

    let scripts = ["postinst", "prerm"]
        .into_iter()
        .map(|name| {
            Ok(ControlMember {
                name: name.to_string(),
                bytes: templates.render(name, &ctx)?.into_bytes(),
                executable: true,
            })
        })
        .collect::<Result<Vec<_>, TemplateError>>()?;

    let build = DebBuild {
        data: &data,
        maintainer_scripts: scripts,
        mtime,
        compression: opts.compression,
    };
    let out = opts.output_dir.join(id.deb_file_name_for(architecture));
    let written = deb::write_deb(
        &build,
        |installed_size| {
            let ctx = context! { installed_size => installed_size, ..ctx.clone() };
            templates
                .render("control", &ctx)
                .map_err(|e| DebError::Control(Box::new(e)))
        },
        &out,
    )?;
    Ok(written)
}

/// dkms-mkdeb's defaults for a module added to `tree`, writing into `<m>/<v>/<subdir>/`
/// (where dkms's mkdeb and mkbmdeb put their packages: `deb`, `bmdeb`).
fn tree_options(
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
        description: None,
        package_name: None,
        templates: None,
        license: "GPL-2".to_string(),
        copyright_file: None,
        compression: Compression::default(),
        source_date_epoch: None,
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
    let opts = tree_options(tree, mv, maintainer, "deb")?;
    Ok(mkdeb(&opts)?.path)
}

/// `dkms-rs mkdeb -k ...`: [`mkdeb_in_tree`]'s package also carrying the module's builds for
/// `targets` (all must be built).
pub fn mkdeb_in_tree_prebuilt(
    tree: &Tree,
    mv: &ModuleVersion,
    maintainer: Option<String>,
    targets: &[Target],
) -> Result<PathBuf, PackageError> {
    let opts = tree_options(tree, mv, maintainer, "deb")?;
    let prebuilt = Prebuilt {
        tree: tree.clone(),
        module: mv.clone(),
        targets: targets.to_vec(),
    };
    Ok(mkdeb_with_prebuilt(&opts, Some(&prebuilt))?.path)
}

/// `--binaries-only`: one `<name>-modules-<kernel>_<version>_<arch>.deb` per target of
/// `prebuilt`, as `dkms mkbmdeb` made them (dkms 2.8's template-dkms-mkbmdeb): the built
/// modules in `/lib/modules/<kernel>/updates/dkms/` (Debian's dkms location), Depends on
/// `linux-image-<kernel>`, Provides `<name>-modules`, and a postinst/postrm running depmod for
/// that kernel. No source, no DKMS needed on the target.
pub fn mkbmdeb(opts: &MkdebOptions, prebuilt: &Prebuilt) -> Result<Vec<WrittenDeb>, PackageError> {
    let id = PackageIdentity::read(&opts.source_dir, None, opts.revision.as_deref())?;
    if !COMMON_LICENSES.contains(&opts.license.as_str()) && opts.copyright_file.is_none() {
        return Err(PackageError::BadOption {
            option: "--license",
            value: opts.license.clone(),
            reason: format!(
                "is not in /usr/share/common-licenses ({}); ship your own text with --copyright FILE",
                COMMON_LICENSES.join(", ")
            ),
        });
    }
    let maintainer = match &opts.maintainer {
        Some(m) => m.clone(),
        None => maintainer_from_env(|k| std::env::var(k).ok()).ok_or(PackageError::NoMaintainer)?,
    };
    check_maintainer(&maintainer).map_err(|reason| PackageError::BadOption {
        option: "--maintainer",
        value: maintainer.clone(),
        reason,
    })?;
    let templates = Templates::load(opts.templates.as_deref())?;
    let architecture = prebuilt.deb_arch()?;
    // dkms mkbmdeb's DEBIAN_PACKAGE: the module name with `_` made `-`.
    let base = opts
        .package_name
        .clone()
        .unwrap_or_else(|| id.name.replace('_', "-"));
    let newest = add_source_tree(&mut DataTree::new(), &opts.source_dir, "src")?;
    let mtime = match opts.source_date_epoch {
        Some(t) => t,
        None => source_date_epoch_from_env()?.unwrap_or(newest),
    };
    let maintainer_name = maintainer
        .split_once('<')
        .map_or(maintainer.as_str(), |(n, _)| n)
        .trim()
        .to_string();
    let date = chrono::DateTime::from_timestamp(mtime as i64, 0).unwrap_or_default();
    let mut written = Vec::new();
    for target in &prebuilt.targets {
        let kernel = target.kernel.as_str();
        let package = format!("{base}-modules-{kernel}");
        check_package_name(&package).map_err(|reason| PackageError::BadOption {
            option: "-k",
            value: kernel.to_string(),
            reason,
        })?;
        let module_dir = prebuilt
            .tree
            .built_dir(&prebuilt.module, target)
            .join("module");
        let mut files: Vec<(String, PathBuf)> = Vec::new();
        let entries = std::fs::read_dir(&module_dir).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                PackageError::Tarball(crate::tarball::TarballError::NotBuilt {
                    target: target.clone(),
                    dir: module_dir.clone(),
                })
            } else {
                PackageError::Io {
                    path: module_dir.clone(),
                    source,
                }
            }
        })?;
        for entry in entries.flatten() {
            if entry.path().is_file()
                && let Ok(name) = entry.file_name().into_string()
            {
                files.push((name, entry.path()));
            }
        }
        files.sort();
        if files.is_empty() {
            return Err(crate::tarball::TarballError::NotBuilt {
                target: target.clone(),
                dir: module_dir,
            }
            .into());
        }
        let mut data = DataTree::new();
        for (name, path) in &files {
            data.add_file_from_disk(
                &format!("lib/modules/{kernel}/updates/dkms/{name}"),
                path.clone(),
                false,
            );
        }
        let modules: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        let description = format!(
            "This package contains the {name} {version} kernel module ({modules})\n\
             built for Linux {kernel} ({arch}), without its source:\n\
             the machine needs neither DKMS nor a compiler.",
            name = id.name,
            version = id.version,
            modules = modules.join(", "),
            arch = target.arch,
        );
        let ctx = context! {
            name => &id.name,
            version => &id.version,
            package => &package,
            source => format!("{base}-dkms"),
            provides => format!("{base}-modules"),
            kernel => kernel,
            deb_version => &id.deb_version,
            maintainer => &maintainer,
            maintainer_name => &maintainer_name,
            architecture => architecture,
            description => description,
            license => &opts.license,
            date => date.format("%a, %d %b %Y %H:%M:%S +0000").to_string(),
            year => date.format("%Y").to_string(),
        };
        let doc = format!("usr/share/doc/{package}");
        let copyright = match &opts.copyright_file {
            Some(path) => std::fs::read(path).map_err(|source| PackageError::Io {
                path: path.clone(),
                source,
            })?,
            None => templates.render("copyright", &ctx)?.into_bytes(),
        };
        data.add_file_bytes(&format!("{doc}/copyright"), copyright, false);
        let changelog = templates.render("changelog", &ctx)?;
        data.add_file_bytes(
            &format!("{doc}/{}", id.changelog_name()),
            gzip_max(changelog.as_bytes()),
            false,
        );
        let scripts = ["postinst", "postrm"]
            .into_iter()
            .map(|name| {
                Ok(ControlMember {
                    name: name.to_string(),
                    bytes: templates
                        .render(&format!("bmdeb/{name}"), &ctx)?
                        .into_bytes(),
                    executable: true,
                })
            })
            .collect::<Result<Vec<_>, TemplateError>>()?;
        let build = DebBuild {
            data: &data,
            maintainer_scripts: scripts,
            mtime,
            compression: opts.compression,
        };
        let version = id
            .deb_version
            .split_once(':')
            .map_or(id.deb_version.as_str(), |(_, v)| v);
        let out = opts
            .output_dir
            .join(format!("{package}_{version}_{architecture}.deb"));
        written.push(deb::write_deb(
            &build,
            |installed_size| {
                let ctx = context! { installed_size => installed_size, ..ctx.clone() };
                templates
                    .render("bmdeb/control", &ctx)
                    .map_err(|e| DebError::Control(Box::new(e)))
            },
            &out,
        )?);
    }
    Ok(written)
}

/// `dkms-rs mkbmdeb -k ...`: the binary-modules packages ([`mkbmdeb`]) of a module added to
/// `tree` and built for `targets`, written to `<m>/<v>/bmdeb/` as `dkms mkbmdeb` did.
pub fn mkbmdeb_in_tree(
    tree: &Tree,
    mv: &ModuleVersion,
    maintainer: Option<String>,
    targets: &[Target],
) -> Result<Vec<PathBuf>, PackageError> {
    let opts = tree_options(tree, mv, maintainer, "bmdeb")?;
    let prebuilt = Prebuilt {
        tree: tree.clone(),
        module: mv.clone(),
        targets: targets.to_vec(),
    };
    let written = mkbmdeb(&opts, &prebuilt)?;
    Ok(written.into_iter().map(|w| w.path).collect())
}

/// Synopsis and extended description: from `--description` (first line, rest) or the default.
fn describe(id: &PackageIdentity, given: Option<&str>) -> (String, String) {
    let default_long = format!(
        "This package provides the source code of the {name} {version} kernel module.\n\
         DKMS builds and installs it for every kernel on the system whose headers\n\
         are installed, and again whenever a new kernel is installed.",
        name = id.name,
        version = id.version
    );
    match given {
        Some(text) => {
            let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
            let rest = rest.trim();
            let long = if rest.is_empty() {
                default_long
            } else {
                rest.to_string()
            };
            (first.trim().to_string(), long)
        }
        None => (
            format!("{} kernel module source for DKMS", id.name),
            default_long,
        ),
    }
}

/// VCS metadata, kbuild leftovers and packages: never part of a packaged module source
/// (the VCS set `dpkg-source -i` ignores, what `make modules` leaves behind, and a previous
/// run's .deb when the output directory is the source directory).
fn is_excluded(name: &OsStr, is_dir: bool) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    const VCS: &[&str] = &[
        ".git",
        ".svn",
        ".hg",
        ".bzr",
        "CVS",
        "_darcs",
        ".pc",
        ".gitignore",
        ".gitattributes",
        ".gitmodules",
        ".gitreview",
        ".mailmap",
        ".cvsignore",
        ".hgignore",
        ".hgtags",
        ".bzrignore",
        ".bzrtags",
        ".arch-ids",
    ];
    const BUILD_FILES: &[&str] = &["Module.symvers", "modules.order", "Module.markers"];
    const BUILD_SUFFIXES: &[&str] = &[
        ".o", ".ko", ".mod", ".mod.c", ".a", ".ko.xz", ".ko.zst", ".ko.gz", ".deb",
    ];
    if VCS.contains(&name) {
        return true;
    }
    if is_dir {
        return name == ".tmp_versions";
    }
    BUILD_FILES.contains(&name)
        || BUILD_SUFFIXES.iter().any(|s| name.ends_with(s))
        || (name.starts_with('.') && (name.ends_with(".cmd") || name.ends_with(".d")))
}

/// Add the source tree under `prefix`; returns the newest mtime of its files and links
/// (directories are left out: writing the .deb into the source dir changes theirs).
fn add_source_tree(data: &mut DataTree, source: &Path, prefix: &str) -> Result<u64, PackageError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PackageError::Io { path, source }
    };
    let meta = std::fs::metadata(source).map_err(io(source))?;
    if !meta.is_dir() {
        return Err(PackageError::Unsupported {
            path: source.to_path_buf(),
            reason: "the module source must be a directory holding dkms.conf",
        });
    }
    data.add_dir(prefix);
    let mut newest = 0u64;
    let walker = walkdir::WalkDir::new(source)
        .min_depth(1)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| !is_excluded(e.file_name(), e.file_type().is_dir()));
    for entry in walker {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(source).to_path_buf();
            PackageError::Io {
                path,
                source: e.into(),
            }
        })?;
        let path = entry.path();
        let rel = path.strip_prefix(source).unwrap_or(path);
        let Some(rel) = rel.to_str() else {
            return Err(PackageError::Unsupported {
                path: path.to_path_buf(),
                reason: "file name is not UTF-8",
            });
        };
        let target = format!("{prefix}/{rel}");
        let meta = entry.metadata().map_err(|e| PackageError::Io {
            path: path.to_path_buf(),
            source: e.into(),
        })?;
        let ft = meta.file_type();
        if ft.is_dir() {
            data.add_dir(&target);
            continue;
        }
        newest = newest.max(meta.mtime().max(0) as u64);
        if ft.is_symlink() {
            let link = std::fs::read_link(path).map_err(io(path))?;
            let Some(link) = link.to_str() else {
                return Err(PackageError::Unsupported {
                    path: path.to_path_buf(),
                    reason: "symlink target is not UTF-8",
                });
            };
            data.add_symlink(&target, link);
        } else if ft.is_file() {
            // Fail here, with the file's name, rather than half-way through the archive.
            std::fs::File::open(path).map_err(io(path))?;
            let executable = meta.permissions().mode() & 0o111 != 0;
            data.add_file_from_disk(&target, path.to_path_buf(), executable);
        } else {
            return Err(PackageError::Unsupported {
                path: path.to_path_buf(),
                reason: "not a regular file, directory or symlink (sockets, fifos and devices cannot be packaged)",
            });
        }
    }
    Ok(newest)
}

/// SOURCE_DATE_EPOCH (reproducible-builds.org spec): an integer number of seconds, else an error.
fn source_date_epoch_from_env() -> Result<Option<u64>, PackageError> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.is_empty() => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| PackageError::BadOption {
                option: "SOURCE_DATE_EPOCH",
                value: v,
                reason: "is not a whole number of seconds".into(),
            }),
        _ => Ok(None),
    }
}

/// gzip as `gzip -9n` does it: best compression, no name, mtime 0 (lintian
/// `changelog-not-compressed-with-max-compression`, `package-contains-timestamped-gzip`).
fn gzip_max(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(3)
        .write(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(bytes);
    enc.finish().unwrap_or_default()
}

/// The maintainer as Debian's tools find it: DEBFULLNAME + DEBEMAIL, then NAME + EMAIL;
/// an email variable of the form `Name <email>` carries the name too (dch(1)).
pub fn maintainer_from_env(var: impl Fn(&str) -> Option<String>) -> Option<String> {
    let get = |k: &str| var(k).filter(|v| !v.trim().is_empty());
    let email = get("DEBEMAIL").or_else(|| get("EMAIL"))?;
    if let Some((name, addr)) = email.split_once('<') {
        let addr = addr.trim_end_matches('>').trim();
        let name = get("DEBFULLNAME")
            .or_else(|| get("NAME"))
            .unwrap_or_else(|| name.trim().to_string());
        return Some(format!("{name} <{addr}>"));
    }
    let name = get("DEBFULLNAME").or_else(|| get("NAME"))?;
    Some(format!("{} <{}>", name.trim(), email.trim()))
}

/// `Name <local@domain>`, the form of Policy 5.6.2.
fn check_maintainer(m: &str) -> Result<(), String> {
    let ok = m.split_once('<').is_some_and(|(name, rest)| {
        !name.trim().is_empty()
            && rest.ends_with('>')
            && rest[..rest.len() - 1].contains('@')
            && !rest.contains(['<', ',', '\n'])
    });
    if ok {
        Ok(())
    } else {
        Err("is not of the form 'Full Name <user@example.org>'".into())
    }
}

/// Debian package names: lowercase letters, digits, `+ - .`, at least two characters,
/// starting with a letter or digit (Policy 5.6.1).
fn check_package_name(p: &str) -> Result<(), String> {
    let mut bytes = p.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let rest_ok = p
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b));
    if p.len() >= 2 && first_ok && rest_ok {
        Ok(())
    } else {
        Err(format!(
            "cannot name a Debian package ({p:?}: only lowercase letters, digits, '+', '-', '.', starting with a letter or digit)"
        ))
    }
}

/// A version as dpkg's parseversion() accepts it without error or warning
/// (lib/dpkg/parsehelp.c): `[epoch:]upstream[-revision]`.
pub fn check_version(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Err("version string is empty".into());
    }
    if v.contains(char::is_whitespace) {
        return Err("version string has embedded spaces".into());
    }
    let (epoch, rest) = match v.split_once(':') {
        Some((e, r)) => (Some(e), r),
        None => (None, v),
    };
    if let Some(e) = epoch {
        if e.is_empty() || !e.bytes().all(|b| b.is_ascii_digit()) || e.parse::<i32>().is_err() {
            return Err("epoch in version is not a number".into());
        }
        if rest.is_empty() {
            return Err("nothing after colon in version number".into());
        }
    }
    let (upstream, revision) = match rest.rsplit_once('-') {
        Some((u, r)) => (u, Some(r)),
        None => (rest, None),
    };
    if revision == Some("") {
        return Err("revision number is empty".into());
    }
    if upstream.is_empty() {
        return Err("version number is empty".into());
    }
    if !upstream.starts_with(|c: char| c.is_ascii_digit()) {
        return Err("version number does not start with digit".into());
    }
    if !upstream
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b".-+~:".contains(&b))
    {
        return Err("invalid character in version number".into());
    }
    if let Some(r) = revision
        && !r
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".+~".contains(&b))
    {
        return Err("invalid character in revision number".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_dpkg_accepts() {
        for v in ["0.1", "1:2.0-1", "2.0~rc1+dfsg-1.1", "1.2-3-4", "5"] {
            assert_eq!(check_version(v), Ok(()), "{v}");
        }
    }

    #[test]
    fn versions_dpkg_rejects_with_its_words() {
        let cases = [
            ("", "version string is empty"),
            ("1 2", "version string has embedded spaces"),
            ("a:1", "epoch in version is not a number"),
            ("1:", "nothing after colon in version number"),
            ("1.0-", "revision number is empty"),
            ("v1.0", "version number does not start with digit"),
            ("1_0", "invalid character in version number"),
            ("1.0-a_b", "invalid character in revision number"),
        ];
        for (v, why) in cases {
            assert_eq!(check_version(v), Err(why.to_string()), "{v:?}");
        }
    }

    #[test]
    fn package_names() {
        assert!(check_package_name("hello-dkms").is_ok());
        assert!(check_package_name("acpi_call-dkms").is_err());
        assert!(check_package_name("Hello-dkms").is_err());
        assert!(check_package_name("-x").is_err());
    }

    #[test]
    fn maintainer_the_debian_way() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            maintainer_from_env(env(&[("DEBFULLNAME", "A B"), ("DEBEMAIL", "a@b.org")])),
            Some("A B <a@b.org>".into())
        );
        assert_eq!(
            maintainer_from_env(env(&[("DEBEMAIL", "C D <c@d.org>")])),
            Some("C D <c@d.org>".into())
        );
        assert_eq!(
            maintainer_from_env(env(&[("NAME", "E F"), ("EMAIL", "e@f.org")])),
            Some("E F <e@f.org>".into())
        );
        // DEB* wins over the generic variables.
        assert_eq!(
            maintainer_from_env(env(&[
                ("NAME", "E F"),
                ("EMAIL", "e@f.org"),
                ("DEBFULLNAME", "A B"),
                ("DEBEMAIL", "a@b.org")
            ])),
            Some("A B <a@b.org>".into())
        );
        assert_eq!(maintainer_from_env(env(&[("NAME", "E F")])), None);
    }

    #[test]
    fn maintainer_form() {
        assert!(check_maintainer("A B <a@b.org>").is_ok());
        assert!(check_maintainer("a@b.org").is_err());
        assert!(check_maintainer("<a@b.org>").is_err());
    }

    #[test]
    fn build_leftovers_and_vcs_are_excluded() {
        for n in [
            ".git",
            "hello.o",
            "hello.ko",
            ".hello.o.cmd",
            "Module.symvers",
            "modules.order",
            "hello.mod.c",
            ".gitignore",
        ] {
            assert!(is_excluded(OsStr::new(n), n == ".git"), "{n}");
        }
        for n in [
            "hello.c",
            "Makefile",
            "dkms.conf",
            "Kbuild",
            "hello.h",
            "cmd",
        ] {
            assert!(!is_excluded(OsStr::new(n), false), "{n}");
        }
    }
}
