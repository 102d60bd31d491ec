//! `dkms-rs --no-exec` on every action that reads a dkms.conf (issue 9): a module whose
//! dkms.conf needs bash is refused with one line naming the file and line, exit 8
//! (autoinstall: that line, then its summary and 11), and nothing runs or changes: the conf's
//! shell code would create a marker, and `bash` on PATH logs each start ([`BashLog`]). The
//! same actions without `--no-exec` run the file (the control that the checks see).

use crate::support::{self, BashLog};

use std::path::Path;

use support::scratch::{Scratch, TRIVIAL, listing, ok, run};

fn refusal(conf: &Path) -> String {
    format!(
        "Error! {}:5: needs bash (a command or shell syntax): \
         --no-exec refuses to run its shell code",
        conf.display()
    )
}

#[test]
fn no_exec_refuses_a_conf_that_needs_bash_in_every_action() {
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    if !support::require_tool("make") || !support::require_tool("tar") {
        return;
    }
    let k = kernels[0].as_str();
    let s = Scratch::new(&[k.to_owned()]);
    let bash = BashLog::new(&s.dir.path().join("log"));
    let marker = s.dir.path().join("MARKER");
    // Line 5: a command (the conf's first four lines are write_module's).
    let extra = format!(": \"$(touch '{}')\"\nAUTOINSTALL=yes\n", marker.display());
    let src = s.write_module("nx", "1.0", &extra, TRIVIAL);
    let in_src = src.join("dkms.conf");
    let in_tree = s.dkms_tree.join("nx/1.0/source/dkms.conf");
    let dkms_rs = |args: &[&str]| {
        let mut cmd = s.dkms_rs(args);
        cmd.env("PATH", bash.path_var());
        cmd
    };
    let snapshot = || {
        let mut l = listing(s.dir.path());
        l.retain(|p| p != "tree/.dkms-rs.lock" && !p.starts_with("log") && p != "MARKER");
        l
    };
    // Refused: `code`, stderr starting with the refusal, nothing run, nothing changed.
    let refused = |args: &[&str], conf: &Path, code: i32| -> String {
        let before = snapshot();
        let mut full = vec!["--no-exec"];
        full.extend(args);
        let (got, out, err) = run(&mut dkms_rs(&full));
        assert_eq!(got, code, "{args:?}: {out}{err}");
        assert_eq!(
            err.lines().find(|l| !l.is_empty()),
            Some(refusal(conf).as_str()),
            "{args:?}"
        );
        if code == 8 {
            assert_eq!(err.lines().count(), 2, "{args:?}: {err}");
        }
        assert!(!marker.exists(), "{args:?}: the conf's shell code ran");
        assert_eq!(bash.runs(), 0, "{args:?}: bash started");
        assert_eq!(snapshot(), before, "{args:?} changed the scratch dir");
        out
    };
    let control = |args: &[&str]| {
        let out = ok(&mut dkms_rs(args));
        assert!(marker.exists(), "{args:?}: control: the code did not run");
        std::fs::remove_file(&marker).expect("rm marker");
        assert!(bash.runs() >= 1, "{args:?}: control: bash did not start");
        out
    };

    refused(&["add", "nx/1.0", "-k", k], &in_src, 8);
    refused(&["add", src.to_str().expect("utf-8"), "-k", k], &in_src, 8);
    control(&["add", "nx/1.0", "-k", k]);

    refused(&["build", "nx/1.0", "-k", k], &in_tree, 8);
    refused(&["autoinstall", "-k", k], &in_tree, 11);
    refused(
        &["mktarball", "nx/1.0", "-k", k, "--source-only"],
        &in_tree,
        8,
    );
    refused(&["mkdeb", "nx/1.0"], &in_tree, 8);
    refused(&["mkdsc", "nx/1.0"], &in_tree, 8);
    control(&["build", "nx/1.0", "-k", k]);

    // Built: status cannot say so without reading the conf, nor say "added" alone.
    let out = refused(&["status"], &in_tree, 8);
    assert_eq!(out, "", "status printed a state it could not judge");
    let out = control(&["status"]);
    assert!(out.contains(&format!("nx/1.0, {k}, ")), "{out}");
    for args in [
        &["install", "nx/1.0", "-k", k][..],
        &["unbuild", "nx/1.0", "-k", k],
        &["unbuild", "nx/1.0", "--all"],
        &["remove", "nx/1.0", "--all"],
        &["uninstall", "nx/1.0", "--all"],
        &["mktarball", "nx/1.0", "--all"],
        &["mkbmdeb", "nx/1.0", "--all"],
        &["mkdeb", "nx/1.0", "-k", k],
    ] {
        refused(args, &in_tree, 8);
    }
    let archive = s.dir.path().join("nx.dkms.tar.gz");
    let archive = archive.to_str().expect("utf-8");
    control(&["mktarball", "nx/1.0", "-k", k, "--archive", archive]);
    control(&["remove", "nx/1.0", "--all"]);

    // A tarball whose dkms.conf needs bash: not loaded (its conf is read where it was
    // extracted, a temp dir that is gone with it).
    let before = snapshot();
    let (code, out, err) = run(&mut dkms_rs(&["--no-exec", "ldtarball", archive, "-k", k]));
    assert_eq!(code, 8, "{out}{err}");
    assert_eq!(err.lines().count(), 2, "{err}");
    assert!(
        err.starts_with("\nError! ")
            && err.contains("/dkms_source_tree/dkms.conf:5: needs bash (a command or shell syntax): --no-exec refuses to run its shell code"),
        "{err}"
    );
    assert!(!marker.exists());
    assert_eq!(bash.runs(), 0);
    assert_eq!(snapshot(), before, "ldtarball loaded something");
    control(&["ldtarball", archive, "-k", k]);
}
