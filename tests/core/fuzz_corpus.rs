//! Every checked-in input of the tarball fuzz target (fuzz/corpus/tarball_extract) through
//! the checks it makes (fuzz/src/tarball.rs): extracted and merged without a panic, nothing
//! written outside the directories given, no symlink leading out of them.

use crate::support;

#[path = "../../fuzz/src/tarball.rs"]
mod checks;

#[test]
fn the_tarball_corpus_replays_staying_inside() {
    let failed: Vec<_> = support::fuzz_corpus("tarball_extract")
        .iter()
        .filter(|(_, data)| {
            std::panic::catch_unwind(|| checks::extract_stays_inside(data)).is_err()
        })
        .map(|(path, _)| path.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "failed (see the panics above): {failed:?}"
    );
}
