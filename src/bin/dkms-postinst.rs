//! `dkms-postinst`: the maintainer-script hook of -dkms packages (argument parsing -> library
//! call -> exit code).

#[path = "common/cli.rs"]
mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use cli::{Generate, fail, start};
use dkms::console::Console;
use dkms::error::ActionError;
use dkms::kernel::KernelRelease;
use dkms::postinst::Hook;
use dkms::tree::ModuleVersion;
use dkms::tree::Roots;

/// Build, install and remove the module of a -dkms package from its maintainer scripts.
///
/// The postinst of a package made by dkms-mkdeb runs `dkms-postinst configure` when this
/// program is installed, and Debian's /usr/lib/dkms/common.postinst otherwise; its prerm runs
/// `dkms-postinst remove`. `configure` does what common.postinst does, with the dkms-rs core:
/// add the module from /usr/src/NAME-VERSION (loading the package's prebuilt modules from
/// /usr/share/PACKAGE/NAME-VERSION.dkms.tar.gz first, when it ships them: kernels they were
/// built for get them without compiling), then build and install it for the running
/// kernel and the newest installed one (every kernel under /lib/modules when the running
/// kernel is not installed, as in a chroot; every kernel with autoinstall_all_kernels in
/// /etc/dkms/framework.conf). Kernels without headers and BUILD_EXCLUSIVE mismatches are
/// skipped with a message. /etc/dkms/no-autoinstall turns configure off.
///
/// Running configure twice does nothing the second time. On an upgrade (PREVIOUS given)
/// older versions of the module left in the tree are removed.
///
/// Exit codes are common.postinst's, which are dkms's: 0 done (or skipped), 10 a build failed
/// (make.log path printed; the package stays unconfigured, as with common.postinst),
/// 8 bad dkms.conf, 6 install or depmod failure. A failed build's error shows make.log's first
/// compiler errors with their context, and the log's path.
///
/// While make runs: on a terminal (stderr, TERM not dumb, NO_COLOR unset) a status line
/// names the module, kernel, elapsed time, make.log's path and size and the last Kbuild
/// target; elsewhere a line on stderr once the build has run a minute, then once a minute at
/// most (DKMS_RS_HEARTBEAT=SECONDS sets the period, 0 turns it off).
///
/// Examples:
///
///   dkms-postinst configure hello 0.1
///   dkms-postinst configure hello 0.2 0.1-1
///   dkms-postinst remove hello 0.1
///   dkms-postinst --dkmstree /tmp/t/tree --sourcetree /tmp/t/src configure hello 0.1
#[derive(Debug, Parser)]
#[command(name = "dkms-postinst", version, verbatim_doc_comment)]
struct Cli {
    #[command(subcommand)]
    command: Option<Step>,
    /// The dkms tree (default: framework.conf's dkms_tree, /var/lib/dkms).
    #[arg(long, global = true, value_name = "DIR")]
    dkmstree: Option<PathBuf>,
    /// Where module sources live (default /usr/src).
    #[arg(long, global = true, value_name = "DIR")]
    sourcetree: Option<PathBuf>,
    /// Where modules are installed and kernels are found (default /lib/modules).
    #[arg(long, global = true, value_name = "DIR")]
    installtree: Option<PathBuf>,
    /// Kernel headers to build against instead of /lib/modules/<k>/build.
    #[arg(long, global = true, value_name = "DIR")]
    kernelsourcedir: Option<PathBuf>,
    /// framework.conf, framework.conf.d, no-autoinstall and module overrides (default /etc/dkms).
    #[arg(long, global = true, value_name = "DIR")]
    etcdir: Option<PathBuf>,
    /// Where the package's prebuilt-module tarball NAME-VERSION.dkms.tar.gz is (default:
    /// /usr/share/$DPKG_MAINTSCRIPT_PACKAGE, set by dpkg for maintainer scripts).
    #[arg(long, global = true, value_name = "DIR")]
    tarball_root: Option<PathBuf>,
    /// The kernel to treat as running (default: uname -r), e.g. when preparing an image.
    #[arg(long, global = true, value_name = "KERNEL")]
    running_kernel: Option<String>,
    /// Print the commands run.
    #[arg(long, global = true)]
    verbose: bool,
    /// Print this program's man page (man) or its bash or zsh completion script
    /// (complete-bash, complete-zsh), and exit.
    #[arg(long, value_name = "WHAT")]
    generate: Option<Generate>,
}

#[derive(Debug, Subcommand)]
enum Step {
    /// postinst configure: add, build and install the module (common.postinst).
    Configure {
        /// The module name (dkms.conf PACKAGE_NAME).
        name: String,
        /// The module version (dkms.conf PACKAGE_VERSION).
        version: String,
        /// The package version configured before (postinst's $2); empty on a first install.
        previous: Option<String>,
    },
    /// prerm remove/upgrade/deconfigure: remove the module version from every kernel.
    Remove {
        /// The module name.
        name: String,
        /// The module version.
        version: String,
    },
}

fn main() -> ExitCode {
    let cli = match start::<Cli>("dkms-postinst", |cli| cli.generate) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let Some(step) = cli.command else {
        return fail(
            "dkms-postinst",
            &"no step given: configure NAME VERSION [PREVIOUS] or remove NAME VERSION",
            2,
        );
    };
    let roots = Roots {
        dkms_tree: cli.dkmstree,
        source_tree: cli.sourcetree,
        install_tree: cli.installtree,
        kernel_source_dir: cli.kernelsourcedir,
        etc_dir: cli.etcdir,
    };
    let console = Console {
        program: "dkms-postinst",
        quiet: false,
        verbose: cli.verbose,
    };
    let tarball_root = cli.tarball_root;
    let result =
        Hook::open(roots, cli.running_kernel.map(KernelRelease), console).and_then(|mut hook| {
            if tarball_root.is_some() {
                hook.tarball_root = tarball_root;
            }
            match step {
                Step::Configure {
                    name,
                    version,
                    previous,
                } => hook.configure(
                    &ModuleVersion {
                        module: name,
                        version,
                    },
                    previous.as_deref(),
                ),
                Step::Remove { name, version } => hook.remove(&ModuleVersion {
                    module: name,
                    version,
                }),
            }
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // Already printed by the job that failed (with the make.log path).
        Err(ActionError::Reported { code }) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => fail("dkms-postinst", &e, e.exit_code()),
    }
}
