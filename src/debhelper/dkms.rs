//! What Debian's `dh_dkms` does, for each package acted on: find its dkms.conf (FILE,
//! `debian/<package>.dkms` or the file it names), substitute `-V`'s version, install it under
//! `usr/src/<name>-<version>/`, add the postinst/prerm snippets and `${misc:Depends}`.

use std::io::Write;
use std::path::{Path, PathBuf};

use minijinja::context;

use super::dh_lib::{self, Dh, HostArch};
use super::getopt::Options;
use super::{DhError, MODULE_VERSION_PLACEHOLDER, PackageDone, Streams};
use crate::conf::{self, ConfError, ResolveContext};
use crate::package::dkms_depends;
use crate::templates::Templates;

/// dh_dkms's loop: every package of `options`, in order; FILE goes to the first one.
///
/// A package named `*-dkms` that gets no dkms.conf (none to install, none already under its
/// `usr/src/`) is an error, found before anything is written: for every such package when
/// `strict` (dh_dkms-rs as dh's sequence step), else only when the run installs none at all
/// (a run inside an override target may be one of several, each for its packages).
pub fn dh_dkms(
    dh: &Dh,
    options: &Options,
    main_package: &str,
    host: &mut HostArch,
    streams: &mut Streams,
    strict: bool,
) -> Result<Vec<PackageDone>, DhError> {
    let templates = Templates::load(None)?;
    let contexts: Vec<PackageContext> = options
        .packages
        .iter()
        .enumerate()
        .map(|(i, package)| PackageContext {
            package,
            main_package,
            tmpdir: options
                .tmpdir
                .clone()
                .unwrap_or_else(|| Path::new("debian").join(package)),
            file: if i == 0 {
                options.file.as_deref()
            } else {
                None
            },
            module_version: options.module_version.as_deref(),
        })
        .collect();
    let mut sources = Vec::new();
    for ctx in &contexts {
        sources.push(conf_source(dh, ctx, host)?);
    }
    let none_found = sources.iter().all(Option::is_none);
    if strict || none_found {
        for (ctx, source) in contexts.iter().zip(&sources) {
            if source.is_none()
                && is_dkms_package_name(ctx.package)
                && !conf_installed(dh.root, &ctx.tmpdir)
            {
                return Err(DhError::NoDkmsConf {
                    package: ctx.package.to_string(),
                    tmpdir: ctx.tmpdir.clone(),
                    main: ctx.package == main_package,
                });
            }
        }
    }
    let mut done = Vec::new();
    for (ctx, source) in contexts.iter().zip(sources) {
        if let Some(source) = source {
            done.push(dkms_package(dh, ctx, source, &templates, host, streams)?);
        }
    }
    Ok(done)
}

/// A package whose name says it is a DKMS package (Debian's naming: `<module>-dkms`).
pub fn is_dkms_package_name(package: &str) -> bool {
    package.ends_with("-dkms")
}

/// Whether some `usr/src/<module>-<version>/dkms.conf` is already under `tmpdir` (installed
/// by an override target, dh_install or an earlier run).
pub fn conf_installed(root: &Path, tmpdir: &Path) -> bool {
    std::fs::read_dir(root.join(tmpdir).join("usr/src"))
        .map(|entries| {
            entries
                .flatten()
                .any(|e| e.path().join("dkms.conf").is_file())
        })
        .unwrap_or(false)
}

/// One package as dh_dkms sees it. Paths are relative to the source package root.
struct PackageContext<'a> {
    package: &'a str,
    main_package: &'a str,
    /// Dh_Lib's `tmpdir()`: `debian/<package>`, or `-P`'s.
    tmpdir: PathBuf,
    /// The FILE argument, for the first package only.
    file: Option<&'a Path>,
    module_version: Option<&'a str>,
}

/// A `debian/<package>.dkms` is a dkms.conf itself when it assigns PACKAGE_NAME anywhere (dh_dkms
/// looks for `PACKAGE_NAME="..."`; an unquoted assignment counts here too), else it names one.
fn is_dkms_conf(text: &str) -> bool {
    text.lines().any(|l| l.contains("PACKAGE_NAME="))
}

/// Where the dkms.conf of the package is: the FILE argument, or what `debian/<package>.dkms`
/// is or names (looked up in `.` then `debian/tmp`, as dh_dkms's `filearray` does).
fn conf_source(
    dh: &Dh,
    ctx: &PackageContext,
    host: &mut HostArch,
) -> Result<Option<PathBuf>, DhError> {
    if let Some(file) = ctx.file {
        return Ok(Some(file.to_path_buf()));
    }
    let Some(list) = dh_lib::pkgfile(dh.root, ctx.package, ctx.main_package, "dkms", host)? else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(dh.root.join(&list)).map_err(|source| DhError::Read {
        path: list.clone(),
        source,
    })?;
    if is_dkms_conf(&text) {
        return Ok(Some(list));
    }
    // debhelper's config-file syntax: words, `#` comments, blank lines.
    let words: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .flat_map(str::split_whitespace)
        .collect();
    let name = match words.as_slice() {
        [] => return Err(DhError::ListsNothing { list }),
        [one] => *one,
        more => {
            return Err(DhError::ListsMany {
                list,
                count: more.len(),
            });
        }
    };
    for candidate in [PathBuf::from(name), Path::new("debian/tmp").join(name)] {
        if dh.root.join(&candidate).is_file() {
            return Ok(Some(candidate));
        }
    }
    Err(DhError::ListedConfMissing {
        list,
        name: name.to_string(),
    })
}

/// The upstream version of the package's changelog (pkgfile `changelog`, else
/// debian/changelog): the first entry's version without epoch and Debian revision.
fn changelog_upstream_version(
    dh: &Dh,
    ctx: &PackageContext,
    host: &mut HostArch,
) -> Result<String, DhError> {
    let path = dh_lib::pkgfile(dh.root, ctx.package, ctx.main_package, "changelog", host)?
        .unwrap_or_else(|| PathBuf::from("debian/changelog"));
    let text = std::fs::read_to_string(dh.root.join(&path)).map_err(|source| DhError::Read {
        path: path.clone(),
        source,
    })?;
    let Some(first) = text.lines().find(|l| !l.trim().is_empty()) else {
        return Err(DhError::ChangelogEmpty { path });
    };
    // "package (version) distribution; urgency=..." (Policy 4.4).
    let Some(version) = first
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(v, _)| v.trim())
        .filter(|v| !v.is_empty())
    else {
        return Err(DhError::ChangelogWithoutVersion { path });
    };
    let without_epoch = version.split_once(':').map_or(version, |(_, v)| v);
    let upstream = without_epoch
        .rsplit_once('-')
        .map_or(without_epoch, |(u, _)| u);
    Ok(upstream.to_string())
}

/// Do dh_dkms's work for one package, whose dkms.conf is `source`.
fn dkms_package(
    dh: &Dh,
    ctx: &PackageContext,
    source: PathBuf,
    templates: &Templates,
    host: &mut HostArch,
    streams: &mut Streams,
) -> Result<PackageDone, DhError> {
    dh.verbose_print(
        streams,
        &format!("installing {} as dkms.conf", source.display()),
    );
    let original = std::fs::read(dh.root.join(&source)).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            DhError::Conf(ConfError::Missing {
                path: source.clone(),
                source: e,
            })
        } else {
            DhError::Read {
                path: source.clone(),
                source: e,
            }
        }
    })?;

    // -V: dh_dkms writes the substituted copy to debian/<package>.dkms.debhelper (which
    // dh_clean removes) and installs that.
    let mut _no_act_copy = None;
    let conf_path = match ctx.module_version {
        None => source.clone(),
        Some(given) => {
            let version = if given.is_empty() {
                changelog_upstream_version(dh, ctx, host)?
            } else {
                given.to_string()
            };
            let text =
                String::from_utf8_lossy(&original).replace(MODULE_VERSION_PLACEHOLDER, &version);
            let generated = PathBuf::from(format!("debian/{}.dkms.debhelper", ctx.package));
            dh.verbose_print(
                streams,
                &format!(
                    "sed s/{MODULE_VERSION_PLACEHOLDER}/{version}/g {} > {}",
                    source.display(),
                    generated.display()
                ),
            );
            if dh.no_act {
                // Nothing may be written into the source package: read a scratch copy.
                let mut tmp = tempfile::NamedTempFile::new().map_err(|source| DhError::Write {
                    path: std::env::temp_dir(),
                    source,
                })?;
                tmp.write_all(text.as_bytes())
                    .map_err(|source| DhError::Write {
                        path: tmp.path().to_path_buf(),
                        source,
                    })?;
                // Absolute: joined to the root, it stays itself.
                let path = tmp.path().to_path_buf();
                _no_act_copy = Some(tmp);
                path
            } else {
                dh_lib::replace_file(dh.root, &generated, text.as_bytes(), None)?;
                generated
            }
        }
    };

    // Resolved for no kernel in particular: what the package carries holds for all (as mkdeb).
    let conf = conf::read(&dh.root.join(&conf_path), &ResolveContext::new("", ""))?;
    if conf.package_version.contains(MODULE_VERSION_PLACEHOLDER) {
        return Err(DhError::VersionPlaceholder { path: conf_path });
    }
    let depends = dkms_depends(&conf).to_string();
    let installed = std::fs::read(dh.root.join(&conf_path)).map_err(|source| DhError::Read {
        path: conf_path.clone(),
        source,
    })?;
    let mtime = std::fs::metadata(dh.root.join(&conf_path))
        .and_then(|m| m.modified())
        .ok();

    let rendered = |name: &str| {
        templates.render(
            name,
            &context! {
                name => &conf.package_name,
                version => &conf.package_version,
                package => ctx.package,
            },
        )
    };
    let postinst = rendered("autoscripts/postinst-dkms")?;
    let prerm = rendered("autoscripts/prerm-dkms")?;

    let dest = ctx
        .tmpdir
        .join(format!(
            "usr/src/{}-{}",
            conf.package_name, conf.package_version
        ))
        .join("dkms.conf");

    // Everything is computed; now the files, each complete or not at all.
    dh_lib::addsubstvar(dh, ctx.package, "misc:Depends", &depends)?;
    dh_lib::autoscript(
        dh,
        streams,
        ctx.package,
        "postinst",
        "postinst-dkms",
        &postinst,
    )?;
    dh_lib::autoscript(dh, streams, ctx.package, "prerm", "prerm-dkms", &prerm)?;
    dh.verbose_print(
        streams,
        &format!(
            "install -p -D -m644 {} {}",
            conf_path.display(),
            dest.display()
        ),
    );
    if !dh.no_act {
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(dh.root.join(parent)).map_err(|source| DhError::Write {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        dh_lib::replace_file(dh.root, &dest, &installed, mtime)?;
    }
    Ok(PackageDone {
        package: ctx.package.to_string(),
        module: conf.package_name.clone(),
        module_version: conf.package_version.clone(),
        dkms_conf: dest,
        depends,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dkms_file_is_a_conf_when_it_assigns_package_name() {
        assert!(is_dkms_conf(
            "PACKAGE_NAME=\"hello\"\nPACKAGE_VERSION=0.1\n"
        ));
        assert!(is_dkms_conf("  PACKAGE_NAME=hello\n"));
        assert!(is_dkms_conf("if true; then PACKAGE_NAME=hello; fi\n"));
        assert!(!is_dkms_conf("dkms.conf\n"));
    }
}
