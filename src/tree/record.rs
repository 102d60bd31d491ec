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
//! The record is one file, `<dkms_tree>/.dkms-rs.status`: a dot file, so dkms 3.0.10's and
//! 3.2.2's `$dkms_tree/*` globs never see it. What they change in the tree, they change
//! without it: their writes give new stat data, so a stale entry only costs a comparison.
//! Format (text, one entry a line, paths relative to the dkms and install trees):
//!
//! ```text
//! dkms-rs status record 1
//! = <dev> <ino> <size> <mtime_ns> <ctime_ns> <dev> <ino> <size> <mtime_ns> <ctime_ns> <built>\t<installed>
//! end <entries> <fnv1a-64 of the lines between, hex>
//! ```
//!
//! `=` same contents, `!` different; the first five numbers are the built file's. A file
//! that does not end with a matching `end` line (truncated, corrupt, another version) is
//! ignored whole: every entry is compared again. It is written to a temp name beside it and
//! renamed (a killed writer leaves the old record, or a hidden `*.dkms-rs-new` leftover that
//! the next command holding the tree lock removes); a failed write (read-only tree, a
//! non-root `status`) leaves the old one and is not an error: the record only saves time.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The record's file name in the dkms tree: `.dkms-rs.<what>` as the lock, a file that
/// stays; `*.dkms-rs-<state>` names are what a killed command left.
pub const RECORD_FILE: &str = ".dkms-rs.status";

const HEADER: &str = "dkms-rs status record 1";

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

    /// Whether both times are older than `before` (ns since the epoch): not racy.
    fn settled_before(&self, before: i128) -> bool {
        self.mtime_ns < before && self.ctime_ns < before
    }

    fn write(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = write!(
            out,
            "{} {} {} {} {}",
            self.dev, self.ino, self.size, self.mtime_ns, self.ctime_ns
        );
    }

    fn parse<'a>(fields: &mut impl Iterator<Item = &'a str>) -> Option<StatData> {
        Some(StatData {
            dev: fields.next()?.parse().ok()?,
            ino: fields.next()?.parse().ok()?,
            size: fields.next()?.parse().ok()?,
            mtime_ns: fields.next()?.parse().ok()?,
            ctime_ns: fields.next()?.parse().ok()?,
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

/// The record, by `<built>\t<installed>` (paths relative to the dkms and install trees).
#[derive(Debug, Default)]
pub struct Record {
    entries: HashMap<String, Entry>,
}

/// FNV-1a, 64 bits: enough to tell a damaged record from a whole one (not an adversary:
/// whoever can write the tree can write the modules).
fn fnv1a(bytes: &[u8]) -> u64 {
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
        let text = std::str::from_utf8(bytes).ok()?;
        let body = text.strip_prefix(HEADER)?.strip_prefix('\n')?;
        // The end line is the last one: the body is everything before it.
        let trimmed = body.strip_suffix('\n')?;
        let (lines, end) = match trimmed.rfind('\n') {
            Some(i) => (&body[..=i], &trimmed[i + 1..]),
            None => ("", trimmed),
        };
        let mut end = end.strip_prefix("end ")?.split(' ');
        let count: usize = end.next()?.parse().ok()?;
        let sum = u64::from_str_radix(end.next()?, 16).ok()?;
        if end.next().is_some() || fnv1a(lines.as_bytes()) != sum {
            return None;
        }
        let mut entries = HashMap::with_capacity(count);
        for line in lines.lines() {
            let (same, rest) = line.split_at_checked(1)?;
            let same = match same {
                "=" => true,
                "!" => false,
                _ => return None,
            };
            let mut fields = rest.strip_prefix(' ')?.splitn(11, ' ');
            let built = StatData::parse(&mut fields)?;
            let installed = StatData::parse(&mut fields)?;
            let key = fields.next()?;
            if !key.contains('\t') {
                return None;
            }
            entries.insert(
                key.to_owned(),
                Entry {
                    built,
                    installed,
                    same,
                },
            );
        }
        (entries.len() == count).then_some(Record { entries })
    }

    /// The recorded result for this pair, if both files' stat data are still the recorded.
    pub fn lookup(&self, key: &str, built: &StatData, installed: &StatData) -> Option<bool> {
        self.entries
            .get(key)
            .filter(|e| e.built == *built && e.installed == *installed)
            .map(|e| e.same)
    }

    /// Keep an entry found still valid (it was settled when recorded).
    pub fn keep(&mut self, key: String, entry: Entry) {
        self.entries.insert(key, entry);
    }

    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.get(key)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
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

    /// Keep only the entries `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.entries.retain(|k, _| keep(k));
    }

    pub fn extend(&mut self, other: Record) {
        self.entries.extend(other.entries);
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
        let mut out = Vec::with_capacity(lines.len() + 64);
        let _ = writeln!(out, "{HEADER}");
        out.extend_from_slice(lines.as_bytes());
        let _ = writeln!(
            out,
            "end {} {:016x}",
            self.entries.len(),
            fnv1a(lines.as_bytes())
        );
        out
    }

    /// Write the record to `path` by rename (see the module doc). Its temp name holds the
    /// process id: `status` takes no lock, and two at once must not write one temp file.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp = path.with_file_name(format!(
            "{name}.{}{}",
            std::process::id(),
            crate::atomic::NEW_SUFFIX
        ));
        let written =
            std::fs::write(&temp, self.render()).and_then(|()| std::fs::rename(&temp, path));
        if written.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        written
    }
}

/// A pair's key in the record: both paths relative to their trees, `None` when either is
/// outside its tree or holds a tab or a newline (such a pair is compared every time).
pub fn key(
    dkms_tree: &Path,
    built: &Path,
    install_tree: &Path,
    installed: &Path,
) -> Option<String> {
    let b = built.strip_prefix(dkms_tree).ok()?.to_str()?;
    let i = installed.strip_prefix(install_tree).ok()?.to_str()?;
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
}
