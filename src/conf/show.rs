//! `dkms-rs conf show`: what dkms will do with a dkms.conf, as `key=value` lines or JSON.

use std::path::Path;

use super::{ConfError, ModuleConf, Resolution, ResolveContext};
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

/// Render a resolution: an invalid conf still shows what dkms resolved, with `valid=no`.
pub fn render(res: &Resolution, format: ShowFormat) -> String {
    let conf = &res.conf;
    let valid = res.problems.is_empty();
    match format {
        ShowFormat::Kv => {
            let mut lines: Vec<String> = facts(conf, valid)
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
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
            let value = serde_json::json!({
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
            let mut s = serde_json::to_string_pretty(&value).unwrap_or_default();
            s.push('\n');
            s
        }
    }
}

/// What `conf show` prints, and dkms's complaints about the file (empty when it is valid).
pub struct Shown {
    pub text: String,
    pub problems: Vec<ConfError>,
}

/// `dkms-rs conf show [--kernel K] [--arch A] [--format F] PATH`. PATH is a dkms.conf or a
/// directory holding one; the kernel defaults to the newest one with headers (else
/// `uname -r`), the arch to `uname -m`. An invalid file still renders (`valid=no`), with its
/// problems beside it, so a packager sees the facts and the complaints at once; a missing file
/// (exit 4) or one bash cannot evaluate (exit 8) renders nothing.
pub fn show(
    path: &Path,
    kernel: Option<&str>,
    arch: Option<&str>,
    format: ShowFormat,
) -> Result<Shown, ConfError> {
    let conf = if path.is_dir() {
        path.join("dkms.conf")
    } else {
        path.to_path_buf()
    };
    let kernel = kernel.map_or_else(default_kernel, str::to_owned);
    let arch = arch.map_or_else(kernel::machine_arch, str::to_owned);
    let ctx = ResolveContext::new(&kernel, &arch);
    let res = super::evaluate(&conf, &ctx, super::Reader::Auto)?;
    Ok(Shown {
        text: render(&res, format),
        problems: res.problems,
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
