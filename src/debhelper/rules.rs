//! debian/rules and Debian's `dh_dkms`: the targets dh would run around `dh_dkms`
//! (`execute_before_dh_dkms`, `override_dh_dkms`, `execute_after_dh_dkms`, each also `-arch`
//! and `-indep`), found as dh finds them (make's database, SequencerUtil's
//! `rules_explicit_target`), and the lines of debian/rules that call `dh_dkms` by name.
//!
//! With the dkms-rs addon dh runs `dh_dkms-rs`, never `dh_dkms`, so dh itself never runs those
//! targets: dh_dkms-rs runs them in its place (see [`super::run_as`]), with a `dh_dkms` on PATH
//! that is dh_dkms-rs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::DhError;

/// Where the rules are, under the source package root.
pub const RULES: &str = "debian/rules";

/// Debian's command whose targets dh_dkms-rs runs.
pub const DH_DKMS: &str = "dh_dkms";

/// The target dh asks make for so that only the database is printed (SequencerUtil's
/// DUMMY_TARGET).
const DUMMY_TARGET: &str = "debhelper-fail-me";

/// The explicit targets of debian/rules: `true` when the target does something (has
/// prerequisites or a recipe), `false` when it is empty (dh then skips the command).
#[derive(Debug, Clone, Default)]
pub struct Targets {
    targets: BTreeMap<String, bool>,
    /// debian/rules's text, for line numbers (`None` when it cannot be read).
    text: Option<String>,
}

impl Targets {
    /// Ask make for the targets of `root/debian/rules`, as dh does (`make -Rrnpsf`). No
    /// debian/rules: no targets.
    pub fn read(root: &Path) -> Result<Self, DhError> {
        let rules = root.join(RULES);
        if !rules.is_file() {
            return Ok(Targets::default());
        }
        let text = std::fs::read_to_string(&rules).ok();
        let mut cmd = Command::new("make");
        cmd.args(["-Rrnpsf", RULES, DUMMY_TARGET])
            .env("LC_ALL", "C")
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if !root.as_os_str().is_empty() {
            cmd.current_dir(root);
        }
        let out = cmd.output().map_err(|source| DhError::RulesNotRead {
            path: PathBuf::from(RULES),
            source,
        })?;
        Ok(Targets {
            targets: parse_database(&String::from_utf8_lossy(&out.stdout)),
            text,
        })
    }

    /// Targets known from a make database (for tests).
    pub fn from_database(database: &str, text: Option<String>) -> Self {
        Targets {
            targets: parse_database(database),
            text,
        }
    }

    /// `None` when `target` is not defined, else whether it does something.
    pub fn get(&self, target: &str) -> Option<bool> {
        self.targets.get(target).copied()
    }

    /// The defined targets of Debian's `dh_dkms`, in the order dh would consider them.
    pub fn dh_dkms_targets(&self) -> Vec<String> {
        HOOK_STEMS
            .iter()
            .flat_map(|stem| {
                [None, Some("arch"), Some("indep")]
                    .into_iter()
                    .map(move |t| target_name(stem, t))
            })
            .filter(|t| self.targets.contains_key(t))
            .collect()
    }

    /// Where `target` is defined: `debian/rules:LINE`, or `debian/rules` when the line is not
    /// found there (an included file defines it).
    pub fn location(&self, target: &str) -> String {
        match self
            .text
            .as_deref()
            .and_then(|t| definition_line(t, target))
        {
            Some(line) => format!("{RULES}:{line}"),
            None => RULES.to_string(),
        }
    }

    /// The recipe lines of debian/rules that call `dh_dkms` (not `dh_dkms-rs`) outside
    /// dh_dkms's own targets: (line, the target they belong to).
    pub fn dh_dkms_calls(&self) -> Vec<(usize, String)> {
        let Some(text) = self.text.as_deref() else {
            return Vec::new();
        };
        let own = self.dh_dkms_targets();
        let mut current: Vec<String> = Vec::new();
        let mut calls = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if let Some(recipe) = line.strip_prefix('\t') {
                if calls_dh_dkms(recipe) && !current.iter().any(|t| own.contains(t)) {
                    calls.push((i + 1, current.join(" ")));
                }
            } else if let Some(names) = rule_targets(line) {
                current = names;
            }
        }
        calls
    }
}

/// The hook and override stems of a dh command, in dh's order.
pub const HOOK_STEMS: [&str; 3] = [
    "execute_before_dh_dkms",
    "override_dh_dkms",
    "execute_after_dh_dkms",
];

/// `stem`, or `stem-arch` / `stem-indep`.
pub fn target_name(stem: &str, override_type: Option<&str>) -> String {
    match override_type {
        Some(t) => format!("{stem}-{t}"),
        None => stem.to_string(),
    }
}

/// SequencerUtil's `rules_explicit_target` loop over `make -p`'s output.
fn parse_database(database: &str) -> BTreeMap<String, bool> {
    let mut targets = BTreeMap::new();
    let mut processing = false;
    let mut not_a_target = false;
    let mut current: Option<String> = None;
    for line in database.lines() {
        if !processing {
            processing = line == "# Files";
            continue;
        }
        if line.starts_with("# Not a target:") {
            not_a_target = true;
            continue;
        }
        let rule = (!not_a_target && !line.starts_with('#'))
            .then(|| line.split_once(':'))
            .flatten()
            .filter(|(name, _)| !name.is_empty() && !name.contains('#'));
        if let Some((name, rest)) = rule {
            let deps = rest.strip_prefix(':').unwrap_or(rest).trim();
            targets.insert(name.to_string(), !deps.is_empty());
            current = Some(name.to_string());
        } else if let Some(target) = &current {
            if line.starts_with('#') {
                let comment = line.trim_start_matches('#').trim_start();
                if comment.starts_with("commands to execute")
                    || comment.starts_with("recipe to execute")
                {
                    targets.insert(target.clone(), true);
                }
            } else {
                current = None;
            }
        }
        not_a_target = false;
    }
    targets
}

/// The targets a makefile line defines, when it is a rule line (`a b: deps`), not an
/// assignment, a directive or a recipe.
fn rule_targets(line: &str) -> Option<Vec<String>> {
    if line.starts_with('\t') || line.trim_start().starts_with('#') {
        return None;
    }
    let colon = line.find(':')?;
    if let Some(eq) = line.find('=')
        && eq < colon
    {
        return None;
    }
    // `:=` and `::=` are assignments.
    if line[colon..].trim_start_matches(':').starts_with('=') {
        return None;
    }
    let names: Vec<String> = line[..colon]
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let directive = [
        "include", "-include", "sinclude", "export", "define", "ifeq",
    ];
    if names.is_empty() || directive.contains(&names[0].as_str()) {
        return None;
    }
    Some(names)
}

/// The line (1-based) of `text` where a rule defines `target`.
pub fn definition_line(text: &str, target: &str) -> Option<usize> {
    text.lines()
        .position(|l| rule_targets(l).is_some_and(|names| names.iter().any(|n| n == target)))
        .map(|i| i + 1)
}

/// Whether a recipe line runs `dh_dkms` itself (the word, not `dh_dkms-rs` or `dh_dkmsx`).
fn calls_dh_dkms(recipe: &str) -> bool {
    let boundary = |c: Option<char>| {
        c.is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'))
    };
    recipe.match_indices(DH_DKMS).any(|(at, _)| {
        let before = recipe[..at].chars().next_back();
        let after = recipe[at + DH_DKMS.len()..].chars().next();
        boundary(before) && boundary(after) && before != Some('#')
    }) && !recipe.trim_start().starts_with('#')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_lines_and_assignments() {
        assert_eq!(
            rule_targets("override_dh_auto_build override_dh_auto_install:"),
            Some(vec![
                "override_dh_auto_build".into(),
                "override_dh_auto_install".into()
            ])
        );
        assert_eq!(rule_targets("VER ?= $(shell x m{^(?:a)})"), None);
        assert_eq!(rule_targets("A := b"), None);
        assert_eq!(rule_targets("\tdh_dkms -V"), None);
        assert_eq!(rule_targets("%:"), Some(vec!["%".into()]));
        assert_eq!(
            definition_line(
                "x=1\n\noverride_dh_dkms:\n\tdh_dkms -V\n",
                "override_dh_dkms"
            ),
            Some(3)
        );
    }

    #[test]
    fn calls_of_dh_dkms_by_name() {
        assert!(calls_dh_dkms("dh_dkms -V $(VERSION)"));
        assert!(calls_dh_dkms("sed x > debian/dkms; dh_dkms"));
        assert!(!calls_dh_dkms("dh_dkms-rs -V"));
        assert!(!calls_dh_dkms("# dh_dkms -V"));
        assert!(!calls_dh_dkms("echo debian/foo.dh_dkms.log"));
    }

    #[test]
    fn database_targets_as_dh_reads_them() {
        let db = "# Files\n\n# Not a target:\nfoo:\n\n\
                  override_dh_dkms:\n#  recipe to execute (from 'debian/rules', line 3):\n\tdh_dkms -V\n\n\
                  override_dh_auto_build:\n\n\
                  execute_after_dh_dkms-indep: other\n";
        let t = Targets::from_database(db, None);
        assert_eq!(t.get("foo"), None);
        assert_eq!(t.get("override_dh_dkms"), Some(true));
        assert_eq!(t.get("override_dh_auto_build"), Some(false));
        assert_eq!(
            t.dh_dkms_targets(),
            vec!["override_dh_dkms", "execute_after_dh_dkms-indep"]
        );
    }
}
