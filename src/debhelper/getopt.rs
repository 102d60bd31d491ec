//! debhelper's option parsing (Dh_Getopt.pm's `parseopts`): the command line, DH_OPTIONS,
//! DH_INTERNAL_OPTIONS and `-O`, and the packages they select.

use std::collections::BTreeSet;
use std::path::PathBuf;

use clap::Parser;

use super::control::PackageKinds;
use super::{Console, DhEnv, DhError};

/// The options of dh_dkms-rs: debhelper's common ones, and dh_dkms's `-V` and file argument.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct DhArgs {
    /// Act on the package PKG (repeatable). Default: every package of debian/control that is
    /// built on this architecture.
    #[arg(short = 'p', long = "package", value_name = "PKG")]
    pub packages: Vec<String>,

    /// Do not act on the package PKG (repeatable), even if -p or -i/-a selects it.
    #[arg(short = 'N', long = "no-package", value_name = "PKG")]
    pub no_packages: Vec<String>,

    /// Act on all architecture-independent packages (Architecture: all).
    #[arg(short = 'i', long)]
    pub indep: bool,

    /// Act on all architecture-dependent packages built on this architecture.
    #[arg(short = 'a', long)]
    pub arch: bool,

    /// Use DIR as the package build directory instead of debian/<package> (one package only).
    #[arg(short = 'P', long, value_name = "DIR")]
    pub tmpdir: Option<PathBuf>,

    /// Say what is done (DH_VERBOSE=1 does the same).
    #[arg(short = 'v', long)]
    pub verbose: bool,

    /// Change nothing; with -v, say what would be done (DH_NO_ACT=1 does the same).
    #[arg(long)]
    pub no_act: bool,

    /// An option from dh: applied when dh_dkms-rs knows it, ignored otherwise.
    #[arg(
        short = 'O',
        value_name = "OPTION",
        allow_hyphen_values = true,
        hide_short_help = true
    )]
    pub passthrough: Vec<String>,

    /// Replace #MODULE_VERSION# in dkms.conf with VERSION; -V alone: the upstream version of
    /// debian/changelog (without epoch and Debian revision).
    #[arg(
        short = 'V',
        value_name = "VERSION",
        num_args = 0..=1,
        default_missing_value = "",
        require_equals = false
    )]
    pub module_version: Option<String>,

    /// Install FILE as dkms.conf of the first package acted on, instead of the one
    /// debian/<package>.dkms names.
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
}

/// The options once gathered from everywhere (Dh_Getopt's `%dh`): the packages to act on, in
/// order, and the settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Never empty.
    pub packages: Vec<String>,
    pub tmpdir: Option<PathBuf>,
    pub verbose: bool,
    pub no_act: bool,
    pub module_version: Option<String>,
    pub file: Option<PathBuf>,
}

impl Options {
    /// Gather DH_INTERNAL_OPTIONS, DH_OPTIONS, the command line's `args` and their `-O`s, and
    /// DH_VERBOSE/DH_NO_ACT, and select the packages (Dh_Getopt's `parseopts`). `None` when
    /// no package is left to act on, after the warning debhelper gives.
    pub fn gather(
        args: DhArgs,
        env: &DhEnv,
        kinds: &PackageKinds,
        console: &mut Console,
    ) -> Result<Option<Options>, DhError> {
        // DH_INTERNAL_OPTIONS: what dh passes into an override target. Its selection becomes
        // exclusions, so that -p on the override's command line can still narrow it (Dh_Getopt).
        let mut excluded: BTreeSet<String> = BTreeSet::new();
        let mut opts = Gathered::default();
        if let Some(internal) = env.get("DH_INTERNAL_OPTIONS") {
            let words: Vec<String> = internal.split('\x1e').map(str::to_string).collect();
            let mut inner = Gathered::default();
            inner.absorb_words(&words);
            if !inner.picks.is_empty() {
                let chosen = resolve_picks(&inner.picks, kinds)?;
                excluded.extend(kinds.all.iter().filter(|p| !chosen.contains(p)).cloned());
            }
            for p in &inner.excludes {
                known(kinds, p, "-N/--no-package")?;
            }
            excluded.extend(inner.excludes.drain(..));
            inner.picks.clear();
            opts = inner;
        }
        if let Some(dh_options) = env.get("DH_OPTIONS") {
            let words: Vec<String> = dh_options.split_whitespace().map(str::to_string).collect();
            if !opts.absorb_words(&words) {
                console.warn("ignored unknown options in DH_OPTIONS");
            }
        }
        opts.absorb(args);
        opts.verbose |= env.get("DH_VERBOSE").is_some();
        opts.no_act |= env.get("DH_NO_ACT").is_some();

        for p in &opts.excludes {
            known(kinds, p, "-N/--no-package")?;
        }
        excluded.extend(opts.excludes.iter().cloned());

        let mut selected = resolve_picks(&opts.picks, kinds)?;
        if selected.is_empty() {
            if opts
                .picks
                .iter()
                .any(|p| matches!(p, Pick::Indep | Pick::Arch))
            {
                console.warn(
                    "You asked that all arch in(dep) packages be built, but there are none of that type.",
                );
                return Ok(None);
            }
            if !opts.picks.is_empty() {
                console
                    .warn("All requested packages have been excluded (e.g. via a Build-Profile).");
                return Ok(None);
            }
            selected = kinds.both();
        }
        let mut seen = BTreeSet::new();
        selected.retain(|p| !excluded.contains(p) && seen.insert(p.clone()));
        if selected.is_empty() {
            console.warn("No packages to build. Possible architecture mismatch.");
            return Ok(None);
        }
        if opts.tmpdir.is_some() && selected.len() > 1 {
            return Err(DhError::TmpdirWithManyPackages {
                packages: selected.join(","),
            });
        }
        Ok(Some(Options {
            packages: selected,
            tmpdir: opts.tmpdir,
            verbose: opts.verbose,
            no_act: opts.no_act,
            module_version: opts.module_version,
            file: opts.file,
        }))
    }
}

/// One way a package gets selected, in the order the options came.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pick {
    Indep,
    Arch,
    Package(String),
}

/// Options gathered from DH_INTERNAL_OPTIONS, DH_OPTIONS, the command line and `-O`.
#[derive(Debug, Default)]
struct Gathered {
    picks: Vec<Pick>,
    excludes: Vec<String>,
    tmpdir: Option<PathBuf>,
    verbose: bool,
    no_act: bool,
    module_version: Option<String>,
    file: Option<PathBuf>,
}

/// Parses option words that come from elsewhere than the command line (`-O`, DH_OPTIONS,
/// DH_INTERNAL_OPTIONS).
#[derive(Parser, Debug)]
#[command(
    no_binary_name = true,
    disable_help_flag = true,
    disable_version_flag = true
)]
struct Strict {
    #[command(flatten)]
    args: DhArgs,
}

impl Gathered {
    fn absorb(&mut self, args: DhArgs) {
        if args.indep {
            self.picks.push(Pick::Indep);
        }
        if args.arch {
            self.picks.push(Pick::Arch);
        }
        self.picks
            .extend(args.packages.into_iter().map(Pick::Package));
        self.excludes.extend(args.no_packages);
        self.tmpdir = args.tmpdir.or(self.tmpdir.take());
        self.verbose |= args.verbose;
        self.no_act |= args.no_act;
        self.module_version = args.module_version.or(self.module_version.take());
        self.file = args.file.or(self.file.take());
        for option in args.passthrough {
            self.absorb_words(&[option]);
        }
    }

    /// Apply what is known among `words`, skipping unknown options as Getopt::Long does for
    /// debhelper; returns false when some were skipped.
    fn absorb_words(&mut self, words: &[String]) -> bool {
        use clap::error::{ContextKind, ContextValue, ErrorKind};
        let mut words = words.to_vec();
        let mut all = true;
        loop {
            match Strict::try_parse_from(&words) {
                Ok(parsed) => {
                    self.absorb(parsed.args);
                    return all;
                }
                Err(e) if e.kind() == ErrorKind::UnknownArgument => {
                    all = false;
                    let Some(ContextValue::String(unknown)) = e.get(ContextKind::InvalidArg) else {
                        return false;
                    };
                    // clap names `--opt=value` as `--opt`: drop the word it came from.
                    let Some(at) = words
                        .iter()
                        .position(|w| w == unknown || w.starts_with(&format!("{unknown}=")))
                    else {
                        return false;
                    };
                    words.remove(at);
                }
                Err(_) => return false,
            }
        }
    }
}

/// `name` is a binary package of debian/control, or the error for `option` naming it.
fn known(kinds: &PackageKinds, name: &str, option: &'static str) -> Result<(), DhError> {
    if kinds.all.iter().any(|p| p == name) {
        Ok(())
    } else {
        Err(DhError::UnknownPackage {
            option,
            name: name.to_string(),
            known: kinds.all.join(", "),
        })
    }
}

/// The packages the picks select, in order (duplicates kept; the caller drops them).
fn resolve_picks(picks: &[Pick], kinds: &PackageKinds) -> Result<Vec<String>, DhError> {
    let mut out = Vec::new();
    for pick in picks {
        match pick {
            Pick::Indep => out.extend(kinds.indep.iter().cloned()),
            Pick::Arch => out.extend(kinds.arch.iter().cloned()),
            Pick::Package(p) => {
                known(kinds, p, "-p/--package")?;
                // A package the build profiles leave out is silently skipped (Dh_Getopt).
                if kinds.indep.contains(p) || kinds.arch.contains(p) {
                    out.push(p.clone());
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passthrough_applies_known_options_and_skips_unknown_ones() {
        let mut g = Gathered::default();
        let all = g.absorb_words(&[
            "-O--buildsystem=cmake".to_string(),
            "-O-v".to_string(),
            "-Nfoo".to_string(),
        ]);
        assert!(all, "-O values are applied or skipped, never refused");
        assert!(g.verbose);
        assert_eq!(g.excludes, vec!["foo".to_string()]);
        let mut g = Gathered::default();
        assert!(!g.absorb_words(&["--frobnicate".to_string(), "-i".to_string()]));
        assert_eq!(g.picks, vec![Pick::Indep]);
    }
}
