//! Who runs the steps of a build that execute the module's code (framework.conf's
//! `build_user`): copying the source, patches, PRE_BUILD, make, strip and POST_BUILD run as
//! that user, in a build directory it owns, with a clean environment; signing, storing into
//! the tree, installing and depmod stay with the caller (root).
//!
//! dkms 2 ran `su nobody -c make`; dkms 3 runs everything as root; akmods builds as its
//! own `akmods` user. Here: `build_user=<name>` names the user; unset means the engine
//! package's system user [`DEFAULT_BUILD_USER`] when it exists, else the caller (today's
//! behaviour, e.g. from a source checkout); `build_user=root` (or `0`) keeps the caller.
//! A caller that is not root cannot switch users and builds as itself.

use std::ffi::CStr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{ActionError, io_error};
use crate::framework::DEFAULT_BUILD_USER;

/// The user a build's steps run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildUser {
    /// As the caller, with its environment: dkms 3's behaviour.
    Caller,
    /// As `name` (uid, primary gid; no supplementary groups).
    User { name: String, uid: u32, gid: u32 },
}

/// Variables a build as [`BuildUser::User`] keeps from the caller's environment (the rest
/// is cleared): the search path, the locale, and what kbuild and reproducible builds read.
const KEPT_ENV: [&str; 13] = [
    "PATH",
    "LANG",
    "LC_ALL",
    "LANGUAGE",
    "ARCH",
    "CROSS_COMPILE",
    "KCFLAGS",
    "KCPPFLAGS",
    "KBUILD_BUILD_TIMESTAMP",
    "KBUILD_BUILD_USER",
    "KBUILD_BUILD_HOST",
    "SOURCE_DATE_EPOCH",
    "TERM",
];

impl BuildUser {
    /// framework.conf's `build_user` (value and the file that set it) as a user: see the
    /// module doc. A named user that does not exist is [`ActionError::NoBuildUser`].
    pub fn resolve(setting: Option<&(String, PathBuf)>) -> Result<BuildUser, ActionError> {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let user = match setting {
            Some((name, _)) if name == "root" || name == "0" => return Ok(BuildUser::Caller),
            Some((name, file)) => match lookup(name) {
                Some(user) => user,
                None => {
                    return Err(ActionError::NoBuildUser {
                        file: file.clone(),
                        user: name.clone(),
                    });
                }
            },
            None => match lookup(DEFAULT_BUILD_USER) {
                Some(user) => user,
                None => return Ok(BuildUser::Caller),
            },
        };
        match user {
            BuildUser::User { uid: 0, .. } => Ok(BuildUser::Caller),
            user if root => Ok(user),
            _ => Ok(BuildUser::Caller),
        }
    }

    /// Whether the build runs as another user than the caller.
    pub fn is_other(&self) -> bool {
        matches!(self, BuildUser::User { .. })
    }

    /// `cmd` made to run as this user: uid and gid set (std clears the supplementary groups
    /// with `setgroups(0)` when it sets a uid and no groups were given), environment cleared
    /// but for [`KEPT_ENV`] and `HOME=/nonexistent` (as the package's user has). `PWD` and
    /// the variables a step sets itself are set after this, by the caller.
    pub fn apply(&self, cmd: &mut Command) {
        let BuildUser::User { uid, gid, .. } = self else {
            return;
        };
        let kept: Vec<_> = KEPT_ENV
            .iter()
            .filter_map(|name| std::env::var_os(name).map(|v| (*name, v)))
            .collect();
        let pwd = cmd
            .get_envs()
            .find(|(k, _)| *k == "PWD")
            .and_then(|(_, v)| v.map(ToOwned::to_owned));
        cmd.env_clear().envs(kept).env("HOME", "/nonexistent");
        if let Some(pwd) = pwd {
            cmd.env("PWD", pwd);
        }
        cmd.uid(*uid).gid(*gid);
    }

    /// A fresh, empty build directory owned by this user (mode 0755) for a build as
    /// another user; its parent (`<m>/<v>/`) stays root's, so the user cannot step out.
    pub fn make_build_dir(&self, dir: &Path) -> Result<(), ActionError> {
        let BuildUser::User { uid, gid, .. } = self else {
            return Ok(());
        };
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o755)
            .create(dir)
            .map_err(|e| io_error(dir, e))?;
        std::os::unix::fs::chown(dir, Some(*uid), Some(*gid)).map_err(|e| io_error(dir, e))
    }
}

/// The passwd entry of `name` (getpwnam_r: builds run on several threads).
fn lookup(name: &str) -> Option<BuildUser> {
    let c_name = std::ffi::CString::new(name).ok()?;
    let mut buf = vec![0u8; 16384];
    // SAFETY: an all-zero passwd is a valid value to be filled in.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer points at memory that lives across the call; buf's length is given.
    let rc = unsafe {
        libc::getpwnam_r(
            c_name.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut found,
        )
    };
    if rc != 0 || found.is_null() {
        return None;
    }
    // SAFETY: on success pw_name points at a NUL-terminated string inside buf.
    let name = unsafe { CStr::from_ptr(pwd.pw_name) }
        .to_string_lossy()
        .into_owned();
    Some(BuildUser::User {
        name,
        uid: pwd.pw_uid,
        gid: pwd.pw_gid,
    })
}

/// Open `path` for reading without following a symlink at its end, and only if it is a
/// regular file: what root reads from a build directory another user owns (a Makefile may
/// have planted a link to /etc/shadow where the module or make.log should be).
pub fn open_regular(path: &Path) -> Result<std::fs::File, ActionError> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| io_error(path, e))?;
    let meta = file.metadata().map_err(|e| io_error(path, e))?;
    if !meta.is_file() {
        return Err(io_error(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
        ));
    }
    Ok(file)
}

/// Copy the regular file `from` ([`open_regular`]) to a new file `to`.
pub fn copy_regular(from: &Path, to: &Path) -> Result<(), ActionError> {
    let mut src = open_regular(from)?;
    let mut dst = std::fs::File::create(to).map_err(|e| io_error(to, e))?;
    std::io::copy(&mut src, &mut dst).map_err(|e| io_error(from, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_missing_users() {
        let file = PathBuf::from("/etc/dkms/framework.conf");
        let root = ("root".to_string(), file.clone());
        assert_eq!(BuildUser::resolve(Some(&root)).unwrap(), BuildUser::Caller);
        let missing = ("no-such-user-dkms-rs-test".to_string(), file);
        let err = BuildUser::resolve(Some(&missing)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/etc/dkms/framework.conf: build_user=no-such-user-dkms-rs-test: no such user"
        );
    }

    #[test]
    fn open_regular_refuses_links_and_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let link = dir.path().join("l");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert!(open_regular(&file).is_ok());
        assert!(open_regular(&link).is_err());
        assert!(open_regular(dir.path()).is_err());
    }
}
