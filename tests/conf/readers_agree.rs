//! Property: on generated declarative dkms.conf files the native reader and the bash path
//! (dkms's own safe_source in bash) resolve to the same facts; when the native reader is not
//! sure it must hand over rather than answer.

use crate::support;

use std::cell::Cell;

use dkms::conf::{self, Reader, ResolveContext, ShowFormat};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};

const NAMES: &[&str] = &[
    "PACKAGE_NAME",
    "PACKAGE_VERSION",
    "BUILT_MODULE_NAME",
    "BUILT_MODULE_LOCATION",
    "DEST_MODULE_NAME",
    "DEST_MODULE_LOCATION",
    "MAKE",
    "MAKE_MATCH",
    "CLEAN",
    "STRIP",
    "PATCH",
    "PATCH_MATCH",
    "AUTOINSTALL",
    "BUILD_EXCLUSIVE_KERNEL",
    "BUILD_EXCLUSIVE_ARCH",
    "PRE_BUILD",
    "OBSOLETE_BY",
    "BUILD_DEPENDS",
    "strip",
    "H",
];

/// A piece inside double quotes: text, blanks, variables dkms exposes, escapes.
fn dq_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9./_-]{1,6}",
        Just(" ".to_owned()),
        Just("  \t".to_owned()),
        Just("'q'".to_owned()),
        Just("\\\"".to_owned()),
        Just("\\$H".to_owned()),
        Just("\\\\".to_owned()),
        Just("*".to_owned()),
        Just("^6\\.".to_owned()),
        prop::sample::select(vec![
            "$kernelver",
            "${arch}",
            "$PACKAGE_NAME",
            "${PACKAGE_VERSION}",
            "$dkms_tree",
            "$kernel_source_dir",
            "$module",
            "${module_version}",
            "$H",
            "$MAKE",
            "$ ",
        ])
        .prop_map(str::to_owned),
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::collection::vec(dq_piece(), 0..5).prop_map(|v| format!("\"{}\"", v.concat())),
        1 => "[a-z0-9./_-]{0,8}",
        1 => "[a-z ]{0,6}".prop_map(|s| format!("'{s}'")),
        1 => prop::sample::select(vec!["/extra", "/updates/x", "/kernel", "/opt", "no", "Yes", "x.ko"])
            .prop_map(str::to_owned),
    ]
}

fn line() -> impl Strategy<Value = String> {
    (
        prop::sample::select(NAMES),
        prop::option::of(0u8..4),
        value(),
        prop::sample::select(vec!["\n", "\n", "; ", " # note\n", "\r\n"]),
    )
        .prop_map(|(name, index, value, end)| match index {
            Some(i) => format!("{name}[{i}]={value}{end}"),
            None => format!("{name}={value}{end}"),
        })
}

fn file() -> impl Strategy<Value = String> {
    prop::collection::vec(line(), 0..12).prop_map(|lines| {
        format!(
            "PACKAGE_NAME=p\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME[0]=m\nDEST_MODULE_LOCATION[0]=/extra\n{}",
            lines.concat()
        )
    })
}

#[test]
fn native_and_bash_agree_on_declarative_files() {
    if !support::require_tool("bash") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("dkms.conf");
    let mut ctx = ResolveContext::new(support::FAKE_KERNEL, &support::arch());
    ctx.etc_dir = dir.path().join("no-etc");
    let native_taken = Cell::new(0u32);
    let cases = 192;
    let mut config = Config {
        cases,
        ..Config::default()
    };
    // CI runs the same cases every time; PROPTEST_RNG_SEED=<n> explores others.
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(0x646b_6d73);
    }
    let mut runner = TestRunner::new(config);
    let result = runner.run(&file(), |text| {
        std::fs::write(&path, &text).expect("write dkms.conf");
        let bash = conf::evaluate(&path, &ctx, Reader::Bash)
            .map(|r| conf::show::render_facts(&r, ShowFormat::Kv))
            .map_err(|e| e.to_string());
        if let Ok(native) = conf::evaluate(&path, &ctx, Reader::Native) {
            native_taken.set(native_taken.get() + 1);
            prop_assert_eq!(
                Ok(conf::show::render_facts(&native, ShowFormat::Kv)),
                bash,
                "file:\n{}",
                text
            );
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // The generator writes what the native reader must take on its own often enough for the
    // comparison to mean something (about 44% over seeds 1..12, never under a third).
    assert!(
        native_taken.get() >= cases / 4,
        "native reader took only {} of {cases} files",
        native_taken.get()
    );
}
