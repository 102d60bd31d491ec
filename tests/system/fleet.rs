//! A fleet builds once per kernel and installs everywhere, with existing tools (issue 13):
//! `dkms-mkdeb --binaries-only` writes one `<name>-modules-<K>` package for each kernel with
//! headers here; reprepro (Debian's package) publishes them as a `file:` apt repository; a
//! bookworm machine without dkms (`.ci/target-chroot`'s tarball, in a chroot)
//! installs the package of one kernel with apt, which brings that kernel's image, and kmod
//! finds the module there (`modinfo -k K`, through modules.dep); `apt-get remove` takes it out.
//! dkms-rs orchestrates nothing here: the build farm is whatever runs dkms-mkdeb per kernel.

use crate::support;
use crate::target_chroot::{Machine, target_tarball};

use std::path::Path;

use support::{require_tool, run_ok};

/// The package names reprepro lists for `codename`, as `name version` lines, sorted.
fn listed(repo: &Path, codename: &str) -> Vec<String> {
    let out = run_ok(
        support::command("reprepro")
            .arg("-b")
            .arg(repo)
            .args(["list", codename]),
    );
    // reprepro list: `fleet|main|amd64: hello-modules-<K> 0.1`
    let mut lines: Vec<String> = out
        .lines()
        .filter_map(|l| l.split_once(": ").map(|(_, rest)| rest.to_owned()))
        .collect();
    lines.sort();
    lines
}

#[test]
fn per_kernel_module_packages_published_with_reprepro_install_and_remove_without_dkms() {
    if !support::scratch::is_root() && !support::missing("root (chroot, mounts)") {
        return;
    }
    for tool in [
        "mmdebstrap",
        "unshare",
        "chroot",
        "tar",
        "reprepro",
        "dpkg-deb",
    ] {
        if !require_tool(tool) {
            return;
        }
    }
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let debarch = run_ok(support::command("dpkg").arg("--print-architecture"))
        .trim()
        .to_owned();
    let work = tempfile::tempdir().unwrap();

    // The build farm's job, once per kernel (here: every kernel with headers, in one call).
    let out = work.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let mut mkdeb = support::command(env!("CARGO_BIN_EXE_dkms-mkdeb"));
    mkdeb.args([
        "--binaries-only",
        "--maintainer",
        "dkms-rs tests <tests@example.org>",
        "-o",
    ]);
    mkdeb.arg(&out);
    for k in &kernels {
        mkdeb.args(["-k", k]);
    }
    run_ok(mkdeb.arg(support::hello_source()));
    let mut debs: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    debs.sort();
    let mut expected: Vec<String> = kernels
        .iter()
        .map(|k| format!("hello-modules-{k}_0.1_{debarch}.deb"))
        .collect();
    expected.sort();
    assert_eq!(debs, expected, "one package per kernel");

    // Published with reprepro: a repository apt reads through a file: source.
    let repo = work.path().join("repo");
    std::fs::create_dir_all(repo.join("conf")).unwrap();
    std::fs::write(
        repo.join("conf/distributions"),
        format!(
            "Origin: dkms-rs tests\nLabel: fleet\nCodename: fleet\n\
             Architectures: {debarch}\nComponents: main\n\
             Description: kernel modules built once per kernel\n"
        ),
    )
    .unwrap();
    for deb in &debs {
        run_ok(
            support::command("reprepro")
                .arg("-b")
                .arg(&repo)
                .args(["includedeb", "fleet"])
                .arg(out.join(deb)),
        );
    }
    let mut published: Vec<String> = kernels
        .iter()
        .map(|k| format!("hello-modules-{k} 0.1"))
        .collect();
    published.sort();
    assert_eq!(listed(&repo, "fleet"), published, "reprepro's list");

    // A machine of the fleet: no dkms, no dkms-rs; the repository bound at /srv/fleet.
    let (tarball, cache) = target_tarball();
    let machine = Machine::bare("fleet", &tarball, &cache);
    run_ok(
        support::command("cp")
            .arg("-a")
            .arg(&repo)
            .arg(machine.root().join("srv/fleet")),
    );
    machine.add_source("fleet", "deb [trusted=yes] file:/srv/fleet fleet main");
    machine.apt("update");
    let none = machine.sh("dpkg-query -W dkms dkms-rs").0;
    assert_ne!(none, 0, "the fleet machine has no dkms");

    let k = &kernels[0];
    let package = format!("hello-modules-{k}");
    machine.apt(&format!("install {package}"));
    // kmod is the oracle: modinfo -k finds the module by name through K's modules.dep.
    let file = machine.ok(&format!("modinfo -k {k} -F filename hello"));
    let file = file.trim();
    let shipped = machine.ok(&format!("dpkg -L {package} | grep '\\.ko'"));
    assert_eq!(shipped.trim(), file, "modinfo finds the packaged file");
    let vermagic = machine.ok(&format!("modinfo -F vermagic {file}"));
    assert_eq!(
        vermagic.split(' ').next(),
        Some(k.as_str()),
        "built for {k}"
    );
    let rel = file
        .strip_prefix(&format!("/lib/modules/{k}/"))
        .unwrap_or_else(|| panic!("{file} is not under /lib/modules/{k}/"));
    let dep = machine.ok(&format!("cat /lib/modules/{k}/modules.dep"));
    assert!(
        dep.lines().any(|l| l.starts_with(&format!("{rel}:"))),
        "modules.dep of {k} lists {rel}"
    );
    // Only that kernel's package came: the others stay in the repository.
    let installed = machine.ok("dpkg-query -W -f '${Package} ${Status}\\n' 'hello-modules-*'");
    let installed: Vec<&str> = installed
        .lines()
        .filter(|l| l.ends_with(" installed"))
        .collect();
    assert_eq!(installed, [format!("{package} install ok installed")]);

    machine.apt(&format!("remove {package}"));
    assert_ne!(
        machine.sh(&format!("modinfo -k {k} -F filename hello")).0,
        0,
        "hello is gone for {k}"
    );
    assert_ne!(
        machine.sh(&format!("test -e {file}")).0,
        0,
        "{file} removed"
    );
    let dep = machine.ok(&format!("cat /lib/modules/{k}/modules.dep"));
    assert!(
        !dep.lines().any(|l| l.starts_with(&format!("{rel}:"))),
        "modules.dep of {k} no longer lists {rel}"
    );
}
