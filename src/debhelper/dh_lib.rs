//! Ports of the Dh_Lib.pm functions dh_dkms-rs needs (debhelper 13), each working under the
//! source package root it is given: the host's architecture, `pkgfile()`, `autoscript()`,
//! `addsubstvar()` and the log dh reads.
//!
//! Dh_Lib writes these files in place; here each appears by rename, complete or not at all
//! ([`crate::atomic`]).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{DhEnv, DhError, Streams, TOOL_NAME};
use crate::atomic::PendingFile;

/// What the functions here read of Dh_Lib's `%dh`, and the directory they work in.
#[derive(Debug, Clone, Copy)]
pub struct Dh<'a> {
    /// The source package's top directory; the paths the functions take and return are
    /// relative to it.
    pub root: &'a Path,
    pub verbose: bool,
    pub no_act: bool,
}

impl Dh<'_> {
    /// Dh_Lib's `verbose_print`: `line`, tab-indented, when verbose.
    pub fn verbose_print(&self, streams: &mut Streams, line: &str) {
        if self.verbose {
            let _ = writeln!(streams.out, "\t{line}");
        }
    }
}

/// Debian's host architecture facts, from the environment dpkg-buildpackage sets, else from
/// dpkg-architecture.
pub struct HostArch<'e> {
    env: &'e DhEnv,
    cache: BTreeMap<String, String>,
}

impl<'e> HostArch<'e> {
    pub fn new(env: &'e DhEnv) -> Self {
        HostArch {
            env,
            cache: BTreeMap::new(),
        }
    }

    /// Dh_Lib's `dpkg_architecture_value`: `var` (`DEB_HOST_ARCH`, ...), asked once.
    pub fn value(&mut self, var: &str) -> Result<String, DhError> {
        if let Some(v) = self.env.get(var) {
            return Ok(v.to_string());
        }
        if let Some(v) = self.cache.get(var) {
            return Ok(v.clone());
        }
        let out = Command::new("dpkg-architecture")
            .arg(format!("-q{var}"))
            .output()
            .map_err(|source| DhError::ArchitectureNotRun { source })?;
        if !out.status.success() {
            return Err(DhError::ArchitectureFailed {
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
        self.cache.insert(var.to_string(), v.clone());
        Ok(v)
    }

    /// Dh_Lib's `samearch`: whether an Architecture field (not `all`) includes the host;
    /// wildcards such as `linux-any` are asked of dpkg-architecture.
    pub fn builds(&mut self, architecture: &str) -> Result<bool, DhError> {
        let host = self.value("DEB_HOST_ARCH")?;
        for arch in architecture.split_whitespace() {
            if arch == "any" || arch == host {
                return Ok(true);
            }
            if arch.contains("any") {
                let ok = Command::new("dpkg-architecture")
                    .arg(format!("-a{host}"))
                    .arg(format!("-i{arch}"))
                    .stderr(std::process::Stdio::null())
                    .status()
                    .map_err(|source| DhError::ArchitectureNotRun { source })?
                    .success();
                if ok {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }
}

/// Dh_Lib's `pkgfile()`: the packager's file `<name>` for `package` under `root`, most specific
/// first: `debian/<package>.<name>.<host arch>`, `.<host os>` (looked for only when some
/// `debian/*.<name>.*` exists, as debhelper does to save dpkg-architecture calls),
/// `debian/<package>.<name>`, and `debian/<name>` for `main_package` (the first of
/// debian/control). Generated `*.debhelper` files never count. The path is relative to `root`.
pub fn pkgfile(
    root: &Path,
    package: &str,
    main_package: &str,
    name: &str,
    host: &mut HostArch,
) -> Result<Option<PathBuf>, DhError> {
    let debian = Path::new("debian");
    let infix = format!(".{name}.");
    let expensive = std::fs::read_dir(root.join(debian))
        .map(|entries| {
            entries.flatten().any(|e| {
                let f = e.file_name().to_string_lossy().into_owned();
                f.contains(&infix) && !f.ends_with(".debhelper")
            })
        })
        .unwrap_or(false);
    let mut tries = Vec::new();
    if expensive {
        for var in ["DEB_HOST_ARCH", "DEB_HOST_ARCH_OS"] {
            tries.push(debian.join(format!("{package}.{name}.{}", host.value(var)?)));
        }
    }
    tries.push(debian.join(format!("{package}.{name}")));
    if package == main_package {
        tries.push(debian.join(name));
    }
    Ok(tries.into_iter().find(|p| root.join(p).is_file()))
}

/// Dh_Lib's `autoscript()`: add `snippet` (the autoscript `snippet_name`, rendered) to
/// `debian/<package>.<script>.debhelper` between its markers, at the end, or at the top for
/// prerm/postrm so that removal runs in reverse.
pub fn autoscript(
    dh: &Dh,
    streams: &mut Streams,
    package: &str,
    script: &str,
    snippet_name: &str,
    snippet: &str,
) -> Result<(), DhError> {
    let outfile = PathBuf::from(format!("debian/{package}.{script}.debhelper"));
    let existing = match std::fs::read_to_string(dh.root.join(&outfile)) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(DhError::Read {
                path: outfile,
                source,
            });
        }
    };
    let mut block = format!(
        "# Automatically added by {TOOL_NAME}/{}\n{snippet}",
        env!("CARGO_PKG_VERSION")
    );
    if !block.ends_with('\n') {
        block.push('\n');
    }
    block.push_str("# End automatically added section\n");
    let prepend = existing.is_some() && (script == "prerm" || script == "postrm");
    dh.verbose_print(
        streams,
        &format!(
            "[META] {} autosnippet \"{snippet_name}\" to {script} [{}]",
            if prepend { "Prepend" } else { "Append" },
            outfile.display()
        ),
    );
    if dh.no_act {
        return Ok(());
    }
    let existing = existing.unwrap_or_default();
    let text = if prepend {
        block + &existing
    } else {
        existing + &block
    };
    replace_file(dh.root, &outfile, text.as_bytes(), None)
}

/// Dh_Lib's `addsubstvar()`: add `item` to `substvar` in `debian/<package>.substvars`,
/// keeping the items of an existing line (sorted, `, `-separated) and adding nothing that is
/// already there, so running twice gives one entry.
pub fn addsubstvar(dh: &Dh, package: &str, substvar: &str, item: &str) -> Result<(), DhError> {
    let path = PathBuf::from(format!("debian/{package}.substvars"));
    let text = match std::fs::read_to_string(dh.root.join(&path)) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => return Err(DhError::Read { path, source }),
    };
    let updated = substvars_with(&text, substvar, item);
    if updated == text || dh.no_act {
        return Ok(());
    }
    replace_file(dh.root, &path, updated.as_bytes(), None)
}

/// The text of a substvars file with `item` added to `substvar` (see [`addsubstvar`]).
pub fn substvars_with(text: &str, substvar: &str, item: &str) -> String {
    let mut present = false;
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines() {
        // `name=value` or `name?=value` (dpkg-substvars(5): ?= is "required only if used").
        let assignment = line.strip_prefix(substvar).and_then(|rest| {
            rest.strip_prefix("?=")
                .map(|v| ("?=", v))
                .or_else(|| rest.strip_prefix('=').map(|v| ("=", v)))
        });
        match assignment {
            Some((op, value)) => {
                present = true;
                let mut items: BTreeSet<&str> =
                    value.split(", ").filter(|i| !i.is_empty()).collect();
                if items.contains(item) {
                    lines.push(line.to_string());
                } else {
                    items.insert(item);
                    lines.push(format!(
                        "{substvar}{op}{}",
                        items.into_iter().collect::<Vec<_>>().join(", ")
                    ));
                }
            }
            None => lines.push(line.to_string()),
        }
    }
    if !present {
        lines.push(format!("{substvar}={item}"));
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// Dh_Lib's `write_log()`: add this command to `debian/<package>.debhelper.log`, which dh reads
/// for `--remaining-packages`.
pub fn write_log(dh: &Dh, package: &str) -> Result<(), DhError> {
    let log = PathBuf::from(format!("debian/{package}.debhelper.log"));
    let mut text = std::fs::read_to_string(dh.root.join(&log)).unwrap_or_default();
    text.push_str(TOOL_NAME);
    text.push('\n');
    replace_file(dh.root, &log, text.as_bytes(), None)
}

/// Write `bytes` to `path` under `root`, mode 0644 whatever the umask (dh_dkms's
/// `install -m644`), with `mtime` when given, through [`PendingFile`]: readers see the old
/// file or the new one, never half of it.
pub(super) fn replace_file(
    root: &Path,
    path: &Path,
    bytes: &[u8],
    mtime: Option<std::time::SystemTime>,
) -> Result<(), DhError> {
    let err = |source| DhError::Write {
        path: path.to_path_buf(),
        source,
    };
    let pending = PendingFile::create(&root.join(path), ".new").map_err(err)?;
    let mut file = pending.file();
    file.write_all(bytes).map_err(err)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(err)?;
    if let Some(t) = mtime {
        file.set_modified(t).map_err(err)?;
    }
    pending.commit().map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substvar_is_added_once_and_merged_with_other_items() {
        let dep = "dkms-rs | dkms (>= 2.1.0.0)";
        let once = substvars_with("", "misc:Depends", dep);
        assert_eq!(once, format!("misc:Depends={dep}\n"));
        assert_eq!(substvars_with(&once, "misc:Depends", dep), once);
        let other = "misc:Pre-Depends=foo\nmisc:Depends=zzz, aaa\n";
        assert_eq!(
            substvars_with(other, "misc:Depends", dep),
            format!("misc:Pre-Depends=foo\nmisc:Depends=aaa, {dep}, zzz\n")
        );
        assert_eq!(
            substvars_with("misc:Depends?=x\n", "misc:Depends", "y"),
            "misc:Depends?=x, y\n"
        );
    }

    #[test]
    fn pkgfile_looks_under_the_root_and_answers_relative_to_it() {
        let root = tempfile::tempdir().unwrap();
        let debian = root.path().join("debian");
        std::fs::create_dir(&debian).unwrap();
        let env = DhEnv::from_pairs([("DEB_HOST_ARCH", "amd64"), ("DEB_HOST_ARCH_OS", "linux")]);
        let mut host = HostArch::new(&env);
        let mut find = |package: &str| pkgfile(root.path(), package, "main", "dkms", &mut host);
        assert_eq!(find("main").unwrap(), None);
        std::fs::write(debian.join("dkms"), "").unwrap();
        assert_eq!(find("main").unwrap(), Some(PathBuf::from("debian/dkms")));
        assert_eq!(
            find("other").unwrap(),
            None,
            "debian/<name> is the main package's"
        );
        std::fs::write(debian.join("other.dkms"), "").unwrap();
        assert_eq!(
            find("other").unwrap(),
            Some(PathBuf::from("debian/other.dkms"))
        );
        std::fs::write(debian.join("other.dkms.linux"), "").unwrap();
        assert_eq!(
            find("other").unwrap(),
            Some(PathBuf::from("debian/other.dkms.linux"))
        );
        std::fs::write(debian.join("other.dkms.amd64"), "").unwrap();
        assert_eq!(
            find("other").unwrap(),
            Some(PathBuf::from("debian/other.dkms.amd64"))
        );
    }
}
