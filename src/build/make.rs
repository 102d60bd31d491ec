//! The make step: dkms.conf's MAKE as dkms runs it (`make -jN KERNELRELEASE=<k> ...`), in
//! the build directory it is given when the build runs, with its make.log.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::shell;
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

/// Run `invocation` in `build_dir` with its output in `<build_dir>/make.log` (a header naming
/// module, kernel, date and command first, the exit status and time last); returns the time
/// make took, or [`ActionError::MakeFailed`] with the end of the log.
pub fn run_make(
    invocation: &str,
    build_dir: &Path,
    mv: &ModuleVersion,
    target: &Target,
) -> Result<Duration, ActionError> {
    let log_path = build_dir.join("make.log");
    let mut log = std::fs::File::create(&log_path).map_err(|e| io_error(&log_path, e))?;
    // dkms 3.2.2's make.log: its header (do_build), then invoke_command's section.
    let header = format!(
        "DKMS ({}) make.log for {mv} for kernel {target}\n{}\n\nBuilding module(s)\n# command: {invocation}\n",
        crate::console::DKMS_VERSION,
        chrono::Utc::now().format("%a %b %e %H:%M:%S UTC %Y"),
    );
    log.write_all(header.as_bytes())
        .map_err(|e| io_error(&log_path, e))?;
    let started = Instant::now();
    let out = log.try_clone().map_err(|e| io_error(&log_path, e))?;
    let err = log.try_clone().map_err(|e| io_error(&log_path, e))?;
    let status = shell(invocation, build_dir)
        .stdout(out)
        .stderr(err)
        .status()
        .map_err(|e| io_error(build_dir, e))?;
    let elapsed = started.elapsed();
    let code = status.code().unwrap_or(-1);
    let secs = elapsed.as_secs();
    write!(
        log,
        "\n# exit code: {code}\n# elapsed time: {:02}:{:02}:{:02}\n{}\n",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        "-".repeat(64)
    )
    .map_err(|e| io_error(&log_path, e))?;
    drop(log);
    if !status.success() {
        return Err(ActionError::MakeFailed(Box::new(MakeFailure {
            module: mv.clone(),
            target: target.clone(),
            status: code,
            command: invocation.to_string(),
            tail: log_tail(&log_path, 10),
            log: log_path,
        })));
    }
    Ok(elapsed)
}

/// The last `n` lines of a log, for the error message of a failed build.
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
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
