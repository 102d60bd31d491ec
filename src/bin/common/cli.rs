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
        Generate::Man => return man_page(cmd, section, out),
        Generate::CompleteBash => clap_complete::Shell::Bash,
        Generate::CompleteZsh => clap_complete::Shell::Zsh,
    };
    let name = cmd.get_name().to_string();
    clap_complete::generate(shell, &mut cmd, name, out);
    Ok(())
}

/// The man page: clap_mangen's, with a SYNOPSIS of our own (clap_mangen writes `-v ` for
/// `-v VERSION`: no argument names).
fn man_page(mut cmd: clap::Command, section: &str, out: &mut dyn Write) -> std::io::Result<()> {
    cmd.build();
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .section(section)
        .render(&mut page)?;
    let page = String::from_utf8_lossy(&page);
    const HEADING: &str = ".SH SYNOPSIS\n";
    let spliced = page.find(HEADING).and_then(|at| {
        let body = at + HEADING.len();
        let next = body + page[body..].find("\n.SH ")? + 1;
        Some(format!(
            "{}{}{}",
            &page[..body],
            synopsis(&cmd),
            &page[next..]
        ))
    });
    out.write_all(spliced.as_deref().unwrap_or(&page).as_bytes())
}

/// Text for a roff line: `-` as the minus sign options are written with, `\` and the quote
/// escaped (as clap_mangen's roff crate does).
fn roff_escape(text: &str) -> String {
    text.replace('\\', "\\e")
        .replace('-', "\\-")
        .replace('\'', "\\*(Aq")
}

/// The SYNOPSIS body in roff: every visible option in bold with its argument's name in
/// italics, `[ ]` around what is optional, `...` after what repeats, options before operands
/// (man-pages(7)); not hyphenated, not justified. `cmd` is built (values' arity known).
fn synopsis(cmd: &clap::Command) -> String {
    use clap::ArgAction;
    let bold = |t: &str| format!("\\fB{}\\fR", roff_escape(t));
    let italic = |t: &str| format!("\\fI{}\\fR", roff_escape(t));
    let value_of = |arg: &clap::Arg| {
        let name = arg.get_value_names().map_or_else(
            || arg.get_id().as_str().to_uppercase(),
            |names| {
                names
                    .iter()
                    .map(|n| n.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            },
        );
        if name.contains(' ') {
            format!("\\*(Aq{}\\*(Aq", italic(&name))
        } else {
            italic(&name)
        }
    };
    let mut words = vec![bold(cmd.get_bin_name().unwrap_or(cmd.get_name()))];
    let options = cmd.get_arguments().filter(|a| !a.is_positional());
    for arg in options
        .chain(cmd.get_positionals())
        .filter(|a| !a.is_hide_set())
    {
        let repeats = matches!(arg.get_action(), ArgAction::Append | ArgAction::Count)
            || (arg.is_positional() && arg.get_num_args().is_some_and(|n| n.max_values() > 1));
        let mut word = if arg.is_positional() {
            value_of(arg)
        } else {
            let mut flag = match (arg.get_short(), arg.get_long()) {
                (Some(s), Some(l)) => {
                    format!("{}|{}", bold(&format!("-{s}")), bold(&format!("--{l}")))
                }
                (Some(s), None) => bold(&format!("-{s}")),
                (None, Some(l)) => bold(&format!("--{l}")),
                (None, None) => continue,
            };
            if arg.get_action().takes_values() {
                let optional = arg.get_num_args().is_some_and(|n| n.min_values() == 0);
                flag = if optional {
                    format!("{flag} [{}]", value_of(arg))
                } else {
                    format!("{flag} {}", value_of(arg))
                };
            }
            flag
        };
        if !arg.is_required_set() {
            word = format!("[{word}]");
        }
        if repeats {
            word.push_str("...");
        }
        words.push(word);
    }
    if cmd.get_subcommands().any(|c| !c.is_hide_set()) {
        words.push(italic(cmd.get_subcommand_value_name().unwrap_or("COMMAND")));
    }
    format!(".nh\n.ad l\n{}\n.ad\n.hy\n", words.join(" "))
}

/// Print `program: error: message` on one line of stderr and return dkms's exit `code`.
pub fn fail(program: &str, message: &dyn std::fmt::Display, code: i32) -> std::process::ExitCode {
    eprintln!("{program}: error: {message}");
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// Parse the command line. `--help` and `--version` print as clap prints them; a usage error
/// becomes one line (clap's message without its usage block) and exit code 2.
pub fn parse<C: clap::Parser>(
    program: &str,
    argv: Vec<std::ffi::OsString>,
) -> Result<C, std::process::ExitCode> {
    use clap::error::ErrorKind;
    match C::try_parse_from(argv) {
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
    start_from(program, std::env::args_os().collect(), generate_of)
}

/// [`start`] on the command line `argv` (its first word the program).
pub fn start_from<C: clap::Parser>(
    program: &str,
    argv: Vec<std::ffi::OsString>,
    generate_of: fn(&C) -> Option<Generate>,
) -> Result<C, std::process::ExitCode> {
    let cli = parse::<C>(program, argv)?;
    match generate_of(&cli) {
        None => Ok(cli),
        Some(what) => {
            // Generated whole, then written: clap_complete panics on a failed write.
            let mut bytes = Vec::new();
            let written = generate(what, C::command(), &mut bytes).and_then(|()| {
                let mut out = std::io::stdout().lock();
                out.write_all(&bytes)?;
                out.flush()
            });
            Err(match written {
                Ok(()) => std::process::ExitCode::SUCCESS,
                // `--generate man | head`: the reader has what it wanted; nothing to say.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                    std::process::ExitCode::SUCCESS
                }
                Err(e) => fail(program, &e, 1),
            })
        }
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
                Setting::Closes => ("--closes", ""),
                Setting::Kernels => ("-k", ""),
                Setting::SourceDateEpoch => ("SOURCE_DATE_EPOCH", ""),
                // The reason quotes the value.
                Setting::Install => return format!("--install: {reason}"),
                Setting::Field(field) => {
                    return format!("--{}: {reason}", field.to_ascii_lowercase());
                }
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
