//! A directory's names and whether each is a directory, read with `openat` and `getdents64`
//! alone: `std::fs::read_dir` goes through glibc's `opendir`, which adds an `fstat` of every
//! directory (for a buffer size), 10,000 calls of `status`'s ~94,000 at 1,000 modules x 8
//! kernels (bench/README.md).

use std::ffi::OsString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

/// One name of a directory, with whether the listing says it is a directory (`DT_DIR`; a
/// link to one, or a file system that gives no types, says not: stat it to know) or a
/// symbolic link (`DT_LNK`), and whether it gave a type at all (not `DT_UNKNOWN`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: OsString,
    pub is_dir: bool,
    pub is_link: bool,
    pub typed: bool,
}

/// The entries of `dir` but `.` and `..`, in the file system's order; `None` when it cannot
/// be opened, and the entries read so far when a read fails (as a `read_dir` whose errors are
/// skipped).
pub fn entries(dir: &Path) -> Option<Vec<Entry>> {
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC | libc::O_NONBLOCK;
    // SAFETY: `path` is NUL-terminated and outlives the call.
    let fd = unsafe { libc::open(path.as_ptr(), flags) };
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` was just opened and is owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut out = Vec::new();
    // Not zeroed: the kernel fills what it returns (a zeroed 32 KiB per listing was a
    // seventh of an install's instructions at 1,000 modules, which lists every module dir).
    let mut buf: Vec<u8> = Vec::with_capacity(32 * 1024);
    loop {
        buf.clear();
        // SAFETY: the kernel writes at most `buf.capacity()` bytes into `buf`'s allocation.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                fd.as_raw_fd(),
                buf.as_mut_ptr(),
                buf.capacity(),
            )
        };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        if n <= 0 {
            break;
        }
        // SAFETY: the kernel wrote these `n` (<= capacity) bytes.
        unsafe { buf.set_len(n as usize) };
        parse(&buf, &mut out);
    }
    Some(out)
}

/// The `linux_dirent64` records of one `getdents64` read: d_ino (8 bytes), d_off (8),
/// d_reclen (2), d_type (1), then the NUL-terminated name, padded to `d_reclen`.
fn parse(mut records: &[u8], out: &mut Vec<Entry>) {
    const NAME: usize = 19;
    while records.len() > NAME {
        let reclen = usize::from(u16::from_ne_bytes([records[16], records[17]]));
        if reclen <= NAME || reclen > records.len() {
            return;
        }
        let d_type = records[18];
        let name = &records[NAME..reclen];
        let name = &name[..name.iter().position(|b| *b == 0).unwrap_or(name.len())];
        if name != b"." && name != b".." {
            out.push(Entry {
                name: OsString::from_vec(name.to_vec()),
                is_dir: d_type == libc::DT_DIR,
                is_link: d_type == libc::DT_LNK,
                typed: d_type != libc::DT_UNKNOWN,
            });
        }
        records = &records[reclen..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What std's `read_dir` (glibc's readdir) says of the same directory: names, and
    /// `DT_DIR` as its file type without a stat.
    #[test]
    fn entries_are_what_read_dir_lists_over_many_reads() {
        let dir = tempfile::tempdir().unwrap();
        // Long names: far more than one 32 KiB read.
        for i in 0..1500 {
            let name = format!("{i:04}-{}", "n".repeat(100));
            match i % 3 {
                0 => std::fs::create_dir(dir.path().join(&name)).unwrap(),
                1 => std::fs::write(dir.path().join(&name), b"").unwrap(),
                _ => std::os::unix::fs::symlink(".", dir.path().join(&name)).unwrap(),
            }
        }
        std::fs::write(dir.path().join("é\u{1}x"), b"").unwrap();
        let mut ours = entries(dir.path()).unwrap();
        let mut theirs: Vec<Entry> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let t = e.file_type().unwrap();
                Entry {
                    name: e.file_name(),
                    is_dir: t.is_dir(),
                    is_link: t.is_symlink(),
                    typed: true,
                }
            })
            .collect();
        ours.sort_by(|a, b| a.name.cmp(&b.name));
        theirs.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(ours.len(), 1501);
        assert_eq!(ours, theirs);
        assert_eq!(entries(&dir.path().join("missing")), None);
        assert_eq!(
            entries(&dir.path().join("0001-".to_owned() + &"n".repeat(100))),
            None
        );
    }
}
