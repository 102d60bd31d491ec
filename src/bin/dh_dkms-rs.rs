//! dh_dkms-rs: the debhelper command that makes a debian/ source package's packages -dkms ones.
//!
//! The library parses the options as debhelper does (`DhArgs::parse`); clap only describes them
//! for `--help`, `--version` and `--generate`, which are this binary's own.

#[path = "common/cli.rs"]
mod cli;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cli::{Generate, fail, start};
use dkms::debhelper::{self, DhArgs, DhEnv, GetoptError, Invocation, Streams, TOOL_NAME};

/// Install dkms.conf and add dkms-rs's maintainer scripts and Depends to DKMS packages
/// (debhelper command; the dkms-rs counterpart of dh_dkms).
///
/// For each package acted on that has debian/<package>.dkms (debian/dkms for the first package
/// of debian/control), or for the first package when FILE is given:
///
///   - installs the dkms.conf into debian/<package>/usr/src/<PACKAGE_NAME>-<PACKAGE_VERSION>/;
///     debian/<package>.dkms is either that dkms.conf itself (it assigns PACKAGE_NAME) or
///     names it, relative to the source package's top directory or debian/tmp;
///   - adds the postinst and prerm snippets of dkms-mkdeb's packages to
///     debian/<package>.postinst.debhelper and .prerm.debhelper (dh_installdeb puts them at
///     #DEBHELPER#): on configure, dkms-postinst builds and installs the module (Debian's
///     /usr/lib/dkms/common.postinst where dkms-rs is not installed); on remove, upgrade or
///     deconfigure the module version is removed from every kernel;
///   - adds 'dkms-rs | dkms (>= 2.1.0.0)' (>= 3.0.3-4~ with BUILD_EXCLUSIVE_CONFIG) to
///     ${misc:Depends} in debian/<package>.substvars, once.
///
/// A package acted on named *-dkms that gets no dkms.conf stops the build (exit code 4).
///
/// Targets of Debian's dh_dkms in debian/rules (override_dh_dkms, execute_before_dh_dkms,
/// execute_after_dh_dkms, each also -arch/-indep) are run, as dh would run them around
/// dh_dkms, when dh_dkms-rs runs as dh's sequence step: before its own work, after, or in its
/// place for the packages an override covers, as 'debian/rules TARGET' with a dh_dkms first on
/// PATH that is dh_dkms-rs (so 'dh_dkms -V', '-p', '-- FILE' keep their meaning). Each such
/// target is warned about with its line (name it override_dh_dkms-rs instead), and so are
/// recipes calling dh_dkms by name elsewhere, and a 'Depends: dkms' without dkms-rs in
/// debian/control (it makes dpkg-gencontrol drop 'dkms-rs | dkms'). If Debian's dh_dkms already
/// added its scripts to a package, dh_dkms-rs stops rather than add its own beside them.
///
/// Like dh_dkms, this command is not idempotent: run dh_prep between two runs, or the snippets
/// are added to the maintainer scripts twice. Options not listed here fail, except those dh
/// passes with -O, which are ignored when unknown. DH_VERBOSE, DH_NO_ACT, DH_OPTIONS and
/// DH_INTERNAL_OPTIONS are read as by every debhelper command.
///
/// Examples:
///
///   # debian/rules, with Build-Depends: dh-sequence-dkms-rs (or dh $@ --with dkms-rs):
///   %:
///   	dh $@
///
///   # dkms.conf says PACKAGE_VERSION="#MODULE_VERSION#": take the version from debian/changelog
///   override_dh_dkms-rs:
///   	dh_dkms-rs -V
///
///   # the upstream dkms.conf, for one package only, without debian/<package>.dkms
///   dh_dkms-rs -p hello-dkms -- src/dkms.conf
// The examples are debian/rules lines: make wants a tab before a recipe, so they keep theirs.
#[allow(clippy::tabs_in_doc_comments)]
#[derive(clap::Parser, Debug)]
#[command(
    name = "dh_dkms-rs",
    version,
    disable_version_flag = true,
    verbatim_doc_comment
)]
struct Cli {
    #[command(flatten)]
    options: DhOptions,

    /// Print version.
    #[arg(long, action = clap::ArgAction::Version)]
    version: (),

    /// Print this program's man page (man) or its bash or zsh completion script
    /// (complete-bash, complete-zsh), and exit.
    #[arg(long, value_name = "WHAT")]
    generate: Option<Generate>,
}

/// The options `DhArgs::parse` reads, described for `--help` and the man page (the
/// `help_describes_the_options_the_library_parses` test keeps the two in step).
#[derive(clap::Args, Debug)]
// Never read: the library parses the command line.
#[allow(dead_code)]
struct DhOptions {
    /// Act on the package PKG (repeatable). Default: every package of debian/control that is
    /// built on this architecture.
    #[arg(short = 'p', long = "package", value_name = "PKG")]
    packages: Vec<String>,

    /// Do not act on the package PKG (repeatable), even if -p or -i/-a selects it.
    #[arg(short = 'N', long = "no-package", value_name = "PKG")]
    no_packages: Vec<String>,

    /// Act on all architecture-independent packages (Architecture: all).
    #[arg(short = 'i', long)]
    indep: bool,

    /// Act on all architecture-dependent packages built on this architecture.
    #[arg(short = 'a', long)]
    arch: bool,

    /// Use DIR as the package build directory instead of debian/<package> (one package only).
    #[arg(short = 'P', long, value_name = "DIR")]
    tmpdir: Option<PathBuf>,

    /// Say what is done (DH_VERBOSE=1 does the same).
    #[arg(short = 'v', long)]
    verbose: bool,

    /// Change nothing; with -v, say what would be done (DH_NO_ACT=1 does the same).
    #[arg(long)]
    no_act: bool,

    /// An option from dh: applied when dh_dkms-rs knows it, ignored otherwise.
    #[arg(
        short = 'O',
        value_name = "OPTION",
        allow_hyphen_values = true,
        hide_short_help = true
    )]
    passthrough: Vec<String>,

    /// Replace #MODULE_VERSION# in dkms.conf with VERSION; -V alone: the upstream version of
    /// debian/changelog (without epoch and Debian revision).
    #[arg(
        short = 'V',
        value_name = "VERSION",
        num_args = 0..=1,
        default_missing_value = "",
        require_equals = false
    )]
    module_version: Option<String>,

    /// Install FILE as dkms.conf of the first package acted on, instead of the one
    /// debian/<package>.dkms names.
    #[arg(value_name = "FILE")]
    file: Option<PathBuf>,
}

/// This binary's own options, unknown to the library's parser.
const OWN_OPTIONS: [&str; 4] = ["-h", "--help", "--version", "--generate"];

fn main() -> ExitCode {
    let args = match DhArgs::parse(std::env::args_os().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            let own = matches!(&e, GetoptError::Unexpected { argument }
                if OWN_OPTIONS.contains(&argument.as_str()));
            if !own {
                return fail(TOOL_NAME, &e, e.exit_code());
            }
            // clap answers them, or reports what is wrong around them, as it always did.
            return match start::<Cli>(TOOL_NAME, |cli| cli.generate) {
                Err(code) => code,
                Ok(_) => fail(TOOL_NAME, &e, e.exit_code()),
            };
        }
    };
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    let mut streams = Streams {
        out: &mut out,
        err: &mut err,
    };
    // Like every dh_* command, it works in the source package it is run in: the current
    // directory, as the empty path, so that messages name files as debhelper does (bad.conf).
    // Started as `dh_dkms` by a debian/rules target that dh_dkms-rs runs (the link it puts
    // first on PATH), it is that target's dh_dkms.
    let as_dh_dkms = std::env::args_os()
        .next()
        .map(PathBuf::from)
        .and_then(|a| a.file_name().map(|n| n == "dh_dkms"))
        .unwrap_or(false);
    let invocation = std::env::current_exe()
        .ok()
        .map(|exe| Invocation { exe, as_dh_dkms });
    let env = DhEnv::from_process();
    match debhelper::run_as(Path::new(""), args, &env, invocation.as_ref(), &mut streams) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => fail(TOOL_NAME, &e, e.exit_code()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use dkms::debhelper::getopt::{DhOption, Takes};

    /// Every option clap describes is one the library parses, with the same names and the same
    /// way of taking a value, and the other way round.
    #[test]
    fn help_describes_the_options_the_library_parses() {
        let mut cmd = Cli::command();
        cmd.build();
        let described: Vec<_> = cmd
            .get_arguments()
            .filter(|a| !["help", "version", "generate"].contains(&a.get_id().as_str()))
            .map(|a| {
                let takes = match (a.get_num_args().map(|n| n.min_values()), a.get_action()) {
                    (_, clap::ArgAction::SetTrue) => Takes::Nothing,
                    (Some(0), _) => Takes::OptionalValue,
                    _ if a.is_allow_hyphen_values_set() => Takes::AnyValue,
                    _ => Takes::Value,
                };
                (a.get_short(), a.get_long(), takes)
            })
            .collect();
        let parsed: Vec<_> = DhOption::ALL
            .iter()
            .map(|o| (o.short(), o.long(), o.takes()))
            .collect();
        assert_eq!(described, parsed);
    }
}
