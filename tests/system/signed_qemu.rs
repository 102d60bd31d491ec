//! A module dkms-rs signed (MOK pair made on the first build, as dkms 3.2.2) still loads: the
//! installed hello.ko carries the signature modinfo reads back with the pair's certificate,
//! and insmod of that very file succeeds in the Debian kernel it was built for, booted in qemu
//! (which does not enforce signatures: the pair is not enrolled; what is shown is that signing
//! does not break the module).

use crate::support;

use support::qemu;
use support::scratch::{Scratch, ok};

#[test]
fn signed_hello_loads_in_the_booted_kernel() {
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    if !(qemu::require_qemu()
        && support::require_tool("openssl")
        && support::require_tool("modinfo"))
    {
        return;
    }
    let k = &kernels[0];
    if qemu::kernel_image(k).is_none() {
        return;
    }
    let s = Scratch::new(std::slice::from_ref(k));
    // framework.conf: the default sign-file (kbuild's), the pair in the scratch.
    let d = s.dir.path().display();
    std::fs::write(
        s.etc_dir.join("framework.conf"),
        format!("mok_signing_key=\"{d}/mok.key\"\nmok_certificate=\"{d}/mok.pub\"\n"),
    )
    .unwrap();
    s.add_hello_source();
    let out = ok(&mut s.dkms_rs(&["install", "hello/0.1", "-k", k]));
    assert!(
        out.contains(
            "Certificate or key are missing, generating self signed certificate for MOK..."
        ),
        "{out}"
    );
    let ko = s.installed_module(k, "hello");
    let field = |f: &str| {
        ok(support::command("modinfo").args(["-F", f]).arg(&ko))
            .trim()
            .to_owned()
    };
    assert_eq!(field("signer"), "DKMS module signing key");
    let serial = ok(support::command("openssl")
        .args(["x509", "-inform", "DER", "-noout", "-serial", "-in"])
        .arg(s.dir.path().join("mok.pub")));
    let hex = |t: &str| {
        t.chars()
            .filter(char::is_ascii_hexdigit)
            .collect::<String>()
            .to_ascii_uppercase()
            .trim_start_matches('0')
            .to_owned()
    };
    assert_eq!(
        hex(&field("sig_key")),
        hex(serial.trim().trim_start_matches("serial="))
    );
    let boot = qemu::boot_with_modules(k, std::slice::from_ref(&ko));
    assert!(!boot.timed_out, "{k}: qemu timed out\n{}", boot.console);
    assert_eq!(
        boot.insmod_status(0),
        Some(0),
        "{k}: insmod\n{}",
        boot.console
    );
    assert!(
        boot.dmesg().contains("Hello world."),
        "{k}: no greeting in dmesg\n{}",
        boot.console
    );
}
