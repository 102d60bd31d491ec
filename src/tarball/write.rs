//! Writing a dkms tarball: GNU tar through the `deb` stream writer, compressed by name,
//! appearing by rename.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::deb::tar::TarWriter;
use crate::deb::{Compression, CompressionKind, Compressor, DataEntry, DataTree, FileContent};

use super::TarballError;
use crate::atomic::PendingFile;

/// The compression `tar -a` picks from the file name (gzip for `.tar.gz`/`.tgz`, xz, zstd,
/// none for `.tar`); gzip for anything else, as dkms's names all end in `.tar.gz`.
fn compression_for(path: &Path) -> Compression {
    let name = path.to_string_lossy();
    let kind = if name.ends_with(".tar.xz") || name.ends_with(".txz") {
        CompressionKind::Xz
    } else if name.ends_with(".tar.zst") || name.ends_with(".tzst") {
        CompressionKind::Zstd
    } else if name.ends_with(".tar") {
        CompressionKind::None
    } else {
        CompressionKind::Gzip
    };
    Compression {
        kind,
        level: None,
        threads: 0,
    }
}

/// Write `tree` to `out` (temp file next to it, then rename), every entry with `mtime`.
pub fn write(tree: &DataTree, out: &Path, mtime: u64) -> Result<(), TarballError> {
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let werr = |source| TarballError::Write {
        path: out.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(|source| TarballError::Write {
        path: dir.clone(),
        source,
    })?;
    let temp = PendingFile::create(out, ".part").map_err(|source| TarballError::Write {
        path: dir.clone(),
        source,
    })?;
    let compressor =
        Compressor::new(BufWriter::new(temp.file()), &compression_for(out), None).map_err(werr)?;
    let mut tar = TarWriter::new(compressor);
    let mut links = Vec::new();
    for path in tree.paths() {
        let Some(entry) = tree.get(path) else {
            continue;
        };
        let name = format!("./{path}");
        match entry {
            DataEntry::Dir if path.is_empty() => tar.dir("./", 0o755, mtime).map_err(werr)?,
            DataEntry::Dir => tar.dir(&format!("{name}/"), 0o755, mtime).map_err(werr)?,
            DataEntry::File {
                content,
                executable,
            } => {
                let mode = if *executable { 0o755 } else { 0o644 };
                match content {
                    FileContent::Bytes(bytes) => {
                        tar.file_bytes(&name, mode, bytes, mtime).map_err(werr)?
                    }
                    FileContent::Disk(source) => {
                        copy_file(&mut tar, &name, mode, source, mtime, out)?
                    }
                }
            }
            // After their targets, as dpkg-deb orders them.
            DataEntry::Symlink { target } => links.push((name, target.clone())),
        }
    }
    for (name, target) in links {
        tar.symlink(&name, &target, mtime).map_err(werr)?;
    }
    let compressor = tar.finish().map_err(werr)?;
    let buf = compressor.finish().map_err(werr)?;
    buf.into_inner().map_err(|e| werr(e.into_error()))?;
    temp.commit().map_err(werr)?;
    Ok(())
}

/// One file from disk into the tar, streamed; a file that changes size meanwhile is an error.
fn copy_file<W: Write>(
    tar: &mut TarWriter<W>,
    name: &str,
    mode: u32,
    source: &Path,
    mtime: u64,
    out: &Path,
) -> Result<(), TarballError> {
    let rerr = |e| TarballError::Read {
        path: source.to_path_buf(),
        source: e,
    };
    let werr = |e| TarballError::Write {
        path: out.to_path_buf(),
        source: e,
    };
    let mut file = File::open(source).map_err(rerr)?;
    let size = file.metadata().map_err(rerr)?.len();
    tar.file_header(name, mode, size, mtime).map_err(werr)?;
    let mut left = size;
    let mut buf = vec![0u8; 64 << 10];
    while left > 0 {
        let n = file.read(&mut buf).map_err(rerr)?;
        if n == 0 {
            break;
        }
        let n = n.min(usize::try_from(left).unwrap_or(usize::MAX));
        tar.content(&buf[..n]).map_err(werr)?;
        left -= n as u64;
    }
    if left != 0 || file.read(&mut buf).map_err(rerr)? != 0 {
        return Err(rerr(io::Error::other(
            "the file changed size while it was archived",
        )));
    }
    tar.end_content().map_err(werr)
}
