//! dkms-postinst against the oracle: Debian's own `/usr/lib/dkms/common.postinst` (with real
//! dkms 3.0.10) runs the same scenario in a private mount namespace, where /var/lib/dkms is a
//! tmpfs, /etc/dkms an empty dir, and /usr/src and /lib/modules are overlays whose writes land
//! in a temp dir: nothing on the machine changes (debconf's confmodule, which it sources and
//! never uses, is hidden). dkms-postinst runs in temp trees holding
//! the same kernels. Exit codes and the resulting `dkms status` must be the same.

use crate::support;

use std::path::Path;
use std::process::Command;

use support::scratch::{Scratch, TRIVIAL, ok, run};

/// What a run ended with: exit code and `dkms status` afterwards.
#[derive(Debug, PartialEq, Eq)]
struct Result {
    code: i32,
    status: String,
}

/// The kernels (dir names) of the real /lib/modules, which the oracle sees.
fn machine_kernels() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/lib/modules")
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    v.sort();
    v
}

fn oracle_available() -> bool {
    support::require_tool("dkms")
        && support::require_tool("unshare")
        && support::require_tool("mount")
        && (Path::new("/usr/lib/dkms/common.postinst").is_file()
            || support::missing("/usr/lib/dkms/common.postinst (package dkms)"))
}

/// Run common.postinst NAME VERSION /usr/share/NAME-dkms "" PREVIOUS in the namespace, with
/// `uname -r` answering `running`, the module sources of `src` visible under /usr/src.
fn common_postinst(src: &Path, running: &str, name: &str, version: &str) -> (Result, String) {
    let t = tempfile::tempdir().unwrap();
    let p = |s: &str| t.path().join(s);
    for d in ["src-work", "mod-up", "mod-work", "bin", "etc", "out"] {
        std::fs::create_dir(p(d)).unwrap();
    }
    ok(Command::new("cp").arg("-a").arg(src).arg(p("src-up")));
    std::fs::write(
        p("bin/uname"),
        format!(
            "#!/bin/sh\n[ \"$1\" = -r ] && echo '{running}' && exit 0\nexec /bin/uname \"$@\"\n"
        ),
    )
    .unwrap();
    ok(Command::new("chmod").arg("+x").arg(p("bin/uname")));
    let modules = std::fs::canonicalize("/lib/modules").unwrap();
    let script = format!(
        r#"set -e
mount -t tmpfs none /var/lib/dkms
mount --bind {etc} /etc/dkms
# common.postinst sources debconf's confmodule but never uses it; parallel runs would fight
# over debconf's lock.
[ -f /usr/share/debconf/confmodule ] && mount --bind /dev/null /usr/share/debconf/confmodule
mount -t overlay overlay -o lowerdir=/usr/src,upperdir={t}/src-up,workdir={t}/src-work /usr/src
mount -t overlay overlay -o lowerdir={modules},upperdir={t}/mod-up,workdir={t}/mod-work {modules}
export PATH={t}/bin:$PATH sign_file=/nonexistent/sign-file LC_ALL=C.UTF-8
set +e
sh /usr/lib/dkms/common.postinst {name} {version} /usr/share/{name}-dkms "" ""
echo $? > {t}/out/rc
dkms status > {t}/out/status
"#,
        etc = p("etc").display(),
        t = t.path().display(),
        modules = modules.display(),
    );
    // Its overlays lie on the machine's /usr/src and /lib/modules: not while a dpkg test installs.
    let lock = support::dpkg::share_lock();
    let (code, out, err) =
        run(Command::new("unshare").args(["-m", "--propagation", "private", "sh", "-c", &script]));
    drop(lock);
    assert_eq!(code, 0, "the oracle's namespace failed:\n{out}\n{err}");
    let read = |f: &str| std::fs::read_to_string(p(f)).unwrap();
    (
        Result {
            code: read("out/rc").trim().parse().unwrap(),
            status: read("out/status"),
        },
        format!("{out}\n{err}"),
    )
}

/// The same with dkms-postinst in temp trees holding the machine's kernels.
fn dkms_postinst(s: &Scratch, running: &str, name: &str, version: &str) -> (Result, String) {
    let (code, out, err) =
        run(&mut s.dkms_postinst(&["configure", name, version, "--running-kernel", running]));
    let status = ok(&mut s.dkms(&["status"]));
    assert_eq!(ok(&mut s.dkms_rs(&["status"])), status);
    (Result { code, status }, format!("{out}\n{err}"))
}

/// Both runs for the module written by `write` (into a scratch source tree).
fn compare(running: Option<usize>, write: impl Fn(&Scratch)) -> Result {
    let kernels = machine_kernels();
    let s = Scratch::new(&kernels);
    write(&s);
    let running = running.map_or("6.18.0-notinstalled".to_string(), |i| kernels[i].clone());
    let (ours, our_log) = dkms_postinst(&s, &running, "pioracle", "1.0");
    let (theirs, their_log) = common_postinst(&s.source_tree, &running, "pioracle", "1.0");
    assert_eq!(
        ours, theirs,
        "dkms-postinst:\n{our_log}\ncommon.postinst:\n{their_log}"
    );
    ours
}

fn kernels_needed(n: usize) -> bool {
    oracle_available() && support::require_kernels(n).is_some()
}

#[test]
fn chroot_install_builds_for_every_kernel_as_common_postinst() {
    if !kernels_needed(1) {
        return;
    }
    let r = compare(None, |s| {
        s.write_module("pioracle", "1.0", "", TRIVIAL);
    });
    assert_eq!(r.code, 0);
    assert_eq!(r.status.lines().count(), machine_kernels().len(), "{r:?}");
}

#[test]
fn installed_running_kernel_only_as_common_postinst() {
    if !kernels_needed(2) {
        return;
    }
    let r = compare(Some(1), |s| {
        s.write_module("pioracle", "1.0", "", TRIVIAL);
    });
    assert_eq!(r.status.lines().count(), 1, "{r:?}");
}

#[test]
fn failing_build_exits_as_common_postinst() {
    if !kernels_needed(1) {
        return;
    }
    let r = compare(None, |s| {
        s.write_module("pioracle", "1.0", "", "this is not C;\n");
    });
    assert_ne!(r.code, 0, "{r:?}");
}

#[test]
fn build_exclusive_skips_as_common_postinst() {
    if !kernels_needed(1) {
        return;
    }
    let r = compare(None, |s| {
        s.write_module(
            "pioracle",
            "1.0",
            "BUILD_EXCLUSIVE_KERNEL=\"^2\\.6\\.\"\n",
            TRIVIAL,
        );
    });
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.status, "pioracle/1.0: added\n");
}

#[test]
fn bad_dkms_conf_fails_as_common_postinst() {
    if !kernels_needed(1) {
        return;
    }
    let r = compare(None, |s| {
        let dir = s.write_module("pioracle", "1.0", "", TRIVIAL);
        let conf = std::fs::read_to_string(dir.join("dkms.conf")).unwrap();
        // dkms: "'BUILT_MODULE_NAME' directive ends in '.o' or '.ko'".
        let conf = conf.replace(
            "BUILT_MODULE_NAME[0]=\"pioracle\"",
            "BUILT_MODULE_NAME[0]=\"pioracle.ko\"",
        );
        assert!(conf.contains("pioracle.ko"));
        std::fs::write(dir.join("dkms.conf"), conf).unwrap();
    });
    assert_ne!(r.code, 0, "{r:?}");
}

/// No /usr/src/NAME-VERSION: common.postinst calls it a binaries-only package and exits 0.
#[test]
fn missing_source_is_not_a_failure_as_in_common_postinst() {
    if !kernels_needed(1) {
        return;
    }
    let r = compare(None, |_| {});
    assert_eq!(r.status, "", "{r:?}");
}

/// common.postinst's own `get_newest_kernel` (its functions, with /boot and /lib/modules
/// pointed at temp dirs) against [`dkms::postinst::Hook::newest_kernel`] on the same files.
#[test]
fn newest_kernel_is_common_postinsts_choice() {
    if !oracle_available() || !support::require_tool("dpkg") {
        return;
    }
    let text = std::fs::read_to_string("/usr/lib/dkms/common.postinst").unwrap();
    let start = text
        .find("# Check the existence of a kernel named as $1")
        .expect("common.postinst layout: _is_kernel_name_correct");
    let end = text
        .find("\nNAME=$1")
        .expect("common.postinst layout: NAME=$1");
    let functions = text[start..end]
        .replace("/boot/config-*", "$ORACLE_BOOT/config-*")
        .replace("/lib/modules/$1", "$ORACLE_MODS/$1");
    let cases: &[(&str, &[&str], &[&str])] = &[
        // (running, /boot/config-*, /lib/modules/*)
        (
            "6.1.0-999-amd64",
            &[
                "6.1.0-999-amd64",
                "6.1.0-990-amd64",
                "6.1.0-1000-amd64",
                "5.10.0-999-amd64",
            ],
            &["6.1.0-999-amd64", "6.1.0-1000-amd64"],
        ),
        (
            "6.1.0-999-amd64",
            &["6.1.0-999-amd64", "6.1.0-999-cloud-amd64"],
            &["6.1.0-999-amd64", "6.1.0-999-cloud-amd64"],
        ),
        // The newest has no modules dir: none.
        (
            "6.1.0-999-amd64",
            &["6.1.0-1000-amd64"],
            &["6.1.0-999-amd64"],
        ),
        // Older than the running kernel only.
        (
            "6.18.0-999-amd64",
            &["6.1.0-999-amd64"],
            &["6.1.0-999-amd64"],
        ),
        ("6.1.0-999-amd64", &[], &["6.1.0-999-amd64"]),
    ];
    let mut chosen = 0;
    for (running, configs, installed) in cases {
        let t = tempfile::tempdir().unwrap();
        let boot = t.path().join("boot");
        let mods = t.path().join("lib/modules");
        std::fs::create_dir_all(&boot).unwrap();
        for c in *configs {
            std::fs::write(boot.join(format!("config-{c}")), "").unwrap();
        }
        for k in *installed {
            std::fs::create_dir_all(mods.join(k)).unwrap();
        }
        let theirs = ok(Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{functions}\nCURRENT_KERNEL=\"$1\"\nget_newest_kernel"
            ))
            .arg("sh")
            .arg(running)
            .env("ORACLE_BOOT", &boot)
            .env("ORACLE_MODS", &mods));
        let mut hook = dkms::postinst::Hook::open(
            dkms::tree::Roots {
                dkms_tree: Some(t.path().join("tree")),
                source_tree: Some(t.path().join("src")),
                install_tree: Some(mods.clone()),
                kernel_source_dir: None,
                etc_dir: Some(t.path().join("etc")),
            },
            Some(dkms::kernel::KernelRelease(running.to_string())),
            dkms::console::Console::default(),
        )
        .unwrap();
        hook.boot_dir = boot;
        let ours = hook.newest_kernel().map(|k| k.0).unwrap_or_default();
        assert_eq!(
            ours,
            theirs.trim(),
            "running {running}, configs {configs:?}"
        );
        chosen += usize::from(!ours.is_empty());
    }
    // Not only empty answers: the choice itself is compared.
    assert!(chosen >= 2, "{chosen}");
}
