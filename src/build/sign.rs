//! Module signing as dkms 3.2.2 does it on Debian (`prepare_signing`, `prepare_mok`, the
//! signing step of `do_build`): kbuild's sign-file, the MOK pair (made with the openssl
//! command when missing), the hash the kernel's CONFIG_MODULE_SIG_HASH names.
//!
//! Each step says what it found on stdout in dkms's words; nothing here fails a build: a
//! kernel without signing, a missing tool, key or certificate leaves the modules unsigned,
//! and a sign-file failure is a warning, as in dkms.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{is_executable, on_path};
use crate::conf::ResolveContext;
use crate::conf::lexer::{self, Part};
use crate::console::{Console, err_line};

/// dkms 3.2.2's key and certificate when framework.conf names none (always these paths,
/// whatever `--dkmstree` says: `prepare_mok` spells them out).
pub const DEFAULT_MOK_KEY: &str = "/var/lib/dkms/mok.key";
/// See [`DEFAULT_MOK_KEY`].
pub const DEFAULT_MOK_CERT: &str = "/var/lib/dkms/mok.pub";

/// framework.conf's `sign_file`, `mok_signing_key`, `mok_certificate` as written (quotes
/// removed): `$kernelver`, `${arch}`, ... are expanded for each kernel, as dkms sources
/// framework.conf again for each build.
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

/// The MOK pair, in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MokPair {
    pub key: PathBuf,
    pub cert: PathBuf,
}

/// dkms's `$kernel_config` for signing: `include/config/auto.conf` of the headers when it is
/// there, else `.config` (`set_kernel_source_dir_and_kconfig`).
pub fn kernel_config(headers: &Path) -> PathBuf {
    let auto = headers.join("include/config/auto.conf");
    if auto.exists() {
        auto
    } else {
        headers.join(".config")
    }
}

/// Whether a file can be made in `path`'s directory (a temporary one, removed at once).
fn can_write_beside(path: &Path) -> bool {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    tempfile::Builder::new()
        .prefix(".dkms-rs-mok-")
        .tempfile_in(dir)
        .is_ok()
}

/// The kernel config signing reads: `--config`'s, else the headers' ([`kernel_config`]).
fn signing_config(ctx: &ResolveContext) -> PathBuf {
    if ctx.kernel_config_given {
        ctx.kernel_config.clone()
    } else {
        kernel_config(&ctx.kernel_source_dir)
    }
}

/// `CONFIG_MODULE_SIG_HASH` of a kernel config, quotes removed (`grep | cut -f2 -d= | sed`);
/// `None` when the kernel is built without module signing.
pub fn sig_hash(config: &str) -> Option<String> {
    config
        .lines()
        .find_map(|l| l.strip_prefix("CONFIG_MODULE_SIG_HASH="))
        .map(|h| h.split('=').next().unwrap_or("").replace('"', ""))
}

impl SigningConf {
    /// Each setting framework.conf leaves unset taken from the environment variable of the
    /// same name (`sign_file`, `mok_signing_key`, `mok_certificate`), as dkms, which never
    /// sets them before sourcing framework.conf, sees them.
    pub fn or_environment(self) -> SigningConf {
        let env = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        SigningConf {
            sign_file: self.sign_file.or_else(|| env("sign_file")),
            mok_signing_key: self.mok_signing_key.or_else(|| env("mok_signing_key")),
            mok_certificate: self.mok_certificate.or_else(|| env("mok_certificate")),
        }
    }

    /// dkms 3.2.2's `prepare_signing` for the kernel of `ctx`: its lines on stdout, and how to
    /// sign, or `None` when modules will not be signed (the line printed says why).
    pub fn prepare(&self, ctx: &ResolveContext, console: &Console) -> Option<Signing> {
        let config = signing_config(ctx);
        let Ok(text) = std::fs::read_to_string(&config) else {
            console.say(&format!(
                "Kernel config {} not found, modules won't be signed",
                config.display()
            ));
            return None;
        };
        let Some(hash) = sig_hash(&text) else {
            console.say(
                "The kernel is built without module signing facility, modules won't be signed",
            );
            return None;
        };
        let sign_file = match &self.sign_file {
            Some(raw) => expand(raw, ctx, console),
            None => default_sign_file(ctx),
        };
        console.say(&format!("Sign command: {}", sign_file.display()));
        if !is_executable(&sign_file) {
            console.say(&format!(
                "Binary {} not found, modules won't be signed",
                sign_file.display()
            ));
            return None;
        }
        let mok = self.prepare_mok(ctx, console)?;
        Some(Signing {
            sign_file,
            hash,
            key: mok.key,
            cert: mok.cert,
        })
    }

    /// dkms 3.2.2's `prepare_mok` (and so `generate_mok`): name the key and certificate, and
    /// when either is missing make a new self-signed pair with openssl, as dkms does
    /// (`openssl req -new -x509 -nodes -days 36500 -subj "/CN=DKMS module signing key"
    /// -newkey rsa:2048 -addext extendedKeyUsage=codeSigning -outform DER`). Unlike dkms, the
    /// pair is written under temporary names and renamed into place, the key 0600: it appears
    /// whole or not at all. `None` when there is no pair (the line printed says why).
    pub fn prepare_mok(&self, ctx: &ResolveContext, console: &Console) -> Option<MokPair> {
        let path = |raw: &Option<PathBuf>, default: &str| match raw {
            Some(raw) => expand(raw, ctx, console),
            None => PathBuf::from(default),
        };
        let key = path(&self.mok_signing_key, DEFAULT_MOK_KEY);
        console.say(&format!("Signing key: {}", key.display()));
        let cert = path(&self.mok_certificate, DEFAULT_MOK_CERT);
        console.say(&format!("Public certificate (MOK): {}", cert.display()));
        // sign-file also takes a "pkcs11:..." URI as the key (scripts/sign-file.c).
        let pkcs11 = key.as_os_str().as_encoded_bytes().starts_with(b"pkcs11:");
        let whole = key.is_file() && cert.is_file();
        if !pkcs11 && !whole {
            console.say(
                "Certificate or key are missing, generating self signed certificate for MOK...",
            );
            if !on_path("openssl") {
                console.say("openssl not found, can't generate key and certificate.");
                return None;
            }
            if let Err(why) = generate(&key, &cert) {
                console.verbose(&why);
            }
            // dkms 3.2.2's openssl writes the key, then fails on a certificate it cannot
            // write, and dkms names the certificate; dkms-rs writes neither half then, and
            // names what dkms names: the key only when the key could not be written.
            if !key.is_file() && !can_write_beside(&key) {
                console.say(&format!(
                    "Key file {} not found and can't be generated, modules won't be signed",
                    key.display()
                ));
                return None;
            }
        }
        if !cert.is_file() {
            console.say(&format!(
                "Certificate file {} not found and can't be generated, modules won't be signed",
                cert.display()
            ));
            return None;
        }
        Some(MokPair { key, cert })
    }
}

/// Where dkms 3.2.2 looks for sign-file on Debian: kbuild's
/// (`/usr/lib/linux-kbuild-${kernelver%.*}/scripts/sign-file`), else the one in
/// `$install_tree/$kernelver/build/scripts/`.
fn default_sign_file(ctx: &ResolveContext) -> PathBuf {
    let kernel = ctx.kernelver.as_str();
    if ctx.running_distribution.starts_with("debian") {
        let short = kernel.rsplit_once('.').map_or(kernel, |(a, _)| a);
        let kbuild = PathBuf::from(format!("/usr/lib/linux-kbuild-{short}/scripts/sign-file"));
        if kbuild.is_file() {
            return kbuild;
        }
    }
    ctx.install_tree
        .join(kernel)
        .join("build/scripts/sign-file")
}

/// A framework.conf path with `$name` / `${name}` expanded as dkms's `safe_source` re-reads
/// it (`mok_signing_key[0]="<value>"`): dkms's variables for this kernel, else the
/// environment, else empty. A value with more shell than that is used as written, with a
/// warning.
pub fn expand(raw: &Path, ctx: &ResolveContext, console: &Console) -> PathBuf {
    let text = raw.to_string_lossy();
    if !text.contains('$') {
        return raw.to_path_buf();
    }
    let parsed = lexer::parse(&format!("v=\"{text}\""));
    let parts = match parsed.as_deref() {
        Ok([a]) => &a.value,
        _ => {
            console.warn(&format!(
                "framework.conf: {text}: shell beyond $name and ${{name}} is not expanded"
            ));
            return raw.to_path_buf();
        }
    };
    let path_var = |p: &Path| p.to_string_lossy().into_owned();
    let mut out = String::new();
    for part in parts {
        match part {
            Part::Lit(s) => out.push_str(s),
            Part::Var(name) => out.push_str(&match name.as_str() {
                "kernelver" => ctx.kernelver.clone(),
                "arch" => ctx.arch.clone(),
                "kernel_source_dir" => path_var(&ctx.kernel_source_dir),
                "kernel_config" => path_var(&signing_config(ctx)),
                "dkms_tree" => path_var(&ctx.dkms_tree),
                "source_tree" => path_var(&ctx.source_tree),
                "install_tree" => path_var(&ctx.install_tree),
                "module" => ctx.module.clone().unwrap_or_default(),
                "module_version" => ctx.module_version.clone().unwrap_or_default(),
                other => std::env::var(other).unwrap_or_default(),
            }),
        }
    }
    PathBuf::from(out)
}

/// A new MOK pair at `key` and `cert`: openssl writes temporary files beside them, which are
/// renamed into place only when both are there. The error says why there is none.
fn generate(key: &Path, cert: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let temp = |path: &Path| {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        tempfile::Builder::new()
            .prefix(".dkms-rs-mok-")
            .tempfile_in(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))
    };
    // tempfile creates them 0600; the certificate is public (openssl's 0644 under umask 022).
    let new_key = temp(key)?;
    let new_cert = temp(cert)?;
    let out = Command::new("openssl")
        .args(["req", "-new", "-x509", "-nodes", "-days", "36500"])
        .args([
            "-subj",
            "/CN=DKMS module signing key",
            "-newkey",
            "rsa:2048",
        ])
        .arg("-keyout")
        .arg(new_key.path())
        .args(["-addext", "extendedKeyUsage=codeSigning", "-outform", "DER"])
        .arg("-out")
        .arg(new_cert.path())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("openssl: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "openssl req: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let meta = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    if meta(new_key.path()) == 0 || meta(new_cert.path()) == 0 {
        return Err("openssl req wrote no key or certificate".into());
    }
    std::fs::set_permissions(new_key.path(), std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("{}: {e}", new_key.path().display()))?;
    std::fs::set_permissions(new_cert.path(), std::fs::Permissions::from_mode(0o644))
        .map_err(|e| format!("{}: {e}", new_cert.path().display()))?;
    // The key first: a pair cut short between the renames has no certificate, and the next
    // command makes a new pair, as for any missing half.
    new_key
        .persist(key)
        .map_err(|e| format!("{}: {}", key.display(), e.error))?;
    new_cert
        .persist(cert)
        .map_err(|e| format!("{}: {}", cert.display(), e.error))?;
    Ok(())
}

impl Signing {
    /// Sign `module` in place (`sign-file <hash> <key> <cert> <module>`), saying so as dkms
    /// 3.2.2 does; a failure is its warning with sign-file's output, and the module stays
    /// unsigned (sign-file writes `<module>.~signed~` and renames it over the module).
    pub fn sign(&self, module: &Path, console: &Console) {
        self.sign_as(module, module, console);
    }

    /// [`Signing::sign`] `module`, named `shown` in the lines said (the build dir's path,
    /// as dkms says it, when `module` is root's copy of a module built as another user).
    pub fn sign_as(&self, module: &Path, shown: &Path, console: &Console) {
        console.say(&format!("Signing module {}", shown.display()));
        let out = Command::new(&self.sign_file)
            .arg(&self.hash)
            .arg(&self.key)
            .arg(&self.cert)
            .arg(module)
            .stdin(Stdio::null())
            .output();
        let output = match out {
            Ok(out) if out.status.success() => return,
            Ok(out) => {
                let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
                text.push_str(&String::from_utf8_lossy(&out.stderr));
                text
            }
            Err(e) => format!("{}: {e}", self.sign_file.display()),
        };
        console.warn(&format!("Failed to sign module '{}'!", shown.display()));
        if !console.quiet {
            // dkms's `warn` echoes sign-file's output as one more line, empty or not.
            err_line(output.trim_end_matches('\n'));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_read_quoted_or_not() {
        assert_eq!(
            sig_hash("A=1\nCONFIG_MODULE_SIG_HASH=\"sha256\"\n").as_deref(),
            Some("sha256")
        );
        assert_eq!(
            sig_hash("CONFIG_MODULE_SIG_HASH=sha512\n").as_deref(),
            Some("sha512")
        );
        assert_eq!(sig_hash("# CONFIG_MODULE_SIG is not set\n"), None);
    }

    #[test]
    fn framework_paths_expand_dkms_variables_then_the_environment() {
        let ctx = ResolveContext::new("6.1.0-999-amd64", "x86_64").with_module("hello", "0.1");
        let console = Console {
            quiet: true,
            ..Console::default()
        };
        let got = |raw: &str| expand(Path::new(raw), &ctx, &console);
        assert_eq!(
            got("/k/${kernelver}/$arch/${module}-$module_version.key"),
            PathBuf::from("/k/6.1.0-999-amd64/x86_64/hello-0.1.key")
        );
        assert_eq!(got("/k/$dkms_rs_unset_name/x"), PathBuf::from("/k//x"));
        assert_eq!(got("/plain/mok.key"), PathBuf::from("/plain/mok.key"));
        assert_eq!(got("/k/$(uname)"), PathBuf::from("/k/$(uname)"));
    }
}
