//! Compression of the tar members: the kinds dpkg-deb knows, with dpkg-deb's default levels.
//!
//! xz always goes through liblzma's multi-threaded encoder with a block size fixed by the
//! level, never by the thread count: the blocks, hence the bytes, are the same for any
//! `threads`, including 1.

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

use flate2::write::GzEncoder;
use liblzma::stream::{Check, Filters, LzmaOptions, MtStreamBuilder, Stream};
use liblzma::write::XzEncoder;

/// The compressor of `control.tar` and `data.tar` (dpkg-deb's `-Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressionKind {
    Xz,
    Gzip,
    Zstd,
    None,
}

impl CompressionKind {
    /// Extension of the ar member name, e.g. `data.tar.xz`; empty for plain `data.tar`.
    pub fn extension(self) -> &'static str {
        match self {
            CompressionKind::Xz => ".xz",
            CompressionKind::Gzip => ".gz",
            CompressionKind::Zstd => ".zst",
            CompressionKind::None => "",
        }
    }

    /// dpkg-deb(1): "default is 9 for gzip, 6 for xz, 3 for zstd".
    pub fn default_level(self) -> u32 {
        match self {
            CompressionKind::Xz => 6,
            CompressionKind::Gzip => 9,
            CompressionKind::Zstd => 3,
            CompressionKind::None => 0,
        }
    }

    /// Highest level the compressor accepts.
    pub fn max_level(self) -> u32 {
        match self {
            CompressionKind::Xz | CompressionKind::Gzip => 9,
            CompressionKind::Zstd => 22,
            CompressionKind::None => 0,
        }
    }
}

/// An unknown `-Z` value.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("unknown compression `{0}` (expected xz, gzip, zstd or none)")]
pub struct UnknownCompression(pub String);

impl FromStr for CompressionKind {
    type Err = UnknownCompression;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "xz" => Ok(CompressionKind::Xz),
            "gzip" => Ok(CompressionKind::Gzip),
            "zstd" => Ok(CompressionKind::Zstd),
            "none" => Ok(CompressionKind::None),
            other => Err(UnknownCompression(other.to_string())),
        }
    }
}

impl fmt::Display for CompressionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CompressionKind::Xz => "xz",
            CompressionKind::Gzip => "gzip",
            CompressionKind::Zstd => "zstd",
            CompressionKind::None => "none",
        })
    }
}

/// Kind, level (`None`: dpkg-deb's default) and xz worker threads (0: all CPUs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compression {
    pub kind: CompressionKind,
    pub level: Option<u32>,
    pub threads: u32,
}

impl Default for Compression {
    fn default() -> Self {
        Compression {
            kind: CompressionKind::Xz,
            level: None,
            threads: 0,
        }
    }
}

impl Compression {
    /// The compressor actually used: dpkg-deb(1) maps gzip level 0 to none.
    pub fn effective_kind(&self) -> CompressionKind {
        match (self.kind, self.level) {
            (CompressionKind::Gzip, Some(0)) => CompressionKind::None,
            (kind, _) => kind,
        }
    }

    pub fn effective_level(&self) -> u32 {
        let kind = self.effective_kind();
        self.level
            .unwrap_or(kind.default_level())
            .min(kind.max_level())
    }

    /// Inputs below this size are worth announcing to [`Compressor::new`] (0: none are).
    pub fn size_hint_limit(&self) -> u64 {
        match self.effective_kind() {
            CompressionKind::Xz => xz_dict_size(self.effective_level()),
            _ => 0,
        }
    }

    fn worker_threads(&self) -> u32 {
        match self.threads {
            0 => std::thread::available_parallelism()
                .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
                .unwrap_or(1),
            n => n,
        }
    }
}

/// The xz block size for a preset: the preset's dictionary size (at least 1 MiB).
///
/// liblzma's default (3x the dictionary, 24 MiB at level 6, what dpkg-deb gets) splits a
/// 60 MB tar into 3 uneven blocks, so on 2 cores one worker idles for a third of the run,
/// and every worker holds a 24 MiB input buffer. Blocks of one dictionary keep both cores
/// busy and cost about 1.7% of output size on kernel headers (see bench/README.md); blocks
/// smaller than the dictionary lose more than that. Fixed by the level, never by `threads`.
pub fn xz_block_size(level: u32) -> u64 {
    xz_dict_size(level).max(1 << 20)
}

/// The dictionary of xz's preset `level` (xz(1), "Presets").
fn xz_dict_size(level: u32) -> u64 {
    match level {
        0 => 256 << 10,
        1 => 1 << 20,
        2 => 2 << 20,
        3 | 4 => 4 << 20,
        5 | 6 => 8 << 20,
        7 => 16 << 20,
        8 => 32 << 20,
        _ => 64 << 20,
    }
}

/// liblzma's smallest dictionary (LZMA_DICT_SIZE_MIN).
const XZ_DICT_MIN: u64 = 4096;

/// The multi-threaded xz encoder for `level`. An input known to be smaller than the preset's
/// dictionary gets a dictionary of its size, as xz(1) does for small files: every match is
/// still in reach, and a 9 KiB control.tar does not pay for zeroing 17 MiB of hash table.
fn xz_encoder(level: u32, threads: u32, size_hint: Option<u64>) -> io::Result<Stream> {
    let mut options = LzmaOptions::new_preset(level).map_err(io::Error::other)?;
    if let Some(size) = size_hint.filter(|&n| n < xz_dict_size(level)) {
        options.dict_size(u32::try_from(size.max(XZ_DICT_MIN)).unwrap_or(u32::MAX));
    }
    let mut filters = Filters::new();
    filters.lzma2(&options);
    MtStreamBuilder::new()
        .filters(filters)
        .threads(threads)
        .block_size(xz_block_size(level))
        .check(Check::Crc64)
        .encoder()
        .map_err(io::Error::other)
}

/// A compressing writer over `W` that counts the uncompressed bytes it was given.
pub struct Compressor<W: Write> {
    inner: Inner<W>,
    uncompressed: u64,
}

enum Inner<W: Write> {
    Xz(XzEncoder<W>),
    Gzip(GzEncoder<W>),
    Zstd(zstd::Encoder<'static, W>),
    None(W),
}

impl<W: Write> Compressor<W> {
    /// `size_hint`: an upper bound of the bytes to come, when known (it must not depend on
    /// anything but the content, or the output would not be reproducible).
    pub fn new(out: W, compression: &Compression, size_hint: Option<u64>) -> io::Result<Self> {
        let level = compression.effective_level();
        let inner = match compression.effective_kind() {
            CompressionKind::Xz => {
                let stream = xz_encoder(level, compression.worker_threads(), size_hint)?;
                Inner::Xz(XzEncoder::new_stream(out, stream))
            }
            // zlib's gzip header as dpkg writes it: no name, mtime 0, OS "Unix".
            CompressionKind::Gzip => Inner::Gzip(
                flate2::GzBuilder::new()
                    .mtime(0)
                    .operating_system(3)
                    .write(out, flate2::Compression::new(level)),
            ),
            CompressionKind::Zstd => {
                let mut enc = zstd::Encoder::new(out, level as i32)?;
                enc.include_checksum(true)?;
                Inner::Zstd(enc)
            }
            CompressionKind::None => Inner::None(out),
        };
        Ok(Compressor {
            inner,
            uncompressed: 0,
        })
    }

    /// Bytes written into the compressor so far.
    pub fn uncompressed(&self) -> u64 {
        self.uncompressed
    }

    /// Ends the compressed stream and returns the writer.
    pub fn finish(self) -> io::Result<W> {
        let mut out = match self.inner {
            Inner::Xz(e) => e.finish()?,
            Inner::Gzip(e) => e.finish()?,
            Inner::Zstd(e) => e.finish()?,
            Inner::None(w) => w,
        };
        out.flush()?;
        Ok(out)
    }
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = match &mut self.inner {
            Inner::Xz(e) => e.write(buf)?,
            Inner::Gzip(e) => e.write(buf)?,
            Inner::Zstd(e) => e.write(buf)?,
            Inner::None(w) => w.write(buf)?,
        };
        self.uncompressed += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Inner::Xz(e) => e.flush(),
            Inner::Gzip(e) => e.flush(),
            Inner::Zstd(e) => e.flush(),
            Inner::None(w) => w.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in [
            CompressionKind::Xz,
            CompressionKind::Gzip,
            CompressionKind::Zstd,
            CompressionKind::None,
        ] {
            assert_eq!(kind.to_string().parse::<CompressionKind>(), Ok(kind));
        }
        let err = "lz4".parse::<CompressionKind>().unwrap_err();
        assert!(err.to_string().contains("`lz4`"), "{err}");
    }

    #[test]
    fn gzip_level_0_is_no_compression_as_in_dpkg_deb() {
        let c = Compression {
            kind: CompressionKind::Gzip,
            level: Some(0),
            threads: 1,
        };
        assert_eq!(c.effective_kind(), CompressionKind::None);
    }

    #[test]
    fn xz_bytes_do_not_depend_on_threads() {
        // Several blocks at level 0 so several workers really run.
        let data: Vec<u8> = (0..5 * xz_block_size(0) as usize / 2)
            .map(|i| ((i * 7919) % 251) as u8)
            .collect();
        let compress = |threads| {
            let c = Compression {
                kind: CompressionKind::Xz,
                level: Some(0),
                threads,
            };
            let mut z = Compressor::new(Vec::new(), &c, None).unwrap();
            z.write_all(&data).unwrap();
            assert_eq!(z.uncompressed(), data.len() as u64);
            z.finish().unwrap()
        };
        let one = compress(1);
        assert_eq!(one, compress(2));
        assert_eq!(one, compress(3));
    }
}
