//! `dkms-rs`: the dkms-3-compatible command line (argument parsing -> library call -> exit code).

#[path = "common/cli.rs"]
mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::builder::{PossibleValue, PossibleValuesParser};
use clap::{Parser, ValueEnum};
use cli::{Generate, package_error_line, start_from};
use dkms::action::{Flags, Session};
use dkms::conf::{ReadBy, ShowFormat};
use dkms::console::Console;
use dkms::error::ActionError;
use dkms::framework::Framework;
use dkms::kernel::{KernelRelease, Target, machine_arch};
use dkms::package::{
    PackageError, mkbmdeb_in_tree, mkdeb_in_tree, mkdeb_in_tree_prebuilt, mkdsc_in_tree,
};
use dkms::tarball::TarballContent;
use dkms::tree::{ModuleVersion, Roots, StatusQuery, Tree};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Action {
    Add,
    Build,
    Install,
    Uninstall,
    Unbuild,
    Remove,
    Status,
    Autoinstall,
    Match,
    /// `conf show PATH`: dkms.conf as dkms-rs resolves it.
    Conf,
    /// The `<module>-dkms` .deb of an added module, into `<dkmstree>/<m>/<v>/deb/`; with `-k`
    /// or `--all` it also carries the modules built for those kernels.
    Mkdeb,
    /// The Debian source package of an added module, into `<dkmstree>/<m>/<v>/dsc/`:
    /// `<module>-dkms_<version>.dsc` and its tarball, whose debian/ (debhelper and the
    /// dh-sequence-dkms-rs addon) builds the package mkdeb makes (`dkms-mkdeb --source-package`).
    Mkdsc,
    /// A dkms tarball of the module: source and the modules built for `-k` (dkms's layout).
    Mktarball,
    /// Load a dkms tarball (from `mktarball`, dkms or dkms-rs): source, prebuilt modules, add.
    Ldtarball,
    /// `<module>-modules-<kernel>_<version>_<arch>.deb` for each `-k` (or `--all`): the built
    /// modules only, into `<dkmstree>/<m>/<v>/bmdeb/`.
    Mkbmdeb,
    /// Kernel hook (/etc/kernel/preinst.d/dkms): before a kernel package of the same version
    /// is unpacked over this one, uninstall and unbuild its AUTOINSTALL modules, so that
    /// kernel_postinst rebuilds them. Exactly one -k.
    #[value(name = "kernel_preinst")]
    KernelPreinst,
    /// Kernel hook (/etc/kernel/postinst.d/dkms, header_postinst.d/dkms): build and install
    /// every AUTOINSTALL module for the new kernel, in parallel; exit 11 if any failed.
    #[value(name = "kernel_postinst")]
    KernelPostinst,
    /// Kernel hook (/etc/kernel/prerm.d/dkms): the kernel is going; uninstall and unbuild
    /// every module built for it, depmod once; exit 14 naming the modules that failed.
    #[value(name = "kernel_prerm")]
    KernelPrerm,
    /// Make the MOK pair that built modules are signed with, when the key or the certificate
    /// is missing (framework.conf's mok_signing_key and mok_certificate, `$kernelver` being
    /// -k's or the running kernel; default /var/lib/dkms/mok.key and mok.pub): a self-signed
    /// RSA 2048 certificate for code signing, by the openssl command, as dkms 3.2.2. An
    /// existing pair is kept. Enroll mok.pub with `mokutil --import` for Secure Boot. Exit 1
    /// when there is no pair after.
    #[value(name = "generate_mok")]
    GenerateMok,
}

impl Action {
    /// Whether the action writes to the tree (and so runs under its lock); every action
    /// says, so a new one must.
    fn changes_tree(self) -> bool {
        match self {
            Action::Status | Action::Conf => false,
            Action::Add
            | Action::Build
            | Action::Install
            | Action::Uninstall
            | Action::Unbuild
            | Action::Remove
            | Action::Autoinstall
            | Action::Match
            | Action::Mkdeb
            | Action::Mkdsc
            | Action::Mktarball
            | Action::Ldtarball
            | Action::Mkbmdeb
            | Action::KernelPreinst
            | Action::KernelPostinst
            | Action::KernelPrerm
            // The pair the builds sign with (and make when missing) under the same lock.
            | Action::GenerateMok => true,
        }
    }
}

/// Build and install kernel modules with DKMS: a drop-in for dkms 3.2.2 on the same tree.
///
/// The actions, messages, status lines and exit codes are dkms 3.2.2's (Debian 13); the tree
/// (/var/lib/dkms) is the one Debian 12's dkms 3.0.10 reads too, so either reads what
/// dkms-rs did and the other way round. Builds for several kernels or modules
/// run in parallel (-j); commands on one tree take turns (a lock), the second one waiting.
/// Settings come from /etc/dkms/framework.conf and /etc/dkms/framework.conf.d/*.conf (--etcdir
/// names another directory for these, no-autoinstall and the module overrides).
///
/// framework.conf's build_user (dkms-rs's own setting) is the user that copies the source,
/// applies the patches and runs PRE_BUILD, make, strip and POST_BUILD, in a build directory it
/// owns, with a clean environment (PATH, the locale, ARCH, CROSS_COMPILE, KCFLAGS, KBUILD_BUILD_*,
/// SOURCE_DATE_EPOCH; HOME=/nonexistent); signing, storing into the tree, installing and depmod
/// stay root. Unset: the dkms-rs system user the package creates, or root where that user does
/// not exist (a source checkout); build_user=root: as root, as dkms. A user that does not exist
/// is one line naming the file and the user, exit 1. Run by a non-root user, dkms-rs builds as
/// that user.
///
/// dkms.conf is shell. dkms-rs reads declarative files itself and hands the others to bash,
/// which runs their shell code, as dkms does; `conf show` says which (`reader=native` or
/// `reader=bash` with `needs_shell=FILE:LINE: WHY`), and --no-exec refuses such files.
///
/// Exit codes: 3 already added/built (or not added), 4 dkms.conf missing or a broken module,
/// 5 a patch missing or with '..', 6 install, patch or depmod failure, 7 module not produced,
/// 8 bad dkms.conf, 10 make failed, 11 autoinstall failure, 13 missing BUILD_DEPENDS, 14
/// kernel_preinst/kernel_prerm failed for a module, 21 no kernel headers, 77 BUILD_EXCLUSIVE
/// (not for this kernel); a failed PRE_BUILD or POST_BUILD script, its own exit code.
///
/// Options and the actions they are for. An option given to an action it is not for is an
/// error (one line naming both, exit 2, as dkms 3.2.2 exits for an unknown option), where
/// dkms 3.2.2 ignores it; --dkmstree, --sourcetree, --installtree, --etcdir, -q, --verbose
/// are for every action; add, build, install, autoinstall and the kernel hooks refuse --all
/// with dkms 3.2.2's own message:
///
///   -m, -v: add, build, install, uninstall, unbuild, remove, status, match, mkdeb, mkdsc,
///       mktarball, mkbmdeb
///   -k: add, build, install, uninstall, unbuild, remove, status, autoinstall, match, mkdeb,
///       mkbmdeb, mktarball, ldtarball, kernel_preinst, kernel_postinst, kernel_prerm,
///       generate_mok
///   -a: add, build, install, uninstall, unbuild, remove, status, autoinstall, match, mkdeb,
///       mkbmdeb, mktarball, ldtarball, kernel_preinst, kernel_postinst, kernel_prerm,
///       generate_mok, conf
///   --all: uninstall, unbuild, remove, mkdeb, mkbmdeb, mktarball, add, build, install,
///       autoinstall, kernel_preinst, kernel_postinst, kernel_prerm
///   --force: add, build, install, autoinstall, match, kernel_postinst, ldtarball
///   --force-version-override: install, autoinstall, match, kernel_postinst
///   -j: build, install, autoinstall, match, kernel_postinst
///   --kernelsourcedir, --config, --no-exec: add, build, install, uninstall, unbuild, remove,
///       status, autoinstall, match, conf, mkdeb, mkdsc, mktarball, ldtarball, mkbmdeb,
///       kernel_preinst, kernel_postinst, kernel_prerm
///   --no-depmod: build, install, uninstall, unbuild, remove, autoinstall, match,
///       kernel_preinst, kernel_postinst, kernel_prerm
///   -c: add, build, install, uninstall, unbuild, remove, match, mkdeb, mkdsc, mkbmdeb,
///       mktarball, ldtarball
///   --templatekernel: match
///   --kernel: conf
///   --format: conf, status
///   --archive: mktarball, ldtarball
///   --binaries-only, --source-only: mktarball
///   --maintainer: mkdeb, mkdsc, mkbmdeb
///   ARGS: add, build, install, uninstall, unbuild, remove, status, match, mkdeb, mkdsc,
///       mktarball, mkbmdeb, ldtarball, conf
///
/// The kernel hooks (/etc/kernel/*.d/dkms, /usr/lib/kernel/install.d/40-dkms.install) call
/// kernel_preinst, kernel_postinst and kernel_prerm, as dkms 3.2.2's do.
///
/// While make runs: on a terminal (stderr, TERM not dumb, NO_COLOR unset) a status line
/// redrawn every second names the module, kernel, elapsed time, make.log's path and size and
/// the last Kbuild target; elsewhere a line on stderr once the build has run a minute, then
/// once a minute at most (DKMS_RS_HEARTBEAT=SECONDS sets the period, 0 turns it off). A failed
/// build names its make.log as dkms 3.2.2 does; on a terminal, the log's first compiler
/// errors with their context follow.
///
/// Examples:
///
///   dkms-rs add -m hello -v 0.1
///   dkms-rs build hello/0.1 -k "$(uname -r)"
///   dkms-rs install hello/0.1 -k "$(uname -r)"
///   dkms-rs status
///   dkms-rs autoinstall -k "$(uname -r)"
///   dkms-rs kernel_postinst -k "$(uname -r)"
///   dkms-rs kernel_prerm -k OLD-KERNEL
///   dkms-rs remove hello/0.1 --all
///   dkms-rs mkdeb -m hello -v 0.1
///   dkms-rs mkdeb hello/0.1 -k "$(uname -r)"
///   dkms-rs mkdsc -m hello -v 0.1
///   dkms-rs mkbmdeb hello/0.1 -k "$(uname -r)"
///   dkms-rs mktarball hello/0.1 -k "$(uname -r)" --binaries-only
///   dkms-rs ldtarball /var/lib/dkms/hello/0.1/tarball/hello-0.1-kernel*.dkms.tar.gz
///   dkms-rs conf show --kernel "$(uname -r)" /usr/src/hello-0.1
///   dkms-rs --no-exec autoinstall -k "$(uname -r)"
///   dkms-rs generate_mok
///
/// -k takes any kernel release under /lib/modules (`ls /lib/modules`); build and install
/// take it repeated, and `-k KERNEL/ARCH` names the architecture too (default `uname -m`).
#[derive(Debug, Parser)]
#[command(name = "dkms-rs", disable_version_flag = true, verbatim_doc_comment)]
struct Cli {
    /// What to do.
    #[arg(value_enum)]
    action: Option<Action>,
    /// `<module>/<version>`, a source directory holding dkms.conf, or for `conf`: `show PATH`.
    args: Vec<String>,
    /// Module name, or `<module>/<version>`.
    #[arg(short = 'm', long = "module")]
    module: Option<String>,
    /// Module version.
    #[arg(short = 'v')]
    module_version: Option<String>,
    /// Kernel release, or `<kernel>/<arch>`; repeatable.
    #[arg(short = 'k', long = "kernelver")]
    kernels: Vec<String>,
    /// Architecture; one for all kernels, or one per `-k`.
    #[arg(short = 'a', long = "arch")]
    arches: Vec<String>,
    /// Every kernel the module is built for (remove, unbuild, uninstall).
    #[arg(long)]
    all: bool,
    /// Rebuild/reinstall even if done; skip the version sanity check.
    #[arg(long)]
    force: bool,
    /// Install even when the kernel has the same or a newer version of the module.
    #[arg(long)]
    force_version_override: bool,
    /// Make jobs, and builds run at once (default: number of CPUs; 0 = unlimited make -j).
    #[arg(short = 'j')]
    jobs: Option<usize>,
    /// Kernel headers to build against instead of /lib/modules/<k>/build.
    #[arg(long)]
    kernelsourcedir: Option<PathBuf>,
    /// The dkms tree (default /var/lib/dkms).
    #[arg(long)]
    dkmstree: Option<PathBuf>,
    /// Where module sources live (default /usr/src).
    #[arg(long)]
    sourcetree: Option<PathBuf>,
    /// Where modules are installed (default /lib/modules).
    #[arg(long)]
    installtree: Option<PathBuf>,
    /// framework.conf, framework.conf.d, no-autoinstall and the module overrides
    /// `<module>*.conf` (default /etc/dkms).
    #[arg(long, value_name = "DIR")]
    etcdir: Option<PathBuf>,
    /// Do not run depmod after install/uninstall.
    #[arg(long)]
    no_depmod: bool,
    /// Use this dkms.conf instead of the module's own.
    #[arg(short = 'c')]
    conf: Option<PathBuf>,
    /// The kernel config to read instead of the headers' (include/config/auto.conf or
    /// .config): the signing hash, BUILD_EXCLUSIVE_CONFIG, dkms.conf's `$kernel_config`.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Never run a dkms.conf as shell: a dkms.conf or /etc/dkms/<module>*.conf override that
    /// needs bash to be read (command substitution, shell syntax, ...) is refused with one line
    /// naming the file, line and reason, and exit 8, instead of being sourced by bash. For
    /// every action that reads a dkms.conf (add, build, install, status, autoinstall,
    /// ldtarball, mkdeb, conf show, ...); make and the module's PRE_BUILD/POST_* scripts still
    /// run when a build or install does.
    #[arg(long)]
    no_exec: bool,
    /// Print nothing.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Print the commands run.
    #[arg(long)]
    verbose: bool,
    /// For `match`: the kernel whose installed modules to match.
    #[arg(long)]
    templatekernel: Option<String>,
    /// For `conf show`: the kernel to resolve dkms.conf for.
    #[arg(long)]
    kernel: Option<String>,
    /// For `conf show` (kv, json; default kv) and `status` (text, json, plain; default text):
    /// the output format. `status --format json` is one JSON array, one object per line
    /// inside it; `--format plain` is one line per record, its fields separated by a tab.
    /// Each record has the fields module, version, kernel, arch (absent for a module that
    /// is only added or broken), state (added, built, installed, broken, or incomplete: built
    /// with a module file missing), original_modules (dkms's "(Original modules exist)"),
    /// modules_missing ("(Built modules are missing in the kernel modules folder)"), differs
    /// ("(Differences between built and installed modules)"), installed_version (the version
    /// of the module installed for that kernel and arch, this one or another; absent when
    /// none), make_log (<dkmstree>/<m>/<v>/build/make.log, left by a build of this version
    /// that failed: absent when there is none), in this order. In json an absent value is
    /// null and the three flags are booleans; in plain an absent value is `-`, the flags are
    /// yes or no, and backslash, tab, newline and carriage return in a value are written
    /// \\, \t, \n and \r (a value that is `-` itself, \-). The text lines and their
    /// stderr messages stay dkms 3.2.2's.
    #[arg(
        long,
        value_parser = PossibleValuesParser::new(format_values())
    )]
    format: Option<String>,
    /// For `mktarball`: the tarball to write (a bare name goes to `<m>/<v>/tarball/`); for
    /// `ldtarball`: the tarball to load (or give it as the argument).
    #[arg(long, value_name = "FILE")]
    archive: Option<PathBuf>,
    /// For `mktarball`: modules and dkms.conf only, no source.
    #[arg(long, conflicts_with = "source_only")]
    binaries_only: bool,
    /// For `mktarball`: the source only, no modules.
    #[arg(long)]
    source_only: bool,
    /// For `mkdeb`, `mkdsc` and `mkbmdeb`: `Name <email>` (default: DEBFULLNAME and DEBEMAIL,
    /// as for dch).
    #[arg(long)]
    maintainer: Option<String>,
    /// Print the version.
    #[arg(short = 'V', long)]
    version: bool,
    /// Print this program's man page (man) or its bash or zsh completion script
    /// (complete-bash, complete-zsh), and exit.
    #[arg(long, value_name = "WHAT")]
    generate: Option<Generate>,
}

/// What `status --format` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatusFormat {
    Text,
    Json,
    Plain,
}

/// The values `--format` takes, each with the action it is for.
fn format_values() -> Vec<PossibleValue> {
    let conf = |f: ShowFormat| format!("conf show: {}", f.about());
    vec![
        PossibleValue::new("kv").help(conf(ShowFormat::Kv)),
        PossibleValue::new("json").help(format!(
            "{}; status: one JSON array of records",
            conf(ShowFormat::Json)
        )),
        PossibleValue::new("text").help("status: dkms 3.2.2's lines (the default)"),
        PossibleValue::new("plain").help("status: one tab-separated record a line"),
    ]
}

/// Which actions each option is for, in the order `--help` lists them; the options not
/// here (--dkmstree, --sourcetree, --installtree, --etcdir, -q, --verbose) are for every
/// action. A given option that is not for the action is an error (exit 2, dkms 3.2.2's for
/// an unknown option); dkms 3.2.2 ignores them, but a caller who gives one expects it to
/// mean something (`status --format json`).
fn option_actions(cli: &Cli) -> Vec<(&'static str, bool, &'static [Action])> {
    use Action::*;
    // The actions that name one module version (or a source dir).
    const MODULE: &[Action] = &[
        Add, Build, Install, Uninstall, Unbuild, Remove, Status, Match, Mkdeb, Mkdsc, Mktarball,
        Mkbmdeb,
    ];
    const KERNEL: &[Action] = &[
        Add,
        Build,
        Install,
        Uninstall,
        Unbuild,
        Remove,
        Status,
        Autoinstall,
        Match,
        Mkdeb,
        Mkbmdeb,
        Mktarball,
        Ldtarball,
        KernelPreinst,
        KernelPostinst,
        KernelPrerm,
        GenerateMok,
    ];
    const ARCH: &[Action] = &[
        Add,
        Build,
        Install,
        Uninstall,
        Unbuild,
        Remove,
        Status,
        Autoinstall,
        Match,
        Mkdeb,
        Mkbmdeb,
        Mktarball,
        Ldtarball,
        KernelPreinst,
        KernelPostinst,
        KernelPrerm,
        GenerateMok,
        Conf,
    ];
    // add, build, install, autoinstall and the kernel hooks refuse --all with dkms 3.2.2's
    // own message and exit code (run_test.sh checks `autoinstall --all`'s).
    const ALL: &[Action] = &[
        Uninstall,
        Unbuild,
        Remove,
        Mkdeb,
        Mkbmdeb,
        Mktarball,
        Add,
        Build,
        Install,
        Autoinstall,
        KernelPreinst,
        KernelPostinst,
        KernelPrerm,
    ];
    // What dkms.conf's `$kernel_source_dir`, `$kernel_config` and the reader depend on: every
    // action that reads a dkms.conf.
    const READS_CONF: &[Action] = &[
        Add,
        Build,
        Install,
        Uninstall,
        Unbuild,
        Remove,
        Status,
        Autoinstall,
        Match,
        Conf,
        Mkdeb,
        Mkdsc,
        Mktarball,
        Ldtarball,
        Mkbmdeb,
        KernelPreinst,
        KernelPostinst,
        KernelPrerm,
    ];
    const BUILDS: &[Action] = &[Build, Install, Autoinstall, Match, KernelPostinst];
    const INSTALLS: &[Action] = &[Install, Autoinstall, Match, KernelPostinst];
    // build --force of an installed module uninstalls it first (dkms 3.2.2's do_unbuild).
    const DEPMOD: &[Action] = &[
        Build,
        Install,
        Uninstall,
        Unbuild,
        Remove,
        Autoinstall,
        Match,
        KernelPreinst,
        KernelPostinst,
        KernelPrerm,
    ];
    const ONE_CONF: &[Action] = &[
        Add, Build, Install, Uninstall, Unbuild, Remove, Match, Mkdeb, Mkdsc, Mkbmdeb, Mktarball,
        Ldtarball,
    ];
    const FORCE: &[Action] = &[
        Add,
        Build,
        Install,
        Autoinstall,
        Match,
        KernelPostinst,
        Ldtarball,
    ];
    const ARGS: &[Action] = &[
        Add, Build, Install, Uninstall, Unbuild, Remove, Status, Match, Mkdeb, Mkdsc, Mktarball,
        Mkbmdeb, Ldtarball, Conf,
    ];
    vec![
        ("-m", cli.module.is_some(), MODULE),
        ("-v", cli.module_version.is_some(), MODULE),
        ("-k", !cli.kernels.is_empty(), KERNEL),
        ("-a", !cli.arches.is_empty(), ARCH),
        ("--all", cli.all, ALL),
        ("--force", cli.force, FORCE),
        (
            "--force-version-override",
            cli.force_version_override,
            INSTALLS,
        ),
        ("-j", cli.jobs.is_some(), BUILDS),
        (
            "--kernelsourcedir",
            cli.kernelsourcedir.is_some(),
            READS_CONF,
        ),
        ("--no-depmod", cli.no_depmod, DEPMOD),
        ("-c", cli.conf.is_some(), ONE_CONF),
        ("--config", cli.config.is_some(), READS_CONF),
        ("--no-exec", cli.no_exec, READS_CONF),
        ("--templatekernel", cli.templatekernel.is_some(), &[Match]),
        ("--kernel", cli.kernel.is_some(), &[Conf]),
        ("--format", cli.format.is_some(), &[Conf, Status]),
        ("--archive", cli.archive.is_some(), &[Mktarball, Ldtarball]),
        ("--binaries-only", cli.binaries_only, &[Mktarball]),
        ("--source-only", cli.source_only, &[Mktarball]),
        (
            "--maintainer",
            cli.maintainer.is_some(),
            &[Mkdeb, Mkdsc, Mkbmdeb],
        ),
        ("ARGS", !cli.args.is_empty(), ARGS),
    ]
}

/// An action's name on the command line.
fn action_name(action: Action) -> String {
    action
        .to_possible_value()
        .map_or_else(String::new, |v| v.get_name().to_owned())
}

/// The first option of the command line that is not for `action` (see [`option_actions`]).
fn check_options(cli: &Cli, action: Action) -> Result<(), ActionError> {
    for (option, given, actions) in option_actions(cli) {
        if given && !actions.contains(&action) {
            let option = match option {
                "ARGS" => format!("the argument {:?}", cli.args[0]),
                _ => option.to_owned(),
            };
            return Err(ActionError::OptionNotForAction {
                option,
                action: action_name(action),
                for_actions: names(actions),
            });
        }
    }
    Ok(())
}

/// `--format VALUE` given to `action`, for which it is not: it is `for_action`'s.
fn format_not_for(value: &str, action: Action, for_action: Action) -> ActionError {
    ActionError::OptionNotForAction {
        option: format!("--format {value}"),
        action: action_name(action),
        for_actions: action_name(for_action),
    }
}

/// `add, build, ...`.
fn names(actions: &[Action]) -> String {
    actions
        .iter()
        .map(|a| action_name(*a))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The command line with the words that are not actions taken out of the action's place,
/// and those words: dkms 3.2.2 takes an action wherever it stands, and any other word as the
/// module (`dkms hello/0.1 build`, `dkms frobnicate`).
fn split_words(mut argv: Vec<std::ffi::OsString>) -> (Vec<std::ffi::OsString>, Vec<String>) {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let mut words = Vec::new();
    while let Err(e) = Cli::try_parse_from(&argv) {
        let (
            ErrorKind::InvalidValue,
            Some(ContextValue::String(arg)),
            Some(ContextValue::String(word)),
        ) = (
            e.kind(),
            e.get(ContextKind::InvalidArg),
            e.get(ContextKind::InvalidValue),
        )
        else {
            break;
        };
        let Some(at) = (arg == "[ACTION]")
            .then(|| {
                argv.iter()
                    .skip(1)
                    .position(|a| a.to_str() == Some(word.as_str()))
            })
            .flatten()
        else {
            break;
        };
        words.push(word.clone());
        argv.remove(at + 1);
    }
    (argv, words)
}

fn main() -> ExitCode {
    let (argv, words) = split_words(std::env::args_os().collect());
    let mut cli = match start_from::<Cli>("dkms-rs", argv, |cli| cli.generate) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    cli.args.splice(0..0, words);
    if cli.version {
        println!("{}", dkms::console::DKMS_VERSION);
        return ExitCode::SUCCESS;
    }
    let console = Console {
        program: "dkms-rs",
        quiet: cli.quiet,
        verbose: cli.verbose,
    };
    match run(cli, console) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if !matches!(e, ActionError::Reported { .. }) {
                e.report(&console);
            }
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}

fn run(cli: Cli, console: Console) -> Result<(), ActionError> {
    // dkms 3.2.2 refuses an unknown option before it reads anything.
    if let Some(action) = cli.action {
        check_options(&cli, action)?;
    }
    // dkms 3.2.2 reads the distribution (os-release) before anything else.
    if !["/etc/os-release", "/usr/lib/os-release"]
        .iter()
        .any(|f| std::path::Path::new(f).exists())
    {
        return Err(ActionError::NoOsRelease);
    }
    let roots = Roots {
        dkms_tree: cli.dkmstree.clone(),
        source_tree: cli.sourcetree.clone(),
        install_tree: cli.installtree.clone(),
        kernel_source_dir: cli.kernelsourcedir.clone(),
        etc_dir: cli.etcdir.clone(),
    };
    let etc = roots.etc_dir();
    let framework = Framework::read(&etc).map_err(|e| dkms::error::io_error(&etc, e))?;
    let mut tree = Tree::from_framework(&framework, roots);
    tree.no_exec = cli.no_exec;
    tree.kernel_config = cli.config.clone();
    let mut session = Session::new(tree, &framework, console);
    // dkms 3.2.2: `parallel_jobs` from the environment, then framework.conf's, then -j.
    let env_jobs = std::env::var("parallel_jobs")
        .ok()
        .and_then(|v| v.trim().parse().ok());
    session.settings.jobs = dkms::jobs::limit(cli.jobs.or(framework.parallel_jobs).or(env_jobs));
    session.flags = Flags {
        force: cli.force,
        force_version_override: cli.force_version_override,
        no_depmod: cli.no_depmod,
        conf_override: cli.conf.clone(),
    };
    let Some(action) = cli.action else {
        // dkms 3.2.2: the error, its usage, and exit 0.
        console.error(&"Unknown action specified: \"\"", "");
        print!("{}", usage());
        return Ok(());
    };
    // Here, once for the whole command: what it reads before a verb (the targets of --all,
    // a source dir's name) must still hold when the verb runs; the verbs' own lock is this one.
    let lock = action.changes_tree().then(|| session.lock()).transpose()?;
    let (mut module, mut version, source_dir) = module_args(&cli);
    let result = match action {
        Action::Ldtarball => {
            let archive = cli
                .archive
                .clone()
                .or_else(|| cli.args.first().map(PathBuf::from));
            let Some(archive) = archive else {
                return Err(ActionError::Usage(
                    "usage: ldtarball FILE or ldtarball --archive FILE".into(),
                ));
            };
            let target = targets(&cli)?.remove(0);
            session.ldtarball(&archive, &target).map(|_| ())
        }
        Action::Conf => {
            let [show, path] = cli.args.as_slice() else {
                return Err(ActionError::Usage("usage: dkms-rs conf show PATH".into()));
            };
            if show != "show" {
                return Err(ActionError::Usage("usage: dkms-rs conf show PATH".into()));
            }
            // The newest kernel with headers (else the running one), this machine's arch.
            let target = Target {
                kernel: KernelRelease(
                    cli.kernel
                        .clone()
                        .unwrap_or_else(dkms::conf::show::default_kernel),
                ),
                arch: cli.arches.first().cloned().unwrap_or_else(machine_arch),
            };
            let ctx = session.tree.resolve_context(&target, None);
            let format = match cli.format.as_deref() {
                None | Some("kv") => ShowFormat::Kv,
                Some("json") => ShowFormat::Json,
                Some(other) => return Err(format_not_for(other, Action::Conf, Action::Status)),
            };
            let shown = dkms::conf::show(std::path::Path::new(path), &ctx, format)?;
            if let ReadBy::Bash(Some(why)) = &shown.read_by
                && !cli.quiet
            {
                dkms::console::err_line(&format!("dkms-rs: {why}: its shell code is run"));
            }
            print!("{}", shown.text);
            // Invalid: the facts are printed, the complaints are the error (exit 8).
            match dkms::conf::resolve::all_problems(shown.problems) {
                Some(problem) => Err(problem.into()),
                None => Ok(()),
            }
        }
        Action::Status => {
            let format = match cli.format.as_deref() {
                None | Some("text") => StatusFormat::Text,
                Some("json") => StatusFormat::Json,
                Some("plain") => StatusFormat::Plain,
                Some(other) => return Err(format_not_for(other, Action::Status, Action::Conf)),
            };
            // Unlike the other actions, no kernel means every kernel, not the running one.
            let mut filters: Vec<(Option<String>, Option<String>)> = if cli.kernels.is_empty() {
                vec![(None, cli.arches.first().cloned())]
            } else {
                kernel_args(&cli)
                    .into_iter()
                    .map(|(k, a)| (Some(k), a))
                    .collect()
            };
            // A kernel given twice is listed once (dkms 3.0.10 prints its lines twice).
            let mut seen = std::collections::BTreeSet::new();
            filters.retain(|f| seen.insert(f.clone()));
            let mut not_run = Vec::new();
            let mut pending: Option<String> = None;
            for (kernel, arch) in &filters {
                let status = session.tree.status(&StatusQuery {
                    module: module.as_deref(),
                    version: version.as_deref(),
                    kernel: kernel.as_deref(),
                    arch: arch.as_deref(),
                });
                // The lines in one write (stdout writes a line at a time), cut only where
                // stderr has a message to put between them.
                let mut lines = String::new();
                for entry in status.entries {
                    let line = match format {
                        StatusFormat::Text => entry.to_string(),
                        StatusFormat::Plain => entry.plain(),
                        // `[`, then one object a line, `,` ending all but the last, `]`.
                        StatusFormat::Json => match pending.replace(entry.json()) {
                            Some(object) => format!("{object},"),
                            None => "[".to_owned(),
                        },
                    };
                    if !lines.is_empty() {
                        lines.push('\n');
                    }
                    lines.push_str(&line);
                    if entry.state == dkms::tree::ModuleState::Broken {
                        dkms::console::out_line(&std::mem::take(&mut lines));
                        // dkms 3.2.2's do_status, right after the line.
                        console.error(
                            &format!(
                                "{}: Missing the module source directory or the symbolic link pointing to it.\nManual intervention is required!",
                                entry.module
                            ),
                            "",
                        );
                    }
                }
                if !lines.is_empty() {
                    dkms::console::out_line(&lines);
                }
                not_run.extend(status.not_run.iter().map(ToString::to_string));
            }
            if format == StatusFormat::Json {
                match pending {
                    Some(object) => {
                        dkms::console::out_line(&object);
                        dkms::console::out_line("]");
                    }
                    None => dkms::console::out_line("[]"),
                }
            }
            // --no-exec: what could not be judged, one line per file, after what could.
            let mut said = std::collections::BTreeSet::new();
            not_run.retain(|line| said.insert(line.clone()));
            for line in &not_run {
                console.error(line, "");
            }
            if not_run.is_empty() {
                Ok(())
            } else {
                Err(ActionError::Reported { code: 8 })
            }
        }
        Action::Autoinstall => {
            // dkms 3.2.2's have_one_kernel: no --all, one -k at most.
            if cli.all {
                return Err(ActionError::AllNotSupported {
                    action: "autoinstall",
                });
            }
            if cli.kernels.len() > 1 {
                return Err(ActionError::MultipleKernels {
                    action: "autoinstall",
                });
            }
            let targets = if cli.kernels.is_empty() && session.settings.autoinstall_all_kernels {
                let arch = machine_arch();
                session
                    .tree
                    .kernels_with_headers()
                    .into_iter()
                    .map(|kernel| Target {
                        kernel,
                        arch: arch.clone(),
                    })
                    .collect()
            } else {
                targets(&cli)?
            };
            session.autoinstall(&targets)
        }
        Action::KernelPreinst | Action::KernelPostinst | Action::KernelPrerm => {
            let name = match action {
                Action::KernelPreinst => "kernel_preinst",
                Action::KernelPostinst => "kernel_postinst",
                _ => "kernel_prerm",
            };
            // dkms 3.2.2's have_one_kernel: no --all, and exactly one -k (no default kernel).
            if cli.all {
                return Err(ActionError::AllNotSupported { action: name });
            }
            if cli.kernels.len() != 1 {
                return Err(ActionError::OneKernel { action: name });
            }
            let target = targets(&cli)?.remove(0);
            match action {
                Action::KernelPreinst => session.kernel_preinst(&target),
                Action::KernelPostinst => session.kernel_postinst(&target),
                _ => session.kernel_prerm(&target),
            }
        }
        Action::GenerateMok => session.generate_mok(&targets(&cli)?.remove(0)),
        Action::Match => {
            let Some(template) = &cli.templatekernel else {
                return Err(ActionError::Usage(
                    "usage: match --templatekernel=<kernel> -k <kernel> [module]".into(),
                ));
            };
            let targets = targets(&cli)?;
            let [target] = targets.as_slice() else {
                return Err(ActionError::Usage(
                    "match does not support multiple kernel version parameters".into(),
                ));
            };
            session.match_kernel(&KernelRelease(template.clone()), target, module.as_deref())
        }
        Action::Add
        | Action::Build
        | Action::Install
        | Action::Uninstall
        | Action::Unbuild
        | Action::Remove
        | Action::Mkdeb
        | Action::Mkdsc
        | Action::Mkbmdeb
        | Action::Mktarball => {
            if cli.all && matches!(action, Action::Add | Action::Build | Action::Install) {
                return Err(ActionError::Usage(format!(
                    "the action {action:?} does not support the --all parameter"
                )));
            }
            let first_target = targets(&cli)?.remove(0);
            if let Some(dir) = source_dir.filter(|_| module.is_none()) {
                let mv = session.add_source_tree(&dir, &first_target)?;
                if action == Action::Add {
                    return Ok(());
                }
                if matches!(action, Action::Build | Action::Install) {
                    // dkms 3.2.2's do_build after its add_module.
                    console.say("");
                }
                module = Some(mv.module);
                version = Some(mv.version);
            }
            let (Some(module), Some(version)) = (module, version) else {
                // dkms 3.2.2's check_module_args.
                let action = format!("{action:?}").to_lowercase();
                return Err(ActionError::Usage(format!(
                    "Arguments <module> and <module-version> are not specified.\n\
                     Usage: {action} <module>/<module-version> or\n       \
                     {action} -m <module>/<module-version> or\n       \
                     {action} -m <module> -v <module-version>"
                )));
            };
            let mv = ModuleVersion { module, version };
            let targets = if cli.all {
                session.built_targets(&mv)?
            } else if matches!(action, Action::Build | Action::Install) {
                targets_as_given(&cli)?
            } else {
                targets(&cli)?
            };
            match action {
                Action::Add => session.add(&mv, &first_target),
                Action::Build => session.build(&mv, &targets),
                Action::Install => session.install(&mv, &targets).and_then(|()| {
                    session.post_transaction(&targets.first().unwrap_or(&first_target).kernel)
                }),
                Action::Uninstall => session.uninstall(&mv, &targets).and_then(|()| {
                    session.post_transaction(&targets.first().unwrap_or(&first_target).kernel)
                }),
                Action::Unbuild => session.unbuild(&mv, &targets).and_then(|()| {
                    session.post_transaction(&targets.first().unwrap_or(&first_target).kernel)
                }),
                Action::Mkdeb => {
                    // With -k or --all: the modules built for them travel in the package.
                    let deb = if cli.kernels.is_empty() && !cli.all {
                        mkdeb_in_tree(&session.tree, &mv, cli.maintainer.clone())
                    } else {
                        mkdeb_in_tree_prebuilt(&session.tree, &mv, cli.maintainer.clone(), &targets)
                    }
                    .map_err(|e| reported(&console, e))?;
                    console.say(&format!("{}", deb.display()));
                    Ok(())
                }
                Action::Mkdsc => {
                    let dsc = mkdsc_in_tree(&session.tree, &mv, cli.maintainer.clone())
                        .map_err(|e| reported(&console, e))?;
                    console.say(&format!("{}", dsc.display()));
                    Ok(())
                }
                Action::Mkbmdeb => {
                    let debs =
                        mkbmdeb_in_tree(&session.tree, &mv, cli.maintainer.clone(), &targets)
                            .map_err(|e| reported(&console, e))?;
                    for deb in debs {
                        console.say(&format!("{}", deb.display()));
                    }
                    Ok(())
                }
                Action::Mktarball => {
                    let content = if cli.binaries_only {
                        TarballContent::BinariesOnly
                    } else if cli.source_only {
                        TarballContent::SourceOnly
                    } else {
                        TarballContent::Full
                    };
                    session
                        .mktarball(&mv, &targets, content, cli.archive.as_deref(), None)
                        .map(|_| ())
                }
                _ => session.remove(&mv, &targets).and_then(|()| {
                    session.post_transaction(&targets.first().unwrap_or(&first_target).kernel)
                }),
            }
        }
    };
    // The tree as this command leaves it needs no search by the next (see TreeLock::done).
    if let Some(lock) = &lock
        && result.is_ok()
    {
        lock.done();
    }
    result
}

/// Module and version from `-m M[/V]`, `-v V`, or a positional `M/V`; or a source directory.
fn module_args(cli: &Cli) -> (Option<String>, Option<String>, Option<PathBuf>) {
    let mut module = None;
    let mut version = cli.module_version.clone();
    let mut source_dir = None;
    let mut take = |s: &str| match s.split_once('/') {
        Some((m, v)) if !m.is_empty() => {
            module = Some(m.to_string());
            version = Some(v.to_string());
        }
        _ => module = Some(s.to_string()),
    };
    if let Some(m) = &cli.module {
        take(m);
    }
    if cli.action != Some(Action::Conf) {
        for arg in &cli.args {
            let path = std::path::Path::new(arg);
            if path.is_dir() && path.join("dkms.conf").is_file() {
                source_dir = Some(path.to_path_buf());
            } else if arg.ends_with("dkms.conf") && path.is_file() {
                source_dir = path.parent().map(|p| p.to_path_buf());
            } else if cli.module.is_none() {
                take(arg);
            }
        }
    }
    (module, version, source_dir)
}

/// The `-k K[/A]` arguments, each with its arch as dkms's `setup_kernels_arches` pairs them:
/// `/A`, else the i-th `-a`, else the first `-a`; `None` when no arch is given.
fn kernel_args(cli: &Cli) -> Vec<(String, Option<String>)> {
    cli.kernels
        .iter()
        .enumerate()
        .map(|(i, arg)| {
            let (kernel, arch) = match arg.split_once('/') {
                Some((k, a)) => (k, Some(a.to_string())),
                None => (arg.as_str(), None),
            };
            let arch = arch.or_else(|| cli.arches.get(i).or(cli.arches.first()).cloned());
            (kernel.to_string(), arch)
        })
        .collect()
}

/// A package that could not be made, printed here on one line, as the already-reported
/// failure the rest of the command's errors go through.
fn reported(console: &Console, e: PackageError) -> ActionError {
    console.error(&package_error_line(&e), "");
    ActionError::Reported {
        code: e.exit_code(),
    }
}

/// dkms 3.2.2's show_usage, `$0` being this program as it was found (PATH searched for a bare
/// name, as bash does for a script).
fn usage() -> String {
    let arg0 = std::env::args_os()
        .next()
        .map(PathBuf::from)
        .unwrap_or_default();
    let program = if arg0.components().count() == 1 {
        std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .map(|dir| dir.join(&arg0))
            .find(|p| p.is_file())
            .unwrap_or(arg0)
    } else {
        arg0
    };
    format!(
        "Usage: {} [action] [options]\n\
         \x20 [action]  = {{ add | remove | build | unbuild | install | uninstall | match |\n\
         \x20              autoinstall | mktarball | ldtarball | status | generate_mok |\n\
         \x20              kernel_preinst | kernel_postinst | kernel_prerm }}\n\
         \x20 [options] = [-m module] [-v module-version] [-k kernel-version] [-a arch]\n\
         \x20             [-c dkms.conf-location] [-q] [--force] [--force-version-override] [--all]\n\
         \x20             [--templatekernel=kernel] [--directive='cli-directive=cli-value']\n\
         \x20             [--config=kernel-include/config/auto.conf-location] [--archive=tarball-location]\n\
         \x20             [--kernelsourcedir=source-location] [--rpm_safe_upgrade]\n\
         \x20             [--dkmstree path] [--sourcetree path] [--installtree path]\n\
         \x20             [--binaries-only] [--source-only] [--verbose]\n\
         \x20             [--no-depmod] [--modprobe-on-install] [-j number] [--version] [--help]\n",
        program.display()
    )
}

fn running_kernel() -> Result<KernelRelease, ActionError> {
    KernelRelease::running()
        .map_err(|e| dkms::error::io_error(std::path::Path::new("/proc/sys/kernel/osrelease"), e))
}

/// The (kernel, arch) pairs of the command line, as dkms's `setup_kernels_arches` makes them:
/// the running kernel when no `-k` is given, `uname -m` when no arch.
fn targets(cli: &Cli) -> Result<Vec<Target>, ActionError> {
    let mut kernels = kernel_args(cli);
    if kernels.is_empty() {
        kernels.push((running_kernel()?.0, cli.arches.first().cloned()));
    }
    if cli.arches.len() > 1 && cli.arches.len() != kernels.len() {
        return Err(ActionError::Usage(
            "if more than one arch is given, give as many kernel versions (1:1)".into(),
        ));
    }
    let targets: Vec<Target> = kernels
        .into_iter()
        .map(|(kernel, arch)| Target {
            kernel: KernelRelease(kernel),
            arch: arch.unwrap_or_else(machine_arch),
        })
        .collect();
    // `-k K -k K` is one target (two builds of it would share one build directory).
    Ok(dkms::action::distinct(&targets))
}

/// [`targets`] as given, a kernel given twice kept twice: build and install say "already
/// built" for each, as dkms 3.2.2's loop over its kernels does (their plan builds it once).
fn targets_as_given(cli: &Cli) -> Result<Vec<Target>, ActionError> {
    let distinct = targets(cli)?;
    let given = kernel_args(cli);
    if given.len() <= distinct.len() {
        return Ok(distinct);
    }
    Ok(given
        .into_iter()
        .map(|(kernel, arch)| Target {
            kernel: KernelRelease(kernel),
            arch: arch.unwrap_or_else(machine_arch),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines of `--help` that say which actions each option is for, from
    /// [`option_actions`] (options that share their actions on one line), wrapped as written.
    fn option_lines() -> String {
        let cli = Cli::try_parse_from(["dkms-rs"]).expect("no options");
        let mut groups: Vec<(Vec<&str>, &[Action])> = Vec::new();
        for (option, _, actions) in option_actions(&cli) {
            match groups.iter_mut().find(|(_, a)| *a == actions) {
                Some((options, _)) => options.push(option),
                None => groups.push((vec![option], actions)),
            }
        }
        let mut text = String::new();
        for (options, actions) in groups {
            let mut line = format!("  {}:", options.join(", "));
            for name in actions.iter().map(|a| action_name(*a)) {
                if line.len() + 1 + name.len() + 1 > 92 {
                    text.push_str(&line);
                    text.push('\n');
                    line = "     ".to_owned();
                }
                line = format!("{line} {name},");
            }
            text.push_str(line.trim_end_matches(','));
            text.push('\n');
        }
        text
    }

    #[test]
    fn help_says_which_actions_each_option_is_for() {
        use clap::CommandFactory;
        let about = Cli::command()
            .get_long_about()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let lines = option_lines();
        assert!(
            about.contains(&lines),
            "the --help table is stale; it is:\n{lines}"
        );
    }
}
