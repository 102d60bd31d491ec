//! Upstream dkms's own acceptance suite, `run_test.sh` of dkms 3.2.2 (all its sections), run
//! by `upstream_suite.sh` beside this file in a private mount namespace (the host's
//! /var/lib/dkms, /usr/src, /lib/modules and /etc are untouched; see its header and
//! tests/README.md), with a kernel with headers found at run time shown as `uname -r`.
//!
//! First on dkms 3.2.2 itself, as Debian ships it (`.ci/fetch-dkms-3.2.2`): the baseline,
//! every check passes. Then on dkms-rs as the `dkms-rs` package installs it (`/usr/sbin/dkms`
//! its binary, debian/'s framework.conf, framework.conf.d/ and dkms_autoinstaller): every
//! check passes and the suite reaches its end, but the checks [`EXCLUDED`] lists (those that
//! cannot apply, each with its reason; none today).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::support;

/// Checks of run_test.sh (by line) that cannot apply to dkms-rs, each with its reason.
const EXCLUDED: &[(u32, &str)] = &[];

/// The test cache of `.ci/fetch-dkms-3.2.2`.
fn cache() -> PathBuf {
    std::env::var_os("DKMS_RS_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/dkms-rs-tests"))
}

/// dkms 3.2.2's extracted binary package and source, when they are there and the namespace
/// can be made (root, cc for the uname shim, an existing /var/lib/dkms to bind over).
fn reference() -> Option<(PathBuf, PathBuf)> {
    let root = cache().join("dkms-3.2.2");
    let src = cache().join("dkms-3.2.2-src");
    if !root.join("usr/sbin/dkms").is_file() || !src.join("run_test.sh").is_file() {
        support::missing("dkms 3.2.2 and its source extracted by .ci/fetch-dkms-3.2.2");
        return None;
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 || !Path::new("/var/lib/dkms").is_dir() {
        support::missing("root and /var/lib/dkms (the suite runs in a mount namespace)");
        return None;
    }
    for tool in ["unshare", "cc", "openssl", "modinfo", "stdbuf", "diff"] {
        if !support::require_tool(tool) {
            return None;
        }
    }
    Some((root, src))
}

/// What one run of the suite gave: the verdicts in order, as (verdict, line of run_test.sh).
struct Outcome {
    verdicts: Vec<(String, u32)>,
    failures_log: String,
    suite_log: String,
}

impl Outcome {
    fn count(&self, verdict: &str) -> usize {
        self.verdicts.iter().filter(|(v, _)| v == verdict).count()
    }
}

/// Run upstream_suite.sh on `dkms` (+ its autoinstaller and /etc/dkms) in a kept temp dir.
fn run_suite(
    name: &str,
    src: &Path,
    dkms: &Path,
    autoinstaller: &Path,
    etc_dkms: &Path,
    kernel: &str,
) -> Outcome {
    let work = tempfile::Builder::new()
        .prefix(&format!("upstream-suite-{name}."))
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/core/upstream_suite.sh");
    let mut cmd = support::command("bash");
    cmd.arg(script)
        .arg(work.path())
        .arg(src)
        .arg(dkms)
        .arg(autoinstaller)
        .arg(etc_dkms)
        .arg(kernel);
    // Its overlays lie on the machine's /usr and /lib/modules: not while a dpkg test installs.
    let lock = support::dpkg::share_lock();
    let (_code, out, err) = support::run(&mut cmd);
    drop(lock);
    let read = |f: &str| std::fs::read_to_string(work.path().join(f)).unwrap_or_default();
    let results = read("results");
    let verdicts = results
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_owned(), it.next()?.parse().ok()?))
        })
        .collect();
    let outcome = Outcome {
        verdicts,
        failures_log: read("failures.log"),
        suite_log: format!("{}{out}{err}", read("suite.log")),
    };
    // Kept for reading after the run: the last lines of the suite say where it stopped.
    let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("upstream-suite-{name}"));
    let _ = std::fs::remove_dir_all(&keep);
    std::fs::create_dir_all(&keep).unwrap();
    for f in ["results", "failures.log", "suite.log"] {
        let _ = std::fs::copy(work.path().join(f), keep.join(f));
    }
    outcome
}

/// Section (run_test.sh's `$only` names) and description (the last `echo '...'` before it)
/// of each line of run_test.sh.
fn describe(src: &Path) -> impl Fn(u32) -> (String, String) {
    let text = std::fs::read_to_string(src.join("run_test.sh")).unwrap();
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    move |line: u32| {
        let upto = &lines[..(line as usize).min(lines.len())];
        let section = upto
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("if [[ ! $only || $only = "))
            .and_then(|s| s.split(' ').next())
            .unwrap_or("setup")
            .to_owned();
        let what = upto
            .iter()
            .rev()
            .find_map(|l| {
                let l = l.trim();
                let l = l.strip_prefix("echo ")?;
                Some(l.trim_matches(|c| c == '\'' || c == '"').to_owned())
            })
            .unwrap_or_default();
        (section, what)
    }
}

fn etc_dkms_of_debian_dir(dir: &Path) {
    let debian = Path::new(env!("CARGO_MANIFEST_DIR")).join("debian");
    std::fs::create_dir_all(dir.join("framework.conf.d")).unwrap();
    std::fs::copy(debian.join("framework.conf"), dir.join("framework.conf")).unwrap();
    std::fs::copy(
        debian.join("autoinstall_all_kernels.conf"),
        dir.join("framework.conf.d/autoinstall_all_kernels.conf"),
    )
    .unwrap();
}

/// dkms 3.2.2 on its own suite, here: every check passes, the suite reaches its end.
#[test]
fn run_test_sh_passes_on_dkms_3_2_2() {
    let Some((root, src)) = reference() else {
        return;
    };
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let o = run_suite(
        "3.2.2",
        &src,
        &root.join("usr/sbin/dkms"),
        &root.join("usr/lib/dkms/dkms_autoinstaller"),
        &root.join("etc/dkms"),
        &kernels[0],
    );
    let pass = o.count("PASS");
    assert!(
        pass == o.verdicts.len() && pass > 500 && o.suite_log.contains("*** All tests successful"),
        "dkms 3.2.2 on its run_test.sh: {pass} of {} checks pass\n{}\n{}",
        o.verdicts.len(),
        o.failures_log,
        o.suite_log
    );
}

/// dkms-rs on dkms 3.2.2's suite: the passing checks stay at or above the floor.
#[test]
fn run_test_sh_on_dkms_rs() {
    let Some((_root, src)) = reference() else {
        return;
    };
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let etc = tempfile::tempdir().unwrap();
    etc_dkms_of_debian_dir(etc.path());
    let o = run_suite(
        "dkms-rs",
        &src,
        Path::new(env!("CARGO_BIN_EXE_dkms-rs")),
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("debian/dkms_autoinstaller"),
        etc.path(),
        &kernels[0],
    );
    let describe = describe(&src);
    let excluded: BTreeMap<u32, &str> = EXCLUDED.iter().copied().collect();
    let (mut pass, mut excl) = (0, 0);
    let mut failed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (verdict, line) in &o.verdicts {
        let (section, what) = describe(*line);
        if excluded.contains_key(line) {
            excl += 1;
        } else if verdict == "PASS" {
            pass += 1;
        } else {
            failed
                .entry(section)
                .or_default()
                .push(format!("{verdict} {line}: {what}"));
        }
    }
    let fail: usize = failed.values().map(Vec::len).sum();
    let mut report = format!(
        "dkms-rs on dkms 3.2.2's run_test.sh: {} checks run, {pass} passed, {fail} failed, \
         {excl} excluded\n",
        o.verdicts.len()
    );
    for (section, list) in &failed {
        report.push_str(&format!("[{section}] {} failed\n", list.len()));
        for l in list {
            report.push_str(&format!("  {l}\n"));
        }
    }
    std::fs::write(
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("upstream-suite-dkms-rs/report.txt"),
        &report,
    )
    .unwrap();
    eprint!("{report}");
    assert!(
        fail == 0
            && pass + excl == o.verdicts.len()
            && pass > 500
            && o.suite_log.contains("*** All tests successful"),
        "{report}\n{}\n{}",
        o.failures_log,
        o.suite_log
    );
}
