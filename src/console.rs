//! What the user sees of a command: its lines, warnings and errors, `-q` and `--verbose`.

use std::io::Write;

/// What `dkms --version` prints (and make.log's header names, as dkms 3.2.2's does).
pub const DKMS_VERSION: &str = concat!(
    "dkms-rs ",
    env!("CARGO_PKG_VERSION"),
    " (dkms-3.2.2 compatible)"
);

/// What the user sees: `-q` silences it, `--verbose` adds the commands run.
#[derive(Debug, Clone, Copy)]
pub struct Console {
    /// The binary the user ran (`dkms-rs`, `dkms-postinst`): error lines name it, as
    /// the binaries do for the errors they print themselves.
    pub program: &'static str,
    pub quiet: bool,
    pub verbose: bool,
}

impl Default for Console {
    /// `dkms-rs`'s console, neither quiet nor verbose.
    fn default() -> Self {
        Console {
            program: "dkms-rs",
            quiet: false,
            verbose: false,
        }
    }
}

/// Write a line, ignoring failure: a closed pipe (`dkms-rs status | head -1`) or a full disk
/// under a redirected output must not stop a command half-way through a change (`println!`
/// panics on it).
pub fn out_line(line: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// [`out_line`] on stderr.
pub fn err_line(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

impl Console {
    pub fn say(&self, line: &str) {
        if !self.quiet {
            out_line(line);
        }
    }

    pub fn verbose(&self, line: &str) {
        if self.verbose && !self.quiet {
            out_line(line);
        }
    }

    pub fn warn(&self, line: &str) {
        if !self.quiet {
            err_line(&format!("Warning: {line}"));
        }
    }

    /// dkms-rs (the `dkms` command): dkms 3.2.2's `error`, a blank line then `Error! <error>`
    /// (its lines as they are) and `details`; the other programs: `<program>: error: <error>`
    /// on one line, then `details` (the end of a make.log) indented below it.
    pub fn error(&self, error: &dyn std::fmt::Display, details: &str) {
        if self.quiet {
            return;
        }
        if self.program == "dkms-rs" {
            // dkms's `error`: a blank line, then "Error! " and the message's lines.
            err_line("");
            err_line(&format!("Error! {error}"));
            for line in details.lines() {
                err_line(line);
            }
            return;
        }
        err_line(&format!("{}: error: {error}", self.program));
        for line in details.lines() {
            err_line(&format!("    {line}"));
        }
    }
}
