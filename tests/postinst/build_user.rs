//! framework.conf's `build_user` under `dkms-postinst configure`: the module's PRE_BUILD,
//! make and POST_BUILD run as that user (`nobody`: real on every Debian machine, owning
//! nothing) in a build dir it owns, cannot write outside it, and installing stays root's;
//! `build_user=root` runs the same steps as root. `id` and `stat`, run by the module's own
//! steps, say who ran them; dkms 3.2.2's `status` reads what was installed. Root only.

use crate::support;

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use support::scratch::{Scratch, is_root, ok, run};

/// `(uid, name)` of `user` as `id` says.
fn id_of(user: &str) -> (String, String) {
    let uid = ok(std::process::Command::new("id").args(["-u", user]));
    let name = ok(std::process::Command::new("id").args(["-un", user]));
    (uid.trim().to_owned(), name.trim().to_owned())
}

/// A scratch on the first kernel with headers building as `user`, the identity module
/// `who` in its source tree (not added: configure adds it), and the path its make tries
/// to write; `None` (a skip, a failure under CI) without root or headers.
fn setup(user: &str) -> Option<(Scratch, String, PathBuf)> {
    if !is_root() {
        support::missing("root (the build switches to the build user)");
        return None;
    }
    let k = support::require_kernels(1)?.remove(0);
    let s = Scratch::new(std::slice::from_ref(&k));
    s.set_build_user(user);
    let outside = s.dir.path().join("written-by-make");
    s.write_identity_module("who", &outside);
    Some((s, k, outside))
}

/// `dkms-postinst configure who 1.0` on `s`, then what it left: the kept make.log's identity
/// lines are `user`'s, the module is installed for `k` by root (the stored and installed
/// files root's, depmod run), and `status --format json|plain` say `installed` for `k`, as
/// dkms 3.2.2's text `status` on the same tree does. Returns the kept make.log.
fn configure_and_check(s: &Scratch, k: &str, user: &str) -> String {
    let (code, out, err) = run(&mut s.dkms_postinst(&["configure", "who", "1.0"]));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains(&format!("Building initial module for {k}")),
        "{out}"
    );
    let log = s.kept_make_log("who/1.0", k);
    let (uid, name) = id_of(user);
    let who = format!("uid={uid} user={name} dir={name}");
    assert_eq!(
        Scratch::identity_lines(&log),
        [
            format!("who-pre: {who}"),
            format!("who-make: {who}"),
            format!("who-post: {who}")
        ],
        "{log}"
    );
    let arch = support::arch();
    let stored = s
        .dkms_tree
        .join(format!("who/1.0/{k}/{arch}/module/who.ko"));
    let installed = s.installed_module(k, "who");
    for file in [&stored, &installed] {
        let meta = std::fs::metadata(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert_eq!((meta.uid(), meta.gid()), (0, 0), "{}", file.display());
    }
    let dep = std::fs::read_to_string(s.install_tree.join(k).join("modules.dep")).unwrap();
    assert!(
        dep.contains("updates/dkms/who.ko:"),
        "depmod did not run: {dep}"
    );

    let records = s.status_records();
    assert_eq!(
        records,
        [["who", "1.0", k, &arch, "installed"].map(|f| Some(f.to_owned()))],
        "status records"
    );
    let lines: String = records
        .iter()
        .map(|r| {
            let f = |i: usize| r[i].as_deref().unwrap_or_default();
            format!("{}/{}, {}, {}: {}\n", f(0), f(1), f(2), f(3), f(4))
        })
        .collect();
    assert_eq!(
        ok(&mut s.dkms_rs(&["status"])),
        lines,
        "dkms-rs's text status"
    );
    if let Some(reference) = support::dkms_3_2_2() {
        assert_eq!(
            ok(&mut s.dkms_3_2_2(&reference, &["status"])),
            lines,
            "dkms 3.2.2's status"
        );
    }
    log
}

#[test]
fn configure_builds_as_the_build_user_and_installs_as_root() {
    let Some((s, k, outside)) = setup("nobody") else {
        return;
    };
    let log = configure_and_check(&s, &k, "nobody");
    assert!(
        log.contains(&format!(
            "touch: cannot touch '{}': Permission denied",
            outside.display()
        )),
        "{log}"
    );
    assert!(!outside.exists(), "make wrote {}", outside.display());
}

#[test]
fn configure_with_build_user_root_builds_as_root() {
    let Some((s, k, outside)) = setup("root") else {
        return;
    };
    configure_and_check(&s, &k, "root");
    // Root's make could write there, and did: nothing kept it in.
    assert!(outside.exists(), "{}", outside.display());
}
