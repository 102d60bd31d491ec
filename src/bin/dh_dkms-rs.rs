//! dh_dkms-rs: the debhelper command that makes packages of a debian/ source DKMS packages.

use std::process::ExitCode;

use clap::Parser;
use dkms::cli::{Generate, fail, start};
use dkms::debhelper::{self, Console, DhArgs, DhEnv};

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
#[derive(Parser, Debug)]
#[command(
    name = "dh_dkms-rs",
    version,
    disable_version_flag = true,
    verbatim_doc_comment
)]
struct Cli {
    #[command(flatten)]
    args: DhArgs,

    /// Print version.
    #[arg(long, action = clap::ArgAction::Version)]
    version: (),

    /// Print the man page or a bash completion script, and exit.
    #[arg(long, value_name = "WHAT", hide = true)]
    generate: Option<Generate>,
}

fn main() -> ExitCode {
    let cli = match start::<Cli>("dh_dkms-rs", |cli| cli.generate) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    let mut console = Console {
        out: &mut out,
        err: &mut err,
    };
    match debhelper::run(cli.args, &DhEnv::from_process(), &mut console) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => fail("dh_dkms-rs", &e, e.exit_code()),
    }
}
