//! dkms-mkdeb on real module sources: the /usr/src trees of seven of Debian's own -dkms
//! packages (fetched by the dkms.conf corpus), packaged with the default options, judged by
//! lintian. Debian's packages of the same sources are the oracle for names (tp_smapi's
//! package, the changelog of a version with a `-`).

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::cargo::cargo_bin;
use support::{require_tool, run_ok};

/// Debian's packages whose module source is packaged here (issue 12's seven).
const DEBIAN_PACKAGES: &[&str] = &[
    "acpi-call-dkms",
    "bbswitch-dkms",
    "tp-smapi-dkms",
    "v4l2loopback-dkms",
    "xtrx-dkms",
    "lttng-modules-dkms",
    "openafs-modules-dkms",
];

/// The tags lintian gives these packages because of upstream's own files under
/// /usr/src/<module>-<version>/, which a -dkms package must ship as they are (dkms builds
/// them): (package made by dkms-mkdeb, tag, why). Only hints whose context names a file under
/// `usr/src/` are matched; any other tag fails the test, and so does an entry never seen.
const UPSTREAM_TAGS: &[(&str, &str, &str)] = &[
    (
        "openafs-dkms",
        "national-encoding",
        "W: upstream's src/util/uuid.c and include/afs/afs_lhash.h are ISO-8859-1",
    ),
    (
        "openafs-dkms",
        "bash-term-in-posix-shell",
        "I: upstream's autotools build-tools/install-sh and config.guess use $RANDOM",
    ),
    (
        "openafs-dkms",
        "repeated-path-segment",
        "P: upstream's tree has a src/ directory, and dkms wants it under /usr/src",
    ),
    (
        "lttng-modules-dkms",
        "repeated-path-segment",
        "P: upstream's tree has a src/ directory, and dkms wants it under /usr/src",
    ),
    (
        "lttng-modules-dkms",
        "package-contains-documentation-outside-usr-share-doc",
        "I: upstream's READMEs and syscall tables inside the source tree dkms builds",
    ),
];

/// Each of Debian's packages with its module source dir (`usr/src/<m>-<v>/` of the .deb).
fn debian_sources() -> Option<Vec<(&'static str, PathBuf)>> {
    let corpus = support::dkms_conf_corpus()?;
    let found: Vec<(&'static str, PathBuf)> = DEBIAN_PACKAGES
        .iter()
        .map(|p| {
            let conf = corpus
                .iter()
                .find(|(pkg, _)| pkg == p)
                .map(|(_, conf)| conf.parent().expect("conf dir").to_path_buf())
                .unwrap_or_else(|| panic!("the dkms.conf corpus has no {p}"));
            (*p, conf)
        })
        .collect();
    Some(found)
}

/// The extracted Debian package `p` of the corpus (the dir holding `usr/src`).
fn debian_root(source: &Path) -> &Path {
    source
        .ancestors()
        .nth(3)
        .expect("<corpus>/<package>/usr/src/<m>-<v>")
}

/// dkms-mkdeb with the default options (the maintainer from the environment, as dch's), the
/// package written into `out`; returns its path.
fn mkdeb_default(source: &Path, out: &Path, extra: &[&str]) -> PathBuf {
    let stdout = run_ok(
        support::command(cargo_bin("dkms-mkdeb"))
            .env("DEBFULLNAME", "Jane Doe")
            .env("DEBEMAIL", "jane@example.org")
            .arg("-o")
            .arg(out)
            .args(extra)
            .arg(source),
    );
    PathBuf::from(stdout.trim())
}

fn field(deb: &Path, name: &str) -> String {
    run_ok(Command::new("dpkg-deb").arg("--field").arg(deb).arg(name))
        .trim()
        .to_string()
}

/// The files under usr/share/doc/<package>/ of a package's data, as dpkg-deb lists them.
fn doc_names(deb: &Path, package: &str) -> Vec<String> {
    let prefix = format!("./usr/share/doc/{package}/");
    run_ok(Command::new("dpkg-deb").arg("--contents").arg(deb))
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter_map(|n| n.strip_prefix(&prefix).map(str::to_string))
        .filter(|n| !n.is_empty())
        .collect()
}

/// lintian's hints on `debs` (one run), as (level, package, tag, context) each; asserts its
/// `--fail-on error,warning` verdict is a failure exactly when it printed an E: or W: hint.
fn lintian(debs: &[PathBuf]) -> Vec<(String, String, String, String)> {
    let out = Command::new("lintian")
        .args(["-EI", "--pedantic", "--fail-on", "error,warning"])
        .args(debs)
        .output()
        .expect("run lintian");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let hints: Vec<(String, String, String, String)> = text
        .lines()
        .filter_map(|l| {
            // "W: package: tag context..."
            let (level, rest) = l.split_once(": ")?;
            let (package, rest) = rest.split_once(": ")?;
            let (tag, context) = rest.split_once(' ').unwrap_or((rest, ""));
            Some((
                level.to_string(),
                package.to_string(),
                tag.to_string(),
                context.to_string(),
            ))
        })
        .collect();
    // lintian exits 2 when a --fail-on tag was given (0 otherwise, 1 when it broke).
    let failing = hints.iter().any(|(level, ..)| level == "E" || level == "W");
    assert_eq!(
        out.status.code(),
        Some(if failing { 2 } else { 0 }),
        "lintian's verdict on {debs:?}:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    hints
}

#[test]
fn seven_debian_sources_are_lintian_clean_with_the_defaults() {
    if !require_tool("lintian") || !require_tool("dpkg-deb") {
        return;
    }
    let Some(sources) = debian_sources() else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let mut debs = Vec::new();
    for (debian_package, source) in &sources {
        let deb = mkdeb_default(source, out.path(), &[]);
        let package = field(&deb, "Package");
        // Debian's name where the module's has a `_` (tp_smapi): lowercase, `_` as `-`.
        if source.file_name().unwrap().to_string_lossy().contains('_') {
            assert_eq!(&package, debian_package, "{}", source.display());
        }
        // The same version as Debian's package of it: the changelog Debian ships under the
        // name Policy 12.7 gives that version (xtrx's has a `-`: changelog.Debian.gz).
        let debian_version = run_ok(
            Command::new("dpkg-deb")
                .arg("--field")
                .arg(
                    std::fs::read_dir(debian_root(source).parent().unwrap().join("debs"))
                        .unwrap()
                        .flatten()
                        .map(|e| e.path())
                        .find(|p| {
                            p.file_name()
                                .unwrap()
                                .to_string_lossy()
                                .starts_with(&format!("{debian_package}_"))
                        })
                        .expect("Debian's .deb"),
                )
                .arg("Version"),
        );
        if field(&deb, "Version") == debian_version.trim() {
            let debian_doc = debian_root(source)
                .join("usr/share/doc")
                .join(debian_package);
            let ours = doc_names(&deb, &package);
            let debian_changelogs: Vec<String> = std::fs::read_dir(&debian_doc)
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("changelog.Debian"))
                .collect();
            assert!(!debian_changelogs.is_empty(), "{}", debian_doc.display());
            for name in &debian_changelogs {
                assert!(ours.contains(name), "{package}: {ours:?}, Debian's: {name}");
            }
        }
        debs.push(deb);
    }
    only_upstream_tags(&lintian(&debs));
}

/// Every lintian hint is one of [`UPSTREAM_TAGS`] on a file under usr/src/, and each of those
/// is still given.
fn only_upstream_tags(hints: &[(String, String, String, String)]) {
    let mut unexplained = Vec::new();
    for (_, package, tag, context) in hints {
        let upstream = context.contains("[usr/src/")
            && UPSTREAM_TAGS
                .iter()
                .any(|(p, t, _)| p == package && t == tag);
        if !upstream {
            unexplained.push(format!("{package}: {tag} {context}"));
        }
    }
    assert!(
        unexplained.is_empty(),
        "lintian tags not caused by upstream files:\n{}",
        unexplained.join("\n")
    );
    for (p, t, why) in UPSTREAM_TAGS {
        assert!(
            hints.iter().any(|(_, hp, ht, _)| hp == p && ht == t),
            "{p}: {t} ({why}) is listed as expected but lintian no longer says it: drop it"
        );
    }
}

/// mkdsc on the seven: each source package unpacks (dpkg-source -x, checksums verified) and
/// builds (dpkg-buildpackage -b, debhelper and our addon) into a package with the file list
/// and Depends of dkms-mkdeb's, lintian clean but for the same upstream tags; xtrx's version
/// has a `-`, so its source package is 3.0 (quilt).
#[test]
fn seven_debian_sources_make_source_packages_that_build_mkdebs_package() {
    if !crate::mkdsc::require_tools() {
        return;
    }
    let Some(sources) = debian_sources() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let (mut debs, mut dscs) = (Vec::new(), Vec::new());
    for (debian_package, source) in &sources {
        let dir = work.path().join(debian_package);
        let dsc = crate::mkdsc::mkdsc_with_env(
            source,
            &dir.join("out"),
            &[],
            &[
                ("DEBFULLNAME", "Jane Doe"),
                ("DEBEMAIL", "jane@example.org"),
            ],
        );
        let format = std::fs::read_to_string(&dsc).unwrap();
        let quilt = *debian_package == "xtrx-dkms";
        assert!(
            format.contains(if quilt {
                "Format: 3.0 (quilt)\n"
            } else {
                "Format: 3.0 (native)\n"
            }),
            "{}:\n{format}",
            dsc.display()
        );
        let tree = dir.join("build/unpacked");
        std::fs::create_dir_all(tree.parent().unwrap()).unwrap();
        crate::mkdsc::unpack(&dsc, &tree);
        let built = crate::mkdsc::build_binary(&tree);
        std::fs::create_dir_all(dir.join("mkdeb")).unwrap();
        let reference = mkdeb_default(source, &dir.join("mkdeb"), &[]);
        assert_eq!(
            crate::mkdsc::contents(&built),
            crate::mkdsc::contents(&reference),
            "{debian_package}: dpkg-buildpackage (left) vs dkms-mkdeb (right)"
        );
        assert_eq!(field(&built, "Depends"), field(&reference, "Depends"));
        debs.push(built);
        dscs.push(dsc);
    }
    only_upstream_tags(&lintian(&debs));
    // The source packages: only xtrx's version, upstream's, is taken for a non-maintainer
    // upload's (its PACKAGE_VERSION ends in `-3.2`, which reads as an NMU revision).
    let hints = lintian(&dscs);
    let unexplained: Vec<_> = hints
        .iter()
        .filter(|(level, package, tag, _)| {
            (level == "E" || level == "W")
                && !(package == "xtrx-dkms source"
                    && tag == "maintainer-upload-has-incorrect-version-number")
        })
        .collect();
    assert!(unexplained.is_empty(), "{unexplained:?}");
}

/// `--revision 1` (a first Debian revision: lintian's `initial-upload-closes-no-bugs` case),
/// on a version with a `-` of its own, and with `--closes` (the ITP of a package for Debian).
#[test]
fn revision_builds_are_lintian_clean() {
    if !require_tool("lintian") || !require_tool("dpkg-deb") || !require_tool("dpkg-parsechangelog")
    {
        return;
    }
    let Some(sources) = debian_sources() else {
        return;
    };
    let source = |p: &str| sources.iter().find(|(d, _)| *d == p).unwrap().1.clone();
    let out = tempfile::tempdir().unwrap();
    let acpi = mkdeb_default(&source("acpi-call-dkms"), out.path(), &["--revision", "1"]);
    let xtrx = mkdeb_default(
        &source("xtrx-dkms"),
        out.path(),
        &[
            "--revision",
            "1",
            "--closes",
            "1034567",
            "--closes",
            "1045678",
        ],
    );
    assert_eq!(field(&acpi, "Version"), "1.2.2-1");
    assert_eq!(field(&xtrx, "Version"), "0.0.1+git20190320.5ae3a3e-3.2-1");
    let hints = lintian(&[acpi.clone(), xtrx.clone()]);
    assert!(hints.is_empty(), "{hints:?}");

    // What dpkg reads in each changelog: the bugs closed, and none without --closes.
    let closes = |deb: &Path, package: &str| {
        let dir = tempfile::tempdir().unwrap();
        run_ok(Command::new("dpkg-deb").arg("-x").arg(deb).arg(dir.path()));
        let doc = dir.path().join("usr/share/doc").join(package);
        run_ok(
            Command::new("sh")
                .current_dir(&doc)
                .arg("-c")
                .arg("zcat changelog.Debian.gz > cl && dpkg-parsechangelog -l cl -S Closes"),
        )
        .trim()
        .to_string()
    };
    assert_eq!(closes(&xtrx, "xtrx-dkms"), "1034567 1045678");
    assert_eq!(closes(&acpi, "acpi-call-dkms"), "");
    // Without --closes, the override that says why (lintian honoured it: no tag above).
    let listed = |deb: &Path| run_ok(Command::new("dpkg-deb").arg("--contents").arg(deb));
    assert!(listed(&acpi).contains("./usr/share/lintian/overrides/acpi-call-dkms"));
    assert!(!listed(&xtrx).contains("lintian/overrides"));
}

/// What the packager of each of the seven says, as a `dkms-mkdeb.control` (`{root}` is
/// Debian's extracted package: its docs, udev rules and metainfo are the files to ship, as
/// the packager has them) and options: (Debian's package, control file, options).
const DECLARED: &[(&str, &str, &[&str])] = &[
    (
        "acpi-call-dkms",
        "Depends: dkms (>= 3.0.3-4~)\n\
         Provides: acpi-call\n\
         Homepage: https://github.com/nix-community/acpi_call\n\
         Install: {root}/usr/share/doc/acpi-call-dkms/README.md usr/share/doc/acpi-call-dkms\n \
         {root}/usr/share/doc/acpi-call-dkms/examples {root}/usr/share/doc/acpi-call-dkms/support usr/share/doc/acpi-call-dkms\n",
        &["--revision", "2.1"],
    ),
    (
        "bbswitch-dkms",
        "Architecture: amd64\n\
         Suggests: bumblebee\n\
         Multi-Arch: foreign\n\
         Homepage: https://github.com/Bumblebee-Project/bbswitch\n\
         Install:\n \
         {root}/usr/share/doc/bbswitch-dkms/README.md.gz {root}/usr/share/doc/bbswitch-dkms/changelog.gz usr/share/doc/bbswitch-dkms\n \
         {root}/usr/share/lintian/overrides/bbswitch-dkms usr/share/lintian/overrides/\n",
        &["--revision", "15"],
    ),
    (
        "tp-smapi-dkms",
        "Homepage: https://github.com/linux-thinkpad/tp_smapi\n\
         Install: {root}/usr/share/doc/tp-smapi-dkms/README.Debian {root}/usr/share/doc/tp-smapi-dkms/README.gz {root}/usr/share/doc/tp-smapi-dkms/changelog.gz /usr/share/doc/tp-smapi-dkms\n \
         {root}/usr/share/doc/tp-smapi-dkms/examples/sysfs.conf /usr/share/doc/tp-smapi-dkms/examples\n",
        &["--revision", "3"],
    ),
    (
        "v4l2loopback-dkms",
        "Suggests: v4l2loopback-utils\n\
         Homepage: https://github.com/umlaeute/v4l2loopback\n\
         Install: {root}/usr/share/doc/v4l2loopback-dkms/AUTHORS {root}/usr/share/doc/v4l2loopback-dkms/NEWS.gz {root}/usr/share/doc/v4l2loopback-dkms/README.md.gz {root}/usr/share/doc/v4l2loopback-dkms/TODO {root}/usr/share/doc/v4l2loopback-dkms/changelog.gz usr/share/doc/v4l2loopback-dkms\n",
        &["--revision", "2"],
    ),
    (
        "xtrx-dkms",
        "Homepage: https://github.com/xtrx-sdr/xtrx_linux_pcie_drv\n\
         Install: {root}/lib/udev/rules.d/50-xtrx-dkms.rules => /lib/udev/rules.d/50-xtrx-dkms.rules\n \
         {root}/usr/share/metainfo/co.fairwaves.xtrx.mpcie.metainfo.xml usr/share/metainfo\n",
        &[],
    ),
    (
        "lttng-modules-dkms",
        "Recommends: lttng-tools\n\
         Homepage: https://lttng.org\n\
         Install: {root}/usr/share/doc/lttng-modules-dkms/changelog.gz usr/share/doc/lttng-modules-dkms\n",
        &["--revision", "1+deb12u1"],
    ),
    (
        "openafs-modules-dkms",
        "Depends: dkms (>= 3.0.3-4~), perl:any, libc6-dev\n\
         Recommends: openafs-client (>= 1.8.9-1+deb12u1)\n\
         Homepage: http://www.openafs.org/\n\
         Install: {root}/usr/share/doc/openafs-modules-dkms/README {root}/usr/share/doc/openafs-modules-dkms/changelog.gz usr/share/doc/openafs-modules-dkms\n",
        &[
            "--revision",
            "1+deb12u1",
            "--package-name",
            "openafs-modules-dkms",
        ],
    ),
];

/// The control fields compared with Debian's packages.
const COMPARED_FIELDS: &[&str] = &[
    "Package",
    "Version",
    "Architecture",
    "Depends",
    "Provides",
    "Recommends",
    "Suggests",
    "Enhances",
    "Conflicts",
    "Breaks",
    "Replaces",
    "Multi-Arch",
    "Homepage",
    "Section",
    "Priority",
];

/// Differences from Debian's packages that remain with the fields and files declared:
/// (Debian's package, field or path, why). None today; an entry never seen fails the test.
const REMAINING_DIFFERENCES: &[(&str, &str, &str)] = &[];

/// The tags lintian gives the seven made with the declared fields, besides [`UPSTREAM_TAGS`]:
/// (package, tag, why). Any other fails the test, and so does an entry never seen.
const DECLARED_TAGS: &[(&str, &str, &str)] = &[(
    "bbswitch-dkms",
    "unused-override",
    "I: Debian's own override file, shipped as it is, names package-contains-no-arch-dependent-files, which this lintian no longer gives: Debian's package gets the same hint",
)];

/// Debian's .deb of `debian_package` in the corpus.
fn debian_deb(source: &Path, debian_package: &str) -> PathBuf {
    std::fs::read_dir(debian_root(source).parent().unwrap().join("debs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{debian_package}_"))
        })
        .expect("Debian's .deb")
}

/// A field as compared: Depends as a set of entries, dkms-mkdeb's `dkms-rs | dkms (...)`
/// read as Debian's `dkms (...)`; the others as dpkg-deb prints them.
fn compared(name: &str, value: &str) -> String {
    if name != "Depends" {
        return value.to_string();
    }
    let mut entries: Vec<String> = value
        .split(',')
        .map(|e| e.trim().trim_start_matches("dkms-rs | ").to_string())
        .filter(|e| !e.is_empty())
        .collect();
    entries.sort();
    entries.join(", ")
}

/// The paths of a package's data, as dpkg-deb lists them.
fn contents(deb: &Path) -> Vec<String> {
    run_ok(Command::new("dpkg-deb").arg("--contents").arg(deb))
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5).map(str::to_string))
        .collect()
}

/// With what Debian's packagers say (the fields of the binary paragraph, the files outside
/// /usr/src) declared in a dkms-mkdeb.control, each of the seven has Debian's control
/// fields (dpkg-deb -f) and Debian's file list (dpkg-deb -c), and lintian stays clean.
#[test]
fn seven_debian_sources_with_declared_fields_match_debians_packages() {
    if !require_tool("lintian") || !require_tool("dpkg-deb") {
        return;
    }
    let Some(sources) = debian_sources() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let mut debs = Vec::new();
    let mut differences: Vec<(String, String, String)> = Vec::new();
    for (debian_package, source) in &sources {
        let (_, control, options) = DECLARED
            .iter()
            .find(|(p, ..)| p == debian_package)
            .unwrap_or_else(|| panic!("DECLARED has no {debian_package}"));
        let dir = work.path().join(debian_package);
        std::fs::create_dir_all(&dir).unwrap();
        let control_file = dir.join("dkms-mkdeb.control");
        let root = debian_root(source).to_str().unwrap().to_string();
        std::fs::write(&control_file, control.replace("{root}", &root)).unwrap();
        let mut args: Vec<&str> = vec!["--control", control_file.to_str().unwrap()];
        args.extend_from_slice(options);
        let deb = mkdeb_default(source, &dir, &args);
        let theirs = debian_deb(source, debian_package);
        for name in COMPARED_FIELDS {
            let (a, b) = (field(&deb, name), field(&theirs, name));
            let (a, b) = (compared(name, &a), compared(name, &b));
            if a != b {
                differences.push((
                    debian_package.to_string(),
                    name.to_string(),
                    format!("ours {a:?}, Debian's {b:?}"),
                ));
            }
        }
        let (ours, debians) = (contents(&deb), contents(&theirs));
        for path in debians.iter().filter(|p| !ours.contains(p)) {
            differences.push((
                debian_package.to_string(),
                path.clone(),
                "only in Debian's".into(),
            ));
        }
        for path in ours.iter().filter(|p| !debians.contains(p)) {
            differences.push((
                debian_package.to_string(),
                path.clone(),
                "only in ours".into(),
            ));
        }
        debs.push(deb);
    }
    let unexplained: Vec<String> = differences
        .iter()
        .filter(|(p, what, _)| {
            !REMAINING_DIFFERENCES
                .iter()
                .any(|(rp, rw, _)| rp == p && rw == what)
        })
        .map(|(p, what, how)| format!("{p}: {what}: {how}"))
        .collect();
    assert!(
        unexplained.is_empty(),
        "differences from Debian's packages:\n{}",
        unexplained.join("\n")
    );
    for (p, what, why) in REMAINING_DIFFERENCES {
        assert!(
            differences.iter().any(|(dp, dw, _)| dp == p && dw == what),
            "{p}: {what} ({why}) is listed as a difference but is none: drop it"
        );
    }
    let hints = lintian(&debs);
    let (declared, rest): (Vec<_>, Vec<_>) = hints
        .into_iter()
        .partition(|(_, p, t, _)| DECLARED_TAGS.iter().any(|(dp, dt, _)| dp == p && dt == t));
    for (p, t, why) in DECLARED_TAGS {
        assert!(
            declared.iter().any(|(_, hp, ht, _)| hp == p && ht == t),
            "{p}: {t} ({why}) is listed but lintian no longer says it: drop it"
        );
    }
    // Upstream's files give the same tags whatever the package is called (openafs's is
    // openafs-dkms with the defaults, Debian's name here).
    let rest: Vec<_> = rest
        .into_iter()
        .map(|(l, p, t, c)| {
            let p = if p == "openafs-modules-dkms" {
                "openafs-dkms".to_string()
            } else {
                p
            };
            (l, p, t, c)
        })
        .collect();
    only_upstream_tags(&rest);
}
