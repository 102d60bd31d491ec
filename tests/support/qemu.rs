//! Boot a Debian kernel in qemu with a busybox initramfs that loads modules: proof that a built
//! `.ko` really loads, without touching this machine's kernel.
//!
//! Kernel images are Debian's own `linux-image-<kver>` packages, fetched once with
//! `apt-get download` into a cache (`DKMS_RS_KERNEL_CACHE`, default `<target>/kernel-cache`) that
//! `.ci/fetch-kernels` fills the same way: `<cache>/vmlinuz-<kver>`.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one boot may take before qemu is killed. A TCG boot takes about 3-5 s here.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(120);

/// Printed by /init after each insmod: `DKMS-RS-INSMOD <index> <file name> status=<exit code>`.
pub const INSMOD_MARKER: &str = "DKMS-RS-INSMOD";
const DMESG_BEGIN: &str = "DKMS-RS-DMESG-BEGIN";
const DMESG_END: &str = "DKMS-RS-DMESG-END";

/// What a boot printed on its serial console.
#[derive(Debug)]
pub struct BootLog {
    /// Everything qemu printed (serial console; the kernel itself is `quiet`).
    pub console: String,
    /// Wall time from starting qemu to its exit (or to the kill on timeout).
    pub elapsed: Duration,
    /// qemu did not power off within [`BOOT_TIMEOUT`] and was killed.
    pub timed_out: bool,
}

impl BootLog {
    /// Exit status of `insmod` for the module at `index` in the list given to
    /// [`boot_with_modules`], or None when /init never reported it.
    pub fn insmod_status(&self, index: usize) -> Option<i32> {
        self.console.lines().find_map(|line| {
            // The console may prefix a line with terminal escapes: look for the marker anywhere.
            let rest = &line[line.find(INSMOD_MARKER)? + INSMOD_MARKER.len()..];
            let mut words = rest.split_whitespace();
            if words.next()?.parse::<usize>().ok()? != index {
                return None;
            }
            words.last()?.strip_prefix("status=")?.parse().ok()
        })
    }

    /// The kernel log as `dmesg` printed it at the end of /init (empty if it never got there).
    pub fn dmesg(&self) -> &str {
        let Some(begin) = self.console.find(DMESG_BEGIN) else {
            return "";
        };
        let after = &self.console[begin + DMESG_BEGIN.len()..];
        after.find(DMESG_END).map_or(after, |end| &after[..end])
    }
}

/// The kernel image cache: `DKMS_RS_KERNEL_CACHE`, else `<CARGO_TARGET_DIR or target>/kernel-cache`.
pub fn kernel_cache() -> PathBuf {
    if let Some(dir) = std::env::var_os("DKMS_RS_KERNEL_CACHE") {
        return PathBuf::from(dir);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|t| manifest.join(t)) // join keeps an absolute CARGO_TARGET_DIR as it is
        .unwrap_or_else(|| manifest.join("target"));
    target.join("kernel-cache")
}

/// How qemu boots a Debian kernel of this machine's arch: (qemu binary, machine options,
/// kernel console). The emulator is named after `uname -m` (qemu-system-x86_64,
/// qemu-system-aarch64, ...); the PC has a serial ttyS0, `virt` boards a PL011 ttyAMA0.
fn qemu_machine() -> (String, &'static [&'static str], &'static str) {
    let arch = super::arch();
    match arch.as_str() {
        "aarch64" => (
            "qemu-system-aarch64".into(),
            &["-machine", "virt", "-cpu", "max"],
            "ttyAMA0",
        ),
        "armv7l" => ("qemu-system-arm".into(), &["-machine", "virt"], "ttyAMA0"),
        "ppc64le" => ("qemu-system-ppc64".into(), &["-machine", "pseries"], "hvc0"),
        "i686" => ("qemu-system-i386".into(), &[], "ttyS0"),
        _ => (format!("qemu-system-{arch}"), &[], "ttyS0"),
    }
}

/// True when the tools a boot needs are there (else skip/fail as [`super::missing`] says).
pub fn require_qemu() -> bool {
    let qemu = qemu_machine().0;
    [qemu.as_str(), "cpio", "gzip", "apt-get", "dpkg-deb"]
        .iter()
        .all(|tool| super::require_tool(tool))
        && (static_busybox().is_some()
            || super::missing("a static busybox (package busybox-static) for the initramfs"))
}

/// `/bin/busybox` if it is statically linked: the initramfs has no libc to offer it.
fn static_busybox() -> Option<PathBuf> {
    let path = super::find_tool("busybox")?;
    let elf = fs::read(&path).ok()?;
    let u16_at = |o: usize| Some(u16::from_le_bytes(elf.get(o..o + 2)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(elf.get(o..o + 8)?.try_into().ok()?));
    // ELF64 little-endian header: e_phoff at 0x20, e_phentsize at 0x36, e_phnum at 0x38.
    if elf.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let (phoff, phentsize, phnum) = (
        usize::try_from(u64_at(0x20)?).ok()?,
        usize::from(u16_at(0x36)?),
        usize::from(u16_at(0x38)?),
    );
    // A PT_INTERP (3) program header means a dynamic loader is needed.
    let dynamic = (0..phnum).any(|i| {
        let at = phoff + i * phentsize;
        elf.get(at..at + 4) == Some(&3u32.to_le_bytes()[..])
    });
    (!dynamic).then_some(path)
}

/// The vmlinuz of Debian's `linux-image-<kver>`, fetched into [`kernel_cache`] the first time.
/// None (after [`super::missing`]: a failure under CI) when it cannot be downloaded.
pub fn kernel_image(kver: &str) -> Option<PathBuf> {
    let cache = kernel_cache();
    let image = cache.join(format!("vmlinuz-{kver}"));
    if image.is_file() {
        return Some(image);
    }
    match fetch_kernel_image(kver, &cache, &image) {
        Ok(()) => Some(image),
        Err(why) => {
            super::missing(&format!(
                "the kernel image vmlinuz-{kver} ({why}; run .ci/fetch-kernels)"
            ));
            None
        }
    }
}

/// Download `linux-image-<kver>` (or its `-unsigned` twin) and keep only its vmlinuz, placed by
/// rename. A lock serialises parallel tests; `.ci/fetch-kernels` takes the same flock.
fn fetch_kernel_image(kver: &str, cache: &Path, image: &Path) -> Result<(), String> {
    fs::create_dir_all(cache).map_err(|e| format!("cannot create {}: {e}", cache.display()))?;
    let lock_path = cache.join(".lock");
    let lock = fs::File::create(&lock_path)
        .map_err(|e| format!("cannot create {}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
    if image.is_file() {
        return Ok(()); // another test fetched it while we waited
    }
    let scratch = tempfile::tempdir_in(cache).map_err(|e| format!("temp dir: {e}"))?;
    let mut tried = Vec::new();
    for package in [
        format!("linux-image-{kver}"),
        format!("linux-image-{kver}-unsigned"),
    ] {
        let out = Command::new("apt-get")
            .args(["download", "-q", &package])
            .current_dir(scratch.path())
            .output()
            .map_err(|e| format!("cannot run apt-get: {e}"))?;
        if !out.status.success() {
            tried.push(format!(
                "apt-get download {package}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
            continue;
        }
        let deb = fs::read_dir(scratch.path())
            .map_err(|e| e.to_string())?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "deb"))
            .ok_or_else(|| format!("apt-get download {package} left no .deb"))?;
        let extracted = scratch.path().join("root");
        let status = Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(&extracted)
            .status()
            .map_err(|e| format!("cannot run dpkg-deb: {e}"))?;
        if !status.success() {
            return Err(format!("dpkg-deb -x {} failed: {status}", deb.display()));
        }
        let vmlinuz = extracted.join(format!("boot/vmlinuz-{kver}"));
        let staged = scratch.path().join("vmlinuz");
        fs::copy(&vmlinuz, &staged)
            .map_err(|e| format!("{} has no {}: {e}", deb.display(), vmlinuz.display()))?;
        return fs::rename(&staged, image)
            .map_err(|e| format!("cannot place {}: {e}", image.display()));
    }
    Err(tried.join("; "))
}

/// The /init of the initramfs: mount the pseudo file systems, insmod each module with a marker
/// line carrying its exit status, print the kernel log, power off.
const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for dir in $(ls /modules | sort -n); do
	for ko in /modules/$dir/*.ko; do
		insmod "$ko"
		echo "DKMS-RS-INSMOD $dir ${ko##*/} status=$?"
	done
done
echo DKMS-RS-DMESG-BEGIN
dmesg
echo DKMS-RS-DMESG-END
poweroff -f
"#;

/// Write a gzip'd newc cpio initramfs holding static busybox, /init and the modules (module `i`
/// at `/modules/<i>/<file name>`, so that equal file names do not collide) to `out`.
fn build_initramfs(modules: &[PathBuf], root: &Path, out: &Path) {
    let busybox = static_busybox().unwrap_or_else(|| panic!("no static busybox: see require_qemu"));
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::copy(&busybox, root.join("bin/busybox")).unwrap();
    let init = root.join("init");
    fs::write(&init, INIT).unwrap();
    fs::set_permissions(&init, fs::Permissions::from_mode(0o755)).unwrap();
    for (i, module) in modules.iter().enumerate() {
        let dir = root.join("modules").join(i.to_string());
        fs::create_dir_all(&dir).unwrap();
        let name = module
            .file_name()
            .unwrap_or_else(|| panic!("{} has no file name", module.display()));
        fs::copy(module, dir.join(name))
            .unwrap_or_else(|e| panic!("cannot copy {}: {e}", module.display()));
    }
    // newc is the only cpio format the kernel unpacks; -R 0:0 makes every file root's.
    super::run_ok(
        Command::new("sh")
            .args([
                "-c",
                "find . | sort | cpio -o -H newc -R 0:0 --quiet | gzip -n -1 > \"$1\"",
            ])
            .arg("sh")
            .arg(out)
            .current_dir(root),
    );
}

/// Boot Debian's `kver` kernel under qemu (TCG: /dev/kvm may be there yet hang when nested),
/// insmod `modules` in order and return the console. qemu is killed after [`BOOT_TIMEOUT`].
/// Panics when the kernel image is missing: call [`kernel_image`] first to skip/fail properly.
pub fn boot_with_modules(kver: &str, modules: &[PathBuf]) -> BootLog {
    let kernel = kernel_image(kver).unwrap_or_else(|| panic!("no kernel image for {kver}"));
    let scratch = tempfile::tempdir().unwrap();
    let initrd = scratch.path().join("initrd.gz");
    build_initramfs(modules, &scratch.path().join("root"), &initrd);
    let console_path = scratch.path().join("console.log");
    let console_file = fs::File::create(&console_path).unwrap();
    let started = Instant::now();
    let (qemu_bin, machine, console) = qemu_machine();
    let mut qemu = Command::new(&qemu_bin)
        .args(machine)
        .args(["-accel", "tcg", "-m", "256M", "-nographic", "-no-reboot"])
        .arg("-kernel")
        .arg(&kernel)
        .arg("-initrd")
        .arg(&initrd)
        .arg("-append")
        .arg(format!("console={console} panic=-1 quiet"))
        .stdin(Stdio::null())
        .stdout(console_file.try_clone().unwrap())
        .stderr(console_file)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {qemu_bin}: {e}"));
    let mut timed_out = false;
    loop {
        if qemu.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > BOOT_TIMEOUT {
            timed_out = true;
            let _ = qemu.kill();
            let _ = qemu.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let elapsed = started.elapsed();
    let mut raw = Vec::new();
    fs::File::open(&console_path)
        .and_then(|mut f| f.read_to_end(&mut raw))
        .unwrap();
    BootLog {
        console: String::from_utf8_lossy(&raw).into_owned(),
        elapsed,
        timed_out,
    }
}
