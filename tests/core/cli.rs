//! The command line around the core: `conf show`, `--version`, autoinstall's skips
//! (`no-autoinstall`, a kernel without headers), dkms's usage exit codes.

use crate::support;

use dkms::action::Session;
use dkms::console::Console;
use dkms::framework::Framework;
use dkms::kernel::{KernelRelease, Target};
use dkms::tree::Tree;
use support::scratch::{Scratch, TRIVIAL, ok, run};

#[test]
fn conf_show_prints_the_resolved_conf() {
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let s = Scratch::new(&kernels);
    let hello = support::hello_source();
    let hello = hello.to_str().unwrap();
    let out = ok(&mut s.dkms_rs(&["conf", "show", "--kernel", &kernels[0], hello]));
    assert!(out.contains("package_name=hello"), "{out}");
    assert!(
        out.contains(&format!("make_command=make all KVERSION={}", kernels[0])),
        "{out}"
    );
    let json = ok(&mut s.dkms_rs(&["conf", "show", "--format", "json", hello]));
    assert!(json.trim_start().starts_with('{'), "{json}");
}

/// An invalid file: the facts on stdout (`valid=no`), dkms's complaint as one line naming the
/// file, directive, record and line on stderr, dkms's exit code 8.
#[test]
fn conf_show_of_an_invalid_file_says_why_and_exits_8() {
    let s = Scratch::new(&[]);
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("dkms.conf");
    std::fs::write(
        &conf,
        "PACKAGE_NAME=bad\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME[0]=bad.ko\nDEST_MODULE_LOCATION[0]=/kernel\n",
    )
    .unwrap();
    let (code, out, err) = run(&mut s.dkms_rs(&[
        "conf",
        "show",
        "--kernel",
        support::FAKE_KERNEL,
        conf.to_str().unwrap(),
    ]));
    assert_eq!(code, 8, "{err}");
    assert!(out.lines().any(|l| l == "valid=no"), "{out}");
    // dkms 3.2.2's read_conf: each problem on its line, then the file named (the words are
    // compared with 3.2.2's own in conf_words_3_2_2.rs).
    assert!(
        err.starts_with(
            "dkms.conf: Error! 'BUILT_MODULE_NAME' directive ends in '.o' or '.ko' in record #0.\n"
        ) && err.ends_with(&format!(
            "\nError! Bad conf file.\nFile: {} does not represent a valid dkms.conf file.\n",
            conf.display()
        )),
        "{err}"
    );
}

#[test]
fn version_and_usage_errors() {
    let s = Scratch::new(&[]);
    let out = ok(&mut s.dkms_rs(&["--version"]));
    assert!(out.contains("dkms-3.2.2"), "{out}");
    // No module given: dkms's check_module_args dies with 1.
    let (code, _, err) = run(&mut s.dkms_rs(&["remove"]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("<module>"), "{err}");
    // A module that is not in the tree: 3.
    let (code, _, err) =
        run(&mut s.dkms_rs(&["uninstall", "nothere/1.0", "-k", support::FAKE_KERNEL]));
    assert_eq!(code, 3, "{err}");
    // No source directory: 2; a source without dkms.conf: 4.
    let (code, _, _) = run(&mut s.dkms_rs(&["add", "nothere/1.0"]));
    assert_eq!(code, 2);
    std::fs::create_dir_all(s.source_tree.join("empty-1.0")).unwrap();
    let (code, _, err) = run(&mut s.dkms_rs(&["add", "empty/1.0"]));
    assert_eq!(code, 4, "{err}");
}

#[test]
fn autoinstall_without_headers_fails_21_as_in_3_2_2() {
    // dkms 3.2.2 (run_test.sh, "Testing without headers"): with a module to build, autoinstall
    // dies in prepare_kernel with 21 and its headers message; without one it says nothing.
    let s = Scratch::new(&["0.0.1-noheaders".to_string()]);
    let (code, out, err) = run(&mut s.dkms_rs(&["autoinstall", "-k", "0.0.1-noheaders"]));
    assert_eq!((code, out.as_str(), err.as_str()), (0, "", ""));
    s.add_module("auto", "1.0", "AUTOINSTALL=yes\n", TRIVIAL);
    let (code, _, err) = run(&mut s.dkms_rs(&["autoinstall", "-k", "0.0.1-noheaders"]));
    assert_eq!(code, 21, "{err}");
    assert!(
        err.starts_with("\nError! Your kernel headers for kernel 0.0.1-noheaders cannot be found"),
        "{err}"
    );
    assert_eq!(ok(&mut s.dkms_rs(&["status"])), "auto/1.0: added\n");
}

#[test]
fn no_autoinstall_file_turns_autoinstall_off() {
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let s = Scratch::new(&kernels);
    s.add_module("auto", "1.0", "AUTOINSTALL=yes\n", TRIVIAL);
    let etc = tempfile::tempdir().unwrap();
    std::fs::write(etc.path().join("no-autoinstall"), "").unwrap();
    let tree = Tree {
        dkms_tree: s.dkms_tree.clone(),
        source_tree: s.source_tree.clone(),
        install_tree: s.install_tree.clone(),
        etc_dir: etc.path().to_path_buf(),
        kernel_source_dir: None,
        kernel_config: None,
        no_exec: false,
    };
    // A sign-file that is not there: no MOK pair made in the host's /var/lib/dkms.
    let framework = Framework {
        sign_file: Some(etc.path().join("no-sign-file")),
        ..Framework::default()
    };
    let mut session = Session::new(tree, &framework, Console::default());
    session.flags.no_depmod = true;
    let target = Target {
        kernel: KernelRelease(kernels[0].clone()),
        arch: support::arch(),
    };
    session.autoinstall(std::slice::from_ref(&target)).unwrap();
    assert!(!s.installed_module(&kernels[0], "auto").exists());
    std::fs::remove_file(etc.path().join("no-autoinstall")).unwrap();
    session.autoinstall(std::slice::from_ref(&target)).unwrap();
    assert!(s.installed_module(&kernels[0], "auto").exists());
}

#[test]
fn match_installs_on_a_kernel_what_the_template_kernel_has() {
    let Some(kernels) = support::require_kernels(2) else {
        return;
    };
    let (k1, k2) = (kernels[0].as_str(), kernels[1].as_str());
    let s = Scratch::new(&kernels);
    s.add_hello_source();
    s.write_module("other", "1.0", "", TRIVIAL);
    ok(&mut s.dkms_rs(&["install", "hello/0.1", "-k", k1]));
    ok(&mut s.dkms_rs(&["add", "other/1.0"]));
    ok(&mut s.dkms_rs(&["match", "--templatekernel", k1, "-k", k2]));
    assert!(s.installed_module(k2, "hello").exists());
    assert!(
        !s.installed_module(k2, "other").exists(),
        "not installed on the template"
    );
}

#[test]
fn errors_name_the_program_that_printed_them() {
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let s = Scratch::new(&kernels);
    s.write_module("broken", "1.0", "", "this is not C;\n");
    // A failed build is printed by the job that ran it, inside the core: the line must still
    // name the binary the user (or dpkg) ran.
    let (code, _, err) = run(&mut s.dkms_postinst(&["configure", "broken", "1.0"]));
    assert_eq!(code, 10, "{err}");
    assert!(
        err.contains("dkms-postinst: error: Bad return status for module build"),
        "{err}"
    );
    assert!(!err.contains("dkms-rs:"), "{err}");
    let (code, _, err) = run(&mut s.dkms_rs(&["build", "broken/1.0", "-k", &kernels[0]]));
    assert_eq!(code, 10, "{err}");
    assert!(
        err.contains("\nError! Bad return status for module build"),
        "{err}"
    );
}
