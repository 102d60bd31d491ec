//! mkdeb: a module source tree -> `<name>-dkms_<version>_all.deb`, the package `dkms mkdeb` made.
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

use crate::conf::{self, ConfError};
use crate::deb::{self, Compression, ControlMember, DataTree, DebBuild, DebError, WrittenDeb};
use crate::templates::{TemplateError, Templates};

/// What the packaged module depends on: dkms-rs when present, else Debian's dkms of the version
/// that brought common.postinst (the same floor dh_dkms puts into `${misc:Depends}`).
pub const DKMS_DEPENDS: &str = "dkms-rs | dkms (>= 2.1.0.0)";

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
}

impl PackageError {
    /// The exit code dkms uses for the same failure (4 no dkms.conf, 8 bad dkms.conf), else 1.
    pub fn exit_code(&self) -> i32 {
        match self {
            PackageError::Conf(e) => e.exit_code(),
            PackageError::BadField { .. } => 8,
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
}

impl PackageIdentity {
    /// Read and check PACKAGE_NAME and PACKAGE_VERSION from `source_dir/dkms.conf`.
    pub fn read(
        source_dir: &Path,
        package_name: Option<&str>,
        revision: Option<&str>,
    ) -> Result<Self, PackageError> {
        let conf_path = source_dir.join("dkms.conf");
        let (name, version) = conf::read_identity(&conf_path)?;
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
        })
    }

    /// `<package>_<version without epoch>_all.deb`, as dpkg-name names it.
    pub fn deb_file_name(&self) -> String {
        let version = self
            .deb_version
            .split_once(':')
            .map_or(self.deb_version.as_str(), |(_, v)| v);
        format!("{}_{}_all.deb", self.package, version)
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

    let (synopsis, description) = describe(&id, opts.description.as_deref());
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
        depends => DKMS_DEPENDS,
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
    let out = opts.output_dir.join(id.deb_file_name());
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
