//! data.tar: the package's files, streamed once from disk into the compressor, with the
//! md5sums and the Installed-Size gathered on the way.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use md5::{Digest, Md5};

use super::compress::Compressor;
use super::tar::{BLOCK, RECORD, TarWriter};
use super::{DataEntry, DebBuild, DebError, FileContent};

/// Read and write buffer size: large enough that syscalls do not dominate.
const BUF: usize = 256 << 10;

/// What the data.tar pass learnt about the tree.
pub struct DataSummary {
    /// The `md5sums` control file (dh_md5sums' format and order).
    pub md5sums: Vec<u8>,
    /// dpkg-gencontrol's count for the data tree alone, root directory included.
    pub installed_kib: u64,
    /// Size of the uncompressed data.tar.
    pub tar_size: u64,
}

/// Size in dpkg-gencontrol's units: files and symlinks ceil(bytes / 1024).
pub fn kib(bytes: u64) -> u64 {
    bytes.div_ceil(1024)
}

/// Writes the compressed data.tar into `out` (a temp file at `out_path`).
pub fn write_data_tar(
    build: &DebBuild,
    out: &File,
    out_path: &Path,
) -> Result<DataSummary, DebError> {
    let write_err = |source: io::Error| DebError::Write {
        path: out_path.to_path_buf(),
        source,
    };
    let size_hint = if build.compression.wants_size() {
        tar_size(build)
    } else {
        None
    };
    let compressor = Compressor::new(
        BufWriter::with_capacity(BUF, out),
        &build.compression,
        size_hint,
    )
    .map_err(write_err)?;
    let mut tar = TarWriter::new(compressor);
    let mtime = build.mtime;
    let mut md5_lines: Vec<(&str, String)> = Vec::new();
    let mut installed_kib = 0;
    let mut buf = vec![0u8; BUF];

    for (path, entry) in build.data.archive_order() {
        match entry {
            DataEntry::Dir => {
                installed_kib += 1;
                let name = if path.is_empty() {
                    "./".to_string()
                } else {
                    format!("./{path}/")
                };
                tar.dir(&name, 0o755, mtime).map_err(write_err)?;
            }
            DataEntry::Symlink { target } => {
                installed_kib += kib(target.len() as u64);
                tar.symlink(&format!("./{path}"), target, mtime)
                    .map_err(write_err)?;
            }
            DataEntry::File {
                content,
                executable,
            } => {
                let mode = if *executable { 0o755 } else { 0o644 };
                let name = format!("./{path}");
                let digest = match content {
                    FileContent::Bytes(bytes) => {
                        installed_kib += kib(bytes.len() as u64);
                        tar.file_bytes(&name, mode, bytes, mtime)
                            .map_err(write_err)?;
                        Md5::digest(bytes)
                    }
                    FileContent::Disk(source) => {
                        let (size, digest) =
                            copy_file(&mut tar, &name, mode, mtime, source, &mut buf, out_path)?;
                        installed_kib += kib(size);
                        digest
                    }
                };
                md5_lines.push((path, hex(&digest)));
            }
        }
    }
    let compressor = tar.finish().map_err(write_err)?;
    let tar_size = compressor.uncompressed();
    let writer = compressor.finish().map_err(write_err)?;
    // A temp file read back at once: no fsync (the final .deb gets one).
    writer.into_inner().map_err(|e| write_err(e.into_error()))?;

    // dh_md5sums: `find -type f | LC_ALL=C sort | xargs md5sum`, i.e. sorted by the whole path.
    md5_lines.sort_by(|a, b| a.0.cmp(b.0));
    let mut md5sums = Vec::new();
    for (path, digest) in md5_lines {
        md5sums.extend_from_slice(format!("{digest}  {path}\n").as_bytes());
    }
    Ok(DataSummary {
        md5sums,
        installed_kib,
        tar_size,
    })
}

/// The exact size of the data.tar to come, from the sizes of the files on disk now; `None`
/// if one cannot be examined (the archive pass will report it).
fn tar_size(build: &DebBuild) -> Option<u64> {
    let padded = |n: u64| n.div_ceil(BLOCK as u64) * BLOCK as u64;
    // GNU tar's LongLink: a header and the NUL-terminated name, past 100 bytes.
    let long = |n: usize| {
        if n > 100 {
            BLOCK as u64 + padded(n as u64 + 1)
        } else {
            0
        }
    };
    let mut total = 0;
    for (path, entry) in &build.data.entries {
        let name_len = match entry {
            DataEntry::Dir if path.is_empty() => 2,
            DataEntry::Dir => path.len() + 3,
            _ => path.len() + 2,
        };
        total += BLOCK as u64 + long(name_len);
        total += match entry {
            DataEntry::Dir => 0,
            DataEntry::Symlink { target } => long(target.len()),
            DataEntry::File {
                content: FileContent::Bytes(bytes),
                ..
            } => padded(bytes.len() as u64),
            DataEntry::File {
                content: FileContent::Disk(source),
                ..
            } => padded(std::fs::metadata(source).ok()?.len()),
        };
    }
    Some((total + 2 * BLOCK as u64).div_ceil(RECORD) * RECORD)
}

/// Streams one file from disk into the tar; returns its size and md5.
fn copy_file<W: Write>(
    tar: &mut TarWriter<W>,
    name: &str,
    mode: u32,
    mtime: u64,
    source: &Path,
    buf: &mut [u8],
    out_path: &Path,
) -> Result<(u64, md5::digest::Output<Md5>), DebError> {
    let read_err = |e: io::Error| DebError::ReadSource {
        path: source.to_path_buf(),
        source: e,
    };
    let write_err = |e: io::Error| DebError::Write {
        path: out_path.to_path_buf(),
        source: e,
    };
    let mut file = File::open(source).map_err(read_err)?;
    let meta = file.metadata().map_err(read_err)?;
    if !meta.is_file() {
        return Err(DebError::NotAFile {
            path: source.to_path_buf(),
        });
    }
    let size = meta.len();
    tar.file_header(name, mode, size, mtime)
        .map_err(write_err)?;
    let mut md5 = Md5::new();
    let mut left = size;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = match file.read(&mut buf[..want]) {
            Ok(0) => {
                return Err(DebError::SourceChanged {
                    path: source.to_path_buf(),
                });
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_err(e)),
        };
        md5.update(&buf[..n]);
        tar.content(&buf[..n]).map_err(write_err)?;
        left -= n as u64;
    }
    // One more byte means the file grew after its size went into the header.
    match file.read(&mut buf[..1]) {
        Ok(0) => {}
        Ok(_) => {
            return Err(DebError::SourceChanged {
                path: source.to_path_buf(),
            });
        }
        Err(e) => return Err(read_err(e)),
    }
    tar.end_content().map_err(write_err)?;
    Ok((size, md5.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deb::{Compression, CompressionKind, DataTree};

    #[test]
    fn tar_size_is_known_before_writing() {
        let mut tree = DataTree::new();
        let long = format!("usr/src/{}/{}", "a".repeat(150), "b".repeat(150));
        tree.add_file_bytes(&long, vec![7; 3000], false);
        tree.add_symlink("usr/src/l", &"c".repeat(300));
        tree.add_dir("usr/share/doc/x");
        let build = DebBuild {
            data: &tree,
            maintainer_scripts: vec![],
            mtime: 0,
            compression: Compression {
                kind: CompressionKind::None,
                level: None,
                threads: 1,
            },
        };
        let tmp = tempfile::NamedTempFile::new().unwrap();
        let summary = write_data_tar(&build, tmp.as_file(), tmp.path()).unwrap();
        assert_eq!(tar_size(&build), Some(summary.tar_size));
    }
}
