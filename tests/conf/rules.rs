//! Each dkms.conf rule, checked against dkms 3.0.10's own `read_conf` (never stored answers):
//! sparse arrays, scalar-as-index-0, CRLF (as 3.2.2 reads it), /etc/dkms overrides, MAKE_MATCH, PATCH_MATCH,
//! BUILD_EXCLUSIVE_CONFIG with `!CONFIG_X`, STRIP inheritance, the two reading passes, and
//! every validation error with its file, directive, record, line and exit code.

use crate::support;

use std::path::{Path, PathBuf};

use dkms::conf::{self, ConfError, Problem, Reader, ResolveContext, ShowFormat};

/// A kernel (fake, no headers) for the cases that read no headers: what it is does not matter.
const NO_HEADERS: &str = support::FAKE_KERNEL;

struct Case {
    dir: tempfile::TempDir,
    etc: PathBuf,
    conf: PathBuf,
}

fn case(text: &str) -> Case {
    let dir = tempfile::tempdir().expect("temp dir");
    let etc = dir.path().join("etc");
    std::fs::create_dir(&etc).expect("etc dir");
    let conf = dir.path().join("dkms.conf");
    std::fs::write(&conf, text).expect("write dkms.conf");
    Case { dir, etc, conf }
}

impl Case {
    fn etc_file(&self, name: &str, text: &str) -> &Self {
        std::fs::write(self.etc.join(name), text).expect("write override");
        self
    }

    fn ctx(&self, kernel: &str, arch: &str) -> ResolveContext {
        let mut ctx = ResolveContext::new(kernel, arch);
        ctx.etc_dir = self.etc.clone();
        ctx
    }

    /// Our kv output through `reader`, asserted equal to dkms's for (kernel, arch).
    fn agrees(&self, kernel: &str, arch: &str, reader: Reader) -> String {
        self.agrees_with(self, kernel, arch, reader)
    }

    /// Our kv output for this file through `reader`, asserted equal to dkms's for `like`.
    fn agrees_with(&self, like: &Case, kernel: &str, arch: &str, reader: Reader) -> String {
        // Both run in this process's working directory (dkms globs values against it).
        let cwd = std::env::current_dir().expect("cwd");
        let want = support::dkms_oracle_show(&like.conf, kernel, arch, &like.etc, &cwd);
        let got = match conf::evaluate(&self.conf, &self.ctx(kernel, arch), reader) {
            Ok(r) => conf::show::render_facts(&r, ShowFormat::Kv),
            Err(e) => panic!("{reader:?} reader failed: {e}"),
        };
        assert_eq!(
            got, want,
            "{reader:?} reader disagrees with dkms on {kernel}/{arch}"
        );
        got
    }

    /// Our kv output through every reader (native too when `native`), asserted equal to
    /// dkms 3.2.2's (where its read_conf differs from 3.0.10's); `None` without 3.2.2.
    fn all_agree_3_2_2(&self, kernel: &str, arch: &str, native: bool) -> Option<String> {
        let cwd = std::env::current_dir().expect("cwd");
        // 3.2.2's read_conf no longer sets `clean` (dkms-rs keeps 3.0.10's): not compared.
        let no_clean = |kv: String| {
            kv.lines()
                .filter(|l| !l.starts_with("clean="))
                .map(|l| format!("{l}\n"))
                .collect::<String>()
        };
        let want = no_clean(support::dkms_3_2_2_oracle_show(
            &self.conf, kernel, arch, &self.etc, &cwd,
        )?);
        let mut readers = vec![Reader::Auto, Reader::Bash];
        if native {
            readers.push(Reader::Native);
        }
        for reader in readers {
            let got = match conf::evaluate(&self.conf, &self.ctx(kernel, arch), reader) {
                Ok(r) => no_clean(conf::show::render_facts(&r, ShowFormat::Kv)),
                Err(e) => panic!("{reader:?} reader failed: {e}"),
            };
            assert_eq!(got, want, "{reader:?} reader disagrees with dkms 3.2.2");
        }
        Some(want)
    }

    /// Same as dkms through every reader (native too when `native`).
    fn all_agree(&self, kernel: &str, arch: &str, native: bool) -> String {
        let got = self.agrees(kernel, arch, Reader::Auto);
        self.agrees(kernel, arch, Reader::Bash);
        if native {
            self.agrees(kernel, arch, Reader::Native);
        }
        got
    }
}

/// dkms (the oracle) and one kernel with headers: (that kernel, this machine's arch).
fn oracle_ready() -> Option<(String, String)> {
    if !support::require_tool("dkms") {
        return None;
    }
    let kernel = support::require_kernels(1)?.swap_remove(0);
    Some((kernel, support::arch()))
}

fn has(kv: &str, line: &str) -> bool {
    kv.lines().any(|l| l == line)
}

/// Whether `arch` matches the regex `i.86` (an i386 machine: i486 ... i686).
fn is_i86(arch: &str) -> bool {
    let b = arch.as_bytes();
    b.len() == 4 && b[0] == b'i' && &b[2..] == b"86"
}

#[test]
fn sparse_arrays_count_the_highest_index() {
    let Some((k, a)) = oracle_ready() else {
        return;
    };
    let c = case(
        "PACKAGE_NAME=sp\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME[0]=a\nBUILT_MODULE_NAME[2]=c\n\
         DEST_MODULE_LOCATION[0]=/extra\nDEST_MODULE_LOCATION[2]=/extra\n",
    );
    // dkms 3.2.2 counts records by the highest index (3.0.10: by elements): 0, 1 and 2.
    let Some(kv) = c.all_agree_3_2_2(&k, &a, true) else {
        return;
    };
    assert!(
        has(&kv, "valid=no") && has(&kv, "module.2.built_name=c"),
        "{kv}"
    );
    let err = conf::read(&c.conf, &c.ctx(&k, &a)).expect_err("record 1 is empty");
    assert!(matches!(
        err,
        ConfError::Invalid {
            kind: Problem::NoBuiltModuleName,
            record: Some(1),
            ..
        }
    ));
    assert_eq!(err.exit_code(), 8);
}

#[test]
fn scalar_is_index_zero() {
    let Some((k, a)) = oracle_ready() else {
        return;
    };
    let c = case(
        "PACKAGE_NAME=sc\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME=first\nBUILT_MODULE_NAME[1]=second\n\
         DEST_MODULE_LOCATION=/kernel/x\nDEST_MODULE_LOCATION[1]=/updates\nMAKE=\"make   all\"\n",
    );
    let kv = c.all_agree(&k, &a, true);
    assert!(has(&kv, "module.0.built_name=first"), "{kv}");
    assert!(
        has(&kv, "make_command=make all"),
        "safe_source collapses blanks: {kv}"
    );
}

#[test]
fn single_record_defaults_to_package_name() {
    let Some((k, a)) = oracle_ready() else {
        return;
    };
    let c = case("PACKAGE_NAME=solo\nPACKAGE_VERSION=2.0\nDEST_MODULE_LOCATION[0]=/extra\n");
    let kv = c.all_agree(&k, &a, true);
    assert!(has(&kv, "module.0.built_name=solo"), "{kv}");
    assert!(has(&kv, "module.0.dest_location=/updates/dkms"), "{kv}");
}

#[test]
fn crlf_files_read_as_dkms_3_2_2_reads_them() {
    let Some((k, a)) = oracle_ready() else {
        return;
    };
    // dkms 3.2.2's safe_source takes one trailing CR off each directive: a CR/LF file reads
    // as the same file with LF line ends (3.0.10, the oracle here, reads that one; it kept
    // the CRs of the other). tests/core/dkms_3_2_2.rs builds one with 3.2.2 itself.
    let text = "PACKAGE_NAME=\"crlf\"\r\nPACKAGE_VERSION=1.0\r\nBUILT_MODULE_NAME[0]=crlf\r\n\
                DEST_MODULE_LOCATION[0]=/extra\r\nMAKE[0]=\"make -C src\"\r\n";
    let lf = case(&text.replace("\r\n", "\n"));
    let crlf = case(text);
    for reader in [Reader::Auto, Reader::Bash, Reader::Native] {
        crlf.agrees_with(&lf, &k, &a, reader);
    }
    // A blank CRLF line is a command named "\r": only bash knows what that does.
    let with_blank = format!("{text}\r\nAUTOINSTALL=yes\r\n");
    let lf = case(&with_blank.replace("\r\n", "\n"));
    let crlf = case(&with_blank);
    for reader in [Reader::Auto, Reader::Bash] {
        crlf.agrees_with(&lf, &k, &a, reader);
    }
}

#[test]
fn etc_dkms_overrides_in_dkms_order() {
    let Some((k, a)) = oracle_ready() else {
        return;
    };
    let c = case(
        "PACKAGE_NAME=ov\nPACKAGE_VERSION=3\nBUILT_MODULE_NAME[0]=ov\nDEST_MODULE_LOCATION[0]=/extra\n\
         MAKE[0]=\"make base\"\n",
    );
    c.etc_file(
        "ov.conf",
        "MAKE[0]=\"make from-module $PACKAGE_VERSION\"\nCLEAN=\"clean one\"\n",
    )
    .etc_file("ov-3.conf", "CLEAN=\"clean two $MAKE\"\n")
    .etc_file(&format!("ov-3-{k}.conf"), "AUTOINSTALL=yes\n")
    .etc_file(&format!("ov-3-{k}-{a}.conf"), "STRIP[0]=no\n");
    let kv = c.all_agree(&k, &a, true);
    assert!(has(&kv, "clean=clean two make from-module 3"), "{kv}");
    assert!(has(&kv, "module.0.strip=no"), "{kv}");
    // The kernel- and arch-specific files only apply to their kernel.
    let other = c.all_agree(NO_HEADERS, &a, true);
    assert!(has(&other, "autoinstall=no"), "{other}");
}

#[test]
fn make_match_and_patch_match_pick_by_kernel() {
    let Some((k, a)) = oracle_ready() else {
        return;
    };
    let c = case(
        "PACKAGE_NAME=mm\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME[0]=mm\nDEST_MODULE_LOCATION[0]=/extra\n\
         MAKE[0]=\"make old\"\nMAKE[1]=\"make new\"\nMAKE_MATCH[1]=\"^6\\.[0-9]+\\.\"\n\
         PATCH[0]=all.patch\nPATCH[1]=old.patch\nPATCH_MATCH[1]=\"^4\\.19\"\nPATCH[2]=bad.patch\n\
         PATCH_MATCH[2]=\"(\"\n",
    );
    let new = c.all_agree(&k, &a, true);
    assert!(has(&new, "make_command=make new"), "{new}");
    let old = c.all_agree("4.19.0-999-686-pae", "i686", true);
    assert!(
        has(&old, "make_command=make old") && has(&old, "patch.1=old.patch"),
        "{old}"
    );
}

#[test]
fn build_exclusive_config_kernel_and_arch() {
    let Some((k, a)) = oracle_ready() else {
        return;
    };
    let base = "PACKAGE_NAME=bx\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME[0]=bx\nDEST_MODULE_LOCATION[0]=/extra\n";
    for (extra, excluded) in [
        ("BUILD_EXCLUSIVE_CONFIG=\"CONFIG_PCI CONFIG_USB\"\n", false),
        ("BUILD_EXCLUSIVE_CONFIG=\"!CONFIG_PCI\"\n", true),
        ("BUILD_EXCLUSIVE_CONFIG=\"!CONFIG_PREEMPT_RT\"\n", false),
        (
            "BUILD_EXCLUSIVE_CONFIG=\"CONFIG_DKMS_RS_NOT_THERE\"\n",
            true,
        ),
        ("BUILD_EXCLUSIVE_KERNEL=\"^5\\.\"\n", true),
        ("BUILD_EXCLUSIVE_ARCH=\"i.86\"\n", !is_i86(&a)),
        (
            &format!("BUILD_EXCLUSIVE_ARCH=\"{a}\"\nbuild_exclude=no\n"),
            true,
        ),
    ] {
        let c = case(&format!("{base}{extra}"));
        let kv = c.all_agree(&k, &a, true);
        let want = if excluded {
            "build_exclude=yes"
        } else {
            "build_exclude=no"
        };
        assert!(has(&kv, want), "{extra}: {kv}");
        // Without headers there is no .config: BUILD_EXCLUSIVE_CONFIG cannot exclude.
        c.all_agree(NO_HEADERS, &a, true);
    }
}

#[test]
fn strip_inherits_from_record_zero() {
    let Some((k, a)) = oracle_ready() else {
        return;
    };
    let c = case(
        "PACKAGE_NAME=st\nPACKAGE_VERSION=1\nSTRIP[0]=No\nSTRIP[2]=yes\nSTRIP[3]=maybe\n\
         BUILT_MODULE_NAME[0]=a\nBUILT_MODULE_NAME[1]=b\nBUILT_MODULE_NAME[2]=c\nBUILT_MODULE_NAME[3]=d\n\
         DEST_MODULE_LOCATION[0]=/extra\nDEST_MODULE_LOCATION[1]=/extra\nDEST_MODULE_LOCATION[2]=/extra\n\
         DEST_MODULE_LOCATION[3]=/extra\n",
    );
    let kv = c.all_agree(&k, &a, true);
    for line in [
        "module.0.strip=no",
        "module.1.strip=no",
        "module.2.strip=yes",
        "module.3.strip=yes",
    ] {
        assert!(has(&kv, line), "{line}: {kv}");
    }
}

#[test]
fn variables_dkms_exposes_are_seen_natively() {
    let Some((k, a)) = oracle_ready() else {
        return;
    };
    let c = case(
        "PACKAGE_NAME=vx\nPACKAGE_VERSION=9\nBUILT_MODULE_NAME[0]=vx\nDEST_MODULE_LOCATION[0]=/extra\n\
         D=\"$dkms_tree/$module/$module_version\"\n\
         MAKE[0]=\"make K=$kernelver A=$arch S=${kernel_source_dir} C=$kernel_config T=$source_tree I=$install_tree B=$D\"\n\
         PRE_BUILD='pre $x'\nPOST_ADD=\"a\\\"b\"\nBUILD_DEPENDS[0]=\"one two\"\nBUILD_DEPENDS[1]=three\n\
         OBSOLETE_BY=7.0\n",
    );
    // Zero modules here: valid for 3.2.2, the oracle of that.
    c.all_agree_3_2_2(&k, &a, false);
    c.all_agree_3_2_2("4.19.0-999-686-pae", "i686", false);
    // `pre $x` is expanded a second time by safe_source: the native reader must hand over.
    assert!(conf::evaluate(&c.conf, &c.ctx(&k, &a), Reader::Native).is_err());
}

#[test]
fn shell_files_go_to_bash_and_agree() {
    let Some((k, a)) = oracle_ready() else {
        return;
    };
    let c = case(
        "PACKAGE_NAME=sh\nPACKAGE_VERSION=$(echo 1.$((2+3)))\ncase \"$kernelver\" in 4.*) M=old;; *) M=new;; esac\n\
         if [ -e \"$kernel_source_dir/.config\" ]; then . \"$kernel_source_dir/.config\"; fi\n\
         BUILT_MODULE_NAME[0]=\"sh_${M}_${CONFIG_PCI:-none}\"\nDEST_MODULE_LOCATION[0]=/updates\n\
         f() { echo x; }\nMAKE[0]=\"make `f` ${PACKAGE_NAME%h}\"\n",
    );
    let native = conf::evaluate(&c.conf, &c.ctx(&k, &a), Reader::Native);
    assert!(matches!(native, Err(ConfError::Shell { .. })));
    let kv = c.all_agree(&k, &a, false);
    assert!(has(&kv, "module.0.built_name=sh_new_y"), "{kv}");
    c.all_agree("4.19.0-999-686-pae", "i686", false);
}

/// Every validation failure: dkms says invalid, we name directive, record and line, exit 8.
#[test]
fn validation_errors_name_directive_record_and_line() {
    let Some((k, a)) = oracle_ready() else {
        return;
    };
    let ok = "PACKAGE_NAME=va\nPACKAGE_VERSION=1\n";
    let cases: &[(&str, Problem, &str, Option<usize>, usize)] = &[
        (
            "BUILT_MODULE_NAME[0]=va.ko\nDEST_MODULE_LOCATION[0]=/extra\n",
            Problem::BuiltNameSuffix,
            "BUILT_MODULE_NAME",
            Some(0),
            3,
        ),
        (
            "BUILT_MODULE_NAME[0]=va\nDEST_MODULE_NAME[0]=va.o\nDEST_MODULE_LOCATION[0]=/extra\n",
            Problem::DestNameSuffix,
            "DEST_MODULE_NAME",
            Some(0),
            4,
        ),
        (
            "BUILT_MODULE_NAME[0]=va\nDEST_MODULE_LOCATION[0]=/extra\nBUILT_MODULE_NAME[1]=vb\n",
            Problem::NoDestModuleLocation,
            "DEST_MODULE_LOCATION",
            Some(1),
            5,
        ),
        (
            "BUILT_MODULE_NAME[0]=va\nDEST_MODULE_LOCATION[0]=/lib/x\n",
            Problem::BadDestModuleLocation,
            "DEST_MODULE_LOCATION",
            Some(0),
            4,
        ),
        (
            "BUILT_MODULE_NAME[0]=va\n",
            Problem::NoDestModuleLocation,
            "DEST_MODULE_LOCATION",
            Some(0),
            3,
        ),
    ];
    for (text, kind, directive, record, line) in cases {
        let c = case(&format!("{ok}{text}"));
        let kv = c.all_agree(&k, &a, true);
        assert!(has(&kv, "valid=no"), "{text}: {kv}");
        let err = conf::read(&c.conf, &c.ctx(&k, &a)).expect_err(text);
        match &err {
            ConfError::Invalid {
                path,
                line: l,
                directive: d,
                record: r,
                kind: k,
                ..
            } => {
                assert_eq!(
                    (k, d, r, l),
                    (kind, directive, record, &Some(*line)),
                    "{text}"
                );
                assert_eq!(path, &c.conf);
            }
            other => panic!("{text}: {other}"),
        }
        assert_eq!(err.exit_code(), 8);
        let shown = err.to_string();
        assert!(shown.contains(&format!("dkms.conf:{line}")), "{shown}");
    }
    // dkms 3.2.2: no module at all is valid (add/build/install warn).
    let zero = case("PACKAGE_NAME=x\nPACKAGE_VERSION=1\n");
    if let Some(kv) = zero.all_agree_3_2_2(&k, &a, true) {
        assert!(has(&kv, "valid=yes"), "{kv}");
    }
    for (text, kind) in [
        (
            "PACKAGE_VERSION=1\nBUILT_MODULE_NAME[0]=x\nDEST_MODULE_LOCATION[0]=/extra\n",
            Problem::NoPackageName,
        ),
        (
            "PACKAGE_NAME=x\nBUILT_MODULE_NAME[0]=x\nDEST_MODULE_LOCATION[0]=/extra\n",
            Problem::NoPackageVersion,
        ),
    ] {
        let c = case(text);
        let kv = c.all_agree(&k, &a, true);
        assert!(has(&kv, "valid=no"), "{text}: {kv}");
        let err = conf::read(&c.conf, &c.ctx(&k, &a)).expect_err(text);
        assert!(
            matches!(&err, ConfError::Invalid { kind: k, .. } if *k == kind),
            "{text}: {err}"
        );
        assert_eq!(err.exit_code(), 8);
    }
}

#[test]
fn override_file_errors_name_the_override() {
    let c = case(
        "PACKAGE_NAME=of\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME[0]=of\nDEST_MODULE_LOCATION[0]=/extra\n",
    );
    c.etc_file("of.conf", "# local\nDEST_MODULE_LOCATION[0]=/opt\n");
    let err = conf::read(&c.conf, &c.ctx(NO_HEADERS, &support::arch())).expect_err("bad override");
    match err {
        ConfError::Invalid { path, line, .. } => {
            assert_eq!(path, c.etc.join("of.conf"));
            assert_eq!(line, Some(2));
        }
        other => panic!("{other}"),
    }
}

#[test]
fn missing_conf_exits_4() {
    let err = conf::read(
        Path::new("/nonexistent/dkms.conf"),
        &ResolveContext::new(NO_HEADERS, &support::arch()),
    )
    .expect_err("missing");
    assert_eq!(err.exit_code(), 4);
    assert!(err.to_string().contains("/nonexistent/dkms.conf"));
}

#[test]
fn read_identity_validates() {
    let c = case(
        "PACKAGE_NAME=\"id\"\nPACKAGE_VERSION=0.1\nBUILT_MODULE_NAME[0]=id\nDEST_MODULE_LOCATION[0]=/updates\n",
    );
    assert_eq!(
        conf::read_identity(&c.conf).expect("valid"),
        ("id".into(), "0.1".into())
    );
    let bad = case("PACKAGE_NAME=id\nBUILT_MODULE_NAME[0]=id\nDEST_MODULE_LOCATION[0]=/updates\n");
    assert_eq!(
        conf::read_identity(&bad.conf)
            .expect_err("no version")
            .exit_code(),
        8
    );
}

#[test]
fn show_renders_kv_and_json() {
    let c = case(
        "PACKAGE_NAME=js\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME[0]=js\nDEST_MODULE_LOCATION[0]=/kernel/x\n",
    );
    let ctx = c.ctx(NO_HEADERS, &support::arch());
    let kv = conf::show(c.dir.path(), &ctx, ShowFormat::Kv)
        .expect("show")
        .text;
    let mut sorted: Vec<&str> = kv.lines().collect();
    sorted.sort_unstable();
    assert_eq!(kv.lines().collect::<Vec<_>>(), sorted);
    assert!(has(&kv, "valid=yes"));
    assert!(has(&kv, "reader=native"), "{kv}");
    assert!(!kv.contains("needs_shell="), "{kv}");
    let json = conf::show(&c.conf, &ctx, ShowFormat::Json)
        .expect("json")
        .text;
    let v: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(v["modules"][0]["dest_location"], "/updates/dkms");
    assert_eq!(v["valid"], true);
    assert_eq!(v["reader"], "native");
    assert_eq!(v["needs_shell"], serde_json::Value::Null);
}
