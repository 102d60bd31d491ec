//! dh_dkms-rs end to end: a source package built with `dh $@ --with dkms-rs` (our sequence
//! addon from `debhelper/`, our binary on PATH) by dpkg-buildpackage gives the package
//! dkms-mkdeb gives; and the command's options, run in scratch source packages.

use crate::support;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use assert_cmd::cargo::cargo_bin;
use support::{debhelper, hello_source, require_tool, run_ok};

/// How the source package asks dh for our addon.
#[derive(Clone, Copy, Debug)]
enum Addon {
    /// `dh $@ --with dkms-rs` in debian/rules.
    With,
    /// `Build-Depends: dh-sequence-dkms-rs` (dpkg-buildpackage -d: it is not installed here).
    BuildDepends,
}

/// A directory holding only a link to the built `dh_dkms-rs`, to put first on PATH.
pub(crate) fn bin_dir(work: &Path) -> PathBuf {
    let dir = work.join("bin");
    fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(cargo_bin("dh_dkms-rs"), dir.join("dh_dkms-rs")).unwrap();
    dir
}

pub(crate) fn repo_debhelper_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("debhelper")
}

/// Build `<name>-dkms_<version>_all.deb` from the module in `source_dir` as a packager with a
/// `debian/` dir does with dkms-rs: debhelper compat 13, our addon, dpkg-buildpackage -b.
/// The source package is the dh_dkms reference's (`support::debhelper`), with our addon.
fn build_with_addon(
    source_dir: &Path,
    name: &str,
    version: &str,
    work: &Path,
    addon: Addon,
) -> PathBuf {
    let sequence = match addon {
        Addon::With => debhelper::Sequence {
            build_depends: "debhelper-compat (= 13)",
            dh_args: " --with dkms-rs",
        },
        Addon::BuildDepends => debhelper::Sequence {
            build_depends: "debhelper-compat (= 13), dh-sequence-dkms-rs",
            dh_args: "",
        },
    };
    let tree = debhelper::write_source_package(source_dir, name, version, work, sequence);
    let path = std::env::join_paths(std::iter::once(bin_dir(work)).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let mut cmd = support::command("dpkg-buildpackage");
    cmd.args(["-b", "-us", "-uc"]);
    if let Addon::BuildDepends = addon {
        cmd.arg("-d");
    }
    run_ok(
        cmd.current_dir(&tree)
            .env("PATH", path)
            .env("PERL5LIB", repo_debhelper_dir()),
    );
    let deb = work.join(format!("{name}-dkms_{version}_all.deb"));
    assert!(deb.is_file(), "dpkg-buildpackage made no {}", deb.display());
    deb
}

/// dkms-mkdeb's package of the same source, for comparison.
fn mkdeb(source: &Path, out: &Path) -> PathBuf {
    fs::create_dir_all(out).unwrap();
    let stdout = run_ok(
        support::command(cargo_bin("dkms-mkdeb"))
            .args(["--maintainer", "dkms-rs tests <dkms-rs@example.org>", "-o"])
            .arg(out)
            .arg(source),
    );
    PathBuf::from(stdout.trim())
}

/// Names in the data archive, as dpkg-deb lists them, sorted.
fn contents(deb: &Path) -> Vec<String> {
    let mut names: Vec<String> = run_ok(Command::new("dpkg-deb").arg("--contents").arg(deb))
        .lines()
        .map(|l| l.split_whitespace().nth(5).unwrap_or_default().to_string())
        .collect();
    names.sort();
    names
}

fn field(deb: &Path, name: &str) -> String {
    run_ok(Command::new("dpkg-deb").arg("--field").arg(deb).arg(name))
        .trim()
        .to_string()
}

/// A control member (postinst, prerm) of `deb`.
fn control_member(deb: &Path, member: &str) -> String {
    run_ok(Command::new("dpkg-deb").arg("--info").arg(deb).arg(member))
}

/// The blocks between debhelper's autoscript markers written by dh_dkms-rs.
fn our_blocks(script: &str) -> Vec<String> {
    let start = format!(
        "# Automatically added by dh_dkms-rs/{}\n",
        env!("CARGO_PKG_VERSION")
    );
    let mut blocks = Vec::new();
    let mut rest = script;
    while let Some(at) = rest.find(&start) {
        let body = &rest[at + start.len()..];
        let end = body
            .find("# End automatically added section\n")
            .expect("an autoscript block without its end marker");
        blocks.push(body[..end].to_string());
        rest = &body[end..];
    }
    blocks
}

/// The body of a dkms-mkdeb maintainer script: what follows `set -e` up to the final `exit 0`.
fn mkdeb_body(script: &str) -> String {
    let body = script
        .split_once("set -e\n\n")
        .map(|(_, b)| b)
        .expect("no set -e");
    body.rsplit_once("\nexit 0\n")
        .map(|(b, _)| b.to_string())
        .expect("no final exit 0")
}

pub(crate) fn lintian_clean(deb: &Path) {
    if !require_tool("lintian") {
        return;
    }
    let out = Command::new("lintian")
        .args(["-EI", "--pedantic", "--fail-on", "error,warning"])
        .arg(deb)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "lintian fails on {deb:?}:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("E: ") || l.starts_with("W: ")),
        "lintian reports errors or warnings:\n{text}"
    );
}

/// dpkg-buildpackage, dh and Debian's dh_dkms (for the reference package), dpkg-deb, sh.
fn require_debhelper() -> bool {
    debhelper::require_debhelper() && ["dpkg-deb", "sh"].iter().all(|t| require_tool(t))
}

#[test]
fn dh_with_dkms_rs_makes_the_package_dkms_mkdeb_makes() {
    if !require_debhelper() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let ours = build_with_addon(&hello_source(), "hello", "0.1", work.path(), Addon::With);
    let reference = mkdeb(&hello_source(), &work.path().join("mkdeb"));

    assert_eq!(
        contents(&ours),
        contents(&reference),
        "dh --with dkms-rs (left) vs dkms-mkdeb (right)"
    );
    let depends = field(&ours, "Depends");
    assert_eq!(depends, field(&reference, "Depends"));
    // The oracle: Debian's dh_dkms on the same source package, with the `dkms-rs | `
    // alternative as the one documented difference.
    let debian = debhelper::build_dh_reference(
        &hello_source(),
        "hello",
        "0.1",
        &work.path().join("dh_dkms"),
    );
    assert_eq!(
        depends,
        with_dkms_rs_alternative(&field(&debian, "Depends")),
        "dh --with dkms-rs (left) vs dh with Debian's dh_dkms (right)"
    );
    assert!(depends.contains("dkms-rs | dkms (>= 2.1.0.0)"), "{depends}");

    // postinst: dkms-mkdeb's body, as it is, inside debhelper's markers, once.
    let postinst = control_member(&ours, "postinst");
    assert_eq!(
        our_blocks(&postinst),
        vec![mkdeb_body(&control_member(&reference, "postinst"))],
        "{postinst}"
    );
    // prerm: the same body too; it never `exit`s (more prerm follows a snippet).
    let prerm = control_member(&ours, "prerm");
    assert_eq!(
        our_blocks(&prerm),
        vec![mkdeb_body(&control_member(&reference, "prerm"))],
        "{prerm}"
    );

    let scripts = tempfile::tempdir().unwrap();
    for (name, text) in [("postinst", &postinst), ("prerm", &prerm)] {
        let path = scripts.path().join(name);
        fs::write(&path, text).unwrap();
        run_ok(Command::new("sh").arg("-n").arg(&path));
    }
    // Run the prerm where neither dkms-postinst nor dkms is on PATH: the snippet lets the rest
    // of the script run.
    let probe = scripts.path().join("prerm-probe");
    fs::write(&probe, format!("{prerm}echo rest-of-prerm\n")).unwrap();
    let out = run_ok(
        Command::new(support::find_tool("sh").unwrap())
            .arg(&probe)
            .arg("remove")
            .env("PATH", "/nonexistent"),
    );
    assert_eq!(out, "rest-of-prerm\n");

    lintian_clean(&ours);
}

#[test]
fn build_depends_on_dh_sequence_dkms_rs_runs_the_addon() {
    if !require_debhelper() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let ours = build_with_addon(
        &hello_source(),
        "hello",
        "0.1",
        work.path(),
        Addon::BuildDepends,
    );
    let reference = mkdeb(&hello_source(), &work.path().join("mkdeb"));
    assert_eq!(contents(&ours), contents(&reference));
    assert_eq!(our_blocks(&control_member(&ours, "postinst")).len(), 1);
}

// ---- options, in scratch source packages (no dpkg-buildpackage) ----

/// A source package with two DKMS packages: `alpha-dkms` whose debian/alpha-dkms.dkms is the
/// dkms.conf itself, `beta-dkms` whose debian/beta-dkms.dkms names `beta/dkms.conf`.
fn two_package_source() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("debian")).unwrap();
    fs::create_dir_all(root.join("beta")).unwrap();
    fs::write(
        root.join("debian/control"),
        "Source: two\nMaintainer: dkms-rs tests <dkms-rs@example.org>\n\
         Build-Depends: debhelper-compat (= 13)\n\n\
         Package: alpha-dkms\nArchitecture: all\nDescription: alpha\n alpha.\n\n\
         Package: beta-dkms\nArchitecture: all\nDescription: beta\n beta.\n",
    )
    .unwrap();
    fs::write(
        root.join("debian/changelog"),
        "two (1:2.5-3) unstable; urgency=medium\n\n  * Test.\n\n \
         -- dkms-rs tests <dkms-rs@example.org>  Thu, 01 Jan 2026 00:00:00 +0000\n",
    )
    .unwrap();
    let hello = fs::read_to_string(hello_source().join("dkms.conf")).unwrap();
    fs::write(
        root.join("debian/alpha-dkms.dkms"),
        hello.replace("\"hello\"", "\"alpha\""),
    )
    .unwrap();
    fs::write(
        root.join("beta/dkms.conf"),
        hello
            .replace("\"hello\"", "\"beta\"")
            .replace("\"0.1\"", "\"0.2\""),
    )
    .unwrap();
    fs::write(root.join("debian/beta-dkms.dkms"), "beta/dkms.conf\n").unwrap();
    dir
}

/// dh_dkms-rs in `dir` with `args`, with a cleared environment as debhelper's tools get in
/// these tests ([`debhelper::debhelper_command`]), then `env` set.
fn dh_dkms_rs_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    debhelper::debhelper_command(cargo_bin("dh_dkms-rs"), dir, args, env)
        .output()
        .unwrap()
}

/// dh_dkms-rs in `dir` with `args`, without debhelper variables from the caller's environment.
fn dh_dkms_rs(dir: &Path, args: &[&str]) -> Output {
    dh_dkms_rs_env(dir, args, &[])
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = dh_dkms_rs(dir, args);
    assert!(
        out.status.success(),
        "dh_dkms-rs {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every file under `dir` with its bytes: "nothing written" means this does not change.
pub(crate) fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.unwrap())
        .map(|e| {
            let bytes = if e.file_type().is_file() {
                fs::read(e.path()).unwrap()
            } else {
                Vec::new()
            };
            (e.path().strip_prefix(dir).unwrap().to_path_buf(), bytes)
        })
        .collect()
}

/// The failure's stderr, checked to be one line naming the command.
fn one_line_failure(out: &Output) -> String {
    assert!(!out.status.success(), "succeeded: {out:?}");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.lines().count(), 1, "not one line: {err:?}");
    assert!(err.starts_with("dh_dkms-rs: error: "), "{err}");
    err
}

fn acted_on(dir: &Path, package: &str) -> bool {
    dir.join(format!("debian/{package}.substvars")).exists()
}

/// Every `debian/<package>.substvars` in the source package `dir`: package -> its text.
fn substvars(dir: &Path) -> BTreeMap<String, String> {
    fs::read_dir(dir.join("debian"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            let package = p
                .file_name()?
                .to_str()?
                .strip_suffix(".substvars")?
                .to_owned();
            Some((package, fs::read_to_string(&p).unwrap()))
        })
        .collect()
}

/// The packages dh_dkms-rs acted on in `dir`, sorted: those it wrote a substvars file for. Every
/// package of these sources has a dkms.conf, so these are the packages it selected.
fn acted_on_all(dir: &Path) -> Vec<String> {
    substvars(dir).into_keys().collect()
}

/// The dkms.conf files installed under `debian/<package>/usr/src/` in `dir`: relative path ->
/// bytes.
fn installed_confs(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    walkdir::WalkDir::new(dir.join("debian"))
        .into_iter()
        .map(|e| e.unwrap().into_path())
        .filter(|p| p.ends_with("dkms.conf") && p.components().any(|c| c.as_os_str() == "src"))
        .map(|p| {
            let bytes = fs::read(&p).unwrap();
            (p.strip_prefix(dir).unwrap().to_path_buf(), bytes)
        })
        .collect()
}

/// The oracle for package selection: what Debian's `dh_listpackages` lists with these options
/// and this environment in the same source package, sorted.
fn selected_by_debhelper(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Vec<String> {
    let mut packages = debhelper::dh_listpackages(dir, args, env);
    packages.sort();
    packages
}

/// The one documented difference from Debian's dh_dkms in `${misc:Depends}`: each `dkms (...)`
/// relation dh_dkms writes is `dkms-rs | dkms (...)` from dh_dkms-rs, so that a target with
/// dkms-rs (whose dkms-postinst the snippets prefer) needs no dkms (`package::dkms_depends`).
/// Maps a Depends value (comma-separated relations) from Debian's form to ours.
fn with_dkms_rs_alternative(depends: &str) -> String {
    depends
        .split(", ")
        .map(|relation| {
            if relation == "dkms" || relation.starts_with("dkms (") {
                format!("dkms-rs | {relation}")
            } else {
                relation.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// What Debian's dh_dkms writes into each `debian/<package>.substvars` when run `times` with
/// `args` in a copy of `dir` taken now (so: call it before dh_dkms-rs runs in `dir`).
fn substvars_by_dh_dkms(dir: &Path, args: &[&str], times: usize) -> BTreeMap<String, String> {
    let copy = debhelper::dh_dkms_in_copy(dir, args, times);
    substvars(copy.path())
}

/// dh_dkms-rs's substvars files are Debian's dh_dkms's (`theirs`), but for the `dkms-rs | `
/// alternative of [`with_dkms_rs_alternative`] in `misc:Depends`.
fn assert_substvars_as_dh_dkms(dir: &Path, theirs: &BTreeMap<String, String>) {
    assert!(!theirs.is_empty(), "dh_dkms wrote no substvars");
    let expected: BTreeMap<String, String> = theirs
        .iter()
        .map(|(package, text)| {
            let text: String = text
                .lines()
                .map(|line| match line.strip_prefix("misc:Depends=") {
                    Some(value) => format!("misc:Depends={}\n", with_dkms_rs_alternative(value)),
                    None => format!("{line}\n"),
                })
                .collect();
            (package.clone(), text)
        })
        .collect();
    assert_eq!(
        substvars(dir),
        expected,
        "dh_dkms-rs (left) vs Debian's dh_dkms with `dkms-rs | ` before its dkms (right)"
    );
}

/// The tools these tests take their expectations from: Debian's dh_dkms and dh_listpackages.
fn require_oracles() -> bool {
    require_tool("dh_dkms") && require_tool("dh_listpackages")
}

#[test]
fn every_package_by_default_with_its_conf_and_scripts() {
    if !require_oracles() {
        return;
    }
    let src = two_package_source();
    let root = src.path();
    let theirs = debhelper::dh_dkms_in_copy(root, &[], 1);
    ok(root, &[]);
    assert_substvars_as_dh_dkms(root, &substvars(theirs.path()));
    assert_eq!(
        installed_confs(root),
        installed_confs(theirs.path()),
        "dkms.conf installed by dh_dkms-rs (left) vs Debian's dh_dkms (right)"
    );
    let alpha_conf = root.join("debian/alpha-dkms/usr/src/alpha-0.1/dkms.conf");
    let beta_conf = root.join("debian/beta-dkms/usr/src/beta-0.2/dkms.conf");
    assert_eq!(
        fs::read(&alpha_conf).unwrap(),
        fs::read(root.join("debian/alpha-dkms.dkms")).unwrap()
    );
    assert_eq!(
        fs::read(&beta_conf).unwrap(),
        fs::read(root.join("beta/dkms.conf")).unwrap()
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&beta_conf).unwrap().permissions().mode() & 0o7777,
        0o644
    );
    // Documented expectation (the oracle above decides): hello's conf needs dkms 2.1.0.0.
    let substvars = fs::read_to_string(root.join("debian/beta-dkms.substvars")).unwrap();
    assert_eq!(substvars, "misc:Depends=dkms-rs | dkms (>= 2.1.0.0)\n");
    let postinst = fs::read_to_string(root.join("debian/beta-dkms.postinst.debhelper")).unwrap();
    assert!(
        postinst.contains("DKMS_NAME=beta\nDKMS_VERSION=0.2\n"),
        "{postinst}"
    );
    let prerm = fs::read_to_string(root.join("debian/alpha-dkms.prerm.debhelper")).unwrap();
    assert!(prerm.contains("DKMS_NAME=alpha\n"), "{prerm}");
}

/// dh_dkms-rs acts on exactly the packages Debian's dh_listpackages selects with the same
/// options in the same source package.
#[test]
fn package_selection_with_p_and_n() {
    if !require_oracles() {
        return;
    }
    for args in [
        &["-p", "beta-dkms"][..],
        &["-pbeta-dkms"],
        &["--package=beta-dkms"],
        &["-N", "alpha-dkms"],
        &["--no-package", "alpha-dkms"],
        &["-i", "-Nalpha-dkms"],
        &["-O-Nalpha-dkms"],
    ] {
        let src = two_package_source();
        let expected = selected_by_debhelper(src.path(), args, &[]);
        ok(src.path(), args);
        assert_eq!(
            acted_on_all(src.path()),
            expected,
            "{args:?}: dh_dkms-rs (left) vs dh_listpackages (right)"
        );
        // What each of these options means, for the reader (the oracle above decides).
        assert!(acted_on(src.path(), "beta-dkms"), "{args:?}");
        assert!(!acted_on(src.path(), "alpha-dkms"), "{args:?}");
        assert!(!src.path().join("debian/alpha-dkms").exists(), "{args:?}");
    }
    // -a: no architecture-dependent package here: nothing to do, as debhelper says.
    let src = two_package_source();
    let expected = selected_by_debhelper(src.path(), &["-a"], &[]);
    let out = dh_dkms_rs(src.path(), &["-a"]);
    assert!(out.status.success());
    assert_eq!(acted_on_all(src.path()), expected, "-a");
    assert!(!acted_on(src.path(), "alpha-dkms") && !acted_on(src.path(), "beta-dkms"));
}

#[test]
fn dh_internal_options_select_as_in_an_override_target() {
    if !require_oracles() {
        return;
    }
    let src = two_package_source();
    let env = [(
        "DH_INTERNAL_OPTIONS",
        "-i\x1e-Nbeta-dkms\x1e-O--buildsystem=none",
    )];
    let expected = selected_by_debhelper(src.path(), &[], &env);
    let out = dh_dkms_rs_env(src.path(), &[], &env);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        acted_on_all(src.path()),
        expected,
        "dh_dkms-rs (left) vs dh_listpackages (right)"
    );
    assert!(acted_on(src.path(), "alpha-dkms"));
    assert!(!acted_on(src.path(), "beta-dkms"));
}

#[test]
fn no_act_writes_nothing() {
    let src = two_package_source();
    let before = snapshot(src.path());
    let out = ok(src.path(), &["--no-act", "-v"]);
    assert_eq!(snapshot(src.path()), before);
    // -v says what would have been done.
    assert!(
        out.contains("debian/beta-dkms/usr/src/beta-0.2/dkms.conf"),
        "{out}"
    );
    // Also with -V, whose substituted copy would go to debian/<package>.dkms.debhelper.
    ok(src.path(), &["--no-act", "-V", "9.9"]);
    assert_eq!(snapshot(src.path()), before);
}

#[test]
fn unknown_option_fails_with_one_line_and_writes_nothing() {
    let src = two_package_source();
    let before = snapshot(src.path());
    let err = one_line_failure(&dh_dkms_rs(src.path(), &["--frobnicate"]));
    assert!(err.contains("--frobnicate"), "{err}");
    assert_eq!(snapshot(src.path()), before);
    // The same option passed on by dh with -O is ignored, as debhelper commands do.
    ok(src.path(), &["-O--frobnicate"]);
    assert!(acted_on(src.path(), "alpha-dkms"));
}

#[test]
fn unknown_package_fails_with_one_line() {
    if !require_oracles() {
        return;
    }
    let src = two_package_source();
    let args = ["-p", "gamma-dkms"];
    // debhelper refuses it too ("Requested unknown package gamma-dkms via -p/--package").
    // Only the failure is compared: its exit code is 255 on a terminal and 25 (ENOTTY left in
    // $! by Dh_Lib's error()) otherwise, where dh_dkms-rs always exits 255.
    let (code, their_err) = debhelper::dh_listpackages_status(src.path(), &args, &[]);
    assert_ne!(code, 0, "dh_listpackages accepted -p gamma-dkms");
    assert!(their_err.contains("gamma-dkms"), "{their_err}");
    let err = one_line_failure(&dh_dkms_rs(src.path(), &args));
    assert!(err.contains("gamma-dkms"), "{err}");
    assert!(err.contains("alpha-dkms, beta-dkms"), "{err}");
}

#[test]
fn missing_dkms_conf_fails_with_one_line_naming_it() {
    let src = two_package_source();
    fs::write(
        src.path().join("debian/beta-dkms.dkms"),
        "beta/missing.conf\n",
    )
    .unwrap();
    let before = snapshot(src.path());
    let err = one_line_failure(&dh_dkms_rs(src.path(), &["-p", "beta-dkms"]));
    assert!(err.contains("beta/missing.conf"), "{err}");
    assert!(err.contains("debian/beta-dkms.dkms"), "{err}");
    assert_eq!(snapshot(src.path()), before);

    // A FILE argument that does not exist: dkms's "could not locate dkms.conf", exit 4.
    let out = dh_dkms_rs(src.path(), &["-p", "alpha-dkms", "--", "nowhere.conf"]);
    let err = one_line_failure(&out);
    assert!(err.contains("nowhere.conf"), "{err}");
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(snapshot(src.path()), before);
}

/// Run twice (debhelper's addsubstvar does not repeat an item), dh_dkms-rs writes what Debian's
/// dh_dkms run twice writes.
#[test]
fn substvar_is_not_added_twice() {
    if !require_oracles() {
        return;
    }
    let src = two_package_source();
    let args = ["-p", "alpha-dkms"];
    let theirs = substvars_by_dh_dkms(src.path(), &args, 2);
    ok(src.path(), &args);
    ok(src.path(), &args);
    assert_substvars_as_dh_dkms(src.path(), &theirs);
    let substvars = fs::read_to_string(src.path().join("debian/alpha-dkms.substvars")).unwrap();
    assert_eq!(substvars.lines().count(), 1, "{substvars}");
}

// Debian's dh_dkms is no oracle for the FILE argument: its code uses debian/<package>.dkms when
// there is one and the FILE only for packages without (its man page says FILE wins), gives
// every such package the FILE, and -V keeps the epoch (1:2.5). dh_dkms-rs follows the man page.
#[test]
fn file_argument_and_module_version() {
    let src = two_package_source();
    let root = src.path();
    let conf = fs::read_to_string(root.join("beta/dkms.conf"))
        .unwrap()
        .replace("\"0.2\"", "\"#MODULE_VERSION#\"");
    fs::write(root.join("upstream.conf"), conf).unwrap();

    // Without -V the placeholder would become the version: refused, naming the file and -V.
    let err = one_line_failure(&dh_dkms_rs(
        root,
        &["-p", "beta-dkms", "--", "upstream.conf"],
    ));
    assert!(err.contains("upstream.conf") && err.contains("-V"), "{err}");

    // -V alone: debian/changelog's upstream version (2.5 of 1:2.5-3).
    ok(root, &["-p", "beta-dkms", "-V", "--", "upstream.conf"]);
    let installed =
        fs::read_to_string(root.join("debian/beta-dkms/usr/src/beta-2.5/dkms.conf")).unwrap();
    assert!(installed.contains("PACKAGE_VERSION=\"2.5\""), "{installed}");

    // -V VERSION.
    let src = two_package_source();
    let root = src.path();
    let conf = fs::read_to_string(root.join("beta/dkms.conf"))
        .unwrap()
        .replace("\"0.2\"", "\"#MODULE_VERSION#\"");
    fs::write(root.join("upstream.conf"), conf).unwrap();
    ok(
        root,
        &["-p", "beta-dkms", "-V", "3.1", "--", "upstream.conf"],
    );
    assert!(
        root.join("debian/beta-dkms/usr/src/beta-3.1/dkms.conf")
            .is_file()
    );
}

/// BUILD_EXCLUSIVE_CONFIG needs a dkms that knows it: the substvar is Debian's dh_dkms's for the
/// same dkms.conf.
#[test]
fn dkms_conf_with_build_exclusive_config_depends_on_newer_dkms() {
    if !require_oracles() {
        return;
    }
    let src = two_package_source();
    let conf = src.path().join("beta/dkms.conf");
    let text = fs::read_to_string(&conf).unwrap() + "BUILD_EXCLUSIVE_CONFIG=\"CONFIG_MODULES\"\n";
    fs::write(&conf, text).unwrap();
    let args = ["-p", "beta-dkms"];
    let theirs = substvars_by_dh_dkms(src.path(), &args, 1);
    ok(src.path(), &args);
    assert_substvars_as_dh_dkms(src.path(), &theirs);
    // Documented expectation (the oracle above decides): dh_dkms's `>= 3.0.3-4~`.
    let substvars = fs::read_to_string(src.path().join("debian/beta-dkms.substvars")).unwrap();
    assert!(substvars.contains("dkms (>= 3.0.3-4~)"), "{substvars}");
}

/// Architecture-dependent packages are chosen as debhelper chooses them (wildcards through
/// dpkg-architecture; dh_listpackages is the oracle), and `debian/<package>.dkms.<host arch>`
/// wins over `debian/<package>.dkms` as it does for Debian's dh_dkms.
#[test]
fn arch_packages_and_arch_specific_files() {
    if !require_tool("dpkg-architecture") || !require_oracles() {
        return;
    }
    let host = run_ok(Command::new("dpkg-architecture").arg("-qDEB_HOST_ARCH"))
        .trim()
        .to_string();
    let src = two_package_source();
    let root = src.path();
    let mut control = fs::read_to_string(root.join("debian/control")).unwrap();
    control.push_str(
        "\nPackage: gamma-modules\nArchitecture: linux-any\nDescription: gamma\n gamma.\n\n\
         Package: delta-modules\nArchitecture: hurd-any\nDescription: delta\n delta.\n",
    );
    fs::write(root.join("debian/control"), control).unwrap();
    let hello = fs::read_to_string(hello_source().join("dkms.conf")).unwrap();
    for (file, module) in [
        ("gamma-modules.dkms", "gamma"),
        (&format!("gamma-modules.dkms.{host}") as &str, "gamma-host"),
        ("delta-modules.dkms", "delta"),
    ] {
        fs::write(
            root.join("debian").join(file),
            hello.replace("\"hello\"", &format!("\"{module}\"")),
        )
        .unwrap();
    }
    let untouched = tempfile::tempdir().unwrap();
    run_ok(
        Command::new("cp")
            .arg("-a")
            .arg(root.join("."))
            .arg(untouched.path()),
    );
    let expected = selected_by_debhelper(root, &["-a"], &[]);
    let theirs = debhelper::dh_dkms_in_copy(root, &["-a"], 1);
    ok(root, &["-a"]);
    assert_eq!(
        acted_on_all(root),
        expected,
        "-a: dh_dkms-rs (left) vs dh_listpackages (right)"
    );
    assert_eq!(
        installed_confs(root),
        installed_confs(theirs.path()),
        "dkms.conf installed by dh_dkms-rs (left) vs Debian's dh_dkms (right)"
    );
    assert_substvars_as_dh_dkms(root, &substvars(theirs.path()));
    // What that means, for the reader (the oracles above decide).
    assert!(acted_on(root, "gamma-modules"));
    assert!(
        root.join("debian/gamma-modules/usr/src/gamma-host-0.1/dkms.conf")
            .is_file(),
        "the {host} file is the one installed"
    );
    for other in ["alpha-dkms", "beta-dkms", "delta-modules"] {
        assert!(!acted_on(root, other), "{other}");
    }
    // -p of a package not built on this architecture: known, so no error, but skipped.
    let root = untouched.path();
    let args = ["-p", "delta-modules"];
    let expected = selected_by_debhelper(root, &args, &[]);
    let out = dh_dkms_rs(root, &args);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        acted_on_all(root),
        expected,
        "-p delta-modules: dh_dkms-rs (left) vs dh_listpackages (right)"
    );
    assert!(!acted_on(root, "delta-modules"));
}

/// DH_OPTIONS is read like the command line; what is unknown there is ignored with a warning.
#[test]
fn dh_options_and_dh_verbose_from_the_environment() {
    if !require_oracles() {
        return;
    }
    let src = two_package_source();
    let env = [
        ("DH_OPTIONS", "-p beta-dkms --frobnicate"),
        ("DH_VERBOSE", "1"),
    ];
    let expected = selected_by_debhelper(src.path(), &[], &env);
    let (_, their_err) = debhelper::dh_listpackages_status(src.path(), &[], &env);
    let out = dh_dkms_rs_env(src.path(), &[], &env);
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // debhelper's own lines, in its words; Getopt::Long's "Unknown option: frobnicate" before
    // them is Perl's, which dh_dkms-rs does not print.
    let theirs: String = their_err
        .lines()
        .filter_map(|l| l.strip_prefix("dh_listpackages: "))
        .map(|l| format!("dh_dkms-rs: {l}\n"))
        .collect();
    assert_eq!(
        stderr, theirs,
        "dh_dkms-rs (left) vs dh_listpackages (right)"
    );
    assert_eq!(
        stderr,
        "dh_dkms-rs: warning: ignored unknown options in DH_OPTIONS\n"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("\tinstall -p -D -m644 "), "{stdout}");
    assert_eq!(
        acted_on_all(src.path()),
        expected,
        "dh_dkms-rs (left) vs dh_listpackages (right)"
    );
    assert!(acted_on(src.path(), "beta-dkms"));
    assert!(!acted_on(src.path(), "alpha-dkms"));
}
