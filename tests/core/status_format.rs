//! `status --format json|plain`: one record per `status` line, in the same order, whose fields
//! say what the text line says (the text line, dkms 3.2.2's on the same tree, is the oracle);
//! and the options an action is not for, refused (while every option combination dkms 3.2.2's
//! own run_test.sh passes is still taken).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::dkms_3_2_2::Pair;
use crate::support;

use support::scratch::{Scratch, TRIVIAL, ok, run};

/// One record of `status --format json` or `plain`: the ten fields, `None` when absent.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    module: String,
    version: String,
    kernel: Option<String>,
    arch: Option<String>,
    state: String,
    original_modules: bool,
    modules_missing: bool,
    differs: bool,
    installed_version: Option<String>,
    make_log: Option<String>,
}

/// The records of `--format json` output: one array of objects with exactly the ten fields.
fn parse_json(out: &str) -> Vec<Record> {
    let doc: serde_json::Value = serde_json::from_str(out).expect("one JSON document");
    let items = doc.as_array().expect("a JSON array");
    items
        .iter()
        .map(|o| {
            let o = o.as_object().expect("an object");
            assert_eq!(o.len(), 10, "{o:?}");
            let s = |k: &str| o[k].as_str().map(str::to_owned);
            let b = |k: &str| o[k].as_bool().unwrap_or_else(|| panic!("{k} is a boolean"));
            Record {
                module: s("module").expect("module"),
                version: s("version").expect("version"),
                kernel: s("kernel"),
                arch: s("arch"),
                state: s("state").expect("state"),
                original_modules: b("original_modules"),
                modules_missing: b("modules_missing"),
                differs: b("differs"),
                installed_version: s("installed_version"),
                make_log: s("make_log"),
            }
        })
        .collect()
}

/// A `--format plain` value: `-` absent, `\\` `\t` `\n` `\r` `\-` unescaped.
fn plain_value(field: &str) -> Option<String> {
    if field == "-" {
        return None;
    }
    let mut out = String::new();
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('-') => out.push('-'),
            other => panic!("a bad escape \\{other:?} in {field:?}"),
        }
    }
    Some(out)
}

/// The records of `--format plain` output: one line each, ten tab-separated fields, no raw
/// tab, newline or carriage return in a field.
fn parse_plain(out: &str) -> Vec<Record> {
    assert!(out.is_empty() || out.ends_with('\n'), "{out:?}");
    out.lines()
        .map(|line| {
            assert!(!line.contains('\r'), "{line:?}");
            let fields: Vec<&str> = line.split('\t').collect();
            assert_eq!(fields.len(), 10, "{line:?}");
            let v = |i: usize| plain_value(fields[i]);
            let flag = |i: usize| match fields[i] {
                "yes" => true,
                "no" => false,
                other => panic!("flag {i} is {other:?}"),
            };
            Record {
                module: v(0).expect("module"),
                version: v(1).expect("version"),
                kernel: v(2),
                arch: v(3),
                state: v(4).expect("state"),
                original_modules: flag(5),
                modules_missing: flag(6),
                differs: flag(7),
                installed_version: v(8),
                make_log: v(9),
            }
        })
        .collect()
}

/// The `status` line a record stands for, in dkms 3.2.2's words (module_status_built_extra).
fn text_line(r: &Record) -> String {
    let mv = format!("{}/{}", r.module, r.version);
    match r.state.as_str() {
        "broken" | "added" => {
            assert_eq!((&r.kernel, &r.arch), (&None, &None), "{r:?}");
            format!("{mv}: {}", r.state)
        }
        state => {
            let installed = r.installed_version.as_deref() == Some(r.version.as_str());
            match state {
                "installed" => assert!(installed && !r.modules_missing, "{r:?}"),
                "built" => assert!(!installed && !r.modules_missing, "{r:?}"),
                "incomplete" => assert!(r.modules_missing, "{r:?}"),
                other => panic!("state {other:?}"),
            }
            let (k, a) = (r.kernel.as_deref().expect("kernel"), r.arch.as_deref());
            let word = if installed { "installed" } else { "built" };
            let mut line = format!("{mv}, {k}, {}: {word}", a.expect("arch"));
            if r.original_modules {
                line.push_str(" (Original modules exist)");
            }
            if r.modules_missing {
                line.push_str(" (Built modules are missing in the kernel modules folder)");
            } else if r.differs {
                line.push_str(" (Differences between built and installed modules)");
            }
            line
        }
    }
}

/// `status` of `s` by dkms-rs in the three formats: (text, json records, plain records),
/// the two record lists the same, each exiting as the text does.
fn statuses(s: &Scratch, args: &[&str]) -> (String, Vec<Record>) {
    let with = |format: Option<&str>| {
        let mut a = vec!["status"];
        a.extend(args);
        if let Some(f) = format {
            a.extend(["--format", f]);
        }
        run(&mut s.dkms_rs(&a))
    };
    let text = with(None);
    let json = with(Some("json"));
    let plain = with(Some("plain"));
    assert_eq!((json.0, &json.2), (text.0, &text.2), "json: {json:?}");
    assert_eq!((plain.0, &plain.2), (text.0, &text.2), "plain: {plain:?}");
    let records = parse_json(&json.1);
    assert_eq!(parse_plain(&plain.1), records, "plain and json differ");
    (text.1, records)
}

/// The module file `name` installed for `kernel` (compressed or not), as dkms put it.
fn installed_file(s: &Scratch, kernel: &str, name: &str) -> PathBuf {
    let dir = s.install_tree.join(kernel).join("updates/dkms");
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{name}.ko")))
        })
        .unwrap_or_else(|| panic!("{name} not installed in {}", dir.display()))
}

/// Every state and every flag, made by real builds on a kernel with headers in two trees
/// (dkms-rs's, dkms 3.2.2's): the text `status` is 3.2.2's, and each json/plain record of
/// dkms-rs says what its text line says, line for line.
#[test]
fn records_agree_with_the_text_lines_in_every_state() {
    let Some((pair, k)) = Pair::on_a_kernel() else {
        return;
    };
    let k = k.as_str();
    let arch = support::arch();
    pair.each(|s| {
        for m in [
            "added",
            "built",
            "installed",
            "incomplete",
            "differs",
            "original",
            "gone",
        ] {
            s.write_module(m, "1.0", "", TRIVIAL);
        }
        s.write_module("failing", "1.0", "", "int this is not C;");
        s.write_module("multi", "1.0", "", TRIVIAL);
        s.write_module("multi", "2.0", "", TRIVIAL);
    });
    let both = |args: &[&str]| {
        let (ours, theirs) = pair.run(args);
        assert_eq!(
            ours.0,
            theirs.0,
            "dkms {}: {ours:?} vs {theirs:?}",
            args.join(" ")
        );
        ours.0
    };
    for m in [
        "added",
        "built",
        "installed",
        "incomplete",
        "differs",
        "original",
        "gone",
        "failing",
        "multi/1.0",
        "multi/2.0",
    ] {
        let mv = if m.contains('/') {
            m.to_owned()
        } else {
            format!("{m}/1.0")
        };
        assert_eq!(both(&["add", &mv]), 0, "add {mv}");
    }
    for mv in ["built/1.0", "incomplete/1.0", "multi/1.0"] {
        assert_eq!(both(&["build", mv, "-k", k]), 0, "build {mv}");
    }
    for mv in ["installed/1.0", "differs/1.0", "original/1.0", "multi/2.0"] {
        assert_eq!(both(&["install", mv, "-k", k]), 0, "install {mv}");
    }
    assert_eq!(both(&["build", "failing/1.0", "-k", k]), 10, "make fails");
    pair.each(|s| {
        // A module file gone from the built dir: "(Built modules are missing ...)".
        let module = s
            .dkms_tree
            .join(format!("incomplete/1.0/{k}/{arch}/module"));
        std::fs::remove_dir_all(&module).unwrap();
        std::fs::create_dir(&module).unwrap();
        // The installed file changed: "(Differences between built and installed modules)".
        let file = installed_file(s, k, "differs");
        let mut bytes = std::fs::read(&file).unwrap();
        bytes.extend_from_slice(b"changed");
        std::fs::write(&file, bytes).unwrap();
        // What an install that replaced a kernel's own module keeps.
        std::fs::create_dir_all(
            s.dkms_tree
                .join(format!("original/original_module/{k}/{arch}")),
        )
        .unwrap();
        std::fs::remove_dir_all(s.source_tree.join("gone-1.0")).unwrap();
    });
    let theirs_log = pair.theirs.dkms_tree.join("failing/1.0/build/make.log");
    assert!(
        theirs_log.is_file(),
        "3.2.2 keeps a failed build's make.log"
    );

    let text = pair.same(&["status"]).1;
    let (ours_text, records) = statuses(&pair.ours, &[]);
    assert_eq!(ours_text, text);
    let lines: Vec<String> = records.iter().map(text_line).collect();
    assert_eq!(lines, text.lines().collect::<Vec<_>>(), "{records:#?}");
    let states: BTreeSet<&str> = records.iter().map(|r| r.state.as_str()).collect();
    assert_eq!(
        states,
        BTreeSet::from(["added", "broken", "built", "incomplete", "installed"])
    );
    let of = |m: &str, v: &str| {
        records
            .iter()
            .find(|r| r.module == m && r.version == v)
            .unwrap_or_else(|| panic!("no record of {m}/{v}: {records:#?}"))
    };
    // Installed by another version: the text says only "built".
    assert_eq!(of("multi", "1.0").state, "built");
    assert_eq!(of("multi", "1.0").installed_version.as_deref(), Some("2.0"));
    assert_eq!(of("built", "1.0").installed_version, None);
    // The failed build's log, where 3.2.2 keeps it too; no log where no build failed.
    let log = pair.ours.dkms_tree.join("failing/1.0/build/make.log");
    assert_eq!(
        of("failing", "1.0").make_log,
        Some(log.display().to_string())
    );
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("this is not C")
    );
    for r in records.iter().filter(|r| r.module != "failing") {
        assert_eq!(r.make_log, None, "{r:?}");
    }
    // One kernel: the same records, that kernel's.
    let (one_text, one) = statuses(&pair.ours, &["-k", k]);
    assert_eq!(one_text, pair.same(&["status", "-k", k]).1);
    assert_eq!(
        one.iter().map(text_line).collect::<Vec<_>>(),
        one_text.lines().collect::<Vec<_>>()
    );
    // One module.
    let (m_text, m) = statuses(&pair.ours, &["multi"]);
    assert_eq!(m_text, pair.same(&["status", "multi"]).1);
    assert_eq!(m.len(), 2, "{m:?}");
}

/// Names with a tab, a newline, a backslash, and a version `-`: `add` takes them (as dkms
/// 3.2.2 does), the text line cannot be split back, plain and json records give them exactly.
#[test]
fn hostile_names_are_whole_fields() {
    let s = Scratch::new(&[support::FAKE_KERNEL.to_owned()]);
    let names = [
        ("tab\there", "1.0"),
        ("new\nline", "1.0"),
        ("back\\slash", "-"),
    ];
    for (name, version) in names {
        s.write_module(name, version, "", TRIVIAL);
        ok(&mut s.dkms_rs(&["add", "-m", name, "-v", version]));
    }
    // Only added (no headers needed), one with a built dir for the fake kernel made by hand.
    let built = s.dkms_tree.join(format!(
        "tab\there/1.0/{}/{}/module",
        support::FAKE_KERNEL,
        support::arch()
    ));
    std::fs::create_dir_all(&built).unwrap();
    std::fs::write(built.join("tab\there.ko"), "not a module").unwrap();
    let (text, records) = statuses(&s, &[]);
    assert_eq!(
        text.lines().count(),
        4,
        "the newline splits a text line: {text:?}"
    );
    let got: BTreeSet<(String, String, Option<String>)> = records
        .iter()
        .map(|r| (r.module.clone(), r.version.clone(), r.kernel.clone()))
        .collect();
    let fake = Some(support::FAKE_KERNEL.to_owned());
    let want: BTreeSet<(String, String, Option<String>)> = [
        ("back\\slash", "-", None),
        ("new\nline", "1.0", None),
        ("tab\there", "1.0", fake),
    ]
    .into_iter()
    .map(|(m, v, k)| (m.to_owned(), v.to_owned(), k))
    .collect();
    assert_eq!(got, want);
    assert_eq!(
        records.iter().map(text_line).collect::<Vec<_>>().join("\n") + "\n",
        text
    );
}

/// An empty tree: `[]` and no lines; an unknown format, or a format of the other action, is
/// refused naming the option and the action, exit 2.
#[test]
fn empty_tree_and_formats_of_other_actions() {
    let s = Scratch::new(&[]);
    assert_eq!(ok(&mut s.dkms_rs(&["status", "--format", "json"])), "[]\n");
    assert_eq!(ok(&mut s.dkms_rs(&["status", "--format", "plain"])), "");
    assert_eq!(ok(&mut s.dkms_rs(&["status", "--format", "text"])), "");
    for (args, option, action) in [
        (&["status", "--format", "kv"][..], "--format kv", "status"),
        (
            &["conf", "show", "--format", "plain", "/nonexistent"][..],
            "--format plain",
            "conf",
        ),
        (
            &["build", "x/1", "--format", "json"][..],
            "--format",
            "build",
        ),
    ] {
        let (code, out, err) = run(&mut s.dkms_rs(args));
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert_eq!(out, "");
        assert_one_refusal(&err, option, action);
    }
}

/// `err` is one line (and dkms's blank line after) naming `option` and `action`.
fn assert_one_refusal(err: &str, option: &str, action: &str) {
    let lines: Vec<&str> = err.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 1, "{err:?}");
    assert!(
        lines[0].starts_with(&format!(
            "Error! {option} does not apply to the action {action} "
        )),
        "{err:?}"
    );
}

/// An option of another action is refused for every action, before anything is read or
/// written: exit 2, one line. `--all` keeps dkms 3.2.2's own refusal where it has one.
#[test]
fn options_of_other_actions_are_refused() {
    let s = Scratch::new(&[support::FAKE_KERNEL.to_owned()]);
    let k = support::FAKE_KERNEL;
    let cases: [(&[&str], &str, &str); 12] = [
        (&["status", "--all"], "--all", "status"),
        (&["status", "--force"], "--force", "status"),
        (&["status", "-c", "/x/dkms.conf"], "-c", "status"),
        (&["remove", "x/1", "--all", "-j", "2"], "-j", "remove"),
        (&["remove", "x/1", "--all", "--force"], "--force", "remove"),
        (
            &["uninstall", "x/1", "-k", k, "--templatekernel", k],
            "--templatekernel",
            "uninstall",
        ),
        (&["autoinstall", "-m", "x"], "-m", "autoinstall"),
        (
            &["autoinstall", "x/1"],
            "the argument \"x/1\"",
            "autoinstall",
        ),
        (
            &["kernel_postinst", "-k", k, "--archive", "/x"],
            "--archive",
            "kernel_postinst",
        ),
        (&["mkdsc", "x/1", "-k", k], "-k", "mkdsc"),
        (&["add", "x/1", "--binaries-only"], "--binaries-only", "add"),
        (&["generate_mok", "--no-exec"], "--no-exec", "generate_mok"),
    ];
    for (args, option, action) in cases {
        let before = support::scratch::listing(s.dir.path());
        let (code, out, err) = run(&mut s.dkms_rs(args));
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert_one_refusal(&err, option, action);
        assert_eq!(
            support::scratch::listing(s.dir.path()),
            before,
            "{args:?} wrote"
        );
    }
    // dkms 3.2.2's refusals of --all stay (run_test.sh checks autoinstall's: exit 5).
    let (code, _, err) = run(&mut s.dkms_rs(&["autoinstall", "--all"]));
    assert_eq!(code, 5, "{err}");
    assert!(
        err.contains("does not support the --all parameter"),
        "{err}"
    );
}

/// Every `dkms ACTION ...` line of dkms 3.2.2's run_test.sh (its kernel a fake one, its
/// paths in a scratch dir) is taken by dkms-rs: none is refused for an option.
#[test]
fn every_option_run_test_sh_passes_is_taken() {
    let Some(reference) = support::dkms_3_2_2() else {
        return;
    };
    let suite = reference
        .parent()
        .unwrap_or(Path::new("/"))
        .join("dkms-3.2.2-src/run_test.sh");
    let Ok(script) = std::fs::read_to_string(&suite) else {
        support::missing("dkms 3.2.2's run_test.sh (.ci/fetch-dkms-3.2.2)");
        return;
    };
    let s = Scratch::new(&[support::FAKE_KERNEL.to_owned()]);
    let tmp = s.dir.path().display().to_string();
    let actions = [
        "add",
        "build",
        "install",
        "uninstall",
        "unbuild",
        "remove",
        "status",
        "autoinstall",
        "match",
        "mktarball",
        "ldtarball",
        "kernel_preinst",
        "kernel_postinst",
        "kernel_prerm",
        "generate_mok",
    ];
    let mut commands = BTreeSet::new();
    for line in script.lines() {
        // The suite's commands: `run_with_expected_output dkms ...`,
        // `run_with_expected_error N dkms ...`, or a line that is `dkms ...` (not the
        // `echo 'Running dkms ...'` around them).
        let line = line.trim_start();
        let rest = if let Some(r) = line.strip_prefix("run_with_expected_output dkms ") {
            r
        } else if let Some(r) = line.strip_prefix("run_with_expected_error ") {
            match r.split_once(" dkms ") {
                Some((code, r)) if code.chars().all(|c| c.is_ascii_digit()) => r,
                _ => continue,
            }
        } else if let Some(r) = line.strip_prefix("dkms ") {
            r
        } else {
            continue;
        };
        let words: Vec<String> = rest
            .split(['<', '|', ';', ')', '>'])
            .next()
            .unwrap_or_default()
            .replace("${KERNEL_VER}", support::FAKE_KERNEL)
            .replace("${tmpdir}", &tmp)
            .split_whitespace()
            .map(|w| w.trim_matches(['"', '\'']).to_owned())
            .collect();
        if words.first().is_some_and(|w| actions.contains(&w.as_str()))
            && words.iter().all(|w| !w.contains('$'))
        {
            commands.insert(words);
        }
    }
    assert!(commands.len() > 80, "{} commands found", commands.len());
    let flagged: BTreeSet<&str> = commands
        .iter()
        .flatten()
        .filter(|w| w.starts_with('-'))
        .map(String::as_str)
        .collect();
    assert!(flagged.is_superset(&BTreeSet::from([
        "--all", "--force", "--config", "-k", "-m", "-v"
    ])));
    for words in &commands {
        let args: Vec<&str> = words.iter().map(String::as_str).collect();
        let (code, out, err) = run(&mut s.dkms_rs(&args));
        assert!(
            !err.contains("does not apply to the action"),
            "dkms {}: {code} {out}{err}",
            args.join(" ")
        );
    }
}

/// dkms 3.2.2 takes no `<m>/kernel-*-*` name for a version (list_module_version_combos skips
/// install's `kernel-<k>-<a>` links, and anything so named): neither a version dir by that
/// name with a source, nor install's own link once its target dir holds a `source`. A
/// `kernel-<x>` name (no second dash) is a version as any other. dkms-rs says what 3.2.2
/// says on the same tree.
#[test]
fn kernel_link_names_are_no_versions_as_for_dkms_3_2_2() {
    let Some(reference) = support::dkms_3_2_2_with(&["make", "unshare", "dkms"]) else {
        return;
    };
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let k = kernels[0].as_str();
    let s = Scratch::new(&kernels);
    let source = s.write_module("klinks", "1.0", "", TRIVIAL);
    for action in ["add", "build", "install"] {
        ok(&mut s.dkms_rs(&[action, "klinks/1.0", "-k", k]));
    }
    let arch = support::arch();
    let link = s.dkms_tree.join(format!("klinks/kernel-{k}-{arch}"));
    assert!(link.is_symlink(), "install's link {}", link.display());
    // Through install's link, `source` is there now.
    let target = s.dkms_tree.join(format!("klinks/1.0/{k}/{arch}"));
    std::os::unix::fs::symlink(&source, target.join("source")).unwrap();
    assert!(link.join("source").is_dir());
    for v in ["kernel-9-x", "kernel-9"] {
        let dir = s.dkms_tree.join("klinks").join(v);
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink(&source, dir.join("source")).unwrap();
    }
    for args in [
        &["status"][..],
        &["status", "-m", "klinks", "-v", "kernel-9-x"],
    ] {
        let theirs = ok(&mut s.dkms_3_2_2(&reference, args));
        let ours = ok(&mut s.dkms_rs(args));
        assert_eq!(
            ours, theirs,
            "{args:?}: dkms-rs (left) vs dkms 3.2.2 (right)"
        );
        assert!(!theirs.contains("kernel-9-x"), "{theirs}");
        assert!(!theirs.contains(&format!("kernel-{k}")), "{theirs}");
    }
    let whole = ok(&mut s.dkms_3_2_2(&reference, &["status"]));
    assert!(whole.contains("klinks/kernel-9: added\n"), "{whole}");
    assert!(
        whole.contains(&format!("klinks/1.0, {k}, {arch}: installed")),
        "{whole}"
    );
}

/// Built dirs of one module version for several kernels: whole, with `module/` emptied, and
/// without `module/`; dkms-rs reads the dkms.conf once for them all and finds the first's
/// module files without a stat of `module/`, and says what dkms 3.2.2 says of each.
#[test]
fn built_incomplete_and_unbuilt_targets_of_one_version_as_for_dkms_3_2_2() {
    let Some(reference) = support::dkms_3_2_2_with(&["make", "unshare", "dkms", "cp"]) else {
        return;
    };
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let k = kernels[0].as_str();
    let s = Scratch::new(&kernels);
    s.write_module("targets", "1.0", "", TRIVIAL);
    for action in ["add", "build"] {
        ok(&mut s.dkms_rs(&[action, "targets/1.0", "-k", k]));
    }
    let arch = support::arch();
    let version = s.dkms_tree.join("targets/1.0");
    let built = version.join(format!("{k}/{arch}"));
    // Fake kernels (ABI 99x, never a release), ordered after and before the real one.
    for (fake, what) in [
        ("6.1.0-997-amd64", "whole"),
        ("6.1.0-998-amd64", "empty"),
        ("6.1.0-999-amd64", "none"),
    ] {
        let dir = version.join(fake);
        std::fs::create_dir_all(&dir).unwrap();
        ok(support::command("cp").arg("-a").arg(&built).arg(&dir));
        let module = dir.join(&arch).join("module");
        match what {
            "empty" => {
                std::fs::remove_dir_all(&module).unwrap();
                std::fs::create_dir(&module).unwrap();
            }
            "none" => std::fs::remove_dir_all(&module).unwrap(),
            _ => {}
        }
    }
    let theirs = ok(&mut s.dkms_3_2_2(&reference, &["status"]));
    let ours = ok(&mut s.dkms_rs(&["status"]));
    assert_eq!(ours, theirs, "dkms-rs (left) vs dkms 3.2.2 (right)");
    assert_eq!(theirs.lines().count(), 3, "{theirs}");
    assert!(theirs.contains("6.1.0-997-amd64"), "{theirs}");
    assert!(theirs.contains("6.1.0-998-amd64"), "{theirs}");
    assert!(!theirs.contains("6.1.0-999-amd64"), "{theirs}");
}
