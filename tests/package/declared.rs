//! dkms-mkdeb's declared control fields and files (`dkms-mkdeb.control` beside dkms.conf, or
//! `--control FILE`, and the options, which win): read back by dpkg-deb, judged by lintian,
//! and bad input refused with one line naming the file and line or the option.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::mkdeb::{build, contents, copy_tree, field, lintian_clean, refused};
use crate::support::{hello_source, require_tool, run_ok};

/// A copy of hello in `dir/hello` with `control` as its dkms-mkdeb.control, and a udev rule,
/// a README and a modprobe.d file beside it to install.
fn hello_declaring(dir: &Path, control: &str) -> std::path::PathBuf {
    let src = dir.join("hello");
    copy_tree(&hello_source(), &src);
    fs::create_dir_all(src.join("debian-files/doc")).unwrap();
    fs::write(
        src.join("debian-files/60-hello.rules"),
        "KERNEL==\"hello\", MODE=\"0660\"\n",
    )
    .unwrap();
    fs::write(src.join("debian-files/doc/README"), "Say hello.\n").unwrap();
    fs::write(
        src.join("debian-files/hello.conf"),
        "options hello greeting=1\n",
    )
    .unwrap();
    fs::write(src.join("dkms-mkdeb.control"), control).unwrap();
    src
}

const CONTROL: &str = "\
# Fields as in debian/control's binary paragraph.
Depends: dkms (>= 3.0.3-4~), perl:any
Recommends: foo-utils,
 bar | baz (>= 1.0)
Suggests: qux
Provides: hello-module (= 0.1)
Conflicts: old-hello-dkms
Breaks: old-hello-utils (<< 0.1)
Replaces: old-hello-dkms
Enhances: hello-tools
Multi-Arch: foreign
Homepage: https://example.org/hello
Section: contrib/kernel
Install: debian-files/60-hello.rules lib/udev/rules.d
 debian-files/doc /usr/share/doc/hello-dkms/
 debian-files/hello.conf => /etc/modprobe.d/hello.conf
";

#[test]
fn declared_fields_and_files_read_back_with_dpkg_deb() {
    if !require_tool("dpkg-deb") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = hello_declaring(dir.path(), CONTROL);
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    // Options win over the file's fields.
    let deb = build(
        &src,
        &out,
        &["--suggests", "quux", "--priority", "standard"],
    );
    let expect = [
        ("Depends", "dkms-rs | dkms (>= 3.0.3-4~), perl:any"),
        ("Recommends", "foo-utils, bar | baz (>= 1.0)"),
        ("Suggests", "quux"),
        ("Provides", "hello-module (= 0.1)"),
        ("Conflicts", "old-hello-dkms"),
        ("Breaks", "old-hello-utils (<< 0.1)"),
        ("Replaces", "old-hello-dkms"),
        ("Enhances", "hello-tools"),
        ("Multi-Arch", "foreign"),
        ("Homepage", "https://example.org/hello"),
        ("Section", "contrib/kernel"),
        ("Priority", "standard"),
        ("Architecture", "all"),
    ];
    for (name, value) in expect {
        assert_eq!(field(&deb, name), value, "{name}");
    }
    // dpkg-gencontrol's order of the fields (deb-control(5)).
    let control = run_ok(Command::new("dpkg-deb").arg("-f").arg(&deb));
    let names: Vec<&str> = control
        .lines()
        .filter(|l| !l.starts_with(' '))
        .filter_map(|l| l.split_once(':').map(|(n, _)| n))
        .collect();
    let order = [
        "Depends",
        "Recommends",
        "Suggests",
        "Enhances",
        "Conflicts",
        "Breaks",
        "Replaces",
        "Provides",
        "Section",
        "Priority",
        "Multi-Arch",
        "Homepage",
        "Description",
    ];
    let seen: Vec<&str> = names.into_iter().filter(|n| order.contains(n)).collect();
    assert_eq!(seen, order);
    let files = contents(&deb);
    for f in [
        "./lib/udev/rules.d/60-hello.rules",
        "./usr/share/doc/hello-dkms/doc/README",
        "./etc/modprobe.d/hello.conf",
    ] {
        assert!(files.iter().any(|p| p == f), "{f} not in {files:?}");
    }
    // The file itself is the packaging's, not the module's source.
    assert!(!files.iter().any(|p| p.ends_with("dkms-mkdeb.control")));
    // /etc files are conffiles, as dh_installdeb makes them.
    let conffiles = run_ok(
        Command::new("dpkg-deb")
            .args(["-I"])
            .arg(&deb)
            .arg("conffiles"),
    );
    assert_eq!(conffiles, "/etc/modprobe.d/hello.conf\n");
    lintian_clean(&deb);

    // --control FILE elsewhere, an architecture: the .deb is named for it.
    let elsewhere = dir.path().join("elsewhere.control");
    fs::write(&elsewhere, "Architecture: amd64\nMulti-Arch: same\n").unwrap();
    fs::remove_file(src.join("dkms-mkdeb.control")).unwrap();
    let deb = build(&src, &out, &["--control", elsewhere.to_str().unwrap()]);
    assert!(deb.ends_with("hello-dkms_0.1_amd64.deb"), "{deb:?}");
    assert_eq!(field(&deb, "Multi-Arch"), "same");
}

/// Each bad input: (dkms-mkdeb.control, options, exit code, what the one line says).
const BAD: &[(&str, &[&str], i32, &str)] = &[
    (
        "Recommends: foo\nBogus: x\n",
        &[],
        8,
        "dkms-mkdeb.control:2: unknown field \"Bogus\"",
    ),
    (
        "Homepage: https://e.org\nRecommends: foo (>> )\n",
        &[],
        8,
        "dkms-mkdeb.control:2: Recommends: \"foo (>> )\" is not a relation list",
    ),
    (
        "Suggests: foo [amd64]\n",
        &[],
        8,
        "dkms-mkdeb.control:1: Suggests: \"foo [amd64]\": [arch] and <profile> restrictions",
    ),
    (
        "Depends: ${misc:Depends}\n",
        &[],
        8,
        "dkms-mkdeb.control:1: Depends: \"${misc:Depends}\" has a substvar",
    ),
    (
        "Depends: dkms | foo\n",
        &[],
        8,
        "dkms-mkdeb.control:1: Depends: \"dkms | foo\": dkms-mkdeb writes the dependency on dkms itself",
    ),
    (
        "Install: dkms.conf usr/share/doc/hello-dkms\n missing.txt usr/share/doc/hello-dkms\n",
        &[],
        8,
        "dkms-mkdeb.control:2: Install: ",
    ),
    (
        "Install: dkms.conf ../../etc\n",
        &[],
        8,
        "dkms-mkdeb.control:1: Install: \"../../etc\" leaves the package",
    ),
    (
        "Install: dkms.conf\n",
        &[],
        8,
        "dkms-mkdeb.control:1: Install: \"dkms.conf\" has no destination",
    ),
    (
        "Install: Makefile usr/src/hello-0.1\n",
        &[],
        8,
        "dkms-mkdeb.control:1: Install: /usr/src/hello-0.1/Makefile is in the package already",
    ),
    (
        "Suggests: a1\nSuggests: b1\n",
        &[],
        8,
        "dkms-mkdeb.control:2: Suggests is given twice",
    ),
    (
        "Package: other\n",
        &[],
        8,
        "dkms-mkdeb.control:1: unknown field \"Package\"",
    ),
    (
        "Suggests: a1\n\nRecommends: b1\n",
        &[],
        8,
        "dkms-mkdeb.control:3: a second paragraph",
    ),
    (
        "",
        &["--recommends", "foo (>> )"],
        1,
        "--recommends: \"foo (>> )\" is not a relation list",
    ),
    (
        "",
        &["--architecture", "any"],
        1,
        "--architecture: \"any\" is not one Debian architecture",
    ),
    (
        "",
        &["--multi-arch", "same"],
        1,
        "--multi-arch: \"same\" needs an architecture",
    ),
    (
        "Multi-Arch: same\n",
        &[],
        8,
        "dkms-mkdeb.control:1: Multi-Arch: \"same\" needs an architecture",
    ),
    (
        "",
        &["--homepage", "example.org"],
        1,
        "--homepage: \"example.org\" is not an http(s) URL",
    ),
    (
        "",
        &["--priority", "extra"],
        1,
        "--priority: \"extra\" is deprecated",
    ),
    (
        "",
        &["--install", "nowhere.txt /etc"],
        1,
        "--install: nowhere.txt: No such file",
    ),
    (
        "",
        &["--provides", "foo (>= 1)"],
        1,
        "--provides: \"foo (>= 1)\": a Provides version",
    ),
];

#[test]
fn bad_declarations_get_one_line_and_no_package() {
    let dir = tempfile::tempdir().unwrap();
    for (i, (control, options, code, says)) in BAD.iter().enumerate() {
        let case = dir.path().join(i.to_string());
        fs::create_dir(&case).unwrap();
        let src = hello_declaring(&case, control);
        if control.is_empty() {
            fs::remove_file(src.join("dkms-mkdeb.control")).unwrap();
        }
        let out = case.join("out");
        fs::create_dir(&out).unwrap();
        let (got, line) = refused(&src, &out, options);
        assert_eq!(got, *code, "{control:?} {options:?}: {line}");
        assert!(
            line.starts_with("dkms-mkdeb: error: ") && line.contains(says),
            "{control:?} {options:?}: {line:?} does not say {says:?}"
        );
        assert_eq!(fs::read_dir(&out).unwrap().count(), 0, "{line}");
    }
}

/// The fields are the -dkms package's: --binaries-only and --source-package refuse them
/// rather than drop them.
#[test]
fn declarations_are_refused_where_they_do_not_apply() {
    let dir = tempfile::tempdir().unwrap();
    let src = hello_declaring(dir.path(), "Suggests: qux\n");
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    let (code, line) = refused(&src, &out, &["--source-package"]);
    assert_eq!(code, 1, "{line}");
    assert!(
        line.contains("dkms-mkdeb.control: the source package does not carry"),
        "{line}"
    );
    let (code, line) = refused(
        &src,
        &out,
        &[
            "--binaries-only",
            "-k",
            "6.1.0-999-amd64",
            "--suggests",
            "qux",
        ],
    );
    assert_eq!(code, 2, "{line}");
    assert!(
        line.contains("--binaries-only") && line.contains("--suggests"),
        "{line}"
    );
}
