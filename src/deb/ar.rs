//! The outer ar archive: `debian-binary`, `control.tar.*`, `data.tar.*`, with the header
//! fields dpkg-deb writes (mtime of the build, uid/gid 0, mode 100644).

use std::fs::File;
use std::io::{self, Seek, SeekFrom};

/// deb(5): the format version member, always first.
const DEBIAN_BINARY: &[u8] = b"2.0\n";

/// Writes the ar into `out`, copying the data member from `data` (read from its start).
pub fn write_ar(
    out: &File,
    mtime: u64,
    control_tar: &[u8],
    mut data: &File,
    ext: &str,
) -> io::Result<()> {
    let mut builder = ::ar::Builder::new(out);
    let header = |name: String, size: u64| {
        let mut h = ::ar::Header::new(name.into_bytes(), size);
        h.set_mtime(mtime);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mode(0o100644);
        h
    };
    builder.append(
        &header("debian-binary".into(), DEBIAN_BINARY.len() as u64),
        DEBIAN_BINARY,
    )?;
    builder.append(
        &header(format!("control.tar{ext}"), control_tar.len() as u64),
        control_tar,
    )?;
    let data_len = data.metadata()?.len();
    data.seek(SeekFrom::Start(0))?;
    // File to file: std's io::copy uses copy_file_range, the bytes never enter user space.
    builder.append(&header(format!("data.tar{ext}"), data_len), data)?;
    out.sync_data()
}
