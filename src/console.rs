//! What the user sees of a command: its lines, warnings and errors, `-q` and `--verbose`.

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

impl Console {
    pub fn say(&self, line: &str) {
        if !self.quiet {
            println!("{line}");
        }
    }

    pub fn verbose(&self, line: &str) {
        if self.verbose && !self.quiet {
            println!("{line}");
        }
    }

    pub fn warn(&self, line: &str) {
        if !self.quiet {
            eprintln!("Warning: {line}");
        }
    }

    /// `<program>: error: <error>` on one line, then `details` (the end of a make.log)
    /// indented below it.
    pub fn error(&self, error: &dyn std::fmt::Display, details: &str) {
        if self.quiet {
            return;
        }
        eprintln!("{}: error: {error}", self.program);
        for line in details.lines() {
            eprintln!("    {line}");
        }
    }
}
