//! Kernel releases and architectures: headers, `.config`, module suffix, dkms's version order.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A kernel release as `uname -r` prints it, e.g. `6.1.0-999-amd64`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KernelRelease(pub String);

impl fmt::Display for KernelRelease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl KernelRelease {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The running kernel (`uname -r`).
    pub fn running() -> std::io::Result<KernelRelease> {
        let release = Uname::get().release;
        if release.is_empty() {
            return Err(std::io::Error::other("uname(2) gave no kernel release"));
        }
        Ok(KernelRelease(release))
    }

    /// `/lib/modules/<k>/build`: see [`default_headers_dir`].
    pub fn default_headers_dir(&self) -> PathBuf {
        default_headers_dir(&self.0)
    }

    /// The module file suffix dkms uses for this kernel: `.ko` plus the compression that
    /// the kernel's own modules.dep shows (dkms's `set_module_suffix` reads /lib/modules).
    /// Read once per kernel and process: modules.dep is large and `status` asks per module.
    pub fn module_compression(&self) -> ModuleCompression {
        static SEEN: Mutex<BTreeMap<String, ModuleCompression>> = Mutex::new(BTreeMap::new());
        let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
        // Asked for every target of a status: no copy of the name once it is known.
        if let Some(known) = seen.get(&self.0) {
            return *known;
        }
        *seen
            .entry(self.0.clone())
            .or_insert_with(|| read_module_compression(&self.0))
    }
}

/// dkms's `set_module_suffix`: the compression the kernel's own modules.dep shows.
fn read_module_compression(kernel: &str) -> ModuleCompression {
    let dep = Path::new("/lib/modules").join(kernel).join("modules.dep");
    let Ok(text) = std::fs::read_to_string(dep) else {
        return ModuleCompression::None;
    };
    // Same precedence as dkms: the last matching grep wins.
    if text.contains(".zst:") {
        ModuleCompression::Zstd
    } else if text.contains(".xz:") {
        ModuleCompression::Xz
    } else if text.contains(".gz:") {
        ModuleCompression::Gzip
    } else {
        ModuleCompression::None
    }
}

/// A (kernel, arch) pair, the unit dkms builds and installs for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target {
    pub kernel: KernelRelease,
    pub arch: String,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.kernel, self.arch)
    }
}

/// `uname -m` of this machine, which dkms uses when no `-a` is given (`arch=$(uname -m)`).
/// Read at run time from the kernel: Rust's compile-time `ARCH` is `x86`, `arm`, `powerpc64`
/// where uname says `i686`, `armv7l`, `ppc64le`, and a 32-bit userland on a 64-bit kernel
/// (`linux32`, `setarch`) sees the personality's machine, as dkms does.
pub fn machine_arch() -> String {
    Uname::get().machine
}

/// The Debian architecture (`dpkg --print-architecture` on that machine) of a kernel whose
/// `uname -m` is `machine`: what `Architecture:` a package of modules built for it says.
/// uname does not tell endianness or float ABI, so each name maps to the one Debian port
/// that has it (`mips64` is only ever mips64el, `armv7l` armhf); `None` for the rest.
pub fn debian_arch(machine: &str) -> Option<&'static str> {
    Some(match machine {
        "x86_64" => "amd64",
        "i386" | "i486" | "i586" | "i686" => "i386",
        "aarch64" | "arm64" => "arm64",
        // armv8l: a 32-bit userland on an arm64 kernel (linux32), as Debian's armhf buildds.
        "armv7l" | "armv8l" | "armhf" => "armhf",
        "armv5tel" | "armv5tejl" | "armel" => "armel",
        "ppc64le" => "ppc64el",
        "ppc64" => "ppc64",
        "ppc" => "powerpc",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "mips64" => "mips64el",
        "loongarch64" => "loong64",
        "alpha" => "alpha",
        "parisc" | "parisc64" => "hppa",
        "m68k" => "m68k",
        "sh4" => "sh4",
        "sparc64" => "sparc64",
        "ia64" => "ia64",
        _ => return None,
    })
}

/// What `uname(2)` says of the running system.
#[derive(Debug, Clone, Default)]
pub struct Uname {
    /// `uname -s`, e.g. `Linux`.
    pub sysname: String,
    /// `uname -r`, e.g. `6.1.0-999-amd64`.
    pub release: String,
    /// `uname -m`, e.g. `x86_64`.
    pub machine: String,
}

impl Uname {
    /// Ask the kernel; empty strings in the (never seen) case that uname(2) fails.
    pub fn get() -> Uname {
        let mut u = std::mem::MaybeUninit::<libc::utsname>::zeroed();
        // SAFETY: uname fills the zeroed struct; its fields are NUL-terminated C strings.
        unsafe {
            if libc::uname(u.as_mut_ptr()) != 0 {
                return Uname::default();
            }
            let u = u.assume_init();
            let s = |f: &[libc::c_char]| {
                std::ffi::CStr::from_ptr(f.as_ptr())
                    .to_string_lossy()
                    .into_owned()
            };
            Uname {
                sysname: s(&u.sysname),
                release: s(&u.release),
                machine: s(&u.machine),
            }
        }
    }
}

/// `/lib/modules/<k>/build`, dkms's `_get_kernel_dir` on Linux: it looks for headers there
/// whatever `--installtree` says.
pub fn default_headers_dir(kernel: &str) -> PathBuf {
    Path::new("/lib/modules").join(kernel).join("build")
}

/// Whether a directory holds usable headers: dkms's `_check_kernel_dir` tests `<dir>/include`.
/// The one rule for "this kernel has headers", used by every discovery below and by the tests.
pub fn has_headers(headers_dir: &Path) -> bool {
    headers_dir.join("include").exists()
}

/// The kernels named by the entries of `modules_dir` (an install tree such as /lib/modules)
/// whose headers, at `headers_dir(kernel)`, pass [`has_headers`]; sorted by name.
pub fn kernels_with_headers(
    modules_dir: &Path,
    headers_dir: impl Fn(&KernelRelease) -> PathBuf,
) -> Vec<KernelRelease> {
    let mut kernels: Vec<KernelRelease> = std::fs::read_dir(modules_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .map(KernelRelease)
        .filter(|k| has_headers(&headers_dir(k)))
        .collect();
    kernels.sort();
    kernels
}

/// The kernels of this machine with headers: `/lib/modules/<k>/build` by [`has_headers`].
pub fn installed_kernels_with_headers() -> Vec<KernelRelease> {
    kernels_with_headers(
        Path::new("/lib/modules"),
        KernelRelease::default_headers_dir,
    )
}

/// How modules of a kernel are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleCompression {
    None,
    Gzip,
    Xz,
    Zstd,
}

impl ModuleCompression {
    /// `.gz`, `.xz`, `.zst` or empty.
    pub fn extension(self) -> &'static str {
        match self {
            ModuleCompression::None => "",
            ModuleCompression::Gzip => ".gz",
            ModuleCompression::Xz => ".xz",
            ModuleCompression::Zstd => ".zst",
        }
    }

    /// The command dkms runs to compress a module in place (same flags as dkms 3.0.10).
    pub fn command(self) -> Option<&'static [&'static str]> {
        match self {
            ModuleCompression::None => None,
            ModuleCompression::Gzip => Some(&["gzip", "-9f"]),
            ModuleCompression::Xz => Some(&["xz", "-f"]),
            ModuleCompression::Zstd => Some(&["zstd", "-q", "-f", "-T0", "-20", "--ultra"]),
        }
    }
}

/// The module file of `name` in `dir`: `name.ko` or `name.ko<ext>`, as dkms's
/// `compressed_or_uncompressed` finds it.
pub fn module_file(dir: &Path, name: &str, compression: ModuleCompression) -> Option<PathBuf> {
    let plain = dir.join(format!("{name}.ko"));
    if plain.exists() {
        return Some(plain);
    }
    let compressed = dir.join(format!("{name}.ko{}", compression.extension()));
    compressed.exists().then_some(compressed)
}

/// dkms's `VER`: numbers padded to three digits so that plain string order is version order.
pub fn version_key(version: &str) -> String {
    let mut out = String::new();
    let mut digits = String::new();
    let flush = |digits: &mut String, out: &mut String| {
        if !digits.is_empty() {
            for _ in digits.len()..3 {
                out.push('0');
            }
            out.push_str(digits);
            digits.clear();
        }
    };
    for c in version.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            flush(&mut digits, &mut out);
            if c != ' ' {
                out.push(c);
            }
        }
    }
    flush(&mut digits, &mut out);
    out
}

/// Whether a directory name under `<dkms_tree>/<m>/<v>/` is a kernel release: dkms's status
/// glob `+([0-9]).*` (digits, then a dot).
pub fn looks_like_kernel_dir(name: &str) -> bool {
    let digits = name.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && name.as_bytes().get(digits) == Some(&b'.')
}

/// The compiler a kernel was built with, from `CONFIG_CC_VERSION_TEXT` of its `.config`
/// (dkms exports it as `CC` for PRE_BUILD when that command exists).
pub fn config_compiler(config: &str) -> Option<String> {
    config.lines().find_map(|line| {
        let text = line.strip_prefix("CONFIG_CC_VERSION_TEXT=\"")?;
        let (cc, _) = text.split_once(' ')?;
        Some(cc.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_key_orders_like_dkms() {
        assert_eq!(version_key("2.6.9-1cvs"), "002.006.009-001cvs");
        assert!(version_key("0.10") > version_key("0.9"));
        assert!(version_key("1.2.3") > version_key("1.2"));
    }

    #[test]
    fn kernel_dir_glob() {
        assert!(looks_like_kernel_dir("6.1.0-999-amd64"));
        assert!(!looks_like_kernel_dir("build"));
        assert!(!looks_like_kernel_dir("6"));
        assert!(!looks_like_kernel_dir("source"));
    }

    /// Every Debian release architecture and the ports, by what `uname -m` prints on them
    /// (the kernel's `UTS_MACHINE` for each arch/ Makefile), to `dpkg --print-architecture`.
    #[test]
    fn debian_arch_of_each_uname_machine() {
        for (machine, debian) in [
            ("x86_64", "amd64"),
            ("i686", "i386"),
            ("i586", "i386"),
            ("aarch64", "arm64"),
            ("armv7l", "armhf"),
            ("armv8l", "armhf"),
            ("armv5tel", "armel"),
            ("ppc64le", "ppc64el"),
            ("ppc64", "ppc64"),
            ("s390x", "s390x"),
            ("riscv64", "riscv64"),
            ("mips64", "mips64el"),
            ("loongarch64", "loong64"),
            ("parisc64", "hppa"),
            ("sparc64", "sparc64"),
        ] {
            assert_eq!(debian_arch(machine), Some(debian), "{machine}");
        }
        // Rust's compile-time names are not uname's: they must not pass as one.
        for rust_arch in ["x86", "arm", "powerpc64", "mips64r6", "unknown"] {
            assert_eq!(debian_arch(rust_arch), None, "{rust_arch}");
        }
    }

    #[test]
    fn machine_arch_is_unames() {
        let uname_m = std::process::Command::new("uname")
            .arg("-m")
            .output()
            .expect("uname -m");
        assert_eq!(
            machine_arch(),
            String::from_utf8_lossy(&uname_m.stdout).trim()
        );
    }

    #[test]
    fn compiler_from_config() {
        let config = "X=y\nCONFIG_CC_VERSION_TEXT=\"gcc-12 (Debian 12.2.0-14) 12.2.0\"\n";
        assert_eq!(config_compiler(config).as_deref(), Some("gcc-12"));
    }
}
