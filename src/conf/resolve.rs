//! dkms 3.0.10's `read_conf` post-processing: from the whitelisted variables to a
//! [`ModuleConf`] plus the validation problems dkms reports, rule for rule.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::posix;
use super::vars::Vars;
use super::{ConfError, ModuleConf, ModuleRecord, Problem, ResolveContext};

/// A dkms.conf resolved for one (kernel, arch), and what dkms would complain about.
#[derive(Debug, Clone)]
pub struct Resolution {
    pub conf: ModuleConf,
    /// In the order dkms reports them; empty when dkms accepts the file.
    pub problems: Vec<ConfError>,
}

impl Resolution {
    /// The conf when valid, else the first problem (what `read_conf_or_die` dies with).
    pub fn into_result(self) -> Result<ModuleConf, ConfError> {
        match self.problems.into_iter().next() {
            Some(p) => Err(p),
            None => Ok(self.conf),
        }
    }
}

struct Reader<'a> {
    vars: &'a Vars,
    files: &'a [PathBuf],
}

impl Reader<'_> {
    fn get(&self, name: &str, index: u64) -> &str {
        self.vars
            .get(name)
            .and_then(|v| v.get(&index))
            .map_or("", |e| e.value.as_str())
    }

    /// `${#NAME[@]}`: the number of set elements, not the highest index (sparse arrays!).
    fn count(&self, name: &str) -> u64 {
        self.vars.get(name).map_or(0, |v| v.len() as u64)
    }

    /// A conf-set lowercase array (dkms whitelists those too) as read_conf starts from it.
    fn array(&self, name: &str) -> BTreeMap<u64, String> {
        self.vars.get(name).map_or_else(BTreeMap::new, |v| {
            v.iter().map(|(i, e)| (*i, e.value.clone())).collect()
        })
    }

    /// File and line where the first of `names[index]` that is set was assigned.
    fn origin(&self, names: &[&str], index: u64) -> (PathBuf, Option<usize>) {
        for name in names {
            if let Some(e) = self.vars.get(*name).and_then(|v| v.get(&index))
                && let Some((file, line)) = e.origin
            {
                return (self.files[file].clone(), Some(line));
            }
        }
        (self.files[0].clone(), None)
    }

    fn problem(
        &self,
        directive: &'static str,
        record: Option<u64>,
        related: &[&str],
        kind: Problem,
    ) -> ConfError {
        let (path, line) = match record {
            Some(r) => self.origin(related, r),
            None => self.origin(related, 0),
        };
        ConfError::Invalid {
            path,
            line,
            directive,
            record: record.map(|r| r as usize),
            kind,
        }
    }
}

const RECORD: &[&str] = &[
    "BUILT_MODULE_NAME",
    "DEST_MODULE_LOCATION",
    "BUILT_MODULE_LOCATION",
    "DEST_MODULE_NAME",
];

/// Apply read_conf's rules to `vars` as sourced from `files` (the dkms.conf first).
pub fn resolve(
    vars: &Vars,
    files: &[PathBuf],
    ctx: &ResolveContext,
    module: &str,
    module_version: &str,
) -> Resolution {
    let r = Reader { vars, files };
    let mut problems = Vec::new();
    let kernelver = ctx.kernelver.as_str();
    let package_name = r.get("PACKAGE_NAME", 0).to_owned();

    let mut built_name = r.array("built_module_name");
    let mut built_location = r.array("built_module_location");
    let mut dest_name = r.array("dest_module_name");
    let mut dest_location = r.array("dest_module_location");
    let mut strip = r.array("strip");
    let array_size = RECORD.iter().map(|n| r.count(n)).max().unwrap_or(0);
    let dest_count = r.count("DEST_MODULE_LOCATION");
    for index in 0..array_size {
        let mut bname = r.get("BUILT_MODULE_NAME", index).to_owned();
        let mut bloc = r.get("BUILT_MODULE_LOCATION", index).to_owned();
        let mut dname = r.get("DEST_MODULE_NAME", index).to_owned();
        let raw_dest = r.get("DEST_MODULE_LOCATION", index);
        let stripv = r.get("STRIP", index);
        match stripv.chars().next() {
            Some('n' | 'N') => {
                strip.insert(index, "no".into());
            }
            Some('y' | 'Y') => {
                strip.insert(index, "yes".into());
            }
            None => {
                let inherited = strip.get(&0).filter(|s| !s.is_empty()).cloned();
                strip.insert(index, inherited.unwrap_or_else(|| "yes".into()));
            }
            // Any other value leaves strip[i] as it was (unset: strip).
            Some(_) => {}
        }
        if bname.is_empty() && dest_count == 1 {
            bname.clone_from(&package_name);
        }
        if dname.is_empty() {
            dname.clone_from(&bname);
        }
        if !bloc.is_empty() && !bloc.ends_with('/') {
            bloc.push('/');
        }
        if bname.is_empty() {
            problems.push(r.problem(
                "BUILT_MODULE_NAME",
                Some(index),
                RECORD,
                Problem::NoBuiltModuleName,
            ));
        }
        if bname.ends_with(".o") || bname.ends_with(".ko") {
            problems.push(r.problem(
                "BUILT_MODULE_NAME",
                Some(index),
                RECORD,
                Problem::BuiltNameSuffix,
            ));
        }
        if dname.ends_with(".o") || dname.ends_with(".ko") {
            let related = [
                "DEST_MODULE_NAME",
                "BUILT_MODULE_NAME",
                "DEST_MODULE_LOCATION",
            ];
            problems.push(r.problem(
                "DEST_MODULE_NAME",
                Some(index),
                &related,
                Problem::DestNameSuffix,
            ));
        }
        let dest = override_dest_module_location(ctx, raw_dest);
        let related = [
            "DEST_MODULE_LOCATION",
            "BUILT_MODULE_NAME",
            "BUILT_MODULE_LOCATION",
        ];
        if raw_dest.is_empty() {
            problems.push(r.problem(
                "DEST_MODULE_LOCATION",
                Some(index),
                &related,
                Problem::NoDestModuleLocation,
            ));
        }
        if !(raw_dest.starts_with("/kernel")
            || raw_dest.starts_with("/updates")
            || raw_dest.starts_with("/extra"))
        {
            problems.push(r.problem(
                "DEST_MODULE_LOCATION",
                Some(index),
                &related,
                Problem::BadDestModuleLocation,
            ));
        }
        built_name.insert(index, bname);
        built_location.insert(index, bloc);
        dest_name.insert(index, dname);
        dest_location.insert(index, dest);
    }

    // make_command is a dkms global never cleared: empty in a fresh dkms process.
    let mut make_command = String::new();
    if r.get("MAKE_MATCH", 0).is_empty() {
        make_command = r.get("MAKE", 0).to_owned();
    }
    for index in 0..r.count("MAKE") {
        let make = r.get("MAKE", index);
        let matcher = r.get("MAKE_MATCH", index);
        if !make.is_empty()
            && !matcher.is_empty()
            && posix::ere_match(matcher, kernelver) == Some(true)
        {
            make_command = make.to_owned();
        }
    }
    let build_dir = format!(
        "{}/{module}/{module_version}/build",
        ctx.dkms_tree.display()
    );
    let ksrc = ctx.kernel_source_dir.display();
    if make_command.is_empty() {
        make_command = format!("make -C {ksrc} M={build_dir}");
    }
    let mut clean = r.get("CLEAN", 0).to_owned();
    if clean.is_empty() {
        clean = format!("make -C {ksrc} M={build_dir} clean");
    }
    // Read once: read_conf greps $kernel_config, BUILD_EXCLUSIVE_CONFIG its twin.
    let kconfig = KernelConfig::load(&ctx.kernel_config);
    let (clang, lld) = kernel_toolchain(ctx, kconfig.as_deref());
    if clang {
        make_command.push_str(" CC=clang");
    }
    if lld {
        make_command.push_str(" LD=ld.lld");
    }

    let mut patch_array = r.array("patch_array");
    let mut count = 0;
    for index in 0..r.count("PATCH") {
        let patch = r.get("PATCH", index);
        let matcher = r.get("PATCH_MATCH", index);
        if !patch.is_empty()
            && (matcher.is_empty() || posix::ere_match(matcher, kernelver) == Some(true))
        {
            patch_array.insert(count, patch.to_owned());
            count += 1;
        }
    }

    let mut build_exclude = !r.get("build_exclude", 0).is_empty();
    let bek = r.get("BUILD_EXCLUSIVE_KERNEL", 0);
    // `[[ $X && ! $1 =~ $X ]]`: a regex that does not compile makes the test false.
    if !bek.is_empty() && posix::ere_match(bek, kernelver) == Some(false) {
        build_exclude = true;
    }
    let bea = r.get("BUILD_EXCLUSIVE_ARCH", 0);
    if !bea.is_empty() && posix::ere_match(bea, &ctx.arch) == Some(false) {
        build_exclude = true;
    }
    let bec = r.get("BUILD_EXCLUSIVE_CONFIG", 0);
    if !bec.is_empty() {
        // dkms greps $kernel_source_dir/.config here, not $kernel_config.
        let config_path = ctx.kernel_source_dir.join(".config");
        let config = if config_path == ctx.kernel_config {
            kconfig.clone()
        } else {
            KernelConfig::load(&config_path)
        };
        if let Some(config) = config {
            let config = &config.bytes;
            for kconf in posix::split_and_glob(bec) {
                build_exclude |= match kconf.strip_prefix('!') {
                    // grep -q ... && exclude: a bad pattern (exit 2) does not exclude.
                    Some(name) => config_set(name, config) == Some(true),
                    // grep -q ... || exclude: a bad pattern does.
                    None => config_set(&kconf, config) != Some(true),
                };
            }
        }
    }

    if dest_location.is_empty() {
        problems.push(r.problem(
            "DEST_MODULE_LOCATION",
            None,
            &[],
            Problem::NoDestModuleLocationAtAll,
        ));
    }
    if package_name.is_empty() {
        problems.push(r.problem(
            "PACKAGE_NAME",
            None,
            &["PACKAGE_NAME"],
            Problem::NoPackageName,
        ));
    }
    let package_version = r.get("PACKAGE_VERSION", 0).to_owned();
    if package_version.is_empty() {
        problems.push(r.problem(
            "PACKAGE_VERSION",
            None,
            &["PACKAGE_VERSION"],
            Problem::NoPackageVersion,
        ));
    }
    let patches: Vec<String> = patch_array.into_values().collect();
    for (i, p) in patches.iter().enumerate() {
        // Not a dkms 3.0.10 check: a patch is applied from <build>/patches/<p>, so `..`
        // would reach outside the module's source.
        if Path::new(p)
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            let (path, line) = r.origin(&["PATCH"], i as u64);
            problems.push(ConfError::Invalid {
                path,
                line,
                directive: "PATCH",
                record: Some(i),
                kind: Problem::PatchOutsideSource,
            });
        }
    }

    // dkms's consumers loop `count < ${#built_module_name[@]}` and index every array with it.
    let records = built_name.len() as u64;
    let modules = (0..records)
        .map(|i| ModuleRecord {
            built_name: built_name.get(&i).cloned().unwrap_or_default(),
            built_location: built_location.get(&i).cloned().unwrap_or_default(),
            dest_name: dest_name.get(&i).cloned().unwrap_or_default(),
            dest_location: dest_location.get(&i).cloned().unwrap_or_default(),
            strip: strip.get(&i).is_none_or(|s| s != "no"),
        })
        .collect();

    let opt = |name: &str| Some(r.get(name, 0).to_owned()).filter(|s| !s.is_empty());
    let build_depends = r
        .vars
        .get("BUILD_DEPENDS")
        .map(|v| {
            v.values()
                .flat_map(|e| e.value.split([' ', '\t', '\n']))
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Resolution {
        conf: ModuleConf {
            path: files[0].clone(),
            package_name,
            package_version,
            make_command,
            clean,
            modules,
            patches,
            pre_build: opt("PRE_BUILD"),
            post_build: opt("POST_BUILD"),
            pre_install: opt("PRE_INSTALL"),
            post_install: opt("POST_INSTALL"),
            post_add: opt("POST_ADD"),
            post_remove: opt("POST_REMOVE"),
            autoinstall: !r.get("AUTOINSTALL", 0).is_empty(),
            build_depends,
            build_exclude,
            obsolete_by: opt("OBSOLETE_BY"),
        },
        problems,
    }
}

/// dkms's `override_dest_module_location`: distros put dkms modules in one fixed place.
fn override_dest_module_location(ctx: &ResolveContext, raw: &str) -> String {
    if let Some(dir) = ctx.addon_modules_dir.as_deref().filter(|d| !d.is_empty()) {
        return format!("/{dir}");
    }
    let d = ctx.running_distribution.as_str();
    let starts = |p: &[&str]| p.iter().any(|x| d.starts_with(x));
    if starts(&["fedora", "rhel", "ovm"]) {
        "/extra".into()
    } else if starts(&["sles", "suse", "opensuse"]) {
        "/updates".into()
    } else if starts(&["debian", "ubuntu", "arch"]) {
        "/updates/dkms".into()
    } else {
        // Passed unquoted: only the first field of the (globbed) location survives.
        posix::split_and_glob(raw)
            .into_iter()
            .next()
            .unwrap_or_default()
    }
}

/// Whether the kernel was built with clang / linked with lld, as read_conf checks it:
/// the `.comment` section of `vmlinux` when the headers carry one, else `$kernel_config`.
fn kernel_toolchain(ctx: &ResolveContext, kconfig: Option<&KernelConfig>) -> (bool, bool) {
    let vmlinux = ctx.kernel_source_dir.join("vmlinux");
    if vmlinux.exists() {
        // Rare (Debian headers ship no vmlinux): ask readelf as dkms does.
        let comment = std::process::Command::new("readelf")
            .args(["-p", ".comment"])
            .arg(&vmlinux)
            .stderr(std::process::Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        return (comment.contains("clang"), comment.contains("LLD"));
    }
    kconfig.map_or((false, false), |k| (k.clang, k.lld))
}

/// `grep -q -E "^<name>=[ym]" .config`: a plain symbol is searched directly (the common case,
/// and a regex compile per symbol saved); anything with regex syntax goes to regcomp.
fn config_set(name: &str, config: &[u8]) -> Option<bool> {
    if name.is_empty() || !name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') {
        return posix::ere_match_lines(&format!("^{name}=[ym]"), &String::from_utf8_lossy(config));
    }
    let found = memchr::memmem::find_iter(config, name.as_bytes()).any(|at| {
        (at == 0 || config[at - 1] == b'\n')
            && matches!(
                config.get(at + name.len()..at + name.len() + 2),
                Some(b"=y" | b"=m")
            )
    });
    Some(found)
}

/// A kernel `.config` and what read_conf greps in it. Kept per process while the file's
/// identity and mtime stay the same: `status` reads many dkms.conf for one kernel.
struct KernelConfig {
    bytes: Vec<u8>,
    clang: bool,
    lld: bool,
}

type ConfigKey = (PathBuf, u64, u64, i64, i64, u64);

impl KernelConfig {
    fn load(path: &Path) -> Option<std::sync::Arc<KernelConfig>> {
        use std::os::unix::fs::MetadataExt;
        use std::sync::{Arc, Mutex};
        static CACHE: Mutex<Vec<(ConfigKey, Arc<KernelConfig>)>> = Mutex::new(Vec::new());
        let m = std::fs::metadata(path).ok()?;
        let key = (
            path.to_path_buf(),
            m.dev(),
            m.ino(),
            m.mtime(),
            m.mtime_nsec(),
            m.size(),
        );
        if let Ok(cache) = CACHE.lock()
            && let Some((_, k)) = cache.iter().find(|(k, _)| *k == key)
        {
            return Some(k.clone());
        }
        let bytes = std::fs::read(path).ok()?;
        let config = Arc::new(KernelConfig {
            // grep's pattern has no anchor: anywhere in the file counts.
            clang: memchr::memmem::find(&bytes, b"CONFIG_CC_IS_CLANG=y").is_some(),
            lld: memchr::memmem::find(&bytes, b"CONFIG_LD_IS_LLD=y").is_some(),
            bytes,
        });
        if let Ok(mut cache) = CACHE.lock() {
            cache.retain(|(k, _)| k.0 != key.0);
            if cache.len() >= 16 {
                cache.remove(0);
            }
            cache.push((key, config.clone()));
        }
        Some(config)
    }
}
