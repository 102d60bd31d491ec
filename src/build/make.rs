//! The make step: dkms.conf's MAKE as dkms runs it (`make -jN KERNELRELEASE=<k> ...`), in
//! the build directory it is given when the build runs, with its make.log.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

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

/// Run `invocation` in `build_dir` as the step `Building module(s)` of the build's `log`;
/// [`ActionError::MakeFailed`] with the end of the log when make fails.
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
    let mut cmd = shell(invocation, build_dir);
    user.apply(&mut cmd);
    let code = step.run(cmd, log, console)?;
    if code != 0 {
        return Err(ActionError::MakeFailed(Box::new(MakeFailure {
            module: mv.clone(),
            target: target.clone(),
            status: code,
            command: invocation.to_string(),
            tail: log_tail(log, 10),
            log: log.to_path_buf(),
        })));
    }
    Ok(())
}

/// The last `n` lines of a log, for the error message of a failed build.
pub fn log_tail(path: &Path, n: usize) -> String {
    let mut text = String::new();
    if let Ok(mut file) = super::user::open_regular(path) {
        use std::io::Read;
        let _ = file.read_to_string(&mut text);
    }
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
