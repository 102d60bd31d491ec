//! The build pipeline of one module for one kernel: the steps in order here, the make step
//! in [`make`], signing in [`sign`], compression in [`compress`].
//!
//! Same steps as dkms 3.0.10's `prepare_build` + `actual_build`: copy the source to the build
//! directory, apply patches, PRE_BUILD, CLEAN, the make command (a leading `make` gets
//! `-jN KERNELRELEASE=<k>`), strip, compress, store into `<k>/<a>/module/`, POST_BUILD.
//! The built directory appears by rename, so a failed build leaves the module `added`.

pub mod compress;
pub mod make;
pub mod sign;
pub mod user;

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::conf::ModuleConf;
use crate::console::Console;
use crate::error::{ActionError, io_error};
use crate::kernel::{self, Target};
use crate::tree::{ModuleVersion, Tree};

pub use make::{BuildCommand, log_excerpt, make_invocation};
pub use sign::{Signing, SigningConf};
pub use user::BuildUser;

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
    /// How to sign this kernel's modules ([`SigningConf::prepare`]); `None`: do not sign.
    pub signing: Option<&'a Signing>,
    /// `--force`: build despite missing BUILD_DEPENDS (the caller warns, see
    /// [`missing_build_depends`]).
    pub force: bool,
    /// framework.conf's `build_user` and the file that set it ([`BuildUser::resolve`]).
    pub build_user: Option<&'a (String, PathBuf)>,
}

/// Check what dkms checks before building; errors carry dkms's exit codes.
pub fn check_buildable(req: &BuildRequest) -> Result<(), ActionError> {
    let built_dir = req.tree.built_dir(req.module, req.target);
    if built_dir.exists() {
        return Err(ActionError::AlreadyBuilt { dir: built_dir });
    }
    if req.conf.build_exclude {
        return Err(ActionError::BuildExcluded {
            what: req.module.to_string(),
            // The path dkms 3.2.2 names (`$base_dir/dkms.conf`, which is not a file).
            conf: built_dir.join("dkms.conf"),
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
    let missing = missing_build_depends(req);
    if !missing.is_empty() && !req.force {
        return Err(ActionError::MissingBuildDepends {
            what: format!("{} for kernel {}", req.module, req.target),
            missing,
        });
    }
    Ok(())
}

/// The BUILD_DEPENDS of the request that no version is built for on its target.
pub fn missing_build_depends(req: &BuildRequest) -> Vec<String> {
    req.conf
        .build_depends
        .iter()
        .filter(|dep| !built_anywhere(req.tree, dep, req.target))
        .cloned()
        .collect()
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

/// Build one module for one kernel, saying dkms 3.2.2's lines as it goes (each step's
/// `... done.`, `Signing module`), with every step's output in the build's make.log.
pub fn build(req: &BuildRequest, console: &Console) -> Result<(), ActionError> {
    check_buildable(req)?;
    let user = BuildUser::resolve(req.build_user)?;
    let (mv, target, conf) = (req.module, req.target, req.conf);
    let build_dir = &req.build_dir;
    let headers = req.tree.headers_dir(&target.kernel);
    let config_text = std::fs::read_to_string(headers.join(".config")).ok();

    let log = copy_source(req, &user)?;
    apply_patches(req, &user, &log, console)?;
    // dkms exports the kernel's compiler as CC for PRE_BUILD only, then unsets it for make.
    let cc = config_text
        .as_deref()
        .and_then(kernel::config_compiler)
        .filter(|cc| on_path(cc));
    if let Some(script) = &conf.pre_build {
        let kind = ScriptKind::PreBuild;
        run_build_script(kind, script, build_dir, cc.as_deref(), &user, &log, console)?;
    }

    // Paths to `<m>/<v>/build` in the command mean "this build's directory"; conf already
    // appended CC=clang / LD=ld.lld for clang-built kernels, as read_conf does.
    let make_command =
        BuildCommand::new(&conf.make_command, &req.tree.build_dir(mv)).in_dir(build_dir);
    let invocation = make_invocation(&make_command, req.jobs, target.kernel.as_str());
    console.verbose(&invocation);
    make::run_make(&invocation, build_dir, &user, &log, mv, target, console)?;
    for record in &conf.modules {
        let built = built_module_path(build_dir, &record.built_location, &record.built_name);
        if !built.exists() {
            return Err(ActionError::ModuleNotProduced {
                name: format!("{}{}.ko", record.built_location, record.built_name),
                target: target.clone(),
                log: log.clone(),
            });
        }
    }

    store(req, &user, req.signing, console)?;
    // As dkms 3.2.2: post_build runs with the module stored, logged to the same make.log
    // (back in the build dir while it runs).
    if let Some(script) = &conf.post_build {
        let stored_log = req.tree.built_dir(mv, target).join("log/make.log");
        rename(&stored_log, &log)?;
        let kind = ScriptKind::PostBuild;
        let ran = run_build_script(kind, script, build_dir, None, &user, &log, console);
        if user.is_other() {
            // The script's user owns the build dir: the log comes back by copy, never a
            // link it put there.
            let copied = stored_log.with_extension("log.new");
            user::copy_regular(&log, &copied)?;
            rename(&copied, &stored_log)?;
        } else {
            rename(&log, &stored_log)?;
        }
        ran?;
    }
    // By rename: a kill while it is deleted leaves a name the next command knows. Cleaning
    // up does not fail a build that is done (the next build starts afresh anyway). A failed
    // build keeps its directory, whose make.log the error names.
    if crate::atomic::remove_dir_by_rename(build_dir).is_err() {
        let _ = std::fs::remove_dir_all(build_dir);
    }
    Ok(())
}

/// A fresh copy of the source in the build directory (`cp -a source/ build`, as dkms), and
/// the build's make.log begun there with dkms 3.2.2's header; returns the log's path. As
/// another user: into a directory made for it, by that user (`cp -a source/. build`).
fn copy_source(req: &BuildRequest, user: &BuildUser) -> Result<PathBuf, ActionError> {
    let build_dir = &req.build_dir;
    remove_dir_if_exists(build_dir)?;
    let source = req.tree.source_dir(req.module).display().to_string();
    let mut cp = Command::new("cp");
    if user.is_other() {
        user.make_build_dir(build_dir)?;
        cp.arg("-a").arg(format!("{source}/.")).arg(build_dir);
        user.apply(&mut cp);
    } else {
        cp.arg("-a").arg(format!("{source}/")).arg(build_dir);
    }
    run_quiet(&mut cp, build_dir)?;
    let log = build_dir.join("make.log");
    make::start_log(&log, req.module, req.target)?;
    Ok(log)
}

/// The patches dkms.conf chose, applied in order (`patch -p1 < ./patches/<p>`, logged as
/// dkms 3.2.2's invoke_command logs it).
fn apply_patches(
    req: &BuildRequest,
    user: &BuildUser,
    log: &Path,
    console: &Console,
) -> Result<(), ActionError> {
    let build_dir = &req.build_dir;
    for patch in &req.conf.patches {
        if format!("patches/{patch}").contains("/../") {
            return Err(ActionError::PatchDotDot {
                patch: patch.clone(),
            });
        }
        if !build_dir.join("patches").join(patch).exists() {
            return Err(ActionError::PatchMissing {
                patch: patch.clone(),
                dir: build_dir.join("patches"),
            });
        }
        let command = format!("patch -p1 < ./patches/{patch}");
        let step = make::Step {
            what: &format!("Applying patch {patch}"),
            command: &command,
        };
        let mut cmd = shell(&command, build_dir);
        user.apply(&mut cmd);
        if step.run(cmd, log, console)? != 0 {
            return Err(ActionError::PatchFailed {
                patch: patch.clone(),
                dir: build_dir.clone(),
            });
        }
    }
    Ok(())
}

/// PRE_BUILD or POST_BUILD as dkms 3.2.2's run_build_script runs them: in the build dir,
/// logged to make.log (`Running the pre_build script... done.`); a failure says where to
/// look and ends the build with the script's exit code.
fn run_build_script(
    kind: ScriptKind,
    script: &str,
    build_dir: &Path,
    cc: Option<&str>,
    user: &BuildUser,
    log: &Path,
    console: &Console,
) -> Result<(), ActionError> {
    let Some(first) = script.split_whitespace().next() else {
        return Ok(());
    };
    if !is_executable(&build_dir.join(first)) {
        console.say("");
        console.warn(&format!("The {kind} script is not executable."));
        return Ok(());
    }
    let dir = format!("{}/", build_dir.display());
    let command = format!("cd {dir} && {dir}{script}");
    let mut cmd = shell(&command, build_dir);
    user.apply(&mut cmd);
    for name in UNSET_ENV {
        cmd.env_remove(name);
    }
    if let Some(cc) = cc {
        cmd.env("CC", cc);
    }
    let step = make::Step {
        what: &format!("Running the {kind} script"),
        command: &command,
    };
    match step.run(cmd, log, console)? {
        0 => Ok(()),
        code => {
            console.say(&format!("Consult {} for more information.", log.display()));
            Err(ActionError::Reported { code })
        }
    }
}

/// Store the build as `<m>/<v>/<k>/<a>/`: `log/` (make.log, the kernel's .config) and
/// `module/` (each module stripped, signed and compressed as the kernel's are), assembled
/// beside the tree and renamed into place, so the target is built or not, never half.
fn store(
    req: &BuildRequest,
    user: &BuildUser,
    signing: Option<&Signing>,
    console: &Console,
) -> Result<(), ActionError> {
    let (tree, mv, target) = (req.tree, req.module, req.target);
    let stage = tree
        .version_dir(mv)
        .join(format!(".stage-{}-{}", target.kernel, target.arch));
    remove_dir_if_exists(&stage)?;
    stage_build(req, user, signing, console, &stage).inspect_err(|_| {
        let _ = std::fs::remove_dir_all(&stage);
        // `<k>/`, if this build made it and nothing else is in it.
        if let Some(kernel_dir) = tree.built_dir(mv, target).parent() {
            let _ = std::fs::remove_dir(kernel_dir);
        }
    })
}

/// [`store`] into `stage`, then the rename that makes the target built.
fn stage_build(
    req: &BuildRequest,
    user: &BuildUser,
    signing: Option<&Signing>,
    console: &Console,
    stage: &Path,
) -> Result<(), ActionError> {
    let (tree, mv, target, build_dir) = (req.tree, req.module, req.target, &req.build_dir);
    let stage_log = stage.join("log");
    let stage_module = stage.join("module");
    create_dir(&stage_log)?;
    create_dir(&stage_module)?;
    let kernel_config = tree.headers_dir(&target.kernel).join(".config");
    if kernel_config.is_file() {
        copy(&kernel_config, &stage_log.join(".config"))?;
    }
    if user.is_other() {
        user::copy_regular(&build_dir.join("make.log"), &stage_log.join("make.log"))?;
    } else {
        rename(&build_dir.join("make.log"), &stage_log.join("make.log"))?;
    }
    let compression = target.kernel.module_compression();
    let work = stage.join(".work");
    for (i, record) in req.conf.modules.iter().enumerate() {
        let built = built_module_path(build_dir, &record.built_location, &record.built_name);
        if record.strip {
            let mut strip = Command::new("strip");
            strip.arg("-g").arg(&built);
            user.apply(&mut strip);
            run_quiet(&mut strip, build_dir)?;
        }
        // Built as another user: signed and compressed as root in a copy of ours (a regular
        // file, not a link the Makefile left), its own name kept (gzip records it).
        let mine = if user.is_other() {
            let dir = work.join(i.to_string());
            create_dir(&dir)?;
            let mine = dir.join(format!("{}.ko", record.built_name));
            user::copy_regular(&built, &mine)?;
            mine
        } else {
            built.clone()
        };
        if let Some(sign) = signing {
            sign.sign_as(&mine, &built, console);
        }
        let (stored, ext) = compress::compress(&mine, compression);
        copy(
            &stored,
            &stage_module.join(format!("{}.ko{ext}", record.dest_name)),
        )?;
    }
    if req.conf.build_depends_rebuild && !req.force {
        for dep in &req.conf.build_depends {
            if let Some(version) = newest_version(tree, dep) {
                let file = stage.join(format!(".dep_{dep}"));
                std::fs::write(&file, format!("{version}\n")).map_err(|e| io_error(&file, e))?;
            }
        }
    }
    remove_dir_if_exists(&work)?;
    let built_dir = tree.built_dir(mv, target);
    if let Some(parent) = built_dir.parent() {
        create_dir(parent)?;
    }
    std::fs::rename(stage, &built_dir).map_err(|e| io_error(&built_dir, e))
}

/// dkms 3.2.2's dependency version (do_build's "save dependency versions", and
/// check_dependencies_updated): the newest (`sort -V`) version of `module` in the tree,
/// whatever its state (added, built, installed or broken), for any kernel.
pub fn newest_version(tree: &Tree, module: &str) -> Option<String> {
    tree.added_modules(Some(module), None)
        .into_iter()
        .map(|mv| mv.version)
        .max_by_key(|v| kernel::version_key(v))
}

/// The `.dep_<dep>` files of a build (written with it, in its stage, by [`build`] when the
/// conf has BUILD_DEPENDS_REBUILD): whether one of its BUILD_DEPENDS has a version in the
/// tree other than the one recorded (or none recorded), as dkms 3.2.2's
/// check_dependencies_updated.
pub fn dependencies_updated(
    tree: &Tree,
    mv: &ModuleVersion,
    target: &Target,
    conf: &ModuleConf,
) -> bool {
    let built_dir = tree.built_dir(mv, target);
    conf.build_depends.iter().any(|dep| {
        let Some(version) = newest_version(tree, dep) else {
            return false;
        };
        match std::fs::read_to_string(built_dir.join(format!(".dep_{dep}"))) {
            // `$(cat file)`: trailing newlines off.
            Ok(old) => old.trim_end_matches('\n') != version,
            Err(_) => true,
        }
    })
}

/// `<build>/<BUILT_MODULE_LOCATION>/<name>.ko`.
fn built_module_path(build_dir: &Path, location: &str, name: &str) -> PathBuf {
    build_dir
        .join(location.trim_start_matches('/'))
        .join(format!("{name}.ko"))
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

/// The scripts a dkms.conf may name, by the directive that names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptKind {
    PreBuild,
    PostBuild,
    PreInstall,
    PostInstall,
    PostAdd,
    PostRemove,
}

impl std::fmt::Display for ScriptKind {
    /// The name dkms's messages use: `Running the pre_build script:`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ScriptKind::PreBuild => "pre_build",
            ScriptKind::PostBuild => "post_build",
            ScriptKind::PreInstall => "pre_install",
            ScriptKind::PostInstall => "post_install",
            ScriptKind::PostAdd => "post_add",
            ScriptKind::PostRemove => "post_remove",
        })
    }
}

/// Run a dkms.conf script (PRE_BUILD, POST_INSTALL, ...) as dkms's `run_build_script` does:
/// `<dir>/<script>` if its first word is executable, with the remaining words as arguments.
pub fn run_script(
    kind: ScriptKind,
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
        console.say("");
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
    // Its output goes straight to ours, after the lines said before it.
    let status = crate::console::unheld(|| cmd.status()).map_err(|e| io_error(&program, e))?;
    Ok(status.success())
}

pub(crate) fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

pub(crate) fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| is_executable(&dir.join(program)))
    })
}

pub(crate) fn run_quiet(cmd: &mut Command, about: &Path) -> Result<(), ActionError> {
    let out = cmd.output().map_err(|e| io_error(about, e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(ActionError::Command {
            argv: std::iter::once(cmd.get_program())
                .chain(cmd.get_args())
                .map(ToOwned::to_owned)
                .collect(),
            code: out.status.code(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
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

pub(crate) fn remove_file_if_exists(file: &Path) -> Result<(), ActionError> {
    match std::fs::remove_file(file) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(file, e)),
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
