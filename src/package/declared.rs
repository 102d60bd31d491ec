//! What a packager declares beyond dkms.conf, as Debian's -dkms packages say it: the binary
//! paragraph's relation fields, Homepage, Architecture, Multi-Arch, Section and Priority, and
//! files installed outside /usr/src. Read from `dkms-mkdeb.control` beside dkms.conf (one
//! deb822 paragraph, fields named as in debian/control, `Install:` lines as debian/install's)
//! and from dkms-mkdeb's options, which win; every value checked before anything is written.

use std::path::{Component, Path, PathBuf};

use debian_control::lossy::Relations;
use debian_control::relations::VersionConstraint;

use crate::deb::{ControlMember, DataEntry, DataTree};

use super::policy::check_package_name;
use super::{PackageError, Setting};

/// The declarative file's name, beside dkms.conf (never shipped under /usr/src).
pub const CONTROL_FILE: &str = "dkms-mkdeb.control";

/// The relation fields a binary package may have, in the order dpkg-gencontrol writes them
/// (Dpkg::Control::FieldsCore); `Depends` adds to the dependency on dkms.
pub const RELATION_FIELDS: &[&str] = &[
    "Depends",
    "Recommends",
    "Suggests",
    "Enhances",
    "Conflicts",
    "Breaks",
    "Replaces",
    "Provides",
];

/// The other fields of the file (besides `Install`).
pub const OTHER_FIELDS: &[&str] = &[
    "Architecture",
    "Section",
    "Priority",
    "Multi-Arch",
    "Homepage",
];

/// Control fields and files given as dkms-mkdeb options; they win over the file's.
#[derive(Debug, Clone, Default)]
pub struct DeclaredOptions {
    /// `--control FILE`; `None`: `SOURCE_DIR/dkms-mkdeb.control` when there is one.
    pub control_file: Option<PathBuf>,
    /// (field as in debian/control, value), e.g. `("Recommends", "lttng-tools")`.
    pub fields: Vec<(&'static str, String)>,
    /// `--install` lines (`SOURCE... DEST_DIR` or `SOURCE => DEST`), relative to the cwd.
    pub install: Vec<String>,
}

impl DeclaredOptions {
    /// Nothing given as an option.
    pub fn is_empty(&self) -> bool {
        self.control_file.is_none() && self.fields.is_empty() && self.install.is_empty()
    }
}

/// A file shipped outside the module source: `source` (a file on disk) at `dest` (a path in
/// the package, relative to `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallFile {
    pub source: PathBuf,
    pub dest: String,
    pub executable: bool,
    /// The file and line of its `Install:` line; `None`: an `--install` option.
    pub line: Option<(PathBuf, usize)>,
}

/// What the packager declared, checked: fields normalised, files found.
#[derive(Debug, Clone, Default)]
pub struct Declared {
    /// (relation field, its relations as dpkg writes them), in [`RELATION_FIELDS`] order;
    /// `Depends` without the dkms entry (see [`Declared::depends`]).
    pub relations: Vec<(&'static str, String)>,
    /// A higher floor for `dkms` than dkms-mkdeb's own, from `Depends: dkms (>= V)`.
    pub dkms_floor: Option<String>,
    pub architecture: Option<String>,
    pub section: Option<String>,
    pub priority: Option<String>,
    pub multi_arch: Option<String>,
    pub homepage: Option<String>,
    pub install: Vec<InstallFile>,
    /// Where the fields came from, for messages: the file, when there was one.
    pub control_file: Option<PathBuf>,
    /// Each field set, with its file and line (`None`: an option).
    origins: Vec<(&'static str, Option<(PathBuf, usize)>)>,
}

/// Where a value came from: a line of the file, or an option.
#[derive(Debug, Clone)]
enum Origin<'a> {
    Line(&'a Path, usize),
    Option(Setting),
}

impl Origin<'_> {
    /// The error of `reason` about field `label`: in the file, `path:line: label: reason`;
    /// as an option, the option's (the binary names it) with the reason, which quotes the value.
    fn error(&self, label: &str, value: &str, reason: String) -> PackageError {
        match self {
            Origin::Line(path, line) => PackageError::ControlFile {
                path: path.to_path_buf(),
                line: *line,
                reason: if label.is_empty() {
                    reason
                } else {
                    format!("{label}: {reason}")
                },
            },
            Origin::Option(setting) => PackageError::BadOption {
                setting: *setting,
                value: value.to_string(),
                reason,
            },
        }
    }
}

impl Declared {
    /// Nothing declared: the package is what dkms-mkdeb makes by default.
    pub fn is_empty(&self) -> bool {
        self.relations.is_empty()
            && self.dkms_floor.is_none()
            && self.architecture.is_none()
            && self.section.is_none()
            && self.priority.is_none()
            && self.multi_arch.is_none()
            && self.homepage.is_none()
            && self.install.is_empty()
    }

    /// Read the file (`opts.control_file`, else `source_dir/dkms-mkdeb.control` if there is
    /// one), then apply the options over it.
    pub fn read(source_dir: &Path, opts: &DeclaredOptions) -> Result<Declared, PackageError> {
        let mut declared = Declared::default();
        let file = match &opts.control_file {
            Some(f) => Some(f.clone()),
            None => Some(source_dir.join(CONTROL_FILE)).filter(|f| f.exists()),
        };
        if let Some(path) = &file {
            let text = std::fs::read_to_string(path).map_err(|source| PackageError::Io {
                path: path.clone(),
                source,
            })?;
            declared.parse_file(path, &text)?;
            declared.control_file = Some(path.clone());
        }
        for (field, value) in &opts.fields {
            let origin = Origin::Option(Setting::Field(field));
            declared.set(field, value, &origin)?;
        }
        for line in &opts.install {
            let origin = Origin::Option(Setting::Install);
            declared.add_install_line(line, Path::new(""), &origin)?;
        }
        Ok(declared)
    }

    /// The file's one paragraph: known fields only, each checked.
    fn parse_file(&mut self, path: &Path, text: &str) -> Result<(), PackageError> {
        let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let parse = deb822_lossless::Deb822::parse(text);
        if let Some(e) = parse.positioned_errors().first() {
            return Err(PackageError::ControlFile {
                path: path.to_path_buf(),
                line: line_of(usize::from(e.range.start())),
                reason: format!("not a deb822 paragraph: {}", e.message),
            });
        }
        let deb822 = parse.tree();
        let mut paragraphs = deb822.paragraphs();
        let Some(paragraph) = paragraphs.next() else {
            return Ok(());
        };
        if let Some(second) = paragraphs.next() {
            return Err(PackageError::ControlFile {
                path: path.to_path_buf(),
                line: second.line() + 1,
                reason: "a second paragraph: the file is one paragraph, the binary package's"
                    .into(),
            });
        }
        let mut seen: Vec<String> = Vec::new();
        for entry in paragraph.entries() {
            let line = entry.line() + 1;
            let key = entry.key().unwrap_or_default();
            let origin = Origin::Line(path, line);
            if seen.iter().any(|k| k.eq_ignore_ascii_case(&key)) {
                return Err(origin.error("", &key, format!("{key} is given twice")));
            }
            seen.push(key.clone());
            if key.eq_ignore_ascii_case("Install") {
                // One `SOURCE... DEST` per line, the first on the field's own line or not.
                let base = path.parent().unwrap_or(Path::new("."));
                for range in entry.value_line_ranges() {
                    let start = usize::from(range.start());
                    let value = &text[start..usize::from(range.end())];
                    if value.trim().is_empty() {
                        continue;
                    }
                    self.add_install_line(value, base, &Origin::Line(path, line_of(start)))?;
                }
                continue;
            }
            let Some(field) = known_field(&key) else {
                return Err(origin.error(
                    "",
                    &key,
                    format!(
                        "unknown field {key:?} (known: {}, {}, Install)",
                        RELATION_FIELDS.join(", "),
                        OTHER_FIELDS.join(", ")
                    ),
                ));
            };
            // A relation field folds over lines; the others are one line.
            let raw = entry.value();
            let value = raw.split('\n').map(str::trim).collect::<Vec<_>>().join(" ");
            self.set(field, value.trim(), &origin)?;
        }
        Ok(())
    }

    /// Check and set one field (a later value replaces an earlier one: options over the file).
    fn set(
        &mut self,
        field: &'static str,
        value: &str,
        origin: &Origin,
    ) -> Result<(), PackageError> {
        let value = value.trim();
        let err = |reason: String| origin.error(field, value, reason);
        self.origins.retain(|(f, _)| *f != field);
        self.origins.push((
            field,
            match origin {
                Origin::Line(path, line) => Some((path.to_path_buf(), *line)),
                Origin::Option(_) => None,
            },
        ));
        if RELATION_FIELDS.contains(&field) {
            let (text, floor) = check_relations(field, value).map_err(err)?;
            self.relations.retain(|(f, _)| *f != field);
            if field == "Depends" {
                self.dkms_floor = floor;
            }
            if !text.is_empty() {
                self.relations.push((field, text));
                self.relations
                    .sort_by_key(|(f, _)| RELATION_FIELDS.iter().position(|r| r == f).unwrap_or(0));
            }
            return Ok(());
        }
        let slot = match field {
            "Architecture" => {
                check_architecture(value).map_err(err)?;
                &mut self.architecture
            }
            "Section" => {
                check_section(value).map_err(err)?;
                &mut self.section
            }
            "Priority" => {
                check_priority(value).map_err(err)?;
                &mut self.priority
            }
            "Multi-Arch" => {
                check_multi_arch(value).map_err(err)?;
                &mut self.multi_arch
            }
            "Homepage" => {
                check_homepage(value).map_err(err)?;
                &mut self.homepage
            }
            _ => return Err(err("not a field dkms-mkdeb sets".into())),
        };
        *slot = Some(value.to_string());
        Ok(())
    }

    /// One `SOURCE... DEST_DIR` (each source into that directory, as debian/install) or
    /// `SOURCE => DEST` (renamed, as dh-exec) line; relative sources are under `base`.
    fn add_install_line(
        &mut self,
        line: &str,
        base: &Path,
        origin: &Origin,
    ) -> Result<(), PackageError> {
        let err = |reason: String| origin.error("Install", line.trim(), reason);
        let words: Vec<&str> = line.split_whitespace().collect();
        let (sources, dest, renamed) = match words.as_slice() {
            [src, "=>", dest] => (vec![*src], *dest, true),
            [.., "=>", _] | [_, "=>", ..] => {
                return Err(err("'SOURCE => DEST' renames one file".into()));
            }
            [_] | [] => {
                return Err(err(format!(
                    "{line:?} has no destination: 'SOURCE... DEST_DIR' or 'SOURCE => DEST'",
                    line = line.trim()
                )));
            }
            [sources @ .., dest] => (sources.to_vec(), *dest, false),
        };
        let dest = package_path(dest).map_err(|reason| err(format!("{dest:?} {reason}")))?;
        for src in sources {
            let source = base.join(src);
            let meta = std::fs::metadata(&source)
                .map_err(|e| err(format!("{}: {e}", source.display())))?;
            let name = source
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| err(format!("{src:?} has no UTF-8 file name")))?;
            let target = if renamed {
                dest.clone()
            } else {
                format!("{dest}/{name}")
            };
            if meta.is_dir() {
                if renamed {
                    return Err(err(format!("{src:?} is a directory: give its DEST_DIR")));
                }
                self.add_dir_tree(&source, &target, origin).map_err(err)?;
            } else {
                self.push_install(source, target, meta, origin)
                    .map_err(err)?;
            }
        }
        Ok(())
    }

    /// A directory's files, recursively, under `target` (as dh_install copies a directory).
    fn add_dir_tree(&mut self, dir: &Path, target: &str, origin: &Origin) -> Result<(), String> {
        for entry in walkdir::WalkDir::new(dir).min_depth(1).sort_by_file_name() {
            let entry = entry.map_err(|e| e.to_string())?;
            if entry.file_type().is_dir() {
                continue;
            }
            let rel = entry.path().strip_prefix(dir).unwrap_or(entry.path());
            let rel = rel
                .to_str()
                .ok_or_else(|| format!("{}: not a UTF-8 name", entry.path().display()))?;
            let meta = std::fs::metadata(entry.path())
                .map_err(|e| format!("{}: {e}", entry.path().display()))?;
            self.push_install(
                entry.path().to_path_buf(),
                format!("{target}/{rel}"),
                meta,
                origin,
            )?;
        }
        Ok(())
    }

    fn push_install(
        &mut self,
        source: PathBuf,
        dest: String,
        meta: std::fs::Metadata,
        origin: &Origin,
    ) -> Result<(), String> {
        use std::os::unix::fs::PermissionsExt;
        if !meta.is_file() {
            return Err(format!("{}: not a regular file", source.display()));
        }
        // Fail here, naming the file, rather than half-way through the archive.
        std::fs::File::open(&source).map_err(|e| format!("{}: {e}", source.display()))?;
        if self.install.iter().any(|f| f.dest == dest) {
            return Err(format!("/{dest} is installed twice"));
        }
        self.install.push(InstallFile {
            source,
            dest,
            executable: meta.permissions().mode() & 0o111 != 0,
            line: match origin {
                Origin::Line(path, line) => Some((path.to_path_buf(), *line)),
                Origin::Option(_) => None,
            },
        });
        Ok(())
    }

    /// An error about `field`'s declared `value`, naming where it was declared.
    pub fn field_error(&self, field: &'static str, value: &str, reason: String) -> PackageError {
        let line = self.origins.iter().find(|(f, _)| *f == field);
        let origin = match line {
            Some((_, Some((path, line)))) => Origin::Line(path, *line),
            _ => Origin::Option(Setting::Field(field)),
        };
        origin.error(field, value, reason)
    }

    /// Add the files to install to `data`, which holds the rest of the package already: a
    /// destination that is there (the module source, the copyright, the changelog), or under
    /// one of its files, is refused.
    pub fn add_install_files(&self, data: &mut DataTree) -> Result<(), PackageError> {
        for f in &self.install {
            let taken = std::iter::successors(Some(f.dest.as_str()), |p| {
                p.rsplit_once('/').map(|(parent, _)| parent)
            })
            .find(|p| {
                data.get(p)
                    .is_some_and(|e| *p == f.dest || !matches!(e, DataEntry::Dir))
            });
            if let Some(p) = taken {
                let reason = if p == f.dest {
                    format!("/{p} is in the package already")
                } else {
                    format!("/{p}, a parent of /{}, is a file", f.dest)
                };
                let origin = match &f.line {
                    Some((path, line)) => Origin::Line(path, *line),
                    None => Origin::Option(Setting::Install),
                };
                return Err(origin.error("Install", &f.dest, reason));
            }
            data.add_file_from_disk(&f.dest, f.source.clone(), f.executable);
        }
        Ok(())
    }

    /// `DEBIAN/conffiles` for the installed files under /etc, as dh_installdeb marks them
    /// (Policy 10.7.2; lintian `file-in-etc-not-marked-as-conffile`); none without such files.
    pub fn conffiles(&self) -> Option<ControlMember> {
        let mut etc: Vec<&str> = self
            .install
            .iter()
            .map(|f| f.dest.as_str())
            .filter(|d| d.starts_with("etc/"))
            .collect();
        etc.sort_unstable();
        (!etc.is_empty()).then(|| ControlMember {
            name: "conffiles".into(),
            bytes: etc
                .iter()
                .map(|d| format!("/{d}\n"))
                .collect::<String>()
                .into_bytes(),
            executable: false,
        })
    }

    /// The package's Depends: dkms-mkdeb's `dkms-rs | dkms (>= V)` (V raised to the declared
    /// floor when higher), then the declared ones.
    pub fn depends(&self, dkms_depends: &str) -> String {
        let mut depends = match &self.dkms_floor {
            Some(floor) => {
                let ours = dkms_depends
                    .rsplit_once("(>= ")
                    .and_then(|(_, v)| v.strip_suffix(')'))
                    .and_then(|v| v.parse::<debversion::Version>().ok());
                let theirs = floor.parse::<debversion::Version>().ok();
                match (ours, theirs) {
                    (Some(o), Some(t)) if t > o => format!("dkms-rs | dkms (>= {floor})"),
                    _ => dkms_depends.to_string(),
                }
            }
            None => dkms_depends.to_string(),
        };
        if let Some((_, extra)) = self.relations.iter().find(|(f, _)| *f == "Depends") {
            depends.push_str(", ");
            depends.push_str(extra);
        }
        depends
    }

    /// The relation fields but Depends, for the control file.
    pub fn other_relations(&self) -> Vec<(&'static str, String)> {
        self.relations
            .iter()
            .filter(|(f, _)| *f != "Depends")
            .cloned()
            .collect()
    }
}

/// The field's canonical name, if the file may set it (field names are case-insensitive,
/// Policy 5.1).
fn known_field(key: &str) -> Option<&'static str> {
    RELATION_FIELDS
        .iter()
        .chain(OTHER_FIELDS)
        .find(|f| f.eq_ignore_ascii_case(key))
        .copied()
}

/// A relation field parsed by debian-control's parser (Policy 7.1), with what a binary
/// package's control file may not carry refused (substvars, architecture restrictions and
/// build profiles are for debian/control: dpkg-gencontrol resolves them). Returns the
/// relations as dpkg writes them and, for Depends, a `dkms (>= V)` entry's V, taken out.
fn check_relations(field: &str, value: &str) -> Result<(String, Option<String>), String> {
    if value.contains('$') {
        return Err(format!(
            "{value:?} has a substvar: a .deb's control has none (dpkg-gencontrol resolves them)"
        ));
    }
    let relations: Relations = value
        .parse()
        .map_err(|e: String| format!("{value:?} is not a relation list (Policy 7.1): {e}"))?;
    let mut floor = None;
    let mut kept = Vec::new();
    for entry in relations.0 {
        for r in &entry {
            check_package_name(&r.name).map_err(|reason| format!("{value:?}: {reason}"))?;
            if r.architectures.is_some() || !r.profiles.is_empty() {
                return Err(format!(
                    "{value:?}: [arch] and <profile> restrictions are for Build-Depends (Policy 7.1)"
                ));
            }
            if field == "Provides"
                && r.version
                    .as_ref()
                    .is_some_and(|(c, _)| *c != VersionConstraint::Equal)
            {
                return Err(format!(
                    "{value:?}: a Provides version is '(= VERSION)' only (Policy 7.5)"
                ));
            }
        }
        let names_dkms = entry
            .iter()
            .any(|r| r.name == "dkms" || r.name == "dkms-rs");
        if field == "Depends" && names_dkms {
            match entry.as_slice() {
                [r] if r.name == "dkms"
                    && r.archqual.is_none()
                    && matches!(r.version, Some((VersionConstraint::GreaterThanEqual, _))) =>
                {
                    floor = r.version.as_ref().map(|(_, v)| v.to_string());
                    continue;
                }
                _ => {
                    return Err(format!(
                        "{value:?}: dkms-mkdeb writes the dependency on dkms itself (dkms-rs | dkms (>= ...)); name dkms only as 'dkms (>= VERSION)', a higher floor"
                    ));
                }
            }
        }
        kept.push(entry);
    }
    Ok((Relations(kept).to_string(), floor))
}

/// One Debian architecture or `all`: a .deb has one (no `any`, no wildcard, no list).
fn check_architecture(value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !["any", "source"].contains(&value)
        && !value.starts_with("any-")
        && !value.ends_with("-any");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not one Debian architecture or 'all' (a .deb has one, as dpkg-architecture -L names them)"
        ))
    }
}

/// `[area/]section`, lowercase (Policy 2.4).
fn check_section(value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.split('/').count() <= 2
        && value.split('/').all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b))
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not a section (Policy 2.4: e.g. kernel, contrib/kernel)"
        ))
    }
}

/// Policy 2.5's priorities; `extra` is deprecated (since Policy 4.0.1: lintian warns).
fn check_priority(value: &str) -> Result<(), String> {
    match value {
        "required" | "important" | "standard" | "optional" => Ok(()),
        "extra" => Err("\"extra\" is deprecated since Policy 4.0.1: use optional".into()),
        _ => Err(format!(
            "{value:?} is not a priority (Policy 2.5: required, important, standard, optional)"
        )),
    }
}

/// deb-control(5)'s Multi-Arch values.
fn check_multi_arch(value: &str) -> Result<(), String> {
    match value {
        "same" | "foreign" | "allowed" | "no" => Ok(()),
        _ => Err(format!(
            "{value:?} is not a Multi-Arch value (same, foreign, allowed, no)"
        )),
    }
}

/// An http(s) URL of one word (lintian `bad-homepage`).
fn check_homepage(value: &str) -> Result<(), String> {
    let ok = (value.starts_with("https://") || value.starts_with("http://"))
        && value.len() > "https://".len()
        && !value.contains(char::is_whitespace)
        && !value.contains(['<', '>']);
    if ok {
        Ok(())
    } else {
        Err(format!("{value:?} is not an http(s) URL"))
    }
}

/// A destination in the package: relative to `/` (a leading `/` is taken off), no `.` or
/// `..` component (it must stay inside the package), not the root.
fn package_path(dest: &str) -> Result<String, &'static str> {
    let path = Path::new(dest.trim_start_matches('/'));
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str().unwrap_or_default()),
            Component::CurDir => {}
            _ => return Err("leaves the package (a '..' component)"),
        }
    }
    if parts.is_empty() {
        return Err("is the package's root: name a directory");
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relations_are_parsed_and_normalised() {
        let (text, floor) = check_relations("Depends", "perl:any,libc6-dev").unwrap();
        assert_eq!(text, "perl:any, libc6-dev");
        assert_eq!(floor, None);
        let (text, floor) = check_relations("Depends", "dkms (>= 3.0.3-4~), perl:any").unwrap();
        assert_eq!(
            (text.as_str(), floor.as_deref()),
            ("perl:any", Some("3.0.3-4~"))
        );
        for bad in [
            "foo (>> )",
            "foo bar",
            "Foo",
            "foo [amd64]",
            "${misc:Depends}",
            "foo |",
            "foo (= 1",
        ] {
            assert!(check_relations("Recommends", bad).is_err(), "{bad}");
        }
        assert!(check_relations("Provides", "foo (>= 1)").is_err());
        assert!(check_relations("Provides", "foo (= 1)").is_ok());
        assert!(check_relations("Depends", "dkms | foo").is_err());
    }

    #[test]
    fn destinations_stay_inside() {
        assert_eq!(
            package_path("/lib/udev/rules.d/").unwrap(),
            "lib/udev/rules.d"
        );
        assert!(package_path("../etc").is_err());
        assert!(package_path("usr/../../etc").is_err());
        assert!(package_path("/").is_err());
    }

    #[test]
    fn fields_are_checked() {
        assert!(check_architecture("amd64").is_ok());
        assert!(check_architecture("all").is_ok());
        assert!(check_architecture("any").is_err());
        assert!(check_architecture("amd64 i386").is_err());
        assert!(check_section("contrib/kernel").is_ok());
        assert!(check_section("Kernel").is_err());
        assert!(check_priority("extra").is_err());
        assert!(check_homepage("www.example.org").is_err());
        assert!(check_multi_arch("foreign").is_ok());
    }
}
