//! The tree lock: a second command waits, with a message, instead of interleaving or failing.

use crate::support;

use std::process::Stdio;
use std::time::Duration;

use support::scratch::{Scratch, TRIVIAL};

#[test]
fn a_command_waits_while_another_holds_the_lock() {
    let s = Scratch::new(&[]);
    s.add_hello_source();
    let lock = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(s.dkms_tree.join(".dkms-rs.lock"))
        .unwrap();
    lock.lock().unwrap();
    let mut child = s
        .dkms_rs(&["add", "hello/0.1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        child.try_wait().unwrap().is_none(),
        "add must wait for the lock"
    );
    assert!(
        !s.dkms_tree.join("hello").exists(),
        "nothing done while waiting"
    );
    lock.unlock().unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("Waiting for"), "{err}");
    assert!(s.dkms_tree.join("hello/0.1/source").is_symlink());
}

#[test]
fn two_builds_at_once_take_turns() {
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let k = kernels[0].as_str();
    let s = Scratch::new(&kernels);
    s.add_module("one", "1.0", "", TRIVIAL);
    s.add_module("two", "1.0", "", TRIVIAL);
    let spawn = |m: &str| {
        s.dkms_rs(&["install", m, "-k", k])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let children = [spawn("one/1.0"), spawn("two/1.0")];
    let mut waited = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        waited += usize::from(err.contains("Waiting for"));
    }
    assert_eq!(waited, 1, "exactly one of the two commands waited");
    for m in ["one", "two"] {
        assert!(s.installed_module(k, m).exists());
    }
}
