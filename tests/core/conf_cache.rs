//! The conf cache (`<dkms_tree>/.dkms-rs.confs`, src/tree/conf_cache.rs): what a dkms.conf
//! says, kept with its stat data, stands for reading it again in `status` and in an install's
//! dependency check. Each step changes what the kept facts were read from in a way the
//! cache must see (a dkms.conf rewritten under its old mtime, an `/etc/dkms` override, which
//! dkms reads only for the module `-m` names, a working directory whose entry dkms's unquoted
//! echo globs to) and dkms-rs must then say what
//! dkms 3.2.2 says on the same tree; each step's output also differs from the one before, so
//! a cache that was wrongly trusted fails the comparison.

use std::path::Path;
use std::time::Duration;

use crate::dkms_3_2_2::Pair;
use crate::status_record::mtime_text;
use crate::support;

use support::scratch::{Scratch, TRIVIAL, ok};

const CACHE: &str = ".dkms-rs.confs";

/// The record's settle time (2 s) and a margin: files younger are read, not kept.
const SETTLE: Duration = Duration::from_millis(2500);

/// `status` by dkms-rs and by dkms 3.2.2 on `s`, run in `cwd`, which must say the same.
fn same_status(s: &Scratch, reference: &Path, cwd: &Path, why: &str) -> String {
    same_status_of(s, reference, cwd, &[], why)
}

/// [`same_status`] of `status <args>`.
fn same_status_of(s: &Scratch, reference: &Path, cwd: &Path, args: &[&str], why: &str) -> String {
    let args: Vec<&str> = std::iter::once("status")
        .chain(args.iter().copied())
        .collect();
    let theirs = ok(s.dkms_3_2_2(reference, &args).current_dir(cwd));
    let ours = ok(s.dkms_rs(&args).current_dir(cwd));
    assert_eq!(ours, theirs, "{why}: dkms-rs (left) vs dkms 3.2.2 (right)");
    theirs
}

/// Replace `file`'s contents and set its mtime back to what it was: only its ctime (and
/// perhaps its size) says it changed.
fn rewrite_keeping_mtime(file: &Path, text: &str) {
    let mtime = mtime_text(file);
    std::fs::write(file, text).expect("rewrite");
    ok(support::command("touch").args(["-d", &mtime]).arg(file));
    assert_eq!(mtime_text(file), mtime, "touch -d set the mtime back");
}

/// Whether the conf cache holds a line for `key` (`<module>/<version>`).
fn cached(s: &Scratch, key: &str) -> bool {
    let text = std::fs::read_to_string(s.dkms_tree.join(CACHE)).unwrap_or_default();
    text.lines()
        .any(|l| l.starts_with("c ") && l.contains(&format!(" {key}\t")))
}

/// A module whose built name is not its package name (what a glob of the working directory
/// can take away: dkms falls back to PACKAGE_NAME).
fn write_renamed_module(s: &Scratch) -> std::path::PathBuf {
    let dir = s.source_tree.join("cachec-1.0");
    std::fs::create_dir_all(&dir).expect("module dir");
    std::fs::write(dir.join("Kbuild"), "obj-m := cachec_ko.o\n").expect("Kbuild");
    std::fs::write(
        dir.join("cachec_ko.c"),
        format!("#include <linux/module.h>\n{TRIVIAL}\nMODULE_LICENSE(\"GPL\");\n"),
    )
    .expect("c");
    std::fs::write(
        dir.join("dkms.conf"),
        "PACKAGE_NAME=\"cachec\"\nPACKAGE_VERSION=\"1.0\"\nBUILT_MODULE_NAME[0]=\"cachec_ko\"\n\
         DEST_MODULE_LOCATION[0]=\"/updates\"\n",
    )
    .expect("dkms.conf");
    dir
}

#[test]
fn status_reads_a_dkms_conf_again_when_what_it_was_read_from_changed() {
    let Some(reference) = support::dkms_3_2_2_with(&["make", "unshare", "dkms", "touch", "stat"])
    else {
        return;
    };
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let k = kernels[0].as_str();
    let s = Scratch::new(&kernels);
    let home = s.dir.path().to_path_buf();
    s.write_module("cachea", "1.0", "", TRIVIAL);
    let renamed = write_renamed_module(&s);
    for m in ["cachea/1.0", "cachec/1.0"] {
        ok(&mut s.dkms_rs(&["add", m]));
        ok(&mut s.dkms_rs(&["build", m, "-k", k]));
        ok(&mut s.dkms_rs(&["install", m, "-k", k]));
    }
    std::thread::sleep(SETTLE);
    let fresh = same_status(&s, &reference, &home, "no cache yet");
    assert!(cached(&s, "cachea/1.0") && cached(&s, "cachec/1.0"));
    assert_eq!(same_status(&s, &reference, &home, "with the cache"), fresh);

    // (a) cachea's dkms.conf now names a module that was never built, its mtime set back.
    let conf = s.source_tree.join("cachea-1.0/dkms.conf");
    let text = std::fs::read_to_string(&conf).expect("dkms.conf");
    rewrite_keeping_mtime(&conf, &text.replace("=\"cachea\"", "=\"cachez\""));
    let renamed_a = same_status(&s, &reference, &home, "a dkms.conf rewritten");
    assert_ne!(renamed_a, fresh, "the rewritten dkms.conf changes status");
    rewrite_keeping_mtime(&conf, &text);
    std::thread::sleep(SETTLE);
    assert_eq!(same_status(&s, &reference, &home, "restored"), fresh);
    assert!(cached(&s, "cachea/1.0"), "kept again once settled");

    // (b) An /etc/dkms override of cachea, though the dkms.conf is unchanged. dkms reads the
    // overrides of its `$module`, `-m`'s: a plain status reads none, `status -m cachea` this one.
    let only_a = ["-m", "cachea"];
    let fresh_a = same_status_of(&s, &reference, &home, &only_a, "-m, no override");
    let over = s.etc_dir.join("cachea.conf");
    std::fs::write(&over, "BUILT_MODULE_NAME[0]=\"cachey\"\n").expect("override");
    assert_eq!(
        same_status(&s, &reference, &home, "an override, no -m"),
        fresh
    );
    let overridden = same_status_of(&s, &reference, &home, &only_a, "an override, -m");
    assert_ne!(overridden, fresh_a, "the override changes status -m cachea");
    std::fs::remove_file(&over).expect("remove override");
    assert_eq!(
        same_status_of(&s, &reference, &home, &only_a, "override gone"),
        fresh_a
    );

    // (c) A working directory with an entry that dkms's unquoted echo of
    // `BUILT_MODULE_NAME[0]="cachec_ko"` globs to: dkms re-reads the entry's name, an
    // assignment to another variable, and cachec falls back to its package name.
    let cwd = tempfile::tempdir().expect("cwd");
    std::fs::write(cwd.path().join("BUILT_MODULE_NAME0=\"cachec_ko\""), "").expect("entry");
    let globbed = same_status(&s, &reference, cwd.path(), "a directive-named entry");
    assert_ne!(globbed, fresh, "the glob changes status");
    assert_eq!(same_status(&s, &reference, &home, "back home"), fresh);
    assert!(renamed.is_dir());
}

/// The dependency check after an install (3.2.2's check_and_rebuild_dependent_modules)
/// reads every built module's dkms.conf; kept facts that say "no BUILD_DEPENDS_REBUILD"
/// stand for it only while the file is the one they were read from.
#[test]
fn an_install_sees_build_depends_added_under_an_old_mtime_as_dkms_3_2_2() {
    if !support::require_tool("touch") || !support::require_tool("stat") {
        return;
    }
    let Some((pair, k)) = Pair::on_a_kernel() else {
        return;
    };
    let k = k.as_str();
    pair.each(|s| {
        s.write_module("base", "1.0", "AUTOINSTALL=\"yes\"\n", TRIVIAL);
        s.write_module("user", "1.0", "AUTOINSTALL=\"yes\"\n", TRIVIAL);
    });
    pair.same(&["add", "base/1.0"]);
    pair.same(&["add", "user/1.0"]);
    let auto = pair.same(&["autoinstall", "-k", k]);
    assert_eq!(auto.0, 0, "{auto:?}");
    std::thread::sleep(SETTLE);
    pair.same(&["status"]);
    assert!(cached(&pair.ours, "user/1.0"), "status kept user's facts");
    // Kept facts say no rebuild: base installed again rebuilds nothing.
    pair.same(&["uninstall", "base/1.0", "-k", k]);
    let quiet = pair.same(&["install", "base/1.0", "-k", k]);
    assert!(!quiet.1.contains("Rebuilding"), "{quiet:?}");

    pair.each(|s| {
        let conf = s.source_tree.join("user-1.0/dkms.conf");
        let text = std::fs::read_to_string(&conf).expect("dkms.conf");
        rewrite_keeping_mtime(
            &conf,
            &format!("{text}BUILD_DEPENDS=\"base\"\nBUILD_DEPENDS_REBUILD=\"yes\"\n"),
        );
    });
    pair.same(&["uninstall", "base/1.0", "-k", k]);
    let rebuilt = pair.same(&["install", "base/1.0", "-k", k]);
    assert!(
        rebuilt
            .1
            .contains("Rebuilding module user/1.0 due to updated dependencies"),
        "{rebuilt:?}"
    );
    pair.same(&["status"]);
    pair.same(&["remove", "user/1.0", "--all"]);
    pair.same(&["remove", "base/1.0", "--all"]);
}
