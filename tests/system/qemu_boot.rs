//! Harness check only: the qemu boot helper (`support::qemu`) is sound, no dkms-rs code runs.
//! The hello module built with plain kbuild against real headers loads into the matching Debian
//! kernel booted in qemu, and the kernel refuses it when built for the other flavour.

use crate::support;

use std::path::PathBuf;
use std::process::Command;

use support::qemu;

/// The generic and the cloud flavour of the installed Debian kernels with headers.
fn flavours() -> Option<(String, String)> {
    let kernels = support::kernels_with_headers();
    let newest = |cloud: bool| {
        kernels
            .iter()
            .filter(|k| k.ends_with("-amd64") && k.ends_with("-cloud-amd64") == cloud)
            .max()
            .cloned()
    };
    Some((newest(false)?, newest(true)?))
}

/// Build examples/hello for `kver` with plain kbuild in a scratch copy; returns its hello.ko.
fn build_hello(kver: &str, scratch: &tempfile::TempDir) -> PathBuf {
    let src = scratch.path().join(format!("hello-{kver}"));
    std::fs::create_dir_all(&src).unwrap();
    for file in ["hello.c", "Makefile"] {
        std::fs::copy(support::hello_source().join(file), src.join(file)).unwrap();
    }
    support::run_ok(
        Command::new("make")
            .arg("-C")
            .arg(format!("/lib/modules/{kver}/build"))
            .arg(format!("M={}", src.display()))
            .arg("modules"),
    );
    src.join("hello.ko")
}

/// Headers for both flavours, the qemu tools and both kernel images, or skip/fail.
/// Returns the two flavours' kernel releases.
fn prerequisites() -> Option<(String, String)> {
    let Some((amd64, cloud)) = flavours() else {
        support::missing(
            "headers for an -amd64 and a -cloud-amd64 kernel (linux-headers-amd64 linux-headers-cloud-amd64)",
        );
        return None;
    };
    let ready = support::require_tool("make")
        && qemu::require_qemu()
        && qemu::kernel_image(&amd64).is_some()
        && qemu::kernel_image(&cloud).is_some();
    ready.then_some((amd64, cloud))
}

fn assert_loads(pick: fn((String, String)) -> String) {
    let Some(flavours) = prerequisites() else {
        return;
    };
    let kver = &pick(flavours);
    let scratch = tempfile::tempdir().unwrap();
    let ko = build_hello(kver, &scratch);
    let boot = qemu::boot_with_modules(kver, &[ko]);
    eprintln!("{kver}: booted in {:.1} s", boot.elapsed.as_secs_f64());
    assert!(
        !boot.timed_out,
        "{kver} did not power off:\n{}",
        boot.console
    );
    assert_eq!(
        boot.insmod_status(0),
        Some(0),
        "insmod hello.ko into {kver}:\n{}",
        boot.console
    );
    assert!(
        boot.dmesg().contains("Hello world."),
        "no greeting from hello.ko in {kver}'s dmesg:\n{}",
        boot.console
    );
}

#[test]
fn hello_loads_into_amd64_kernel() {
    assert_loads(|(amd64, _)| amd64);
}

#[test]
fn hello_loads_into_cloud_kernel() {
    assert_loads(|(_, cloud)| cloud);
}

/// The other half of the proof: a module built for -amd64 is rejected by the -cloud kernel
/// (modversions: "disagrees about version of symbol module_layout"), so "Hello world." above
/// really comes from a module that matched its kernel.
#[test]
fn hello_built_for_amd64_is_rejected_by_cloud_kernel() {
    let Some((amd64, cloud)) = prerequisites() else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let ko = build_hello(&amd64, &scratch);
    let boot = qemu::boot_with_modules(&cloud, &[ko]);
    assert!(
        !boot.timed_out,
        "{cloud} did not power off:\n{}",
        boot.console
    );
    let status = boot.insmod_status(0);
    assert!(
        status.is_some_and(|s| s != 0),
        "insmod of an {amd64} module into {cloud} should fail, got {status:?}:\n{}",
        boot.console
    );
    assert!(
        !boot.dmesg().is_empty() && !boot.console.contains("Hello world."),
        "{cloud} ran an {amd64} module (or never printed dmesg):\n{}",
        boot.console
    );
}
