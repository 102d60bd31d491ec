//! What every binary shares: `--generate man|complete-bash` from its clap definition (as
//! ripgrep does, so man pages never drift from `--help`), and the one-line error convention.

use std::io::Write;

/// What `--generate` writes to stdout.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Generate {
    /// The roff man page (the file under `man/` is this output).
    Man,
    /// A bash completion script.
    CompleteBash,
}

/// Write `what` for the command `cmd` to `out`.
pub fn generate(what: Generate, mut cmd: clap::Command, out: &mut dyn Write) -> std::io::Result<()> {
    match what {
        Generate::Man => clap_mangen::Man::new(cmd).render(out),
        Generate::CompleteBash => {
            let name = cmd.get_name().to_string();
            clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, name, out);
            Ok(())
        }
    }
}

/// Print `program: error: message` on one line of stderr and return dkms's exit `code`.
pub fn fail(program: &str, message: &dyn std::fmt::Display, code: i32) -> std::process::ExitCode {
    eprintln!("{program}: error: {message}");
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(1))
}
