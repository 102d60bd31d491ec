//! Module signing and `generate_mok`, against Debian trixie's dkms 3.2.2 (`.ci/fetch-dkms-3.2.2`
//! extracts it, never installed), run on a scratch tree of its own in a private mount namespace
//! where the scratch `etc/` is /etc/dkms; the MOK pairs live in the scratch (framework.conf's
//! `mok_signing_key`/`mok_certificate` with `${kernelver}` in them), never in /var/lib/dkms.
//!
//! What a signed module is, is asked of real tools only: modinfo's signer, sig_key and
//! sig_hashalgo against `openssl x509` on the certificate and the kernel's own .config, and the
//! appended PKCS#7 (cut out as the kernel's scripts/extract-module-sig.pl does) verified by
//! `openssl cms -verify` against the certificate.

use std::path::{Path, PathBuf};

use crate::support;

use support::scratch::{Scratch, TRIVIAL, ok, run};

/// dkms 3.2.2 as `.ci/fetch-dkms-3.2.2` extracted it; `None` (skip, or fail under CI) when it
/// is not there or its namespace cannot be made (not root).
fn oracle() -> Option<PathBuf> {
    let dir = support::dkms_3_2_2()?;
    if !support::scratch::is_root() {
        support::missing("root (dkms 3.2.2 runs in a mount namespace with the scratch /etc/dkms)");
        return None;
    }
    Some(dir)
}

/// The tools this file needs besides dkms 3.2.2.
fn tools() -> bool {
    ["openssl", "modinfo", "make", "unshare"]
        .iter()
        .all(|t| support::require_tool(t))
}

/// framework.conf's MOK paths in these tests: one pair per kernel, in the scratch.
const MOK_KEY: &str = "keys/${kernelver}/mok.key";
const MOK_CERT: &str = "keys/${kernelver}/mok.pub";

/// A scratch tree on `kernels` (`<k>/build` linked to the real headers, where dkms 3.2.2 looks
/// for them under its install tree) whose framework.conf names the MOK pair `keys/<k>/mok.*`
/// and, when `sign_file` is false, a sign-file that is not there; `keys/<k>/` exists.
fn scratch(kernels: &[String], sign_file: bool) -> Scratch {
    let s = Scratch::new(kernels);
    let d = s.dir.path().display().to_string();
    for k in kernels {
        std::fs::create_dir_all(s.dir.path().join("keys").join(k)).expect("key dir");
    }
    let mut fw = format!("mok_signing_key=\"{d}/{MOK_KEY}\"\nmok_certificate='{d}/{MOK_CERT}'\n");
    if !sign_file {
        fw.push_str(&format!("sign_file=\"{d}/no-sign-file\"\n"));
    }
    std::fs::write(s.etc_dir.join("framework.conf"), fw).expect("framework.conf");
    s
}

/// The lines of dkms's signing steps (prepare_signing, prepare_mok, do_build's), the scratch
/// dir written `[DIR]`.
fn signing_lines(out: &str, s: &Scratch) -> Vec<String> {
    const STARTS: [&str; 12] = [
        "Kernel config ",
        "The kernel is built without",
        "Sign command: ",
        "Binary ",
        "Signing key: ",
        "Public certificate (MOK): ",
        "Certificate or key are missing",
        "openssl not found",
        "Key file ",
        "Certificate file ",
        "Signing module ",
        "Warning: Failed to sign module",
    ];
    let dir = s.dir.path().display().to_string();
    out.lines()
        .filter(|l| STARTS.iter().any(|p| l.starts_with(p)))
        .map(|l| l.replace(&dir, "[DIR]"))
        .collect()
}

fn key_and_cert(s: &Scratch, kernel: &str) -> (PathBuf, PathBuf) {
    let keys = s.dir.path().join("keys").join(kernel);
    (keys.join("mok.key"), keys.join("mok.pub"))
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// `openssl x509 -inform DER -in CERT -noout ARGS`.
fn x509(cert: &Path, args: &[&str]) -> String {
    ok(support::command("openssl")
        .args(["x509", "-inform", "DER", "-noout", "-in"])
        .arg(cert)
        .args(args))
}

fn modinfo(ko: &Path, field: &str) -> String {
    ok(support::command("modinfo").args(["-F", field]).arg(ko))
        .trim()
        .to_owned()
}

/// Hex digits of a serial or key id, without colons and leading zeros, upper case.
fn hex_id(text: &str) -> String {
    text.chars()
        .filter(char::is_ascii_hexdigit)
        .collect::<String>()
        .to_ascii_uppercase()
        .trim_start_matches('0')
        .to_owned()
}

/// The kernel's CONFIG_MODULE_SIG_HASH, read from its headers' .config by the test itself.
fn kernel_sig_hash(kernel: &str) -> String {
    let config =
        std::fs::read_to_string(Path::new("/lib/modules").join(kernel).join("build/.config"))
            .expect("kernel .config");
    config
        .lines()
        .find_map(|l| l.strip_prefix("CONFIG_MODULE_SIG_HASH="))
        .expect("CONFIG_MODULE_SIG_HASH")
        .trim_matches('"')
        .to_owned()
}

/// A signed module cut as scripts/extract-module-sig.pl cuts it: the module as it was signed,
/// and the PKCS#7 (DER) appended to it. The tail is the PKCS#7, a 12-byte `struct
/// module_signature` (its last 4 bytes the PKCS#7's length, big-endian) and the magic.
fn split_signature(ko: &[u8]) -> (Vec<u8>, Vec<u8>) {
    const MAGIC: &[u8] = b"~Module signature appended~\n";
    assert!(ko.ends_with(MAGIC), "no signature magic at the end");
    let info_end = ko.len() - MAGIC.len();
    let info = &ko[info_end - 12..info_end];
    // id_type 2 = PKEY_ID_PKCS7; signer_len and key_id_len are 0 for PKCS#7 (the names are in it).
    assert_eq!(info[2], 2, "module_signature.id_type is not PKCS#7");
    let sig_len = u32::from_be_bytes(info[8..12].try_into().unwrap()) as usize;
    let sig_start = info_end - 12 - sig_len;
    (
        ko[..sig_start].to_vec(),
        ko[sig_start..info_end - 12].to_vec(),
    )
}

/// Whether `openssl cms -verify` accepts `sig` over `content` for the DER certificate `cert`.
fn cms_verifies(content: &[u8], sig: &[u8], cert: &Path) -> (bool, String) {
    let work = tempfile::tempdir().unwrap();
    let (c, p, pem) = (
        work.path().join("content"),
        work.path().join("sig.p7"),
        work.path().join("cert.pem"),
    );
    std::fs::write(&c, content).unwrap();
    std::fs::write(&p, sig).unwrap();
    ok(support::command("openssl")
        .args(["x509", "-inform", "DER", "-in"])
        .arg(cert)
        .arg("-out")
        .arg(&pem));
    let (code, _, err) = run(support::command("openssl")
        .args(["cms", "-verify", "-binary", "-inform", "DER", "-noverify"])
        .arg("-in")
        .arg(&p)
        .arg("-content")
        .arg(&c)
        .arg("-certfile")
        .arg(&pem)
        .args(["-out", "/dev/null"]));
    (code == 0, err)
}

/// Everything the real tools say about a module signed with `cert` for `kernel`: modinfo's
/// signer, sig_key and sig_hashalgo are the certificate's subject, serial and the kernel's
/// CONFIG_MODULE_SIG_HASH; the PKCS#7 verifies over the module, and no longer once one byte
/// of the module is changed.
fn assert_signed_with(ko: &Path, cert: &Path, kernel: &str) {
    let subject = x509(cert, &["-subject", "-nameopt", "multiline"]);
    let cn = subject
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("commonName")
                .map(|v| v.trim().trim_start_matches('=').trim().to_owned())
        })
        .expect("certificate CN");
    assert_eq!(cn, "DKMS module signing key");
    assert_eq!(modinfo(ko, "signer"), cn, "{}: signer", ko.display());
    let serial = x509(cert, &["-serial"]);
    assert_eq!(
        hex_id(&modinfo(ko, "sig_key")),
        hex_id(serial.trim().trim_start_matches("serial=")),
        "{}: sig_key vs the certificate's serial",
        ko.display()
    );
    assert_eq!(
        modinfo(ko, "sig_hashalgo"),
        kernel_sig_hash(kernel),
        "{}: sig_hashalgo vs {kernel}'s CONFIG_MODULE_SIG_HASH",
        ko.display()
    );
    let bytes = std::fs::read(ko).unwrap();
    let (content, sig) = split_signature(&bytes);
    let (good, err) = cms_verifies(&content, &sig, cert);
    assert!(good, "{}: openssl cms -verify failed:\n{err}", ko.display());
    let mut tampered = content.clone();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0xff;
    let (still, _) = cms_verifies(&tampered, &sig, cert);
    assert!(!still, "{}: a changed module still verifies", ko.display());
}

/// The certificate dkms (either) made: self-signed, `codeSigning` extended key usage.
fn assert_mok_cert(cert: &Path) {
    let text = x509(cert, &["-issuer", "-subject", "-ext", "extendedKeyUsage"]);
    assert!(
        text.contains("issuer=CN = DKMS module signing key")
            && text.contains("subject=CN = DKMS module signing key")
            && text.contains("Code Signing"),
        "{}:\n{text}",
        cert.display()
    );
}

fn built_module(s: &Scratch, name: &str, kernel: &str) -> PathBuf {
    s.dkms_tree
        .join(name)
        .join("1.0")
        .join(kernel)
        .join(support::arch())
        .join("module")
        .join(format!("{name}.ko"))
}

/// The first build for a kernel makes its missing MOK pair (`${kernelver}` in framework.conf's
/// paths) and signs with it, saying the same lines as dkms 3.2.2; both tools' modules are what
/// modinfo and openssl say a module signed with that pair for that kernel is.
#[test]
fn first_build_makes_the_pair_and_signs_as_dkms_3_2_2() {
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let (Some(reference), true) = (oracle(), tools()) else {
        return;
    };
    let k = &kernels[0];
    let mut results = Vec::new();
    // dkms-rs building as nobody (framework.conf's build_user) signs and says the same.
    for side in ["dkms-rs", "dkms 3.2.2", "dkms-rs as nobody"] {
        let s = scratch(std::slice::from_ref(k), true);
        if side == "dkms-rs as nobody" {
            use std::os::unix::fs::PermissionsExt;
            let perms = std::fs::Permissions::from_mode(0o755);
            std::fs::set_permissions(s.dir.path(), perms).unwrap();
            let conf = s.etc_dir.join("framework.conf");
            let text = std::fs::read_to_string(&conf).unwrap();
            std::fs::write(&conf, format!("{text}build_user=nobody\n")).unwrap();
        }
        s.write_module("signed", "1.0", "", TRIVIAL);
        let dkms = |args: &[&str]| match side {
            "dkms-rs" | "dkms-rs as nobody" => s.dkms_rs(args),
            _ => s.dkms_3_2_2(&reference, args),
        };
        ok(&mut dkms(&["add", "signed/1.0"]));
        let (code, out, err) = run(&mut dkms(&["build", "signed/1.0", "-k", k]));
        assert_eq!(code, 0, "{side} build:\n{out}{err}");
        let (key, cert) = key_and_cert(&s, k);
        assert_eq!(mode(&key), 0o600, "{side}: mode of {}", key.display());
        assert_mok_cert(&cert);
        assert_signed_with(&built_module(&s, "signed", k), &cert, k);
        results.push((signing_lines(&out, &s), signing_lines(&err, &s)));
    }
    assert_eq!(
        results[0], results[1],
        "dkms-rs (left) vs dkms 3.2.2 (right)"
    );
    assert_eq!(
        results[0], results[2],
        "as root (left) vs as nobody (right)"
    );
    assert!(
        results[0]
            .0
            .iter()
            .any(|l| l.starts_with("Signing module ")),
        "{:?}",
        results[0]
    );
}

/// A build for two kernels at once (two jobs): each kernel gets its own pair, made once, and
/// its module is signed with that one.
#[test]
fn each_kernel_is_signed_with_its_own_expanded_pair() {
    let Some(kernels) = support::require_kernels(2) else {
        return;
    };
    if !tools() {
        return;
    }
    let s = scratch(&kernels, true);
    s.add_module("signed", "1.0", "", TRIVIAL);
    let mut args = vec!["build", "signed/1.0", "-j", "2"];
    for k in &kernels {
        args.extend(["-k", k.as_str()]);
    }
    let out = ok(&mut s.dkms_rs(&args));
    let lines = signing_lines(&out, &s);
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("Certificate or key are missing"))
            .count(),
        kernels.len(),
        "{out}"
    );
    for k in &kernels {
        let (key, cert) = key_and_cert(&s, k);
        assert_eq!(mode(&key), 0o600);
        assert!(
            lines.contains(&format!("Signing key: [DIR]/keys/{k}/mok.key")),
            "{out}"
        );
        assert_signed_with(&built_module(&s, "signed", k), &cert, k);
    }
    let (_, cert0) = key_and_cert(&s, &kernels[0]);
    let (_, cert1) = key_and_cert(&s, &kernels[1]);
    assert_ne!(x509(&cert0, &["-serial"]), x509(&cert1, &["-serial"]));
}

/// `generate_mok` as dkms 3.2.2: a missing pair made (exit 0), an existing one kept byte for
/// byte, a key directory that is not there (exit 1), no openssl on PATH (exit 1); the same
/// lines, on the same stream, for both. dkms-rs never leaves half a pair or a temporary file.
#[test]
fn generate_mok_as_dkms_3_2_2() {
    let (Some(reference), true) = (oracle(), tools()) else {
        return;
    };
    let k = support::FAKE_KERNEL;
    let no_openssl = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir("/usr/bin").unwrap().flatten() {
        if entry.file_name() != "openssl" {
            let _ =
                std::os::unix::fs::symlink(entry.path(), no_openssl.path().join(entry.file_name()));
        }
    }
    let path_without_openssl = format!("{}:/usr/sbin:/sbin", no_openssl.path().display());
    let mut seen = Vec::new();
    for side in ["dkms-rs", "dkms 3.2.2"] {
        let s = scratch(&[], true);
        let keys = s.dir.path().join("keys");
        let dkms = |path: Option<&str>| {
            let mut cmd = match side {
                "dkms-rs" => s.dkms_rs(&["generate_mok", "-k", k]),
                _ => s.dkms_3_2_2(&reference, &["generate_mok", "-k", k]),
            };
            if let Some(path) = path {
                cmd.env("PATH", path);
            }
            run(&mut cmd)
        };
        let mut steps = Vec::new();
        let mut step = |what: &str, (code, out, err): (i32, String, String)| {
            let norm = |t: &str| t.replace(&s.dir.path().display().to_string(), "[DIR]");
            steps.push((what.to_owned(), code, norm(&out), norm(&err)));
        };
        // No key directory for this kernel.
        step("no key dir", dkms(None));
        assert!(!keys.join(k).exists(), "{side}");
        std::fs::create_dir_all(keys.join(k)).unwrap();
        step("no openssl", dkms(Some(&path_without_openssl)));
        assert_eq!(
            support::scratch::listing(&keys.join(k)),
            Vec::<String>::new(),
            "{side}"
        );
        step("missing pair", dkms(None));
        let (key, cert) = (keys.join(k).join("mok.key"), keys.join(k).join("mok.pub"));
        assert_eq!(mode(&key), 0o600, "{side}");
        assert_mok_cert(&cert);
        let before = (std::fs::read(&key).unwrap(), std::fs::read(&cert).unwrap());
        step("existing pair", dkms(None));
        assert_eq!(
            (std::fs::read(&key).unwrap(), std::fs::read(&cert).unwrap()),
            before,
            "{side}: the pair was replaced"
        );
        assert_eq!(
            support::scratch::listing(&keys.join(k)),
            vec!["mok.key".to_owned(), "mok.pub".to_owned()],
            "{side}"
        );
        // Half a pair (the certificate gone): both are made anew.
        std::fs::remove_file(&cert).unwrap();
        step("no certificate", dkms(None));
        assert_ne!(std::fs::read(&key).unwrap(), before.0, "{side}: key kept");
        assert_mok_cert(&cert);
        seen.push(steps);
    }
    for (ours, theirs) in seen[0].iter().zip(&seen[1]) {
        assert_eq!(ours, theirs, "dkms-rs (left) vs dkms 3.2.2 (right)");
    }
    let codes: Vec<i32> = seen[0].iter().map(|s| s.1).collect();
    assert_eq!(codes, [1, 1, 0, 0, 0]);
}

/// No signing, and dkms 3.2.2's line saying why, when the kernel has no config, is built
/// without module signing, or the sign tool is missing; the build itself goes on as dkms's.
#[test]
fn unsigned_builds_say_why_as_dkms_3_2_2() {
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let (Some(reference), true) = (oracle(), tools()) else {
        return;
    };
    let k = &kernels[0];
    // Fake headers (`include/` is all both look for) with no .config / one without signing.
    let fake = tempfile::tempdir().unwrap();
    let no_config = fake.path().join("no-config");
    let unsigned = fake.path().join("unsigned");
    for dir in [&no_config, &unsigned] {
        std::fs::create_dir_all(dir.join("include")).unwrap();
    }
    std::fs::write(
        unsigned.join(".config"),
        "CONFIG_MODULES=y\n# CONFIG_MODULE_SIG is not set\n",
    )
    .unwrap();
    let cases: [(&str, Vec<&str>, bool); 3] = [
        (
            "no config",
            vec!["--kernelsourcedir", no_config.to_str().unwrap()],
            true,
        ),
        (
            "no signing",
            vec!["--kernelsourcedir", unsigned.to_str().unwrap()],
            true,
        ),
        ("no sign-file", vec![], false),
    ];
    for (what, extra, sign_file) in cases {
        let mut seen = Vec::new();
        for side in ["dkms-rs", "dkms 3.2.2"] {
            let s = scratch(std::slice::from_ref(k), sign_file);
            s.write_module("signed", "1.0", "", TRIVIAL);
            let dkms = |args: &[&str]| match side {
                "dkms-rs" => s.dkms_rs(args),
                _ => s.dkms_3_2_2(&reference, args),
            };
            ok(&mut dkms(&["add", "signed/1.0"]));
            let mut args = vec!["build", "signed/1.0", "-k", k];
            args.extend(&extra);
            let (code, out, err) = run(&mut dkms(&args));
            let (key, cert) = key_and_cert(&s, k);
            assert!(
                !key.exists() && !cert.exists(),
                "{what}, {side}: a pair was made"
            );
            if code == 0 {
                let ko = built_module(&s, "signed", k);
                assert_eq!(modinfo(&ko, "signer"), "", "{what}, {side}: signed");
            }
            let lines = signing_lines(&out, &s);
            let fake_dir = fake.path().display().to_string();
            let lines: Vec<String> = lines
                .iter()
                .map(|l| l.replace(&fake_dir, "[FAKE]"))
                .collect();
            seen.push((code, lines, signing_lines(&err, &s)));
        }
        assert_eq!(
            seen[0], seen[1],
            "{what}: dkms-rs (left) vs dkms 3.2.2 (right)"
        );
        assert!(!seen[0].1.is_empty(), "{what}: no line says why");
    }
}

/// A key that is not a key: the build still succeeds, unsigned, with dkms's warning and
/// sign-file's own complaint on stderr, as dkms 3.2.2; the key file is left as it was.
#[test]
fn a_garbage_key_warns_and_leaves_the_module_unsigned_as_dkms_3_2_2() {
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let (Some(reference), true) = (oracle(), tools()) else {
        return;
    };
    let k = &kernels[0];
    let mut seen = Vec::new();
    for side in ["dkms-rs", "dkms 3.2.2"] {
        let s = scratch(std::slice::from_ref(k), true);
        let (key, cert) = key_and_cert(&s, k);
        // A real certificate (made here by openssl, not by the tools under test), a junk key.
        let pair = tempfile::tempdir().unwrap();
        ok(support::command("openssl")
            .args([
                "req", "-new", "-x509", "-nodes", "-days", "1", "-subj", "/CN=test",
            ])
            .args(["-newkey", "rsa:2048", "-outform", "DER", "-keyout"])
            .arg(pair.path().join("k"))
            .arg("-out")
            .arg(&cert));
        std::fs::write(&key, "this is not a key\n").unwrap();
        s.write_module("signed", "1.0", "", TRIVIAL);
        let dkms = |args: &[&str]| match side {
            "dkms-rs" => s.dkms_rs(args),
            _ => s.dkms_3_2_2(&reference, args),
        };
        ok(&mut dkms(&["add", "signed/1.0"]));
        let (code, out, err) = run(&mut dkms(&["build", "signed/1.0", "-k", k]));
        assert_eq!(
            std::fs::read_to_string(&key).unwrap(),
            "this is not a key\n"
        );
        assert_eq!(code, 0, "{side}:\n{out}{err}");
        let ko = built_module(&s, "signed", k);
        assert_eq!(modinfo(&ko, "signer"), "", "{side}: signed");
        let dir = s.dir.path().display().to_string();
        // The warning, then sign-file's output (its lines up to the next dkms line).
        let warning: Vec<String> = err
            .lines()
            .skip_while(|l| !l.starts_with("Warning: Failed to sign module"))
            .map(|l| l.replace(&dir, "[DIR]"))
            .collect();
        assert!(
            warning.len() >= 2,
            "{side}: no warning and sign-file output:\n{err}"
        );
        seen.push((code, signing_lines(&out, &s), warning));
    }
    assert_eq!(seen[0], seen[1], "dkms-rs (left) vs dkms 3.2.2 (right)");
}

/// A pair that cannot be made whole (the certificate's directory is not there): both say
/// dkms 3.2.2's line naming the certificate and exit 1; dkms 3.2.2's openssl has written the
/// key before failing on the certificate and leaves it, dkms-rs writes neither half.
#[test]
fn a_pair_that_cannot_be_made_whole_leaves_nothing() {
    let (Some(reference), true) = (oracle(), tools()) else {
        return;
    };
    let mut seen = Vec::new();
    for side in ["dkms-rs", "dkms 3.2.2"] {
        let s = Scratch::new(&[]);
        let d = s.dir.path().display().to_string();
        let key_dir = s.dir.path().join("keys");
        std::fs::create_dir(&key_dir).unwrap();
        std::fs::write(
            s.etc_dir.join("framework.conf"),
            format!("mok_signing_key={d}/keys/mok.key\nmok_certificate={d}/no-dir/mok.pub\n"),
        )
        .unwrap();
        let args = ["generate_mok", "-k", support::FAKE_KERNEL];
        let (code, out, err) = run(&mut match side {
            "dkms-rs" => s.dkms_rs(&args),
            _ => s.dkms_3_2_2(&reference, &args),
        });
        assert_eq!(code, 1, "{side}:\n{out}{err}");
        let last = out.lines().last().unwrap_or("").replace(&d, "[DIR]");
        seen.push((support::scratch::listing(&key_dir), last));
    }
    assert_eq!(seen[0].1, seen[1].1, "dkms-rs (left) vs dkms 3.2.2 (right)");
    assert!(
        seen[1]
            .1
            .starts_with("Certificate file [DIR]/no-dir/mok.pub not found"),
        "{:?}",
        seen[1]
    );
    assert_eq!(seen[0].0, Vec::<String>::new(), "dkms-rs left half a pair");
    assert_eq!(
        seen[1].0,
        vec!["mok.key".to_owned()],
        "dkms 3.2.2's openssl"
    );
}
