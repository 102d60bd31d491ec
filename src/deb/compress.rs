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

    /// Whether [`Compressor::new`] makes use of the input size (only xz does).
    pub fn wants_size(&self) -> bool {
        self.effective_kind() == CompressionKind::Xz
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

/// The xz block size for a preset when the input size is unknown: the preset's dictionary
/// size (at least 1 MiB).
///
/// liblzma's default (3x the dictionary, 24 MiB at level 6, what dpkg-deb gets) splits a
/// 60 MB tar into 3 uneven blocks, so on 2 cores one worker idles for a third of the run,
/// and every worker holds a 24 MiB input buffer. Blocks much smaller than the dictionary
/// lose compression (4 MiB: +4% on kernel headers). Fixed by the level, never by `threads`.
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

/// Block sizes are rounded up to this.
const XZ_BLOCK_ROUND: u64 = 64 << 10;

/// The blocks of an input of `size` bytes: as few as blocks of at most 1.25 dictionaries
/// allow, all of the same size, so that workers finish together rather than one compressing
/// a last full block while the others wait (kernel headers, 59 MB at level 6: 6 blocks of
/// 9.4 MiB, 1.5% larger than dpkg-deb's 3 blocks; 8 MiB blocks would give 7 and a stub, 1.7%;
/// even 7.1 MiB blocks 2.1%). Depends on the input only, never on the thread count.
pub fn xz_block_size_for(level: u32, size: u64) -> u64 {
    let max = xz_block_size(level) / 4 * 5;
    let blocks = size.div_ceil(max).max(1);
    size.div_ceil(blocks)
        .div_ceil(XZ_BLOCK_ROUND)
        .saturating_mul(XZ_BLOCK_ROUND)
        .clamp(1 << 20, max)
}

/// The multi-threaded xz encoder for `level`. With the input size known, blocks are split
/// evenly ([`xz_block_size_for`]), and an input smaller than the preset's dictionary gets a
/// dictionary of its size, as xz(1) does for small files: every match is still in reach, and
/// a 9 KiB control.tar does not pay for zeroing 17 MiB of hash table.
fn xz_encoder(level: u32, threads: u32, size: Option<u64>) -> io::Result<Stream> {
    let mut options = LzmaOptions::new_preset(level).map_err(io::Error::other)?;
    if let Some(size) = size.filter(|&n| n < xz_dict_size(level)) {
        options.dict_size(u32::try_from(size.max(XZ_DICT_MIN)).unwrap_or(u32::MAX));
    }
    let block_size = match size {
        Some(size) => xz_block_size_for(level, size),
        None => xz_block_size(level),
    };
    let mut filters = Filters::new();
    filters.lzma2(&options);
    MtStreamBuilder::new()
        .filters(filters)
        .threads(threads)
        .block_size(block_size)
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
    /// `size`: the number of bytes to come, when known. It must depend on nothing but the
    /// content, or the output would not be reproducible; a wrong one costs compression, not
    /// correctness.
    pub fn new(out: W, compression: &Compression, size: Option<u64>) -> io::Result<Self> {
        let level = compression.effective_level();
        let inner = match compression.effective_kind() {
            CompressionKind::Xz => {
                let stream = xz_encoder(level, compression.worker_threads(), size)?;
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
    fn blocks_are_even_and_at_most_a_quarter_past_the_dictionary() {
        let mib = 1u64 << 20;
        assert_eq!(xz_block_size_for(6, 100), mib);
        assert_eq!(xz_block_size_for(6, 10 * mib), 10 * mib);
        // 59.2 MB: 6 blocks of 9.4 MiB rather than 7 of 8 MiB and a 0.45 MiB one.
        let size = 59_207_680;
        let block = xz_block_size_for(6, size);
        assert!(block <= 10 * mib && size.div_ceil(block) == 6, "{block}");
        assert!(6 * block - size < 6 * XZ_BLOCK_ROUND);
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
