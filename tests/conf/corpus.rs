//! Every dkms.conf of Debian's `-dkms` packages resolves exactly as dkms 3.0.10's own
//! `read_conf` resolves it, for a kernel with headers, one without, and a 32-bit flavour.

use crate::support;

use std::path::Path;

use dkms::conf::{self, Reader, ResolveContext, ShowFormat};

/// (kernel, arch): a kernel of this machine with real headers, one without headers on this
/// machine's arch, and a 32-bit flavour.
fn targets(with_headers: &str) -> [(String, String); 3] {
    [
        (with_headers.to_owned(), support::arch()),
        (support::FAKE_KERNEL.to_owned(), support::arch()),
        ("4.19.0-999-686-pae".to_owned(), "i686".to_owned()),
    ]
}

fn ours(path: &Path, ctx: &ResolveContext, reader: Reader) -> String {
    match conf::evaluate(path, ctx, reader) {
        Ok(res) => conf::show::render_facts(&res, ShowFormat::Kv),
        Err(e) => panic!("{reader:?} reader failed on {}: {e}", path.display()),
    }
}

#[test]
fn debian_dkms_packages_resolve_as_dkms_does() {
    if !support::require_tool("dkms") {
        return;
    }
    let Some(kernels) = support::require_kernels(1) else {
        return;
    };
    let kernels = targets(&kernels[0]);
    let Some(corpus) = support::dkms_conf_corpus() else {
        return;
    };
    assert!(corpus.len() >= 25, "too few dkms.conf files: {corpus:?}");
    let etc = tempfile::tempdir().expect("temp etc dir");
    let cwd = std::env::current_dir().expect("cwd");
    let mut failures = Vec::new();
    let mut native = 0;
    for (pkg, path) in &corpus {
        for (kernel, arch) in &kernels {
            let mut ctx = ResolveContext::new(kernel, arch);
            ctx.etc_dir = etc.path().to_path_buf();
            let want = support::dkms_oracle_show(path, kernel, arch, etc.path(), &cwd);
            for reader in [Reader::Auto, Reader::Bash] {
                let got = ours(path, &ctx, reader);
                if got != want {
                    failures.push(format!(
                        "{pkg} on {kernel}/{arch} via {reader:?}:\n--- dkms\n{want}--- dkms-rs\n{got}"
                    ));
                }
            }
            if conf::evaluate(path, &ctx, Reader::Native).is_ok() {
                native += 1;
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Most Debian files are declarative: the native reader must take them.
    assert!(
        native >= corpus.len() * kernels.len() / 2,
        "native reader took only {native}"
    );
}
