//! ldtarball against hostile tarballs (issue 9): each is refused whole with dkms's 7 and one
//! line naming the entry; nothing outside the scratch trees is read or written, and nothing
//! half-loaded is left in them. Each tarball is written here with the `tar` crate, entry by
//! entry (raw names: the crate's own checks would refuse `..` and `/`).

use crate::support;

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use support::scratch::{Scratch, listing, run};

const CONF: &str = "PACKAGE_NAME=\"hostile\"\nPACKAGE_VERSION=\"1.0\"\n\
                    BUILT_MODULE_NAME[0]=\"hostile\"\nDEST_MODULE_LOCATION[0]=\"/updates\"\n";
/// What the canary file outside the trees holds: found in the trees, it was read.
const CANARY: &str = "canary-8e1f0c: outside the trees\n";

/// One tar entry, its name written as given.
enum Entry {
    Dir(String),
    File(String, Vec<u8>),
    Symlink(String, String),
    HardLink(String, String),
    Special(String, tar::EntryType),
}

fn dir(name: &str) -> Entry {
    Entry::Dir(name.into())
}
fn file(name: &str, body: &str) -> Entry {
    Entry::File(name.into(), body.as_bytes().to_vec())
}
fn symlink(name: &str, target: &str) -> Entry {
    Entry::Symlink(name.into(), target.into())
}
fn hard_link(name: &str, target: &str) -> Entry {
    Entry::HardLink(name.into(), target.into())
}

/// The start of a valid source tarball of hostile/1.0 (dkms.conf, a Kbuild file).
fn source_tarball() -> Vec<Entry> {
    vec![
        dir("./"),
        dir("./dkms_main_tree/"),
        dir("./dkms_source_tree/"),
        file("./dkms_source_tree/dkms.conf", CONF),
        file("./dkms_source_tree/Kbuild", "obj-m := hostile.o\n"),
    ]
}

/// The 11-link chain of the prober: `x -> .`, `y1 -> x/..`, `y2 -> y1/..`, ..., `y11 ->
/// y10/..`, each inside the archive when read as text, together eleven levels up.
fn dot_dot_chain(dir: &str) -> Vec<Entry> {
    let mut v = vec![symlink(&format!("{dir}/x"), ".")];
    v.push(symlink(&format!("{dir}/y1"), "x/.."));
    for i in 2..=11 {
        v.push(symlink(&format!("{dir}/y{i}"), &format!("y{}/..", i - 1)));
    }
    v
}

/// Write `entries` as a gzipped tar at `path`.
fn write_tarball(path: &Path, entries: &[Entry]) {
    let gz = flate2::write::GzEncoder::new(
        File::create(path).expect("tarball"),
        flate2::Compression::default(),
    );
    let mut tar = tar::Builder::new(gz);
    for entry in entries {
        let mut h = tar::Header::new_gnu();
        let (name, kind, body, link): (&str, _, &[u8], Option<&str>) = match entry {
            Entry::Dir(n) => (n, tar::EntryType::Directory, b"", None),
            Entry::File(n, b) => (n, tar::EntryType::Regular, b, None),
            Entry::Symlink(n, t) => (n, tar::EntryType::Symlink, b"", Some(t)),
            Entry::HardLink(n, t) => (n, tar::EntryType::Link, b"", Some(t)),
            Entry::Special(n, k) => (n, *k, b"", None),
        };
        let raw = |slot: &mut [u8], s: &str| {
            assert!(
                s.len() < slot.len(),
                "name too long for this test's writer: {s}"
            );
            slot[..s.len()].copy_from_slice(s.as_bytes());
        };
        raw(&mut h.as_old_mut().name, name);
        if let Some(link) = link {
            raw(&mut h.as_old_mut().linkname, link);
        }
        h.set_entry_type(kind);
        h.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
        h.set_size(body.len() as u64);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        if matches!(kind, tar::EntryType::Char | tar::EntryType::Block) {
            h.set_device_major(1).expect("major");
            h.set_device_minor(3).expect("minor");
        }
        h.set_cksum();
        tar.append(&h, body).expect("append");
    }
    tar.into_inner()
        .expect("tar")
        .finish()
        .expect("gzip")
        .sync_all()
        .expect("sync");
}

/// A scratch tree, and beside its trees `outside/` with the canary file and an empty
/// `outside/dir/` (both inside the scratch dir: even a failing test writes nowhere else).
struct Hostile {
    s: Scratch,
    kernel: String,
    outside: PathBuf,
}

impl Hostile {
    fn new() -> Option<Hostile> {
        let kernels = support::require_kernels(1)?;
        let s = Scratch::new(&kernels[..1]);
        let outside = s.dir.path().join("outside");
        std::fs::create_dir_all(outside.join("dir")).expect("outside");
        std::fs::write(outside.join("canary"), CANARY).expect("canary");
        Some(Hostile {
            kernel: kernels[0].clone(),
            s,
            outside,
        })
    }

    fn canary(&self) -> String {
        self.outside.join("canary").display().to_string()
    }

    fn tarball(&self, name: &str, entries: &[Entry]) -> PathBuf {
        let path = self.s.dir.path().join(name);
        write_tarball(&path, entries);
        path
    }

    /// `dkms-rs ldtarball <tarball> -k <kernel> [extra]`: (code, stdout, stderr).
    fn ldtarball(&self, tarball: &Path, extra: &[&str]) -> (i32, String, String) {
        let mut args = vec!["ldtarball", tarball.to_str().expect("utf-8"), "-k"];
        args.push(&self.kernel);
        args.extend(extra);
        run(&mut self.s.dkms_rs(&args))
    }

    /// Everything that can change: the trees' listings (link targets and file contents
    /// too), the scratch dir's top level, and `outside/`.
    fn state(&self) -> Vec<String> {
        let s = &self.s;
        let mut out: Vec<String> = std::fs::read_dir(s.dir.path())
            .expect("scratch")
            .flatten()
            .map(|e| format!("top {}", e.file_name().to_string_lossy()))
            .filter(|l| !l.ends_with(".tar.gz"))
            .collect();
        out.sort();
        for (tag, root) in [
            ("tree", &s.dkms_tree),
            ("src", &s.source_tree),
            ("lib", &s.install_tree),
            ("outside", &self.outside),
        ] {
            for rel in listing(root) {
                if rel.ends_with(".dkms-rs.lock") {
                    continue;
                }
                let path = root.join(&rel);
                let what = match std::fs::read_link(&path) {
                    Ok(target) => format!("-> {}", target.display()),
                    Err(_) if path.is_file() => {
                        let bytes = std::fs::read(&path).unwrap_or_default();
                        format!("{:?}", String::from_utf8_lossy(&bytes))
                    }
                    Err(_) => "/".into(),
                };
                out.push(format!("{tag} {rel} {what}"));
            }
        }
        out
    }

    /// What in the trees leads outside them or holds the canary's bytes (read through every
    /// link, as a build would), and whether the canary was changed.
    fn leaks(&self) -> Vec<String> {
        let s = &self.s;
        let trees = [&s.dkms_tree, &s.source_tree, &s.install_tree];
        let mut leaks = Vec::new();
        for root in trees {
            for rel in listing(root) {
                let path = root.join(&rel);
                // The harness's own link to a kernel's headers (Scratch::new), not a leak.
                let headers_link = s.kernels.iter().any(|k| {
                    path == s.install_tree.join(k).join("build")
                        && std::fs::read_link(&path).ok()
                            == Some(Path::new("/lib/modules").join(k).join("build"))
                });
                if headers_link {
                    continue;
                }
                if let Ok(real) = path.canonicalize()
                    && !trees.iter().any(|t| real.starts_with(t))
                {
                    leaks.push(format!("{} leads to {}", path.display(), real.display()));
                }
                let bytes = std::fs::read(&path).unwrap_or_default();
                if String::from_utf8_lossy(&bytes).contains("canary-8e1f0c") {
                    leaks.push(format!("{} holds the canary's bytes", path.display()));
                }
            }
        }
        if std::fs::read_to_string(self.outside.join("canary"))
            .ok()
            .as_deref()
            != Some(CANARY)
        {
            leaks.push("the canary was changed".into());
        }
        leaks
    }

    fn assert_nothing_read(&self, what: &str) {
        let leaks = self.leaks();
        assert!(leaks.is_empty(), "{what}: {leaks:#?}");
    }

    /// Load `entries`: refused with 7, one line naming one of `entries_named`, and nothing
    /// changed anywhere; returns the error line.
    fn assert_refused(&self, what: &str, entries: &[Entry], entries_named: &[&str]) -> String {
        self.check_refused(what, entries, entries_named)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Hostile::assert_refused`], the failure as an error.
    fn check_refused(
        &self,
        what: &str,
        entries: &[Entry],
        entries_named: &[&str],
    ) -> Result<String, String> {
        let (tarball, code, err) = self.load_changing_nothing(what, entries)?;
        refusal(what, code, &err, &tarball, entries_named)?;
        eprint!("{what}: {err}");
        Ok(err)
    }

    /// Load `entries` with ldtarball; an error when anything in the trees, the scratch dir or
    /// the canary changed. Returns the tarball, the exit code and stderr.
    fn load_changing_nothing(
        &self,
        what: &str,
        entries: &[Entry],
    ) -> Result<(PathBuf, i32, String), String> {
        let tarball = self.tarball(
            &format!("{}.tar.gz", what.replace([' ', '/'], "-")),
            entries,
        );
        let before = self.state();
        // What the test planted is not the load's doing.
        let planted = self.leaks();
        let (code, out, err) = self.ldtarball(&tarball, &[]);
        // The state holds the canary's bytes and every link's target: equal, nothing was
        // read into the trees or written anywhere.
        let after = self.state();
        let leaks: Vec<_> = self
            .leaks()
            .into_iter()
            .filter(|l| !planted.contains(l))
            .collect();
        if after != before || !leaks.is_empty() {
            let new: Vec<_> = after.iter().filter(|l| !before.contains(l)).collect();
            let gone: Vec<_> = before.iter().filter(|l| !after.contains(l)).collect();
            return Err(format!(
                "{what}: exit {code}, leaks {leaks:#?}, new {new:#?}, gone {gone:#?}\n{out}{err}"
            ));
        }
        Ok((tarball, code, err))
    }
}

/// Exit 7 and one stderr line `\nError! refusing to load <tarball>: entry "<e>" ...`
/// for one of `entries_named`.
fn assert_refusal(what: &str, code: i32, err: &str, tarball: &Path, entries_named: &[&str]) {
    refusal(what, code, err, tarball, entries_named).unwrap_or_else(|e| panic!("{e}"));
    eprint!("{what}: {err}");
}

fn refusal(
    what: &str,
    code: i32,
    err: &str,
    tarball: &Path,
    entries_named: &[&str],
) -> Result<(), String> {
    let start = format!("\nError! refusing to load {}: ", tarball.display());
    let named = entries_named
        .iter()
        .any(|e| err.contains(&format!("entry \"{e}\"")));
    if code != 7 || err.lines().count() != 2 || !err.starts_with(&start) || !named {
        return Err(format!(
            "{what}: want exit 7 and one line `{start}entry \"<one of {entries_named:?}>\" ...`, \
             got exit {code}: {err}"
        ));
    }
    Ok(())
}

#[test]
fn eleven_dot_dot_links_reading_an_outside_file_are_refused() {
    let Some(h) = Hostile::new() else {
        return;
    };
    let mut entries = source_tarball();
    entries.extend(dot_dot_chain("./dkms_source_tree"));
    entries.push(symlink(
        "./dkms_source_tree/secret",
        &format!("y11/{}", h.canary()),
    ));
    let mut named = vec!["dkms_source_tree/secret".to_string()];
    named.extend((1..=11).map(|i| format!("dkms_source_tree/y{i}")));
    let named: Vec<&str> = named.iter().map(String::as_str).collect();
    h.assert_refused("dot-dot chain", &entries, &named);
}

#[test]
fn a_hard_link_through_the_dot_dot_chain_is_refused() {
    let Some(h) = Hostile::new() else {
        return;
    };
    let mut entries = source_tarball();
    entries.extend(dot_dot_chain("./dkms_source_tree"));
    entries.push(hard_link(
        "./dkms_source_tree/secret",
        &format!("dkms_source_tree/y11{}", h.canary()),
    ));
    h.assert_refused(
        "hard link through chain",
        &entries,
        &["dkms_source_tree/secret"],
    );
}

/// The prober's second step: a first tarball plants `out` (through the chain) in
/// `<src>/hostile-1.0`, the module is removed (dkms leaves the source tree), and a second
/// tarball's `out/planted` is merged into the source dir.
#[test]
fn a_second_tarball_does_not_write_through_a_link_the_first_planted() {
    let Some(h) = Hostile::new() else {
        return;
    };
    let outside_dir = h.outside.join("dir");
    let mut first = source_tarball();
    first.extend(dot_dot_chain("./dkms_source_tree"));
    first.push(symlink(
        "./dkms_source_tree/out",
        &format!("y11/{}", outside_dir.display()),
    ));
    let first = h.tarball("first.tar.gz", &first);
    let mut second = source_tarball();
    second.push(dir("./dkms_source_tree/out/"));
    second.push(file("./dkms_source_tree/out/planted", "written through\n"));
    let second = h.tarball("second.tar.gz", &second);

    let (first_code, _, first_err) = h.ldtarball(&first, &[]);
    run(&mut h.s.dkms_rs(&["remove", "hostile/1.0", "--all"]));
    let (second_code, out, err) = h.ldtarball(&second, &[]);
    assert_eq!(
        listing(&outside_dir),
        Vec::<String>::new(),
        "the second tarball wrote through the first one's link\n{out}{err}"
    );
    h.assert_nothing_read("two tarballs");
    assert_refusal(
        "first tarball",
        first_code,
        &first_err,
        &first,
        &["dkms_source_tree/out", "dkms_source_tree/y1"],
    );
    assert_eq!(second_code, 0, "{out}{err}");
    let planted = h.s.source_tree.join("hostile-1.0/out/planted");
    assert!(
        planted.is_file() && !planted.parent().unwrap().is_symlink(),
        "{out}{err}"
    );
}

/// Links already in `<src>/<m>-<v>` (left by anything) are never followed by the merge: a
/// directory of the tarball that meets one is refused before anything is written.
#[test]
fn the_merge_refuses_a_directory_that_is_a_link_in_the_source_dir() {
    let Some(h) = Hostile::new() else {
        return;
    };
    let dest = h.s.source_tree.join("hostile-1.0");
    std::fs::create_dir_all(dest.join("sub")).unwrap();
    std::fs::write(dest.join("dkms.conf"), CONF).unwrap();
    std::os::unix::fs::symlink(h.outside.join("dir"), dest.join("out")).unwrap();
    std::os::unix::fs::symlink("../../../outside/dir", dest.join("sub/out")).unwrap();
    for (what, name) in [("planted link", "out"), ("planted nested link", "sub/out")] {
        let mut entries = source_tarball();
        entries.push(dir("./dkms_source_tree/sub/"));
        entries.push(dir(&format!("./dkms_source_tree/{name}/")));
        entries.push(file(&format!("./dkms_source_tree/{name}/planted"), "x\n"));
        entries.push(file("./dkms_source_tree/a-file", "x\n"));
        h.assert_refused(what, &entries, &[&format!("dkms_source_tree/{name}")]);
    }
}

/// A file of the tarball where the source dir has a link replaces the link (by rename); the
/// file it pointed to is not written.
#[test]
fn the_merge_replaces_a_link_where_the_tarball_has_a_file() {
    let Some(h) = Hostile::new() else {
        return;
    };
    let dest = h.s.source_tree.join("hostile-1.0");
    std::fs::create_dir_all(&dest).unwrap();
    std::os::unix::fs::symlink(h.outside.join("canary"), dest.join("Kbuild")).unwrap();
    let tarball = h.tarball("replace.tar.gz", &source_tarball());
    let (code, out, err) = h.ldtarball(&tarball, &[]);
    assert_eq!(code, 0, "{out}{err}");
    h.assert_nothing_read("file over link");
    assert!(!dest.join("Kbuild").is_symlink());
    assert_eq!(
        std::fs::read_to_string(dest.join("Kbuild")).unwrap(),
        "obj-m := hostile.o\n"
    );
}

/// Links already in the source dir that stayed inside it must stay inside once the tarball
/// is merged: here the tarball's `q -> .` (harmless alone) turns the existing `d/e ->
/// ../q/../../..` (inside while `q -> sub/a/b`) into a way three levels out.
#[test]
fn the_merge_refuses_to_redirect_an_existing_link_out() {
    let Some(h) = Hostile::new() else {
        return;
    };
    let dest = h.s.source_tree.join("hostile-1.0");
    std::fs::create_dir_all(dest.join("sub/a/b")).unwrap();
    std::fs::create_dir_all(dest.join("d")).unwrap();
    std::os::unix::fs::symlink("sub/a/b", dest.join("q")).unwrap();
    std::os::unix::fs::symlink("../q/../../..", dest.join("d/e")).unwrap();
    assert_eq!(dest.join("d/e").canonicalize().unwrap(), dest);
    let mut entries = source_tarball();
    entries.push(symlink("./dkms_source_tree/q", "."));
    let err = h.assert_refused("redirected link", &entries, &["dkms_source_tree/q"]);
    assert!(
        err.contains(&dest.join("d/e").display().to_string()),
        "{err}"
    );
}

/// `<src>/<m>-<v>` is the root of the source's links: one to a sibling (another module's
/// source) is inside the archive, not inside the module.
#[test]
fn a_link_out_of_the_source_dir_into_the_source_tree_is_refused() {
    let Some(h) = Hostile::new() else {
        return;
    };
    let other = h.s.source_tree.join("other-2.0");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("secret"), CANARY).unwrap();
    let mut entries = source_tarball();
    entries.push(symlink("./dkms_source_tree/peek", "../other-2.0/secret"));
    h.assert_refused("sibling link", &entries, &["dkms_source_tree/peek"]);
}

#[test]
fn a_module_name_that_is_a_path_is_refused() {
    let Some(h) = Hostile::new() else {
        return;
    };
    for (what, name, version) in [
        ("name with ..", "../outside/esc", "1.0"),
        ("version with /", "esc", "1.0/../../../outside/x"),
        ("name ..", "..", "1.0"),
    ] {
        let conf = format!(
            "PACKAGE_NAME=\"{name}\"\nPACKAGE_VERSION=\"{version}\"\n\
             BUILT_MODULE_NAME[0]=\"esc\"\nDEST_MODULE_LOCATION[0]=\"/updates\"\n"
        );
        let entries = vec![
            dir("./"),
            dir("./dkms_source_tree/"),
            file("./dkms_source_tree/dkms.conf", &conf),
        ];
        // The dkms.conf reader refuses such names wherever it reads one (exit 8, dkms's code
        // for a bad dkms.conf), here in the extracted tarball, before anything is loaded.
        let (_, code, err) = h
            .load_changing_nothing(what, &entries)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(code, 8, "{what}: {err}");
        // dkms 3.2.2's frame: the problem (naming the line), then "Bad conf file.".
        assert_eq!(err.lines().count(), 4, "{what}: {err}");
        assert!(
            err.starts_with("dkms.conf: Error! ")
                && err.contains("dkms_source_tree/dkms.conf:")
                && err.contains("is not a single path component")
                && err.contains("\nError! Bad conf file.\n"),
            "{what}: {err}"
        );
    }
}

/// What extract refuses by entry: names, kinds, links, and entries under a link.
/// The hostile entries extract must refuse (after [`source_tarball`]), each with the entry
/// its refusal names, for `h`'s paths.
fn hostile_entries(h: &Hostile) -> Vec<(&'static str, Vec<Entry>, String)> {
    let canary = h.canary();
    let evil = h.outside.join("dir/evil").display().to_string();
    let cases: Vec<(&str, Vec<Entry>, &str)> = vec![
        ("absolute name", vec![file(&evil, "x\n")], &evil),
        (
            "dot-dot name",
            vec![file("./dkms_source_tree/../../outside/dir/evil", "x\n")],
            "./dkms_source_tree/../../outside/dir/evil",
        ),
        (
            "absolute symlink",
            vec![symlink("./dkms_source_tree/l", &canary)],
            "dkms_source_tree/l",
        ),
        (
            "dot-dot symlink",
            vec![symlink("./dkms_source_tree/l", "../../outside/canary")],
            "dkms_source_tree/l",
        ),
        (
            "entry under a symlink",
            vec![
                dir("./dkms_source_tree/sub/"),
                symlink("./dkms_source_tree/l", "sub"),
                file("./dkms_source_tree/l/f", "x\n"),
            ],
            "dkms_source_tree/l/f",
        ),
        (
            "absolute hard link",
            vec![hard_link("./dkms_source_tree/h", &canary)],
            "dkms_source_tree/h",
        ),
        (
            "dot-dot hard link",
            vec![hard_link("./dkms_source_tree/h", "../outside/canary")],
            "dkms_source_tree/h",
        ),
        (
            "hard link to a later entry",
            vec![
                hard_link("./dkms_source_tree/h", "dkms_source_tree/later"),
                file("./dkms_source_tree/later", "x\n"),
            ],
            "dkms_source_tree/h",
        ),
        (
            "hard link through a symlink",
            vec![
                dir("./dkms_source_tree/sub/"),
                file("./dkms_source_tree/sub/f", "x\n"),
                symlink("./dkms_source_tree/l", "sub"),
                hard_link("./dkms_source_tree/h", "dkms_source_tree/l/f"),
            ],
            "dkms_source_tree/h",
        ),
        (
            "hard link to a directory",
            vec![
                dir("./dkms_source_tree/sub/"),
                hard_link("./dkms_source_tree/h", "dkms_source_tree/sub"),
            ],
            "dkms_source_tree/h",
        ),
        (
            "character device",
            vec![Entry::Special(
                "./dkms_source_tree/null".into(),
                tar::EntryType::Char,
            )],
            "dkms_source_tree/null",
        ),
        (
            "block device",
            vec![Entry::Special(
                "./dkms_source_tree/disk".into(),
                tar::EntryType::Block,
            )],
            "dkms_source_tree/disk",
        ),
        (
            "fifo",
            vec![Entry::Special(
                "./dkms_source_tree/fifo".into(),
                tar::EntryType::Fifo,
            )],
            "dkms_source_tree/fifo",
        ),
        (
            "layout dir as a link",
            vec![symlink("./dkms_main_tree/k", "../dkms_source_tree")],
            "dkms_main_tree/k",
        ),
        (
            "symlink loop",
            vec![
                symlink("./dkms_source_tree/a", "b"),
                symlink("./dkms_source_tree/b", "a"),
            ],
            "dkms_source_tree/a",
        ),
        (
            "dot-dot after a missing name",
            vec![
                dir("./dkms_source_tree/d/"),
                symlink("./dkms_source_tree/d/l", "missing/../.."),
            ],
            "dkms_source_tree/d/l",
        ),
    ];
    cases
        .into_iter()
        .map(|(what, extra, named)| (what, extra, named.to_string()))
        .collect()
}

#[test]
fn hostile_entries_are_refused_whole() {
    // Every case is tried, each in a tree of its own, then every failure shown.
    let mut failed = Vec::new();
    let Some(first) = Hostile::new() else {
        return;
    };
    for i in 0..hostile_entries(&first).len() {
        let Some(h) = Hostile::new() else {
            return;
        };
        let (what, extra, named) = hostile_entries(&h).swap_remove(i);
        let mut entries = source_tarball();
        entries.extend(extra);
        match h.check_refused(what, &entries, &[&named]) {
            Ok(_) => {}
            Err(e) => failed.push(e),
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// A hard link to a file the tarball extracted before it loads as a copy of that file, as
/// dkms's `cp -rf` out of its extraction directory leaves it: never as a link.
#[test]
fn an_in_archive_hard_link_loads_as_a_copy() {
    let Some(h) = Hostile::new() else {
        return;
    };
    let mut entries = source_tarball();
    entries.push(hard_link(
        "./dkms_source_tree/Kbuild.copy",
        "dkms_source_tree/Kbuild",
    ));
    let tarball = h.tarball("hardlink.tar.gz", &entries);
    let (code, out, err) = h.ldtarball(&tarball, &[]);
    assert_eq!(code, 0, "{out}{err}");
    let copy = h.s.source_tree.join("hostile-1.0/Kbuild.copy");
    assert_eq!(
        std::fs::read_to_string(&copy).unwrap(),
        "obj-m := hostile.o\n"
    );
    assert_eq!(std::fs::metadata(&copy).unwrap().nlink(), 1);
    h.assert_nothing_read("in-archive hard link");
}

/// A prebuilt directory is moved to `<tree>/<m>/<v>/<k>/<a>`: a "kernel" named `source` would
/// land in the module's source through the tree's own `source` link.
#[test]
fn a_prebuilt_dir_is_not_moved_through_the_trees_source_link() {
    let Some(h) = Hostile::new() else {
        return;
    };
    let arch = support::arch();
    let good = h.tarball("good.tar.gz", &source_tarball());
    let (code, out, err) = h.ldtarball(&good, &[]);
    assert_eq!(code, 0, "{out}{err}");
    let mut entries = source_tarball();
    for d in [
        "source/",
        &format!("source/{arch}/"),
        &format!("source/{arch}/module/"),
    ] {
        entries.push(dir(&format!("./dkms_main_tree/{d}")));
    }
    entries.push(file(
        &format!("./dkms_main_tree/source/{arch}/module/hostile.ko"),
        "not a module\n",
    ));
    let tarball = h.tarball("through-source.tar.gz", &entries);
    let before = h.state();
    let (code, out, err) = h.ldtarball(&tarball, &["--force"]);
    assert_eq!(h.state(), before, "{out}{err}");
    assert_refusal(
        "through source",
        code,
        &err,
        &tarball,
        &["dkms_main_tree/source"],
    );
}

/// A link already in the dkms tree where a prebuilt dir goes (`<tree>/<m>/<v>/<k>`) is not
/// followed by the move either.
#[test]
fn a_prebuilt_dir_is_not_moved_through_a_link_in_the_tree() {
    let Some(h) = Hostile::new() else {
        return;
    };
    let arch = support::arch();
    let good = h.tarball("good.tar.gz", &source_tarball());
    let (code, out, err) = h.ldtarball(&good, &[]);
    assert_eq!(code, 0, "{out}{err}");
    let k = support::FAKE_KERNEL;
    std::os::unix::fs::symlink(
        h.outside.join("dir"),
        h.s.dkms_tree.join("hostile/1.0").join(k),
    )
    .unwrap();
    let mut entries = source_tarball();
    for d in [
        k.to_string(),
        format!("{k}/{arch}"),
        format!("{k}/{arch}/module"),
    ] {
        entries.push(dir(&format!("./dkms_main_tree/{d}/")));
    }
    entries.push(file(
        &format!("./dkms_main_tree/{k}/{arch}/module/hostile.ko"),
        "not a module\n",
    ));
    let tarball = h.tarball("through-link.tar.gz", &entries);
    let before = h.state();
    let (code, out, err) = h.ldtarball(&tarball, &["--force"]);
    assert_eq!(h.state(), before, "{out}{err}");
    assert_refusal(
        "through a tree link",
        code,
        &err,
        &tarball,
        &[&format!("dkms_main_tree/{k}")],
    );
}
