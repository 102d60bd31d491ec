//! The man pages under `man/` are the binaries' own `--generate man` output: a stale page fails.

use std::path::Path;
use std::process::Command;

/// Every binary of the package, from `src/bin/*.rs`.
fn binaries() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bin");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".rs"))
                .map(str::to_string)
        })
        .collect();
    names.sort();
    names
}

fn bin_path(name: &str) -> std::path::PathBuf {
    // CARGO_BIN_EXE_<name> is only known at compile time per name; the target dir is shared.
    assert_cmd::cargo::cargo_bin(name)
}

#[test]
fn man_pages_are_current() {
    let man = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let bins = binaries();
    assert!(!bins.is_empty());
    for bin in bins {
        let out = Command::new(bin_path(&bin))
            .args(["--generate", "man"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{bin} --generate man failed");
        let page = man.join(format!("{bin}.1"));
        let committed = std::fs::read(&page).unwrap_or_default();
        assert!(
            committed == out.stdout,
            "{} is stale: run `cargo run -q --bin {bin} -- --generate man > man/{bin}.1`",
            page.display()
        );
    }
}

#[test]
fn help_teaches_with_examples() {
    for bin in binaries() {
        let out = Command::new(bin_path(&bin)).arg("--help").output().unwrap();
        assert!(out.status.success(), "{bin} --help failed");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Usage:"), "{bin}: {text}");
        assert!(
            text.contains("Example"),
            "{bin} --help has no examples: {text}"
        );
    }
}
