//! End to end: `dkms-rs install` puts hello.ko into the install tree, and that very file loads
//! into the Debian kernel it was built for, booted in qemu: "Hello world." in dmesg.

use crate::support;

use support::qemu;
use support::scratch::{Scratch, ok};

#[test]
fn installed_hello_loads_in_the_booted_kernel() {
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    if !qemu::require_qemu() {
        return;
    }
    let s = Scratch::new(&kernels);
    s.add_hello_source();
    let mut args = vec!["install", "hello/0.1"];
    for k in &kernels {
        args.extend(["-k", k.as_str()]);
    }
    ok(&mut s.dkms_rs(&args));
    for k in &kernels {
        if qemu::kernel_image(k).is_none() {
            return;
        }
        let ko = s.installed_module(k, "hello");
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
}
