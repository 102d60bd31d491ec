//! control.tar: `control`, `md5sums` and the maintainer scripts, sorted by name as dpkg-deb
//! archives its `DEBIAN/` directory, modes as its `--mode u+rw,go=rX`.

use std::io::{self, Write};

use super::compress::Compressor;
use super::data::kib;
use super::tar::TarWriter;
use super::{ControlMember, DebBuild, DebError};

/// Names [`write_deb`](super::write_deb) writes itself, or that are not a plain file name.
pub fn check_member_names(scripts: &[ControlMember]) -> Result<(), DebError> {
    let mut seen = std::collections::BTreeSet::new();
    for s in scripts {
        let bad = s.name.is_empty()
            || s.name.contains('/')
            || s.name == "."
            || s.name == ".."
            || s.name == "control"
            || s.name == "md5sums"
            || !seen.insert(s.name.as_str());
        if bad {
            return Err(DebError::BadControlMember {
                name: s.name.clone(),
            });
        }
    }
    Ok(())
}

/// What the `DEBIAN/` directory adds to Installed-Size when dpkg-gencontrol runs (in a
/// debhelper build it holds the maintainer scripts, not yet `control` nor `md5sums`).
pub fn installed_kib(scripts: &[ControlMember]) -> u64 {
    1 + scripts
        .iter()
        .map(|s| kib(s.bytes.len() as u64))
        .sum::<u64>()
}

/// The compressed control.tar, in memory (it is small).
pub fn control_tar(build: &DebBuild, control: &[u8], md5sums: &[u8]) -> io::Result<Vec<u8>> {
    let mut members: Vec<(&str, &[u8], bool)> = vec![("control", control, false)];
    // dh_md5sums deletes an empty md5sums.
    if !md5sums.is_empty() {
        members.push(("md5sums", md5sums, false));
    }
    for s in &build.maintainer_scripts {
        members.push((s.name.as_str(), &s.bytes, s.executable));
    }
    members.sort_by(|a, b| a.0.cmp(b.0));

    let mut tar = TarWriter::new(Vec::new());
    tar.dir("./", 0o755, build.mtime)?;
    for (name, bytes, executable) in members {
        let mode = if executable { 0o755 } else { 0o644 };
        tar.file_bytes(&format!("./{name}"), mode, bytes, build.mtime)?;
    }
    let tar = tar.finish()?;
    let mut compressor = Compressor::new(Vec::new(), &build.compression, Some(tar.len() as u64))?;
    compressor.write_all(&tar)?;
    compressor.finish()
}
