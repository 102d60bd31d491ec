//! Shared test harness: real tools, real headers, scratch directories.
//!
//! A test that needs a tool or kernel headers asks [`require_tool`] / [`require_kernels`].
//! Under `CI=true` (`.ci/run` sets it) a missing one fails the test, so CI can never pass by
//! skipping. Outside CI it skips the test, and a skip must not look like a pass: a
//! `SKIPPED` line goes straight to the terminal (past libtest's capture), and to
//! `target/tmp/skipped.log`, which `.ci/test` lists at the end of the run.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// True when running under CI (`CI=true`), where nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skip (outside CI) or fail (under CI) because `what` is missing.
/// Returns false so callers can write `if !require_tool("x") { return; }`.
pub fn missing(what: &str) -> bool {
    if in_ci() {
        panic!("CI=true and {what} is missing: install it in .ci/run");
    }
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    let line = format!("SKIPPED {test}: {what} is missing\n");
    // Written to the file descriptor itself: eprintln! would be captured and, the test
    // passing, never shown.
    use std::io::Write;
    let _ = std::io::stderr().write_all(line.as_bytes());
    let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join("skipped.log");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
    {
        let _ = f.write_all(line.as_bytes());
    }
    false
}

/// Whether the program `tool` is on PATH (or in /usr/sbin, /sbin).
pub fn have_tool(tool: &str) -> bool {
    find_tool(tool).is_some()
}

/// Full path of `tool` found on PATH, /usr/sbin or /sbin.
pub fn find_tool(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
}

/// True if `tool` is there; otherwise skip or fail as [`missing`] says.
pub fn require_tool(tool: &str) -> bool {
    have_tool(tool) || missing(&format!("the tool `{tool}`"))
}

/// Kernel releases under /lib/modules whose headers are installed, sorted: the library's own
/// rule (dkms's `_check_kernel_dir`), so the tests use the kernels the tools will see.
/// Whatever Debian ships that day: no test names a real kernel release.
pub fn kernels_with_headers() -> Vec<String> {
    dkms::kernel::installed_kernels_with_headers()
        .into_iter()
        .map(|k| k.0)
        .collect()
}

/// A kernel release that looks like Debian's but is visibly fake (an ABI number of 900 or
/// more, which `.ci/check-kernel-names` allows): for kernels that must not exist.
pub const FAKE_KERNEL: &str = "6.1.0-999-amd64";

/// This machine's architecture as dkms computes it when no `-a` is given: `uname -m`,
/// asked of the real tool (never the code under test).
pub fn arch() -> String {
    static ARCH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ARCH.get_or_init(|| run_ok(Command::new("uname").arg("-m")).trim().to_owned())
        .clone()
}

/// The installed kernels with headers, or skip/fail when there are fewer than `n`.
pub fn require_kernels(n: usize) -> Option<Vec<String>> {
    let kernels = kernels_with_headers();
    if kernels.len() >= n {
        Some(kernels)
    } else {
        missing(&format!(
            "headers for {n} kernel(s) (found {kernels:?}; .ci/run installs two flavours' headers)"
        ));
        None
    }
}

/// dkms 3.0.10's `status` lines with its suffixes in dkms 3.2.2's words (module_status_built_extra):
/// the same findings, said as dkms-rs says them.
pub fn suffixes_of_3_2_2(status: &str) -> String {
    status
        .replace("(original_module exists)", "(Original modules exist)")
        .replace(
            "(WARNING! Diff between built and installed module!)",
            "(Differences between built and installed modules)",
        )
}

/// The examples/hello module of this repository.
pub fn hello_source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello")
}

/// `program` with a cleared environment: only this process's PATH and `LC_ALL=C.UTF-8`.
/// The caller's DEB*, DH_*, SOURCE_DATE_EPOCH, sign_file, KBUILD_*, HOME, ... never leak into
/// the tools under test; a test about one of them sets it with `.env()`.
pub fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into()),
        )
        .env("LC_ALL", "C.UTF-8");
    cmd
}

/// Run a command, returning (exit code, stdout, stderr); -1 for a death by signal.
pub fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Run a command, return its stdout; when it fails, panic with everything needed to see why:
/// the command (with the environment it was given), its working directory, its status and
/// output, and a listing of that directory when it is a scratch dir under the temp dir.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!("{}", failure_report(cmd, &out));
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What [`run_ok`] prints for a failed command.
pub fn failure_report(cmd: &Command, out: &std::process::Output) -> String {
    let cwd = cmd
        .get_current_dir()
        .map(Path::to_path_buf)
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_default();
    let mut report = format!(
        "command failed with {}\n  command: {cmd:?}\n  cwd: {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        cwd.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    if cwd.starts_with(std::env::temp_dir()) && cwd != std::env::temp_dir() {
        let entries = scratch::listing(&cwd);
        report.push_str(&format!(
            "--- {} ({} entries)\n",
            cwd.display(),
            entries.len()
        ));
        for entry in entries.iter().take(300) {
            report.push_str(&format!("  {entry}\n"));
        }
    }
    report
}

/// Booting Debian kernels in qemu with modules loaded from a busybox initramfs.
pub mod qemu;

/// The reference -dkms package built with dh + dh_dkms + dpkg-buildpackage.
pub mod debhelper;

/// Debian's source packages, fetched with apt's deb-src under a private configuration.
pub mod debian_src;

/// The checked-in inputs of the fuzz target `target` (`fuzz/corpus/<target>/`), sorted by
/// name, with their bytes; fails when there are none (the corpus is part of the repository).
pub fn fuzz_corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut inputs: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let path = e.expect("corpus entry").path();
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, data)
        })
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "{}: no inputs", dir.display());
    inputs
}

/// The dkms.conf of every Debian `-dkms` package apt knows (`apt-cache search -- -dkms`),
/// fetched once with `apt-get download` + `dpkg-deb -x` into `$DKMS_CONF_CORPUS` (default
/// `target/dkms-conf-corpus/`) and reused. Returns (package, dkms.conf path), sorted.
/// Skips (fails under CI) when apt cannot provide them.
pub fn dkms_conf_corpus() -> Option<Vec<(String, PathBuf)>> {
    if !require_tool("apt-get") || !require_tool("dpkg-deb") {
        return None;
    }
    let dir = std::env::var_os("DKMS_CONF_CORPUS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dkms-conf-corpus"),
        PathBuf::from,
    );
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    // Tests run in parallel: one fetches, the others wait on the lock.
    let lock = std::fs::File::create(dir.join(".lock")).expect("corpus lock file");
    lock.lock().expect("lock the corpus");
    let done = dir.join("complete");
    if !done.exists() {
        let search = Command::new("apt-cache")
            .args(["search", "--names-only", "--", "-dkms$"])
            .output();
        let packages: Vec<String> = search
            .iter()
            .flat_map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .into_owned()
                    .lines()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .filter(|p| p.ends_with("-dkms"))
            .collect();
        if packages.len() < 10 {
            missing(&format!(
                "apt package lists with -dkms packages (found {packages:?}; run apt-get update)"
            ));
            return None;
        }
        let debs = dir.join("debs");
        std::fs::create_dir_all(&debs).expect("corpus debs dir");
        for p in &packages {
            let ok = Command::new("apt-get")
                .args(["download", "-q", p])
                .current_dir(&debs)
                .output()
                .is_ok_and(|o| o.status.success());
            if !ok {
                missing(&format!("a download of {p} from the Debian mirror"));
                return None;
            }
        }
        for deb in std::fs::read_dir(&debs).expect("corpus debs").flatten() {
            let name = deb.file_name().to_string_lossy().into_owned();
            let Some(pkg) = name.split('_').next().filter(|_| name.ends_with(".deb")) else {
                continue;
            };
            let tmp = dir.join(format!("{pkg}.tmp"));
            let _ = std::fs::remove_dir_all(&tmp);
            run_ok(Command::new("dpkg-deb").arg("-x").arg(deb.path()).arg(&tmp));
            let _ = std::fs::remove_dir_all(dir.join(pkg));
            std::fs::rename(&tmp, dir.join(pkg)).expect("place extracted package");
        }
        std::fs::write(&done, "").expect("mark corpus complete");
    }
    let mut out = Vec::new();
    for pkg in std::fs::read_dir(&dir).expect("corpus dir").flatten() {
        let src = pkg.path().join("usr/src");
        for module in std::fs::read_dir(&src).into_iter().flatten().flatten() {
            let conf = module.path().join("dkms.conf");
            if conf.is_file() {
                out.push((pkg.file_name().to_string_lossy().into_owned(), conf));
            }
        }
    }
    out.sort();
    Some(out)
}

/// What dkms 3.0.10 itself resolves for `conf` on (kernel, arch), printed as
/// `dkms-rs conf show --format kv` prints it: /usr/sbin/dkms's own functions (everything before
/// its command-line parsing) are sourced, then `read_conf` runs as `dkms add <dir>` (empty
/// module, to learn the name) and `dkms build -m <name> -v <version>` (for the facts) do.
/// `etc_dir` replaces `/etc/dkms` for the `<module>*.conf` overrides. Runs in `cwd`.
pub fn dkms_oracle_show(
    conf: &Path,
    kernel: &str,
    arch: &str,
    etc_dir: &Path,
    cwd: &Path,
) -> String {
    oracle_show(
        Path::new("/usr/sbin/dkms"),
        conf,
        kernel,
        arch,
        etc_dir,
        cwd,
    )
}

/// [`dkms_oracle_show`] by Debian's dkms 3.2.2 ([`dkms_3_2_2`]; `None` when it is not
/// there): its read_conf (sparse arrays by highest index, zero modules valid, yes/no
/// values checked).
pub fn dkms_3_2_2_oracle_show(
    conf: &Path,
    kernel: &str,
    arch: &str,
    etc_dir: &Path,
    cwd: &Path,
) -> Option<String> {
    let dkms = dkms_3_2_2()?.join("usr/sbin/dkms");
    Some(oracle_show(&dkms, conf, kernel, arch, etc_dir, cwd))
}

fn oracle_show(
    dkms: &Path,
    conf: &Path,
    kernel: &str,
    arch: &str,
    etc_dir: &Path,
    cwd: &Path,
) -> String {
    let dkms = std::fs::read_to_string(dkms)
        .unwrap_or_else(|e| panic!("{} (the oracle): {e}", dkms.display()));
    let end = dkms
        .find("# Clear out command line argument variables")
        .expect("dkms 3 layout: command-line section");
    let functions = dkms[..end].replace("\"/etc/dkms/$module", "\"$ORACLE_ETC/$module");
    let driver = r#"
die_is_fatal=yes
module="" module_version="" conf="" kernel_config="" kconfig_fromcli="" kernel_source_dir="" ksourcedir_fromcli=""
read_conf "$ORACLE_K" "$ORACLE_A" "$ORACLE_CONF" >/dev/null 2>&1
module="$PACKAGE_NAME" module_version="$PACKAGE_VERSION" last_mvka=""
read_conf "$ORACLE_K" "$ORACLE_A" "$ORACLE_CONF" >/dev/null 2>&1 && valid=yes || valid=no
yn() { [[ $1 ]] && echo yes || echo no; }
{
echo "valid=$valid"
echo "package_name=$package_name"
echo "package_version=$package_version"
echo "make_command=$make_command"
echo "clean=$clean"
echo "autoinstall=$(yn "$AUTOINSTALL")"
echo "build_exclude=$(yn "$build_exclude")"
for ((i=0; i < ${#built_module_name[@]}; i++)); do
    echo "module.$i.built_name=${built_module_name[$i]}"
    echo "module.$i.built_location=${built_module_location[$i]}"
    echo "module.$i.dest_name=${dest_module_name[$i]}"
    echo "module.$i.dest_location=${dest_module_location[$i]}"
    [[ ${strip[$i]} != no ]] && echo "module.$i.strip=yes" || echo "module.$i.strip=no"
done
i=0
for p in "${patch_array[@]}"; do echo "patch.$i=$p"; i=$((i+1)); done
for v in pre_build post_build pre_install post_install post_add post_remove obsolete_by; do
    [[ ${!v} ]] && echo "$v=${!v}"
done
bd=$(for d in ${BUILD_DEPENDS[@]}; do printf '%s ' "$d"; done)
[[ $bd ]] && echo "build_depends=${bd% }"
} | LC_ALL=C sort
"#;
    let script = format!("{functions}\n{driver}");
    run_ok(
        Command::new("bash")
            .args(["--norc", "--noprofile", "-c", &script, "dkms"])
            .env("ORACLE_K", kernel)
            .env("ORACLE_A", arch)
            .env("ORACLE_CONF", conf)
            .env("ORACLE_ETC", etc_dir)
            .current_dir(cwd),
    )
}

/// A `bash` that logs each start before running the real one: first on a command's PATH
/// ([`BashLog::path_var`]), it tells whether the command started bash at all (dkms-rs runs
/// `bash` by name, from PATH).
pub struct BashLog {
    bin: PathBuf,
    log: PathBuf,
}

impl BashLog {
    /// The wrapper in `<dir>/bin/bash`, logging to `<dir>/bash.log`.
    pub fn new(dir: &Path) -> BashLog {
        use std::os::unix::fs::PermissionsExt;
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).expect("bin dir");
        let log = dir.join("bash.log");
        let real = find_tool("bash").expect("bash");
        let wrapper = bin.join("bash");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\necho started >>'{}'\nexec '{}' \"$@\"\n",
                log.display(),
                real.display()
            ),
        )
        .expect("bash wrapper");
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
            .expect("chmod bash wrapper");
        BashLog { bin, log }
    }

    /// PATH with the wrapper first.
    pub fn path_var(&self) -> String {
        let path = std::env::var("PATH").unwrap_or_default();
        format!("{}:{path}", self.bin.display())
    }

    /// How many times bash started since the last call.
    pub fn runs(&self) -> usize {
        let n = std::fs::read_to_string(&self.log)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        let _ = std::fs::remove_file(&self.log);
        n
    }
}

/// `conf show --format kv` output without the lines that say which reader read the file
/// (`reader=`, `needs_shell=`): what dkms itself resolves, to compare with
/// [`dkms_oracle_show`].
pub fn without_reader(kv: &str) -> String {
    kv.lines()
        .filter(|l| !l.starts_with("reader=") && !l.starts_with("needs_shell="))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// dpkg round trips: a test module no real package uses, and the guard that cleans it away.
pub mod dpkg;

/// Scratch dkms trees: temp `--dkmstree/--sourcetree/--installtree`, dkms-rs and dkms 3.0.10 on them.
pub mod scratch;

/// Debian's dkms 3.2.2 as `.ci/fetch-dkms-3.2.2` extracted it (under `$DKMS_RS_TEST_CACHE`,
/// else /var/cache/dkms-rs-tests); `None` (skip, or fail under CI) when it is not there.
pub fn dkms_3_2_2() -> Option<PathBuf> {
    let cache = std::env::var_os("DKMS_RS_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/dkms-rs-tests"));
    let dir = cache.join("dkms-3.2.2");
    if !dir.join("usr/sbin/dkms").is_file() {
        missing("dkms 3.2.2 extracted by .ci/fetch-dkms-3.2.2");
        return None;
    }
    Some(dir)
}

/// What a test that runs dkms 3.2.2 beside dkms-rs needs: `tools`, dkms 3.2.2 ([`dkms_3_2_2`])
/// and root (it runs in a private mount namespace); its extracted package, or `None` to skip.
pub fn dkms_3_2_2_with(tools: &[&str]) -> Option<PathBuf> {
    if !tools.iter().all(|t| require_tool(t)) {
        return None;
    }
    let reference = dkms_3_2_2()?;
    if !scratch::is_root() && !missing("root (dkms 3.2.2's namespace)") {
        return None;
    }
    Some(reference)
}

/// The names in `dir` (none when it cannot be read), sorted.
pub fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
