//! debian/control: the source package's binary packages, and which of them this build makes
//! (their Architecture and Build-Profiles against the host, as Dh_Lib's `getpackages`).

use std::path::{Path, PathBuf};

use super::dh_lib::HostArch;
use super::{DhEnv, DhError, TOOL_NAME};

/// Where debian/control is, under the source package root.
const CONTROL: &str = "debian/control";

/// Why debian/control cannot be used. Paths are relative to the source package root.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("{path}: not found: run {TOOL_NAME} in the top directory of a source package")]
    NotFound { path: PathBuf },
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not deb822; the message is the parser's.
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}: no Source field in the first paragraph")]
    NoSource { path: PathBuf },
    #[error("{path}: a binary paragraph has no Package field")]
    NoPackageField { path: PathBuf },
    #[error("{path}: package {package} is listed twice")]
    ListedTwice { path: PathBuf, package: String },
    #[error("{path}: no binary package (no Package paragraph)")]
    NoBinaryPackage { path: PathBuf },
}

/// A binary package stanza of debian/control, with what package selection needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryPackage {
    pub name: String,
    /// The Architecture field: `all`, `any`, or a list of architectures and wildcards.
    pub architecture: String,
    /// The Build-Profiles field, when there is one.
    pub build_profiles: Option<String>,
}

/// The parts of debian/control dh_dkms-rs needs: the binary packages, in file order.
#[derive(Debug, Clone)]
pub struct SourceControl {
    pub source: String,
    /// Never empty.
    pub packages: Vec<BinaryPackage>,
}

impl SourceControl {
    /// Parse debian/control of the source package whose top directory is `root`.
    pub fn read(root: &Path) -> Result<Self, ControlError> {
        let path = PathBuf::from(CONTROL);
        let full = root.join(&path);
        if !full.is_file() {
            return Err(ControlError::NotFound { path });
        }
        let text = std::fs::read_to_string(&full).map_err(|source| ControlError::Read {
            path: path.clone(),
            source,
        })?;
        Self::parse(&path, &text)
    }

    /// Parse the text of a debian/control; `path` is for messages.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ControlError> {
        let path = || path.to_path_buf();
        let deb822: deb822_lossless::Deb822 =
            text.parse()
                .map_err(|e: deb822_lossless::ParseError| ControlError::Syntax {
                    path: path(),
                    message: e.0.first().cloned().unwrap_or_else(|| "not deb822".into()),
                })?;
        let mut paragraphs = deb822.paragraphs();
        let source = paragraphs
            .next()
            .and_then(|p| p.get("Source"))
            .map(|s| s.trim().to_string())
            .ok_or_else(|| ControlError::NoSource { path: path() })?;
        let mut packages: Vec<BinaryPackage> = Vec::new();
        for p in paragraphs {
            let name = p
                .get("Package")
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .ok_or_else(|| ControlError::NoPackageField { path: path() })?;
            if packages.iter().any(|q| q.name == name) {
                return Err(ControlError::ListedTwice {
                    path: path(),
                    package: name,
                });
            }
            packages.push(BinaryPackage {
                architecture: p
                    .get("Architecture")
                    .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
                    .unwrap_or_default(),
                build_profiles: p.get("Build-Profiles"),
                name,
            });
        }
        if packages.is_empty() {
            return Err(ControlError::NoBinaryPackage { path: path() });
        }
        Ok(SourceControl { source, packages })
    }

    /// The first binary package (Dh_Lib's `$dh{MAINPACKAGE}`): the one `debian/<name>`
    /// files without a package prefix belong to.
    pub fn main_package(&self) -> &str {
        &self.packages[0].name
    }
}

/// Whether a Build-Profiles formula (`<!nocheck> <stage1 cross>`) admits `active` profiles:
/// one group whose terms all hold (Debian's BuildProfileSpec).
pub fn build_profiles_admit(formula: &str, active: &[&str]) -> bool {
    let groups: Vec<&str> = formula
        .split('<')
        .filter_map(|g| g.split('>').next())
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .collect();
    if groups.is_empty() {
        return true;
    }
    groups.iter().any(|group| {
        group
            .split_whitespace()
            .all(|term| match term.strip_prefix('!') {
                Some(name) => !active.contains(&name),
                None => active.contains(&term),
            })
    })
}

/// Which packages are `indep` and `arch` for this build (Dh_Lib's `getpackages`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageKinds {
    /// Every binary package, in debian/control's order.
    pub all: Vec<String>,
    /// Architecture: all, admitted by DEB_BUILD_PROFILES.
    pub indep: Vec<String>,
    /// Built on the host architecture, admitted by DEB_BUILD_PROFILES.
    pub arch: Vec<String>,
}

impl PackageKinds {
    pub fn of(control: &SourceControl, host: &mut HostArch, env: &DhEnv) -> Result<Self, DhError> {
        let profiles: Vec<&str> = env
            .get("DEB_BUILD_PROFILES")
            .map(|p| p.split_whitespace().collect())
            .unwrap_or_default();
        let mut kinds = PackageKinds {
            all: Vec::new(),
            indep: Vec::new(),
            arch: Vec::new(),
        };
        for p in &control.packages {
            kinds.all.push(p.name.clone());
            if let Some(formula) = &p.build_profiles
                && !build_profiles_admit(formula, &profiles)
            {
                continue;
            }
            if p.architecture == "all" {
                kinds.indep.push(p.name.clone());
            } else if host.builds(&p.architecture)? {
                kinds.arch.push(p.name.clone());
            }
        }
        Ok(kinds)
    }

    /// `both`: the packages built here, in debian/control's order.
    pub fn both(&self) -> Vec<String> {
        self.all
            .iter()
            .filter(|p| self.indep.contains(p) || self.arch.contains(p))
            .cloned()
            .collect()
    }
}

/// A `Depends` entry of debian/control that names `dkms` without `dkms-rs` as an alternative:
/// apt must then install dkms, and the `dkms-rs | dkms` dh_dkms-rs adds to `${misc:Depends}`
/// gives no choice (it is swallowed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkmsOnlyDepends {
    /// 1-based line of debian/control where the entry is.
    pub line: usize,
    pub package: String,
    /// The entry as written (`dkms (>= 2.8.4-3~)`), whitespace collapsed.
    pub entry: String,
}

/// Every [`DkmsOnlyDepends`] of debian/control's `text`, in file order.
pub fn dkms_only_depends(text: &str) -> Vec<DkmsOnlyDepends> {
    let mut found = Vec::new();
    let mut package: Option<String> = None;
    let mut in_depends = false;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            package = None;
            in_depends = false;
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let value = if line.starts_with([' ', '\t']) {
            if !in_depends {
                continue;
            }
            line
        } else {
            let (name, value) = line.split_once(':').unwrap_or((line, ""));
            if name.eq_ignore_ascii_case("Package") {
                package = Some(value.trim().to_string());
            }
            in_depends = name.eq_ignore_ascii_case("Depends");
            if !in_depends {
                continue;
            }
            value
        };
        let Some(pkg) = &package else { continue };
        for entry in value.split(',') {
            let names: Vec<&str> = entry
                .split('|')
                .map(|alt| {
                    alt.trim()
                        .split(|c: char| c.is_whitespace() || "([<:".contains(c))
                        .next()
                        .unwrap_or("")
                })
                .collect();
            if names.contains(&"dkms") && !names.contains(&"dkms-rs") {
                found.push(DkmsOnlyDepends {
                    line: i + 1,
                    package: pkg.clone(),
                    entry: entry.split_whitespace().collect::<Vec<_>>().join(" "),
                });
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_profiles_follow_the_formula() {
        assert!(build_profiles_admit("<!nocheck>", &[]));
        assert!(!build_profiles_admit("<!nocheck>", &["nocheck"]));
        assert!(build_profiles_admit("<stage1> <pkg.x.y>", &["pkg.x.y"]));
        assert!(!build_profiles_admit("<stage1 cross>", &["stage1"]));
        assert!(build_profiles_admit("<stage1 cross>", &["cross", "stage1"]));
    }

    #[test]
    fn control_lists_binary_packages_in_order() {
        let text = "Source: hello-dkms\nBuild-Depends: debhelper-compat (= 13)\n\n\
                    # a comment\nPackage: hello-dkms\nArchitecture: all\n\n\
                    Package: hello-tools\nArchitecture: amd64\n  i386\nBuild-Profiles: <!nocheck>\n";
        let c = SourceControl::parse(Path::new("debian/control"), text).unwrap();
        assert_eq!(c.source, "hello-dkms");
        assert_eq!(c.packages.len(), 2);
        assert_eq!(c.main_package(), "hello-dkms");
        assert_eq!(c.packages[1].architecture, "amd64 i386");
        assert_eq!(c.packages[1].build_profiles.as_deref(), Some("<!nocheck>"));
    }

    #[test]
    fn dkms_without_dkms_rs_in_depends_is_found_with_its_line() {
        let text = "Source: s\nBuild-Depends: dkms\n\nPackage: a-dkms\nArchitecture: all\n\
                    Depends: ${misc:Depends},\n dkms (>= 2.8.4-3~),\n libc6-dev\n\n\
                    Package: b\nDepends: dkms-rs | dkms, dkmsx\n";
        assert_eq!(
            dkms_only_depends(text),
            vec![DkmsOnlyDepends {
                line: 7,
                package: "a-dkms".into(),
                entry: "dkms (>= 2.8.4-3~)".into()
            }]
        );
    }

    #[test]
    fn control_without_packages_is_an_error_naming_the_file() {
        let err = SourceControl::parse(Path::new("debian/control"), "Source: x\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("debian/control: "), "{err}");
    }

    #[test]
    fn control_is_read_under_the_root_and_named_relative_to_it() {
        let root = tempfile::tempdir().unwrap();
        let err = SourceControl::read(root.path()).unwrap_err().to_string();
        assert!(err.starts_with("debian/control: not found"), "{err}");
        std::fs::create_dir(root.path().join("debian")).unwrap();
        std::fs::write(
            root.path().join("debian/control"),
            "Source: s\n\nPackage: p\nArchitecture: all\n",
        )
        .unwrap();
        let c = SourceControl::read(root.path()).unwrap();
        assert_eq!(c.main_package(), "p");
    }
}
