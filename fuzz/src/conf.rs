//! dkms.conf: the native reader never panics, whatever the bytes; wherever it answers, its
//! answer is what dkms's own prelude in bash gives.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use dkms::conf::{ConfFile, Reader, ResolveContext, ShowFormat, show};

/// A kernel no machine has (ABI 900 and more are fake), on x86_64: the readers only see names.
const KERNEL: &str = "6.1.0-999-amd64";
const ARCH: &str = "x86_64";

/// One directory per thread (the replay tests run in parallel), holding `dkms.conf` and
/// naming an `/etc/dkms` replacement that does not exist.
struct Scratch {
    dir: tempfile::TempDir,
    conf: PathBuf,
}

thread_local! {
    static SCRATCH: RefCell<Option<Scratch>> = const { RefCell::new(None) };
}

/// `data` written as `<scratch>/dkms.conf` and read back as dkms-rs reads a dkms.conf, then
/// `f(file, etc_dir)`.
fn with_conf(data: &[u8], f: impl FnOnce(&ConfFile, &Path)) {
    SCRATCH.with_borrow_mut(|scratch| {
        let scratch = scratch.get_or_insert_with(|| {
            let dir = tempfile::tempdir().expect("temp dir");
            let conf = dir.path().join("dkms.conf");
            Scratch { dir, conf }
        });
        std::fs::write(&scratch.conf, data).expect("write dkms.conf");
        // Only refusals (none at the sizes fuzzed) are not read: nothing to check then.
        if let Ok(file) = ConfFile::read(&scratch.conf) {
            f(&file, &scratch.dir.path().join("no-etc"));
        }
    });
}

/// How dkms reads a file for a kernel: `dkms add` (module from the file itself), and
/// `dkms build -m m -v 1`.
fn contexts(etc: &Path) -> [ResolveContext; 2] {
    let mut ctx = ResolveContext::new(KERNEL, ARCH);
    ctx.etc_dir = etc.to_path_buf();
    [ctx.clone(), ctx.with_module("m", "1")]
}

/// The native reader on arbitrary bytes: an answer or a hand-over, never a panic, and an
/// answer can be shown in every format.
pub fn native_reader(data: &[u8]) {
    with_conf(data, |file, etc| {
        for ctx in contexts(etc) {
            if let Ok(res) = file.evaluate(&ctx, Reader::Native) {
                for format in ShowFormat::ALL {
                    show::render(&res, format);
                }
            }
        }
    });
}

/// Where the native reader answers, bash (dkms's safe_source prelude) gives the same facts:
/// panics, naming the input, when not.
pub fn reader_vs_bash(data: &[u8]) {
    with_conf(data, |file, etc| {
        let [ctx, _] = contexts(etc);
        let Ok(native) = file.evaluate(&ctx, Reader::Native) else {
            return;
        };
        let native = show::render_facts(&native, ShowFormat::Kv);
        let bash = file
            .evaluate(&ctx, Reader::Bash)
            .map(|res| show::render_facts(&res, ShowFormat::Kv))
            .map_err(|e| e.to_string());
        assert_eq!(
            Ok(&native),
            bash.as_ref(),
            "the native reader and bash disagree on {:?}",
            String::from_utf8_lossy(data)
        );
    });
}
