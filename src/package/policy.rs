//! What Debian requires of a package's names and fields (Policy 5.6: versions, package
//! names, maintainer), the dependency on dkms, and the identity read from dkms.conf.

use std::path::Path;

use crate::conf::{self, ModuleConf, ResolveContext};

use super::{PackageError, Setting};

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
    /// Read and check PACKAGE_NAME and PACKAGE_VERSION from `source_dir/dkms.conf` (refused
    /// when it needs bash and `no_exec`, see [`ResolveContext::no_exec`]).
    pub fn read(
        source_dir: &Path,
        package_name: Option<&str>,
        revision: Option<&str>,
        no_exec: bool,
    ) -> Result<Self, PackageError> {
        let conf_path = source_dir.join("dkms.conf");
        // Resolved for no kernel in particular: what the package carries holds for all.
        let mut ctx = ResolveContext::new("", "");
        ctx.no_exec = no_exec;
        let conf = conf::read(&conf_path, &ctx)?;
        let depends = dkms_depends(&conf);
        let (name, version) = (conf.package_name, conf.package_version);
        let package = match package_name {
            Some(p) => {
                check_package_name(p).map_err(|reason| PackageError::BadOption {
                    setting: Setting::PackageName,
                    value: p.to_string(),
                    reason,
                })?;
                p.to_string()
            }
            None => {
                let p = default_package_name(&name);
                check_package_name(&p).map_err(|reason| PackageError::BadField {
                    path: conf_path.clone(),
                    field: "PACKAGE_NAME",
                    value: name.clone(),
                    reason,
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
                    setting: Setting::Revision,
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

    /// Non-native packages ship `changelog.Debian.gz`, native ones `changelog.gz` (Policy 12.7).
    /// A version is non-native when it has a Debian revision, i.e. a `-` (dpkg's parseversion
    /// splits at the last one; lintian's changelog check decides so too): also when the `-`
    /// comes from PACKAGE_VERSION itself.
    pub(super) fn changelog_name(&self) -> &'static str {
        if self.is_native() {
            "changelog.gz"
        } else {
            "changelog.Debian.gz"
        }
    }

    /// Whether the version has no Debian revision (Policy 5.6.12: "native" packages).
    pub fn is_native(&self) -> bool {
        !self.deb_version.contains('-')
    }

    /// Whether lintian takes the package's one-entry changelog for a first upload to Debian,
    /// which should close its ITP bug (`initial-upload-closes-no-bugs`: one entry and a version
    /// ending in `-1`, lintian's Check/Debian/Changelog.pm).
    pub fn looks_like_initial_upload(&self) -> bool {
        self.deb_version.ends_with("-1")
    }
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
pub(super) fn check_maintainer(m: &str) -> Result<(), String> {
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

/// The binary package of module `name` when none is given: `<name>-dkms`, lowercased and with
/// `_` as `-`, as Debian names the -dkms packages of such modules (tp_smapi: tp-smapi-dkms,
/// acpi_call: acpi-call-dkms). Other characters are kept, for [`check_package_name`] to refuse.
pub(super) fn default_package_name(name: &str) -> String {
    format!("{}-dkms", name.to_ascii_lowercase().replace('_', "-"))
}

/// Debian package names: lowercase letters, digits, `+ - .`, at least two characters,
/// starting with a letter or digit (Policy 5.6.1).
pub(super) fn check_package_name(p: &str) -> Result<(), String> {
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
    fn default_package_names_are_debian_names() {
        assert_eq!(default_package_name("tp_smapi"), "tp-smapi-dkms");
        assert_eq!(default_package_name("Hello_World"), "hello-world-dkms");
        assert!(check_package_name(&default_package_name("a b")).is_err());
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
}
