//! `conf show` says when a dkms.conf (or an /etc/dkms override) needs bash, which runs its
//! shell code; `--no-exec` refuses such a file with one line and exit 8, running nothing; the
//! overrides are read within the same limits as a dkms.conf (issue 9).
//!
//! That nothing ran is seen twice: the file's shell code would create a marker file, and
//! `bash` on PATH is a wrapper that logs each start before running the real bash.

use crate::hostile_names::run_bounded;
use crate::support::{self, BashLog, run, scratch::Scratch, scratch::listing};

use std::path::{Path, PathBuf};
use std::process::Command;

const KERNEL: &str = support::FAKE_KERNEL;

/// A scratch tree (the logging bash in it) and the marker a conf's shell code creates.
struct Case {
    s: Scratch,
    marker: PathBuf,
    bash: BashLog,
}

impl Case {
    fn new() -> Case {
        let s = Scratch::new(&[KERNEL.to_owned()]);
        let bash = BashLog::new(&s.dir.path().join("log"));
        let marker = s.dir.path().join("MARKER");
        Case { s, marker, bash }
    }

    /// A module source dir `<scratch>/in/<name>` holding `conf` as its dkms.conf.
    fn source_dir(&self, name: &str, conf: &str) -> PathBuf {
        let dir = self.s.dir.path().join("in").join(name);
        std::fs::create_dir_all(&dir).expect("source dir");
        std::fs::write(dir.join("dkms.conf"), conf).expect("dkms.conf");
        dir
    }

    /// `dkms-rs <args> <trees> --etcdir <etc>` with the logging bash first on PATH.
    fn dkms_rs(&self, args: &[&str]) -> Command {
        let mut cmd = self.s.dkms_rs(args);
        cmd.env("PATH", self.bash.path_var());
        cmd
    }

    fn conf_show(&self, global: &[&str], dir: &Path, format: &str) -> Command {
        let arch = support::arch();
        let mut args = global.to_vec();
        args.extend(["conf", "show", "--kernel", KERNEL, "-a", &arch]);
        args.extend(["--format", format, dir.to_str().expect("utf-8")]);
        self.dkms_rs(&args)
    }

    fn bash_runs(&self) -> usize {
        self.bash.runs()
    }

    /// Whether the conf's shell code ran (and forget it).
    fn ran(&self) -> bool {
        let ran = self.marker.exists();
        let _ = std::fs::remove_file(&self.marker);
        ran
    }

    /// The scratch dir's listing, without what the checks themselves write.
    fn snapshot(&self) -> Vec<String> {
        let mut l = listing(self.s.dir.path());
        l.retain(|p| p != "tree/.dkms-rs.lock" && !p.starts_with("log") && p != "MARKER");
        l
    }
}

/// A valid dkms.conf whose line 3 is shell code that creates `marker`.
fn shell_conf(name: &str, marker: &Path) -> String {
    format!(
        "PACKAGE_NAME={name}\nPACKAGE_VERSION=1\n: \"$(touch '{}')\"\n\
         BUILT_MODULE_NAME[0]={name}\nDEST_MODULE_LOCATION[0]=/updates\n",
        marker.display()
    )
}

fn plain_conf(name: &str) -> String {
    format!(
        "PACKAGE_NAME={name}\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME[0]={name}\n\
         DEST_MODULE_LOCATION[0]=/updates\n"
    )
}

fn kv_has(kv: &str, line: &str) -> bool {
    kv.lines().any(|l| l == line)
}

#[test]
fn conf_show_says_when_bash_runs_the_file_and_why() {
    if !support::require_tool("bash") {
        return;
    }
    let c = Case::new();

    // Declarative: read natively, nothing run, nothing said.
    let plain = c.source_dir("plain", &plain_conf("plain"));
    let (code, out, err) = run(&mut c.conf_show(&[], &plain, "kv"));
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    assert!(kv_has(&out, "reader=native"), "{out}");
    assert!(!out.contains("needs_shell"), "{out}");
    assert_eq!(c.bash_runs(), 0, "bash started for a declarative file");

    // Shell code on line 3: bash reads it (and runs the code), and conf show says so.
    let sh = c.source_dir("sh", &shell_conf("sh", &c.marker));
    let conf = sh.join("dkms.conf");
    let (code, out, err) = run(&mut c.conf_show(&[], &sh, "kv"));
    assert_eq!(code, 0, "{out}{err}");
    assert!(kv_has(&out, "reader=bash"), "{out}");
    let why = format!("{}:3: a command or shell syntax", conf.display());
    assert!(kv_has(&out, &format!("needs_shell={why}")), "{out}");
    assert_eq!(
        err,
        format!(
            "dkms-rs: {}:3: needs bash (a command or shell syntax): its shell code is run\n",
            conf.display()
        )
    );
    assert!(c.ran(), "the note says the code ran: it did");
    assert!(c.bash_runs() >= 1);
    assert!(
        kv_has(&out, "valid=yes") && kv_has(&out, "package_name=sh"),
        "{out}"
    );

    let (code, json, _) = run(&mut c.conf_show(&[], &sh, "json"));
    assert_eq!(code, 0, "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(v["reader"], "bash");
    assert_eq!(v["needs_shell"]["file"], conf.to_str().expect("utf-8"));
    assert_eq!(v["needs_shell"]["line"], 3);
    assert_eq!(v["needs_shell"]["what"], "a command or shell syntax");
    assert!(c.ran());
    let (_, json, _) = run(&mut c.conf_show(&[], &plain, "json"));
    let v: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(v["reader"], "native");
    assert_eq!(v["needs_shell"], serde_json::Value::Null);

    // The override that needs bash is the one named.
    let over = c.s.etc_dir.join("plain.conf");
    std::fs::write(
        &over,
        format!("# local\nCLEAN=\"$(touch '{}')\"\n", c.marker.display()),
    )
    .expect("override");
    let (code, out, err) = run(&mut c.conf_show(&[], &plain, "kv"));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        kv_has(
            &out,
            &format!(
                "needs_shell={}:2: command or arithmetic substitution",
                over.display()
            )
        ),
        "{out}"
    );
    assert!(
        err.contains(&format!("{}:2: needs bash", over.display())),
        "{err}"
    );
    assert!(c.ran());
}

#[test]
fn no_exec_refuses_a_file_that_needs_bash_running_nothing() {
    if !support::require_tool("bash") {
        return;
    }
    let c = Case::new();
    // Control: without --no-exec, the wrapper sees bash start and the code runs.
    let sh = c.source_dir("sh", &shell_conf("sh", &c.marker));
    let conf = sh.join("dkms.conf");
    let (code, _, err) = run(&mut c.conf_show(&[], &sh, "kv"));
    assert_eq!(code, 0, "{err}");
    assert!(c.ran() && c.bash_runs() >= 1, "the checks see bash run");

    let refusal = |file: &Path, line: usize| {
        format!(
            "\nError! {}:{line}: needs bash (a command or shell syntax): \
             --no-exec refuses to run its shell code\n",
            file.display()
        )
    };
    for format in ["kv", "json"] {
        let (code, out, err) = run(&mut c.conf_show(&["--no-exec"], &sh, format));
        assert_eq!((code, out.as_str()), (8, ""), "{format}: {err}");
        assert_eq!(err, refusal(&conf, 3), "{format}");
        assert!(!c.ran(), "{format}: the shell code ran");
        assert_eq!(c.bash_runs(), 0, "{format}: bash started");
    }

    // A declarative file is read as without --no-exec.
    let plain = c.source_dir("plain", &plain_conf("plain"));
    let (code, out, err) = run(&mut c.conf_show(&["--no-exec"], &plain, "kv"));
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    assert!(kv_has(&out, "reader=native"), "{out}");

    // An override that needs bash is refused the same way, naming it.
    let over = c.s.etc_dir.join("plain-1.conf");
    std::fs::write(&over, format!("CLEAN=`touch '{}'`\n", c.marker.display())).expect("override");
    let (code, out, err) = run(&mut c.conf_show(&["--no-exec"], &plain, "kv"));
    assert_eq!((code, out.as_str()), (8, ""), "{err}");
    assert_eq!(
        err,
        format!(
            "\nError! {}:1: needs bash (command substitution): \
             --no-exec refuses to run its shell code\n",
            over.display()
        )
    );
    assert!(!c.ran());
    assert_eq!(c.bash_runs(), 0);
    std::fs::remove_file(&over).expect("rm override");

    // `add DIR` (read twice, to learn the name) and `add M/V` refuse it before writing.
    let before = c.snapshot();
    let (code, out, err) = run(&mut c.dkms_rs(&["--no-exec", "add", sh.to_str().expect("utf-8")]));
    assert_eq!(code, 8, "{out}{err}");
    assert_eq!(err, refusal(&conf, 3));
    assert_eq!(c.snapshot(), before, "add wrote something");
    assert!(!c.ran());
    assert_eq!(c.bash_runs(), 0);
    let in_tree = c.s.source_tree.join("sh-1");
    std::fs::create_dir_all(&in_tree).expect("source dir");
    std::fs::write(in_tree.join("dkms.conf"), shell_conf("sh", &c.marker)).expect("conf");
    let before = c.snapshot();
    let (code, out, err) = run(&mut c.dkms_rs(&["--no-exec", "add", "sh/1", "-k", KERNEL]));
    assert_eq!(code, 8, "{out}{err}");
    assert_eq!(err, refusal(&in_tree.join("dkms.conf"), 3));
    assert_eq!(c.snapshot(), before, "add wrote something");
    assert!(!c.ran());
    assert_eq!(c.bash_runs(), 0);
}

/// An override that is not a regular file, or is too big, is refused as a dkms.conf is: one
/// line naming it, exit 8, and never read (a FIFO does not block, /dev/zero is not read), by
/// both readers: a declarative dkms.conf (native) and one that needs bash.
#[test]
fn override_files_are_read_within_the_limits_of_a_dkms_conf() {
    if !support::require_tool("mkfifo") || !support::require_tool("bash") {
        return;
    }
    let c = Case::new();
    let plain = c.source_dir("ov", &plain_conf("ov"));
    let sh = c.source_dir("ovsh", &shell_conf("ov", &c.marker));
    let over = c.s.etc_dir.join("ov.conf");
    type Make = fn(&Path);
    let cases: [(&str, Make, String); 4] = [
        (
            "link to /dev/zero",
            |p| std::os::unix::fs::symlink("/dev/zero", p).expect("link"),
            "not a regular file (a character device)".into(),
        ),
        (
            "FIFO",
            |p| {
                support::run_ok(Command::new("mkfifo").arg(p));
            },
            "not a regular file (a FIFO)".into(),
        ),
        (
            "directory",
            |p| std::fs::create_dir(p).expect("dir"),
            "not a regular file (a directory)".into(),
        ),
        (
            "1 MiB + 1 byte",
            |p| std::fs::write(p, vec![b'#'; (1 << 20) + 1]).expect("big"),
            format!(
                "larger than 1 MiB ({} bytes), the most dkms-rs reads of a dkms.conf",
                (1 << 20) + 1
            ),
        ),
    ];
    // The shell conf in the source tree too, for `add ov/1`: the module's name is known
    // before reading, so its overrides are judged before bash starts.
    let in_tree = c.s.source_tree.join("ov-1");
    std::fs::create_dir_all(&in_tree).expect("source dir");
    std::fs::write(in_tree.join("dkms.conf"), shell_conf("ov", &c.marker)).expect("conf");
    for (what, make, says) in &cases {
        make(&over);
        let want = format!("\nError! {}: {says}\n", over.display());
        for dir in [&plain, &sh] {
            let (code, out, err) = run_bounded(&mut c.conf_show(&[], dir, "kv"), 20);
            assert_eq!((code, out.as_str()), (8, ""), "{what}: {err}");
            assert_eq!(err, want, "{what}: {}", dir.display());
            let before = c.snapshot();
            let add = ["add", dir.to_str().expect("utf-8"), "-k", KERNEL];
            let (code, out, err) = run_bounded(&mut c.dkms_rs(&add), 20);
            assert_eq!(code, 8, "{what}: add: {out}{err}");
            assert_eq!(err, want, "{what}: add {}", dir.display());
            assert_eq!(c.snapshot(), before, "{what}: add wrote something");
            // Reading `sh` to learn its name (it has no override yet) ran its code.
            assert_eq!(c.ran(), *dir == sh, "{what}: {}", dir.display());
        }
        c.bash_runs();
        let before = c.snapshot();
        let (code, out, err) = run_bounded(&mut c.dkms_rs(&["add", "ov/1", "-k", KERNEL]), 20);
        assert_eq!(code, 8, "{what}: add ov/1: {out}{err}");
        assert_eq!(err, want, "{what}: add ov/1");
        assert_eq!(c.snapshot(), before, "{what}: add ov/1 wrote something");
        assert!(
            !c.ran(),
            "{what}: bash ran the conf before judging its override"
        );
        assert_eq!(c.bash_runs(), 0, "{what}: bash started");
        if Path::new(&over).is_dir() {
            std::fs::remove_dir(&over).expect("rm dir");
        } else {
            std::fs::remove_file(&over).expect("rm override");
        }
    }
    // Exactly at the limit, the override is read.
    std::fs::write(&over, vec![b'#'; 1 << 20]).expect("edge");
    let (code, out, err) = run_bounded(&mut c.conf_show(&[], &plain, "kv"), 20);
    assert_eq!(code, 0, "{out}{err}");
}
