//! `.dep_<module>` files and BUILD_DEPENDS_REBUILD as Debian's dkms 3.2.2 has them (upstream's
//! run_test.sh, module dkms_dependencies_rebuild_test): after a build, the version of each
//! BUILD_DEPENDS in `<m>/<v>/<k>/<a>/.dep_<dep>`; a new version of a dependency installed
//! rebuilds its dependents. Each step on two trees, dkms-rs vs 3.2.2, outputs compared; then
//! Debian 12's dkms 3.0.10 reads dkms-rs's tree.

use crate::dkms_3_2_2::Pair;
use crate::support;

use support::scratch::{Scratch, TRIVIAL, run};

/// `.dep_<dep>` of `m/v` for kernel `k` on a tree, if there.
fn dep_file(s: &Scratch, m: &str, v: &str, k: &str, dep: &str) -> Option<String> {
    let arch = support::command("uname").arg("-m").output().unwrap().stdout;
    let arch = String::from_utf8(arch).unwrap().trim().to_string();
    std::fs::read_to_string(
        s.dkms_tree
            .join(m)
            .join(v)
            .join(k)
            .join(arch)
            .join(format!(".dep_{dep}")),
    )
    .ok()
}

/// Both trees' `.dep_<dep>`, which must be the same; 3.2.2's.
fn same_dep_file(pair: &Pair, m: &str, v: &str, k: &str, dep: &str) -> Option<String> {
    let ours = dep_file(&pair.ours, m, v, k, dep);
    let theirs = dep_file(&pair.theirs, m, v, k, dep);
    assert_eq!(
        ours, theirs,
        ".dep_{dep} of {m}/{v}: dkms-rs (left) vs 3.2.2"
    );
    theirs
}

/// dkms 3.0.10's `status` of dkms-rs's tree lists what dkms-rs's does.
fn dkms_3_0_10_reads_it(pair: &Pair) {
    if !support::require_tool("dkms") {
        return;
    }
    let ours = run(&mut pair.ours.dkms_rs(&["status"]));
    let old = run(&mut pair.ours.dkms(&["status"]));
    assert_eq!(
        (ours.0, &ours.1),
        (old.0, &old.1),
        "dkms-rs vs dkms 3.0.10 status"
    );
}

const DEPENDENT: &str =
    "AUTOINSTALL=\"yes\"\nBUILD_DEPENDS=\"base\"\nBUILD_DEPENDS_REBUILD=\"yes\"\n";

/// upstream's scenario: base 1.0 installed, the dependent autoinstalled (`.dep_base` 1.0);
/// base removed, 2.0 installed: the dependent rebuilt (`.dep_base` 2.0); back to 1.0.
#[test]
fn a_new_dependency_version_rebuilds_its_dependents_as_dkms_3_2_2() {
    let Some((pair, k)) = Pair::on_a_kernel() else {
        return;
    };
    let k = k.as_str();
    pair.each(|s| {
        s.write_module("base", "1.0", "AUTOINSTALL=\"yes\"\n", TRIVIAL);
        s.write_module("base", "2.0", "AUTOINSTALL=\"yes\"\n", TRIVIAL);
        s.write_module("dependent", "1.0", DEPENDENT, TRIVIAL);
    });
    pair.same(&["add", "base/1.0"]);
    pair.same(&["autoinstall", "-k", k]);
    pair.same(&["add", "dependent/1.0"]);
    let auto = pair.same(&["autoinstall", "-k", k]);
    assert_eq!(auto.0, 0, "{auto:?}");
    assert_eq!(
        same_dep_file(&pair, "dependent", "1.0", k, "base").as_deref(),
        Some("1.0\n")
    );
    pair.same(&["status"]);
    dkms_3_0_10_reads_it(&pair);

    // Both added again: autoinstall builds base first, then the dependent.
    pair.same(&["kernel_prerm", "-k", k]);
    let auto = pair.same(&["autoinstall", "-k", k]);
    assert!(auto.1.contains("dependent/1.0"), "{auto:?}");
    pair.same(&["autoinstall", "-k", k]);

    pair.same(&["remove", "base/1.0", "-k", k]);
    pair.same(&["add", "base/2.0"]);
    let installed = pair.same(&["install", "base/2.0", "-k", k]);
    assert!(
        installed
            .1
            .contains("Rebuilding module dependent/1.0 due to updated dependencies"),
        "{installed:?}"
    );
    assert_eq!(
        same_dep_file(&pair, "dependent", "1.0", k, "base").as_deref(),
        Some("2.0\n")
    );
    pair.same(&["status"]);
    dkms_3_0_10_reads_it(&pair);

    pair.same(&["remove", "base/2.0", "-k", k]);
    pair.same(&["add", "base/1.0"]);
    let installed = pair.same(&["install", "base/1.0", "-k", k]);
    assert!(installed.1.contains("Rebuilding module"), "{installed:?}");
    assert_eq!(
        same_dep_file(&pair, "dependent", "1.0", k, "base").as_deref(),
        Some("1.0\n")
    );
    pair.same(&["status"]);
    dkms_3_0_10_reads_it(&pair);
    pair.same(&["remove", "dependent/1.0", "--all"]);
    pair.same(&["remove", "base/1.0", "--all"]);
}

/// Without BUILD_DEPENDS_REBUILD (or with `--force`, or with "No") no `.dep_` file; a built (not installed) dependent is rebuilt and installed by a new base.
#[test]
fn dep_files_only_with_build_depends_rebuild_as_dkms_3_2_2() {
    let Some((pair, k)) = Pair::on_a_kernel() else {
        return;
    };
    let k = k.as_str();
    pair.each(|s| {
        s.write_module("base", "1.0", "", TRIVIAL);
        s.write_module("base", "2.0", "", TRIVIAL);
        s.write_module(
            "plain",
            "1.0",
            "BUILD_DEPENDS=\"base\"\nBUILD_DEPENDS_REBUILD=\"No\"\n",
            TRIVIAL,
        );
        s.write_module("forced", "1.0", DEPENDENT, TRIVIAL);
        s.write_module("dependent", "1.0", DEPENDENT, TRIVIAL);
    });
    for m in ["base/1.0", "plain/1.0", "forced/1.0", "dependent/1.0"] {
        pair.same(&["add", m]);
    }
    pair.same(&["install", "base/1.0", "-k", k]);
    pair.same(&["build", "plain/1.0", "-k", k]);
    assert_eq!(same_dep_file(&pair, "plain", "1.0", k, "base"), None);
    pair.same(&["build", "forced/1.0", "-k", k, "--force"]);
    assert_eq!(same_dep_file(&pair, "forced", "1.0", k, "base"), None);
    pair.same(&["build", "dependent/1.0", "-k", k]);
    assert_eq!(
        same_dep_file(&pair, "dependent", "1.0", k, "base").as_deref(),
        Some("1.0\n")
    );
    // base 2.0 added (not built): the newest version there, what the next build records.
    pair.same(&["add", "base/2.0"]);
    pair.same(&["status"]);
    let installed = pair.same(&["install", "base/2.0", "-k", k]);
    assert_eq!(installed.0, 0, "{installed:?}");
    assert_eq!(
        same_dep_file(&pair, "dependent", "1.0", k, "base").as_deref(),
        Some("2.0\n")
    );
    pair.same(&["status"]);
    dkms_3_0_10_reads_it(&pair);
    for m in [
        "plain/1.0",
        "forced/1.0",
        "dependent/1.0",
        "base/1.0",
        "base/2.0",
    ] {
        pair.same(&["remove", m, "--all"]);
    }
}
