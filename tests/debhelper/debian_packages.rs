//! dh_dkms-rs on the debian/ directories of seven of Debian's own DKMS source packages
//! (bookworm, fetched with apt's deb-src: `support::debian_src`), with `dh-sequence-dkms`
//! changed to `dh-sequence-dkms-rs` and nothing else: what Debian's dh_dkms leaves in them
//! (its override and hook targets, calls of it by name, a `Depends: dkms` without dkms-rs) is
//! reported with its line, and two are rebuilt with dpkg-buildpackage and compared with
//! Debian's own binary packages (the dkms.conf corpus): lttng-modules, whose
//! `override_dh_dkms` passes `-V`, and iptables-netflow, whose `override_dh_dkms` writes the
//! dkms.conf that `dh_dkms` then installs.

use crate::support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::cargo::cargo_bin;
use support::debian_src::{DebianSource, debian_source};
use support::{debhelper, require_tool, run_ok};

use super::dh_dkms_rs::{bin_dir, lintian_clean, repo_debhelper_dir};

/// The seven source packages of issue 12 with their DKMS binary package. Two are rebuilt
/// (below); the mirror serves no upstream tarball for the other five, and bookworm lacks
/// nothing for them but these Build-Depends, not installed here: dm-writeboost (none; but its
/// debian/*.docs name upstream docs that its binary package's usr/src tree does not hold),
/// jool (gawk, mime-support, libnl-3-dev, libnl-genl-3-dev), openrazer (dh-python), rapiddisk
/// (libdevmapper-dev, libjansson-dev, libmicrohttpd-dev), openafs (bison, flex, comerr-dev,
/// heimdal-multidev, libfuse-dev, libkrb5-dev, libpam0g-dev, libxml2-utils, dblatex,
/// docbook-xsl, doxygen, xsltproc). Their debian/ directories are read all the same.
const SOURCES: &[(&str, &str)] = &[
    ("dm-writeboost", "dm-writeboost-dkms"),
    ("iptables-netflow", "iptables-netflow-dkms"),
    ("jool", "jool-dkms"),
    ("openrazer", "openrazer-driver-dkms"),
    ("rapiddisk", "rapiddisk-dkms"),
    ("lttng-modules", "lttng-modules-dkms"),
    ("openafs", "openafs-modules-dkms"),
];

/// `Depends: dkms` entries without a dkms-rs alternative, as Debian's debian/control files
/// have them (read by hand): (source, package, entry).
const DKMS_ONLY_DEPENDS: &[(&str, &str, &str)] = &[
    (
        "iptables-netflow",
        "iptables-netflow-dkms",
        "dkms (>= 2.8.4-3~)",
    ),
    ("openrazer", "openrazer-driver-dkms", "dkms"),
    ("openafs", "openafs-modules-dkms", "dkms"),
];

/// Recipes calling `dh_dkms` by name outside its own targets (read by hand): (source, target).
/// openafs does not use the dkms sequence: it runs dh_dkms in its dh_install override.
const CALLS_BY_NAME: &[(&str, &str)] = &[("openafs", "override_dh_install-indep")];

/// The tools these tests run besides dh_dkms-rs: debhelper (dh, dh_assistant for the hook
/// targets dh sees, Debian's dh_dkms for the original sequence), make, dpkg.
fn require_tools() -> bool {
    debhelper::require_debhelper()
        && ["dh_assistant", "make", "dpkg-deb", "dpkg-source", "tar"]
            .iter()
            .all(|t| require_tool(t))
}

/// Debian's control file made to ask for dkms-rs's addon instead of Debian's dkms one.
fn with_dkms_rs_addon(control: &str) -> String {
    let converted = if control.contains("dh-sequence-dkms") {
        control.replace("dh-sequence-dkms", "dh-sequence-dkms-rs")
    } else {
        // openafs: Build-Depends-Indep on dh-dkms, whose dh_dkms its rules call.
        control.replacen("dh-dkms (>= 3.0.3-4~)", "dh-sequence-dkms-rs", 1)
    };
    assert_ne!(converted, control, "no dkms addon in debian/control");
    converted
}

/// The targets of `dh_dkms` dh itself sees in `dir` (dh_assistant detect-hook-targets, with
/// Debian's sequence): (target, is empty).
fn dh_dkms_targets_by_dh(dir: &Path) -> Vec<(String, bool)> {
    let out = run_ok(&mut debhelper::debhelper_command(
        "dh_assistant",
        dir,
        &["detect-hook-targets"],
        &[],
    ));
    let json: serde_json::Value = serde_json::from_str(&out).expect("dh_assistant's JSON");
    json["hook-targets"]
        .as_array()
        .expect("hook-targets")
        .iter()
        .filter(|t| t["command"] == "dh_dkms")
        .map(|t| {
            (
                t["target-name"].as_str().unwrap().to_string(),
                t["is-empty"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// The 1-based line of `rules` that starts the rule for `target` (`target:` or `target ...:`).
fn rule_line(rules: &str, target: &str) -> usize {
    rules
        .lines()
        .position(|l| {
            l.strip_prefix(target)
                .is_some_and(|rest| rest.starts_with(':') || rest.starts_with(' '))
        })
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("no rule line for {target}"))
}

/// The 1-based lines of the recipes of `rules` that run `dh_dkms` itself.
fn dh_dkms_call_lines(rules: &str) -> Vec<usize> {
    rules
        .lines()
        .enumerate()
        .filter(|(_, l)| {
            l.starts_with('\t')
                && l.split_whitespace()
                    .any(|w| w == "dh_dkms" || w.ends_with(";dh_dkms"))
        })
        .map(|(i, _)| i + 1)
        .collect()
}

/// The line of `control` where `package`'s Depends has `entry`.
fn depends_line(control: &str, package: &str, entry: &str) -> usize {
    let start = control
        .lines()
        .position(|l| l == format!("Package: {package}"))
        .unwrap_or_else(|| panic!("no Package: {package}"));
    control
        .lines()
        .enumerate()
        .skip(start)
        .find(|(_, l)| {
            l.trim_start_matches("Depends:")
                .split(',')
                .any(|e| e.trim() == entry)
        })
        .map(|(i, _)| i + 1)
        .unwrap_or_else(|| panic!("{package}: no Depends entry {entry}"))
}

/// PATH with the built dh_dkms-rs first.
fn path_with_dh_dkms_rs(work: &Path) -> std::ffi::OsString {
    std::env::join_paths(std::iter::once(bin_dir(work)).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap()
}

#[test]
fn what_debian_dh_dkms_leaves_in_seven_debian_dirs_is_reported_with_its_line() {
    if !require_tools() {
        return;
    }
    for (source, package) in SOURCES {
        let Some(fetched) = debian_source(source) else {
            return;
        };
        let work = tempfile::tempdir().unwrap();
        let original = work.path().join("original");
        fetched.unpack_debian(&original);
        let by_dh = dh_dkms_targets_by_dh(&original);

        let tree = work.path().join("tree");
        fetched.unpack_debian(&tree);
        let control = fs::read_to_string(tree.join("debian/control")).unwrap();
        fs::write(tree.join("debian/control"), with_dkms_rs_addon(&control)).unwrap();
        let rules = fs::read_to_string(tree.join("debian/rules")).unwrap();

        let out = debhelper::debhelper_command(cargo_bin("dh_dkms-rs"), &tree, &["--no-act"], &[])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let context = format!("{source}: stdout:\n{stdout}\nstderr:\n{stderr}");

        // Each target of dh_dkms that dh sees, with its line; none that dh does not see.
        for (target, empty) in &by_dh {
            let line = rule_line(&rules, target);
            let warning = format!(
                "dh_dkms-rs: warning: debian/rules:{line}: {target} is a target of Debian's dh_dkms: dh_dkms-rs runs it"
            );
            assert!(stderr.contains(&warning), "no {warning:?}\n{context}");
            // --no-act: said, not run (an empty target runs nothing, as with dh).
            let said = stdout.contains(&format!("   debian/rules {target}\n"));
            assert_eq!(said, !empty, "{target}\n{context}");
        }
        assert_eq!(
            stderr.matches("is a target of Debian's dh_dkms").count(),
            by_dh.len(),
            "{context}"
        );

        let calls: Vec<&str> = CALLS_BY_NAME
            .iter()
            .filter(|(s, _)| s == source)
            .map(|(_, t)| *t)
            .collect();
        let lines = dh_dkms_call_lines(&rules);
        if calls.is_empty() {
            // Every call of dh_dkms is inside one of its own targets.
            assert!(!stderr.contains(" calls dh_dkms"), "{context}");
            assert!(lines.len() <= by_dh.len(), "{lines:?}\n{context}");
        } else {
            assert_eq!(lines.len(), calls.len(), "{lines:?}\n{context}");
            for (line, target) in lines.iter().zip(&calls) {
                let warning = format!(
                    "dh_dkms-rs: warning: debian/rules:{line}: {target} calls dh_dkms, which is Debian's, not dh_dkms-rs"
                );
                assert!(stderr.contains(&warning), "no {warning:?}\n{context}");
            }
        }

        let depends: Vec<_> = DKMS_ONLY_DEPENDS
            .iter()
            .filter(|(s, ..)| s == source)
            .collect();
        for (_, pkg, entry) in &depends {
            let line = depends_line(&control, pkg, entry);
            let warning = format!(
                "dh_dkms-rs: warning: debian/control:{line}: {pkg}: Depends: {entry} has no dkms-rs alternative"
            );
            assert!(stderr.contains(&warning), "no {warning:?}\n{context}");
        }
        assert_eq!(
            stderr.matches("has no dkms-rs alternative").count(),
            depends.len(),
            "{context}"
        );
        // Nothing was written: --no-act.
        assert!(
            !tree.join(format!("debian/{package}")).exists(),
            "{context}"
        );
    }
}

/// Debian's own binary package `package` from the dkms.conf corpus: (the .deb, its extracted
/// root).
fn debian_binary(package: &str) -> Option<(PathBuf, PathBuf)> {
    let corpus = support::dkms_conf_corpus()?;
    let conf = corpus
        .iter()
        .find(|(p, _)| p == package)
        .map(|(_, c)| c.clone())
        .unwrap_or_else(|| panic!("the corpus has no {package}"));
    // <corpus>/<package>/usr/src/<m>-<v>/dkms.conf
    let root = conf.ancestors().nth(4).unwrap().to_path_buf();
    let debs = root.parent().unwrap().join("debs");
    let deb = fs::read_dir(&debs)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{package}_"))
        })
        .unwrap_or_else(|| panic!("no {package} .deb in {}", debs.display()));
    Some((deb, root))
}

/// The source tree of `fetched` in `dest`, changed only to ask for dkms-rs's addon. When the
/// mirror has no upstream tarball, the upstream tree is the one Debian's binary package ships
/// under usr/src (already patched, without the dkms.conf dh_dkms installed), with the Debian
/// tarball's debian/ and no debian/patches (applied already) as a native source.
fn source_tree(fetched: &DebianSource, binary_root: &Path, dest: &Path) {
    if fetched.complete {
        fetched.unpack(dest);
    } else {
        let src = fs::read_dir(binary_root.join("usr/src"))
            .unwrap()
            .flatten()
            .next()
            .unwrap()
            .path();
        fs::create_dir_all(dest).unwrap();
        run_ok(Command::new("cp").arg("-a").arg(src.join(".")).arg(dest));
        fs::remove_file(dest.join("dkms.conf")).unwrap();
        fetched.unpack_debian(dest);
        let _ = fs::remove_dir_all(dest.join("debian/patches"));
        fs::write(dest.join("debian/source/format"), "3.0 (native)\n").unwrap();
    }
    let control = fs::read_to_string(dest.join("debian/control")).unwrap();
    fs::write(dest.join("debian/control"), with_dkms_rs_addon(&control)).unwrap();
}

/// dpkg-buildpackage -b in `tree` with dkms-rs's addon and dh_dkms-rs (-d: the addon is not
/// installed as a package): (exit code, stdout and stderr).
fn build(tree: &Path, work: &Path) -> (i32, String) {
    let out = support::command("dpkg-buildpackage")
        .args(["-b", "-us", "-uc", "-d"])
        .current_dir(tree)
        .env("PATH", path_with_dh_dkms_rs(work))
        .env("PERL5LIB", repo_debhelper_dir())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The one `<package>_*.deb` in `dir`.
fn built(dir: &Path, package: &str) -> Option<PathBuf> {
    fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.starts_with(&format!("{package}_")) && n.ends_with(".deb")
        })
}

fn names(deb: &Path) -> Vec<String> {
    let mut names: Vec<String> = run_ok(Command::new("dpkg-deb").arg("--contents").arg(deb))
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5).map(str::to_string))
        .collect();
    names.sort();
    names
}

/// Our package has Debian's files, but `except` (each with its reason in the caller); the
/// message lists the differences only.
fn assert_same_files(ours: &Path, debian: &Path, except: &[&str]) {
    let (ours, theirs) = (names(ours), names(debian));
    let only_ours: Vec<&String> = ours.iter().filter(|n| !theirs.contains(n)).collect();
    let only_theirs: Vec<&String> = theirs
        .iter()
        .filter(|n| !ours.contains(n) && !except.contains(&n.as_str()))
        .collect();
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "only in ours: {only_ours:?}\nonly in Debian's: {only_theirs:?}"
    );
    for e in except {
        assert!(
            theirs.iter().any(|n| n == e),
            "{e} is not in Debian's package"
        );
    }
}

fn field(deb: &Path, name: &str) -> String {
    run_ok(Command::new("dpkg-deb").arg("--field").arg(deb).arg(name))
        .trim()
        .to_string()
}

/// Our postinst block: dkms-postinst configure for `name`/`version`.
fn assert_dkms_rs_postinst(deb: &Path, name: &str, version: &str) {
    let postinst = run_ok(
        Command::new("dpkg-deb")
            .arg("--info")
            .arg(deb)
            .arg("postinst"),
    );
    for want in [
        format!(
            "# Automatically added by dh_dkms-rs/{}",
            env!("CARGO_PKG_VERSION")
        ),
        format!("DKMS_NAME={name}\n"),
        format!("DKMS_VERSION={version}\n"),
        "dkms-postinst configure \"$DKMS_NAME\" \"$DKMS_VERSION\"".to_string(),
    ] {
        assert!(
            postinst.contains(&want),
            "no {want:?} in postinst:\n{postinst}"
        );
    }
    let prerm = run_ok(Command::new("dpkg-deb").arg("--info").arg(deb).arg("prerm"));
    assert!(
        prerm.contains("# Automatically added by dh_dkms-rs/"),
        "prerm:\n{prerm}"
    );
}

/// The file of the package's data at `path` (`usr/src/...`).
fn data_file(deb: &Path, path: &str) -> Vec<u8> {
    let x = tempfile::tempdir().unwrap();
    run_ok(Command::new("dpkg-deb").arg("-x").arg(deb).arg(x.path()));
    fs::read(x.path().join(path)).unwrap_or_else(|e| panic!("{path} in {}: {e}", deb.display()))
}

fn require_build_tools() -> bool {
    require_tools() && require_tool("lintian") && require_tool("dpkg-buildpackage")
}

#[test]
fn lttng_modules_override_with_v_builds_with_dkms_rs_as_debian_does() {
    if !require_build_tools() {
        return;
    }
    let (Some(fetched), Some((debian_deb, debian_root))) = (
        debian_source("lttng-modules"),
        debian_binary("lttng-modules-dkms"),
    ) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("lttng-modules");
    source_tree(&fetched, &debian_root, &tree);
    let (code, log) = build(&tree, work.path());
    assert_eq!(code, 0, "dpkg-buildpackage failed:\n{log}");
    // The override ran, with dh_dkms being dh_dkms-rs and its -V version.
    assert!(log.contains("   debian/rules override_dh_dkms\n"), "{log}");
    let deb = built(work.path(), "lttng-modules-dkms").expect("no lttng-modules-dkms .deb");

    // What Debian's dh_dkms -V made of the same dkms.conf, and the same files.
    let conf = "usr/src/lttng-modules-2.13.9/dkms.conf";
    assert_eq!(
        data_file(&deb, conf),
        fs::read(debian_root.join(conf)).unwrap(),
        "dkms.conf differs from Debian's"
    );
    // Debian's upstream ChangeLog (installed by dh_installchangelogs) is in the upstream
    // tarball the mirror lacks, not in the usr/src tree the source is rebuilt from.
    let except: &[&str] = if fetched.complete {
        &[]
    } else {
        &["./usr/share/doc/lttng-modules-dkms/changelog.gz"]
    };
    assert_same_files(&deb, &debian_deb, except);
    assert!(
        field(&deb, "Depends").contains("dkms-rs | dkms (>= 2.1.0.0)"),
        "{}",
        field(&deb, "Depends")
    );
    assert_dkms_rs_postinst(&deb, "lttng-modules", "2.13.9");
    lintian_clean(&deb);
}

#[test]
fn iptables_netflow_with_only_the_sequence_changed_is_complete_or_fails_loudly() {
    if !require_build_tools() || !require_tool("dh-exec") || !require_tool("pkg-config") {
        return;
    }
    let (Some(fetched), Some((debian_deb, debian_root))) = (
        debian_source("iptables-netflow"),
        debian_binary("iptables-netflow-dkms"),
    ) else {
        return;
    };
    if !support::command("pkg-config")
        .args(["--exists", "xtables"])
        .status()
        .is_ok_and(|s| s.success())
    {
        support::missing("libxtables-dev (iptables-netflow's Build-Depends)");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("iptables-netflow");
    source_tree(&fetched, &debian_root, &tree);
    let control = fs::read_to_string(tree.join("debian/control")).unwrap();
    let rules = fs::read_to_string(tree.join("debian/rules")).unwrap();
    let (code, log) = build(&tree, work.path());
    assert_eq!(code, 0, "dpkg-buildpackage failed:\n{log}");
    // Its override (which writes debian/dkms, then runs dh_dkms) ran, said with its line; its
    // Depends: dkms swallows the alternative, said with its line.
    assert!(log.contains("   debian/rules override_dh_dkms\n"), "{log}");
    let warning = format!(
        "dh_dkms-rs: warning: debian/rules:{}: override_dh_dkms is a target of Debian's dh_dkms",
        rule_line(&rules, "override_dh_dkms")
    );
    assert!(log.contains(&warning), "no {warning:?}:\n{log}");
    let warning = format!(
        "dh_dkms-rs: warning: debian/control:{}: iptables-netflow-dkms: Depends: dkms (>= 2.8.4-3~) has no dkms-rs alternative",
        depends_line(&control, "iptables-netflow-dkms", "dkms (>= 2.8.4-3~)")
    );
    assert!(log.contains(&warning), "no {warning:?}:\n{log}");

    let deb = built(work.path(), "iptables-netflow-dkms").expect("no iptables-netflow-dkms .deb");
    let conf = "usr/src/ipt-netflow-2.6/dkms.conf";
    assert_eq!(
        data_file(&deb, conf),
        fs::read(debian_root.join(conf)).unwrap(),
        "dkms.conf differs from Debian's"
    );
    assert_same_files(&deb, &debian_deb, &[]);
    // dpkg-gencontrol drops 'dkms-rs | dkms (>= 2.1.0.0)', implied by the explicit dkms: the
    // dependency is Debian's own, as the warning says.
    assert_eq!(field(&deb, "Depends"), field(&debian_deb, "Depends"));
    assert_dkms_rs_postinst(&deb, "ipt-netflow", "2.6");
    lintian_clean(&deb);

    // Without its override nothing writes debian/dkms: the build stops at dh_dkms-rs with one
    // line naming the package and dkms's code for a missing dkms.conf, and makes no package.
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("iptables-netflow");
    source_tree(&fetched, &debian_root, &tree);
    let start = rule_line(&rules, "override_dh_dkms");
    let without: String = rules
        .lines()
        .enumerate()
        .filter(|(i, l)| !(*i + 1 == start || (*i + 1 > start && l.starts_with('\t'))))
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    assert!(!without.contains("dh_dkms"), "{without}");
    fs::write(tree.join("debian/rules"), without).unwrap();
    let (code, log) = build(&tree, work.path());
    assert_ne!(code, 0, "built without a dkms.conf:\n{log}");
    let error = "dh_dkms-rs: error: iptables-netflow-dkms: no dkms.conf: no debian/iptables-netflow-dkms.dkms or debian/dkms, no FILE argument, none under debian/iptables-netflow-dkms/usr/src/\n";
    assert!(log.contains(error), "no {error:?}:\n{log}");
    // dh exits with dh_dkms-rs's code, and make says it.
    assert!(log.contains(": binary] Error 4\n"), "{log}");
    assert_eq!(built(work.path(), "iptables-netflow-dkms"), None, "{log}");
}
