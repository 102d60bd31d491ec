//! What every binary shares: `--generate man|complete-bash|complete-zsh` from its clap
//! definition (as ripgrep does, so man pages never drift from `--help`), and the one-line error
//! convention.

// Included by every binary (`#[path]`), each using the part it needs.
#![allow(dead_code)]

use std::io::Write;

/// What `--generate` writes to stdout.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Generate {
    /// The roff man page (the file under `man/` is this output).
    Man,
    /// A bash completion script.
    CompleteBash,
    /// A zsh completion script (`#compdef`, for a directory of `$fpath`).
    CompleteZsh,
}

/// The name that makes a page or a completion script be about `dkms` itself: dkms-rs run
/// through the engine package's `/usr/sbin/dkms` link (debian/rules runs it so for dkms.8).
const DKMS: &str = "dkms";

/// `cmd` under the name it was run by, when that is `dkms` (and then in section 8, as Debian's
/// dkms.8, since it lives in /usr/sbin); else `cmd` unchanged.
fn as_called(cmd: clap::Command) -> (clap::Command, &'static str) {
    let called = std::env::args_os()
        .next()
        .map(std::path::PathBuf::from)
        .and_then(|p| p.file_name().map(|n| n == DKMS));
    if called == Some(true) {
        (cmd.name(DKMS).bin_name(DKMS), "8")
    } else {
        (cmd, "1")
    }
}

/// Write `what` for the command `cmd` to `out`.
pub fn generate(
    what: Generate,
    mut cmd: clap::Command,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let section;
    (cmd, section) = as_called(cmd);
    let shell = match what {
        Generate::Man => return clap_mangen::Man::new(cmd).section(section).render(out),
        Generate::CompleteBash => clap_complete::Shell::Bash,
        Generate::CompleteZsh => clap_complete::Shell::Zsh,
    };
    let name = cmd.get_name().to_string();
    clap_complete::generate(shell, &mut cmd, name, out);
    Ok(())
}

/// Print `program: error: message` on one line of stderr and return dkms's exit `code`.
pub fn fail(program: &str, message: &dyn std::fmt::Display, code: i32) -> std::process::ExitCode {
    eprintln!("{program}: error: {message}");
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// Parse the command line. `--help` and `--version` print as clap prints them; a usage error
/// becomes one line (clap's message without its usage block) and exit code 2.
pub fn parse<C: clap::Parser>(program: &str) -> Result<C, std::process::ExitCode> {
    use clap::error::ErrorKind;
    match C::try_parse() {
        Ok(cli) => Ok(cli),
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) =>
        {
            let _ = e.print();
            Err(std::process::ExitCode::SUCCESS)
        }
        Err(e) => {
            let text = e.render().to_string();
            let message = one_line(&text);
            let message = message.strip_prefix("error: ").unwrap_or(&message);
            Err(fail(program, &message, 2))
        }
    }
}

/// Parse the command line and answer `--generate`, which every binary has. `Err` is the exit
/// code of a process that is done: help, version, a usage error or a generated page.
pub fn start<C: clap::Parser>(
    program: &str,
    generate_of: fn(&C) -> Option<Generate>,
) -> Result<C, std::process::ExitCode> {
    let cli = parse::<C>(program)?;
    match generate_of(&cli) {
        None => Ok(cli),
        Some(what) => Err(match generate(what, C::command(), &mut std::io::stdout()) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => fail(program, &e, 1),
        }),
    }
}

/// The first paragraph of a clap error, folded into one line.
fn one_line(text: &str) -> String {
    text.split("\n\n")
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// A package error as the binaries say it: each setting named by the option that sets it
/// (the library names settings, not options), with the option that mends it.
pub fn package_error_line(e: &dkms::package::PackageError) -> String {
    use dkms::package::{PackageError, Setting};
    match e {
        PackageError::BadOption {
            setting,
            value,
            reason,
        } => {
            let (flag, hint) = match setting {
                Setting::Maintainer => ("--maintainer", ""),
                Setting::License => ("--license", " with --copyright FILE"),
                Setting::PackageName => ("--package-name", ""),
                Setting::Revision => ("--revision", ""),
                Setting::Kernels => ("-k", ""),
                Setting::SourceDateEpoch => ("SOURCE_DATE_EPOCH", ""),
            };
            format!("{flag} {value:?}: {reason}{hint}")
        }
        PackageError::BadField {
            field: "PACKAGE_NAME",
            ..
        } => format!("{e} (choose one with --package-name)"),
        PackageError::Template(t @ dkms::templates::TemplateError::Unknown { .. }) => {
            format!("--templates {t}")
        }
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn clap_errors_fold_into_one_line() {
        let text = "error: the following required arguments were not provided:\n  <SOURCE_DIR>\n\nUsage: dkms-mkdeb <SOURCE_DIR>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            one_line(text),
            "error: the following required arguments were not provided: <SOURCE_DIR>"
        );
    }
}
