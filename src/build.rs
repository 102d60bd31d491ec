//! The build pipeline of one module for one kernel, and its make.log.
//!
//! Same steps as dkms 3.0.10's `prepare_build` + `actual_build`: copy the source to the build
//! directory, apply patches, PRE_BUILD, CLEAN, the make command (a leading `make` gets
//! `-jN KERNELRELEASE=<k>`), strip, compress, store into `<k>/<a>/module/`, POST_BUILD.
//! The built directory appears by rename, so a failed build leaves the module `added`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::conf::ModuleConf;
use crate::console::Console;
use crate::error::{ActionError, MakeFailure, io_error};
use crate::kernel::{self, Target};
use crate::tree::{ModuleVersion, Tree};

/// Environment that dkms unsets before anything runs ("may interfere with the build").
pub const UNSET_ENV: [&str; 5] = ["CC", "CXX", "CFLAGS", "CXXFLAGS", "LDFLAGS"];

/// One build to do.
#[derive(Debug)]
pub struct BuildRequest<'a> {
    pub tree: &'a Tree,
    pub module: &'a ModuleVersion,
    pub target: &'a Target,
    pub conf: &'a ModuleConf,
    /// `-j` for make: `None` passes a bare `-j` (dkms's `-j0`).
    pub jobs: Option<usize>,
    /// Where to build: `<m>/<v>/build`, or a per-kernel directory when the same module
    /// builds for several kernels at once.
    pub build_dir: PathBuf,
    /// framework.conf's signing settings.
    pub signing: &'a SigningConf,
}

/// framework.conf's `sign_file`, `mok_signing_key`, `mok_certificate`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SigningConf {
    pub sign_file: Option<PathBuf>,
    pub mok_signing_key: Option<PathBuf>,
    pub mok_certificate: Option<PathBuf>,
}

/// How to sign modules for one kernel, when everything for it is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signing {
    pub sign_file: PathBuf,
    pub hash: String,
    pub key: PathBuf,
    pub cert: PathBuf,
}

impl SigningConf {
    /// dkms's `prepare_signing` on Debian: kbuild's sign-file, the MOK pair in /var/lib/dkms,
    /// the kernel's CONFIG_MODULE_SIG_HASH. `None` when sign-file or the key pair is missing
    /// (dkms would create the pair with openssl; dkms-rs leaves key creation to the admin).
    pub fn for_kernel(
        &self,
        target: &Target,
        headers: &Path,
        config: Option<&str>,
    ) -> Option<Signing> {
        let kernel = target.kernel.as_str();
        let sign_file = self.sign_file.clone().unwrap_or_else(|| {
            let short = kernel.rsplit_once('.').map_or(kernel, |(a, _)| a);
            let debian = PathBuf::from(format!("/usr/lib/linux-kbuild-{short}/scripts/sign-file"));
            if debian.is_file() {
                debian
            } else {
                headers.join("scripts/sign-file")
            }
        });
        let key = self
            .mok_signing_key
            .clone()
            .unwrap_or_else(|| PathBuf::from("/var/lib/dkms/mok.key"));
        let cert = self
            .mok_certificate
            .clone()
            .unwrap_or_else(|| PathBuf::from("/var/lib/dkms/mok.pub"));
        let key_ok = key.to_string_lossy().starts_with("pkcs11:") || key.is_file();
        if !is_executable(&sign_file) || !key_ok || !cert.is_file() {
            return None;
        }
        let hash = config
            .and_then(|c| {
                c.lines()
                    .find_map(|l| l.strip_prefix("CONFIG_MODULE_SIG_HASH="))
                    .map(|h| h.trim_matches('"').to_string())
            })
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "sha512".to_string());
        Some(Signing {
            sign_file,
            hash,
            key,
            cert,
        })
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

/// Check what dkms checks before building; errors carry dkms's exit codes.
pub fn check_buildable(req: &BuildRequest) -> Result<(), ActionError> {
    let built_dir = req.tree.built_dir(req.module, req.target);
    if built_dir.exists() {
        return Err(ActionError::AlreadyBuilt { dir: built_dir });
    }
    if req.conf.build_exclude {
        return Err(ActionError::BuildExcluded {
            what: format!("{} for {}", req.module, req.target),
            conf: req.conf.path.clone(),
        });
    }
    let source = req.tree.source_dir(req.module);
    let entries = std::fs::read_dir(&source).map(|d| d.count()).unwrap_or(0);
    if entries < 2 {
        return Err(ActionError::NoSource { dir: source });
    }
    let headers = req.tree.headers_dir(&req.target.kernel);
    if !kernel::has_headers(&headers) {
        return Err(ActionError::NoHeaders {
            kernel: req.target.kernel.clone(),
            dir: headers,
        });
    }
    let missing: Vec<String> = req
        .conf
        .build_depends
        .iter()
        .filter(|dep| !built_anywhere(req.tree, dep, req.target))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(ActionError::MissingBuildDepends {
            what: format!("{} for {}", req.module, req.target),
            missing,
        });
    }
    Ok(())
}

/// Whether some version of `module` is built for the target.
fn built_anywhere(tree: &Tree, module: &str, target: &Target) -> bool {
    std::fs::read_dir(tree.module_dir(module))
        .into_iter()
        .flatten()
        .flatten()
        .any(|v| {
            v.path()
                .join(target.kernel.as_str())
                .join(&target.arch)
                .join("module")
                .is_dir()
        })
}

/// Build one module for one kernel; returns the time make took.
pub fn build(req: &BuildRequest, console: &Console) -> Result<Duration, ActionError> {
    check_buildable(req)?;
    let tree = req.tree;
    let (mv, target, conf) = (req.module, req.target, req.conf);
    let build_dir = &req.build_dir;
    let headers = tree.headers_dir(&target.kernel);
    let kernel_config = headers.join(".config");
    let config_text = std::fs::read_to_string(&kernel_config).ok();

    // Fresh copy of the source, as `cp -a source/ build` in dkms.
    remove_dir_if_exists(build_dir)?;
    run_quiet(
        Command::new("cp")
            .arg("-a")
            .arg(format!("{}/", tree.source_dir(mv).display()))
            .arg(build_dir),
        build_dir,
    )?;

    for patch in &conf.patches {
        let file = build_dir.join("patches").join(patch);
        if !file.exists() {
            return Err(ActionError::PatchMissing {
                patch: patch.clone(),
                dir: build_dir.join("patches"),
            });
        }
        console.say(&format!("applying patch {patch}..."));
        let status = Command::new("patch")
            .arg("-p1")
            .arg("-i")
            .arg(&file)
            .current_dir(build_dir)
            .stdout(Stdio::null())
            .status()
            .map_err(|e| io_error(build_dir, e))?;
        if !status.success() {
            return Err(ActionError::PatchFailed {
                patch: patch.clone(),
                dir: build_dir.clone(),
            });
        }
    }

    // dkms exports the kernel's compiler as CC for PRE_BUILD only, then unsets it for make.
    let cc = config_text
        .as_deref()
        .and_then(kernel::config_compiler)
        .filter(|cc| on_path(cc));
    if let Some(script) = &conf.pre_build {
        run_script("pre_build", script, build_dir, cc.as_deref(), console)?;
    }

    // Paths to `<m>/<v>/build` in the commands mean "this build's directory".
    let canonical_build = tree.build_dir(mv).display().to_string();
    let here = build_dir.display().to_string();
    let localise = |cmd: &str| {
        if canonical_build == here {
            cmd.to_string()
        } else {
            cmd.replace(&canonical_build, &here)
        }
    };

    let clean = localise(&conf.clean);
    let clean_status = shell(&clean, build_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| io_error(build_dir, e))?;
    if !clean_status.success() {
        // The seed's own Makefile fails here (`uname -r` has no headers): dkms only notes it.
        console.verbose(&format!(
            "Cleaning build area... (bad exit status: {})",
            clean_status.code().unwrap_or(-1)
        ));
    }

    // conf already appended CC=clang / LD=ld.lld for clang-built kernels, as read_conf does.
    let make_command = localise(&conf.make_command);
    let invocation = make_invocation(&make_command, req.jobs, target.kernel.as_str());
    let log_path = build_dir.join("make.log");
    let mut log = std::fs::File::create(&log_path).map_err(|e| io_error(&log_path, e))?;
    let header = format!(
        "DKMS make.log for {}-{} for kernel {} ({})\n{}\n# {}\n",
        mv.module,
        mv.version,
        target.kernel,
        target.arch,
        chrono::Utc::now().format("%a %b %e %H:%M:%S UTC %Y"),
        invocation
    );
    log.write_all(header.as_bytes())
        .map_err(|e| io_error(&log_path, e))?;
    console.verbose(&invocation);
    let started = Instant::now();
    let out = log.try_clone().map_err(|e| io_error(&log_path, e))?;
    let err = log.try_clone().map_err(|e| io_error(&log_path, e))?;
    let status = shell(&invocation, build_dir)
        .stdout(out)
        .stderr(err)
        .status()
        .map_err(|e| io_error(build_dir, e))?;
    let elapsed = started.elapsed();
    let code = status.code().unwrap_or(-1);
    writeln!(
        log,
        "# exit status {code} after {:.2} s",
        elapsed.as_secs_f64()
    )
    .map_err(|e| io_error(&log_path, e))?;
    drop(log);
    if !status.success() {
        return Err(ActionError::MakeFailed(Box::new(MakeFailure {
            module: mv.clone(),
            target: target.clone(),
            status: code,
            tail: log_tail(&log_path, 10),
            log: log_path,
        })));
    }

    for record in &conf.modules {
        let built = built_module_path(build_dir, &record.built_location, &record.built_name);
        if !built.exists() {
            return Err(ActionError::ModuleNotProduced {
                name: format!("{}.ko", record.built_name),
                target: target.clone(),
                dir: build_dir.clone(),
            });
        }
    }

    // Assemble <k>/<a> beside the tree, then rename it into place.
    let version_dir = tree.version_dir(mv);
    let stage = version_dir.join(format!(".stage-{}-{}", target.kernel, target.arch));
    remove_dir_if_exists(&stage)?;
    let stage_log = stage.join("log");
    let stage_module = stage.join("module");
    create_dir(&stage_log)?;
    create_dir(&stage_module)?;
    if kernel_config.is_file() {
        copy(&kernel_config, &stage_log.join(".config"))?;
    }
    rename(&log_path, &stage_log.join("make.log"))?;
    let compression = target.kernel.module_compression();
    let signing = req
        .signing
        .for_kernel(target, &headers, config_text.as_deref());
    for record in &conf.modules {
        let built = built_module_path(build_dir, &record.built_location, &record.built_name);
        if record.strip {
            run_quiet(Command::new("strip").arg("-g").arg(&built), build_dir)?;
        }
        if let Some(sign) = &signing {
            console.verbose(&format!("Signing module {}", built.display()));
            run_quiet(
                Command::new(&sign.sign_file)
                    .arg(&sign.hash)
                    .arg(&sign.key)
                    .arg(&sign.cert)
                    .arg(&built),
                build_dir,
            )?;
        }
        let mut stored = built.clone();
        let mut ext = "";
        if let Some(cmd) = compression.command() {
            let ok = Command::new(cmd[0])
                .args(&cmd[1..])
                .arg(&built)
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                ext = compression.extension();
                stored = PathBuf::from(format!("{}{ext}", built.display()));
            }
        }
        copy(
            &stored,
            &stage_module.join(format!("{}.ko{ext}", record.dest_name)),
        )?;
    }
    let built_dir = tree.built_dir(mv, target);
    if let Some(parent) = built_dir.parent() {
        create_dir(parent)?;
    }
    std::fs::rename(&stage, &built_dir).map_err(|e| io_error(&built_dir, e))?;

    if let Some(script) = &conf.post_build {
        run_script("post_build", script, build_dir, None, console)?;
    }
    remove_dir_if_exists(build_dir)?;
    Ok(elapsed)
}

/// `<build>/<BUILT_MODULE_LOCATION>/<name>.ko`.
fn built_module_path(build_dir: &Path, location: &str, name: &str) -> PathBuf {
    build_dir
        .join(location.trim_start_matches('/'))
        .join(format!("{name}.ko"))
}

/// The last `n` lines of a log, for the error message of a failed build.
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A command string run as dkms runs it (bash eval), in `dir` with `PWD` set: Makefiles
/// use `M=$(PWD)`, which a shell `cd` would have updated.
pub fn shell(command: &str, dir: &Path) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(command).current_dir(dir).env("PWD", dir);
    for name in UNSET_ENV {
        cmd.env_remove(name);
    }
    cmd
}

/// Run a dkms.conf script (PRE_BUILD, POST_INSTALL, ...) as dkms's `run_build_script` does:
/// `<dir>/<script>` if its first word is executable, with the remaining words as arguments.
pub fn run_script(
    kind: &str,
    script: &str,
    dir: &Path,
    cc: Option<&str>,
    console: &Console,
) -> Result<bool, ActionError> {
    let mut words = script.split_whitespace();
    let Some(first) = words.next() else {
        return Ok(true);
    };
    let program = dir.join(first);
    if !is_executable(&program) {
        console.warn(&format!("The {kind} script is not executable."));
        return Ok(true);
    }
    console.say(&format!("Running the {kind} script:"));
    let mut cmd = Command::new(&program);
    cmd.args(words).current_dir(dir).env("PWD", dir);
    for name in UNSET_ENV {
        cmd.env_remove(name);
    }
    if let Some(cc) = cc {
        cmd.env("CC", cc);
    }
    let status = cmd.status().map_err(|e| io_error(&program, e))?;
    Ok(status.success())
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| is_executable(&dir.join(program)))
    })
}

fn run_quiet(cmd: &mut Command, about: &Path) -> Result<(), ActionError> {
    let out = cmd.output().map_err(|e| io_error(about, e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(ActionError::Command {
            command: format!("{cmd:?}"),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

pub(crate) fn remove_dir_if_exists(dir: &Path) -> Result<(), ActionError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(dir, e)),
    }
}

fn create_dir(dir: &Path) -> Result<(), ActionError> {
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))
}

fn copy(from: &Path, to: &Path) -> Result<(), ActionError> {
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| io_error(from, e))
}

fn rename(from: &Path, to: &Path) -> Result<(), ActionError> {
    std::fs::rename(from, to).map_err(|e| io_error(from, e))
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
}
