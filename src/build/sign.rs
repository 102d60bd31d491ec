//! Module signing as dkms does it on Debian: kbuild's sign-file with the MOK pair, hashed as
//! the kernel's CONFIG_MODULE_SIG_HASH says.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{is_executable, run_quiet};
use crate::error::ActionError;
use crate::kernel::Target;

/// framework.conf's `sign_file`, `mok_signing_key`, `mok_certificate`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SigningConf {
    pub sign_file: Option<PathBuf>,
    pub mok_signing_key: Option<PathBuf>,
    pub mok_certificate: Option<PathBuf>,
}

/// How to sign modules for one kernel, when everything for it is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signing {
    pub sign_file: PathBuf,
    pub hash: String,
    pub key: PathBuf,
    pub cert: PathBuf,
}

impl SigningConf {
    /// dkms's `prepare_signing` on Debian: kbuild's sign-file, the MOK pair in /var/lib/dkms,
    /// the kernel's CONFIG_MODULE_SIG_HASH. `None` when sign-file or the key pair is missing
    /// (dkms would create the pair with openssl; dkms-rs leaves key creation to the admin).
    pub fn for_kernel(
        &self,
        target: &Target,
        headers: &Path,
        config: Option<&str>,
    ) -> Option<Signing> {
        let kernel = target.kernel.as_str();
        let sign_file = self.sign_file.clone().unwrap_or_else(|| {
            let short = kernel.rsplit_once('.').map_or(kernel, |(a, _)| a);
            let debian = PathBuf::from(format!("/usr/lib/linux-kbuild-{short}/scripts/sign-file"));
            if debian.is_file() {
                debian
            } else {
                headers.join("scripts/sign-file")
            }
        });
        let key = self
            .mok_signing_key
            .clone()
            .unwrap_or_else(|| PathBuf::from("/var/lib/dkms/mok.key"));
        let cert = self
            .mok_certificate
            .clone()
            .unwrap_or_else(|| PathBuf::from("/var/lib/dkms/mok.pub"));
        let key_ok = key.to_string_lossy().starts_with("pkcs11:") || key.is_file();
        if !is_executable(&sign_file) || !key_ok || !cert.is_file() {
            return None;
        }
        let hash = config
            .and_then(|c| {
                c.lines()
                    .find_map(|l| l.strip_prefix("CONFIG_MODULE_SIG_HASH="))
                    .map(|h| h.trim_matches('"').to_string())
            })
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "sha512".to_string());
        Some(Signing {
            sign_file,
            hash,
            key,
            cert,
        })
    }
}

impl Signing {
    /// Sign `module` in place (`sign-file <hash> <key> <cert> <module>`).
    pub fn sign(&self, module: &Path) -> Result<(), ActionError> {
        run_quiet(
            Command::new(&self.sign_file)
                .arg(&self.hash)
                .arg(&self.key)
                .arg(&self.cert)
                .arg(module),
            module,
        )
    }
}
