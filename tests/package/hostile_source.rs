//! Source trees dpkg cannot package: dkms-mkdeb refuses a file name dpkg-deb refuses (a
//! newline; dpkg-deb itself is asked) with one line naming the file, before writing anything,
//! and packages the odd names dpkg-deb carries (tab, carriage return). A dkms.conf whose
//! names would lead outside the package's paths is refused as every command refuses it.

use crate::support;

use std::fs;
use std::path::Path;
use std::process::Command;

use support::scratch::listing;
use support::{hello_source, require_tool, run, run_ok};

const MAINTAINER: &str = "Jane Doe <jane@example.org>";

/// `dkms-mkdeb --maintainer .. -o <out> <source>` with a cleared environment.
fn mkdeb(source: &Path, out: &Path) -> Command {
    let mut cmd = support::command(env!("CARGO_BIN_EXE_dkms-mkdeb"));
    cmd.args(["--maintainer", MAINTAINER, "-o"])
        .arg(out)
        .arg(source);
    cmd
}

/// The hello module copied to `<dir>/src`.
fn hello_copy(dir: &Path) -> std::path::PathBuf {
    let src = dir.join("src");
    run_ok(Command::new("cp").arg("-a").arg(hello_source()).arg(&src));
    src
}

/// dpkg-deb's own verdict on a data file named `name`: Ok, or its error line.
fn dpkg_deb_builds(work: &Path, name: &str) -> Result<(), String> {
    let root = work.join("dpkg-root");
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(root.join("DEBIAN")).expect("DEBIAN");
    fs::create_dir_all(root.join("usr/src/x")).expect("usr/src/x");
    fs::write(
        root.join("DEBIAN/control"),
        format!(
            "Package: x\nVersion: 1\nArchitecture: all\nMaintainer: {MAINTAINER}\nDescription: x\n"
        ),
    )
    .expect("control");
    fs::write(root.join("usr/src/x").join(name), "x\n").expect("odd file");
    let deb = work.join("dpkg-root.deb");
    let (code, _, err) = run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(&root)
        .arg(&deb));
    let _ = fs::remove_file(&deb);
    match code {
        0 => Ok(()),
        _ => Err(err),
    }
}

#[test]
fn names_dpkg_deb_refuses_are_refused_before_writing() {
    if !require_tool("dpkg-deb") {
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    // dpkg-deb refuses a newline (and nothing else of these): dkms-mkdeb agrees.
    let why = dpkg_deb_builds(work.path(), "nl\nname.c").expect_err("dpkg-deb takes a newline");
    assert!(why.contains("newline not allowed in pathname"), "{why}");
    for odd in ["tab\tname.c", "cr\rname.c", "back\\slash.c", "sp ace.c"] {
        dpkg_deb_builds(work.path(), odd).unwrap_or_else(|e| panic!("{odd:?}: {e}"));
    }

    // A file, then a directory, named with a newline.
    for (what, rel, named) in [
        ("file", "nl\nname.c", "nl\\nname.c"),
        ("directory", "sub\ndir/x.h", "sub\\ndir"),
    ] {
        let dir = tempfile::tempdir().expect("temp dir");
        let src = hello_copy(dir.path());
        let out = dir.path().join("out");
        fs::create_dir(&out).expect("out");
        let file = src.join(rel);
        fs::create_dir_all(file.parent().expect("parent")).expect("parent dir");
        fs::write(&file, "/* odd */\n").expect("odd file");
        let before = listing(dir.path());
        let (code, stdout, err) = run(&mut mkdeb(&src, &out));
        // Bad source content: the exit code of dkms-mkdeb's other source refusals (a FIFO, a
        // name that is not UTF-8).
        assert_eq!(code, 1, "{what}: {stdout}{err}");
        assert_eq!(err.lines().count(), 1, "{what}: {err}");
        assert!(
            err.starts_with("dkms-mkdeb: error: \"") && err.contains(named),
            "{what}: names the file, escaped: {err}"
        );
        assert!(err.contains("newline"), "{what}: {err}");
        assert_eq!(stdout, "", "{what}");
        assert_eq!(listing(dir.path()), before, "{what}: something was written");
    }
}

#[test]
fn names_dpkg_deb_carries_are_packaged() {
    if !require_tool("dpkg-deb") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let src = hello_copy(dir.path());
    let out = dir.path().join("out");
    fs::create_dir(&out).expect("out");
    let odd = ["tab\tname.c", "cr\rname.c"];
    for name in odd {
        fs::write(src.join(name), "/* odd */\n").expect("odd file");
    }
    // Not packaged (VCS metadata), so not refused either.
    fs::create_dir(src.join(".git")).expect(".git");
    fs::write(src.join(".git/nl\nref"), "x\n").expect("git file");
    let deb = run_ok(&mut mkdeb(&src, &out));
    let deb = Path::new(deb.trim());
    let x = dir.path().join("x");
    run_ok(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&x));
    for name in odd {
        let got = x.join("usr/src/hello-0.1").join(name);
        assert!(got.is_file(), "{name:?} not unpacked: {:?}", listing(&x));
    }
    assert!(!x.join("usr/src/hello-0.1/.git").exists());
}

/// A dkms.conf naming a PACKAGE_VERSION with `..` (which would name
/// `/usr/src/<name>-../..` in the package): refused with the conf's line, exit 8, no package.
#[test]
fn conf_names_that_escape_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = hello_copy(dir.path());
    let out = dir.path().join("out");
    fs::create_dir(&out).expect("out");
    let conf = src.join("dkms.conf");
    let good = fs::read_to_string(&conf).expect("dkms.conf");
    for (bad, directive) in [
        (
            good.replace(
                "PACKAGE_VERSION=\"0.1\"",
                "PACKAGE_VERSION=\"../../canary\"",
            ),
            "PACKAGE_VERSION",
        ),
        (
            good.replace("PACKAGE_NAME=\"hello\"", "PACKAGE_NAME=\"../canary\""),
            "PACKAGE_NAME",
        ),
    ] {
        fs::write(&conf, &bad).expect("bad dkms.conf");
        let line = bad
            .lines()
            .position(|l| l.starts_with(&format!("{directive}=")))
            .expect("directive")
            + 1;
        let before = listing(dir.path());
        let (code, stdout, err) = run(&mut mkdeb(&src, &out));
        assert_eq!(code, 8, "{directive}: {stdout}{err}");
        assert_eq!(err.lines().count(), 1, "{directive}: {err}");
        assert!(
            err.contains(&format!(
                "{}:{line}: '{directive}' directive is not a single path component",
                conf.display()
            )),
            "{directive}: {err}"
        );
        assert_eq!(
            listing(dir.path()),
            before,
            "{directive}: something was written"
        );
    }
}
