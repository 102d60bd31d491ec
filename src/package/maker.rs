//! What every package of a module is made with, -dkms and -modules alike: the checked
//! maintainer, the templates, the entry mtime, the copyright and changelog, the maintainer
//! scripts and the written .deb.

use std::path::Path;

use crate::deb::{self, ControlMember, DataTree, DebBuild, DebError, WrittenDeb};
use crate::templates::{TemplateError, Templates};

use super::policy::{COMMON_LICENSES, PackageIdentity, check_maintainer, maintainer_from_env};
use super::{MkdebOptions, PackageError, Setting, gzip_max, source_date_epoch_from_env};

/// The options of one dkms-mkdeb run, checked, with the templates loaded.
pub(super) struct Maker<'o> {
    pub opts: &'o MkdebOptions,
    /// `Name <email>`, from the options or the environment.
    pub maintainer: String,
    pub templates: Templates,
}

impl<'o> Maker<'o> {
    /// Check the license and the maintainer, and load the templates.
    pub fn new(opts: &'o MkdebOptions) -> Result<Maker<'o>, PackageError> {
        if !COMMON_LICENSES.contains(&opts.license.as_str()) && opts.copyright_file.is_none() {
            return Err(PackageError::BadOption {
                setting: Setting::License,
                value: opts.license.clone(),
                reason: format!(
                    "is not in /usr/share/common-licenses ({}); ship your own text",
                    COMMON_LICENSES.join(", ")
                ),
            });
        }
        let maintainer = match &opts.maintainer {
            Some(m) => m.clone(),
            None => {
                maintainer_from_env(|k| std::env::var(k).ok()).ok_or(PackageError::NoMaintainer)?
            }
        };
        check_maintainer(&maintainer).map_err(|reason| PackageError::BadOption {
            setting: Setting::Maintainer,
            value: maintainer.clone(),
            reason,
        })?;
        // debian/changelog's `Closes: #N`: bug numbers only (Policy 4.4, dpkg's Closes regex).
        if let Some(bug) = opts
            .closes
            .iter()
            .find(|b| b.is_empty() || !b.bytes().all(|c| c.is_ascii_digit()))
        {
            return Err(PackageError::BadOption {
                setting: Setting::Closes,
                value: bug.clone(),
                reason: "is not a Debian bug number (digits only, e.g. 1234567)".into(),
            });
        }
        let templates = Templates::load(opts.templates.as_deref())?;
        Ok(Maker {
            opts,
            maintainer,
            templates,
        })
    }

    /// Every entry's mtime: the option, else SOURCE_DATE_EPOCH, else `newest` (the newest
    /// source file).
    pub fn mtime(&self, newest: u64) -> Result<u64, PackageError> {
        match self.opts.source_date_epoch {
            Some(t) => Ok(t),
            None => Ok(source_date_epoch_from_env()?.unwrap_or(newest)),
        }
    }

    /// The maintainer's name, without the address.
    pub fn maintainer_name(&self) -> String {
        self.maintainer
            .split_once('<')
            .map_or(self.maintainer.as_str(), |(n, _)| n)
            .trim()
            .to_string()
    }

    /// `/usr/share/doc/<package>/copyright` (rendered, or the packager's file) and the gzipped
    /// changelog, named as Policy 12.7 says for the package's version. When lintian would take
    /// that one-entry changelog for a first upload to Debian that closes no ITP bug, and no
    /// `--closes` was given, a lintian override says why none is closed.
    pub fn add_doc_files(
        &self,
        data: &mut DataTree,
        package: &str,
        id: &PackageIdentity,
        ctx: &minijinja::Value,
    ) -> Result<(), PackageError> {
        let doc = format!("usr/share/doc/{package}");
        let copyright = self.copyright(ctx)?;
        data.add_file_bytes(&format!("{doc}/copyright"), copyright, false);
        let changelog = self.templates.render("changelog", ctx)?;
        data.add_file_bytes(
            &format!("{doc}/{}", id.changelog_name()),
            gzip_max(changelog.as_bytes()),
            false,
        );
        if let Some(text) = self.lintian_overrides(package, id) {
            data.add_file_bytes(
                &format!("usr/share/lintian/overrides/{package}"),
                text.into_bytes(),
                false,
            );
        }
        Ok(())
    }

    /// The package's lintian overrides, if it needs any: when lintian would take its one-entry
    /// changelog for a first upload to Debian that closes no ITP bug, and no `--closes` was
    /// given, why none is closed.
    pub fn lintian_overrides(&self, package: &str, id: &PackageIdentity) -> Option<String> {
        (id.looks_like_initial_upload() && self.opts.closes.is_empty()).then(|| {
            format!(
                "# Made by dkms-mkdeb for use outside the Debian archive: no ITP bug to close\n\
                 # (dkms-mkdeb --closes BUG names the ITP of a package meant for Debian).\n\
                 {package}: initial-upload-closes-no-bugs\n"
            )
        })
    }

    /// debian/copyright: the packager's file, or the rendered template.
    pub fn copyright(&self, ctx: &minijinja::Value) -> Result<Vec<u8>, PackageError> {
        match &self.opts.copyright_file {
            Some(path) => std::fs::read(path).map_err(|source| PackageError::Io {
                path: path.clone(),
                source,
            }),
            None => Ok(self.templates.render("copyright", ctx)?.into_bytes()),
        }
    }

    /// The maintainer scripts: `(member name, template name)` each, rendered, executable.
    pub fn scripts(
        &self,
        names: &[(&str, &str)],
        ctx: &minijinja::Value,
    ) -> Result<Vec<ControlMember>, TemplateError> {
        names
            .iter()
            .map(|(member, template)| {
                Ok(ControlMember {
                    name: member.to_string(),
                    bytes: self.templates.render(template, ctx)?.into_bytes(),
                    executable: true,
                })
            })
            .collect()
    }

    /// Write the .deb at `out`, its control file rendered from `control_template` with
    /// `installed_size` added to `ctx`.
    pub fn write(
        &self,
        data: &DataTree,
        maintainer_scripts: Vec<ControlMember>,
        mtime: u64,
        control_template: &str,
        ctx: &minijinja::Value,
        out: &Path,
    ) -> Result<WrittenDeb, PackageError> {
        let build = DebBuild {
            data,
            maintainer_scripts,
            mtime,
            compression: self.opts.compression,
        };
        Ok(deb::write_deb(
            &build,
            |installed_size| {
                let ctx = minijinja::context! { installed_size => installed_size, ..ctx.clone() };
                self.templates
                    .render(control_template, &ctx)
                    .map_err(|e| DebError::Control(Box::new(e)))
            },
            out,
        )?)
    }
}

/// A changelog date (RFC 2822, Policy 4.4) and the year, for an entry mtime.
pub(super) fn changelog_dates(mtime: u64) -> (String, String) {
    let date = chrono::DateTime::from_timestamp(mtime as i64, 0).unwrap_or_default();
    (
        date.format("%a, %d %b %Y %H:%M:%S +0000").to_string(),
        date.format("%Y").to_string(),
    )
}
