//! The man pages under `man/` are the binaries' own `--generate man` output: a stale page fails.
//! `--generate` (man pages, bash and zsh completions) as the real readers take it: `man -l`,
//! groff, bash's `complete`, zsh's compinit, a pipe closed early.

use std::path::Path;
use std::process::Command;

/// Every binary of the package, from `src/bin/*.rs`.
fn binaries() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bin");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".rs"))
                .map(str::to_string)
        })
        .collect();
    names.sort();
    names
}

fn bin_path(name: &str) -> std::path::PathBuf {
    // CARGO_BIN_EXE_<name> is only known at compile time per name; the target dir is shared.
    assert_cmd::cargo::cargo_bin(name)
}

#[test]
fn man_pages_are_current() {
    let man = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let bins = binaries();
    assert!(!bins.is_empty());
    for bin in bins {
        let out = Command::new(bin_path(&bin))
            .args(["--generate", "man"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{bin} --generate man failed");
        let page = man.join(format!("{bin}.1"));
        let committed = std::fs::read(&page).unwrap_or_default();
        assert!(
            committed == out.stdout,
            "{} is stale: run `cargo run -q --bin {bin} -- --generate man > man/{bin}.1`",
            page.display()
        );
    }
}

#[test]
fn help_teaches_with_examples() {
    for bin in binaries() {
        let out = Command::new(bin_path(&bin)).arg("--help").output().unwrap();
        assert!(out.status.success(), "{bin} --help failed");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Usage:"), "{bin}: {text}");
        assert!(
            text.contains("Example"),
            "{bin} --help has no examples: {text}"
        );
    }
}

/// `--generate` is in every binary's `--help`, with what it takes.
#[test]
fn help_lists_generate() {
    for bin in binaries() {
        let out = Command::new(bin_path(&bin)).arg("--help").output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        for needle in ["--generate <WHAT>", "complete-bash", "complete-zsh", "man"] {
            assert!(
                text.contains(needle),
                "{bin} --help lacks {needle}:\n{text}"
            );
        }
    }
}

/// A reader that stops early (`--generate man | head`) is no error: exit 0, nothing on
/// stderr. The pipe's reading end is closed before the binary starts, so every write fails
/// (EPIPE); then the same through a shell pipeline into `head`.
#[test]
fn generate_into_a_closed_pipe_is_quiet() {
    for bin in binaries() {
        for what in ["man", "complete-bash", "complete-zsh"] {
            let (reader, writer) = std::io::pipe().unwrap();
            drop(reader);
            let out = Command::new(bin_path(&bin))
                .args(["--generate", what])
                .stdout(writer)
                .output()
                .unwrap();
            assert_eq!(
                (
                    out.status.code(),
                    String::from_utf8_lossy(&out.stderr).as_ref()
                ),
                (Some(0), ""),
                "{bin} --generate {what} into a closed pipe"
            );
        }
        let (code, stdout, stderr) = crate::support::run(
            Command::new("bash")
                .args(["-c", "set -o pipefail; \"$0\" --generate man | head -n 1"])
                .arg(bin_path(&bin)),
        );
        assert_eq!((code, stderr.as_str()), (0, ""), "{bin}: {stdout}");
        assert_eq!(stdout.lines().count(), 1, "{stdout}");
    }
}

/// Options with their argument names as `--help` gives them (clap's own renderer, read as
/// the oracle): (flag as the synopsis writes it, argument text) for each option that takes
/// one, e.g. ("-v", "MODULE_VERSION"), ("-o|--output-dir", "DIR"), ("-V", "[VERSION]").
fn options_with_values(help: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for line in help.lines() {
        let line = line.trim();
        if !line.starts_with('-') || line.starts_with("- ") {
            continue;
        }
        let (flags, value) = match line.find(" <").or_else(|| line.find(" [<")) {
            Some(at) => (&line[..at], line[at + 1..].trim()),
            None => continue,
        };
        let optional = value.starts_with('[');
        let name = value.trim_start_matches('[').trim_end_matches(']');
        let name = &name[1..name.len() - 1]; // the outer < >
        let name = if name.contains(' ') {
            format!("'{name}'")
        } else {
            name.to_string()
        };
        let flag = flags.split(", ").collect::<Vec<_>>().join("|");
        found.push((flag, if optional { format!("[{name}]") } else { name }));
    }
    found
}

/// The SYNOPSIS of the committed man page as `man -l` renders it (one long line), and groff
/// reads the page without a warning; it names every option's argument as `--help` does.
#[test]
fn man_synopsis_names_every_argument() {
    if !crate::support::require_tool("man") || !crate::support::require_tool("groff") {
        return;
    }
    let man_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    for bin in binaries() {
        let page = man_dir.join(format!("{bin}.1"));
        let (code, _, warnings) = crate::support::run(
            crate::support::command("groff")
                .args(["-man", "-Tutf8", "-ww", "-z"])
                .arg(&page),
        );
        assert_eq!(
            (code, warnings.as_str()),
            (0, ""),
            "groff on {}",
            page.display()
        );
        let text = crate::support::run_ok(
            crate::support::command("man")
                .env("MANWIDTH", "2000")
                .arg("-l")
                .arg(&page),
        );
        let synopsis: String = text
            .lines()
            .skip_while(|l| l.trim() != "SYNOPSIS")
            .skip(1)
            .take_while(|l| l.is_empty() || l.starts_with(' '))
            .collect::<Vec<_>>()
            .join(" ");
        let help = Command::new(bin_path(&bin)).arg("--help").output().unwrap();
        let options = options_with_values(&String::from_utf8_lossy(&help.stdout));
        assert!(options.len() >= 2, "{bin}: {options:?}");
        for (flag, value) in options {
            let shown = format!("{flag} {value}");
            assert!(
                synopsis.contains(&shown),
                "{bin}: SYNOPSIS lacks {shown:?}:\n{synopsis}"
            );
        }
    }
}

/// The completion scripts work in the shells: bash's `complete -p` knows the command and its
/// function completes an option and `--generate`'s values; zsh's compinit registers `_<bin>`
/// for it from a `$fpath` directory, as /usr/share/zsh/vendor-completions is.
#[test]
fn completions_work_in_bash_and_zsh() {
    if !crate::support::require_tool("bash") || !crate::support::require_tool("zsh") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for bin in binaries() {
        let generate = |what: &str| {
            let out = Command::new(bin_path(&bin))
                .args(["--generate", what])
                .output()
                .unwrap();
            assert!(out.status.success(), "{bin} --generate {what}");
            out.stdout
        };
        let bash = dir.path().join(format!("{bin}.bash"));
        std::fs::write(&bash, generate("complete-bash")).unwrap();
        let script = r#"source "$1" || exit 1
complete -p "$2" || exit 1
f=$(complete -p "$2" | sed -n 's/.* -F \([^ ]*\) .*/\1/p')
COMP_WORDS=("$2" --gen); COMP_CWORD=1; COMP_LINE="$2 --gen"; COMP_POINT=${#COMP_LINE}
"$f" "$2" --gen "$2"; echo "option: ${COMPREPLY[*]}"
COMP_WORDS=("$2" --generate comp); COMP_CWORD=2; COMP_LINE="$2 --generate comp"; COMP_POINT=${#COMP_LINE}
"$f" "$2" comp --generate; echo "value: ${COMPREPLY[*]}"
"#;
        let out = crate::support::run_ok(
            crate::support::command("bash")
                .args(["--norc", "--noprofile", "-c", script, "bash"])
                .arg(&bash)
                .arg(&bin),
        );
        assert!(
            out.lines()
                .next()
                .unwrap_or_default()
                .starts_with("complete ")
                && out.ends_with(&format!(
                    " {bin}\noption: --generate\nvalue: complete-bash complete-zsh\n"
                )),
            "{bin}: {out}"
        );

        let fpath = dir.path().join("zsh");
        std::fs::create_dir_all(&fpath).unwrap();
        std::fs::write(fpath.join(format!("_{bin}")), generate("complete-zsh")).unwrap();
        let out = crate::support::run_ok(
            crate::support::command("zsh")
                .args([
                    "-f",
                    "-c",
                    r#"fpath=("$1" $fpath); autoload -Uz compinit; compinit -u -d "$1/.zcompdump"; print -r -- "$_comps[$2]""#,
                    "zsh",
                ])
                .arg(&fpath)
                .arg(&bin),
        );
        assert_eq!(out.trim(), format!("_{bin}"), "zsh's compinit for {bin}");
    }
}
