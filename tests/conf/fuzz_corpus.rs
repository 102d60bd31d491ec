//! Every checked-in input of the dkms.conf fuzz targets (fuzz/corpus/native_reader,
//! fuzz/corpus/reader_vs_bash) through the checks the targets make (fuzz/src/conf.rs), so CI
//! runs them without nightly or cargo-fuzz.

use crate::support;

#[path = "../../fuzz/src/conf.rs"]
mod checks;

#[test]
fn the_native_reader_corpus_replays_without_a_panic() {
    let failed: Vec<_> = support::fuzz_corpus("native_reader")
        .iter()
        .filter(|(_, data)| std::panic::catch_unwind(|| checks::native_reader(data)).is_err())
        .map(|(path, _)| path.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "failed (see the panics above): {failed:?}"
    );
}

#[test]
fn the_reader_vs_bash_corpus_replays_with_the_readers_agreeing() {
    if !support::require_tool("bash") {
        return;
    }
    let failed: Vec<_> = support::fuzz_corpus("reader_vs_bash")
        .iter()
        .filter(|(_, data)| std::panic::catch_unwind(|| checks::reader_vs_bash(data)).is_err())
        .map(|(path, _)| path.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "failed (see the panics above): {failed:?}"
    );
}
