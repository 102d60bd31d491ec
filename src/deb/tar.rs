//! GNU tar, written the way `tar --format=gnu` writes it for `dpkg-deb --build`.
//!
//! Only what a .deb needs: directories, regular files and symlinks owned by root/root, names
//! past 100 bytes through `././@LongLink` entries ('L' for names, 'K' for link targets) and
//! no PAX headers, so old dpkg and busybox read the result.

use std::io::{self, Write};

/// Size of one tar block.
pub const BLOCK: usize = 512;
/// GNU tar's default record: the archive is padded with zeros to a multiple of this.
pub const RECORD: u64 = 10240;
/// The name and linkname fields hold 100 bytes; GNU tar uses LongLink only past that.
const NAME_FIELD: usize = 100;

/// What a header describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink,
}

impl Kind {
    fn typeflag(self) -> u8 {
        match self {
            Kind::File => b'0',
            Kind::Symlink => b'2',
            Kind::Dir => b'5',
        }
    }
}

/// A GNU tar stream over `W`, counting what it wrote so it can pad the last record.
pub struct TarWriter<W: Write> {
    out: W,
    written: u64,
}

impl<W: Write> TarWriter<W> {
    pub fn new(out: W) -> Self {
        TarWriter { out, written: 0 }
    }

    /// Writes a directory entry; `name` is the archive name, e.g. `./usr/` (ending in `/`).
    pub fn dir(&mut self, name: &str, mode: u32, mtime: u64) -> io::Result<()> {
        self.header(name, Kind::Dir, mode, 0, mtime, "")
    }

    /// Writes a symlink entry pointing to `target`.
    pub fn symlink(&mut self, name: &str, target: &str, mtime: u64) -> io::Result<()> {
        // tar records symlinks as 0777: their own mode means nothing on Linux.
        self.header(name, Kind::Symlink, 0o777, 0, mtime, target)
    }

    /// Writes a regular file's header; the caller then writes exactly `size` bytes of content
    /// through [`TarWriter::content`] and closes it with [`TarWriter::end_content`].
    pub fn file_header(&mut self, name: &str, mode: u32, size: u64, mtime: u64) -> io::Result<()> {
        self.header(name, Kind::File, mode, size, mtime, "")
    }

    /// Content bytes of the current file.
    pub fn content(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_raw(bytes)
    }

    /// Pads the current file's content to a whole block.
    pub fn end_content(&mut self) -> io::Result<()> {
        let rem = (self.written % BLOCK as u64) as usize;
        if rem != 0 {
            self.write_raw(&[0; BLOCK][..BLOCK - rem])?;
        }
        Ok(())
    }

    /// A regular file whose content is in memory.
    pub fn file_bytes(
        &mut self,
        name: &str,
        mode: u32,
        bytes: &[u8],
        mtime: u64,
    ) -> io::Result<()> {
        self.file_header(name, mode, bytes.len() as u64, mtime)?;
        self.content(bytes)?;
        self.end_content()
    }

    /// Two zero blocks end the archive; GNU tar then pads to a whole record.
    pub fn finish(mut self) -> io::Result<W> {
        self.write_raw(&[0; 2 * BLOCK])?;
        let rem = self.written % RECORD;
        if rem != 0 {
            let pad = vec![0; (RECORD - rem) as usize];
            self.write_raw(&pad)?;
        }
        self.out.flush()?;
        Ok(self.out)
    }

    fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn header(
        &mut self,
        name: &str,
        kind: Kind,
        mode: u32,
        size: u64,
        mtime: u64,
        link: &str,
    ) -> io::Result<()> {
        if link.len() > NAME_FIELD {
            self.long_link(b'K', link)?;
        }
        if name.len() > NAME_FIELD {
            self.long_link(b'L', name)?;
        }
        let mut h = [0u8; BLOCK];
        put_truncated(&mut h[0..100], name.as_bytes());
        put_octal(&mut h[100..108], u64::from(mode))?;
        put_octal(&mut h[108..116], 0)?;
        put_octal(&mut h[116..124], 0)?;
        put_size(&mut h[124..136], size);
        put_octal(&mut h[136..148], mtime)?;
        h[156] = kind.typeflag();
        put_truncated(&mut h[157..257], link.as_bytes());
        finish_gnu_header(&mut h);
        self.write_raw(&h)
    }

    /// GNU's `././@LongLink` entry carrying a name or link target too long for its field,
    /// NUL-terminated, with the fields GNU tar gives it (mode 0644, mtime 0, root/root).
    fn long_link(&mut self, typeflag: u8, long: &str) -> io::Result<()> {
        let mut h = [0u8; BLOCK];
        put_truncated(&mut h[0..100], b"././@LongLink");
        put_octal(&mut h[100..108], 0o644)?;
        put_octal(&mut h[108..116], 0)?;
        put_octal(&mut h[116..124], 0)?;
        put_size(&mut h[124..136], long.len() as u64 + 1);
        put_octal(&mut h[136..148], 0)?;
        h[156] = typeflag;
        finish_gnu_header(&mut h);
        self.write_raw(&h)?;
        self.write_raw(long.as_bytes())?;
        self.write_raw(&[0])?;
        self.end_content()
    }
}

/// Magic, owner names and checksum, as GNU tar fills them.
fn finish_gnu_header(h: &mut [u8; BLOCK]) {
    h[257..265].copy_from_slice(b"ustar  \0");
    put_truncated(&mut h[265..297], b"root");
    put_truncated(&mut h[297..329], b"root");
    // The checksum is computed with its own field read as spaces; GNU writes 6 digits, NUL, space.
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let digits = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(digits.as_bytes());
}

fn put_truncated(field: &mut [u8], bytes: &[u8]) {
    let n = bytes.len().min(field.len());
    field[..n].copy_from_slice(&bytes[..n]);
}

/// Zero-padded octal filling the field but its last byte, which stays NUL.
fn put_octal(field: &mut [u8], value: u64) -> io::Result<()> {
    let digits = format!("{value:0width$o}", width = field.len() - 1);
    if digits.len() >= field.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{value} does not fit a tar header field"),
        ));
    }
    field[..digits.len()].copy_from_slice(digits.as_bytes());
    Ok(())
}

/// Sizes of 8 GiB and more go base-256 (high bit set), as GNU tar does.
fn put_size(field: &mut [u8], size: u64) {
    if size < 8u64.pow(11) {
        let digits = format!("{size:011o}");
        field[..11].copy_from_slice(digits.as_bytes());
        field[11] = 0;
    } else {
        field.fill(0);
        field[0] = 0x80;
        field[4..12].copy_from_slice(&size.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_octal(field: &[u8]) -> u64 {
        let s = std::str::from_utf8(field).unwrap_or("");
        u64::from_str_radix(s.trim_end_matches(['\0', ' ']), 8).unwrap_or(u64::MAX)
    }

    #[test]
    fn header_checksum_matches_the_tar_crate_reading() {
        let mut t = TarWriter::new(Vec::new());
        t.file_bytes("./a", 0o644, b"hello", 1_700_000_000).unwrap();
        let bytes = t.finish().unwrap();
        assert_eq!(bytes.len() as u64 % RECORD, 0);
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut entries = archive.entries().unwrap();
        let entry = entries.next().unwrap().unwrap();
        assert!(entry.header().as_gnu().is_some());
        assert_eq!(entry.path().unwrap().to_str(), Some("./a"));
        assert_eq!(entry.header().mtime().unwrap(), 1_700_000_000);
        assert_eq!(
            parse_octal(&bytes[148..154]),
            u64::from(entry.header().cksum().unwrap())
        );
    }

    #[test]
    fn names_of_exactly_100_bytes_need_no_longlink_but_101_do() {
        for (len, longlinks) in [(100, 0), (101, 1)] {
            let name = format!("./{}", "a".repeat(len - 2));
            let mut t = TarWriter::new(Vec::new());
            t.file_bytes(&name, 0o644, b"", 0).unwrap();
            let bytes = t.finish().unwrap();
            let count = bytes
                .chunks(BLOCK)
                .filter(|b| b.starts_with(b"././@LongLink"))
                .count();
            assert_eq!(count, longlinks, "name of {len} bytes");
            let mut archive = tar::Archive::new(&bytes[..]);
            let entry = archive.entries().unwrap().next().unwrap().unwrap();
            assert_eq!(entry.path().unwrap().to_str(), Some(name.as_str()));
        }
    }

    #[test]
    fn huge_sizes_use_base_256() {
        let mut field = [0u8; 12];
        put_size(&mut field, 8u64.pow(11));
        assert_eq!(field[0], 0x80);
        assert_eq!(
            u64::from_be_bytes(field[4..12].try_into().unwrap()),
            8u64.pow(11)
        );
    }
}
