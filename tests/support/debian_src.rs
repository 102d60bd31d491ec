//! Debian's source packages (bookworm), fetched once with apt under a private configuration
//! (`deb-src` lines of its own, its own lists and cache under `<cache>/apt-bookworm-src/`; the
//! host's apt state is untouched) into `<cache>/debian-sources/<source>/`. The cache is
//! `$DKMS_RS_TEST_CACHE`, else /var/cache/dkms-rs-tests, as for `.ci/fetch-dkms-3.2.2`.
//!
//! Some mirrors serve a source package's .dsc and Debian tarball but not its upstream
//! tarball: [`DebianSource::complete`] says whether every file of the .dsc came.

use std::path::{Path, PathBuf};
use std::process::Command;

/// One source package as fetched.
#[derive(Debug, Clone)]
pub struct DebianSource {
    /// The directory holding the downloaded files.
    pub dir: PathBuf,
    pub dsc: PathBuf,
    /// `<source>_<version>.debian.tar.*`: the debian/ directory.
    pub debian_tar: PathBuf,
    /// Every file the .dsc lists was downloaded (`dpkg-source -x` can unpack it).
    pub complete: bool,
}

impl DebianSource {
    /// Unpack the debian/ directory alone into `dest` (created), which then holds `debian/`.
    pub fn unpack_debian(&self, dest: &Path) {
        std::fs::create_dir_all(dest).unwrap();
        super::run_ok(
            Command::new("tar")
                .arg("-C")
                .arg(dest)
                .arg("-xf")
                .arg(&self.debian_tar),
        );
    }

    /// `dpkg-source -x` of the whole source package into `dest` (must not exist).
    pub fn unpack(&self, dest: &Path) {
        assert!(self.complete, "{} is incomplete", self.dsc.display());
        super::run_ok(
            super::command("dpkg-source")
                .args(["--no-check", "-x"])
                .arg(&self.dsc)
                .arg(dest),
        );
    }
}

fn cache() -> PathBuf {
    std::env::var_os("DKMS_RS_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/dkms-rs-tests"))
}

/// The host's Debian mirror: the first `URIs:` or `deb` line of its sources that is Debian's
/// (`/debian` in it) and not the security archive (as `.ci/fetch-dkms-3.2.2` finds it);
/// sources of other vendors are skipped.
fn mirror() -> String {
    let mut files: Vec<PathBuf> = std::fs::read_dir("/etc/apt/sources.list.d")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    let mut texts: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap_or_default())
        .collect();
    texts.push(std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default());
    texts
        .iter()
        .flat_map(|t| t.lines())
        .filter_map(|l| {
            if let Some(uris) = l.strip_prefix("URIs:") {
                return uris.split_whitespace().next().map(str::to_string);
            }
            let rest = l.strip_prefix("deb ")?;
            let rest = match rest.trim_start().strip_prefix('[') {
                Some(r) => r.split_once(']')?.1,
                None => rest,
            };
            rest.split_whitespace().next().map(str::to_string)
        })
        .find(|u| u.trim_end_matches('/').ends_with("/debian") && !u.contains("security"))
        .unwrap_or_else(|| "http://deb.debian.org/debian".to_string())
}

/// Debian bookworm's source package `source`, fetched once; `None` (skip, or fail under CI)
/// when apt cannot get its .dsc and Debian tarball.
pub fn debian_source(source: &str) -> Option<DebianSource> {
    if !super::require_tool("apt-get") || !super::require_tool("dpkg-source") {
        return None;
    }
    let cache = cache();
    let apt = cache.join("apt-bookworm-src");
    let sources = cache.join("debian-sources");
    for d in [
        apt.join("lists/partial"),
        apt.join("cache/archives/partial"),
        sources.clone(),
    ] {
        std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
    }
    // Tests run in parallel: one fetches, the others wait on the lock.
    let lock = std::fs::File::create(cache.join(".debian-sources.lock")).expect("lock file");
    lock.lock().expect("lock the Debian sources");
    let dest = sources.join(source);
    if !dest.join(".fetched").is_file() {
        let list = apt.join("sources.list");
        std::fs::write(
            &list,
            format!(
                "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {} bookworm main contrib\n",
                mirror()
            ),
        )
        .unwrap();
        let opts = [
            format!("Dir::Etc::sourcelist={}", list.display()),
            "Dir::Etc::sourceparts=-".to_string(),
            format!("Dir::State::Lists={}", apt.join("lists").display()),
            format!("Dir::Cache={}", apt.join("cache").display()),
            "Dir::Cache::pkgcache=".to_string(),
            "Dir::Cache::srcpkgcache=".to_string(),
            "APT::Get::List-Cleanup=0".to_string(),
        ];
        let apt_get = |args: &[&str], dir: &Path| {
            let mut cmd = super::command("apt-get");
            for o in &opts {
                cmd.arg("-o").arg(o);
            }
            cmd.args(args).current_dir(dir);
            cmd.output()
        };
        let updated = apt.join("lists/.updated");
        if !updated.is_file() {
            let ok = apt_get(&["update", "-q"], &apt).is_ok_and(|o| o.status.success());
            // apt-get update succeeds with a warning when a list could not be fetched.
            let has_sources = std::fs::read_dir(apt.join("lists"))
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| e.file_name().to_string_lossy().contains("_Sources"));
            if !ok || !has_sources {
                super::missing("apt-get update of bookworm's deb-src lists");
                return None;
            }
            std::fs::write(&updated, "").unwrap();
        }
        let scratch = tempfile::Builder::new()
            .prefix(&format!("{source}.fetch."))
            .tempdir_in(&sources)
            .unwrap();
        // apt-get source drops to _apt for the download.
        let _ = Command::new("chown")
            .arg("_apt:")
            .arg(scratch.path())
            .status();
        // Its exit status says whether *every* file came; what came is judged below.
        let _ = apt_get(&["source", "--download-only", "-q", source], scratch.path());
        let _ = std::fs::remove_dir_all(&dest);
        std::fs::rename(scratch.keep(), &dest).expect("place the fetched source");
        std::fs::write(dest.join(".fetched"), "").unwrap();
    }
    let files: Vec<PathBuf> = std::fs::read_dir(&dest)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    let named = |suffix: &str| {
        files
            .iter()
            .find(|p| {
                let n = p.file_name().unwrap().to_string_lossy();
                n.starts_with(&format!("{source}_")) && n.contains(suffix)
            })
            .cloned()
    };
    let (Some(dsc), Some(debian_tar)) = (named(".dsc"), named(".debian.tar.")) else {
        super::missing(&format!(
            "Debian's source package {source} (.dsc and debian tarball) from the mirror"
        ));
        return None;
    };
    // The .dsc's Files: lines ("md5 size name").
    let text = std::fs::read_to_string(&dsc).unwrap();
    let complete = text
        .lines()
        .skip_while(|l| !l.starts_with("Files:"))
        .skip(1)
        .take_while(|l| l.starts_with(' '))
        .filter_map(|l| l.split_whitespace().nth(2))
        .all(|name| dest.join(name).is_file());
    Some(DebianSource {
        dir: dest,
        dsc,
        debian_tar,
        complete,
    })
}
