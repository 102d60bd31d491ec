//! framework.conf's `build_user` under `dkms-postinst configure`: the module's PRE_BUILD,
//! make and POST_BUILD run as that user (`nobody`: real on every Debian machine, owning
//! nothing) in a build dir it owns, cannot write outside it, and installing stays root's;
//! `build_user=root` runs the same steps as root. `id` and `stat`, run by the module's own
//! steps, say who ran them; dkms 3.2.2's `status` reads what was installed. Root only.

use crate::support;

use std::path::PathBuf;

use support::scratch::{Scratch, is_root, run};

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
    s.assert_who_built_as(k, user)
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
