//! The `<name>-dkms` package: the source, copyright and changelog, the maintainer scripts
//! that hand the module to dkms-rs or Debian's dkms, and prebuilt modules when given.

use minijinja::context;

use crate::deb::{DataTree, WrittenDeb};

use super::declared::Declared;
use super::maker::{Maker, changelog_dates};
use super::policy::PackageIdentity;
use super::prebuilt::Prebuilt;
use super::source::add_source_tree;
use super::{MkdebOptions, PackageError};

/// Make the `-dkms` package of the module in `opts.source_dir`; returns what was written.
pub fn mkdeb(opts: &MkdebOptions) -> Result<WrittenDeb, PackageError> {
    mkdeb_with_prebuilt(opts, None)
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
        opts.no_exec,
    )?;
    let maker = Maker::new(opts)?;
    let declared = Declared::read(&opts.source_dir, &opts.declared)?;
    let mut data = DataTree::new();
    let src_prefix = format!("usr/src/{}-{}", id.name, id.version);
    let newest = add_source_tree(&mut data, &opts.source_dir, &src_prefix)?;
    let mtime = maker.mtime(newest)?;

    let (synopsis, mut description) = describe(&id, opts.description.as_deref());
    let mut architecture = declared.architecture.as_deref().unwrap_or("all");
    // Kept until the package is written: the data tree reads it from there.
    let mut _prebuilt_tarball = None;
    if let Some(p) = prebuilt {
        let modules_arch = p.deb_arch()?;
        if let Some(declared_arch) = declared.architecture.as_deref()
            && declared_arch != modules_arch
        {
            return Err(declared.field_error(
                "Architecture",
                declared_arch,
                format!("{declared_arch:?}, but the prebuilt modules (-k) are {modules_arch}"),
            ));
        }
        architecture = modules_arch;
        _prebuilt_tarball = Some(p.add_tarball(&mut data, &id, mtime)?);
        description.push_str(&p.description());
    }
    // dpkg-gencontrol's "Multi-Arch: same" needs an architecture-dependent package.
    if architecture == "all" && declared.multi_arch.as_deref() == Some("same") {
        return Err(declared.field_error(
            "Multi-Arch",
            "same",
            "\"same\" needs an architecture: an Architecture: all package cannot be Multi-Arch: same".into(),
        ));
    }
    let (date, year) = changelog_dates(mtime);
    let ctx = context! {
        name => &id.name,
        version => &id.version,
        package => &id.package,
        deb_version => &id.deb_version,
        maintainer => &maker.maintainer,
        maintainer_name => maker.maintainer_name(),
        depends => declared.depends(id.depends),
        relations => declared.other_relations(),
        section => declared.section.as_deref().unwrap_or("kernel"),
        priority => declared.priority.as_deref().unwrap_or("optional"),
        multi_arch => declared.multi_arch.as_deref(),
        homepage => declared.homepage.as_deref(),
        architecture => architecture,
        synopsis => synopsis,
        description => description,
        license => &opts.license,
        date => date,
        closes => &opts.closes,
        year => year,
    };
    maker.add_doc_files(&mut data, &id.package, &id, &ctx)?;
    declared.add_install_files(&mut data)?;
    let mut scripts = maker.scripts(&[("postinst", "postinst"), ("prerm", "prerm")], &ctx)?;
    scripts.extend(declared.conffiles());
    let out = opts.output_dir.join(id.deb_file_name_for(architecture));
    maker.write(&data, scripts, mtime, "control", &ctx, &out)
}

/// Synopsis and extended description: from `--description` (first line, rest) or the default.
pub(super) fn describe(id: &PackageIdentity, given: Option<&str>) -> (String, String) {
    // One paragraph: the control template wraps it to the width lintian allows.
    let default_long = format!(
        "This package provides the source code of the {name} {version} kernel module. \
         DKMS builds and installs it for every kernel on the system whose headers are \
         installed, and again whenever a new kernel is installed.",
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
