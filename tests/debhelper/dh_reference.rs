//! Harness check only: the dh_dkms reference package builder (`support::debhelper`) is sound,
//! no dkms-rs code runs. The reference package (`dh` + `dh_dkms`) that dkms-mkdeb and
//! dh_dkms-rs are compared to really is what Debian's tools make of examples/hello.

use crate::support;

use std::process::Command;

use support::debhelper;

#[test]
fn dh_dkms_reference_for_hello() {
    if !debhelper::require_debhelper() || !support::require_tool("dpkg-deb") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let deb = debhelper::build_dh_reference(&support::hello_source(), "hello", "0.1", work.path());
    assert_eq!(deb, work.path().join("hello-dkms_0.1_all.deb"));

    let contents = support::run_ok(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    // `dpkg-deb --contents` prints `ls -l`-like lines; the path is the last field.
    let paths: Vec<&str> = contents
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    for file in ["dkms.conf", "hello.c", "Makefile"] {
        let path = format!("./usr/src/hello-0.1/{file}");
        assert!(
            paths.contains(&path.as_str()),
            "{path} missing:\n{contents}"
        );
    }
    // dh_dkms installs dkms.conf from the source as it is.
    let data = tempfile::tempdir().unwrap();
    support::run_ok(
        Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(data.path()),
    );
    assert_eq!(
        std::fs::read(data.path().join("usr/src/hello-0.1/dkms.conf")).unwrap(),
        std::fs::read(support::hello_source().join("dkms.conf")).unwrap()
    );

    let info = support::run_ok(Command::new("dpkg-deb").arg("-I").arg(&deb));
    assert!(info.contains(" postinst "), "no postinst:\n{info}");
    assert!(info.contains(" prerm "), "no prerm:\n{info}");
    assert!(info.contains("Depends: dkms (>= 2.1.0.0)"), "{info}");
    let postinst = support::run_ok(Command::new("dpkg-deb").arg("-I").arg(&deb).arg("postinst"));
    assert!(
        postinst.contains("/usr/lib/dkms/common.postinst")
            && postinst.contains("DKMS_NAME=hello")
            && postinst.contains("DKMS_VERSION=0.1"),
        "postinst does not hand hello/0.1 to dkms:\n{postinst}"
    );
    let prerm = support::run_ok(Command::new("dpkg-deb").arg("-I").arg(&deb).arg("prerm"));
    assert!(
        prerm.contains("dkms remove -m $DKMS_NAME -v $DKMS_VERSION --all"),
        "prerm does not remove the module:\n{prerm}"
    );
}
