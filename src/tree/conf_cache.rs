//! The conf cache: what a dkms.conf says that `status` and an install's dependency check ask
//! of every module, kept with the file's stat data so that an unchanged file is not read and
//! evaluated again (status reads 1,000 of them at 1,000 modules; an install reads every
//! built module's for BUILD_DEPENDS).
//!
//! Only a file whose conf follows from its own bytes is kept ([`Resolution::text_only`]:
//! read natively, no `/etc/dkms` override, no dkms tree variable or kernel name expanded, no
//! glob character in a value), and only a valid one (dkms accepts it); its facts stand for
//! reading it again while its stat data are the recorded ones (the status record's rule, and
//! its [`SETTLE`](super::record::SETTLE) time against racy writes), the host's distribution
//! and `ADDON_MODULES_DIR` are the recorded ones, and `usable` holds in this process: no
//! `DKMS_DIRECTIVE*` in the environment, no entry of the working directory named like a
//! directive, and no override for the module in the listed `/etc/dkms`. The stat is of the
//! dkms.conf through the `source` link, so a link pointed elsewhere finds another file.
//!
//! One file, `<dkms_tree>/.dkms-rs.confs` (a dot file, as the status record: dkms's globs do
//! not see it), written by rename; a file without its matching `end` line is ignored whole.
//!
//! ```text
//! dkms-rs conf cache 1
//! c <dev> <ino> <size> <mtime_ns> <ctime_ns> <module>/<version>\t<distribution>\t<addon dir>\t<rebuilds>{\t<built name>\t<built location>\t<dest name>\t<dest location>\t<strip>}
//! end <lines> <fnv1a-64 of the lines between, hex>
//! ```
//!
//! `<rebuilds>` is `1` when BUILD_DEPENDS is set and BUILD_DEPENDS_REBUILD is yes (the
//! dependency check reads such a file whole), `<strip>` `1` or `0`; one group of five fields
//! per module record. A field holding a tab or a newline is not kept.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;

use super::record::{Map, StatData, fnv1a, framed, unframe, write_by_rename};
use crate::conf::{ModuleConf, ModuleRecord, Resolution, ResolveContext};

/// The cache's file name in the dkms tree.
pub const CACHE_FILE: &str = ".dkms-rs.confs";

const HEADER: &str = "dkms-rs conf cache 1";

/// What status and the dependency check need of a valid dkms.conf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// [`ResolveContext::running_distribution`] and `addon_modules_dir` it was read with:
    /// they pick DEST_MODULE_LOCATION's override.
    distribution: String,
    addon: String,
    /// BUILD_DEPENDS set and BUILD_DEPENDS_REBUILD yes.
    pub rebuilds: bool,
    pub records: Arc<Vec<ModuleRecord>>,
}

impl Facts {
    /// The facts of `res` read with `ctx`, when they may be kept (see the module doc).
    pub fn of(res: &Resolution, ctx: &ResolveContext) -> Option<Facts> {
        if !res.text_only || !res.problems.is_empty() {
            return None;
        }
        Some(Facts::of_conf(&res.conf, ctx))
    }

    fn of_conf(conf: &ModuleConf, ctx: &ResolveContext) -> Facts {
        Facts {
            distribution: ctx.running_distribution.clone(),
            addon: ctx.addon_modules_dir.clone().unwrap_or_default(),
            rebuilds: !conf.build_depends.is_empty() && conf.build_depends_rebuild,
            records: Arc::new(conf.modules.clone()),
        }
    }

    fn holds_for(&self, ctx: &ResolveContext) -> bool {
        self.distribution == ctx.running_distribution
            && self.addon == ctx.addon_modules_dir.as_deref().unwrap_or_default()
    }
}

/// Whether kept facts may stand for reading `module`'s dkms.conf in this process, with
/// `etc_names` the listing of the `/etc/dkms` in use (`None`: not listed, not usable).
fn usable(etc_names: Option<&HashSet<OsString>>, module: &str) -> bool {
    let Some(names) = etc_names else {
        return false;
    };
    // `<module>.conf` and `<module>-<version>...conf` (bash::override_paths): any name
    // that starts so is taken for one.
    let an_override = names.iter().any(|n| {
        n.as_encoded_bytes()
            .strip_prefix(module.as_bytes())
            .is_some_and(|rest| rest.starts_with(b".") || rest.starts_with(b"-"))
    });
    !an_override
        && !crate::conf::native::directives_in_env()
        && !crate::conf::native::directive_named_entries()
}

/// What [`ConfCache::lookup`] found.
pub enum Lookup {
    /// The facts kept under this key hold: the file need not be read.
    Kept(String, Arc<Facts>),
    /// Read the file; what it says may be kept under this key with these stat data.
    Keep(String, StatData),
    /// Read the file, and keep nothing.
    Read,
}

/// The cache: facts by `<module>/<version>`.
#[derive(Debug, Default)]
pub struct ConfCache {
    entries: Map<(StatData, Arc<Facts>)>,
}

impl ConfCache {
    /// The cache at `path`; empty when it is missing or not whole.
    pub fn read(path: &Path) -> ConfCache {
        std::fs::read(path)
            .ok()
            .and_then(|bytes| ConfCache::parse(&bytes))
            .unwrap_or_default()
    }

    fn parse(bytes: &[u8]) -> Option<ConfCache> {
        let (lines, count, sum) = unframe(bytes, HEADER)?;
        if fnv1a(lines.as_bytes()) != sum {
            return None;
        }
        let mut cache = ConfCache::default();
        for line in lines.lines() {
            let mut rest = line.strip_prefix("c ")?;
            let stat = StatData::parse(&mut rest)?;
            let mut fields = rest.split('\t');
            let key = fields.next().filter(|k| !k.is_empty())?;
            let distribution = fields.next()?.to_owned();
            let addon = fields.next()?.to_owned();
            let rebuilds = flag(fields.next()?)?;
            let mut records = Vec::new();
            while let Some(built_name) = fields.next() {
                records.push(ModuleRecord {
                    built_name: built_name.to_owned(),
                    built_location: fields.next()?.to_owned(),
                    dest_name: fields.next()?.to_owned(),
                    dest_location: fields.next()?.to_owned(),
                    strip: flag(fields.next()?)?,
                });
            }
            let facts = Facts {
                distribution,
                addon,
                rebuilds,
                records: Arc::new(records),
            };
            cache
                .entries
                .insert(key.to_owned(), (stat, Arc::new(facts)));
        }
        (cache.entries.len() == count).then_some(cache)
    }

    /// What to do with `mv`'s dkms.conf at `path`, read as `$module` `read_as` (which names
    /// its overrides) by `ctx`'s host, `etc_names` the listed `/etc/dkms`: take the kept facts,
    /// read it and keep what it says with the stat data taken before, or just read it.
    pub fn lookup(
        &self,
        etc_names: Option<&HashSet<OsString>>,
        read_as: &str,
        mv: &super::ModuleVersion,
        path: &Path,
        ctx: &ResolveContext,
    ) -> Lookup {
        if !usable(etc_names, read_as) {
            return Lookup::Read;
        }
        let Ok(meta) = std::fs::metadata(path) else {
            return Lookup::Read;
        };
        let stat = StatData::of(&meta);
        let key = format!("{}/{}", mv.module, mv.version);
        match self.get(&key, &stat, ctx) {
            Some(facts) => Lookup::Kept(key, facts),
            None => Lookup::Keep(key, stat),
        }
    }

    /// The facts kept for `key` when the file's stat data are still `stat` and they were read
    /// as `ctx` would read them.
    pub fn get(&self, key: &str, stat: &StatData, ctx: &ResolveContext) -> Option<Arc<Facts>> {
        self.entries
            .get(key)
            .filter(|(was, facts)| was == stat && facts.holds_for(ctx))
            .map(|(_, facts)| facts.clone())
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Keep `facts` for `key`, unless the file's times are not older than `limit` or a field
    /// cannot be written (see the module doc). Returns whether they were kept.
    pub fn insert(&mut self, key: &str, stat: StatData, facts: Facts, limit: i128) -> bool {
        let plain = |s: &str| !s.contains(['\t', '\n']);
        let fields_plain = plain(key)
            && plain(&facts.distribution)
            && plain(&facts.addon)
            && facts.records.iter().all(|r| {
                [
                    &r.built_name,
                    &r.built_location,
                    &r.dest_name,
                    &r.dest_location,
                ]
                .iter()
                .all(|f| plain(f))
            });
        if key.is_empty() || !fields_plain || !stat.settled_before(limit) {
            return false;
        }
        self.entries.insert(key.to_owned(), (stat, Arc::new(facts)));
        true
    }

    /// Take `other`'s entries over this one's.
    pub fn extend(&mut self, other: ConfCache) {
        self.entries.extend(other.entries);
    }

    /// Take from `old` the entries of these keys (found still valid), or all of them.
    pub fn keep_from(&mut self, old: &ConfCache, keys: Option<&[String]>) {
        match keys {
            Some(keys) => {
                for key in keys {
                    if let Some(e) = old.entries.get(key) {
                        self.entries.insert(key.clone(), e.clone());
                    }
                }
            }
            None => self
                .entries
                .extend(old.entries.iter().map(|(k, e)| (k.clone(), e.clone()))),
        }
    }

    fn render(&self) -> Vec<u8> {
        let mut keys: Vec<&String> = self.entries.keys().collect();
        keys.sort();
        let mut lines = String::with_capacity(keys.len() * 128);
        for key in &keys {
            let (stat, facts) = &self.entries[*key];
            lines.push_str("c ");
            stat.write(&mut lines);
            lines.push(' ');
            for field in [key.as_str(), &facts.distribution, &facts.addon] {
                lines.push_str(field);
                lines.push('\t');
            }
            lines.push(if facts.rebuilds { '1' } else { '0' });
            for r in facts.records.iter() {
                for field in [
                    &r.built_name,
                    &r.built_location,
                    &r.dest_name,
                    &r.dest_location,
                ] {
                    lines.push('\t');
                    lines.push_str(field);
                }
                lines.push('\t');
                lines.push(if r.strip { '1' } else { '0' });
            }
            lines.push('\n');
        }
        framed(HEADER, &lines, keys.len())
    }

    /// Write the cache to `path` by rename; a failed write leaves the old one (the cache only
    /// saves time).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        write_by_rename(path, &self.render())
    }
}

fn flag(field: &str) -> Option<bool> {
    match field {
        "1" => Some(true),
        "0" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(rebuilds: bool, names: &[&str]) -> Facts {
        Facts {
            distribution: "debian".into(),
            addon: String::new(),
            rebuilds,
            records: Arc::new(
                names
                    .iter()
                    .map(|n| ModuleRecord {
                        built_name: (*n).into(),
                        built_location: if n.is_empty() { "" } else { "src/" }.into(),
                        dest_name: (*n).into(),
                        dest_location: "/updates/dkms".into(),
                        strip: n.len() % 2 == 0,
                    })
                    .collect(),
            ),
        }
    }

    #[test]
    fn a_written_cache_reads_back_and_a_damaged_one_reads_empty() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("f");
        std::fs::write(&file, "x").expect("write");
        let stat = StatData::of(&std::fs::metadata(&file).expect("stat"));
        let limit = i128::MAX;
        let mut cache = ConfCache::default();
        assert!(cache.insert("a/1.0", stat, facts(false, &["a", "bb"]), limit));
        assert!(cache.insert("b/2", stat, facts(true, &[]), limit));
        assert!(cache.insert("c/3", stat, facts(false, &[""]), limit));
        assert!(!cache.insert("d/1\t", stat, facts(false, &["d"]), limit));
        assert!(!cache.insert("e/1", stat, facts(false, &["e\n"]), limit));
        assert!(
            !cache.insert("f/1", stat, facts(false, &["f"]), 0),
            "racy: not kept"
        );
        let path = dir.path().join(CACHE_FILE);
        cache.write(&path).expect("write");
        let back = ConfCache::read(&path);
        assert_eq!(back.len(), 3);
        let ctx = ResolveContext {
            running_distribution: "debian".into(),
            addon_modules_dir: None,
            ..ResolveContext::new("6.1.0-999-amd64", "x86_64")
        };
        for key in ["a/1.0", "b/2", "c/3"] {
            assert_eq!(
                back.get(key, &stat, &ctx),
                cache.get(key, &stat, &ctx),
                "{key}"
            );
            assert!(back.get(key, &stat, &ctx).is_some(), "{key}");
        }
        let other = ResolveContext {
            running_distribution: "fedora".into(),
            ..ctx.clone()
        };
        assert!(back.get("a/1.0", &stat, &other).is_none(), "another host");
        std::fs::write(&file, "xy").expect("rewrite");
        let changed = StatData::of(&std::fs::metadata(&file).expect("stat"));
        assert!(back.get("a/1.0", &changed, &ctx).is_none(), "another file");
        let bytes = std::fs::read(&path).expect("read");
        for cut in [bytes.len() - 1, bytes.len() / 2, 10] {
            std::fs::write(&path, &bytes[..cut]).expect("truncate");
            assert!(ConfCache::read(&path).is_empty(), "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        let at = flipped.iter().position(|b| *b == b'\t').expect("a tab");
        flipped[at + 1] ^= 1;
        std::fs::write(&path, &flipped).expect("flip");
        assert!(ConfCache::read(&path).is_empty(), "a changed byte");
    }

    #[test]
    fn an_override_for_the_module_makes_the_cache_unusable() {
        let names =
            |list: &[&str]| -> HashSet<OsString> { list.iter().map(|n| n.into()).collect() };
        let none = names(&[
            "framework.conf",
            "sign_helper.sh",
            "other.conf",
            "g00010.conf",
        ]);
        // The working directory and environment of the test runner hold no directive names.
        assert!(usable(Some(&none), "g0001"));
        for name in [
            "g0001.conf",
            "g0001-1.0.conf",
            "g0001-1.0-6.1.0-999-amd64.conf",
        ] {
            let mut with = none.clone();
            with.insert(name.into());
            assert!(!usable(Some(&with), "g0001"), "{name}");
        }
        assert!(!usable(None, "g0001"), "/etc/dkms not listed");
    }
}
