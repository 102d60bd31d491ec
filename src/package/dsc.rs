//! mkdsc: a module source tree -> the Debian source package of its `-dkms` package,
//! `<package>_<version>.dsc` with its tarball(s), which `dpkg-source -x` unpacks and
//! `dpkg-buildpackage` builds (debhelper and the dh-sequence-dkms-rs addon) into the package
//! [`super::mkdeb`] makes of the same source: the same files.
//!
//! The format is the one dpkg accepts for the version: `3.0 (native)` (one
//! `<package>_<version>.tar.gz`) when the version has no Debian revision, else `3.0 (quilt)`
//! (`<package>_<upstream>.orig.tar.gz` holding the module source and
//! `<package>_<version>.debian.tar.gz` holding `debian/`). `debian/` is rendered from
//! `templates/dsc/` (control, rules, source/format) and the `changelog` and `copyright`
//! templates of the binary package; the .dsc from `templates/dsc/dsc`. Every tar entry is
//! root-owned with normalised modes and the package's mtime, gzip carries no name or time: the
//! same source gives the same bytes. The files appear by rename, the .dsc last.

use std::fs::File;
use std::io::{self, BufWriter, Read};
use std::path::{Path, PathBuf};

use minijinja::context;

use crate::atomic::PendingFile;
use crate::deb::tar::TarWriter;
use crate::deb::{DataEntry, DataTree, FileContent};

use super::dkms_deb::describe;
use super::maker::{Maker, changelog_dates};
use super::policy::PackageIdentity;
use super::source::add_source_tree;
use super::{MkdebOptions, PackageError};

/// debian/control's and the .dsc's Standards-Version: the Policy version the generated
/// packaging follows (Debian 12's lintian knows it).
pub const STANDARDS_VERSION: &str = "4.6.2";
/// When Policy 4.6.2 was released (its changelog's date, as lintian's releases.json has it):
/// the earliest date of a debian/changelog entry that follows it (lintian's
/// `timewarp-standards-version`).
const STANDARDS_VERSION_RELEASED: u64 = 1_671_244_904;
/// What building the source package needs: debhelper 13 and dkms-rs-tools' dh addon.
pub const BUILD_DEPENDS: &str = "debhelper-compat (= 13), dh-sequence-dkms-rs";

/// What [`mkdsc`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenDsc {
    /// The `.dsc`.
    pub dsc: PathBuf,
    /// The tarballs it lists, in its order.
    pub tarballs: Vec<PathBuf>,
    /// `3.0 (native)` or `3.0 (quilt)`.
    pub format: &'static str,
}

/// Make the source package of the module in `opts.source_dir` in `opts.output_dir`.
pub fn mkdsc(opts: &MkdebOptions) -> Result<WrittenDsc, PackageError> {
    let id = PackageIdentity::read(
        &opts.source_dir,
        opts.package_name.as_deref(),
        opts.revision.as_deref(),
        opts.no_exec,
    )?;
    let debian_dir = opts.source_dir.join("debian");
    if debian_dir.symlink_metadata().is_ok() {
        return Err(PackageError::Unsupported {
            path: debian_dir,
            reason: "the module source has a debian/ directory already: build that with dpkg-buildpackage (mkdsc writes its own debian/)",
        });
    }
    let control_file = opts.source_dir.join(super::declared::CONTROL_FILE);
    if !opts.declared.is_empty() || control_file.exists() {
        return Err(PackageError::Unsupported {
            path: opts.declared.control_file.clone().unwrap_or(control_file),
            reason: "the source package does not carry declared control fields or files yet: write them into debian/control and debian/<package>.install, or make the .deb",
        });
    }
    check_output_outside_source(&opts.source_dir, &opts.output_dir)?;
    let maker = Maker::new(opts)?;

    // File names carry the version without its epoch (dpkg-source's).
    let version = id
        .deb_version
        .split_once(':')
        .map_or(id.deb_version.as_str(), |(_, v)| v);
    let upstream = version.rsplit_once('-').map(|(u, _)| u);
    let format = if upstream.is_none() {
        "3.0 (native)"
    } else {
        "3.0 (quilt)"
    };
    let top = format!("{}-{}", id.package, upstream.unwrap_or(version));
    let mut source = DataTree::new();
    let newest = add_source_tree(&mut source, &opts.source_dir, &top)?;
    let mtime = maker.mtime(newest)?;

    let (synopsis, description) = describe(&id, opts.description.as_deref());
    // The copyright's year is the source's; the changelog entry is not older than the Policy
    // it says it follows (a source whose newest file is older than that).
    let (_, year) = changelog_dates(mtime);
    let (date, _) = changelog_dates(mtime.max(STANDARDS_VERSION_RELEASED));
    let ctx = context! {
        name => &id.name,
        version => &id.version,
        package => &id.package,
        deb_version => &id.deb_version,
        maintainer => &maker.maintainer,
        maintainer_name => maker.maintainer_name(),
        synopsis => synopsis,
        description => description,
        license => &opts.license,
        date => date,
        closes => &opts.closes,
        year => year,
        format => format,
        standards_version => STANDARDS_VERSION,
        build_depends => BUILD_DEPENDS,
    };
    let render = |name: &str| -> Result<Vec<u8>, PackageError> {
        Ok(maker.templates.render(name, &ctx)?.into_bytes())
    };
    let mut debian: Vec<(String, Vec<u8>, bool)> = vec![
        ("changelog".into(), render("changelog")?, false),
        ("control".into(), render("dsc/control")?, false),
        ("copyright".into(), maker.copyright(&ctx)?, false),
        // dh_dkms-rs installs the dkms.conf this names (relative to the top directory).
        (
            format!("{}.dkms", id.package),
            b"dkms.conf\n".to_vec(),
            false,
        ),
        ("rules".into(), render("dsc/rules")?, true),
        ("source/format".into(), render("dsc/format")?, false),
    ];
    if let Some(text) = maker.lintian_overrides(&id.package, &id) {
        debian.push((
            format!("{}.lintian-overrides", id.package),
            text.into_bytes(),
            false,
        ));
    }

    let mut tarballs: Vec<(String, DataTree)> = Vec::new();
    match upstream {
        None => {
            for (path, bytes, executable) in debian {
                source.add_file_bytes(&format!("{top}/debian/{path}"), bytes, executable);
            }
            tarballs.push((format!("{}_{version}.tar.gz", id.package), source));
        }
        Some(upstream) => {
            let mut tree = DataTree::new();
            tree.add_dir("debian");
            for (path, bytes, executable) in debian {
                tree.add_file_bytes(&format!("debian/{path}"), bytes, executable);
            }
            tarballs.push((format!("{}_{upstream}.orig.tar.gz", id.package), source));
            tarballs.push((format!("{}_{version}.debian.tar.gz", id.package), tree));
        }
    }

    let mut pending = Vec::new();
    let mut listed = Vec::new();
    for (name, tree) in &tarballs {
        let dest = opts.output_dir.join(name);
        let io_err = |source| PackageError::Io {
            path: dest.clone(),
            source,
        };
        let file = PendingFile::create(&dest, ".new").map_err(io_err)?;
        write_tar_gz(tree, mtime, file.file())?.map_err(io_err)?;
        let (size, md5, sha1, sha256) = digests(file.path()).map_err(io_err)?;
        // One file of the .dsc's lists.
        listed.push(
            context! { name => name, size => size, md5 => md5, sha1 => sha1, sha256 => sha256 },
        );
        pending.push((dest, file));
    }
    let dsc_text = maker
        .templates
        .render("dsc/dsc", &context! { files => listed, ..ctx.clone() })?;
    let dsc_path = opts
        .output_dir
        .join(format!("{}_{version}.dsc", id.package));
    let io_err = |source| PackageError::Io {
        path: dsc_path.clone(),
        source,
    };
    let dsc = PendingFile::create(&dsc_path, ".new").map_err(io_err)?;
    std::io::Write::write_all(&mut dsc.file(), dsc_text.as_bytes()).map_err(io_err)?;

    // The tarballs first: a .dsc appears only when what it lists is there.
    let mut written = Vec::new();
    for (dest, file) in pending {
        written.push(
            file.commit()
                .map_err(|source| PackageError::Io { path: dest, source })?,
        );
    }
    let dsc = dsc.commit().map_err(io_err)?;
    Ok(WrittenDsc {
        dsc,
        tarballs: written,
        format,
    })
}

/// A source package written into its own source would hold itself the next time.
fn check_output_outside_source(source: &Path, output: &Path) -> Result<(), PackageError> {
    let canonical = |p: &Path| {
        p.canonicalize().map_err(|source| PackageError::Io {
            path: p.to_path_buf(),
            source,
        })
    };
    let (src, out) = (canonical(source)?, canonical(output)?);
    if out.starts_with(&src) {
        return Err(PackageError::Unsupported {
            path: output.to_path_buf(),
            reason: "the output directory is inside the module source: the source package would contain itself (write it elsewhere, with -o DIR)",
        });
    }
    Ok(())
}

/// `tree` as a gzipped tar (`tar --owner=0 --group=0 --sort=name | gzip -9n`): names as the
/// tree has them (no `./`), directories ending in `/`, modes 0755/0644, every mtime `mtime`.
/// The outer result is a source file that cannot be read; the inner one, the output.
fn write_tar_gz(tree: &DataTree, mtime: u64, out: &File) -> Result<io::Result<()>, PackageError> {
    let gz = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(3)
        .write(BufWriter::new(out), flate2::Compression::best());
    let mut tar = TarWriter::new(gz);
    for path in tree.paths() {
        if path.is_empty() {
            continue;
        }
        let written = match tree.get(path) {
            Some(DataEntry::Dir) | None => tar.dir(&format!("{path}/"), 0o755, mtime),
            Some(DataEntry::Symlink { target }) => tar.symlink(path, target, mtime),
            Some(DataEntry::File {
                content,
                executable,
            }) => {
                let mode = if *executable { 0o755 } else { 0o644 };
                let bytes = match content {
                    FileContent::Bytes(bytes) => std::borrow::Cow::Borrowed(bytes),
                    FileContent::Disk(from) => {
                        std::borrow::Cow::Owned(std::fs::read(from).map_err(|source| {
                            PackageError::Io {
                                path: from.clone(),
                                source,
                            }
                        })?)
                    }
                };
                tar.file_bytes(path, mode, &bytes, mtime)
            }
        };
        if let Err(e) = written {
            return Ok(Err(e));
        }
    }
    Ok((|| {
        let gz = tar.finish()?;
        let buf = gz.finish()?;
        buf.into_inner().map_err(|e| e.into_error())?;
        Ok(())
    })())
}

/// Size, md5, sha1 and sha256 (hex) of the file at `path`.
fn digests(path: &Path) -> io::Result<(u64, String, String, String)> {
    use sha2::Digest;
    let mut file = File::open(path)?;
    let (mut md5, mut sha1, mut sha256) = (md5::Md5::new(), sha1::Sha1::new(), sha2::Sha256::new());
    let mut buf = vec![0u8; 64 << 10];
    let mut size = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        md5.update(&buf[..n]);
        sha1.update(&buf[..n]);
        sha256.update(&buf[..n]);
        size += n as u64;
    }
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    Ok((
        size,
        hex(&md5.finalize()),
        hex(&sha1.finalize()),
        hex(&sha256.finalize()),
    ))
}
