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
    say_line(false, line, None);
}

/// [`out_line`] on stderr.
pub fn err_line(line: &str) {
    say_line(true, line, None);
}

/// [`out_line`] of a line that is written only the first time its `key` is: held lines are
/// judged when they are written, so among jobs whose lines are written in the jobs' order
/// the first job's line is the one written, as when the jobs run one after the other.
pub fn out_line_once(key: String, line: &str) {
    say_line(false, line, Some(key));
}

/// Hold the line, or write it now when this thread holds none.
fn say_line(stderr: bool, text: &str, once: Option<String>) {
    let line = Line {
        stderr,
        text: text.to_owned(),
        once,
    };
    if let Some(line) = hold(line) {
        write_held(vec![line]);
    }
}

/// One line said: where it goes, and the key of a line said once ([`out_line_once`]).
#[derive(Debug)]
struct Line {
    stderr: bool,
    text: String,
    once: Option<String>,
}

/// One writer at a time: a job's lines come out together, never between another's. It
/// guards the status line too, which every writer clears before its lines and redraws after.
static OUTPUT: std::sync::Mutex<StatusLine> = std::sync::Mutex::new(StatusLine {
    slots: Vec::new(),
    next: 0,
    shown: false,
});

fn output() -> std::sync::MutexGuard<'static, StatusLine> {
    OUTPUT.lock().unwrap_or_else(|e| e.into_inner())
}

/// The keys of the [`out_line_once`] lines written so far.
static WRITTEN_ONCE: std::sync::Mutex<std::collections::BTreeSet<String>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

std::thread_local! {
    /// The lines this thread holds back.
    static HELD: std::cell::RefCell<Option<Vec<Line>>> =
        const { std::cell::RefCell::new(None) };
}

/// Hold `line` if this thread holds its lines; else give it back, to be written.
fn hold(line: Line) -> Option<Line> {
    HELD.with(|held| match held.borrow_mut().as_mut() {
        Some(lines) => {
            lines.push(line);
            None
        }
        None => Some(line),
    })
}

/// Lines held back by [`holding`], to be written with [`Held::write`].
#[derive(Debug, Default)]
pub struct Held(Vec<Line>);

impl Held {
    /// Write them out together, in the order they were said.
    pub fn write(self) {
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
/// terminal (a module's install script), after the lines said before it. In a parallel job
/// that is before the lines of jobs ahead of it that have not ended (see `jobs::run`).
pub fn unheld<R>(f: impl FnOnce() -> R) -> R {
    let lines = HELD.with(|h| h.borrow_mut().as_mut().map(std::mem::take));
    let mut status = output();
    status.clear();
    write_lines(lines.unwrap_or_default());
    let result = f();
    status.draw();
    result
}

/// `lines` written together, the status line cleared before them and redrawn after.
fn write_held(lines: Vec<Line>) {
    let mut status = output();
    status.clear();
    write_lines(lines);
    status.draw();
}

/// Called with the output lock held ([`output`]): a once-line's key is judged in the order
/// the lines are written.
fn write_lines(lines: Vec<Line>) {
    for line in lines {
        if let Some(key) = line.once {
            let mut written = WRITTEN_ONCE.lock().unwrap_or_else(|e| e.into_inner());
            if !written.insert(key) {
                continue;
            }
        }
        if line.stderr {
            let _ = writeln!(std::io::stderr().lock(), "{}", line.text);
        } else {
            let _ = writeln!(std::io::stdout().lock(), "{}", line.text);
        }
    }
}

/// Whether a status line can be redrawn in place: stderr is a terminal (the real one, fd 2),
/// TERM names one that is not `dumb`, and NO_COLOR is unset (no escape sequences wanted).
/// Off it (a log, a pipe, dkms 3.2.2's comparisons), nothing is drawn.
pub fn status_terminal() -> bool {
    static TERMINAL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TERMINAL.get_or_init(|| {
        // SAFETY: isatty only reads the descriptor's state.
        let tty = unsafe { libc::isatty(libc::STDERR_FILENO) } == 1;
        tty && std::env::var_os("TERM").is_some_and(|t| !t.is_empty() && t != "dumb")
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
    })
}

/// Whether stderr is a terminal (fd 2, whatever TERM says): a person reads it.
pub fn stderr_terminal() -> bool {
    // SAFETY: isatty only reads the descriptor's state.
    unsafe { libc::isatty(libc::STDERR_FILENO) == 1 }
}

/// The line at the bottom of a terminal that says what runs (jobs, a build's progress): one
/// text per [`StatusSlot`], cut to the terminal's width, redrawn with `\r`. Summaries (a
/// jobs count, [`StatusSlot::set_summary`]) come first, in brief when details (a build's
/// progress) are there; of several details, one at a time, in turn every 3 seconds.
#[derive(Debug)]
pub struct StatusLine {
    slots: Vec<Slot>,
    next: u64,
    shown: bool,
}

impl StatusLine {
    fn clear(&mut self) {
        if self.shown {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
            self.shown = false;
        }
    }

    fn draw(&mut self) {
        let details: Vec<&str> = self
            .slots
            .iter()
            .filter(|s| s.brief.is_none() && !s.text.is_empty())
            .map(|s| s.text.as_str())
            .collect();
        let mut parts: Vec<&str> = self
            .slots
            .iter()
            .filter(|s| s.brief.is_some() && !s.text.is_empty())
            .map(|s| match (&s.brief, details.is_empty()) {
                (Some(brief), false) => brief.as_str(),
                _ => s.text.as_str(),
            })
            .collect();
        if !details.is_empty() {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            parts.push(details[(now / 3) as usize % details.len()]);
        }
        if parts.is_empty() {
            return self.clear();
        }
        let text = parts.join(" | ");
        // One row: a longer line would wrap, and `\r` only goes back to its last row.
        let text: String = text
            .chars()
            .take(terminal_width().saturating_sub(1))
            .collect();
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K{text}");
        let _ = err.flush();
        self.shown = true;
    }
}

fn terminal_width() -> usize {
    // SAFETY: TIOCGWINSZ fills the winsize it is given, or fails and leaves it zeroed.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    if ok && size.ws_col > 0 {
        usize::from(size.ws_col)
    } else {
        80
    }
}

/// One part of the status line, there until dropped. Drawn only when [`status_terminal`].
#[derive(Debug)]
pub struct StatusSlot {
    id: Option<u64>,
}

impl StatusSlot {
    /// A new, empty part of the status line; a no-op slot off a terminal.
    pub fn new() -> StatusSlot {
        if !status_terminal() {
            return StatusSlot { id: None };
        }
        let mut status = output();
        let id = status.next;
        status.next += 1;
        status.slots.push(Slot {
            id,
            text: String::new(),
            brief: None,
        });
        StatusSlot { id: Some(id) }
    }

    /// Show `text` in this part. Skipped (false) when the output is busy, as while a
    /// module's script writes to the terminal: a progress ticker never waits on a job.
    pub fn try_set(&self, text: &str) -> bool {
        let Some(id) = self.id else { return true };
        let Ok(mut status) = OUTPUT.try_lock() else {
            return false;
        };
        set_slot(&mut status, id, text, None);
        true
    }

    /// Show `text` in this part, waiting for the output if another writes.
    pub fn set(&self, text: &str) {
        if let Some(id) = self.id {
            set_slot(&mut output(), id, text, None);
        }
    }

    /// Make this part a summary: `text`, or `brief` while other parts show details.
    pub fn set_summary(&self, text: &str, brief: &str) {
        if let Some(id) = self.id {
            set_slot(&mut output(), id, text, Some(brief));
        }
    }
}

impl Default for StatusSlot {
    fn default() -> Self {
        StatusSlot::new()
    }
}

/// A part of the status line: its text, and its brief form when it is a summary.
#[derive(Debug)]
struct Slot {
    id: u64,
    text: String,
    brief: Option<String>,
}

fn set_slot(status: &mut StatusLine, id: u64, text: &str, brief: Option<&str>) {
    if let Some(slot) = status.slots.iter_mut().find(|s| s.id == id) {
        slot.text = text.to_owned();
        slot.brief = brief.map(str::to_owned);
    }
    status.draw();
}

impl Drop for StatusSlot {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            let mut status = output();
            status.slots.retain(|s| s.id != id);
            status.draw();
        }
    }
}

impl Console {
    pub fn say(&self, line: &str) {
        if !self.quiet {
            out_line(line);
        }
    }

    /// [`Console::say`], only the first time a line of this `key` is written (see
    /// [`out_line_once`]).
    pub fn say_once(&self, key: String, line: &str) {
        if !self.quiet {
            out_line_once(key, line);
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
    /// (its lines as they are); the other programs: `<program>: error: <error>` on one line.
    /// Then `details` (a make.log's excerpt) indented below it.
    pub fn error(&self, error: &dyn std::fmt::Display, details: &str) {
        if self.quiet {
            return;
        }
        if self.program == "dkms-rs" {
            // dkms's `error`: a blank line, then "Error! " and the message's lines.
            err_line("");
            err_line(&format!("Error! {error}"));
            for line in details.lines() {
                err_line(&format!("    {line}"));
            }
            return;
        }
        err_line(&format!("{}: error: {error}", self.program));
        for line in details.lines() {
            err_line(&format!("    {line}"));
        }
    }
}
