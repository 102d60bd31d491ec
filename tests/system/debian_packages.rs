//! The project's own `debian/`: `dpkg-buildpackage -b -us -uc` on a copy of the tree (what a
//! commit holds: tracked and untracked-but-not-ignored files, as a clean clone has them) builds
//! the engine `dkms-rs` and the packager's `dkms-rs-tools`; lintian finds nothing at
//! `-EI --pedantic --fail-on error,warning`; `dpkg-deb` shows that each package carries what
//! README's "Debian packages" says. One test: it is a release build. cargo's target dir is
//! `$DKMS_RS_DEB_TARGET` (.ci/run: under /var/cache/dkms-rs-tests/; default under cargo's
//! target tmp dir) and the copy is kept in it (`debian-build/dkms-rs`), so that a second run
//! rebuilds only what changed.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{require_tool, run, run_ok};

/// The kernel hooks the engine ships from `hooks/<path>` when the tree has them.
const HOOKS: [&str; 5] = [
    "etc/kernel/postinst.d/dkms",
    "etc/kernel/header_postinst.d/dkms",
    "etc/kernel/preinst.d/dkms",
    "etc/kernel/prerm.d/dkms",
    "usr/lib/kernel/install.d/40-dkms.install",
];

/// Make `to` hold what a commit of the tree would hold: the files `git ls-files` lists, each
/// copied only when its bytes changed (unchanged files keep their mtime, so cargo, whose
/// fingerprints are the source path and mtimes, rebuilds nothing on a second run), and
/// nothing else (`debian/rules clean` runs first anyway).
fn sync_tree(to: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = run_ok(Command::new("git").current_dir(root).args([
        "ls-files",
        "-z",
        "--cached",
        "--others",
        "--exclude-standard",
    ]));
    let mut wanted = std::collections::BTreeSet::new();
    for name in files.split('\0').filter(|n| !n.is_empty()) {
        let from = root.join(name);
        // A tracked file deleted in the work tree is not in the next commit either.
        let Ok(meta) = std::fs::symlink_metadata(&from) else {
            continue;
        };
        let dest = to.join(name);
        wanted.insert(dest.clone());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        if meta.file_type().is_symlink() {
            let _ = std::fs::remove_file(&dest);
            std::os::unix::fs::symlink(std::fs::read_link(&from).unwrap(), &dest).unwrap();
        } else if std::fs::read(&dest).ok() != std::fs::read(&from).ok()
            || std::fs::metadata(&dest).map(|m| m.permissions()).ok() != Some(meta.permissions())
        {
            let _ = std::fs::remove_file(&dest);
            std::fs::copy(&from, &dest).unwrap();
        }
    }
    for entry in walkdir::WalkDir::new(to).contents_first(true) {
        let entry = entry.unwrap();
        let path = entry.path();
        if entry.file_type().is_dir() {
            // Left empty by a removed file: gone, as in a clone.
            let _ = std::fs::remove_dir(path);
        } else if !wanted.contains(path) {
            std::fs::remove_file(path).unwrap();
        }
    }
}

/// The environment cargo needs from PATH (rustup's proxies find their toolchain through
/// these), and nothing else of the caller's.
fn build_command(src: &Path, target: &Path) -> Command {
    let mut cmd = support::command("dpkg-buildpackage");
    for var in ["HOME", "RUSTUP_HOME", "CARGO_HOME", "RUSTUP_TOOLCHAIN"] {
        if let Some(value) = std::env::var_os(var) {
            cmd.env(var, value);
        }
    }
    cmd.env("CARGO_TARGET_DIR", target)
        .current_dir(src)
        .args(["-b", "-us", "-uc"]);
    cmd
}

fn field(control: &str, name: &str) -> Option<String> {
    control
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(&format!("{name}: ")))
        .map(str::to_owned)
}

/// `dpkg-deb -c` paths (`./usr/bin/x`, symlinks as `./a -> b`): each line past its mode,
/// owner, size, date and time.
fn contents(deb: &Path) -> Vec<String> {
    run_ok(Command::new("dpkg-deb").arg("-c").arg(deb))
        .lines()
        .map(|l| l.split_whitespace().skip(5).collect::<Vec<_>>().join(" "))
        .collect()
}

fn assert_has(list: &[String], path: &str, deb: &Path) {
    assert!(
        list.iter().any(|p| p == path),
        "{} lacks {path}:\n{}",
        deb.display(),
        list.join("\n")
    );
}

/// The packages `debian/` builds, once per test binary: the tests that install them (the
/// target chroot) wait for the one build.
pub struct Built {
    pub arch: String,
    pub changes: PathBuf,
    pub engine: PathBuf,
    pub tools: PathBuf,
}

/// Build the packages (first caller; the others wait), or `None` when a tool is missing
/// outside CI (the harness has said which).
pub fn built() -> Option<&'static Built> {
    static BUILT: std::sync::OnceLock<Option<Built>> = std::sync::OnceLock::new();
    BUILT.get_or_init(build).as_ref()
}

fn build() -> Option<Built> {
    for tool in ["dpkg-buildpackage", "dh", "dpkg-deb", "git", "cargo"] {
        if !require_tool(tool) {
            return None;
        }
    }
    let target = std::env::var_os("DKMS_RS_DEB_TARGET").map_or_else(
        || Path::new(env!("CARGO_TARGET_TMPDIR")).join("debian-target"),
        PathBuf::from,
    );
    // The copy lives beside the target dir and is kept, so that a second run is quick; the
    // packages land in its parent, emptied first.
    let build_dir = target.join("debian-build");
    let src = build_dir.join("dkms-rs");
    std::fs::create_dir_all(&src).unwrap();
    for entry in std::fs::read_dir(&build_dir).unwrap() {
        let path = entry.unwrap().path();
        if path != src {
            std::fs::remove_file(&path).unwrap();
        }
    }
    sync_tree(&src);
    run_ok(&mut build_command(&src, &target));
    let version = run_ok(
        Command::new("dpkg-parsechangelog")
            .args(["-S", "Version", "-l"])
            .arg(src.join("debian/changelog")),
    );
    let version = version.trim().to_owned();
    let arch = run_ok(Command::new("dpkg").arg("--print-architecture"));
    let arch = arch.trim().to_owned();
    let changes = build_dir.join(format!("dkms-rs_{version}_{arch}.changes"));
    assert!(changes.is_file(), "no {}", changes.display());
    Some(Built {
        engine: build_dir.join(format!("dkms-rs_{version}_{arch}.deb")),
        tools: build_dir.join(format!("dkms-rs-tools_{version}_{arch}.deb")),
        arch,
        changes,
    })
}

#[test]
fn dpkg_buildpackage_builds_lintian_clean_engine_and_tools() {
    for tool in ["lintian", "dpkg-deb", "dkms"] {
        if !require_tool(tool) {
            return;
        }
    }
    let Some(built) = built() else {
        return;
    };
    let changes = &built.changes;
    let dir = tempfile::tempdir().unwrap();

    let (code, out, err) = run(Command::new("lintian")
        .args(["-EI", "--pedantic", "--fail-on", "error,warning"])
        .arg(changes));
    assert!(
        code == 0,
        "lintian exits {code} on {}:\n{out}{err}",
        changes.display()
    );

    let engine = &built.engine;
    let tools = &built.tools;

    // The engine: dkms under every name scripts call, replacing Debian's package.
    let control = run_ok(Command::new("dpkg-deb").arg("-f").arg(engine));
    let provides = field(&control, "Provides").unwrap_or_default();
    let provided = provides
        .strip_prefix("dkms (= ")
        .and_then(|v| v.strip_suffix(')'))
        .unwrap_or_else(|| panic!("engine Provides: {provides}"));
    // What Debian's -dkms packages depend on (dh_dkms's and packages' own), satisfied.
    for wanted in ["2.1.0.0", "3.0.3-4~", "3.0.11", "3.2.2"] {
        let (ok, _, _) =
            run(Command::new("dpkg").args(["--compare-versions", provided, "ge", wanted]));
        assert!(ok == 0, "Provides dkms (= {provided}) is not >= {wanted}");
    }
    assert_eq!(field(&control, "Conflicts").as_deref(), Some("dkms"));
    assert_eq!(field(&control, "Replaces").as_deref(), Some("dkms"));
    let files = contents(engine);
    for path in [
        "./usr/sbin/dkms -> ../bin/dkms-rs",
        "./usr/bin/dkms-rs",
        "./usr/bin/dkms-postinst",
        "./usr/lib/dkms/common.postinst",
        "./usr/lib/dkms/dkms_autoinstaller",
        "./etc/dkms/framework.conf",
        "./usr/share/man/man8/dkms.8.gz",
        "./usr/share/man/man1/dkms-rs.1.gz",
        "./usr/share/man/man1/dkms-postinst.1.gz",
        "./usr/share/bash-completion/completions/dkms",
        "./usr/share/bash-completion/completions/dkms-rs",
        "./usr/share/zsh/vendor-completions/_dkms",
        "./usr/share/zsh/vendor-completions/_dkms-rs",
        "./var/lib/dkms/",
    ] {
        assert_has(&files, path, engine);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for hook in HOOKS {
        if root.join("hooks").join(hook).is_file() {
            assert_has(&files, &format!("./{hook}"), engine);
        }
    }
    let conffiles = run_ok(
        Command::new("dpkg-deb")
            .arg("-I")
            .arg(engine)
            .arg("conffiles"),
    );
    assert!(
        conffiles.lines().any(|l| l == "/etc/dkms/framework.conf"),
        "conffiles:\n{conffiles}"
    );

    // The wrappers answer bad arguments as Debian's scripts do (Debian's dkms is the oracle).
    // Debian's common.postinst runs under debconf's frontend (it sources confmodule), which
    // sends its stdout to stderr and adds a perl warning: our lines must all be among its
    // lines. 3.0.10's usage line is `$"..."`, which sh prints with its `$`: exit codes only.
    let unpacked = dir.path().join("engine");
    run_ok(
        Command::new("dpkg-deb")
            .arg("-x")
            .arg(engine)
            .arg(&unpacked),
    );
    // Debian's common.postinst reads debconf's database: not while a dpkg test holds it.
    let _dpkg = support::dpkg::hold_lock();
    for (script, args, same_output) in [
        ("common.postinst", &[][..], true),
        ("common.postinst", &["onlyname"][..], true),
        ("dkms_autoinstaller", &["bogus"][..], false),
    ] {
        let ours = run(support::command("sh")
            .arg(unpacked.join("usr/lib/dkms").join(script))
            .args(args));
        let theirs = run(support::command("sh")
            .arg(Path::new("/usr/lib/dkms").join(script))
            .args(args));
        assert_eq!(
            ours.0, theirs.0,
            "{script} {args:?}: {ours:?} vs {theirs:?}"
        );
        if same_output {
            let theirs_lines = format!("{}{}", theirs.1, theirs.2);
            let ours_lines = format!("{}{}", ours.1, ours.2);
            assert!(!ours_lines.is_empty(), "{script} {args:?} says nothing");
            for line in ours_lines.lines() {
                assert!(
                    theirs_lines.lines().any(|l| l == line),
                    "{script} {args:?}: {line:?} is not Debian's:\n{theirs_lines}"
                );
            }
        }
    }

    // The packager's tools: beside Debian's dkms, changing nothing on the machine.
    let control = run_ok(Command::new("dpkg-deb").arg("-f").arg(tools));
    assert_eq!(
        field(&control, "Provides").as_deref(),
        Some("dh-sequence-dkms-rs")
    );
    for name in ["Conflicts", "Replaces", "Breaks"] {
        assert_eq!(field(&control, name), None, "dkms-rs-tools {name}");
    }
    let files = contents(tools);
    for path in [
        "./usr/bin/dkms-mkdeb",
        "./usr/bin/dh_dkms-rs",
        "./usr/share/perl5/Debian/Debhelper/Sequence/dkms_rs.pm",
        "./usr/share/man/man1/dkms-mkdeb.1.gz",
        "./usr/share/man/man1/dh_dkms-rs.1.gz",
        "./usr/share/bash-completion/completions/dkms-mkdeb",
        "./usr/share/zsh/vendor-completions/_dh_dkms-rs",
    ] {
        assert_has(&files, path, tools);
    }
    let info = run_ok(Command::new("dpkg-deb").arg("-I").arg(tools));
    for script in [
        "preinst",
        "postinst",
        "prerm",
        "postrm",
        "conffiles",
        "triggers",
    ] {
        assert!(
            !info
                .lines()
                .any(|l| l.split_whitespace().last() == Some(script)),
            "dkms-rs-tools has a {script}:\n{info}"
        );
    }
    // No path of Debian's dkms (its own file list is the oracle), nothing in /etc or /var.
    let dkms_files = run_ok(Command::new("dpkg").args(["-L", "dkms"]));
    for path in &files {
        let path = path.trim_start_matches('.');
        assert!(
            !path.starts_with("/etc") && !path.starts_with("/var"),
            "dkms-rs-tools ships {path}"
        );
        if !path.ends_with('/') {
            assert!(
                !dkms_files.lines().any(|l| l == path),
                "dkms-rs-tools ships {path}, a file of Debian's dkms"
            );
        }
    }
}
