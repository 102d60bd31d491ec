//! dkms.conf validation as Debian's dkms 3.2.2 says it (issue 11): every problem on its own
//! `dkms.conf: Error! ...` line, then "Bad conf file." (exit 8); zero modules a warning;
//! deprecated directives named. Upstream's own test dirs and cases of ours, each run by
//! dkms-rs and by 3.2.2 on twin scratch trees ([`Pair`]).

use std::path::Path;

use crate::dkms_3_2_2::Pair;
use crate::support;

use support::scratch::{Scratch, TRIVIAL};

/// Upstream's test inputs (`test/dkms_conf_test_*` of dkms 3.2.2's source).
const UPSTREAM_TESTS: &str = "/var/cache/dkms-rs-tests/dkms-3.2.2-src/test";

/// Whether upstream's test dir `name` is there (fails under CI when not).
fn upstream_present(name: &str) -> bool {
    let from = Path::new(UPSTREAM_TESTS).join(name);
    from.is_dir() || support::missing(&format!("{} (.ci/fetch-dkms-3.2.2)", from.display()))
}

/// Upstream's test dir `name` copied to `<scratch>/test/<name>` (then `dkms add test/<name>`).
fn copy_upstream(s: &Scratch, name: &str) {
    let from = Path::new(UPSTREAM_TESTS).join(name);
    let to = s.dir.path().join("test");
    std::fs::create_dir_all(&to).unwrap();
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(&from)
        .arg(&to)
        .status()
        .expect("cp");
    assert!(status.success());
}

/// A source dir `<scratch>/test/<name>` with this dkms.conf and a trivial module.
fn write_dir(s: &Scratch, name: &str, conf: &str) {
    let dir = s.dir.path().join("test").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("dkms.conf"), conf).unwrap();
    std::fs::write(dir.join("Kbuild"), "obj-m := cw.o\n").unwrap();
    std::fs::write(
        dir.join("cw.c"),
        format!("#include <linux/module.h>\n{TRIVIAL}\nMODULE_LICENSE(\"GPL\");\n"),
    )
    .unwrap();
}

#[test]
fn upstream_bad_confs_say_every_problem() {
    let Some((pair, _)) = Pair::on_a_kernel() else {
        return;
    };
    for name in [
        "dkms_conf_test_empty",
        "dkms_conf_test_invalid",
        "dkms_conf_test_sparse_arrays",
    ] {
        if !upstream_present(name) {
            return;
        }
        pair.each(|s| copy_upstream(s, name));
        let seen = pair.same(&["add", &format!("test/{name}")]);
        assert_eq!(seen.0, 8, "{name}: {seen:?}");
        assert!(
            seen.2.starts_with("dkms.conf: Error! ")
                && seen.2.contains("\nError! Bad conf file.\n"),
            "{name}: {seen:?}"
        );
        let status = pair.same(&["status"]);
        assert_eq!(status.1, "", "{name}: nothing added");
    }
}

#[test]
fn upstream_zero_modules_is_a_warning() {
    let Some((pair, k)) = Pair::on_a_kernel() else {
        return;
    };
    if !upstream_present("dkms_conf_test_zero_modules") {
        return;
    }
    pair.each(|s| copy_upstream(s, "dkms_conf_test_zero_modules"));
    let added = pair.same(&["add", "test/dkms_conf_test_zero_modules"]);
    assert_eq!(added.0, 0, "{added:?}");
    assert!(
        added
            .2
            .contains("dkms.conf: Warning! Zero modules specified."),
        "{added:?}"
    );
    pair.same(&["status"]);
    pair.same(&["remove", "--all", "-m", "dkms_conf_test", "-v", "1.0"]);
    let installed = pair.same(&["install", "-k", &k, "-m", "dkms_conf_test", "-v", "1.0"]);
    assert_eq!(installed.0, 0, "{installed:?}");
    let status = pair.same(&["status"]);
    assert!(status.1.contains(": installed"), "{status:?}");
    pair.same(&["remove", "--all", "-m", "dkms_conf_test", "-v", "1.0"]);
}

#[test]
fn upstream_remake_initrd_is_deprecated() {
    let Some((pair, k)) = Pair::on_a_kernel() else {
        return;
    };
    if !upstream_present("dkms_deprecated_test-1.0") {
        return;
    }
    pair.each(|s| copy_upstream(s, "dkms_deprecated_test-1.0"));
    let added = pair.same(&["add", "test/dkms_deprecated_test-1.0"]);
    assert!(
        added.0 == 0 && added.2.contains("Deprecated feature: REMAKE_INITRD ("),
        "{added:?}"
    );
    let installed = pair.same(&["install", "-k", &k, "dkms_deprecated_test/1.0"]);
    assert_eq!(installed.0, 0, "{installed:?}");
    pair.same(&["remove", "--all", "dkms_deprecated_test/1.0"]);
}

/// Several of dkms's problems in one file: each said, in 3.2.2's order.
#[test]
fn several_problems_at_once() {
    let Some((pair, _)) = Pair::on_a_kernel() else {
        return;
    };
    let conf = "PACKAGE_NAME=cw\nBUILT_MODULE_NAME[0]=cw.ko\nDEST_MODULE_NAME[0]=x.o\n\
                DEST_MODULE_LOCATION[0]=/opt\nBUILT_MODULE_NAME[2]=two\n\
                AUTOINSTALL=y\nNO_WEAK_MODULES=maybe\nBUILD_DEPENDS_REBUILD=YES\n";
    pair.each(|s| write_dir(s, "cw", conf));
    let seen = pair.same(&["add", "test/cw"]);
    assert_eq!(seen.0, 8, "{seen:?}");
    assert!(seen.2.lines().count() > 8, "{seen:?}");
    // AUTOINSTALL="No" (any case) is no AUTOINSTALL; MODULES_CONF is deprecated.
    let conf = "PACKAGE_NAME=cw\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME[0]=cw\n\
                DEST_MODULE_LOCATION[0]=/updates\nAUTOINSTALL=No\nMODULES_CONF[0]=\"alias x cw\"\n";
    pair.each(|s| write_dir(s, "cw-1", conf));
    let seen = pair.same(&["add", "test/cw-1"]);
    assert_eq!(seen.0, 0, "{seen:?}");
    pair.same(&["status"]);
    pair.same(&["remove", "--all", "cw/1"]);
}

/// dkms-rs's own checks (names that are not one path component) come after dkms's
/// problems, in the same frame: 3.2.2's lines, then ours, then "Bad conf file.".
#[test]
fn own_checks_follow_dkms_problems() {
    let Some((pair, _)) = Pair::on_a_kernel() else {
        return;
    };
    let conf = "PACKAGE_NAME=cw\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME[0]=../cw\n\
                DEST_MODULE_LOCATION[0]=/opt\n";
    pair.each(|s| write_dir(s, "cw", conf));
    let (ours, theirs) = pair.run(&["add", "test/cw"]);
    assert_eq!(ours.0, 8, "{ours:?}");
    // 3.2.2 says the location, then adds the module anyway... or not: its lines come first.
    let dkms_lines: Vec<&str> = theirs
        .2
        .lines()
        .take_while(|l| !l.is_empty())
        .filter(|l| l.starts_with("dkms.conf: Error! ") || l.starts_with('\''))
        .collect();
    assert!(!dkms_lines.is_empty(), "{theirs:?}");
    let our_lines: Vec<&str> = ours.2.lines().collect();
    assert_eq!(&our_lines[..dkms_lines.len()], &dkms_lines[..], "{ours:?}");
    assert_eq!(
        our_lines[dkms_lines.len()],
        "dkms.conf: Error! 'BUILT_MODULE_NAME' directive is not a single path component: \
         it contains '/' in record #0 ([DIR]/test/cw/dkms.conf:3).",
        "{ours:?}"
    );
    assert_eq!(
        &our_lines[dkms_lines.len() + 1..],
        &[
            "",
            "Error! Bad conf file.",
            "File: [DIR]/test/cw/dkms.conf does not represent a valid dkms.conf file."
        ],
        "{ours:?}"
    );
}
