//! Long builds talk, against real make and real kernel headers: off a terminal, nothing in the
//! first DKMS_RS_HEARTBEAT period, then at most one line per period on stderr naming the
//! module, the kernel and make.log (stdout and the rest of stderr as without it, which is what
//! the dkms 3.2.2 comparisons see); on a terminal (`script`), a status line redrawn in place
//! naming make.log, none with TERM=dumb or NO_COLOR; a failed `make -j` of many files shows
//! gcc's first `error:` line with its context and the log's path, not the tail of the log.

use crate::support;

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::scratch::{Scratch, TRIVIAL, ok, run};

/// A module `<name>-1.0` whose Makefile sleeps `secs` seconds in its rule before it runs
/// Kbuild against the kernel's headers (dkms.conf's MAKE: `make KDIR=$kernel_source_dir`).
fn slow_module(s: &Scratch, name: &str, secs: u32) {
    let dir = s.write_module(
        name,
        "1.0",
        "MAKE[0]=\"make KDIR=$kernel_source_dir\"\n",
        TRIVIAL,
    );
    std::fs::write(
        dir.join("Makefile"),
        format!("all:\n\tsleep {secs}\n\t$(MAKE) -C $(KDIR) M=$(CURDIR) modules\n"),
    )
    .unwrap();
    ok(&mut s.dkms_rs(&["add", &format!("{name}/1.0")]));
}

/// Run `cmd`, its stderr read line by line as it comes: (exit code, stdout, stderr's lines
/// each with when it arrived after the start).
fn run_timed(cmd: &mut Command) -> (i32, String, Vec<(Duration, String)>) {
    let started = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let out = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap());
    let err: Vec<(Duration, String)> = std::io::BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map(|l| (started.elapsed(), l.unwrap()))
        .collect();
    let code = child.wait().unwrap().code().unwrap_or(-1);
    (code, out.join().unwrap(), err)
}

#[test]
fn a_slow_build_off_a_terminal_says_at_most_one_heartbeat_per_period_naming_make_log() {
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let k = kernels[0].as_str();
    let s = Scratch::new(&kernels);
    slow_module(&s, "slowbeat", 7);
    let args = ["build", "slowbeat/1.0", "-k", k];
    let (code, out, err) = run_timed(s.dkms_rs(&args).env("DKMS_RS_HEARTBEAT", "2"));
    let text: String = err.iter().map(|(_, l)| format!("{l}\n")).collect();
    assert_eq!(code, 0, "{out}\n{text}");
    let log = s.dkms_tree.join("slowbeat/1.0/build/make.log");
    let beats: Vec<&(Duration, String)> = err
        .iter()
        .filter(|(_, l)| l.starts_with("dkms-rs: still building"))
        .collect();
    // A 7 s sleep, then the compile: at 2, 4 and 6 s at least.
    assert!(beats.len() >= 3, "{text}");
    for (_, line) in &beats {
        assert!(line.contains(&log.display().to_string()), "{line}");
        assert!(
            line.contains(&format!("slowbeat/1.0 for kernel {k} (")),
            "{line}"
        );
    }
    // Nothing in the first period, then at most one per period (as they arrive here).
    assert!(beats[0].0 >= Duration::from_millis(1900), "{beats:?}");
    for pair in beats.windows(2) {
        assert!(
            pair[1].0 - pair[0].0 >= Duration::from_millis(1500),
            "{beats:?}"
        );
    }
    // Without the knob (a minute) the same build says the same, heartbeats aside.
    ok(&mut s.dkms_rs(&["unbuild", "slowbeat/1.0", "-k", k]));
    let (code, plain_out, plain_err) = run(&mut s.dkms_rs(&args));
    assert_eq!(code, 0, "{plain_out}\n{plain_err}");
    assert_eq!(out, plain_out);
    let rest: String = err
        .iter()
        .filter(|(_, l)| !l.starts_with("dkms-rs: still building"))
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    assert_eq!(rest, plain_err);
    assert!(!plain_err.contains("still building"), "{plain_err}");
}

/// `argv` as one shell command line, for `script -c`.
fn shell_line(argv: &[&std::ffi::OsStr]) -> String {
    argv.iter()
        .map(|a| format!("'{}'", a.to_string_lossy().replace('\'', "'\\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `cmd` (a scratch's dkms-rs or dkms-postinst) run by `script` on a pseudo-terminal 200
/// columns wide, with `env` set: (exit code, what the terminal got).
fn on_terminal(cmd: &Command, env: &[(&str, &str)]) -> (i32, String) {
    let mut argv = vec![cmd.get_program()];
    argv.extend(cmd.get_args());
    let line = format!("stty cols 200; exec {}", shell_line(&argv));
    let mut script = support::command("script");
    script
        .args(["-qec", &line, "/dev/null"])
        .current_dir(cmd.get_current_dir().unwrap_or(Path::new("/")));
    for (k, v) in env {
        script.env(k, v);
    }
    let (code, out, err) = run(&mut script);
    (code, format!("{out}{err}"))
}

#[test]
fn a_build_on_a_terminal_redraws_a_status_line_naming_make_log() {
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    if !support::require_tool("script") {
        return;
    }
    let k = kernels[0].as_str();
    let s = Scratch::new(&kernels);
    slow_module(&s, "slowtty", 3);
    let args = ["build", "slowtty/1.0", "-k", k];
    let (code, screen) = on_terminal(&s.dkms_rs(&args), &[("TERM", "xterm")]);
    assert_eq!(code, 0, "{screen}");
    let log = s.dkms_tree.join("slowtty/1.0/build/make.log");
    let redraw = format!("\r\x1b[Kslowtty/1.0 ({k}) ");
    // Once a second through a 3 s sleep and the compile.
    assert!(screen.matches(&redraw).count() >= 3, "{screen:?}");
    let status: Vec<&str> = screen.split(redraw.as_str()).skip(1).collect();
    assert!(
        status[0].starts_with(&format!("0s: log {} (", log.display())),
        "{screen:?}"
    );
    // Cleared before the step's own line.
    assert!(
        screen.contains("\r\x1b[K\r\nBuilding module(s)... done.\r\n"),
        "{screen:?}"
    );
    // A terminal that cannot redraw in place, or a user who wants no escapes: none, and no
    // heartbeat in a build under a minute.
    for env in [[("TERM", "dumb")], [("NO_COLOR", "1")]] {
        ok(&mut s.dkms_rs(&["unbuild", "slowtty/1.0", "-k", k]));
        let mut env = env.to_vec();
        if env[0].0 == "NO_COLOR" {
            env.push(("TERM", "xterm"));
        }
        let (code, screen) = on_terminal(&s.dkms_rs(&args), &env);
        assert_eq!(code, 0, "{screen}");
        assert!(!screen.contains('\x1b'), "{env:?}: {screen:?}");
        assert!(!screen.contains("still building"), "{env:?}: {screen:?}");
        assert!(screen.contains("Building module(s)... done."), "{screen:?}");
    }
}

/// A module `manyerr-1.0` of 17 files built with `make -j4`: `bad.c`'s line 1 is gcc's
/// error, then 15 `#warning` lines push it out of the log's last lines.
fn failing_module(s: &Scratch) {
    let dir = s.write_module("manyerr", "1.0", "", TRIVIAL);
    let objs: Vec<String> = std::iter::once("bad.o".to_string())
        .chain((0..16).map(|i| format!("f{i}.o")))
        .chain(std::iter::once("main.o".to_string()))
        .collect();
    std::fs::rename(dir.join("manyerr.c"), dir.join("main.c")).unwrap();
    std::fs::write(
        dir.join("Kbuild"),
        format!("obj-m := manyerr.o\nmanyerr-objs := {}\n", objs.join(" ")),
    )
    .unwrap();
    for i in 0..16 {
        std::fs::write(
            dir.join(format!("f{i}.c")),
            format!("int manyerr_f{i}(void);\nint manyerr_f{i}(void) {{ return {i}; }}\n"),
        )
        .unwrap();
    }
    let mut bad = String::from("int manyerr_bad(void) { return 1 }\n");
    for i in 0..15 {
        bad.push_str(&format!("#warning \"filler {i}\"\n"));
    }
    std::fs::write(dir.join("bad.c"), bad).unwrap();
}

#[test]
fn a_failed_make_j_shows_gccs_first_error_with_the_log_path_not_the_tail() {
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let k = kernels[0].as_str();
    let s = Scratch::new(&kernels);
    failing_module(&s);
    let log = s.dkms_tree.join("manyerr/1.0/build/make.log");
    let first_error = "bad.c:1:";

    // dkms-postinst (a package's postinst, under apt): always the excerpt.
    let (code, out, err) = run(&mut s.dkms_postinst(&["configure", "manyerr", "1.0"]));
    assert_eq!(code, 10, "{out}\n{err}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("make -j"), "{text}");
    // The scenario: the log's end is make's and the filler's, not the error.
    let make_step: Vec<&str> = text
        .lines()
        .take_while(|l| !l.starts_with("# exit code:"))
        .collect();
    let tail = make_step[make_step.len() - 10..].join("\n");
    assert!(!tail.contains(first_error), "{tail}");
    assert!(tail.contains("Error 2"), "{tail}");
    let error_line = text
        .lines()
        .find(|l| l.contains(first_error) && l.contains(" error: "))
        .unwrap_or_else(|| panic!("no gcc error in {text}"));
    assert!(err.contains(&format!("    {error_line}\n")), "{err}");
    assert!(
        err.contains(&format!("    Full log: {}\n", log.display())),
        "{err}"
    );

    // dkms-rs off a terminal: dkms 3.2.2's lines, no excerpt.
    // (configure left it added, as common.postinst does.)
    let args = ["build", "manyerr/1.0", "-k", k, "-j", "4"];
    let (code, out, err) = run(&mut s.dkms_rs(&args));
    assert_eq!(code, 10, "{out}\n{err}");
    assert!(!err.contains(first_error), "{err}");
    assert!(
        err.ends_with(&format!(
            "Consult {} for more information.\n",
            log.display()
        )),
        "{err}"
    );

    // dkms-rs on a terminal: 3.2.2's lines, then the excerpt.
    if support::require_tool("script") {
        let (code, screen) = on_terminal(&s.dkms_rs(&args), &[("TERM", "xterm")]);
        assert_eq!(code, 10, "{screen}");
        let consult = format!("Consult {} for more information.\r\n", log.display());
        let after = screen
            .split_once(&consult)
            .unwrap_or_else(|| panic!("{screen:?}"))
            .1;
        let error_line = std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .find(|l| l.contains(first_error) && l.contains(" error: "))
            .unwrap()
            .to_string();
        assert!(
            after.contains(&format!("    {error_line}\r\n")),
            "{screen:?}"
        );
        assert!(
            after.contains(&format!("    Full log: {}\r\n", log.display())),
            "{screen:?}"
        );
    }
}

#[test]
fn parallel_builds_on_a_terminal_share_one_line_in_turn() {
    let Some(kernels) = support::require_kernels(2) else {
        return;
    };
    if !support::require_tool("script") {
        return;
    }
    let s = Scratch::new(&kernels[..2]);
    slow_module(&s, "slowpar", 4);
    let args = [
        "build",
        "slowpar/1.0",
        "-k",
        &kernels[0],
        "-k",
        &kernels[1],
        "-j",
        "2",
    ];
    let (code, screen) = on_terminal(&s.dkms_rs(&args), &[("TERM", "xterm")]);
    assert_eq!(code, 0, "{screen}");
    // The jobs' count in brief, then one build's progress, each kernel's in turn.
    for k in &kernels[..2] {
        assert!(
            screen.contains(&format!("\r\x1b[K[0/2] | slowpar/1.0 ({k}) ")),
            "{screen:?}"
        );
    }
    // Never more than a row of the 200-column terminal.
    for drawn in screen.split('\r') {
        assert!(drawn.chars().count() < 200 + 3, "{drawn:?}");
    }
    assert_eq!(
        screen.matches("Building module(s)... done.").count(),
        2,
        "{screen:?}"
    );
}
