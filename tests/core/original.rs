//! A module that an install would overwrite is kept in `original_module/` and put back, byte
//! for byte, on uninstall; dkms-rs shows 3.2.2's `(Original modules exist)` where 3.0.10 shows `(original_module exists)`.

use crate::support;

use support::scratch::{Scratch, TRIVIAL, ok, run};

/// A scratch tree with the seed's hello 0.1 in its source tree, and a hello.ko of `version`
/// (built by dkms-rs in another tree) already where dkms installs hello on the first kernel.
/// Returns the tree, that place and the bytes of the module there.
fn hello_with_another_in_place(
    kernels: &[String],
    version: &str,
) -> (Scratch, std::path::PathBuf, Vec<u8>) {
    let arch = support::arch();
    let k = kernels[0].as_str();
    let other = Scratch::new(kernels);
    other.write_module("hello", version, "", TRIVIAL);
    ok(&mut other.dkms_rs(&["build", &format!("hello/{version}"), "-k", k]));
    let other_ko = other
        .dkms_tree
        .join(format!("hello/{version}/{k}/{arch}/module/hello.ko"));

    let s = Scratch::new(kernels);
    s.add_hello_source();
    let place = s.installed_module(k, "hello");
    std::fs::create_dir_all(place.parent().unwrap()).unwrap();
    std::fs::copy(&other_ko, &place).unwrap();
    let bytes = std::fs::read(&place).unwrap();
    (s, place, bytes)
}

#[test]
fn original_module_is_backed_up_and_restored() {
    let arch = support::arch();
    if !support::require_tool("modinfo") {
        return;
    }
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let k = kernels[0].as_str();
    // An older hello (0.0) already sits where dkms installs hello.
    let (s, place, old_bytes) = hello_with_another_in_place(&kernels, "0.0");

    ok(&mut s.dkms_rs(&["install", "hello/0.1", "-k", k]));
    let modinfo = ok(std::process::Command::new("modinfo").arg(&place));
    assert!(modinfo.contains("version:        0.1"), "{modinfo}");
    let kept = s
        .dkms_tree
        .join(format!("hello/original_module/{k}/{arch}/hello.ko"));
    assert_eq!(std::fs::read(&kept).unwrap(), old_bytes);
    let line = format!("hello/0.1, {k}, {arch}: installed (Original modules exist)\n");
    assert_eq!(ok(&mut s.dkms_rs(&["status"])), line);
    if support::require_tool("dkms") {
        // dkms 3.0.10 reads the same state (its suffix words are older ones).
        assert_eq!(
            support::suffixes_of_3_2_2(&ok(&mut s.dkms(&["status"]))),
            line
        );
    }

    ok(&mut s.dkms_rs(&["uninstall", "hello/0.1", "-k", k]));
    assert_eq!(
        std::fs::read(&place).unwrap(),
        old_bytes,
        "original restored"
    );
    assert!(!s.dkms_tree.join("hello/original_module").exists());
    assert_eq!(
        ok(&mut s.dkms_rs(&["status"])),
        format!("hello/0.1, {k}, {arch}: built\n")
    );
    let dep = std::fs::read_to_string(s.install_tree.join(k).join("modules.dep")).unwrap();
    assert!(
        dep.contains("updates/dkms/hello.ko:"),
        "depmod sees the restored module: {dep}"
    );
}

#[test]
fn a_newer_module_in_place_is_neither_replaced_nor_deleted() {
    let arch = support::arch();
    if !support::require_tool("modinfo") {
        return;
    }
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let k = kernels[0].as_str();
    let (s, place, new_bytes) = hello_with_another_in_place(&kernels, "0.2");

    // dkms 3.2.2 (run_test.sh's multiversion section) refuses the older module, installs
    // nothing (6, "Installation aborted.") and keeps the newer file; 3.0.10 counted it installed.
    let (code, _, err) = support::scratch::run(&mut s.dkms_rs(&["install", "hello/0.1", "-k", k]));
    assert_eq!(code, 6, "{err}");
    assert!(
        err.contains("\nError! Module version 0.1 for hello.ko\nis not newer than what is already found in kernel ")
            && err.ends_with("\nError! Installation aborted.\n"),
        "{err}"
    );
    assert_eq!(std::fs::read(&place).unwrap(), new_bytes);
    let ours = ok(&mut s.dkms_rs(&["status"]));
    assert_eq!(ours, format!("hello/0.1, {k}, {arch}: built\n"));
    if support::require_tool("dkms") {
        assert_eq!(ok(&mut s.dkms(&["status"])), ours);
    }
    ok(&mut s.dkms_rs(&["uninstall", "hello/0.1", "-k", k]));
    assert_eq!(
        std::fs::read(&place).unwrap(),
        new_bytes,
        "not ours to delete"
    );
}

/// One case of dkms 3.2.2's `check_version_sanity`: the kernel's own copy of module `name`
/// (built from `kernel_c`, or the dkms build's own file when `None`) and the dkms module's
/// source `ours_c`.
struct SanityCase {
    name: &'static str,
    kernel_c: Option<String>,
    ours_c: String,
}

/// A module's C source: `MODULE_VERSION(version)` when given, and `code` in a string the
/// module keeps (another string is another srcversion, and other bytes).
fn sanity_source(version: Option<&str>, code: &str) -> String {
    let mut c = format!(
        "#include <linux/module.h>\nstatic const char sanity_code[] = \"{code}\";\n\
         static int __init m_init(void) {{ pr_info(\"%s\\n\", sanity_code); return 0; }}\n\
         static void __exit m_exit(void) {{}}\nmodule_init(m_init);\nmodule_exit(m_exit);\n\
         MODULE_LICENSE(\"GPL\");\n"
    );
    if let Some(v) = version {
        c.push_str(&format!("MODULE_VERSION(\"{v}\");\n"));
    }
    c
}

fn sanity_cases() -> Vec<SanityCase> {
    let case =
        |name, kernel: Option<(Option<&str>, &str)>, ours: (Option<&str>, &str)| SanityCase {
            name,
            kernel_c: kernel.map(|(v, code)| sanity_source(v, code)),
            ours_c: sanity_source(ours.0, ours.1),
        };
    vec![
        // tp_smapi's hdaps.ko beside a kernel's in-tree hdaps.ko: neither has a version.
        case("vs_unversioned", Some((None, "kernel")), (None, "dkms")),
        case("vs_same_file", None, (None, "dkms")),
        case(
            "vs_same_version",
            Some((Some("1.0"), "kernel")),
            (Some("1.0"), "dkms"),
        ),
        case(
            "vs_same_source",
            Some((Some("1.0"), "dkms")),
            (Some("1.0"), "dkms"),
        ),
        case(
            "vs_kernel_newer",
            Some((Some("2.0"), "kernel")),
            (Some("1.0"), "dkms"),
        ),
        case(
            "vs_ours_unversioned",
            Some((Some("1.0"), "kernel")),
            (None, "dkms"),
        ),
        case(
            "vs_ours_newer",
            Some((Some("0.9"), "kernel")),
            (Some("1.0"), "dkms"),
        ),
    ]
}

/// `<name>.ko` built by make against `kernel`'s headers from `c`, in a temp dir.
fn make_module(kernel: &str, name: &str, c: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Kbuild"), format!("obj-m := {name}.o\n")).unwrap();
    std::fs::write(dir.path().join(format!("{name}.c")), c).unwrap();
    ok(support::command("make")
        .arg("-C")
        .arg(
            std::path::Path::new("/lib/modules")
                .join(kernel)
                .join("build"),
        )
        .arg(format!("M={}", dir.path().display()))
        .arg("modules"));
    std::fs::read(dir.path().join(format!("{name}.ko"))).unwrap()
}

/// What one tool did with each case's `install`: exit code, whether its module file is
/// under `updates/`, and stderr with the scratch dir written `[DIR]`.
fn sanity_outcomes(
    kernel: &str,
    kernel_kos: &[Option<Vec<u8>>],
    tool: &dyn Fn(&Scratch, &[&str]) -> std::process::Command,
) -> Vec<(i32, bool, String)> {
    let arch = support::arch();
    let s = Scratch::new(&[kernel.to_string()]);
    let in_tree = s.install_tree.join(kernel).join("kernel/drivers/misc");
    std::fs::create_dir_all(&in_tree).unwrap();
    let mut seen = Vec::new();
    for (case, kernel_ko) in sanity_cases().iter().zip(kernel_kos) {
        let dir = s.write_module(case.name, "1.0", "", "");
        std::fs::write(dir.join(format!("{}.c", case.name)), &case.ours_c).unwrap();
        let mv = format!("{}/1.0", case.name);
        ok(&mut tool(&s, &["add", &mv]));
        ok(&mut tool(&s, &["build", &mv, "-k", kernel]));
        let bytes = kernel_ko.clone().unwrap_or_else(|| {
            let built = s.dkms_tree.join(format!(
                "{}/1.0/{kernel}/{arch}/module/{}.ko",
                case.name, case.name
            ));
            std::fs::read(&built).unwrap()
        });
        std::fs::write(in_tree.join(format!("{}.ko", case.name)), bytes).unwrap();
        let (code, _, err) = run(&mut tool(&s, &["install", &mv, "-k", kernel]));
        let installed = s.installed_module(kernel, case.name).exists();
        let dir = s.dir.path().display().to_string();
        seen.push((code, installed, err.replace(&dir, "[DIR]")));
    }
    seen
}

/// A module the kernel already has is installed, or refused, as dkms 3.2.2's
/// `check_version_sanity` decides: by version, then srcversion, then (neither) the bytes.
/// That differs from 3.0.10 for two modules with no version (tp_smapi's hdaps.ko beside a
/// kernel's own): 3.0.10 refuses, 3.2.2 installs when the files differ.
#[test]
fn a_module_the_kernel_has_is_judged_as_dkms_3_2_2_does() {
    let Some(reference) = support::dkms_3_2_2_with(&["make", "modinfo", "unshare"]) else {
        return;
    };
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let k = kernels[0].as_str();
    let kernel_kos: Vec<Option<Vec<u8>>> = sanity_cases()
        .iter()
        .map(|c| c.kernel_c.as_ref().map(|src| make_module(k, c.name, src)))
        .collect();
    let ours = sanity_outcomes(k, &kernel_kos, &|s, args| s.dkms_rs(args));
    let theirs = sanity_outcomes(k, &kernel_kos, &|s, args| s.dkms_3_2_2(&reference, args));
    let old = sanity_outcomes(k, &kernel_kos, &|s, args| s.dkms(args));
    for ((case, ours), theirs) in sanity_cases().iter().zip(&ours).zip(&theirs) {
        assert_eq!(
            ours, theirs,
            "{}: dkms-rs (left) vs dkms 3.2.2 (right)",
            case.name
        );
    }
    // Not a case where every tool agrees: 3.2.2 installs the unversioned module (the first
    // case), 3.0.10 does not; and each refuses some and installs others.
    assert!(
        theirs[0].1 && !old[0].1,
        "3.2.2 {:?}\n3.0.10 {:?}",
        theirs[0],
        old[0]
    );
    assert!(
        theirs.iter().any(|o| o.1) && theirs.iter().any(|o| !o.1),
        "{theirs:?}"
    );
}
