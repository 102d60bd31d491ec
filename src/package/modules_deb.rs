//! `--binaries-only` / mkbmdeb: `<name>-modules-<kernel>` packages holding built modules only.

use std::path::PathBuf;

use minijinja::context;

use crate::conf::ConfFile;
use crate::deb::{DataTree, WrittenDeb};
use crate::kernel;

use super::maker::{Maker, changelog_dates};
use super::policy::{PackageIdentity, check_package_name};
use super::prebuilt::Prebuilt;
use super::source::add_source_tree;
use super::{MkdebOptions, PackageError, Setting};

/// `--binaries-only`: one `<name>-modules-<kernel>_<version>_<arch>.deb` per target of
/// `prebuilt`, as `dkms mkbmdeb` made them (dkms 2.8's template-dkms-mkbmdeb): the built
/// modules where dkms installs them (`/lib/modules/<kernel>/<DEST_MODULE_LOCATION>/`, Debian's
/// `updates/dkms`), Depends on
/// `linux-image-<kernel>`, Provides `<name>-modules`, and a postinst/postrm running depmod for
/// that kernel. No source, no DKMS needed on the target.
pub fn mkbmdeb(opts: &MkdebOptions, prebuilt: &Prebuilt) -> Result<Vec<WrittenDeb>, PackageError> {
    let id = PackageIdentity::read(
        &opts.source_dir,
        None,
        opts.revision.as_deref(),
        opts.no_exec,
    )?;
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
    let conf_file = ConfFile::read(&prebuilt.tree.source_dir(&prebuilt.module).join("dkms.conf"))?;
    let mut written = Vec::new();
    for target in &prebuilt.targets {
        let kernel = target.kernel.as_str();
        let package = format!("{base}-modules-{kernel}");
        check_package_name(&package).map_err(|reason| PackageError::BadOption {
            setting: Setting::Kernels,
            value: kernel.to_string(),
            reason,
        })?;
        let module_dir = prebuilt
            .tree
            .built_dir(&prebuilt.module, target)
            .join("module");
        // Each record's module where dkms installs it: <dest dir>/<DEST_MODULE_NAME>.ko[.xz].
        let not_built = || {
            PackageError::Tarball(crate::tarball::TarballError::NotBuilt {
                target: target.clone(),
                dir: module_dir.clone(),
            })
        };
        let conf = conf_file.resolve(
            &prebuilt
                .tree
                .resolve_context(target, Some(&prebuilt.module)),
        )?;
        let compression = target.kernel.module_compression();
        let lib = PathBuf::from(format!("lib/modules/{kernel}"));
        let mut files: Vec<(String, PathBuf, PathBuf)> = Vec::new();
        for record in &conf.modules {
            let path = kernel::module_file(&module_dir, &record.dest_name, compression)
                .ok_or_else(not_built)?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            files.push((name, path, record.dest_dir(&lib)));
        }
        if files.is_empty() {
            return Err(not_built());
        }
        let mut data = DataTree::new();
        for (name, path, dir) in &files {
            data.add_file_from_disk(&format!("{}/{name}", dir.display()), path.clone(), false);
        }
        let modules: Vec<&str> = files.iter().map(|(n, _, _)| n.as_str()).collect();
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
            closes => &opts.closes,
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
