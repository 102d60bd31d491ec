//! The native reader: evaluates declarative dkms.conf files exactly as dkms 3.0.10's
//! `safe_source` does, including its echo-and-resource round trip, without spawning anything.
//!
//! dkms sources each file in a subshell, then echoes every whitelisted element as
//! `VAR[i]="<value>"` with the value unquoted (so whitespace runs collapse and globs could
//! expand) and sources that output again in its own shell (so `$`, `\` and `"` in values are
//! interpreted a second time). Whenever any of that goes beyond plain text, this reader
//! returns [`NeedsBash`] and the caller runs bash.

use std::ffi::CString;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex};

use super::lexer::{self, Assignment, Part};
use super::vars::{Elem, Vars, WHITELIST};

/// The native reader cannot be sure; bash must evaluate. Carries where and why (for tracing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeedsBash {
    pub file: usize,
    pub line: usize,
    pub what: &'static str,
}

/// Names whose assignment changes how the shell itself behaves (splitting, globbing, locale)
/// or that dkms's own code owns: modelling them natively would be guessing.
fn is_special_name(name: &str) -> bool {
    name.starts_with('_')
        || name.starts_with("BASH")
        || name.starts_with("DKMS_DIRECTIVE")
        || name.starts_with("LC_")
        || name.starts_with("COMP_")
        || name.starts_with("dkms_")
        || matches!(
            name,
            "IFS"
                | "GLOBIGNORE"
                | "LANG"
                | "SHELLOPTS"
                | "POSIXLY_CORRECT"
                | "LINENO"
                | "RANDOM"
                | "SRANDOM"
                | "SECONDS"
                | "EPOCHSECONDS"
                | "EPOCHREALTIME"
                | "FUNCNAME"
                | "GROUPS"
                | "PIPESTATUS"
                | "UID"
                | "EUID"
                | "PPID"
                | "HISTCMD"
                | "OPTIND"
                | "OPTARG"
                | "mv_re"
                | "export_envs"
                | "tmpfile"
                | "to_source_file"
                | "directive"
                | "directive_name"
                | "directive_value"
        )
}

/// The names of dkms's variables that differ between the (kernel, arch) targets of one
/// module: a file that expands none of them reads the same for every target.
pub const TARGET_NAMES: [&str; 4] = ["kernelver", "arch", "kernel_source_dir", "kernel_config"];

/// What a native read looked at beyond the text of its files (see [`source_all`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reads {
    /// A name of [`TARGET_NAMES`] was expanded from dkms's variables.
    pub target: bool,
    /// Another of dkms's variables was (`$dkms_tree`, `$source_tree`, `$install_tree`: the
    /// command's tree options; `$module`, `$module_version`: what the command was given,
    /// which is not the module's name in every command: `status` without `-m`).
    pub other: bool,
    /// A value dkms echoes unquoted holds a glob character (`*`, `?`, `[`): what it reads back
    /// may depend on the files of the working directory.
    pub glob: bool,
}

/// What `$name` means while a file is sourced: the conf's own variables, then dkms's.
struct Scope<'a> {
    vars: &'a Vars,
    context: &'a [(&'static str, String)],
    /// What was expanded from the context.
    reads: &'a std::cell::Cell<Reads>,
}

impl Scope<'_> {
    fn lookup(&self, name: &str) -> Option<&str> {
        if let Some(var) = self.vars.get(name) {
            return Some(var.get(&0).map_or("", |e| e.value.as_str()));
        }
        if let Some((_, v)) = self.context.iter().find(|(n, _)| *n == name) {
            let mut reads = self.reads.get();
            if TARGET_NAMES.contains(&name) {
                reads.target = true;
            } else {
                reads.other = true;
            }
            self.reads.set(reads);
            return Some(v);
        }
        // read_conf unsets every whitelisted variable before sourcing.
        WHITELIST.contains(&name).then_some("")
    }

    fn expand(&self, parts: &[Part]) -> Option<String> {
        let mut out = String::new();
        for part in parts {
            match part {
                Part::Lit(s) => out.push_str(s),
                Part::Var(name) => out.push_str(self.lookup(name)?),
            }
        }
        Some(out)
    }
}

/// Source `files` (the dkms.conf and the `/etc/dkms` overrides that exist, in dkms's order)
/// and return the whitelisted variables as dkms's shell holds them afterwards, and what the
/// read looked at beyond the files' text ([`Reads`]: with no `target`, the variables are the
/// same for every target whose context differs only in [`TARGET_NAMES`]; with nothing, they
/// follow from the text alone, as long as no entry of the
/// working directory is named like a directive: see [`directive_named_entries`]).
pub fn source_all(
    files: &[&str],
    context: &[(&'static str, String)],
    cwd: &mut GlobProbe,
) -> Result<(Vars, Reads), NeedsBash> {
    if directives_in_env() {
        // safe_source re-exports DKMS_DIRECTIVE* from `set`: environment-dependent.
        return Err(NeedsBash {
            file: 0,
            line: 0,
            what: "DKMS_DIRECTIVE variables in the environment",
        });
    }
    let mut outer = Vars::default();
    let reads = std::cell::Cell::new(Reads::default());
    for (file, text) in files.iter().enumerate() {
        let assigns = lexer::parse(text).map_err(|b| NeedsBash {
            file,
            line: b.line,
            what: b.what,
        })?;
        let inner = source_one(file, &assigns, &outer, context, &reads)?;
        resource(file, &inner, &mut outer, context, cwd, &reads)?;
    }
    Ok((outer, reads.get()))
}

/// Whether the environment holds a `DKMS_DIRECTIVE*` variable, which safe_source re-exports
/// from `set`: files are then read by bash. Looked up once a process (status evaluates a
/// dkms.conf per module).
pub fn directives_in_env() -> bool {
    static IN_ENV: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *IN_ENV.get_or_init(|| {
        std::env::vars_os().any(|(k, _)| k.as_encoded_bytes().starts_with(b"DKMS_DIRECTIVE"))
    })
}

/// Whether an entry of the working directory is named like a whitelisted directive (starts
/// with one's name): only such an entry can match the `NAME[i]="...` field that dkms's
/// unquoted echo globs for a value without glob characters ([`Reads::glob`]); a relative
/// pattern matches nothing unless its first component matches an entry. Listed once a process.
pub fn directive_named_entries() -> bool {
    static THERE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *THERE.get_or_init(|| {
        cwd_names().iter().any(|n| {
            WHITELIST
                .iter()
                .any(|w| n.as_bytes().starts_with(w.as_bytes()))
        })
    })
}

/// The subshell part of safe_source: `. "$to_source_file"` on a copy of dkms's variables.
fn source_one(
    file: usize,
    assigns: &[Assignment],
    outer: &Vars,
    context: &[(&'static str, String)],
    reads: &std::cell::Cell<Reads>,
) -> Result<Vars, NeedsBash> {
    let mut inner = outer.clone();
    for a in assigns {
        let beyond = |what| NeedsBash {
            file,
            line: a.line,
            what,
        };
        if is_special_name(&a.name) {
            return Err(beyond("an assignment to a shell or dkms variable"));
        }
        let value = Scope {
            vars: &inner,
            context,
            reads,
        }
        .expand(&a.value)
        .ok_or(beyond("a variable dkms.conf does not define"))?;
        inner.entry(a.name.clone()).or_default().insert(
            a.index.unwrap_or(0),
            Elem {
                value,
                origin: Some((file, a.line)),
            },
        );
    }
    Ok(inner)
}

/// The echo-and-resource half of safe_source, in whitelist order.
fn resource(
    file: usize,
    inner: &Vars,
    outer: &mut Vars,
    context: &[(&'static str, String)],
    cwd: &mut GlobProbe,
    reads: &std::cell::Cell<Reads>,
) -> Result<(), NeedsBash> {
    let beyond = |line, what| NeedsBash { file, line, what };
    for name in WHITELIST {
        let Some(var) = inner.get(*name) else {
            continue;
        };
        for (index, elem) in var {
            let line = elem.origin.map_or(0, |(_, l)| l);
            if has_glob(&elem.value) {
                reads.set(Reads {
                    glob: true,
                    ..reads.get()
                });
            }
            // `echo VAR[i]=\"${VAR[i]}\"` unquoted: IFS runs become one space.
            let mut echoed = format!("{name}[{index}]=\"");
            let mut in_space = false;
            for ch in elem.value.chars() {
                if matches!(ch, ' ' | '\t' | '\n') {
                    if !in_space {
                        echoed.push(' ');
                    }
                    in_space = true;
                } else {
                    echoed.push(ch);
                    in_space = false;
                }
            }
            echoed.push('"');
            for field in echoed.split(' ') {
                if cwd.may_match(field) {
                    return Err(beyond(line, "a value that pathname expansion could change"));
                }
            }
            let parsed = lexer::parse(&echoed)
                .map_err(|_| beyond(line, "a value dkms re-reads as shell syntax"))?;
            let [a] = parsed.as_slice() else {
                return Err(beyond(line, "a value dkms re-reads as several words"));
            };
            if a.name != *name || a.index != Some(*index) {
                return Err(beyond(line, "a value dkms re-reads as another assignment"));
            }
            let value = Scope {
                vars: outer,
                context,
                reads,
            }
            .expand(&a.value)
            .ok_or(beyond(line, "a value dkms expands a second time"))?;
            outer.entry((*name).to_owned()).or_default().insert(
                *index,
                Elem {
                    value,
                    origin: elem.origin,
                },
            );
        }
    }
    Ok(())
}

/// Pathname expansion against the working directory (as dkms's unquoted echo does), asked
/// only "could this field expand?". The directory is listed lazily, once per read; listings
/// are also kept per process while the directory's (device, inode, mtime) stay the same.
#[derive(Default)]
pub struct GlobProbe {
    names: Option<Arc<Vec<CString>>>,
}

type Listing = ((u64, u64, i64, i64), Arc<Vec<CString>>);

fn cwd_names() -> Arc<Vec<CString>> {
    static CACHE: Mutex<Option<Listing>> = Mutex::new(None);
    let key = std::fs::metadata(".")
        .ok()
        .map(|m| (m.dev(), m.ino(), m.mtime(), m.mtime_nsec()));
    if let (Some(key), Ok(cache)) = (key, CACHE.lock())
        && let Some((k, names)) = cache.as_ref()
        && *k == key
    {
        return names.clone();
    }
    let names: Arc<Vec<CString>> = Arc::new(
        std::fs::read_dir(".")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| CString::new(e.file_name().into_encoded_bytes()).ok())
            .collect(),
    );
    if let (Some(key), Ok(mut cache)) = (key, CACHE.lock()) {
        *cache = Some((key, names.clone()));
    }
    names
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

impl GlobProbe {
    /// True when `field` is a glob pattern that matches something (or might: extglob).
    pub fn may_match(&mut self, field: &str) -> bool {
        if field.contains("+(") || field.contains("@(") || field.contains("!(") {
            return true;
        }
        if !has_glob(field) {
            return false;
        }
        if field.starts_with('/') {
            return !super::posix::glob(field).is_empty();
        }
        // A relative pattern matches nothing unless its first component matches an entry of
        // the working directory; only then ask glob(3) about the whole path.
        let (first, rest) = field.split_once('/').unwrap_or((field, ""));
        if !has_glob(first) {
            return !super::posix::glob(field).is_empty();
        }
        let Ok(pattern) = CString::new(first) else {
            return true;
        };
        let names = self.names.get_or_insert_with(cwd_names);
        // Only names starting with the pattern's literal prefix can match: skip fnmatch
        // for the rest (every echoed `VAR[i]="...` field has a bracket).
        let prefix = &first.as_bytes()[..first.find(['*', '?', '[', '\\']).unwrap_or(first.len())];
        let first_matches = names
            .iter()
            .filter(|n| n.as_bytes().starts_with(prefix))
            .any(|n| super::posix::fnmatch(&pattern, n));
        first_matches && (rest.is_empty() || !super::posix::glob(field).is_empty())
    }
}
