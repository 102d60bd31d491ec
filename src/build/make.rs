//! The make step: dkms.conf's MAKE as dkms runs it (`make -jN KERNELRELEASE=<k> ...`), in
//! the build directory it is given when the build runs, with its make.log.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{BuildUser, shell};
use crate::console::Console;
use crate::error::{ActionError, MakeFailure, io_error};
use crate::kernel::Target;
use crate::tree::ModuleVersion;

/// A command of dkms.conf (MAKE, CLEAN) as resolved: its text names the module's canonical
/// build directory `<dkms_tree>/<m>/<v>/build` wherever dkms.conf wrote `$dkms_tree/...`.
/// A build that runs elsewhere (one directory per kernel, when kernels build at once) gets
/// the command for its own directory from [`BuildCommand::in_dir`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildCommand<'a> {
    text: &'a str,
    canonical_dir: PathBuf,
}

impl<'a> BuildCommand<'a> {
    /// `text` as resolved for the module whose canonical build directory is `canonical_dir`.
    pub fn new(text: &'a str, canonical_dir: &Path) -> BuildCommand<'a> {
        BuildCommand {
            text,
            canonical_dir: canonical_dir.to_path_buf(),
        }
    }

    /// The command for a build in `dir`: each mention of the canonical build directory as a
    /// whole path (followed by `/`, a quote, a space or the end, never `.../buildtools`)
    /// becomes `dir`.
    pub fn in_dir(&self, dir: &Path) -> String {
        let from = self.canonical_dir.display().to_string();
        let to = dir.display().to_string();
        if from == to || from.is_empty() {
            return self.text.to_string();
        }
        let mut out = String::with_capacity(self.text.len());
        let mut rest = self.text;
        while let Some(at) = rest.find(&from) {
            let after = &rest[at + from.len()..];
            let whole = after
                .chars()
                .next()
                .is_none_or(|c| c == '/' || c == '"' || c == '\'' || c.is_whitespace());
            out.push_str(&rest[..at]);
            out.push_str(if whole { &to } else { &from });
            rest = after;
        }
        out.push_str(rest);
        out
    }
}

/// The make command dkms runs: a leading `make` becomes `make -jN KERNELRELEASE=<k>`.
pub fn make_invocation(make_command: &str, jobs: Option<usize>, kernel: &str) -> String {
    match make_command.strip_prefix("make") {
        Some(rest) => {
            let jobs = jobs.map(|n| n.to_string()).unwrap_or_default();
            format!("make -j{jobs} KERNELRELEASE={kernel}{rest}")
        }
        None => make_command.to_string(),
    }
}

/// Begin a build's make.log with dkms 3.2.2's header: module, kernel and date.
pub fn start_log(log: &Path, mv: &ModuleVersion, target: &Target) -> Result<(), ActionError> {
    let header = format!(
        "DKMS ({}) make.log for {mv} for kernel {target}\n{}\n",
        crate::console::DKMS_VERSION,
        chrono::Utc::now().format("%a %b %e %H:%M:%S UTC %Y"),
    );
    // A new file: never through a link in the build dir.
    super::remove_file_if_exists(log)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(log)
        .map_err(|e| io_error(log, e))?;
    file.write_all(header.as_bytes())
        .map_err(|e| io_error(log, e))
}

/// One step of a build as dkms 3.2.2's `invoke_command` runs it with a log: its section in
/// make.log (`\n<what>\n# command: <command>\n`, the output, the exit code, the time and a
/// rule) and its line: `<what>... done.`, or `<what>...(bad exit status: N)`, `Failed
/// command:` and the command.
pub struct Step<'a> {
    pub what: &'a str,
    pub command: &'a str,
}

impl Step<'_> {
    /// Run `cmd` (the command this step names), its output appended to `log`; its exit code.
    pub fn run(&self, mut cmd: Command, log: &Path, console: &Console) -> Result<i32, ActionError> {
        use std::os::unix::fs::OpenOptionsExt;
        // The build dir may be another user's: no link followed (O_NOFOLLOW).
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(log)
            .map_err(|e| io_error(log, e))?;
        write!(file, "\n{}\n# command: {}\n", self.what, self.command)
            .map_err(|e| io_error(log, e))?;
        let started = Instant::now();
        let out = file.try_clone().map_err(|e| io_error(log, e))?;
        let err = file.try_clone().map_err(|e| io_error(log, e))?;
        let status = cmd
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err)
            .status()
            .map_err(|e| io_error(log, e))?;
        let code = status.code().unwrap_or(-1);
        let secs = started.elapsed().as_secs();
        write!(
            file,
            "\n# exit code: {code}\n# elapsed time: {:02}:{:02}:{:02}\n{}\n",
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            "-".repeat(64)
        )
        .map_err(|e| io_error(log, e))?;
        if code == 0 {
            console.say(&format!("{}... done.", self.what));
        } else {
            console.say(&format!(
                "{}...(bad exit status: {code})\nFailed command:\n{}",
                self.what, self.command
            ));
        }
        Ok(code)
    }
}

/// Run `invocation` in `build_dir` as the step `Building module(s)` of the build's `log`,
/// saying how it goes while it runs ([`Progress`]); [`ActionError::MakeFailed`] with the
/// log's first errors ([`log_excerpt`]) when make fails.
pub fn run_make(
    invocation: &str,
    build_dir: &Path,
    user: &BuildUser,
    log: &Path,
    mv: &ModuleVersion,
    target: &Target,
    console: &Console,
) -> Result<(), ActionError> {
    let step = Step {
        what: "Building module(s)",
        command: invocation,
    };
    let progress = Progress::start(log, build_dir, mv, target, console);
    let mut cmd = shell(invocation, build_dir);
    user.apply(&mut cmd);
    let code = step.run(cmd, log, console);
    drop(progress);
    let code = code?;
    if code != 0 {
        return Err(ActionError::MakeFailed(Box::new(MakeFailure {
            module: mv.clone(),
            target: target.clone(),
            status: code,
            command: invocation.to_string(),
            excerpt: log_excerpt(log),
            log: log.to_path_buf(),
        })));
    }
    Ok(())
}

/// The environment variable that sets how often a build off a terminal says it still runs,
/// in seconds (0: never); unset, once a minute.
pub const HEARTBEAT_ENV: &str = "DKMS_RS_HEARTBEAT";

/// [`HEARTBEAT_ENV`]'s period; `None`: no heartbeat.
fn heartbeat_period(console: &Console) -> Option<Duration> {
    const DEFAULT: Duration = Duration::from_secs(60);
    let Ok(value) = std::env::var(HEARTBEAT_ENV) else {
        return Some(DEFAULT);
    };
    match value.trim().parse::<u64>() {
        Ok(0) => None,
        Ok(secs) => Some(Duration::from_secs(secs)),
        Err(_) if value.is_empty() => Some(DEFAULT),
        Err(_) => {
            console.warn(&format!(
                "{HEARTBEAT_ENV}={value:?} is not a whole number of seconds: 60 is used"
            ));
            Some(DEFAULT)
        }
    }
}

/// What a build says while make runs, from a thread of its own that reads make.log: on a
/// terminal ([`crate::console::status_terminal`]) a status line redrawn every second
/// (module, kernel, elapsed time, make.log's path and size, the last Kbuild target such as
/// `CC [M] hello.o`); elsewhere nothing for the first period of [`HEARTBEAT_ENV`] (a minute),
/// then one line per period on stderr naming the module, kernel, time and log. Its lines are
/// written as they come, never held with the job's: dkms 3.2.2's outputs, off a terminal and
/// under a minute, stay as they are. Stopped (and its line cleared) when dropped.
pub struct Progress {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    /// Start watching `log` of the build of `mv` for `target` in `build_dir`.
    pub fn start(
        log: &Path,
        build_dir: &Path,
        mv: &ModuleVersion,
        target: &Target,
        console: &Console,
    ) -> Progress {
        let idle = Progress {
            stop: None,
            thread: None,
        };
        if console.quiet {
            return idle;
        }
        let live = crate::console::status_terminal();
        let period = if live {
            None
        } else {
            heartbeat_period(console)
        };
        if !live && period.is_none() {
            return idle;
        }
        let (stop, stopped) = mpsc::channel::<()>();
        let mut scan = LogScan {
            log: log.to_path_buf(),
            build_dir: format!("{}/", build_dir.display()),
            read: 0,
            size: 0,
            partial: Vec::new(),
            last: None,
        };
        let what = format!("{mv} for kernel {target}");
        // The terminal's line: short, so that the log's path fits in 80 columns.
        let short = format!("{mv} ({})", target.kernel);
        let program = console.program;
        let thread = std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || {
                let started = Instant::now();
                let slot = live.then(crate::console::StatusSlot::new);
                let mut beat = period.map(|p| started + p);
                loop {
                    if let Some(slot) = &slot {
                        scan.update();
                        slot.try_set(&format!(
                            "{short} {}: log {} ({}){}",
                            elapsed(started.elapsed()),
                            scan.log.display(),
                            size(scan.size),
                            scan.last
                                .as_deref()
                                .map(|t| format!(", {t}"))
                                .unwrap_or_default()
                        ));
                    }
                    let now = Instant::now();
                    let wait = match beat {
                        Some(at) => at.saturating_duration_since(now),
                        None => Duration::from_secs(1),
                    };
                    if !matches!(
                        stopped.recv_timeout(wait),
                        Err(mpsc::RecvTimeoutError::Timeout)
                    ) {
                        break;
                    }
                    if let (Some(at), Some(p)) = (beat.as_mut(), period) {
                        if Instant::now() < *at {
                            continue;
                        }
                        scan.update();
                        crate::console::err_line(&format!(
                            "{program}: still building {what} after {} (log {}, {}{})",
                            elapsed(started.elapsed()),
                            scan.log.display(),
                            size(scan.size),
                            scan.last
                                .as_deref()
                                .map(|t| format!(", last {t}"))
                                .unwrap_or_default()
                        ));
                        // At most one line per period, however late this one came.
                        while *at <= Instant::now() {
                            *at += p;
                        }
                    }
                }
            })
            .ok();
        Progress {
            stop: thread.as_ref().map(|_| stop),
            thread,
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// make.log as it grows: its size and the last Kbuild target line (`  CC [M]  <path>`).
struct LogScan {
    log: PathBuf,
    /// `<build dir>/`, taken off the targets' paths.
    build_dir: String,
    read: u64,
    size: u64,
    partial: Vec<u8>,
    last: Option<String>,
}

impl LogScan {
    /// Read what was appended since the last call (its last 64 KiB at most).
    fn update(&mut self) {
        const WINDOW: u64 = 64 * 1024;
        let Ok(mut file) = std::fs::File::open(&self.log) else {
            return;
        };
        let Ok(len) = file.metadata().map(|m| m.len()) else {
            return;
        };
        self.size = len;
        if len <= self.read {
            return;
        }
        let from = self.read.max(len.saturating_sub(WINDOW));
        if from > self.read {
            self.partial.clear();
        }
        let mut chunk = Vec::new();
        if file.seek(std::io::SeekFrom::Start(from)).is_err()
            || file.take(len - from).read_to_end(&mut chunk).is_err()
        {
            return;
        }
        self.read = from + chunk.len() as u64;
        self.partial.extend_from_slice(&chunk);
        let complete = match self.partial.iter().rposition(|&b| b == b'\n') {
            Some(end) => self.partial.drain(..=end).collect::<Vec<u8>>(),
            None => {
                self.partial.truncate(WINDOW as usize);
                return;
            }
        };
        let text = String::from_utf8_lossy(&complete);
        if let Some(target) = text
            .lines()
            .rev()
            .find_map(|l| kbuild_target(l, &self.build_dir))
        {
            self.last = Some(target);
        }
    }
}

/// `CC [M] hello.o` from Kbuild's `  CC [M]  /var/lib/dkms/.../build/hello.o`: a line that
/// starts with two spaces and a word in capitals (CC, LD, AR, MODPOST, BTF...).
fn kbuild_target(line: &str, build_dir: &str) -> Option<String> {
    let rest = line.strip_prefix("  ")?;
    let word = rest.split_whitespace().next()?;
    let capitals = (2..=8).contains(&word.len())
        && word
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        && word.as_bytes()[0].is_ascii_uppercase();
    if !capitals {
        return None;
    }
    let words: Vec<String> = rest
        .split_whitespace()
        .map(|w| w.strip_prefix(build_dir).unwrap_or(w).to_string())
        .collect();
    (words.len() >= 2).then(|| words.join(" "))
}

/// `45s`, `2m05s`, `1h02m05s`.
fn elapsed(time: Duration) -> String {
    let secs = time.as_secs();
    match (secs / 3600, secs / 60 % 60, secs % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, s) => format!("{h}h{m:02}m{s:02}s"),
    }
}

/// `512 B`, `34 KiB`, `1.2 MiB`.
fn size(bytes: u64) -> String {
    match bytes {
        0..1024 => format!("{bytes} B"),
        1024..1_048_576 => format!("{} KiB", bytes / 1024),
        _ => format!("{:.1} MiB", bytes as f64 / 1_048_576.0),
    }
}

/// What a failed build's error shows of its make.log: the make step's first compiler errors
/// (gcc's and clang's `error:`, as's `Error:`, modpost's `ERROR:`) with the lines around
/// them, not the end of a `make -j` run, which is other jobs' output and make's `Error 2`
/// lines; the step's last lines when no such line is there. Then the log's path.
pub fn log_excerpt(path: &Path) -> String {
    const BEFORE: usize = 3;
    const AFTER: usize = 3;
    const ERRORS: usize = 3;
    const TAIL: usize = 10;
    // Not following a link a build as another user may have put in make.log's place.
    let mut bytes = Vec::new();
    if let Ok(mut file) = super::user::open_regular(path) {
        use std::io::Read;
        let _ = file.read_to_end(&mut bytes);
    }
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    // The make step's own output: after its `# command:` line, before its `# exit code:`.
    let start = all
        .iter()
        .rposition(|l| l.starts_with("# command: "))
        .map_or(0, |i| i + 1);
    let end = all[start..]
        .iter()
        .rposition(|l| l.starts_with("# exit code: "))
        .map_or(all.len(), |i| start + i);
    let mut lines = &all[start..end];
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines = &lines[..lines.len() - 1];
    }
    let errors: Vec<usize> = (0..lines.len())
        .filter(|&i| is_error_line(lines[i]))
        .take(ERRORS)
        .collect();
    let mut out: Vec<String> = Vec::new();
    if errors.is_empty() {
        out.extend(
            lines[lines.len().saturating_sub(TAIL)..]
                .iter()
                .map(|l| l.to_string()),
        );
    } else {
        let mut shown_to = 0;
        for &i in &errors {
            let from = i.saturating_sub(BEFORE).max(shown_to);
            let to = (i + AFTER + 1).min(lines.len());
            if from > shown_to && shown_to > 0 {
                out.push("...".into());
            }
            out.extend(lines[from.min(to)..to].iter().map(|l| l.to_string()));
            shown_to = shown_to.max(to);
        }
    }
    out.push(format!("Full log: {}", path.display()));
    out.join("\n")
}

/// A compiler's, assembler's or modpost's error line, not make's `*** [...] Error 2`.
fn is_error_line(line: &str) -> bool {
    line.contains("error:") || line.contains("Error:") || line.trim_start().starts_with("ERROR:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_make_gets_jobs_and_kernelrelease() {
        assert_eq!(
            make_invocation("make all KVERSION=6.1", Some(2), "6.1"),
            "make -j2 KERNELRELEASE=6.1 all KVERSION=6.1"
        );
        assert_eq!(
            make_invocation("make", None, "k"),
            "make -j KERNELRELEASE=k"
        );
        assert_eq!(make_invocation("./build.sh", Some(2), "k"), "./build.sh");
    }

    #[test]
    fn kbuild_targets_lose_the_build_dir() {
        let dir = "/var/lib/dkms/m/1/build/";
        assert_eq!(
            kbuild_target("  CC [M]  /var/lib/dkms/m/1/build/src/m.o", dir).as_deref(),
            Some("CC [M] src/m.o")
        );
        assert_eq!(
            kbuild_target("  MODPOST /var/lib/dkms/m/1/build/Module.symvers", dir).as_deref(),
            Some("MODPOST Module.symvers")
        );
        assert_eq!(kbuild_target("make[1]: Entering directory", dir), None);
        assert_eq!(kbuild_target("  | ^~~~", dir), None);
    }

    #[test]
    fn the_excerpt_is_the_first_errors_of_the_make_step_then_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("make.log");
        let mut text = String::from(
            "DKMS make.log\n\nBuilding module(s)\n# command: make -j4\n  CC [M]  a.o\n",
        );
        text.push_str("b.c: In function 'f':\nb.c:3:9: error: expected ';'\n    3 |  x = 1\n      |       ^\n");
        for i in 0..20 {
            text.push_str(&format!("  CC [M]  c{i}.o\n"));
        }
        text.push_str("make[2]: *** [b.o] Error 1\nmake: *** [modules] Error 2\n");
        text.push_str("\n# exit code: 2\n# elapsed time: 00:00:01\n----\n");
        std::fs::write(&log, &text).unwrap();
        let excerpt = log_excerpt(&log);
        let lines: Vec<&str> = excerpt.lines().collect();
        assert_eq!(
            lines,
            [
                "  CC [M]  a.o",
                "b.c: In function 'f':",
                "b.c:3:9: error: expected ';'",
                "    3 |  x = 1",
                "      |       ^",
                "  CC [M]  c0.o",
                &format!("Full log: {}", log.display()),
            ]
        );
        // No compiler error: the step's last lines.
        std::fs::write(
            &log,
            "# command: make\nmake: *** No rule to make target 'x'.  Stop.\n\n# exit code: 2\n",
        )
        .unwrap();
        assert_eq!(
            log_excerpt(&log),
            format!(
                "make: *** No rule to make target 'x'.  Stop.\nFull log: {}",
                log.display()
            )
        );
    }

    #[test]
    fn the_build_dir_is_replaced_as_a_whole_path_only() {
        let canonical = Path::new("/var/lib/dkms/m/1/build");
        let cmd = BuildCommand::new(
            "make -C /var/lib/dkms/m/1/build M=/var/lib/dkms/m/1/build/src T=/var/lib/dkms/m/1/buildtools '/var/lib/dkms/m/1/build'",
            canonical,
        );
        assert_eq!(
            cmd.in_dir(Path::new("/var/lib/dkms/m/1/.build-k-a")),
            "make -C /var/lib/dkms/m/1/.build-k-a M=/var/lib/dkms/m/1/.build-k-a/src T=/var/lib/dkms/m/1/buildtools '/var/lib/dkms/m/1/.build-k-a'"
        );
        assert_eq!(cmd.in_dir(canonical), cmd.text);
    }
}
