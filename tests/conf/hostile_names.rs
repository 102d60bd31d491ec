//! Hostile dkms.conf files: names and locations that would lead outside the trees, and files
//! dkms-rs must not read unboundedly (a link to /dev/zero, a FIFO, a directory, a huge file).
//! Each is refused by the real `dkms-rs` (`add DIR`, `ldtarball`, `conf show`, `build`,
//! `install`) with one line naming the file, line and directive, exit 8, and nothing written
//! outside the scratch trees: every escape below would land beside them, in the scratch dir,
//! whose whole listing is compared before and after. Debian's dkms 3.0.10 is asked (its own
//! `read_conf`, through `support::dkms_oracle_show`) what it makes of each file.

use crate::support::{self, run, scratch::Scratch, scratch::listing};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const KERNEL: &str = support::FAKE_KERNEL;

/// A module source dir `<scratch>/in/<name>` holding `conf` as its dkms.conf.
fn source_dir(s: &Scratch, name: &str, conf: &str) -> PathBuf {
    let dir = s.dir.path().join("in").join(name);
    std::fs::create_dir_all(&dir).expect("source dir");
    std::fs::write(dir.join("dkms.conf"), conf).expect("dkms.conf");
    dir
}

/// The scratch dir's listing without the tree lock (which any locking command creates).
fn snapshot(s: &Scratch) -> Vec<String> {
    let mut l = listing(s.dir.path());
    l.retain(|p| p != "tree/.dkms-rs.lock");
    l
}

/// `dkms-rs conf show --kernel <fake> -a <arch> <dir>` (a cleared environment).
fn conf_show(dir: &Path) -> Command {
    let mut cmd = support::command(env!("CARGO_BIN_EXE_dkms-rs"));
    cmd.args(["conf", "show", "--kernel", KERNEL, "-a", &support::arch()])
        .arg(dir);
    cmd
}

/// Run `cmd` with at most 1 GiB of address space and `secs` seconds: a reader that does not
/// stop (a link to /dev/zero, a FIFO) fails the test instead of the machine.
pub(crate) fn run_bounded(cmd: &mut Command, secs: u64) -> (i32, String, String) {
    use std::os::unix::process::CommandExt;
    // SAFETY: only setrlimit, which is async-signal-safe, runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 1 << 30,
                rlim_max: 1 << 30,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `err` is the one line `\nError! <conf>:<line>: '<directive>' ... (<directive>)`.
fn assert_one_line(err: &str, conf: &Path, line: Option<usize>, directive: &str, what: &str) {
    // dkms 3.2.2's frame (tests/core/conf_words_3_2_2.rs): the problem on its own line, then
    // "Bad conf file."; dkms-rs's own problems name file and line at the end.
    let place = match line {
        Some(l) => format!("{}:{l}", conf.display()),
        None => conf.display().to_string(),
    };
    // dkms 3.2.2's own problems first, when it has some (a lowercase array: its "array
    // length mismatch"), then dkms-rs's.
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines.len() >= 4, "{what}: {err}");
    let own = lines.len() - 4;
    assert!(
        lines[..own]
            .iter()
            .all(|l| l.starts_with("dkms.conf: Error! ")),
        "{what}: {err}"
    );
    assert!(
        lines[own].starts_with(&format!("dkms.conf: Error! '{directive}' directive "))
            && lines[own].ends_with(&format!(" ({place}).")),
        "{what}: {err}"
    );
    assert_eq!(
        &lines[own + 1..],
        &[
            "",
            "Error! Bad conf file.",
            &format!(
                "File: {} does not represent a valid dkms.conf file.",
                conf.display()
            )
        ],
        "{what}: {err}"
    );
}

/// What Debian's dkms 3.0.10 resolves for the dkms.conf in `dir` (kv lines).
fn oracle(dir: &Path) -> String {
    let etc = tempfile::tempdir().expect("oracle etc");
    let cwd = std::env::current_dir().expect("cwd");
    support::dkms_oracle_show(
        &dir.join("dkms.conf"),
        KERNEL,
        &support::arch(),
        etc.path(),
        &cwd,
    )
}

struct Hostile {
    what: &'static str,
    /// The dkms.conf: every escape lands in the scratch dir, beside the trees.
    conf: &'static str,
    directive: &'static str,
    line: usize,
    /// The complaint after the directive, as printed.
    says: &'static str,
}

const OK: &str = "BUILT_MODULE_NAME[0]=m\nDEST_MODULE_LOCATION[0]=/extra\n";

/// Names and locations dkms 3.0.10 accepts (`valid=yes`) and then uses to build paths.
/// dkms-rs refuses them deliberately: `..` or `/` in PACKAGE_NAME/PACKAGE_VERSION makes
/// `add`/`ldtarball` write outside `<source_tree>` and `<dkms_tree>`, a BUILT_MODULE_NAME or
/// BUILT_MODULE_LOCATION with `..` reads a module from outside the build dir, a
/// DEST_MODULE_NAME or DEST_MODULE_LOCATION with `..` installs it outside the kernel's modules
/// dir (where `remove --all` never looks again). DEST_MODULE_LOCATION is refused as written
/// even though Debian's `/updates/dkms` override hides it here: the same file escapes on
/// other distributions, and one dkms.conf means the same everywhere.
fn hostile() -> Vec<Hostile> {
    let h = |what, conf, directive, line, says| Hostile {
        what,
        conf,
        directive,
        line,
        says,
    };
    vec![
        h(
            "PACKAGE_NAME with ../",
            "PACKAGE_NAME=../canary\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME[0]=m\nDEST_MODULE_LOCATION[0]=/extra\n",
            "PACKAGE_NAME",
            1,
            "is not a single path component: it contains '/'",
        ),
        h(
            "PACKAGE_NAME ..",
            "PACKAGE_NAME=..\nPACKAGE_VERSION=canary\nBUILT_MODULE_NAME[0]=m\nDEST_MODULE_LOCATION[0]=/extra\n",
            "PACKAGE_NAME",
            1,
            "is not a single path component: it is '..'",
        ),
        h(
            "PACKAGE_NAME .",
            "PACKAGE_NAME=.\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME[0]=m\nDEST_MODULE_LOCATION[0]=/extra\n",
            "PACKAGE_NAME",
            1,
            "is not a single path component: it is '.'",
        ),
        h(
            "PACKAGE_NAME a/b, also the default BUILT_MODULE_NAME (reported once)",
            "PACKAGE_VERSION=1\nPACKAGE_NAME=\"a/b\"\nDEST_MODULE_LOCATION[0]=/extra\n",
            "PACKAGE_NAME",
            2,
            "is not a single path component: it contains '/'",
        ),
        h(
            "PACKAGE_VERSION with ../../",
            "PACKAGE_NAME=hn\nPACKAGE_VERSION=../../canary\nBUILT_MODULE_NAME[0]=m\nDEST_MODULE_LOCATION[0]=/extra\n",
            "PACKAGE_VERSION",
            2,
            "is not a single path component: it contains '/'",
        ),
        h(
            "PACKAGE_VERSION ..",
            "PACKAGE_NAME=hn\nPACKAGE_VERSION=..\nBUILT_MODULE_NAME[0]=m\nDEST_MODULE_LOCATION[0]=/extra\n",
            "PACKAGE_VERSION",
            2,
            "is not a single path component: it is '..'",
        ),
        h(
            "BUILT_MODULE_NAME with ../",
            "PACKAGE_NAME=hn\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME[0]=../../canary\nDEST_MODULE_LOCATION[0]=/extra\n",
            "BUILT_MODULE_NAME",
            3,
            "is not a single path component: it contains '/' in record #0",
        ),
        h(
            "DEST_MODULE_NAME with ../ (record 1)",
            "PACKAGE_NAME=hn\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME[0]=m\nDEST_MODULE_LOCATION[0]=/extra\n\
             BUILT_MODULE_NAME[1]=n\nDEST_MODULE_LOCATION[1]=/extra\nDEST_MODULE_NAME[1]=../../../../../canary\n",
            "DEST_MODULE_NAME",
            7,
            "is not a single path component: it contains '/' in record #1",
        ),
        h(
            "DEST_MODULE_NAME ..",
            "PACKAGE_NAME=hn\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME[0]=m\nDEST_MODULE_NAME[0]=..\nDEST_MODULE_LOCATION[0]=/extra\n",
            "DEST_MODULE_NAME",
            4,
            "is not a single path component: it is '..' in record #0",
        ),
        h(
            "dest_module_name set directly (dkms reads its lowercase arrays from the file too)",
            "PACKAGE_NAME=hn\nPACKAGE_VERSION=1\nbuilt_module_name[0]=m\ndest_module_location[0]=/extra\n\
             dest_module_name[0]=../../../../../canary\n",
            "DEST_MODULE_NAME",
            5,
            "is not a single path component: it contains '/' in record #0",
        ),
        h(
            "BUILT_MODULE_LOCATION with ..",
            "PACKAGE_NAME=hn\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME[0]=m\nBUILT_MODULE_LOCATION[0]=src/../../../canary\n\
             DEST_MODULE_LOCATION[0]=/extra\n",
            "BUILT_MODULE_LOCATION",
            4,
            "has a '..' component in record #0",
        ),
        h(
            "DEST_MODULE_LOCATION with .. after /kernel (dkms only checks the start)",
            "PACKAGE_NAME=hn\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME[0]=m\nDEST_MODULE_LOCATION[0]=/kernel/../../../../canary\n",
            "DEST_MODULE_LOCATION",
            4,
            "has a '..' component in record #0",
        ),
    ]
}

/// `dkms-rs add DIR` refuses each hostile file with exit 8 and one line, writes nothing, and
/// `conf show` prints what dkms 3.0.10 resolves, but `valid=no` where dkms says `valid=yes`.
#[test]
fn names_that_escape_the_trees_are_refused() {
    if !support::require_tool("dkms") {
        return;
    }
    for case in hostile() {
        let what = case.what;
        let s = Scratch::new(&[KERNEL.to_owned()]);
        // Where the escapes land: beside the trees. Kept as it is.
        std::fs::create_dir_all(s.dir.path().join("canary")).expect("canary");
        std::fs::write(s.dir.path().join("canary/untouched"), "x").expect("canary file");
        let dir = source_dir(&s, "m", case.conf);
        let conf = dir.join("dkms.conf");

        // dkms 3.0.10 accepts the file: dkms-rs deliberately does not (see `hostile`).
        let dkms = oracle(&dir);
        assert!(dkms.lines().any(|l| l == "valid=yes"), "{what}: {dkms}");
        let (code, out, err) = run(&mut conf_show(&dir));
        assert_eq!(code, 8, "{what}: {out}{err}");
        assert_eq!(
            support::without_reader(&out),
            dkms.replace("valid=yes\n", "valid=no\n"),
            "{what}: conf show resolves as dkms, refusing"
        );
        assert_one_line(&err, &conf, Some(case.line), case.directive, what);
        assert!(err.contains(case.says), "{what}: {err}");

        let before = snapshot(&s);
        let (code, out, err) = run(&mut s.dkms_rs(&["add", dir.to_str().expect("utf-8")]));
        assert_eq!(code, 8, "{what}: {out}{err}");
        assert_one_line(&err, &conf, Some(case.line), case.directive, what);
        assert!(err.contains(case.says), "{what}: {err}");
        assert_eq!(snapshot(&s), before, "{what}: add wrote something");
    }
}

/// Where dkms 3.0.10 refuses a file that also escapes, dkms-rs refuses it too, first for
/// dkms's own reason.
#[test]
fn where_dkms_refuses_its_reason_comes_first() {
    if !support::require_tool("dkms") {
        return;
    }
    let cases = [
        (
            "PACKAGE_NAME=hn\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME[0]=../canary.ko\nDEST_MODULE_LOCATION[0]=/extra\n",
            "BUILT_MODULE_NAME",
            3,
            "dkms.conf: Error! 'BUILT_MODULE_NAME' directive ends in '.o' or '.ko' in record #0.\n\
             dkms.conf: Error! 'DEST_MODULE_NAME' directive ends in '.o' or '.ko' in record #0.\n",
        ),
        (
            "PACKAGE_NAME=hn\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME[0]=m\nDEST_MODULE_LOCATION[0]=/lib/../canary\n",
            "DEST_MODULE_LOCATION",
            4,
            "dkms.conf: Error! Directive 'DEST_MODULE_LOCATION' does not begin with\n'/kernel', '/updates', or '/extra' in record #0.\n",
        ),
        (
            "PACKAGE_NAME=../canary\nPACKAGE_VERSION=\nBUILT_MODULE_NAME[0]=m\nDEST_MODULE_LOCATION[0]=/extra\n",
            "PACKAGE_NAME",
            1,
            "dkms.conf: Error! No 'PACKAGE_VERSION' directive specified.\n",
        ),
    ];
    // (file, dkms-rs's own problem after dkms's: its directive and line, dkms 3.2.2's words)
    for (text, own_directive, line, says) in cases {
        let s = Scratch::new(&[KERNEL.to_owned()]);
        let dir = source_dir(&s, "m", text);
        let dkms = oracle(&dir);
        assert!(dkms.lines().any(|l| l == "valid=no"), "{text}: {dkms}");
        let (code, out, err) = run(&mut conf_show(&dir));
        assert_eq!(code, 8, "{text}: {err}");
        assert_eq!(support::without_reader(&out), dkms, "{text}");
        assert!(err.contains(says), "{text}: {err}");
        let before = snapshot(&s);
        let (code, _, err) = run(&mut s.dkms_rs(&["add", dir.to_str().expect("utf-8")]));
        assert_eq!(code, 8, "{text}: {err}");
        // dkms's words first (3.2.2's frame), then dkms-rs's own problem, naming the line.
        let conf = dir.join("dkms.conf");
        assert!(err.starts_with(says), "{text}: {err}");
        let own = err[says.len()..].lines().next().unwrap_or_default();
        assert!(
            own.starts_with(&format!("dkms.conf: Error! '{}' directive ", own_directive))
                && own.ends_with(&format!("({}:{line}).", conf.display())),
            "{text}: {err}"
        );
        assert!(
            err.ends_with(&format!(
                "\nError! Bad conf file.\nFile: {} does not represent a valid dkms.conf file.\n",
                conf.display()
            )),
            "{err}"
        );
        assert_eq!(snapshot(&s), before, "{text}: add wrote something");
    }
}

/// A newline never reaches a name: dkms's safe_source (and dkms-rs's readers, both) echo
/// values unquoted, so it becomes a blank; `a b` is one path component and both accept it.
#[test]
fn a_newline_in_a_name_becomes_a_blank_in_both() {
    if !support::require_tool("dkms") {
        return;
    }
    let s = Scratch::new(&[KERNEL.to_owned()]);
    let dir = source_dir(
        &s,
        "m",
        "PACKAGE_NAME=\"nl\nname\"\nPACKAGE_VERSION=$'1\\n2'\nBUILT_MODULE_NAME[0]=m\nDEST_MODULE_LOCATION[0]=/extra\n",
    );
    let dkms = oracle(&dir);
    assert!(dkms.lines().any(|l| l == "valid=yes"), "{dkms}");
    assert!(dkms.lines().any(|l| l == "package_name=nl name"), "{dkms}");
    assert!(dkms.lines().any(|l| l == "package_version=1 2"), "{dkms}");
    let (code, out, err) = run(&mut conf_show(&dir));
    assert_eq!((code, support::without_reader(&out)), (0, dkms), "{err}");
    // `$'...'`: bash reads it, and says so.
    assert!(out.lines().any(|l| l == "reader=bash"), "{out}");
}

/// `ldtarball` reads the tarball's dkms.conf the same way: PACKAGE_NAME=../canary would put
/// the source in `<source_tree>/../canary-1`.
#[test]
fn ldtarball_refuses_names_that_escape() {
    if !support::require_tool("tar") {
        return;
    }
    let s = Scratch::new(&[KERNEL.to_owned()]);
    let work = tempfile::tempdir().expect("work dir");
    let src = work.path().join("dkms_source_tree");
    std::fs::create_dir_all(&src).expect("dkms_source_tree");
    std::fs::write(
        src.join("dkms.conf"),
        "PACKAGE_NAME=../canary\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME[0]=m\nDEST_MODULE_LOCATION[0]=/extra\n",
    )
    .expect("dkms.conf");
    std::fs::write(src.join("m.c"), "/* m */\n").expect("m.c");
    let tarball = work.path().join("canary-1.dkms.tar.gz");
    support::run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(work.path())
            .arg("-czf")
            .arg(&tarball)
            .arg("./dkms_source_tree"),
    );
    let before = snapshot(&s);
    let (code, out, err) =
        run(&mut s.dkms_rs(&["ldtarball", tarball.to_str().expect("utf-8"), "-k", KERNEL]));
    assert_eq!(code, 8, "{out}{err}");
    assert_eq!(err.lines().count(), 4, "{err}");
    assert!(
        err.starts_with(
            "dkms.conf: Error! 'PACKAGE_NAME' directive is not a single path component"
        ) && err.contains("dkms_source_tree/dkms.conf:1).\n\nError! Bad conf file.\n"),
        "{err}"
    );
    assert_eq!(snapshot(&s), before, "ldtarball wrote something");
}

/// A module added with a good dkms.conf whose file then says DEST_MODULE_NAME=../..: `build`
/// and `install` refuse it (before make: nothing is built), so no module is stored or
/// installed outside the trees, where `remove --all` would leave it; `remove --all` still
/// removes the module. Real headers: `build` would run make against them.
#[test]
fn build_and_install_refuse_a_dest_name_that_escapes() {
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let k = &kernels[0];
    let s = Scratch::new(std::slice::from_ref(k));
    s.add_module("hnm", "1.0", "", support::scratch::TRIVIAL);
    // From <install>/<k>/updates/dkms five levels up is the scratch dir; from the built
    // <tree>/hnm/1.0/<k>/<arch>/module, the dkms tree.
    std::fs::write(
        s.source_tree.join("hnm-1.0/dkms.conf"),
        "PACKAGE_NAME=\"hnm\"\nPACKAGE_VERSION=\"1.0\"\nBUILT_MODULE_NAME[0]=\"hnm\"\n\
         DEST_MODULE_LOCATION[0]=\"/updates\"\nDEST_MODULE_NAME[0]=\"../../../../../canary\"\n",
    )
    .expect("rewrite dkms.conf");
    let named = s.dkms_tree.join("hnm/1.0/source/dkms.conf");
    for verb in ["build", "install"] {
        let before = snapshot(&s);
        let (code, out, err) = run(&mut s.dkms_rs(&[verb, "-m", "hnm", "-v", "1.0", "-k", k]));
        assert_eq!(code, 8, "{verb}: {out}{err}");
        assert_one_line(&err, &named, Some(5), "DEST_MODULE_NAME", verb);
        assert_eq!(snapshot(&s), before, "{verb} wrote something");
    }
    support::run_ok(&mut s.dkms_rs(&["remove", "-m", "hnm", "-v", "1.0", "--all"]));
    assert!(!s.dkms_tree.join("hnm").exists());
    let left: Vec<String> = snapshot(&s)
        .into_iter()
        .filter(|p| p.contains("canary"))
        .collect();
    assert!(left.is_empty(), "left outside the trees: {left:?}");
}

/// Not a regular file, or larger than 1 MiB: refused with one line naming the file and why,
/// exit 8, without reading it (a FIFO with no writer does not block, /dev/zero is not read).
#[test]
fn files_that_are_not_a_dkms_conf_are_not_read() {
    let s = Scratch::new(&[KERNEL.to_owned()]);
    let good = format!("PACKAGE_NAME=hl\nPACKAGE_VERSION=1\n{OK}");
    let mut cases: Vec<(&str, PathBuf, String)> = Vec::new();

    let zero = s.dir.path().join("in/zero");
    std::fs::create_dir_all(&zero).expect("dir");
    std::os::unix::fs::symlink("/dev/zero", zero.join("dkms.conf")).expect("link");
    cases.push((
        "link to /dev/zero",
        zero,
        "not a regular file (a character device)".into(),
    ));

    let fifo = s.dir.path().join("in/fifo");
    std::fs::create_dir_all(&fifo).expect("dir");
    support::run_ok(Command::new("mkfifo").arg(fifo.join("dkms.conf")));
    cases.push(("FIFO", fifo, "not a regular file (a FIFO)".into()));

    let dir = s.dir.path().join("in/dir");
    std::fs::create_dir_all(dir.join("dkms.conf")).expect("dir");
    cases.push(("directory", dir, "not a regular file (a directory)".into()));

    let big = source_dir(&s, "big", &good);
    let mut text = good.clone().into_bytes();
    text.resize((1 << 20) + 1, b'#');
    std::fs::write(big.join("dkms.conf"), &text).expect("big dkms.conf");
    cases.push((
        "1 MiB + 1 byte",
        big,
        format!("larger than 1 MiB ({} bytes)", (1 << 20) + 1),
    ));

    for (what, dir, says) in &cases {
        let (code, out, err) = run_bounded(&mut conf_show(dir), 20);
        assert_eq!(code, 8, "{what}: {out}{err}");
        assert_eq!(out, "", "{what}");
        assert_eq!(err.lines().count(), 2, "{what}: {err}");
        let want = format!("\nError! {}: {says}", dir.join("dkms.conf").display());
        assert!(err.starts_with(&want), "{what}: {err}");
    }

    // `add` reads it through the same reader.
    let (_, big, says) = &cases[3];
    let before = snapshot(&s);
    let (code, out, err) = run_bounded(&mut s.dkms_rs(&["add", big.to_str().expect("utf-8")]), 20);
    assert_eq!(code, 8, "{out}{err}");
    assert_eq!(err.lines().count(), 2, "{err}");
    assert!(err.contains(says.as_str()), "{err}");
    assert_eq!(snapshot(&s), before, "add wrote something");

    // Exactly 1 MiB is still read.
    let edge = source_dir(&s, "edge", &good);
    let mut text = good.into_bytes();
    text.resize(1 << 20, b'#');
    std::fs::write(edge.join("dkms.conf"), &text).expect("1 MiB dkms.conf");
    let (code, out, err) = run_bounded(&mut conf_show(&edge), 20);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.lines().any(|l| l == "valid=yes"), "{out}");
}
