//! The reference `-dkms` package, built the way a Debian packager does today: a source package
//! with `dh` + the dkms sequence (`dh_dkms`), `dpkg-buildpackage -b`. dkms-mkdeb is compared to it.
//! And Debian's debhelper tools as oracles: `dh_listpackages` for package selection, `dh_dkms`
//! run in a copy of a source package for what it writes (substvars).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// True when debhelper, dh_dkms and dpkg-buildpackage are there (else skip/fail as
/// [`super::missing`] says).
pub fn require_debhelper() -> bool {
    ["dpkg-buildpackage", "dh", "dh_dkms"]
        .iter()
        .all(|tool| super::require_tool(tool))
}

/// Top-level entries a packager leaves out of `/usr/src/<name>-<version>/`: `debian/` is the
/// packaging, dkms.conf is installed by dh_dkms itself, VCS dirs are not source.
const NOT_INSTALLED: &[&str] = &["debian", "dkms.conf", ".git", ".svn", ".hg", ".bzr", "CVS"];

/// `program` in `dir` with `args`, with a cleared environment ([`super::command`]: no DH_*,
/// DEB_* of the caller), then `env` set: the same for debhelper's tools and dh_dkms-rs.
pub fn debhelper_command(
    program: impl AsRef<std::ffi::OsStr>,
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> Command {
    let mut cmd = super::command(program);
    cmd.envs(env.iter().copied()).args(args).current_dir(dir);
    cmd
}

/// The packages Debian's `dh_listpackages` lists with `args` and `env` in the source package
/// `dir`: those any debhelper command given the same options acts on (Dh_Lib's DOPACKAGES), in
/// debian/control's order. Panics when it fails.
pub fn dh_listpackages(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Vec<String> {
    super::run_ok(&mut debhelper_command("dh_listpackages", dir, args, env))
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Debian's `dh_listpackages` with `args` and `env` in `dir` as it exits: (exit code, stderr).
pub fn dh_listpackages_status(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = debhelper_command("dh_listpackages", dir, args, env)
        .output()
        .unwrap_or_else(|e| panic!("cannot run dh_listpackages: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A copy of the source package `dir` in which Debian's `dh_dkms` (dh-dkms) ran `times` times
/// with `args`: read what it wrote there. Make it before anything else runs in `dir`.
/// Panics when dh_dkms fails.
pub fn dh_dkms_in_copy(dir: &Path, args: &[&str], times: usize) -> tempfile::TempDir {
    let copy = tempfile::tempdir().expect("temp dir for dh_dkms");
    super::run_ok(
        Command::new("cp")
            .arg("-a")
            .arg(dir.join("."))
            .arg(copy.path()),
    );
    for _ in 0..times {
        super::run_ok(&mut debhelper_command("dh_dkms", copy.path(), args, &[]));
    }
    copy
}

/// How a source package asks dh for a DKMS sequence.
#[derive(Clone, Copy, Debug)]
pub struct Sequence<'a> {
    /// Build-Depends of the source package.
    pub build_depends: &'a str,
    /// What follows `dh $@` in debian/rules (e.g. ` --with dkms-rs`).
    pub dh_args: &'a str,
}

/// Debian's own: `dh-sequence-dkms` in Build-Depends, so `dh $@` runs dh_dkms.
pub const DH_DKMS: Sequence<'static> = Sequence {
    build_depends: "debhelper-compat (= 13), dh-sequence-dkms",
    dh_args: "",
};

/// Build `<name>-dkms_<version>_all.deb` from the module in `source_dir` inside `workdir` with
/// debhelper compat 13 and `dh-sequence-dkms`, and return its path. Panics when the build fails.
/// The source package is [`write_source_package`]'s with [`DH_DKMS`].
pub fn build_dh_reference(source_dir: &Path, name: &str, version: &str, workdir: &Path) -> PathBuf {
    let tree = write_source_package(source_dir, name, version, workdir, DH_DKMS);
    // -b: binary only; -us -uc: nothing to sign. Rules-Requires-Root: no, so no fakeroot.
    super::run_ok(
        super::command("dpkg-buildpackage")
            .args(["-b", "-us", "-uc"])
            .current_dir(&tree),
    );
    let deb = workdir.join(format!("{name}-dkms_{version}_all.deb"));
    assert!(deb.is_file(), "dpkg-buildpackage made no {}", deb.display());
    deb
}

/// Write the source package `<workdir>/<name>-dkms-<version>/` of the module in `source_dir` as a
/// packager does, asking dh for `sequence`, and return its path. It is a copy of `source_dir` plus:
/// - `debian/control`: Source/Package `<name>-dkms`, Architecture: all, `${misc:Depends}`
///   (which dh_dkms fills with `dkms (>= 2.1.0.0)`), `sequence`'s Build-Depends;
/// - `debian/rules`: `dh $@` and `sequence`'s dh arguments; the dh_auto_* steps are emptied because
///   a dkms package builds nothing at package time (and hello's Makefile would run kbuild for
///   `uname -r`);
/// - `debian/<name>-dkms.install`: every top-level source entry to `usr/src/<name>-<version>/`;
/// - `debian/<name>-dkms.dkms`: names `dkms.conf`, which dh_dkms installs as
///   `usr/src/<name>-<version>/dkms.conf` and reads for the postinst/prerm autoscripts;
/// - `debian/changelog` (native `<version>`), `debian/copyright`, `debian/source/format`.
pub fn write_source_package(
    source_dir: &Path,
    name: &str,
    version: &str,
    workdir: &Path,
    sequence: Sequence,
) -> PathBuf {
    let package = format!("{name}-dkms");
    let tree = workdir.join(format!("{package}-{version}"));
    let debian = tree.join("debian");
    assert!(
        !source_dir.join("debian").exists(),
        "{} already has a debian/ directory",
        source_dir.display()
    );
    fs::create_dir_all(&tree).unwrap();
    super::run_ok(
        Command::new("cp")
            .arg("-a")
            .arg(source_dir.join("."))
            .arg(&tree),
    );
    fs::create_dir_all(debian.join("source")).unwrap();

    let write = |file: &str, text: String| {
        fs::write(debian.join(file), text)
            .unwrap_or_else(|e| panic!("cannot write debian/{file}: {e}"));
    };
    write(
        "control",
        format!(
            "Source: {package}\n\
             Section: kernel\n\
             Priority: optional\n\
             Maintainer: dkms-rs tests <dkms-rs@example.org>\n\
             Build-Depends: {build_depends}\n\
             Standards-Version: 4.6.2\n\
             Rules-Requires-Root: no\n\
             \n\
             Package: {package}\n\
             Architecture: all\n\
             Depends: ${{misc:Depends}}\n\
             Description: {name} driver in DKMS format\n \
             The {name} kernel module as source code, which DKMS builds and installs for\n \
             every kernel whose headers are installed, and again for each new kernel.\n",
            build_depends = sequence.build_depends,
        ),
    );
    write(
        "rules",
        format!(
            "#!/usr/bin/make -f\n\
             %:\n\tdh $@{}\n\
             \n\
             # A -dkms package ships source: nothing to configure, build, test or clean here.\n\
             override_dh_auto_configure override_dh_auto_build override_dh_auto_test \
             override_dh_auto_install override_dh_auto_clean:\n",
            sequence.dh_args
        ),
    );
    fs::set_permissions(
        debian.join("rules"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mut entries: Vec<String> = fs::read_dir(source_dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", source_dir.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|e| !NOT_INSTALLED.contains(&e.as_str()))
        .collect();
    entries.sort();
    let install: String = entries
        .iter()
        .map(|e| format!("{e} usr/src/{name}-{version}/\n"))
        .collect();
    write(&format!("{package}.install"), install);
    write(&format!("{package}.dkms"), "dkms.conf\n".to_owned());
    write(
        "changelog",
        format!(
            "{package} ({version}) unstable; urgency=medium\n\n  \
             * Reference package for dkms-rs's tests.\n\n \
             -- dkms-rs tests <dkms-rs@example.org>  Thu, 01 Jan 2026 00:00:00 +0000\n"
        ),
    );
    write(
        "copyright",
        format!(
            "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
             Upstream-Name: {name}\n\
             \n\
             Files: *\n\
             Copyright: 2026 dkms-rs tests\n\
             License: GPL-2+\n \
             On Debian systems, the full text of the GNU General Public License version 2\n \
             can be found in the file `/usr/share/common-licenses/GPL-2'.\n"
        ),
    );
    write("source/format", "3.0 (native)\n".to_owned());
    tree
}
