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
/// panics on it). Held instead while this thread runs [`held`].
pub fn out_line(line: &str) {
    if !hold(false, line) {
        let _guard = OUTPUT.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(std::io::stdout().lock(), "{line}");
    }
}

/// [`out_line`] on stderr.
pub fn err_line(line: &str) {
    if !hold(true, line) {
        let _guard = OUTPUT.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }
}

/// One writer at a time: a job's lines come out together, never between another's.
static OUTPUT: std::sync::Mutex<()> = std::sync::Mutex::new(());

std::thread_local! {
    /// The lines this thread holds back, each with whether it goes to stderr.
    static HELD: std::cell::RefCell<Option<Vec<(bool, String)>>> =
        const { std::cell::RefCell::new(None) };
}

fn hold(stderr: bool, line: &str) -> bool {
    HELD.with(|held| match held.borrow_mut().as_mut() {
        Some(lines) => {
            lines.push((stderr, line.to_owned()));
            true
        }
        None => false,
    })
}

/// Lines held back by [`holding`], to be written with [`Held::write`].
#[derive(Debug, Default)]
pub struct Held(Vec<(bool, String)>);

impl Held {
    /// Write them out together, in the order they were said.
    pub fn write(self) {
        let _guard = OUTPUT.lock().unwrap_or_else(|e| e.into_inner());
        write_held(self.0);
    }
}

/// Run `f` with this thread's lines (stdout and stderr, in order) held back, and return them
/// with its result: a parallel job's output, to be written as one block. Inside another
/// hold, they go to the outer one (and an empty [`Held`] comes back).
pub fn holding<R>(f: impl FnOnce() -> R) -> (R, Held) {
    let outer = HELD.with(|h| h.borrow_mut().replace(Vec::new()));
    let result = f();
    let lines = HELD
        .with(|h| {
            let mut h = h.borrow_mut();
            let mine = std::mem::replace(&mut *h, outer);
            match (mine, h.as_mut()) {
                (Some(mine), Some(outer)) => {
                    outer.extend(mine);
                    None
                }
                (mine, _) => mine,
            }
        })
        .unwrap_or_default();
    (result, Held(lines))
}

/// What this thread holds so far, written out now (it goes on holding what follows), and
/// the output lock held while `f` runs: for a program whose output goes straight to the
/// terminal (a module's install script), after the lines said before it.
pub fn unheld<R>(f: impl FnOnce() -> R) -> R {
    let lines = HELD.with(|h| h.borrow_mut().as_mut().map(std::mem::take));
    let _guard = OUTPUT.lock().unwrap_or_else(|e| e.into_inner());
    write_held(lines.unwrap_or_default());
    f()
}

fn write_held(lines: Vec<(bool, String)>) {
    for (stderr, line) in lines {
        if stderr {
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        } else {
            let _ = writeln!(std::io::stdout().lock(), "{line}");
        }
    }
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
