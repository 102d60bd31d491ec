//! Scenarios the upstream suite does not have, decided by what Debian's dkms 3.2.2 does
//! (`.ci/fetch-dkms-3.2.2`): each runs on two scratch trees with the same modules, one by
//! dkms-rs and one by 3.2.2, and the exit codes, output and `dkms status` must be the same.

use std::path::{Path, PathBuf};

use crate::support;

use support::scratch::{Scratch, TRIVIAL, run};

/// Two scratch trees on `kernels`, the same modules to be written in each.
pub(crate) struct Pair {
    pub(crate) ours: Scratch,
    pub(crate) theirs: Scratch,
    reference: PathBuf,
}

/// What a command did: exit code, stdout and stderr, the scratch dir written `[DIR]`.
pub(crate) type Seen = (i32, String, String);

impl Pair {
    pub(crate) fn new(kernels: &[String]) -> Option<Pair> {
        let reference = support::dkms_3_2_2_with(&["make", "modinfo", "unshare"])?;
        Some(Pair {
            ours: Scratch::new(kernels),
            theirs: Scratch::new(kernels),
            reference,
        })
    }

    /// A pair on the first kernel with headers, and that kernel.
    pub(crate) fn on_a_kernel() -> Option<(Pair, String)> {
        let kernel = support::require_kernels(1)?.remove(0);
        let pair = Pair::new(std::slice::from_ref(&kernel))?;
        Some((pair, kernel))
    }

    /// The same change to both trees.
    pub(crate) fn each(&self, f: impl Fn(&Scratch)) {
        f(&self.ours);
        f(&self.theirs);
    }

    /// The scratch dir written `[DIR]`, the program `dkms` (its usage names it), and the
    /// dots 3.2.2 prints while make runs (one a second) as three.
    fn normalize(s: &Scratch, program: &Path, seen: Seen) -> Seen {
        let dir = s.dir.path().display().to_string();
        let program = program.display().to_string();
        let clean = |text: String| {
            let mut text = text.replace(&dir, "[DIR]").replace(&program, "dkms");
            while text.contains("Building module(s)....") {
                text = text.replace("Building module(s)....", "Building module(s)...");
            }
            text
        };
        (seen.0, clean(seen.1), clean(seen.2))
    }

    /// `dkms ARGS` on both trees: (dkms-rs's, 3.2.2's).
    pub(crate) fn run(&self, args: &[&str]) -> (Seen, Seen) {
        let ours = Pair::normalize(
            &self.ours,
            Path::new(env!("CARGO_BIN_EXE_dkms-rs")),
            run(&mut self.ours.dkms_rs(args)),
        );
        let theirs = Pair::normalize(
            &self.theirs,
            &self.reference.join("usr/sbin/dkms"),
            run(&mut self.theirs.dkms_3_2_2(&self.reference, args)),
        );
        (ours, theirs)
    }

    /// `dkms ARGS` on both trees, which must do the same; dkms 3.2.2's result.
    pub(crate) fn same(&self, args: &[&str]) -> Seen {
        let (ours, theirs) = self.run(args);
        assert_eq!(
            ours,
            theirs,
            "dkms {}: dkms-rs (left) vs dkms 3.2.2 (right)",
            args.join(" ")
        );
        theirs
    }
}

/// A dkms.conf saved with CR/LF line ends reads as with LF (3.2.2's safe_source takes one
/// trailing CR off each directive; 3.0.10 kept it, in the module's names).
#[test]
fn a_crlf_dkms_conf_is_read_as_dkms_3_2_2_reads_it() {
    let Some((pair, k)) = Pair::on_a_kernel() else {
        return;
    };
    let k = k.as_str();
    pair.each(|s| {
        let dir = s.write_module("crlf", "1.0", "AUTOINSTALL=\"yes\"\n", TRIVIAL);
        let conf = std::fs::read_to_string(dir.join("dkms.conf")).unwrap();
        std::fs::write(dir.join("dkms.conf"), conf.replace('\n', "\r\n")).unwrap();
    });
    let added = pair.same(&["add", "crlf/1.0"]);
    assert_eq!(added.0, 0, "{added:?}");
    pair.same(&["build", "crlf/1.0", "-k", k]);
    let installed = pair.same(&["install", "crlf/1.0", "-k", k]);
    assert_eq!(installed.0, 0, "{installed:?}");
    let status = pair.same(&["status"]);
    assert!(
        status.1.ends_with(": installed\n") && !status.1.contains('\r'),
        "{status:?}"
    );
    assert!(pair.ours.installed_module(k, "crlf").is_file());
    pair.same(&["remove", "crlf/1.0", "--all"]);
}

/// A module whose BUILD_DEPENDS is added but not built: 3.2.2's words and exit code.
#[test]
fn build_depends_not_yet_built_as_dkms_3_2_2() {
    let Some((pair, k)) = Pair::on_a_kernel() else {
        return;
    };
    let k = k.as_str();
    pair.each(|s| {
        s.write_module("base", "1.0", "", TRIVIAL);
        s.write_module("dependent", "1.0", "BUILD_DEPENDS[0]=\"base\"\n", TRIVIAL);
    });
    pair.same(&["add", "base/1.0"]);
    pair.same(&["add", "dependent/1.0"]);
    let built = pair.same(&["build", "dependent/1.0", "-k", k]);
    assert_ne!(built.0, 0, "{built:?}");
    pair.same(&["status"]);
}

/// autoinstall with a module whose BUILD_EXCLUSIVE_KERNEL excludes the kernel beside one
/// that builds: the other is installed, the excluded one said as 3.2.2 says it.
#[test]
fn build_exclusive_during_autoinstall_as_dkms_3_2_2() {
    let Some((pair, k)) = Pair::on_a_kernel() else {
        return;
    };
    let k = k.as_str();
    pair.each(|s| {
        s.write_module("plain", "1.0", "AUTOINSTALL=\"yes\"\n", TRIVIAL);
        s.write_module(
            "excluded",
            "1.0",
            "AUTOINSTALL=\"yes\"\nBUILD_EXCLUSIVE_KERNEL=\"^0\\.no-such-kernel\"\n",
            TRIVIAL,
        );
    });
    pair.same(&["add", "plain/1.0"]);
    pair.same(&["add", "excluded/1.0"]);
    pair.same(&["autoinstall", "-k", k]);
    let status = pair.same(&["status"]);
    assert!(status.1.contains("plain/1.0, "), "{status:?}");
}

/// build and autoinstall for a kernel without headers (a fake one, only its modules dir).
#[test]
fn missing_headers_for_build_and_autoinstall_as_dkms_3_2_2() {
    let fake = support::FAKE_KERNEL.to_string();
    let Some(pair) = Pair::new(std::slice::from_ref(&fake)) else {
        return;
    };
    pair.each(|s| {
        s.write_module("headless", "1.0", "AUTOINSTALL=\"yes\"\n", TRIVIAL);
    });
    pair.same(&["add", "headless/1.0"]);
    let built = pair.same(&["build", "headless/1.0", "-k", &fake]);
    assert_ne!(built.0, 0, "{built:?}");
    let auto = pair.same(&["autoinstall", "-k", &fake]);
    assert_ne!(auto.0, 0, "{auto:?}");
    pair.same(&["status"]);
}

/// A module whose source dir was deleted after add: status and the actions on it.
#[test]
fn deleted_source_dir_as_dkms_3_2_2() {
    let Some((pair, k)) = Pair::on_a_kernel() else {
        return;
    };
    let k = k.as_str();
    pair.each(|s| {
        s.write_module("gone", "1.0", "", TRIVIAL);
    });
    pair.same(&["add", "gone/1.0"]);
    pair.each(|s| std::fs::remove_dir_all(s.source_tree.join("gone-1.0")).unwrap());
    let status = pair.same(&["status"]);
    assert!(status.1.contains("gone/1.0"), "{status:?}");
    pair.same(&["build", "gone/1.0", "-k", k]);
    pair.same(&["remove", "gone/1.0", "--all"]);
    pair.same(&["status"]);
}

/// `PATCH[0]="../x.patch"`: a patch path out of the patches dir, at add and at build.
#[test]
fn a_patch_out_of_the_patches_dir_as_dkms_3_2_2() {
    let Some((pair, k)) = Pair::on_a_kernel() else {
        return;
    };
    let k = k.as_str();
    pair.each(|s| {
        let dir = s.write_module("patchy", "1.0", "PATCH[0]=\"../x.patch\"\n", TRIVIAL);
        std::fs::create_dir_all(dir.join("patches")).unwrap();
        std::fs::write(dir.join("x.patch"), "").unwrap();
    });
    pair.same(&["add", "patchy/1.0"]);
    let built = pair.same(&["build", "patchy/1.0", "-k", k]);
    assert_ne!(built.0, 0, "{built:?}");
    pair.same(&["status"]);
}

/// An action dkms does not have.
#[test]
fn an_unknown_action_as_dkms_3_2_2() {
    let Some((pair, _)) = Pair::on_a_kernel() else {
        return;
    };
    let seen = pair.same(&["frobnicate"]);
    assert!(seen.2.contains("Unknown action specified"), "{seen:?}");
}

/// dkms 3.2.2's read_conf sources `/etc/dkms/<module>--<kernel>.conf` and
/// `<module>--<kernel>-<arch>.conf` (any version of the module) after 3.0.10's four: a build
/// of `-m -v` reads them. Each names a module make does not make: the build fails as 3.2.2's.
#[test]
fn any_version_kernel_overrides_are_read_as_dkms_3_2_2_reads_them() {
    let Some((pair, k)) = Pair::on_a_kernel() else {
        return;
    };
    let k = k.as_str();
    let arch = support::command("uname").arg("-m").output().unwrap().stdout;
    let arch = String::from_utf8(arch).unwrap().trim().to_string();
    pair.each(|s| {
        s.write_module("anyver", "1.0", "", TRIVIAL);
    });
    pair.same(&["add", "anyver/1.0"]);
    for name in [
        format!("anyver--{k}.conf"),
        format!("anyver--{k}-{arch}.conf"),
    ] {
        pair.each(|s| {
            std::fs::write(
                s.etc_dir.join(&name),
                "BUILT_MODULE_NAME[0]=\"anyver_other\"\n",
            )
            .unwrap()
        });
        let built = pair.same(&["build", "anyver/1.0", "-k", k]);
        assert_ne!(built.0, 0, "{name}: {built:?}");
        pair.each(|s| std::fs::remove_file(s.etc_dir.join(&name)).unwrap());
    }
    let built = pair.same(&["build", "anyver/1.0", "-k", k]);
    assert_eq!(built.0, 0, "no override: {built:?}");
    pair.same(&["status"]);
}

/// An autoinstall of independent modules, two at a time (`-j 2`): their lines come out in
/// 3.2.2's order (one module after the other, by name), blank line first, whichever build
/// ends first. `aorder`'s MAKE sleeps before make, so `zorder`, started beside it, ends first.
#[test]
fn parallel_autoinstall_says_each_module_in_dkms_3_2_2_s_order() {
    let Some((pair, k)) = Pair::on_a_kernel() else {
        return;
    };
    let k = k.as_str();
    pair.each(|s| {
        s.write_module(
            "aorder",
            "1.0",
            "AUTOINSTALL=\"yes\"\nMAKE[0]=\"sleep 4; make -C $kernel_source_dir M=$dkms_tree/aorder/1.0/build\"\n",
            TRIVIAL,
        );
        s.write_module("zorder", "1.0", "AUTOINSTALL=\"yes\"\n", TRIVIAL);
    });
    pair.same(&["add", "aorder/1.0"]);
    pair.same(&["add", "zorder/1.0"]);
    let auto = pair.same(&["autoinstall", "-k", k, "-j", "2"]);
    assert_eq!(auto.0, 0, "{auto:?}");
    let (a, z) = (
        auto.1.find("module aorder/1.0").expect("aorder said"),
        auto.1.find("module zorder/1.0").expect("zorder said"),
    );
    assert!(a < z, "{auto:?}");
    pair.same(&["status"]);
}
