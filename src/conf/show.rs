//! `dkms-rs conf show`: what dkms will do with a dkms.conf, as `key=value` lines or JSON,
//! and whether reading it ran its shell code (`reader=bash`, and where and why).

use std::path::Path;

use super::{ConfError, ModuleConf, NeedsShell, ReadBy, Resolution, ResolveContext};
use crate::kernel;

/// Output format of `conf show`; parsed from and printed as its name (`kv`, `json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShowFormat {
    /// One `key=value` line per fact, sorted bytewise.
    #[default]
    Kv,
    /// One JSON object.
    Json,
}

impl ShowFormat {
    /// Every format, in the order `--help` lists them.
    pub const ALL: [ShowFormat; 2] = [ShowFormat::Kv, ShowFormat::Json];
    /// Their names, in the same order.
    pub const NAMES: [&'static str; 2] = [ShowFormat::Kv.name(), ShowFormat::Json.name()];

    /// The name `--format` takes.
    pub const fn name(self) -> &'static str {
        match self {
            ShowFormat::Kv => "kv",
            ShowFormat::Json => "json",
        }
    }

    /// What the format is, in one line (for `--help`).
    pub const fn about(self) -> &'static str {
        match self {
            ShowFormat::Kv => "One `key=value` line per fact, sorted bytewise",
            ShowFormat::Json => "One JSON object",
        }
    }
}

/// A `--format` that is none of [`ShowFormat::NAMES`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown format '{0}' (one of: {names})", names = ShowFormat::NAMES.join(", "))]
pub struct UnknownShowFormat(pub String);

impl std::str::FromStr for ShowFormat {
    type Err = UnknownShowFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ShowFormat::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| UnknownShowFormat(s.to_owned()))
    }
}

impl std::fmt::Display for ShowFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The facts of `conf` as (key, value) pairs, exactly the keys of `conf show --format kv`
/// (unsorted); `valid` says whether dkms accepts the file.
pub fn facts(conf: &ModuleConf, valid: bool) -> Vec<(String, String)> {
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_owned();
    let mut out = vec![
        ("valid".into(), yes_no(valid)),
        ("package_name".into(), conf.package_name.clone()),
        ("package_version".into(), conf.package_version.clone()),
        ("make_command".into(), conf.make_command.clone()),
        ("clean".into(), conf.clean.clone()),
        ("autoinstall".into(), yes_no(conf.autoinstall)),
        ("build_exclude".into(), yes_no(conf.build_exclude)),
    ];
    for (i, m) in conf.modules.iter().enumerate() {
        out.push((format!("module.{i}.built_name"), m.built_name.clone()));
        out.push((
            format!("module.{i}.built_location"),
            m.built_location.clone(),
        ));
        out.push((format!("module.{i}.dest_name"), m.dest_name.clone()));
        out.push((format!("module.{i}.dest_location"), m.dest_location.clone()));
        out.push((format!("module.{i}.strip"), yes_no(m.strip)));
    }
    for (i, p) in conf.patches.iter().enumerate() {
        out.push((format!("patch.{i}"), p.clone()));
    }
    let optional = [
        ("pre_build", &conf.pre_build),
        ("post_build", &conf.post_build),
        ("pre_install", &conf.pre_install),
        ("post_install", &conf.post_install),
        ("post_add", &conf.post_add),
        ("post_remove", &conf.post_remove),
        ("obsolete_by", &conf.obsolete_by),
    ];
    for (key, value) in optional {
        if let Some(v) = value {
            out.push((key.into(), v.clone()));
        }
    }
    if !conf.build_depends.is_empty() {
        out.push(("build_depends".into(), conf.build_depends.join(" ")));
    }
    out
}

/// How the file was read, as `conf show` says it: `reader=native`, or `reader=bash` and (when
/// the native reader handed over) `needs_shell=<file>:<line>: <what>`.
pub fn reader_facts(read_by: &ReadBy) -> Vec<(String, String)> {
    match read_by {
        ReadBy::Native => vec![("reader".into(), "native".into())],
        ReadBy::Bash(why) => {
            let mut out = vec![("reader".into(), "bash".into())];
            if let Some(why) = why {
                out.push(("needs_shell".into(), needs_shell_text(why)));
            }
            out
        }
    }
}

/// `<file>:<line>: <what>` (no line when it is 0).
fn needs_shell_text(why: &NeedsShell) -> String {
    match why.line {
        0 => format!("{}: {}", why.file.display(), why.what),
        line => format!("{}:{line}: {}", why.file.display(), why.what),
    }
}

/// What `conf show` prints: an invalid conf still shows what dkms resolved, with `valid=no`,
/// and the reader that read it ([`reader_facts`]).
pub fn render(res: &Resolution, format: ShowFormat) -> String {
    render_with(res, format, true)
}

/// [`render`] without the reader: only what dkms itself resolves, the same whichever reader
/// read the file (what tests compare with dkms and across readers).
pub fn render_facts(res: &Resolution, format: ShowFormat) -> String {
    render_with(res, format, false)
}

fn render_with(res: &Resolution, format: ShowFormat, with_reader: bool) -> String {
    let conf = &res.conf;
    let valid = res.problems.is_empty();
    match format {
        ShowFormat::Kv => {
            let mut facts = facts(conf, valid);
            if with_reader {
                facts.extend(reader_facts(&res.read_by));
            }
            let mut lines: Vec<String> =
                facts.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
            lines.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            let mut s = lines.join("\n");
            s.push('\n');
            s
        }
        ShowFormat::Json => {
            let modules: Vec<_> = conf
                .modules
                .iter()
                .map(|m| {
                    serde_json::json!({
                        "built_name": m.built_name,
                        "built_location": m.built_location,
                        "dest_name": m.dest_name,
                        "dest_location": m.dest_location,
                        "strip": m.strip,
                    })
                })
                .collect();
            let problems: Vec<String> = res.problems.iter().map(ToString::to_string).collect();
            let mut value = serde_json::json!({
                "path": conf.path,
                "valid": valid,
                "problems": problems,
                "package_name": conf.package_name,
                "package_version": conf.package_version,
                "make_command": conf.make_command,
                "clean": conf.clean,
                "autoinstall": conf.autoinstall,
                "build_exclude": conf.build_exclude,
                "modules": modules,
                "patches": conf.patches,
                "pre_build": conf.pre_build,
                "post_build": conf.post_build,
                "pre_install": conf.pre_install,
                "post_install": conf.post_install,
                "post_add": conf.post_add,
                "post_remove": conf.post_remove,
                "obsolete_by": conf.obsolete_by,
                "build_depends": conf.build_depends,
            });
            if with_reader && let Some(object) = value.as_object_mut() {
                let (reader, why) = match &res.read_by {
                    ReadBy::Native => ("native", None),
                    ReadBy::Bash(why) => ("bash", why.as_ref()),
                };
                object.insert("reader".into(), reader.into());
                object.insert(
                    "needs_shell".into(),
                    why.map_or(serde_json::Value::Null, |w| {
                        serde_json::json!({
                            "file": w.file,
                            "line": (w.line > 0).then_some(w.line),
                            "what": w.what,
                        })
                    }),
                );
            }
            let mut s = serde_json::to_string_pretty(&value).unwrap_or_default();
            s.push('\n');
            s
        }
    }
}

/// What `conf show` prints, dkms's complaints about the file (empty when it is valid), and
/// which reader read it (bash: its shell code was run).
pub struct Shown {
    pub text: String,
    pub problems: Vec<ConfError>,
    pub read_by: ReadBy,
}

/// `dkms-rs conf show [--kernel K] [--arch A] [--format F] PATH`, resolved for `ctx` (its
/// kernel, arch, trees and `/etc/dkms`; the binary's default kernel is [`default_kernel`],
/// the arch `uname -m`). PATH is a dkms.conf or a directory holding one. An invalid file still
/// renders (`valid=no`), with its problems beside it, so a packager sees the facts and the
/// complaints at once; a missing file (exit 4), one refused unread or under `--no-exec`, or
/// one bash cannot evaluate (exit 8) renders nothing.
pub fn show(path: &Path, ctx: &ResolveContext, format: ShowFormat) -> Result<Shown, ConfError> {
    let conf = if path.is_dir() {
        path.join("dkms.conf")
    } else {
        path.to_path_buf()
    };
    let res = super::evaluate(&conf, ctx, super::Reader::Auto)?;
    Ok(Shown {
        text: render(&res, format),
        problems: res.problems,
        read_by: res.read_by,
    })
}

/// The newest kernel under /lib/modules whose headers are there (`build/include`, as dkms's
/// `_check_kernel_dir` tests), else the running one.
pub fn default_kernel() -> String {
    kernel::installed_kernels_with_headers()
        .into_iter()
        .map(|k| k.0)
        .max_by(|a, b| version_cmp(a, b))
        .unwrap_or_else(|| kernel::Uname::get().release)
}

/// `sort -V`-like order: digit runs compare as numbers, the rest bytewise.
fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, _) => return std::cmp::Ordering::Less,
            (_, None) => return std::cmp::Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let na = std::str::from_utf8(&a[..da])
                    .unwrap_or("0")
                    .trim_start_matches('0');
                let nb = std::str::from_utf8(&b[..db])
                    .unwrap_or("0")
                    .trim_start_matches('0');
                let ord = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
                if ord != std::cmp::Ordering::Equal {
                    return ord;
                }
                a = &a[da..];
                b = &b[db..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_format_names_round_trip() {
        for f in ShowFormat::ALL {
            assert_eq!(f.to_string().parse::<ShowFormat>(), Ok(f));
        }
        assert_eq!(ShowFormat::NAMES, ["kv", "json"]);
        assert_eq!("kv".parse(), Ok(ShowFormat::default()));
        let err = "xml".parse::<ShowFormat>().expect_err("not a format");
        assert_eq!(err.to_string(), "unknown format 'xml' (one of: kv, json)");
    }
}
