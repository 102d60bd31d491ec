//! debhelper's option parsing (Dh_Getopt.pm's `parseopts`): the words of the command line,
//! DH_OPTIONS, DH_INTERNAL_OPTIONS and `-O`, and the packages they select.
//!
//! Words are read as dh_dkms-rs has always read them, and its messages are those its users
//! know: left to right, short options bundled (`-ipfoo`), values attached (`-pfoo`, `-p=foo`,
//! `--package=foo`) or in the next word, `--` ending the options, an option other than `-p`,
//! `-N` and `-O` given once, the first problem reported. (debhelper's Getopt::Long also takes
//! abbreviated long options and repeated flags, which dh_dkms-rs never did.)

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fmt;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use super::control::PackageKinds;
use super::{DhEnv, DhError, Streams};

/// An option of dh_dkms-rs: debhelper's common ones, and dh_dkms's `-V` and FILE argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhOption {
    /// `-p`, `--package PKG`: act on PKG (repeatable).
    Package,
    /// `-N`, `--no-package PKG`: do not act on PKG (repeatable).
    NoPackage,
    /// `-i`, `--indep`: the Architecture: all packages.
    Indep,
    /// `-a`, `--arch`: the architecture-dependent packages built here.
    Arch,
    /// `-P`, `--tmpdir DIR`: the package build directory (one package only).
    Tmpdir,
    /// `-v`, `--verbose`.
    Verbose,
    /// `--no-act`.
    NoAct,
    /// `-O OPTION`: an option from dh, applied when known, ignored otherwise (repeatable).
    Passthrough,
    /// `-V [VERSION]`: the version replacing #MODULE_VERSION#.
    ModuleVersion,
    /// The FILE argument: a dkms.conf for the first package.
    File,
}

/// How an option takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takes {
    /// None: a flag.
    Nothing,
    /// One, attached or the next word, which may not look like an option.
    Value,
    /// One, attached or the next word whatever it is (`-O -v`, `-O --`).
    AnyValue,
    /// One when attached or when the next word does not look like an option; else empty.
    OptionalValue,
}

impl DhOption {
    /// Every option, in the order `--help` lists them.
    pub const ALL: [DhOption; 10] = [
        DhOption::Package,
        DhOption::NoPackage,
        DhOption::Indep,
        DhOption::Arch,
        DhOption::Tmpdir,
        DhOption::Verbose,
        DhOption::NoAct,
        DhOption::Passthrough,
        DhOption::ModuleVersion,
        DhOption::File,
    ];

    pub fn short(self) -> Option<char> {
        match self {
            DhOption::Package => Some('p'),
            DhOption::NoPackage => Some('N'),
            DhOption::Indep => Some('i'),
            DhOption::Arch => Some('a'),
            DhOption::Tmpdir => Some('P'),
            DhOption::Verbose => Some('v'),
            DhOption::Passthrough => Some('O'),
            DhOption::ModuleVersion => Some('V'),
            DhOption::NoAct | DhOption::File => None,
        }
    }

    pub fn long(self) -> Option<&'static str> {
        match self {
            DhOption::Package => Some("package"),
            DhOption::NoPackage => Some("no-package"),
            DhOption::Indep => Some("indep"),
            DhOption::Arch => Some("arch"),
            DhOption::Tmpdir => Some("tmpdir"),
            DhOption::Verbose => Some("verbose"),
            DhOption::NoAct => Some("no-act"),
            DhOption::Passthrough | DhOption::ModuleVersion | DhOption::File => None,
        }
    }

    pub fn takes(self) -> Takes {
        match self {
            DhOption::Indep | DhOption::Arch | DhOption::Verbose | DhOption::NoAct => {
                Takes::Nothing
            }
            DhOption::Package | DhOption::NoPackage | DhOption::Tmpdir | DhOption::File => {
                Takes::Value
            }
            DhOption::Passthrough => Takes::AnyValue,
            DhOption::ModuleVersion => Takes::OptionalValue,
        }
    }

    /// Whether giving it again adds to it rather than being refused.
    fn repeatable(self) -> bool {
        matches!(
            self,
            DhOption::Package | DhOption::NoPackage | DhOption::Passthrough
        )
    }

    fn by_short(c: char) -> Option<DhOption> {
        DhOption::ALL.into_iter().find(|o| o.short() == Some(c))
    }

    fn by_long(name: &str) -> Option<DhOption> {
        DhOption::ALL.into_iter().find(|o| o.long() == Some(name))
    }
}

/// The option as messages name it.
impl fmt::Display for DhOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DhOption::Package => "--package <PKG>",
            DhOption::NoPackage => "--no-package <PKG>",
            DhOption::Indep => "--indep",
            DhOption::Arch => "--arch",
            DhOption::Tmpdir => "--tmpdir <DIR>",
            DhOption::Verbose => "--verbose",
            DhOption::NoAct => "--no-act",
            DhOption::Passthrough => "-O <OPTION>",
            DhOption::ModuleVersion => "-V [<VERSION>]",
            DhOption::File => "[FILE]",
        })
    }
}

/// Why a list of words is not dh_dkms-rs's options; the first problem met, left to right.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GetoptError {
    /// An option dh_dkms-rs does not know (`--name` without its `=value`, `-c` for one letter
    /// of a bundle), or a word after FILE.
    #[error("unexpected argument '{argument}' found")]
    Unexpected { argument: String },
    #[error("a value is required for '{option}' but none was supplied")]
    MissingValue { option: DhOption },
    #[error("unexpected value '{value}' for '{option}' found; no more were expected")]
    UnneededValue { option: DhOption, value: String },
    #[error("the argument '{option}' cannot be used multiple times")]
    Repeated { option: DhOption },
    #[error("invalid UTF-8 was detected in one or more arguments")]
    InvalidUtf8 { option: DhOption },
}

impl GetoptError {
    /// A usage error: 2, as for every dkms-rs command.
    pub fn exit_code(&self) -> i32 {
        2
    }
}

/// The options of one list of words, as given (what they select is [`Options::gather`]'s).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DhArgs {
    pub packages: Vec<String>,
    pub no_packages: Vec<String>,
    pub indep: bool,
    pub arch: bool,
    pub tmpdir: Option<PathBuf>,
    pub verbose: bool,
    pub no_act: bool,
    /// The `-O` values, each applied later as a word of its own.
    pub passthrough: Vec<String>,
    /// `-V`: `Some("")` when given without a version.
    pub module_version: Option<String>,
    pub file: Option<PathBuf>,
}

impl DhArgs {
    /// Parse `words` (the command line without the program name).
    pub fn parse<W: Into<OsString>>(
        words: impl IntoIterator<Item = W>,
    ) -> Result<DhArgs, GetoptError> {
        let mut parser = Parser::default();
        for word in words {
            parser.word(word.into())?;
        }
        parser.resolve()?;
        Ok(parser.args)
    }
}

fn os(bytes: &[u8]) -> OsString {
    OsString::from_vec(bytes.to_vec())
}

/// The parse so far. A value in the next word is checked when the next option or FILE comes,
/// or at the end, so that an unknown option after it is the error reported; an attached value
/// is checked at once.
#[derive(Default)]
struct Parser {
    args: DhArgs,
    given: Vec<DhOption>,
    /// The option whose value is still being gathered, and that value when there is one.
    pending: Option<(DhOption, Option<OsString>)>,
    /// The pending option may take the next word as its value.
    awaiting: bool,
    /// After `--`: every word is FILE.
    trailing: bool,
    file_taken: bool,
}

impl Parser {
    fn word(&mut self, word: OsString) -> Result<(), GetoptError> {
        if self.trailing {
            return self.file(word);
        }
        let bytes = word.as_bytes();
        let any_value = self.awaiting
            && self
                .pending
                .as_ref()
                .is_some_and(|(o, _)| o.takes() == Takes::AnyValue);
        if !any_value {
            if bytes == b"--" {
                self.trailing = true;
                return Ok(());
            }
            if let Some(body) = bytes.strip_prefix(b"--") {
                self.awaiting = false;
                return self.long(body);
            }
            if let Some(body) = bytes.strip_prefix(b"-").filter(|b| !b.is_empty()) {
                self.awaiting = false;
                return self.shorts(body);
            }
        }
        if std::mem::take(&mut self.awaiting) {
            if let Some((_, value)) = &mut self.pending {
                *value = Some(word);
            }
            return Ok(());
        }
        self.file(word)
    }

    /// `--name` or `--name=value`.
    fn long(&mut self, body: &[u8]) -> Result<(), GetoptError> {
        let (name, value) = match body.iter().position(|&b| b == b'=') {
            Some(at) => (&body[..at], Some(&body[at + 1..])),
            None => (body, None),
        };
        let Some(option) = std::str::from_utf8(name).ok().and_then(DhOption::by_long) else {
            return Err(GetoptError::Unexpected {
                argument: format!("--{}", String::from_utf8_lossy(name)),
            });
        };
        match (option.takes(), value) {
            (Takes::Nothing, Some(value)) => Err(GetoptError::UnneededValue {
                option,
                value: String::from_utf8_lossy(value).into_owned(),
            }),
            (Takes::Nothing, None) => self.react(option, None),
            (_, Some(value)) => self.react(option, Some(os(value))),
            (_, None) => self.expect_value(option),
        }
    }

    /// `-abc`: flags, up to one that takes a value, the rest of the word (less a leading `=`)
    /// being that value.
    fn shorts(&mut self, body: &[u8]) -> Result<(), GetoptError> {
        let valid = match std::str::from_utf8(body) {
            Ok(s) => s,
            // The bytes up to valid_up_to() are UTF-8 by definition.
            Err(e) => std::str::from_utf8(&body[..e.valid_up_to()]).unwrap_or_default(),
        };
        for (at, c) in valid.char_indices() {
            let Some(option) = DhOption::by_short(c) else {
                return Err(GetoptError::Unexpected {
                    argument: format!("-{c}"),
                });
            };
            if option.takes() == Takes::Nothing {
                self.react(option, None)?;
                continue;
            }
            let rest = &body[at + c.len_utf8()..];
            if rest.is_empty() {
                return self.expect_value(option);
            }
            let value = rest.strip_prefix(b"=").unwrap_or(rest);
            return self.react(option, Some(os(value)));
        }
        match &body[valid.len()..] {
            [] => Ok(()),
            invalid => Err(GetoptError::Unexpected {
                argument: format!("-{}", String::from_utf8_lossy(invalid)),
            }),
        }
    }

    /// A word that is no option and no option's value.
    fn file(&mut self, word: OsString) -> Result<(), GetoptError> {
        if self.file_taken {
            return Err(GetoptError::Unexpected {
                argument: word.to_string_lossy().into_owned(),
            });
        }
        self.resolve()?;
        self.pending = Some((DhOption::File, Some(word)));
        self.file_taken = true;
        Ok(())
    }

    /// `option` comes, its value (if any) to be gathered from the next word.
    fn expect_value(&mut self, option: DhOption) -> Result<(), GetoptError> {
        self.resolve()?;
        self.pending = Some((option, None));
        self.awaiting = true;
        Ok(())
    }

    /// `option` comes with its value, complete.
    fn react(&mut self, option: DhOption, value: Option<OsString>) -> Result<(), GetoptError> {
        self.resolve()?;
        self.apply(option, value)
    }

    fn resolve(&mut self) -> Result<(), GetoptError> {
        match self.pending.take() {
            Some((option, value)) => self.apply(option, value),
            None => Ok(()),
        }
    }

    fn apply(&mut self, option: DhOption, value: Option<OsString>) -> Result<(), GetoptError> {
        let value = match (option.takes(), value) {
            (Takes::Nothing, _) => OsString::new(),
            (Takes::OptionalValue, None) => OsString::new(),
            (_, None) => return Err(GetoptError::MissingValue { option }),
            (_, Some(value)) => value,
        };
        if !option.repeatable() && self.given.contains(&option) {
            return Err(GetoptError::Repeated { option });
        }
        self.given.push(option);
        let text = |value: OsString| {
            value
                .into_string()
                .map_err(|_| GetoptError::InvalidUtf8 { option })
        };
        let path = |value: OsString| {
            if value.is_empty() {
                Err(GetoptError::MissingValue { option })
            } else {
                Ok(PathBuf::from(value))
            }
        };
        let args = &mut self.args;
        match option {
            DhOption::Package => args.packages.push(text(value)?),
            DhOption::NoPackage => args.no_packages.push(text(value)?),
            DhOption::Indep => args.indep = true,
            DhOption::Arch => args.arch = true,
            DhOption::Tmpdir => args.tmpdir = Some(path(value)?),
            DhOption::Verbose => args.verbose = true,
            DhOption::NoAct => args.no_act = true,
            DhOption::Passthrough => args.passthrough.push(text(value)?),
            DhOption::ModuleVersion => args.module_version = Some(text(value)?),
            DhOption::File => args.file = Some(path(value)?),
        }
        Ok(())
    }
}

/// Which option named an unknown package, as messages name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackageOption {
    Package,
    NoPackage,
}

impl fmt::Display for PackageOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PackageOption::Package => "-p/--package",
            PackageOption::NoPackage => "-N/--no-package",
        })
    }
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
        streams: &mut Streams,
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
                known(kinds, p, PackageOption::NoPackage)?;
            }
            excluded.extend(inner.excludes.drain(..));
            inner.picks.clear();
            opts = inner;
        }
        if let Some(dh_options) = env.get("DH_OPTIONS") {
            let words: Vec<String> = dh_options.split_whitespace().map(str::to_string).collect();
            if !opts.absorb_words(&words) {
                streams.warn("ignored unknown options in DH_OPTIONS");
            }
        }
        opts.absorb(args);
        opts.verbose |= env.get("DH_VERBOSE").is_some();
        opts.no_act |= env.get("DH_NO_ACT").is_some();

        for p in &opts.excludes {
            known(kinds, p, PackageOption::NoPackage)?;
        }
        excluded.extend(opts.excludes.iter().cloned());

        let mut selected = resolve_picks(&opts.picks, kinds)?;
        if selected.is_empty() {
            if opts
                .picks
                .iter()
                .any(|p| matches!(p, Pick::Indep | Pick::Arch))
            {
                streams.warn(
                    "You asked that all arch in(dep) packages be built, but there are none of that type.",
                );
                return Ok(None);
            }
            if !opts.picks.is_empty() {
                streams
                    .warn("All requested packages have been excluded (e.g. via a Build-Profile).");
                return Ok(None);
            }
            selected = kinds.both();
        }
        let mut seen = BTreeSet::new();
        selected.retain(|p| !excluded.contains(p) && seen.insert(p.clone()));
        if selected.is_empty() {
            streams.warn("No packages to build. Possible architecture mismatch.");
            return Ok(None);
        }
        if opts.tmpdir.is_some() && selected.len() > 1 {
            return Err(DhError::TmpdirWithManyPackages { packages: selected });
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
    /// debhelper; returns false when some were skipped. Each unknown one costs the first word
    /// that is it (or `it=...`) and a parse from the start; any other problem (a missing or
    /// repeated value, an unknown letter in a bundle) leaves all of `words` unapplied.
    fn absorb_words(&mut self, words: &[String]) -> bool {
        let mut words = words.to_vec();
        let mut all = true;
        loop {
            match DhArgs::parse(&words) {
                Ok(args) => {
                    self.absorb(args);
                    return all;
                }
                Err(GetoptError::Unexpected { argument }) => {
                    all = false;
                    let with_value = format!("{argument}=");
                    let Some(at) = words
                        .iter()
                        .position(|w| *w == argument || w.starts_with(&with_value))
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
fn known(kinds: &PackageKinds, name: &str, option: PackageOption) -> Result<(), DhError> {
    if kinds.all.iter().any(|p| p == name) {
        Ok(())
    } else {
        Err(DhError::UnknownPackage {
            option,
            name: name.to_string(),
            known: kinds.all.clone(),
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
                known(kinds, p, PackageOption::Package)?;
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

    fn parse(words: &[&str]) -> Result<DhArgs, String> {
        DhArgs::parse(words).map_err(|e| e.to_string())
    }

    #[test]
    fn values_attached_or_in_the_next_word() {
        for words in [
            &["-p", "a"][..],
            &["-pa"],
            &["-p=a"],
            &["--package", "a"],
            &["--package=a"],
        ] {
            assert_eq!(parse(words).unwrap().packages, ["a"], "{words:?}");
        }
        let args = parse(&["-ipb", "-va", "-N", "c", "-O-x", "-O", "--y", "--", "-f"]).unwrap();
        assert!(args.indep && args.arch && args.verbose);
        assert_eq!(args.packages, ["b"]);
        assert_eq!(args.no_packages, ["c"]);
        assert_eq!(args.passthrough, ["-x", "--y"]);
        assert_eq!(args.file, Some(PathBuf::from("-f")));
        assert_eq!(parse(&["-p", "-"]).unwrap().packages, ["-"]);
        assert_eq!(parse(&["--package="]).unwrap().packages, [""]);
    }

    #[test]
    fn module_version_takes_a_value_only_when_one_follows() {
        let version = |words: &[&str]| parse(words).unwrap().module_version;
        assert_eq!(version(&["-V"]), Some(String::new()));
        assert_eq!(version(&["-V", "3.1"]), Some("3.1".into()));
        assert_eq!(version(&["-V3.1"]), Some("3.1".into()));
        assert_eq!(version(&["-V=3.1"]), Some("3.1".into()));
        assert_eq!(version(&["-V", "-i"]), Some(String::new()));
        let args = parse(&["-V", "--", "x.conf"]).unwrap();
        assert_eq!(args.module_version, Some(String::new()));
        assert_eq!(args.file, Some(PathBuf::from("x.conf")));
        assert_eq!(version(&[]), None);
    }

    #[test]
    fn problems_are_reported_as_before_in_the_order_met() {
        for (words, message) in [
            (
                &["--frobnicate=1"][..],
                "unexpected argument '--frobnicate' found",
            ),
            (&["-iz"], "unexpected argument '-z' found"),
            (&["-i=1"], "unexpected argument '-=' found"),
            (&["a", "b"], "unexpected argument 'b' found"),
            (
                &["-p"],
                "a value is required for '--package <PKG>' but none was supplied",
            ),
            (
                &["-p", "-i"],
                "a value is required for '--package <PKG>' but none was supplied",
            ),
            (
                &["-p", "--", "x"],
                "a value is required for '--package <PKG>' but none was supplied",
            ),
            // An unknown option wins over the missing value before it.
            (&["-p", "--frob"], "unexpected argument '--frob' found"),
            (
                &["-P", ""],
                "a value is required for '--tmpdir <DIR>' but none was supplied",
            ),
            (
                &[""],
                "a value is required for '[FILE]' but none was supplied",
            ),
            (
                &["-O"],
                "a value is required for '-O <OPTION>' but none was supplied",
            ),
            (
                &["--indep=1"],
                "unexpected value '1' for '--indep' found; no more were expected",
            ),
            (
                &["-v", "--verbose"],
                "the argument '--verbose' cannot be used multiple times",
            ),
            (
                &["-V", "-V"],
                "the argument '-V [<VERSION>]' cannot be used multiple times",
            ),
            // A value in the next word is checked when the next option comes, after the
            // option is known; an attached one at once.
            (
                &["-P", "a", "-P", "b", "--x"],
                "unexpected argument '--x' found",
            ),
            (
                &["-P", "a", "-P", "b", "-i"],
                "the argument '--tmpdir <DIR>' cannot be used multiple times",
            ),
            (
                &["-Pa", "-Pb", "--x"],
                "the argument '--tmpdir <DIR>' cannot be used multiple times",
            ),
            (&["--help"], "unexpected argument '--help' found"),
        ] {
            assert_eq!(parse(words).unwrap_err(), message, "{words:?}");
        }
    }

    #[test]
    fn invalid_utf8_is_refused_in_names_and_kept_in_paths() {
        let bad = || OsString::from_vec(vec![b'-', b'p', 0xff]);
        assert_eq!(
            DhArgs::parse([bad()]),
            Err(GetoptError::InvalidUtf8 {
                option: DhOption::Package
            })
        );
        let path = OsString::from_vec(vec![0xff]);
        let args = DhArgs::parse([OsString::from("-P"), path.clone()]).unwrap();
        assert_eq!(args.tmpdir, Some(PathBuf::from(path)));
    }

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
        // Anything but an unknown option leaves the whole list unapplied.
        let mut g = Gathered::default();
        assert!(!g.absorb_words(&["-i".to_string(), "-v".to_string(), "-v".to_string()]));
        assert!(g.picks.is_empty() && !g.verbose);
    }
}
