//! `--binaries-only` / mkbmdeb: `<name>-modules-<kernel>` packages holding built modules only.

use std::path::PathBuf;

use minijinja::context;

use crate::deb::{DataTree, WrittenDeb};

use super::maker::{Maker, changelog_dates};
use super::policy::{PackageIdentity, check_package_name};
use super::prebuilt::Prebuilt;
use super::source::add_source_tree;
use super::{MkdebOptions, PackageError};

/// `--binaries-only`: one `<name>-modules-<kernel>_<version>_<arch>.deb` per target of
/// `prebuilt`, as `dkms mkbmdeb` made them (dkms 2.8's template-dkms-mkbmdeb): the built
/// modules in `/lib/modules/<kernel>/updates/dkms/` (Debian's dkms location), Depends on
/// `linux-image-<kernel>`, Provides `<name>-modules`, and a postinst/postrm running depmod for
/// that kernel. No source, no DKMS needed on the target.
pub fn mkbmdeb(opts: &MkdebOptions, prebuilt: &Prebuilt) -> Result<Vec<WrittenDeb>, PackageError> {
    let id = PackageIdentity::read(&opts.source_dir, None, opts.revision.as_deref())?;
    let maker = Maker::new(opts)?;
    let architecture = prebuilt.deb_arch()?;
    // dkms mkbmdeb's DEBIAN_PACKAGE: the module name with `_` made `-`.
    let base = opts
        .package_name
        .clone()
        .unwrap_or_else(|| id.name.replace('_', "-"));
    let newest = add_source_tree(&mut DataTree::new(), &opts.source_dir, "src")?;
    let mtime = maker.mtime(newest)?;
    let maintainer_name = maker.maintainer_name();
    let (date, year) = changelog_dates(mtime);
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
            maintainer => &maker.maintainer,
            maintainer_name => &maintainer_name,
            architecture => architecture,
            description => description,
            license => &opts.license,
            date => &date,
            year => &year,
        };
        maker.add_doc_files(&mut data, &package, &id, &ctx)?;
        let scripts = maker.scripts(
            &[("postinst", "bmdeb/postinst"), ("postrm", "bmdeb/postrm")],
            &ctx,
        )?;
        let version = id
            .deb_version
            .split_once(':')
            .map_or(id.deb_version.as_str(), |(_, v)| v);
        let out = opts
            .output_dir
            .join(format!("{package}_{version}_{architecture}.deb"));
        written.push(maker.write(&data, scripts, mtime, "bmdeb/control", &ctx, &out)?);
    }
    Ok(written)
}
