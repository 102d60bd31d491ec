//! `/etc/dkms/framework.conf` and `framework.conf.d/*.conf`: tree roots, jobs, signing keys.
//!
//! dkms sources these files as bash; in practice they hold plain `name=value` assignments,
//! which is all this reader accepts (other lines are ignored, as dkms ignores unknown names).

use std::path::{Path, PathBuf};

/// dkms's roots before framework.conf and the command line (`/usr/sbin/dkms`:
/// `dkms_tree="/var/lib/dkms"`, `source_tree="/usr/src"`, `install_tree="/lib/modules"`).
pub const DEFAULT_DKMS_TREE: &str = "/var/lib/dkms";
/// See [`DEFAULT_DKMS_TREE`].
pub const DEFAULT_SOURCE_TREE: &str = "/usr/src";
/// See [`DEFAULT_DKMS_TREE`].
pub const DEFAULT_INSTALL_TREE: &str = "/lib/modules";
/// framework.conf, framework.conf.d, `no-autoinstall` and the `<module>*.conf` overrides.
pub const DEFAULT_ETC_DIR: &str = "/etc/dkms";

/// The settings dkms 3 reads from framework.conf, with dkms's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framework {
    pub dkms_tree: PathBuf,
    pub source_tree: PathBuf,
    pub install_tree: PathBuf,
    pub verbose: bool,
    pub symlink_modules: bool,
    pub autoinstall_all_kernels: bool,
    /// `parallel_jobs` (dkms 3.1 name); `None` means one per CPU.
    pub parallel_jobs: Option<usize>,
    /// `sign_file`, `mok_signing_key`, `mok_certificate` as written, quotes removed: dkms
    /// sources framework.conf again for each kernel it signs for, so `${kernelver}` and the
    /// other variables in them are expanded then (`build::sign::expand`).
    pub sign_file: Option<PathBuf>,
    pub mok_signing_key: Option<PathBuf>,
    pub mok_certificate: Option<PathBuf>,
    /// Where framework.conf and the `<module>*.conf` overrides live.
    pub etc_dir: PathBuf,
    /// dkms 3.2.2's `post_transaction`: a shell command run after install, uninstall,
    /// unbuild and remove, as written (its `$kernelver` is expanded when it runs).
    pub post_transaction: Option<String>,
    /// `build_user` (dkms-rs's own): who runs the steps of a build that execute the module's
    /// code, as written, with the file that set it last; `None`: unset (see
    /// `build::BuildUser::resolve` for what each value means).
    pub build_user: Option<(String, PathBuf)>,
}

/// The system user the engine package creates for builds (debian/dkms-rs.postinst), used
/// when framework.conf sets no `build_user` and the user exists.
pub const DEFAULT_BUILD_USER: &str = "dkms-rs";

impl Default for Framework {
    fn default() -> Self {
        Framework {
            dkms_tree: PathBuf::from(DEFAULT_DKMS_TREE),
            source_tree: PathBuf::from(DEFAULT_SOURCE_TREE),
            install_tree: PathBuf::from(DEFAULT_INSTALL_TREE),
            verbose: false,
            symlink_modules: false,
            autoinstall_all_kernels: false,
            parallel_jobs: None,
            sign_file: None,
            mok_signing_key: None,
            mok_certificate: None,
            etc_dir: PathBuf::from(DEFAULT_ETC_DIR),
            post_transaction: None,
            build_user: None,
        }
    }
}

impl Framework {
    /// Defaults overridden by `<etc_dir>/framework.conf` then `framework.conf.d/*.conf` in
    /// name order, as dkms's `read_framework_conf` does. Missing files are not an error.
    pub fn read(etc_dir: &Path) -> std::io::Result<Framework> {
        let mut framework = Framework {
            etc_dir: etc_dir.to_path_buf(),
            ..Framework::default()
        };
        let mut files = vec![etc_dir.join("framework.conf")];
        if let Ok(dir) = std::fs::read_dir(etc_dir.join("framework.conf.d")) {
            let mut extra: Vec<PathBuf> = dir
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "conf"))
                .collect();
            extra.sort();
            files.extend(extra);
        }
        for file in files {
            match std::fs::read_to_string(&file) {
                Ok(text) => {
                    let before = framework.build_user.take();
                    framework.apply(&text);
                    match &mut framework.build_user {
                        Some((_, at)) => *at = file.clone(),
                        None => framework.build_user = before,
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(framework)
    }

    /// Apply the assignments of one framework.conf text.
    pub fn apply(&mut self, text: &str) {
        for line in text.lines() {
            let line = line.trim();
            let line = line.strip_prefix("export ").unwrap_or(line);
            if line.starts_with('#') {
                continue;
            }
            let Some((name, value)) = line.split_once('=') else {
                continue;
            };
            let value = unquote(value);
            let path = || Some(PathBuf::from(&value)).filter(|_| !value.is_empty());
            // bash truth: any non-empty value is "set", which is how dkms tests these.
            let flag = !value.is_empty();
            match name.trim() {
                "dkms_tree" => self.dkms_tree = PathBuf::from(&value),
                "source_tree" => self.source_tree = PathBuf::from(&value),
                "install_tree" => self.install_tree = PathBuf::from(&value),
                "verbose" => self.verbose = flag,
                "symlink_modules" => self.symlink_modules = flag,
                "autoinstall_all_kernels" => self.autoinstall_all_kernels = flag,
                "parallel_jobs" => self.parallel_jobs = value.parse().ok(),
                "post_transaction" => {
                    self.post_transaction = Some(value.clone()).filter(|v| !v.is_empty())
                }
                "build_user" => self.build_user = Some((value.clone(), PathBuf::new())),
                "sign_file" => self.sign_file = path(),
                "mok_signing_key" => self.mok_signing_key = path(),
                "mok_certificate" => self.mok_certificate = path(),
                _ => {}
            }
        }
    }
}

/// The value of a shell assignment: quotes removed, trailing `# comment` dropped when unquoted.
fn unquote(value: &str) -> String {
    let value = value.trim();
    for quote in ['"', '\''] {
        if let Some(rest) = value.strip_prefix(quote) {
            return rest.split(quote).next().unwrap_or("").to_string();
        }
    }
    value.split(" #").next().unwrap_or("").trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_override_defaults_in_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("framework.conf"),
            "# comment\ndkms_tree=\"/srv/dkms\"\nparallel_jobs=3\nsign_file='/x/sign-file'\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("framework.conf.d")).unwrap();
        std::fs::write(
            dir.path().join("framework.conf.d/b.conf"),
            "autoinstall_all_kernels=\"yes\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("framework.conf.d/a.conf"),
            "parallel_jobs=5\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("framework.conf.d/c.txt"), "verbose=1\n").unwrap();
        let f = Framework::read(dir.path()).unwrap();
        assert_eq!(f.dkms_tree, PathBuf::from("/srv/dkms"));
        assert_eq!(f.source_tree, PathBuf::from("/usr/src"));
        assert_eq!(f.parallel_jobs, Some(5));
        assert!(f.autoinstall_all_kernels);
        assert!(!f.verbose);
        assert_eq!(f.sign_file, Some(PathBuf::from("/x/sign-file")));
        assert_eq!(f.build_user, None);
        std::fs::write(
            dir.path().join("framework.conf.d/a.conf"),
            "build_user=nobody\n",
        )
        .unwrap();
        let f = Framework::read(dir.path()).unwrap();
        let file = dir.path().join("framework.conf.d/a.conf");
        assert_eq!(f.build_user, Some(("nobody".to_string(), file)));
    }
}
