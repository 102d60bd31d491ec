//! The status record: `status`'s memory of which installed modules it found byte-identical
//! to their built ones, so that it reads file contents only when their stat data changed.
//!
//! git's index is the model: stat data (device, inode, size, mtime and ctime in ns) of both
//! files, taken when they were compared, with the result; later, the same stat data on both
//! means the same contents and the comparison is skipped. ctime cannot be set by a user
//! (`touch -d` sets mtime and moves ctime to now), so a file replaced or rewritten, however
//! its mtime is set back, no longer matches. As git's "racy" entries: a result is recorded
//! only for files whose mtime and ctime are [`SETTLE`] older than the moment the comparison
//! began, since a file written in the same clock tick as the stat (file times come from the
//! kernel's coarse clock, a jiffy behind) could change again with the same stat data.
//!
//! Directories are recorded the same way, as git's untracked cache does: a directory's
//! entries (and the targets of the symbolic links among them) with its stat data when it was
//! listed. Any entry made, removed or renamed in it moves its mtime and ctime, and a link
//! cannot be changed but by replacing it, so while a directory's stat data are the recorded
//! ones its listing and its links are the recorded ones: one stat instead of an open, two
//! reads and a close (status lists every `<m>`, `<m>/<v>` and `<m>/<v>/<k>`: 10,000 of them
//! at 1,000 modules x 8 kernels), and no readlink of each `kernel-<k>-<a>`. The directory is
//! stat'ed before it is listed, and recorded only when settled (as files, below), so a
//! change made while it is listed leaves stat data that no longer match.
//!
//! The record is one file, `<dkms_tree>/.dkms-rs.status`: a dot file, so dkms 3.0.10's and
//! 3.2.2's `$dkms_tree/*` globs never see it. What they change in the tree, they change
//! without it: their writes give new stat data, so a stale entry only costs a comparison.
//! Format (text, one entry a line, paths relative to the dkms and install trees):
//!
//! ```text
//! dkms-rs status record 2
//! = <dev> <ino> <size> <mtime_ns> <ctime_ns> <dev> <ino> <size> <mtime_ns> <ctime_ns> <built>\t<installed>
//! d <dev> <ino> <size> <mtime_ns> <ctime_ns> <dir>\t<entry>\t<entry>...
//! end <lines> <fnv1a-64 of the lines between, hex>
//! ```
//!
//! `=` same contents, `!` different; the first five numbers are the built file's. A `d`
//! line's entries (none for an empty dir, and no tab either) are `d<name>` (a directory), `l<name>/<target>` (a symbolic link) or
//! `-<name>` (anything else); a directory with a name or target that is not UTF-8 or holds a
//! tab or a newline, or whose listing gave no file types, is not recorded. A file
//! that does not end with a matching `end` line (truncated, corrupt, another version) is
//! ignored whole: every entry is compared again. It is written to a temp name beside it and
//! renamed (a killed writer leaves the old record, or a hidden `*.dkms-rs-new` leftover that
//! the next command holding the tree lock removes); a failed write (read-only tree, a
//! non-root `status`) leaves the old one and is not an error: the record only saves time.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The record's file name in the dkms tree: `.dkms-rs.<what>` as the lock, a file that
/// stays; `*.dkms-rs-<state>` names are what a killed command left.
pub const RECORD_FILE: &str = ".dkms-rs.status";

const HEADER: &str = "dkms-rs status record 2";

/// How much older than the comparison's start a file's times must be for its result to be
/// recorded: far more than a jiffy (the coarse clock's step) and any clock adjustment NTP
/// slews in that time.
pub const SETTLE: Duration = Duration::from_secs(2);

/// The stat data of a file that says it has not changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatData {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl StatData {
    pub fn of(meta: &std::fs::Metadata) -> StatData {
        StatData {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        }
    }

    /// Whether both times are older than `before` (ns since the epoch): not racy; and every
    /// number has 19 digits at most, as `parse` reads them (a time 317 years from 1970, or a
    /// device number past 10^19, is compared every time instead).
    pub(super) fn settled_before(&self, before: i128) -> bool {
        const MAX: i128 = 9_999_999_999_999_999_999;
        let fits = |n: i128| (-MAX..=MAX).contains(&n);
        self.mtime_ns < before
            && self.ctime_ns < before
            && [self.dev, self.ino, self.size]
                .iter()
                .all(|n| fits(i128::from(*n)))
            && fits(self.mtime_ns)
            && fits(self.ctime_ns)
    }

    pub(super) fn write(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = write!(
            out,
            "{} {} {} {} {}",
            self.dev, self.ino, self.size, self.mtime_ns, self.ctime_ns
        );
    }

    /// Five numbers, each followed by a space, from the start of `rest`, which is left at
    /// what follows them. By hand: a record holds 26,000 of these at 1,000 x 8, and str's
    /// `parse` and `splitn` took a tenth of `status`'s instructions.
    pub(super) fn parse(rest: &mut &str) -> Option<StatData> {
        fn number(rest: &mut &str) -> Option<i128> {
            let bytes = rest.as_bytes();
            let negative = bytes.first() == Some(&b'-');
            let start = usize::from(negative);
            // 19 digits at most (what `settled_before` lets be recorded): never past u64.
            let mut value: u64 = 0;
            let mut at = start;
            while let Some(b) = bytes.get(at).filter(|b| b.is_ascii_digit()) {
                if at - start == 19 {
                    return None;
                }
                value = value * 10 + u64::from(b - b'0');
                at += 1;
            }
            let value = i128::from(value);
            if at == start || bytes.get(at) != Some(&b' ') {
                return None;
            }
            // ASCII up to here: `at + 1` is a char boundary.
            *rest = &rest[at + 1..];
            Some(if negative { -value } else { value })
        }
        let unsigned = |rest: &mut &str| number(rest).and_then(|n| u64::try_from(n).ok());
        Some(StatData {
            dev: unsigned(rest)?,
            ino: unsigned(rest)?,
            size: unsigned(rest)?,
            mtime_ns: number(rest)?,
            ctime_ns: number(rest)?,
        })
    }
}

/// One comparison: both files' stat data and whether their contents were the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub built: StatData,
    pub installed: StatData,
    pub same: bool,
}

/// A directory's entries as listed (dot names too, in the listing's order) and the target
/// of each symbolic link among them that could be read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dir {
    pub entries: Vec<super::listing::Entry>,
    pub links: Vec<(OsString, PathBuf)>,
}

impl Dir {
    /// Whether it has an entry of this name.
    pub fn has(&self, name: &str) -> bool {
        self.entries.iter().any(|e| e.name == name)
    }

    /// The target of the link of this name; `None` when there is none (or no such name).
    pub fn link(&self, name: &str) -> Option<&Path> {
        self.links
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.as_path())
    }

    /// The `d` line's entries, each after a tab, or `None` when one cannot be written (see
    /// the module doc).
    fn render(&self) -> Option<String> {
        let mut out = String::new();
        let plain = |s: &str| !s.contains(['\t', '\n']);
        for e in &self.entries {
            let name = e.name.to_str().filter(|n| plain(n))?;
            if !e.typed {
                return None;
            }
            out.push('\t');
            if e.is_link {
                out.push('l');
                out.push_str(name);
                if let Some(target) = self.link(name) {
                    out.push('/');
                    out.push_str(target.to_str().filter(|t| plain(t))?);
                }
            } else {
                out.push(if e.is_dir { 'd' } else { '-' });
                out.push_str(name);
            }
        }
        Some(out)
    }

    /// The entries `render` wrote, each after a tab (none: an empty dir).
    fn parse(text: &str) -> Option<Dir> {
        let mut dir = Dir::default();
        for field in text.split('\t').skip(1) {
            let (kind, rest) = field.split_at_checked(1)?;
            let (name, target) = match kind {
                "l" => match rest.split_once('/') {
                    Some((name, target)) => (name, Some(target)),
                    None => (rest, None),
                },
                "d" | "-" => (rest, None),
                _ => return None,
            };
            if name.is_empty() {
                return None;
            }
            dir.entries.push(super::listing::Entry {
                name: name.into(),
                is_dir: kind == "d",
                is_link: kind == "l",
                typed: true,
            });
            if let Some(target) = target {
                dir.links.push((name.into(), target.into()));
            }
        }
        Some(dir)
    }
}

/// A multiply-rotate hash of 8 bytes a step (as rustc's FxHash), for the record's maps:
/// std's SipHash of 18,000 keys of ~90 bytes was a tenth of `status`'s instructions, and its
/// protection against chosen keys buys nothing here (who writes the tree writes the modules).
#[derive(Default, Clone, Copy)]
pub struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0xf135_7aea_2e62_a9c5;
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(26) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
    }

    fn write_u8(&mut self, b: u8) {
        self.write(&[b]);
    }

    fn finish(&self) -> u64 {
        // hashbrown takes its control bits from the top: fold the well-mixed high bits down
        // too.
        self.0.rotate_left(26)
    }
}

pub(super) type Map<V> = HashMap<String, V, std::hash::BuildHasherDefault<KeyHasher>>;

/// The record: comparisons by `<built>\t<installed>` (paths relative to the dkms and
/// install trees), directories by their path relative to the dkms tree.
#[derive(Debug, Default)]
pub struct Record {
    entries: Map<Entry>,
    dirs: Map<(StatData, Arc<Dir>)>,
}

/// FNV-1a, 64 bits: enough to tell a damaged record from a whole one (not an adversary:
/// whoever can write the tree can write the modules).
pub(super) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Now, in ns since the epoch, less [`SETTLE`]: files whose times are older are not racy.
pub fn settle_limit(now: SystemTime) -> i128 {
    now.checked_sub(SETTLE)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i128)
}

impl Record {
    /// The record at `path`; empty when it is missing or not whole (see the module doc).
    pub fn read(path: &Path) -> Record {
        std::fs::read(path)
            .ok()
            .and_then(|bytes| Record::parse(&bytes))
            .unwrap_or_default()
    }

    fn parse(bytes: &[u8]) -> Option<Record> {
        let (lines, count, sum) = unframe(bytes, HEADER)?;
        // The file holds its comparisons, then its dirs (as `render` writes them): one
        // thread reads the dirs while this one reads the comparisons and checks the sum.
        let split = lines.find("\nd ").map_or(lines.len(), |i| i + 1);
        let (first, second) = lines.split_at(split);
        let (first, second, whole) = std::thread::scope(|scope| {
            let second = scope.spawn(|| Record::parse_lines(second));
            let first = Record::parse_lines(first);
            let whole = fnv1a(lines.as_bytes()) == sum;
            (first, second.join().ok().flatten(), whole)
        });
        let (mut record, other) = (first?, second?);
        if !whole {
            return None;
        }
        record.extend(other);
        (record.len() == count).then_some(record)
    }

    /// Lines of a record, each `=`, `!` or `d` (see the module doc).
    fn parse_lines(lines: &str) -> Option<Record> {
        let mut record = Record::default();
        let count = lines.bytes().filter(|b| *b == b'\n').count();
        if lines.starts_with("d ") {
            record.dirs.reserve(count);
        } else {
            record.entries.reserve(count);
        }
        for line in lines.lines() {
            let (same, rest) = line.split_at_checked(1)?;
            let same = match same {
                "=" => true,
                "!" => false,
                "d" => {
                    let mut rest = rest.strip_prefix(' ')?;
                    let stat = StatData::parse(&mut rest)?;
                    // No tab: an empty dir (a path holds none).
                    let at = rest.find('\t').unwrap_or(rest.len());
                    let dir = Dir::parse(&rest[at..])?;
                    record
                        .dirs
                        .insert(rest[..at].to_owned(), (stat, Arc::new(dir)));
                    continue;
                }
                _ => return None,
            };
            let mut key = rest.strip_prefix(' ')?;
            let built = StatData::parse(&mut key)?;
            let installed = StatData::parse(&mut key)?;
            if !key.contains('\t') {
                return None;
            }
            record.entries.insert(
                key.to_owned(),
                Entry {
                    built,
                    installed,
                    same,
                },
            );
        }
        Some(record)
    }

    /// The recorded result for this pair, if both files' stat data are still the recorded.
    pub fn lookup(&self, key: &str, built: &StatData, installed: &StatData) -> Option<bool> {
        self.entries
            .get(key)
            .filter(|e| e.built == *built && e.installed == *installed)
            .map(|e| e.same)
    }

    /// The entry of this key, with the key as the record holds it.
    pub fn get(&self, key: &str) -> Option<(&str, &Entry)> {
        self.entries
            .get_key_value(key)
            .map(|(k, e)| (k.as_str(), e))
    }

    /// Take from `old` the entries and dirs of these keys (found still valid).
    pub fn keep_from(&mut self, old: &Record, entries: &[&str], dirs: &[&str]) {
        for key in entries {
            if let Some(e) = old.entries.get(*key) {
                self.entries.insert((*key).to_owned(), *e);
            }
        }
        for key in dirs {
            if let Some(d) = old.dirs.get(*key) {
                self.dirs.insert((*key).to_owned(), d.clone());
            }
        }
    }

    /// Entries and directories.
    pub fn len(&self) -> usize {
        self.entries.len() + self.dirs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The recorded listing of the directory at `rel` (relative to the dkms tree), whatever
    /// its stat data now (the caller compares them), with the key as the record holds it.
    pub fn dir(&self, rel: &str) -> Option<(&str, &(StatData, Arc<Dir>))> {
        self.dirs.get_key_value(rel).map(|(k, d)| (k.as_str(), d))
    }

    /// Record a directory's listing, unless its times are not older than `limit` or it
    /// cannot be written (see the module doc). Returns whether it was recorded.
    pub fn insert_dir(&mut self, rel: String, stat: StatData, dir: Arc<Dir>, limit: i128) -> bool {
        let plain = !rel.is_empty() && !rel.contains(['\t', '\n']);
        if !plain || !stat.settled_before(limit) || dir.render().is_none() {
            return false;
        }
        self.dirs.insert(rel, (stat, dir));
        true
    }

    /// Record a comparison, unless a file's times are not older than `limit` (racy: see the
    /// module doc). Returns whether it was recorded.
    pub fn insert(&mut self, key: String, entry: Entry, limit: i128) -> bool {
        if !entry.built.settled_before(limit) || !entry.installed.settled_before(limit) {
            return false;
        }
        self.entries.insert(key, entry);
        true
    }

    pub fn extend(&mut self, other: Record) {
        // Moved whole into an empty side: no entry hashed again.
        if self.entries.is_empty() {
            self.entries = other.entries;
        } else {
            self.entries.extend(other.entries);
        }
        if self.dirs.is_empty() {
            self.dirs = other.dirs;
        } else {
            self.dirs.extend(other.dirs);
        }
    }

    fn render(&self) -> Vec<u8> {
        let mut keys: Vec<&String> = self.entries.keys().collect();
        keys.sort();
        let mut lines = String::with_capacity(keys.len() * 160);
        for key in keys {
            let e = &self.entries[key];
            lines.push_str(if e.same { "= " } else { "! " });
            e.built.write(&mut lines);
            lines.push(' ');
            e.installed.write(&mut lines);
            lines.push(' ');
            lines.push_str(key);
            lines.push('\n');
        }
        let mut dirs: Vec<&String> = self.dirs.keys().collect();
        dirs.sort();
        let mut count = self.entries.len();
        for rel in dirs {
            let (stat, dir) = &self.dirs[rel];
            // Checked when inserted; a parsed one renders as it was read.
            let Some(listing) = dir.render() else {
                continue;
            };
            lines.push_str("d ");
            stat.write(&mut lines);
            lines.push(' ');
            lines.push_str(rel);
            lines.push_str(&listing);
            lines.push('\n');
            count += 1;
        }
        framed(HEADER, &lines, count)
    }

    /// Write the record to `path` by rename (see the module doc).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        write_by_rename(path, &self.render())
    }
}

/// `lines` (each ending in a newline) between `header`'s line and the `end <count> <sum>`
/// line: the form of the status record and of the conf cache.
pub(super) fn framed(header: &str, lines: &str, count: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(lines.len() + 64);
    let _ = writeln!(out, "{header}");
    out.extend_from_slice(lines.as_bytes());
    let _ = writeln!(out, "end {} {:016x}", count, fnv1a(lines.as_bytes()));
    out
}

/// What [`framed`] wrote: the lines, the count and the sum of the end line (the caller checks
/// both), or `None` when the header or the end line is not there.
pub(super) fn unframe<'b>(bytes: &'b [u8], header: &str) -> Option<(&'b str, usize, u64)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let body = text.strip_prefix(header)?.strip_prefix('\n')?;
    // The end line is the last one: the body is everything before it.
    let trimmed = body.strip_suffix('\n')?;
    let (lines, end) = match trimmed.rfind('\n') {
        Some(i) => (&body[..=i], &trimmed[i + 1..]),
        None => ("", trimmed),
    };
    let mut end = end.strip_prefix("end ")?.split(' ');
    let count: usize = end.next()?.parse().ok()?;
    let sum = u64::from_str_radix(end.next()?, 16).ok()?;
    if end.next().is_some() {
        return None;
    }
    Some((lines, count, sum))
}

/// `bytes` written to `path` by rename, through a temp name beside it that holds the process
/// id (`status` takes no lock, and two at once must not write one temp file); a failed write
/// leaves the old file and no temp one.
pub(super) fn write_by_rename(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = path.with_file_name(format!(
        "{name}.{}{}",
        std::process::id(),
        crate::atomic::NEW_SUFFIX
    ));
    let written = std::fs::write(&temp, bytes).and_then(|()| std::fs::rename(&temp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// `path` below `base`, as text: what follows `base` and a `/` in it, byte for byte (the
/// paths status makes are `base` joined with more; `Path::strip_prefix`'s component walk cost
/// more than the rest of a record lookup). `None` when it is not below it or not UTF-8.
pub fn relative<'p>(base: &Path, path: &'p Path) -> Option<&'p str> {
    use std::os::unix::ffi::OsStrExt;
    let base = base.as_os_str().as_bytes();
    let rest = path.as_os_str().as_bytes().strip_prefix(base)?;
    let rest = if base.ends_with(b"/") {
        rest
    } else {
        rest.strip_prefix(b"/")?
    };
    std::str::from_utf8(rest).ok().filter(|r| !r.is_empty())
}

/// A pair's key in the record: both paths relative to their trees, `None` when either is
/// outside its tree or holds a tab or a newline (such a pair is compared every time).
pub fn key(
    dkms_tree: &Path,
    built: &Path,
    install_tree: &Path,
    installed: &Path,
) -> Option<String> {
    let b = relative(dkms_tree, built)?;
    let i = relative(install_tree, installed)?;
    let bad = |s: &str| s.contains(['\t', '\n']);
    (!bad(b) && !bad(i)).then(|| format!("{b}\t{i}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(n: u64) -> StatData {
        StatData {
            dev: 1,
            ino: n,
            size: 100,
            mtime_ns: 5,
            ctime_ns: 6,
        }
    }

    #[test]
    fn a_written_record_reads_back_and_a_damaged_one_reads_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RECORD_FILE);
        let mut r = Record::default();
        let e = |n, same| Entry {
            built: stat(n),
            installed: stat(n + 1),
            same,
        };
        assert!(r.insert("a/m.ko\tk/m.ko".into(), e(1, true), 10));
        assert!(r.insert("b/m.ko\tk/n.ko".into(), e(3, false), 10));
        // Racy: a time not older than the limit is not recorded.
        assert!(!r.insert("c/m.ko\tk/o.ko".into(), e(5, true), 6));
        r.write(&path).unwrap();
        let back = Record::read(&path);
        assert_eq!(back.len(), 2);
        assert_eq!(
            back.lookup("a/m.ko\tk/m.ko", &stat(1), &stat(2)),
            Some(true)
        );
        assert_eq!(
            back.lookup("b/m.ko\tk/n.ko", &stat(3), &stat(4)),
            Some(false)
        );
        // Stat data changed: no answer.
        assert_eq!(back.lookup("a/m.ko\tk/m.ko", &stat(1), &stat(9)), None);
        let bytes = std::fs::read(&path).unwrap();
        // Truncated anywhere, or one byte changed: ignored whole.
        for cut in [0, 10, bytes.len() / 2, bytes.len() - 1] {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            assert!(Record::read(&path).is_empty(), "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        let at = bytes.iter().position(|b| *b == b'!').unwrap();
        flipped[at] = b'=';
        std::fs::write(&path, &flipped).unwrap();
        assert!(Record::read(&path).is_empty());
        // No temp file left beside it.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1);
    }

    fn entry(name: &str, is_dir: bool, is_link: bool) -> crate::tree::listing::Entry {
        crate::tree::listing::Entry {
            name: name.into(),
            is_dir,
            is_link,
            typed: true,
        }
    }

    /// A dir's listing reads back as written, links and all; one that cannot be written
    /// (a tab in a name, a newline in a target, an entry without a type, a time of more
    /// than 19 digits, a racy time) is not recorded.
    #[test]
    fn dirs_read_back_and_unwritable_ones_are_not_recorded() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(RECORD_FILE);
        let listing = Dir {
            entries: vec![
                entry("1.0", true, false),
                entry("kernel-6.1.0-999-amd64-x86_64", false, true),
                entry("dangling", false, true),
                entry("a file with spaces", false, false),
            ],
            links: vec![(
                "kernel-6.1.0-999-amd64-x86_64".into(),
                "1.0/6.1.0-999-amd64/x86_64".into(),
            )],
        };
        let mut r = Record::default();
        assert!(r.insert_dir("m".into(), stat(1), Arc::new(listing.clone()), 10));
        assert!(r.insert_dir("m/1.0".into(), stat(2), Arc::new(Dir::default()), 10));
        let e = Entry {
            built: stat(3),
            installed: stat(4),
            same: true,
        };
        assert!(r.insert("m/1.0/k/a/module/m.ko\tk/m.ko".into(), e, 10));
        r.write(&path).unwrap();
        let back = Record::read(&path);
        assert_eq!(back.len(), 3);
        let (key, (s, d)) = back.dir("m").unwrap();
        assert_eq!((key, *s, &**d), ("m", stat(1), &listing));
        assert_eq!(
            d.link("kernel-6.1.0-999-amd64-x86_64"),
            Some(Path::new("1.0/6.1.0-999-amd64/x86_64"))
        );
        assert_eq!(d.link("dangling"), None);
        assert!(d.has("a file with spaces") && !d.has("2.0"));
        assert_eq!(back.dir("m/1.0").unwrap().1.1.entries, vec![]);
        assert_eq!(back.get("m/1.0/k/a/module/m.ko\tk/m.ko").unwrap().1, &e);

        let mut bad = Record::default();
        let with = |entries, links| Arc::new(Dir { entries, links });
        let tab = with(vec![entry("a\tb", false, false)], vec![]);
        assert!(!bad.insert_dir("m".into(), stat(1), tab, 10));
        let newline = with(
            vec![entry("l", false, true)],
            vec![("l".into(), "x\ny".into())],
        );
        assert!(!bad.insert_dir("m".into(), stat(1), newline, 10));
        let mut untyped = entry("u", false, false);
        untyped.typed = false;
        assert!(!bad.insert_dir("m".into(), stat(1), with(vec![untyped], vec![]), 10));
        assert!(!bad.insert_dir("m".into(), stat(7), Arc::new(Dir::default()), 6));
        let far = StatData {
            mtime_ns: 10_000_000_000_000_000_000,
            ..stat(1)
        };
        assert!(!bad.insert_dir("m".into(), far, Arc::new(Dir::default()), i128::MAX));
        let before_1970 = StatData {
            mtime_ns: -5,
            ctime_ns: -3,
            ..stat(1)
        };
        assert!(bad.insert_dir("old".into(), before_1970, Arc::new(Dir::default()), 10));
        bad.write(&path).unwrap();
        assert_eq!(Record::read(&path).dir("old").unwrap().1.0, before_1970);
    }
}
