//! The targets of Debian's dh_dkms in debian/rules (`execute_before_dh_dkms`,
//! `override_dh_dkms`, `execute_after_dh_dkms`, each also `-arch`/`-indep`) under dkms-rs's
//! addon: dh_dkms-rs runs them as dh runs them around Debian's dh_dkms. The oracle is dh itself
//! with Debian's dkms addon: the same source package is built with each, and every target
//! logs, with `dh_listpackages`, the packages dh gave it.

use crate::support;

use std::fs;
use std::path::{Path, PathBuf};

use support::{debhelper, require_tool, run_ok};

use super::dh_dkms_rs::{bin_dir, repo_debhelper_dir};

/// A source package of an arch-all and an arch-any DKMS package, whose debian/rules has
/// `rules_tail` after `dh $@` and empty dh_auto_* steps; each package's dkms.conf
/// (`PACKAGE_VERSION="#MODULE_VERSION#"` for alpha) is `debian/<package>.dkms`.
fn source_package(work: &Path, build_depends: &str, rules_tail: &str) -> PathBuf {
    let tree = work.join("two-1.0");
    let debian = tree.join("debian");
    fs::create_dir_all(debian.join("source")).unwrap();
    let write = |name: &str, text: &str| fs::write(debian.join(name), text).unwrap();
    write(
        "control",
        &format!(
            "Source: two\nSection: kernel\nPriority: optional\n\
             Maintainer: dkms-rs tests <dkms-rs@example.org>\n\
             Build-Depends: debhelper-compat (= 13), {build_depends}\n\
             Standards-Version: 4.6.2\nRules-Requires-Root: no\n\n\
             Package: alpha-dkms\nArchitecture: all\nDepends: ${{misc:Depends}}\n\
             Description: alpha driver in DKMS format\n The alpha module.\n\n\
             Package: beta-dkms\nArchitecture: any\nDepends: ${{misc:Depends}}\n\
             Description: beta driver in DKMS format\n The beta module.\n"
        ),
    );
    write(
        "rules",
        &format!(
            "#!/usr/bin/make -f\n%:\n\tdh $@\n\n\
             override_dh_auto_configure override_dh_auto_build override_dh_auto_test \
             override_dh_auto_install override_dh_auto_clean:\n\n{rules_tail}"
        ),
    );
    fs::set_permissions(
        debian.join("rules"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    write(
        "alpha-dkms.dkms",
        "PACKAGE_NAME=\"alpha\"\nPACKAGE_VERSION=\"#MODULE_VERSION#\"\nBUILT_MODULE_NAME[0]=alpha\nDEST_MODULE_LOCATION[0]=/updates/dkms\nAUTOINSTALL=yes\n",
    );
    write(
        "beta-dkms.dkms",
        "PACKAGE_NAME=\"beta\"\nPACKAGE_VERSION=\"2.0\"\nBUILT_MODULE_NAME[0]=beta\nDEST_MODULE_LOCATION[0]=/updates/dkms\nAUTOINSTALL=yes\n",
    );
    // Given as FILE by an override: beta's dkms.conf, marked as this one.
    write(
        "beta.conf",
        "# given as FILE\nPACKAGE_NAME=\"beta\"\nPACKAGE_VERSION=\"2.0\"\nBUILT_MODULE_NAME[0]=beta\nDEST_MODULE_LOCATION[0]=/updates/dkms\nAUTOINSTALL=yes\n",
    );
    write(
        "changelog",
        "two (1.0) unstable; urgency=medium\n\n  * Test.\n\n \
         -- dkms-rs tests <dkms-rs@example.org>  Thu, 01 Jan 2026 00:00:00 +0000\n",
    );
    write(
        "copyright",
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nCopyright: 2026 dkms-rs tests\nLicense: GPL-2+\n",
    );
    write("source/format", "3.0 (native)\n");
    tree
}

/// Every target logs its name and the packages dh_listpackages gives it into `hooks.log`.
const HOOKS: &str = "\
execute_before_dh_dkms:
\techo \"$@: $$(dh_listpackages | tr '\\n' ' ')\" >> hooks.log

override_dh_dkms-indep:
\techo \"$@: $$(dh_listpackages | tr '\\n' ' ')\" >> hooks.log
\tdh_dkms -V 1.0

override_dh_dkms-arch:
\techo \"$@: $$(dh_listpackages | tr '\\n' ' ')\" >> hooks.log
\tdh_dkms -p beta-dkms -- debian/beta.conf

execute_after_dh_dkms-arch:
\techo \"$@: $$(dh_listpackages | tr '\\n' ' ')\" >> hooks.log
";

/// dpkg-buildpackage -b -d in `tree`, with dh_dkms-rs and dkms-rs's addon reachable.
fn build(tree: &Path, work: &Path) -> (i32, String) {
    let path = std::env::join_paths(std::iter::once(bin_dir(work)).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let out = support::command("dpkg-buildpackage")
        .args(["-b", "-us", "-uc", "-d"])
        .current_dir(tree)
        .env("PATH", path)
        .env("PERL5LIB", repo_debhelper_dir())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn dkms_conf(work: &Path, deb_prefix: &str, path: &str) -> Vec<u8> {
    let deb = fs::read_dir(work)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.starts_with(deb_prefix) && n.ends_with(".deb")
        })
        .unwrap_or_else(|| panic!("no {deb_prefix} .deb in {}", work.display()));
    let x = tempfile::tempdir().unwrap();
    run_ok(
        std::process::Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(x.path()),
    );
    fs::read(x.path().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn require_tools() -> bool {
    debhelper::require_debhelper() && require_tool("dpkg-deb")
}

#[test]
fn hook_and_override_targets_run_as_dh_runs_them_around_dh_dkms() {
    if !require_tools() {
        return;
    }
    // beta's dkms.conf comes only from the FILE of its override, as openrazer's does (Debian's
    // dh_dkms would take debian/beta-dkms.dkms over FILE; dh_dkms-rs takes FILE).
    let theirs = tempfile::tempdir().unwrap();
    let tree = source_package(theirs.path(), "dh-sequence-dkms", HOOKS);
    fs::remove_file(tree.join("debian/beta-dkms.dkms")).unwrap();
    let (code, log) = build(&tree, theirs.path());
    assert_eq!(code, 0, "Debian's dh_dkms:\n{log}");
    let debian_log = fs::read_to_string(tree.join("hooks.log")).unwrap();
    // dh's order: the target, then its -arch, then its -indep form.
    let targets: Vec<&str> = debian_log
        .lines()
        .map(|l| l.split(':').next().unwrap())
        .collect();
    assert_eq!(
        targets,
        [
            "execute_before_dh_dkms",
            "override_dh_dkms-arch",
            "override_dh_dkms-indep",
            "execute_after_dh_dkms-arch"
        ],
        "{debian_log}"
    );

    let ours = tempfile::tempdir().unwrap();
    let tree = source_package(ours.path(), "dh-sequence-dkms-rs", HOOKS);
    fs::remove_file(tree.join("debian/beta-dkms.dkms")).unwrap();
    let (code, log) = build(&tree, ours.path());
    assert_eq!(code, 0, "dh_dkms-rs:\n{log}");
    let our_log = fs::read_to_string(tree.join("hooks.log")).unwrap();
    // The same targets, in the same order, each given the same packages.
    assert_eq!(our_log, debian_log, "{log}");
    // Four targets, each said with its line.
    for (target, line) in [
        ("execute_before_dh_dkms", 7),
        ("override_dh_dkms-indep", 10),
        ("override_dh_dkms-arch", 14),
        ("execute_after_dh_dkms-arch", 18),
    ] {
        let warning = format!(
            "dh_dkms-rs: warning: debian/rules:{line}: {target} is a target of Debian's dh_dkms"
        );
        assert!(log.contains(&warning), "no {warning:?}:\n{log}");
    }
    // The overrides' `dh_dkms -V 1.0` and `dh_dkms -p beta-dkms -- debian/beta.conf` were
    // dh_dkms-rs: alpha's version is 1.0 and beta's dkms.conf is the FILE, as with dh_dkms.
    for (prefix, path) in [
        ("alpha-dkms_", "usr/src/alpha-1.0/dkms.conf"),
        ("beta-dkms_", "usr/src/beta-2.0/dkms.conf"),
    ] {
        assert_eq!(
            dkms_conf(ours.path(), prefix, path),
            dkms_conf(theirs.path(), prefix, path),
            "{path}"
        );
    }
    assert!(
        String::from_utf8(dkms_conf(
            ours.path(),
            "beta-dkms_",
            "usr/src/beta-2.0/dkms.conf"
        ))
        .unwrap()
        .starts_with("# given as FILE\n")
    );
}

#[test]
fn an_empty_override_leaves_a_dkms_package_without_dkms_conf_an_error() {
    if !require_tools() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let tree = source_package(
        work.path(),
        "dh-sequence-dkms-rs",
        "override_dh_dkms-arch:\n",
    );
    let (code, log) = build(&tree, work.path());
    assert_ne!(code, 0, "{log}");
    let error = "dh_dkms-rs: error: beta-dkms: no dkms.conf under debian/beta-dkms/usr/src/ after debian/rules override_dh_dkms-arch\n";
    assert!(log.contains(error), "no {error:?}:\n{log}");
    assert!(log.contains(": binary] Error 4\n"), "{log}");
}

#[test]
fn debian_dh_dkms_called_by_name_is_refused_with_the_line() {
    if !require_tools() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    // As openafs does: Debian's dh_dkms, run in another command's override.
    let tree = source_package(
        work.path(),
        "dh-sequence-dkms-rs",
        "override_dh_install:\n\tdh_install\n\tdh_dkms -pbeta-dkms\n",
    );
    let (code, log) = build(&tree, work.path());
    assert_ne!(code, 0, "{log}");
    let warning = "dh_dkms-rs: warning: debian/rules:9: override_dh_install calls dh_dkms, which is Debian's, not dh_dkms-rs: call dh_dkms-rs\n";
    assert!(log.contains(warning), "no {warning:?}:\n{log}");
    let error = "dh_dkms-rs: error: debian/beta-dkms.postinst.debhelper: Debian's dh_dkms already added its scripts for beta-dkms (debian/rules:9 calls dh_dkms): call dh_dkms-rs there instead\n";
    assert!(log.contains(error), "no {error:?}:\n{log}");
}

#[test]
fn a_dkms_package_without_dkms_conf_is_an_error_and_nothing_is_written() {
    if !require_tools() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let tree = source_package(work.path(), "dh-sequence-dkms-rs", "");
    // beta keeps its dkms.conf: what dh_dkms-rs would write for it must not be written either.
    fs::remove_file(tree.join("debian/alpha-dkms.dkms")).unwrap();
    let before = super::dh_dkms_rs::snapshot(&tree);
    let out =
        debhelper::debhelper_command(assert_cmd::cargo::cargo_bin("dh_dkms-rs"), &tree, &[], &[])
            .output()
            .unwrap();
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "dh_dkms-rs: error: alpha-dkms: no dkms.conf: no debian/alpha-dkms.dkms or debian/dkms, no FILE argument, none under debian/alpha-dkms/usr/src/\n"
    );
    assert_eq!(super::dh_dkms_rs::snapshot(&tree), before);
}

#[test]
fn with_override_dh_dkms_rs_the_dh_dkms_targets_are_said_not_run() {
    if !require_tools() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let tree = source_package(
        work.path(),
        "dh-sequence-dkms-rs",
        "override_dh_dkms:\n\techo $@ >> hooks.log\n\n\
         override_dh_dkms-rs:\n\tdh_dkms-rs -V 1.0\n",
    );
    let (code, log) = build(&tree, work.path());
    assert_eq!(code, 0, "{log}");
    let warning = "dh_dkms-rs: warning: debian/rules:7: override_dh_dkms is a target of Debian's dh_dkms: not run: dh runs override_dh_dkms-rs instead of dh_dkms-rs (name it override_dh_dkms-rs)\n";
    assert!(log.contains(warning), "no {warning:?}:\n{log}");
    assert!(!tree.join("hooks.log").exists(), "{log}");
    // The override of dh_dkms-rs did the work, for both packages.
    dkms_conf(work.path(), "alpha-dkms_", "usr/src/alpha-1.0/dkms.conf");
    dkms_conf(work.path(), "beta-dkms_", "usr/src/beta-2.0/dkms.conf");
}
