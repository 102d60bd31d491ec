//! dkms-mkdeb: a DKMS module source directory -> `<name>-dkms_<version>_all.deb`.

#[path = "common/cli.rs"]
mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use cli::{Generate, fail, package_error_line, start};
use dkms::deb::WrittenDeb;
use dkms::deb::{Compression, CompressionKind};
use dkms::kernel::{KernelRelease, Target, machine_arch};
use dkms::package::{self, DeclaredOptions, MkdebOptions, PackageError};

/// Make a Debian package of a DKMS kernel module source, without root, debhelper or a dkms tree.
///
/// SOURCE_DIR holds the module's dkms.conf, Makefile and sources. The package installs them
/// under /usr/src/<PACKAGE_NAME>-<PACKAGE_VERSION>/ and its maintainer scripts build and install
/// the module for every kernel with headers (through dkms-rs, or Debian's dkms where dkms-rs is
/// not installed), and remove it again when the package is removed.
///
/// The output is reproducible: all entries are owned by root, have normalised modes and the
/// mtime SOURCE_DATE_EPOCH (default: the newest mtime among the source files), so the same
/// source gives the same bytes on any machine, with any umask or thread count.
///
/// Examples:
///
///   dkms-mkdeb --maintainer 'Jane Doe <jane@example.org>' examples/hello
///
///   export DEBFULLNAME='Jane Doe' DEBEMAIL=jane@example.org
///   dkms-mkdeb -o out/ --revision 1 -Z zstd /usr/src/hello-0.1
///
///   dkms-mkdeb -k "$(uname -r)" -k OTHER-KERNEL examples/hello
///
/// With -k the module is first built for each kernel given (in a scratch dkms tree, against
/// /lib/modules/KERNEL/build), and the package also carries the built modules as a dkms
/// tarball, /usr/share/<package>/<name>-<version>.dkms.tar.gz: on a machine running one of
/// those kernels the postinst loads it and installs the module without compiling. Such a
/// package is <package>_<version>_<arch>.deb (amd64 for x86_64 modules), not _all.
///
///   dkms-mkdeb --binaries-only -k "$(uname -r)" examples/hello
///
/// makes hello-modules-<kernel>_0.1_<arch>.deb: the module alone, for that kernel.
///
///   dkms-mkdeb --source-package -o out/ examples/hello
///
/// makes the Debian source package instead: out/hello-dkms_0.1.dsc and its tarball, with a
/// debian/ dir (debhelper, Build-Depends: dh-sequence-dkms-rs) that builds the same package
/// (dpkg-source -x out/hello-dkms_0.1.dsc && cd hello-dkms-0.1 && dpkg-buildpackage -b).
#[derive(Parser, Debug)]
#[command(name = "dkms-mkdeb", version, verbatim_doc_comment)]
#[command(group(clap::ArgGroup::new("declared").multiple(true)))]
struct Cli {
    /// The module source: a directory holding dkms.conf.
    #[arg(value_name = "SOURCE_DIR", required_unless_present = "generate")]
    source_dir: Option<PathBuf>,

    /// Directory to write the .deb into.
    #[arg(short = 'o', long, value_name = "DIR", default_value = ".")]
    output_dir: PathBuf,

    /// Maintainer, as 'Full Name <email>'. Default: DEBFULLNAME and DEBEMAIL, else NAME and
    /// EMAIL, from the environment (as dch does).
    #[arg(long, value_name = "NAME <EMAIL>")]
    maintainer: Option<String>,

    /// Debian revision: the package version becomes PACKAGE_VERSION-REVISION.
    #[arg(long, value_name = "REVISION")]
    revision: Option<String>,

    /// Debian bug the changelog entry closes (repeatable): the ITP of a package meant for
    /// the archive. Without it, a first revision (-1) gets a lintian override of
    /// initial-upload-closes-no-bugs: a package made for a site has no ITP to close.
    #[arg(long, value_name = "BUG")]
    closes: Vec<String>,

    /// Package description: the first line is the synopsis, further lines the extended
    /// description. Default: one naming the module and saying what DKMS does with it.
    #[arg(long, value_name = "TEXT")]
    description: Option<String>,

    /// Binary package name. Default: PACKAGE_NAME-dkms, lowercased and with `_` as `-`
    /// (tp_smapi: tp-smapi-dkms), which must then be a Debian package name (lowercase
    /// letters, digits, + - .).
    #[arg(long, value_name = "NAME")]
    package_name: Option<String>,

    /// Directory of templates (control, postinst, prerm, changelog, copyright; for
    /// --source-package also dsc/control, dsc/rules, dsc/format and dsc/dsc) that replace the
    /// built-in ones file by file. They are minijinja templates; an unknown variable is an
    /// error.
    #[arg(long, value_name = "DIR")]
    templates: Option<PathBuf>,

    /// License of the module for the generated copyright file: a name from
    /// /usr/share/common-licenses (GPL-2, GPL-3, LGPL-2.1, BSD, Apache-2.0, MPL-2.0, ...).
    #[arg(long, value_name = "NAME", default_value = "GPL-2")]
    license: String,

    /// Ship this file as /usr/share/doc/<package>/copyright instead of generating one.
    #[arg(long, value_name = "FILE")]
    copyright: Option<PathBuf>,

    /// Compression of the package members: xz, gzip, zstd or none.
    #[arg(short = 'Z', long, value_name = "KIND", default_value = "xz")]
    compression: CompressionKind,

    /// Compression level (xz 0-9, default 6; gzip 1-9, default 9; zstd 1-19, default 3:
    /// the defaults of dpkg-deb).
    #[arg(short = 'z', long, value_name = "N")]
    level: Option<u32>,

    /// Compression threads (xz and zstd); 0 uses every core. The output is the same bytes
    /// for any number.
    #[arg(long, value_name = "N", default_value_t = 0)]
    threads: u32,

    /// Also carry the module prebuilt for this kernel (KERNEL or KERNEL/ARCH, ARCH as
    /// `uname -m` says it; repeatable). Its headers must be in /lib/modules/KERNEL/build.
    #[arg(short = 'k', long = "kernel", value_name = "KERNEL[/ARCH]")]
    kernels: Vec<String>,

    /// With -k: instead of the -dkms package, one <name>-modules-<kernel>_<version>_<arch>.deb
    /// per kernel holding only the built modules (in /lib/modules/<kernel>/updates/dkms/),
    /// as `dkms mkbmdeb` made: for machines without compiler, headers or DKMS.
    #[arg(long, requires = "kernels", conflicts_with = "declared")]
    binaries_only: bool,

    /// Make the Debian source package instead of the .deb: <package>_<version>.dsc and its
    /// tarballs, whose debian/ (control, rules with the dh-sequence-dkms-rs addon, changelog,
    /// copyright, source/format) builds the package dkms-mkdeb makes. Format 3.0 (native) with
    /// <package>_<version>.tar.gz, or, when the version has a Debian revision (--revision, or
    /// a '-' in PACKAGE_VERSION), 3.0 (quilt) with <package>_<upstream>.orig.tar.gz and
    /// <package>_<version>.debian.tar.gz. The output directory must be outside SOURCE_DIR.
    #[arg(long, conflicts_with_all = ["kernels", "binaries_only", "compression", "level", "threads", "declared"])]
    source_package: bool,

    /// The declarative file of control fields and files to install (one deb822 paragraph:
    /// Depends, Recommends, Suggests, Enhances, Conflicts, Breaks, Replaces, Provides,
    /// Architecture, Multi-Arch, Homepage, Section, Priority as in debian/control, and
    /// Install: lines 'SOURCE... DEST_DIR' or 'SOURCE => DEST'). Default:
    /// SOURCE_DIR/dkms-mkdeb.control when there is one (never shipped under /usr/src).
    /// Options below win over its fields (--install adds to its Install lines). A bad line
    /// stops with one error naming FILE:LINE, exit 8 (as a bad dkms.conf); a bad option, 1.
    #[arg(
        long,
        value_name = "FILE",
        group = "declared",
        help_heading = "Control fields and files"
    )]
    control: Option<PathBuf>,

    /// Also ship files outside /usr/src (repeatable): 'SOURCE... DEST_DIR' puts each SOURCE
    /// (a file or a directory, relative to the current directory) into DEST_DIR, as a
    /// debian/install line does; 'SOURCE => DEST' ships one file as DEST (dh-exec's rename).
    #[arg(
        long,
        value_name = "SOURCE... DEST_DIR",
        group = "declared",
        help_heading = "Control fields and files"
    )]
    install: Vec<String>,

    /// More dependencies, after dkms-rs | dkms (>= V); 'dkms (>= V)' raises that floor.
    #[arg(
        long,
        value_name = "RELATIONS",
        group = "declared",
        help_heading = "Control fields and files"
    )]
    depends: Option<String>,

    /// Recommends field, e.g. 'lttng-tools'.
    #[arg(
        long,
        value_name = "RELATIONS",
        group = "declared",
        help_heading = "Control fields and files"
    )]
    recommends: Option<String>,

    /// Suggests field, e.g. 'bumblebee'.
    #[arg(
        long,
        value_name = "RELATIONS",
        group = "declared",
        help_heading = "Control fields and files"
    )]
    suggests: Option<String>,

    /// Enhances field.
    #[arg(
        long,
        value_name = "RELATIONS",
        group = "declared",
        help_heading = "Control fields and files"
    )]
    enhances: Option<String>,

    /// Conflicts field.
    #[arg(
        long,
        value_name = "RELATIONS",
        group = "declared",
        help_heading = "Control fields and files"
    )]
    conflicts: Option<String>,

    /// Breaks field.
    #[arg(
        long,
        value_name = "RELATIONS",
        group = "declared",
        help_heading = "Control fields and files"
    )]
    breaks: Option<String>,

    /// Replaces field.
    #[arg(
        long,
        value_name = "RELATIONS",
        group = "declared",
        help_heading = "Control fields and files"
    )]
    replaces: Option<String>,

    /// Provides field, e.g. 'acpi-call' (versions as '(= V)' only).
    #[arg(
        long,
        value_name = "RELATIONS",
        group = "declared",
        help_heading = "Control fields and files"
    )]
    provides: Option<String>,

    /// Architecture: 'all' (the default) or one Debian architecture, e.g. amd64; with -k, the modules' own.
    #[arg(
        long,
        value_name = "ARCH",
        group = "declared",
        help_heading = "Control fields and files"
    )]
    architecture: Option<String>,

    /// Multi-Arch: same, foreign, allowed or no.
    #[arg(
        long,
        value_name = "VALUE",
        group = "declared",
        help_heading = "Control fields and files"
    )]
    multi_arch: Option<String>,

    /// Homepage: an http(s) URL.
    #[arg(
        long,
        value_name = "URL",
        group = "declared",
        help_heading = "Control fields and files"
    )]
    homepage: Option<String>,

    /// Section (default: kernel).
    #[arg(
        long,
        value_name = "SECTION",
        group = "declared",
        help_heading = "Control fields and files"
    )]
    section: Option<String>,

    /// Priority (default: optional).
    #[arg(
        long,
        value_name = "PRIORITY",
        group = "declared",
        help_heading = "Control fields and files"
    )]
    priority: Option<String>,

    /// Print this program's man page (man) or its bash or zsh completion script
    /// (complete-bash, complete-zsh), and exit.
    #[arg(long, value_name = "WHAT")]
    generate: Option<Generate>,
}

fn main() -> ExitCode {
    let cli = match start::<Cli>("dkms-mkdeb", |cli| cli.generate) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let fields: Vec<(&'static str, String)> = [
        ("Depends", cli.depends),
        ("Recommends", cli.recommends),
        ("Suggests", cli.suggests),
        ("Enhances", cli.enhances),
        ("Conflicts", cli.conflicts),
        ("Breaks", cli.breaks),
        ("Replaces", cli.replaces),
        ("Provides", cli.provides),
        ("Architecture", cli.architecture),
        ("Multi-Arch", cli.multi_arch),
        ("Homepage", cli.homepage),
        ("Section", cli.section),
        ("Priority", cli.priority),
    ]
    .into_iter()
    .filter_map(|(f, v)| v.map(|v| (f, v)))
    .collect();
    let opts = MkdebOptions {
        source_dir: cli.source_dir.unwrap_or_default(),
        output_dir: cli.output_dir,
        maintainer: cli.maintainer,
        revision: cli.revision,
        closes: cli.closes,
        description: cli.description,
        package_name: cli.package_name,
        templates: cli.templates,
        license: cli.license,
        copyright_file: cli.copyright,
        compression: Compression {
            kind: cli.compression,
            level: cli.level,
            threads: cli.threads,
        },
        source_date_epoch: None,
        no_exec: false,
        declared: DeclaredOptions {
            control_file: cli.control,
            fields,
            install: cli.install,
        },
    };
    let targets: Vec<Target> = cli
        .kernels
        .iter()
        .map(|k| match k.split_once('/') {
            Some((k, a)) => Target {
                kernel: KernelRelease(k.to_string()),
                arch: a.to_string(),
            },
            None => Target {
                kernel: KernelRelease(k.clone()),
                arch: machine_arch(),
            },
        })
        .collect();
    if cli.source_package {
        return match package::mkdsc(&opts) {
            Ok(written) => {
                println!("{}", written.dsc.display());
                ExitCode::SUCCESS
            }
            Err(e) => fail("dkms-mkdeb", &package_error_line(&e), e.exit_code()),
        };
    }
    let result = if targets.is_empty() {
        package::mkdeb(&opts).map(|deb| vec![deb])
    } else {
        prebuilt(&opts, &targets, cli.binaries_only)
    };
    match result {
        Ok(written) => {
            for deb in written {
                println!("{}", deb.path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail("dkms-mkdeb", &package_error_line(&e), e.exit_code()),
    }
}

/// `-k`: build in a scratch tree (kept when the build fails: the error names its make.log),
/// then package.
fn prebuilt(
    opts: &MkdebOptions,
    targets: &[Target],
    binaries_only: bool,
) -> Result<Vec<WrittenDeb>, PackageError> {
    let scratch = package::prebuilt_scratch()?;
    let kcflags =
        package::reproducible_kcflags(scratch.path(), std::env::var("KCFLAGS").ok().as_deref());
    // SAFETY: dkms-mkdeb has one thread until the build starts below; make inherits KCFLAGS.
    unsafe { std::env::set_var("KCFLAGS", kcflags) };
    match package::build_prebuilt(scratch.path(), &opts.source_dir, targets) {
        Ok(prebuilt) if binaries_only => package::mkbmdeb(opts, &prebuilt),
        Ok(prebuilt) => package::mkdeb_with_prebuilt(opts, Some(&prebuilt)).map(|deb| vec![deb]),
        // Only a failed make leaves something to read (the make.log the error names).
        Err(e @ PackageError::BuildFailed { .. }) => {
            let _ = scratch.keep();
            Err(e)
        }
        Err(e) => Err(e),
    }
}
