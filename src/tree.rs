//! The dkms tree on disk: where things live, what state a module is in, `status`, the lock.
//!
//! The layout is dkms 3.0.10's, so that real dkms and dkms-rs read each other's work:
//! `<dkms_tree>/<m>/<v>/source -> <source_tree>/<m>-<v>`, `<m>/<v>/<k>/<a>/{module,log}`,
//! `<m>/kernel-<k>-<a> -> <v>/<k>/<a>` marking the installed version, `<m>/original_module/`.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::conf::{ConfError, ModuleConf, ResolveContext};
use crate::framework::Framework;
use crate::kernel::{self, KernelRelease, Target};

pub mod conf_cache;
mod listing;
pub mod record;
use conf_cache::ConfCache;
use record::{Dir, Record, StatData};

/// The three roots dkms works on (`--dkmstree`, `--sourcetree`, `--installtree`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    pub dkms_tree: PathBuf,
    pub source_tree: PathBuf,
    pub install_tree: PathBuf,
    /// Where `/etc/dkms/<module>*.conf` overrides are read.
    pub etc_dir: PathBuf,
    /// `--kernelsourcedir`: headers for every kernel of this command.
    pub kernel_source_dir: Option<PathBuf>,
    /// `--config`: the kernel config read instead of the headers' (signing's hash,
    /// BUILD_EXCLUSIVE_CONFIG, `$kernel_config`).
    pub kernel_config: Option<PathBuf>,
    /// `--no-exec`: every dkms.conf and override is read natively or refused, never run by
    /// bash ([`ResolveContext::no_exec`]).
    pub no_exec: bool,
}

/// What `status` lists: every field `None` is "any" (`dkms status [-m M] [-v V] [-k K] [-a A]`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusQuery<'a> {
    pub module: Option<&'a str>,
    pub version: Option<&'a str>,
    pub kernel: Option<&'a str>,
    pub arch: Option<&'a str>,
}

/// The roots a command is told on its command line (`--dkmstree`, ...); `None` =
/// framework.conf's, then dkms's defaults.
#[derive(Debug, Clone, Default)]
pub struct Roots {
    pub dkms_tree: Option<PathBuf>,
    pub source_tree: Option<PathBuf>,
    pub install_tree: Option<PathBuf>,
    /// Headers for every kernel instead of `/lib/modules/<k>/build`.
    pub kernel_source_dir: Option<PathBuf>,
    /// framework.conf, `no-autoinstall` and the `<module>*.conf` overrides (default /etc/dkms).
    pub etc_dir: Option<PathBuf>,
}

impl Roots {
    /// Where framework.conf and the overrides are read: the given dir, else /etc/dkms.
    pub fn etc_dir(&self) -> PathBuf {
        self.etc_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(crate::framework::DEFAULT_ETC_DIR))
    }
}

impl Tree {
    /// The tree `framework` (read from `roots.etc_dir()`) describes, the roots given on the
    /// command line overriding it.
    pub fn from_framework(framework: &Framework, roots: Roots) -> Tree {
        Tree {
            dkms_tree: roots.dkms_tree.unwrap_or(framework.dkms_tree.clone()),
            source_tree: roots.source_tree.unwrap_or(framework.source_tree.clone()),
            install_tree: roots.install_tree.unwrap_or(framework.install_tree.clone()),
            etc_dir: framework.etc_dir.clone(),
            kernel_source_dir: roots.kernel_source_dir,
            kernel_config: None,
            no_exec: false,
        }
    }
}

/// A module version in the tree.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ModuleVersion {
    pub module: String,
    pub version: String,
}

impl std::fmt::Display for ModuleVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.module, self.version)
    }
}

/// What dkms says of a module version on a kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleState {
    Added,
    Built,
    Installed,
    /// dkms 3.2.2's `is_module_broken`: the version is in the tree, its source is not.
    Broken,
}

/// What [`Tree::status`] found.
#[derive(Debug, Clone, Default)]
pub struct Status {
    /// The lines, in dkms's order.
    pub entries: Vec<StatusEntry>,
    /// Under `--no-exec`, the dkms.conf files (one per module version) that need bash: the
    /// targets they were to judge have no line, the module no `added` line in their place.
    pub not_run: Vec<ConfError>,
}

/// One line of `dkms status`, and one record of `status --format json|plain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusEntry {
    pub module: ModuleVersion,
    /// `None` for a module that is only added (or broken).
    pub target: Option<Target>,
    pub state: ModuleState,
    /// `<m>/original_module/<k>/<a>` is there: dkms's `(Original modules exist)`.
    pub original_modules: bool,
    /// A module file dkms.conf names is not in `<m>/<v>/<k>/<a>/module`: dkms's `(Built
    /// modules are missing in the kernel modules folder)`, the `incomplete` state.
    pub modules_missing: bool,
    /// Installed, and an installed module file is not the built one byte for byte: dkms's
    /// `(Differences between built and installed modules)`.
    pub differs: bool,
    /// The version of the module that `<m>/kernel-<k>-<a>` names for the target: this one
    /// when it is installed, another when that one is installed for the kernel instead.
    pub installed_version: Option<String>,
    /// `<m>/<v>/build/make.log`: the log a build of the version that did not finish left
    /// (dkms keeps the build directory of a failed make; a finished build removes it).
    pub make_log: Option<PathBuf>,
}

impl std::fmt::Display for StatusEntry {
    /// Exactly dkms 3.2.2's `do_status` line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.target, self.state) {
            (_, ModuleState::Broken) => write!(f, "{}: broken", self.module),
            (None, _) | (_, ModuleState::Added) => write!(f, "{}: added", self.module),
            (Some(t), state) => {
                let word = if state == ModuleState::Installed {
                    "installed"
                } else {
                    "built"
                };
                write!(f, "{}, {}, {}: {word}", self.module, t.kernel, t.arch)?;
                // module_status_built_extra's order; "missing" stops its loop before "differ".
                if self.original_modules {
                    f.write_str(" (Original modules exist)")?;
                }
                if self.modules_missing {
                    f.write_str(" (Built modules are missing in the kernel modules folder)")?;
                } else if self.differs {
                    f.write_str(" (Differences between built and installed modules)")?;
                }
                Ok(())
            }
        }
    }
}

/// The fields of a `status --format json|plain` record, in the order `plain` writes them.
pub const STATUS_FIELDS: [&str; 10] = [
    "module",
    "version",
    "kernel",
    "arch",
    "state",
    "original_modules",
    "modules_missing",
    "differs",
    "installed_version",
    "make_log",
];

impl StatusEntry {
    /// The record's `state`: dkms's word, or `incomplete` for a built dir that lacks a module
    /// file (whether it is installed then is `installed_version`).
    pub fn state_name(&self) -> &'static str {
        match self.state {
            ModuleState::Broken => "broken",
            ModuleState::Added => "added",
            _ if self.target.is_none() => "added",
            _ if self.modules_missing => "incomplete",
            ModuleState::Built => "built",
            ModuleState::Installed => "installed",
        }
    }

    /// The record's values in [`STATUS_FIELDS`] order, `None` for a value that is absent
    /// (the kernel of an added module, ...); flags as `"yes"`/`"no"`.
    pub fn values(&self) -> [Option<String>; 10] {
        let yes_no = |b: bool| Some(if b { "yes" } else { "no" }.to_owned());
        let t = self.target.as_ref();
        [
            Some(self.module.module.clone()),
            Some(self.module.version.clone()),
            t.map(|t| t.kernel.0.clone()),
            t.map(|t| t.arch.clone()),
            Some(self.state_name().to_owned()),
            yes_no(self.original_modules),
            yes_no(self.modules_missing),
            yes_no(self.differs),
            self.installed_version.clone(),
            self.make_log
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned()),
        ]
    }

    /// The `--format plain` line (no newline): the values tab-separated, `-` for an absent
    /// one, and in each value `\` `\t` `\n` `\r` for a backslash, tab, newline and carriage
    /// return, so that a record is one line of exactly ten fields whatever the names hold.
    pub fn plain(&self) -> String {
        let mut line = String::new();
        for (i, value) in self.values().iter().enumerate() {
            if i > 0 {
                line.push('\t');
            }
            match value {
                None => line.push('-'),
                Some(v) => line.push_str(&plain_escape(v)),
            }
        }
        line
    }

    /// The `--format json` object (one line, the fields in [`STATUS_FIELDS`] order): the
    /// values as strings, `null` when absent, the three flags as booleans.
    pub fn json(&self) -> String {
        // serde_json writes each string straight into the line (no Value per field).
        let mut object = Vec::with_capacity(256);
        object.push(b'{');
        for (i, (field, value)) in STATUS_FIELDS.iter().zip(self.values()).enumerate() {
            if i > 0 {
                object.push(b',');
            }
            let written = serde_json::to_writer(&mut object, field).and_then(|()| {
                object.push(b':');
                match (i, value) {
                    (5..=7, Some(v)) => serde_json::to_writer(&mut object, &(v == "yes")),
                    (_, Some(v)) => serde_json::to_writer(&mut object, &v),
                    (_, None) => serde_json::to_writer(&mut object, &()),
                }
            });
            // Writing into a Vec cannot fail, and strings serialize.
            debug_assert!(written.is_ok());
        }
        object.push(b'}');
        // serde_json writes UTF-8 only.
        String::from_utf8(object).unwrap_or_default()
    }
}

/// A value of a `--format plain` field: backslash, tab, newline and carriage return escaped.
pub fn plain_escape(value: &str) -> std::borrow::Cow<'_, str> {
    if !value.contains(['\\', '\t', '\n', '\r']) && value != "-" {
        return value.into();
    }
    let mut out = String::with_capacity(value.len() + 2);
    if value == "-" {
        // An absent value is `-`; a value that is `-` itself is written `\-`.
        return "\\-".into();
    }
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.into()
}

/// What the names of the records of a change in progress end with (see
/// [`Tree::pending_install`], [`Tree::pending_depmod`]).
pub const PENDING_SUFFIX: &str = ".dkms-rs-pending";

/// A held lock on the tree; released when the last guard of the thread holding it drops.
#[derive(Debug)]
pub struct TreeLock {
    /// The lock file's (device, inode): its entry in [`HELD`].
    key: (u64, u64),
    /// Whether this guard took the lock (the first of its thread) rather than joined it.
    outermost: bool,
    /// For the outermost guard: whether the command before this one left the tree clean
    /// (see [`TreeLock::was_clean`]).
    was_clean: bool,
    /// Dropped on the thread that took it: the lock is that thread's.
    _not_send: std::marker::PhantomData<*const ()>,
}

/// The tree locks this process holds, by lock file (device, inode): the thread holding each,
/// how many guards it has out, and the open file whose flock it is. A thread taking a lock it
/// holds adds a guard: a flock through a second open file description of the same file would
/// wait for the first, forever.
static HELD: std::sync::Mutex<std::collections::BTreeMap<(u64, u64), Held>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

#[derive(Debug)]
struct Held {
    owner: std::thread::ThreadId,
    guards: usize,
    file: File,
    /// Whether the guard that took the lock said its command ended well
    /// ([`TreeLock::done`]): the last guard then writes [`CLEAN_MARK`] into the lock file,
    /// if the tree was known clean when this command started: the mark was there, or the
    /// command finished what a killed one left ([`TreeLock::recovered`]).
    done: bool,
    known_clean: bool,
    /// The lock file's path and the tree it locks: the last guard removes the file when the
    /// tree holds no module any more (see [`Tree::lock`]).
    path: PathBuf,
    dkms_tree: PathBuf,
}

/// Whether `dkms_tree` holds nothing but the lock file and the MOK key pair (which outlive
/// the modules, as in dkms): nothing a purge of every -dkms package would leave.
fn tree_is_empty(dkms_tree: &Path) -> bool {
    std::fs::read_dir(dkms_tree).is_ok_and(|entries| {
        entries.flatten().all(|e| {
            let name = e.file_name();
            name == LOCK_FILE
                || name == record::RECORD_FILE
                || name == conf_cache::CACHE_FILE
                || name == "mok.key"
                || name == "mok.pub"
        })
    })
}

/// The tree lock's file name: a dot file, invisible to dkms's `$dkms_tree/*` globs.
const LOCK_FILE: &str = ".dkms-rs.lock";

/// What the lock file holds between commands when the last one that held the lock ended
/// well: nothing of a killed or failed command is left in the tree, and the next command
/// need not look for it in every module directory (dkms issue #32: a single-module command
/// must not cost what the whole tree costs). The command that takes the lock empties the
/// file, durably, before it changes anything; so a kill, a failure or a crash at any later
/// moment leaves it empty, and the next command looks everywhere. A tree written by an
/// older dkms-rs, or by dkms, has an empty (or no) lock file: looked at whole, once.
const CLEAN_MARK: &[u8] = b"clean\n";

impl TreeLock {
    /// Whether this guard took the lock, rather than joined the one its thread holds: the
    /// command that takes it first is the one that repairs what a killed command left.
    pub fn is_outermost(&self) -> bool {
        self.outermost
    }

    /// For the guard that took the lock: whether the command that held it last ended well
    /// ([`TreeLock::done`]), so that nothing a killed command leaves is in the tree.
    pub fn was_clean(&self) -> bool {
        self.outermost && self.was_clean
    }

    /// For the guard that took the lock: say that what killed commands left in the tree has
    /// been finished (see `action::recover`), so that [`TreeLock::done`] may mark it clean.
    pub fn recovered(&self) {
        if let Some(h) = HELD
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&self.key)
            .filter(|_| self.outermost)
        {
            h.known_clean = true;
        }
    }

    /// Run a command's work under this guard, and say it ended well ([`TreeLock::done`])
    /// when it returns `Ok`.
    pub fn run<T, E>(&self, work: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        let result = work();
        if result.is_ok() {
            self.done();
        }
        result
    }

    /// Say that the command holding the lock ended well and left nothing half-done: when
    /// the lock is released the lock file says so to the next command (see [`CLEAN_MARK`]).
    /// Only the guard that took the lock can say it; a joined guard's word is ignored (its
    /// caller may fail after it). A command that fails, panics or is killed never says it.
    pub fn done(&self) {
        if !self.outermost || std::thread::panicking() {
            return;
        }
        if let Some(h) = HELD
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&self.key)
        {
            h.done = true;
        }
    }
}

/// Read the lock file's mark and, when it is [`CLEAN_MARK`], empty the file durably (the
/// command now holding the lock may leave anything); whether it was clean. An error reading
/// or emptying it counts as not clean.
fn take_clean_mark(file: &mut File) -> bool {
    use std::io::{Read, Seek};
    let mut mark = Vec::new();
    let read = file.seek(std::io::SeekFrom::Start(0)).and_then(|_| {
        file.take(CLEAN_MARK.len() as u64 + 1)
            .read_to_end(&mut mark)
    });
    if read.is_err() || mark.is_empty() {
        return false;
    }
    // Anything else in it (a foreign write, a torn one): emptied too, and not clean.
    let emptied = file.set_len(0).and_then(|()| file.sync_data()).is_ok();
    emptied && mark == CLEAN_MARK
}

impl Drop for TreeLock {
    fn drop(&mut self) {
        let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = held.get_mut(&self.key) {
            h.guards -= 1;
            if h.guards == 0 {
                // The last -dkms package purged leaves no lock file behind. Removed while
                // held: a command waiting on it finds, once it has it, that the name is no
                // longer its file, and takes the lock again on a new one.
                if tree_is_empty(&h.dkms_tree) {
                    let _ = std::fs::remove_file(h.dkms_tree.join(record::RECORD_FILE));
                    let _ = std::fs::remove_file(h.dkms_tree.join(conf_cache::CACHE_FILE));
                    let _ = std::fs::remove_file(&h.path);
                } else if h.done && h.known_clean && !std::thread::panicking() {
                    // Not synced: lost in a crash, it costs the next command a look at
                    // every module directory, nothing more.
                    use std::os::unix::fs::FileExt;
                    let _ = h.file.write_all_at(CLEAN_MARK, 0);
                }
                // Closing the file releases the flock.
                held.remove(&self.key);
            }
        }
    }
}

impl Tree {
    pub fn module_dir(&self, module: &str) -> PathBuf {
        self.dkms_tree.join(module)
    }

    pub fn version_dir(&self, mv: &ModuleVersion) -> PathBuf {
        self.dkms_tree.join(&mv.module).join(&mv.version)
    }

    /// `<m>/<v>/source`, the symlink `add` makes to `<source_tree>/<m>-<v>`.
    pub fn source_dir(&self, mv: &ModuleVersion) -> PathBuf {
        self.version_dir(mv).join("source")
    }

    /// `<source_tree>/<m>-<v>`.
    pub fn source_tree_dir(&self, mv: &ModuleVersion) -> PathBuf {
        self.source_tree
            .join(format!("{}-{}", mv.module, mv.version))
    }

    /// `<m>/<v>/build`, dkms's one build directory per module version.
    pub fn build_dir(&self, mv: &ModuleVersion) -> PathBuf {
        self.version_dir(mv).join("build")
    }

    /// `<m>/<v>/<k>/<a>`: exists once the module is built for that target.
    pub fn built_dir(&self, mv: &ModuleVersion, target: &Target) -> PathBuf {
        self.version_dir(mv)
            .join(target.kernel.as_str())
            .join(&target.arch)
    }

    /// `<m>/kernel-<k>-<a>`, the link that marks the installed version.
    pub fn kernel_link(&self, module: &str, target: &Target) -> PathBuf {
        self.module_dir(module)
            .join(format!("kernel-{}-{}", target.kernel, target.arch))
    }

    /// `<m>/.kernel-<k>-<a>.dkms-rs-pending`: present while an install or uninstall of the
    /// module is changing the kernel's modules directory for this target. It names the
    /// version whose files may be there; a command that finds it (a killed one left it)
    /// finishes the job from it. Hidden, so dkms 3.0.10's `kernel-*` globs never see it.
    pub fn pending_install(&self, module: &str, target: &Target) -> PathBuf {
        self.module_dir(module).join(format!(
            ".kernel-{}-{}{PENDING_SUFFIX}",
            target.kernel, target.arch
        ))
    }

    /// `<dkms_tree>/.depmod-<k>.dkms-rs-pending`: present from the first change to the
    /// kernel's modules directory until depmod has run for it, so that a command killed
    /// before its depmod leaves modules.dep to be remade by the next one.
    pub fn pending_depmod(&self, kernel: &KernelRelease) -> PathBuf {
        self.dkms_tree
            .join(format!(".depmod-{kernel}{PENDING_SUFFIX}"))
    }

    /// The kernels whose [`Tree::pending_depmod`] record is there, in name order.
    pub fn pending_depmods(&self) -> Vec<KernelRelease> {
        let mut kernels: Vec<KernelRelease> = std::fs::read_dir(&self.dkms_tree)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let kernel = name
                    .strip_prefix(".depmod-")?
                    .strip_suffix(PENDING_SUFFIX)?;
                Some(KernelRelease(kernel.to_owned()))
            })
            .collect();
        kernels.sort();
        kernels
    }

    /// `<m>/original_module/<k>/<a>`, where an overwritten module is kept for uninstall.
    pub fn original_dir(&self, module: &str, target: &Target) -> PathBuf {
        self.module_dir(module)
            .join("original_module")
            .join(target.kernel.as_str())
            .join(&target.arch)
    }

    /// `<install_tree>/<k>`.
    pub fn kernel_modules_dir(&self, kernel: &KernelRelease) -> PathBuf {
        self.install_tree.join(kernel.as_str())
    }

    /// The headers of a kernel: `--kernelsourcedir` or `<install_tree>/<k>/build`
    /// (`/lib/modules/<k>/build`; dkms 3.2.2's `_get_kernel_dir` looks under the install tree).
    pub fn headers_dir(&self, kernel: &KernelRelease) -> PathBuf {
        self.kernel_source_dir
            .clone()
            .unwrap_or_else(|| self.kernel_modules_dir(kernel).join("build"))
    }

    /// The names in the `/etc/dkms` dir, listed once by a caller that reads many dkms.conf
    /// ([`ResolveContext::etc_names`]); `None` when it cannot be listed.
    pub fn etc_names(&self) -> Option<std::collections::HashSet<std::ffi::OsString>> {
        std::fs::read_dir(&self.etc_dir)
            .ok()
            .map(|entries| entries.flatten().map(|e| e.file_name()).collect())
    }

    /// What dkms.conf sees while read for one target (and module, when known).
    pub fn resolve_context(
        &self,
        target: &Target,
        module: Option<&ModuleVersion>,
    ) -> ResolveContext {
        let mut ctx = ResolveContext::new(target.kernel.as_str(), &target.arch)
            .with_kernel_source_dir(self.headers_dir(&target.kernel));
        if let Some(mv) = module {
            ctx = ctx.with_module(&mv.module, &mv.version);
        }
        ctx.dkms_tree = self.dkms_tree.clone();
        ctx.source_tree = self.source_tree.clone();
        ctx.install_tree = self.install_tree.clone();
        ctx.etc_dir = self.etc_dir.clone();
        ctx.no_exec = self.no_exec;
        if let Some(config) = &self.kernel_config {
            ctx.kernel_config = config.clone();
            ctx.kernel_config_given = true;
        }
        ctx
    }

    /// Every kernel under the install tree whose headers are there (what framework.conf's
    /// `autoinstall_all_kernels` means), sorted.
    pub fn kernels_with_headers(&self) -> Vec<KernelRelease> {
        kernel::kernels_with_headers(&self.install_tree, |k| self.headers_dir(k))
    }

    /// dkms's `is_module_added`: the version dir exists with a `source` link or dir.
    pub fn is_added(&self, mv: &ModuleVersion) -> bool {
        let source = self.source_dir(mv);
        source.is_symlink() || source.is_dir()
    }

    /// dkms 3.2.2's `is_module_broken`: the version dir is there, and its `source` link
    /// dangles, or it is gone while `<source_tree>/<m>-<v>` is there.
    pub fn is_broken(&self, mv: &ModuleVersion) -> bool {
        let source = self.source_dir(mv);
        self.version_dir(mv).is_dir()
            && if source.is_symlink() {
                !source.is_dir()
            } else {
                !source.exists() && self.source_tree_dir(mv).is_dir()
            }
    }

    /// Every `<m>/<v>` that is added, in the order of dkms's `$dkms_tree/*/*` glob
    /// (whole `m/v` strings sorted, so `a-b/1` comes before `a/1` as in bash), without the
    /// `kernel-*-*` names dkms 3.2.2 skips (3.0.10 took one for a version when it had a
    /// `source`: install's `kernel-<k>-<a>` link to a target dir holding one).
    pub fn added_modules(&self, module: Option<&str>, version: Option<&str>) -> Vec<ModuleVersion> {
        self.listed_modules(module, version, &mut list_dir)
            .into_iter()
            .map(|(mv, _)| mv)
            .collect()
    }

    /// Every added module version with whether it is broken ([`Tree::is_broken`]), as
    /// [`Tree::added_modules`] finds them.
    pub fn added_modules_judged(&self) -> Vec<(ModuleVersion, bool)> {
        self.listed_modules(None, None, &mut list_dir)
    }

    /// [`Tree::added_modules`] with [`Tree::is_broken`] of each, found with fewer stats: most
    /// names without a `source` have no `<source_tree>/<m>-<v>` either, which the source
    /// tree's one listing tells. `list` lists each module dir.
    fn listed_modules(
        &self,
        module: Option<&str>,
        version: Option<&str>,
        list: &mut dyn FnMut(&Path) -> Option<Arc<Dir>>,
    ) -> Vec<(ModuleVersion, bool)> {
        let sources: Option<std::collections::HashSet<String>> =
            listing::entries(&self.source_tree).map(|entries| {
                entries
                    .into_iter()
                    .filter_map(|e| e.name.into_string().ok())
                    .collect()
            });
        let mut found = Vec::new();
        let modules: Vec<String> = match module {
            Some(m) => vec![m.to_string()],
            None => visible_names(list_dir(&self.dkms_tree).as_deref()),
        };
        for m in modules {
            let versions: Vec<String> = match version {
                Some(v) => vec![v.to_string()],
                None => visible_names(list(&self.dkms_tree.join(&m)).as_deref()),
            };
            // dkms 3.2.2's list_module_version_combos skips `<m>/kernel-*-*` (install's
            // `kernel-<k>-<a>` links, or anything so named): not versions, not looked into.
            for v in versions.into_iter().filter(|v| !is_kernel_link_name(v)) {
                let mv = ModuleVersion {
                    module: m.clone(),
                    version: v,
                };
                // dkms 3.2.2's list_module_version_combos: broken ones are listed too.
                let source = self.source_dir(&mv);
                let broken = match std::fs::symlink_metadata(&source) {
                    // is_added: a link (even dangling) or a dir; broken: a dangling link.
                    Ok(meta) if meta.file_type().is_symlink() => {
                        let broken = !source.is_dir() && self.version_dir(&mv).is_dir();
                        Some(broken)
                    }
                    Ok(meta) => meta.is_dir().then_some(false),
                    // No source: broken when <source_tree>/<m>-<v> is there (and the
                    // version dir), else not listed.
                    Err(_) => {
                        let name = format!("{}-{}", mv.module, mv.version);
                        let maybe = sources.as_ref().is_none_or(|s| s.contains(&name));
                        (maybe
                            && self.source_tree_dir(&mv).is_dir()
                            && self.version_dir(&mv).is_dir())
                        .then_some(true)
                    }
                };
                if let Some(broken) = broken {
                    found.push((mv, broken));
                }
            }
        }
        found.sort_by_cached_key(|(a, _)| a.to_string());
        found
    }

    /// The `<k>/<a>` directories under a module version, in dkms's glob order; not checked.
    pub fn target_dirs(
        &self,
        mv: &ModuleVersion,
        kernel: Option<&str>,
        arch: Option<&str>,
    ) -> Vec<Target> {
        let listing = kernel.is_none().then(|| list_dir(&self.version_dir(mv)));
        self.targets_listed(
            mv,
            kernel,
            arch,
            listing.flatten().as_deref(),
            &mut list_dir,
        )
    }

    /// [`Tree::target_dirs`] from the version dir's listing (`None` when `kernel` is given,
    /// or it could not be listed), each `<k>` listed by `list`.
    fn targets_listed(
        &self,
        mv: &ModuleVersion,
        kernel: Option<&str>,
        arch: Option<&str>,
        version_dir: Option<&Dir>,
        list: &mut dyn FnMut(&Path) -> Option<Arc<Dir>>,
    ) -> Vec<Target> {
        let dir = self.version_dir(mv);
        let kernels: Vec<String> = match kernel {
            Some(k) => vec![k.to_string()],
            None => visible_names(version_dir)
                .into_iter()
                .filter(|k| kernel::looks_like_kernel_dir(k))
                .collect(),
        };
        let mut targets = Vec::new();
        for k in kernels {
            let kernel_dir = dir.join(&k);
            let archs: Vec<(String, bool)> = match arch {
                Some(a) => vec![(a.to_string(), false)],
                // The listing's file types: a directory needs no stat to tell it is one
                // (`[ -d ]`; a link, or a type the file system does not give, does).
                None => list(&kernel_dir)
                    .iter()
                    .flat_map(|d| d.entries.iter())
                    .filter_map(|e| {
                        let name = e.name.to_str()?;
                        (!name.starts_with('.')).then(|| (name.to_owned(), e.is_dir))
                    })
                    .collect(),
            };
            for (a, known_dir) in archs {
                if known_dir || kernel_dir.join(&a).is_dir() {
                    targets.push(Target {
                        kernel: KernelRelease(k.clone()),
                        arch: a,
                    });
                }
            }
        }
        // As the strings `<k>/<a>` sort, without making them.
        fn glob_key(t: &Target) -> impl Iterator<Item = u8> + '_ {
            let (k, a) = (t.kernel.as_str().as_bytes(), t.arch.as_bytes());
            k.iter().chain(b"/").chain(a).copied()
        }
        targets.sort_by(|a, b| glob_key(a).cmp(glob_key(b)));
        targets
    }

    /// dkms's `is_module_built`: `<k>/<a>/module/` holds every DEST_MODULE_NAME of the conf.
    pub fn is_built(&self, mv: &ModuleVersion, target: &Target, _conf: &ModuleConf) -> bool {
        // dkms 3.2.2: built is the built dir there (builds are renamed into place whole, so
        // one with a module missing was changed by hand: status says so, install fails 6).
        self.built_dir(mv, target).join("module").is_dir()
    }

    /// Built, and every module of dkms.conf there (see [`Tree::is_built`]).
    pub fn has_all_modules(&self, mv: &ModuleVersion, target: &Target, conf: &ModuleConf) -> bool {
        let module_dir = self.built_dir(mv, target).join("module");
        if !module_dir.is_dir() {
            return false;
        }
        let compression = target.kernel.module_compression();
        conf.modules
            .iter()
            .all(|r| kernel::module_file(&module_dir, &r.dest_name, compression).is_some())
    }

    /// dkms's `_is_module_installed`: `kernel-<k>-<a>` resolves to this version's built dir.
    pub fn is_installed(&self, mv: &ModuleVersion, target: &Target) -> bool {
        let link = self.kernel_link(&mv.module, target);
        match std::fs::read_link(&link) {
            Ok(dest) => {
                let expected = Path::new(&mv.version)
                    .join(target.kernel.as_str())
                    .join(&target.arch);
                if dest == expected {
                    return self.built_dir(mv, target).is_dir();
                }
                match (
                    link.canonicalize(),
                    self.built_dir(mv, target).canonicalize(),
                ) {
                    (Ok(a), Ok(b)) => a == b,
                    _ => false,
                }
            }
            Err(_) => false,
        }
    }

    /// The version of `module` installed for a target, if any.
    pub fn installed_version(&self, module: &str, target: &Target) -> Option<String> {
        let dest = std::fs::read_link(self.kernel_link(module, target)).ok()?;
        self.linked_version(module, target, &dest)
    }

    /// [`Tree::installed_version`] when `kernel-<k>-<a>` points to `dest`.
    fn linked_version(&self, module: &str, target: &Target, dest: &Path) -> Option<String> {
        let version = dest.components().next()?.as_os_str().to_str()?.to_string();
        let mv = ModuleVersion {
            module: module.to_string(),
            version,
        };
        self.is_installed(&mv, target).then_some(mv.version)
    }

    /// Take the tree's lock, waiting (with a message on stderr) while another command, or
    /// another thread of this one, holds it. Taken again by the thread holding it, it is
    /// the same lock: released when the outermost guard drops. The lock file
    /// (`<dkms_tree>/.dkms-rs.lock`) is removed then when no module is left in the tree;
    /// else it says whether the command ended well ([`TreeLock::done`], [`CLEAN_MARK`]).
    pub fn lock(&self) -> std::io::Result<TreeLock> {
        use std::os::unix::fs::MetadataExt;
        std::fs::create_dir_all(&self.dkms_tree)?;
        let path = self.dkms_tree.join(LOCK_FILE);
        loop {
            let mut file = File::options()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(&path)?;
            let meta = file.metadata()?;
            // The file, not its path: a tree named two ways is one lock.
            let key = (meta.dev(), meta.ino());
            let me = std::thread::current().id();
            let guard = |outermost, was_clean| TreeLock {
                key,
                outermost,
                was_clean,
                _not_send: std::marker::PhantomData,
            };
            if let Some(h) = HELD
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_mut(&key)
                .filter(|h| h.owner == me)
            {
                // `file`, a second description, is closed unused: that releases nothing.
                h.guards += 1;
                return Ok(guard(false, false));
            }
            // Not this thread's; HELD is not held while waiting (the holder's drop needs it).
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    let mut err = std::io::stderr();
                    let _ = writeln!(
                        err,
                        "Waiting for {} (another dkms-rs command is working on this tree)...",
                        path.display()
                    );
                    file.lock()?;
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(e),
            }
            // The holder before us may have removed the file (an empty tree): a lock on it
            // locks nothing another command would see. Take the lock on the file the name is.
            match std::fs::metadata(&path) {
                Ok(now) if (now.dev(), now.ino()) == key => {}
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
            let was_clean = take_clean_mark(&mut file);
            HELD.lock().unwrap_or_else(|e| e.into_inner()).insert(
                key,
                Held {
                    owner: me,
                    guards: 1,
                    file,
                    done: false,
                    known_clean: was_clean,
                    path: path.clone(),
                    dkms_tree: self.dkms_tree.clone(),
                },
            );
            return Ok(guard(true, was_clean));
        }
    }

    /// The status lines dkms 3.0.10 prints, for the modules and targets `query` selects, and
    /// the dkms.conf files `--no-exec` kept from being read (see [`Status`]).
    ///
    /// Installed modules are compared with the built ones through the status record
    /// ([`record`]): contents are read only where stat data changed, and what was compared is
    /// recorded for the next `status` (a failed write costs only time).
    pub fn status(&self, query: &StatusQuery) -> Status {
        let record_path = self.dkms_tree.join(record::RECORD_FILE);
        let old = Record::read(&record_path);
        let cache_path = self.dkms_tree.join(conf_cache::CACHE_FILE);
        let old_confs = ConfCache::read(&cache_path);
        let limit = record::settle_limit(std::time::SystemTime::now());
        // The overrides dir listed once, not six stats per target (see ResolveContext).
        let etc_names = self.etc_names().map(std::sync::Arc::new);
        // The module dirs, through the record; the workers take their listings from here.
        let mut first = Memo::new((&old, &old_confs), None, etc_names.clone(), limit);
        let mut module_dirs = std::collections::HashMap::new();
        let modules = self.listed_modules(query.module, query.version, &mut |dir| {
            let listing = self.recorded_listing(dir, &mut first);
            if let (Some(l), Some(name)) = (&listing, dir.file_name().and_then(|n| n.to_str())) {
                module_dirs.insert(name.to_owned(), l.clone());
            }
            listing
        });
        // Modules are independent: read them on all CPUs, keep dkms's order.
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(modules.len().div_ceil(16).max(1));
        let chunk = modules.len().div_ceil(workers).max(1);
        let parts: Vec<(Status, Memo)> = std::thread::scope(|scope| {
            let handles: Vec<_> = modules
                .chunks(chunk)
                .map(|part| {
                    let (old, module_dirs, old_confs) = (&old, &module_dirs, &old_confs);
                    let etc_names = etc_names.clone();
                    scope.spawn(move || {
                        let mut memo =
                            Memo::new((old, old_confs), Some(module_dirs), etc_names, limit);
                        let status = self.status_of(part, query, &mut memo);
                        (status, memo)
                    })
                })
                .collect();
            // A worker's panic is a bug: re-raise it rather than print fewer lines.
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
        let mut all = Status::default();
        let mut memos = vec![first];
        for (part, memo) in parts {
            all.entries.extend(part.entries);
            all.not_run.extend(part.not_run);
            memos.push(memo);
        }
        let changed = memos.iter().any(|m| !m.seen.is_empty());
        let kept: usize = memos
            .iter()
            .map(|m| m.kept_entries.len() + m.kept_dirs.len())
            .sum();
        let whole = query.module.is_none()
            && query.version.is_none()
            && query.kernel.is_none()
            && query.arch.is_none();
        // The conf cache as the record below: what a whole status did not find valid goes.
        let confs_changed = memos.iter().any(|m| !m.seen_confs.is_empty());
        let confs_kept: usize = memos.iter().map(|m| m.kept_confs.len()).sum();
        if all.not_run.is_empty() && (confs_changed || (whole && confs_kept != old_confs.len())) {
            let mut confs = ConfCache::default();
            if whole {
                for m in &memos {
                    confs.keep_from(&old_confs, Some(&m.kept_confs));
                }
            } else {
                confs.keep_from(&old_confs, None);
            }
            for m in &mut memos {
                confs.extend(std::mem::take(&mut m.seen_confs));
            }
            let _ = confs.write(&cache_path);
        }
        if !all.not_run.is_empty() {
            // A dkms.conf refused (`--no-exec`): the command wrote nothing, the record neither.
        } else if whole {
            // Every pair and dir was looked at: what was not, or is no longer valid, is gone
            // and leaves the record.
            if changed || kept != old.len() {
                let mut seen = Record::default();
                for m in memos {
                    seen.keep_from(&old, &m.kept_entries, &m.kept_dirs);
                    seen.extend(m.seen);
                }
                let _ = seen.write(&record_path);
            }
        } else if changed {
            let seen: Vec<Record> = memos.into_iter().map(|m| m.seen).collect();
            let mut merged = old;
            for s in seen {
                merged.extend(s);
            }
            let _ = merged.write(&record_path);
            return all;
        }
        // Left to the exit to free, not entry by entry (18,000 of them at 1,000 x 8).
        std::mem::forget(old);
        all
    }

    fn status_of(
        &self,
        modules: &[(ModuleVersion, bool)],
        query: &StatusQuery,
        memo: &mut Memo,
    ) -> Status {
        let (kernel, arch) = (query.kernel, query.arch);
        // dkms 3.2.2's module_status_built_extra reads each dkms.conf with its globals
        // $module and $module_version, the command line's (`-m`, `-v`; empty without):
        // what the file expands them to and which /etc/dkms overrides apply.
        let (module, version) = (query.module.unwrap_or(""), query.version.unwrap_or(""));
        let mut entries = Vec::new();
        let mut not_run = Vec::new();
        for (mv, broken) in modules {
            if *broken {
                entries.push(StatusEntry {
                    module: mv.clone(),
                    target: None,
                    state: ModuleState::Broken,
                    original_modules: false,
                    modules_missing: false,
                    differs: false,
                    installed_version: None,
                    make_log: None,
                });
                continue;
            }
            let before = entries.len();
            // The module dir's listing, read through the record before the workers started:
            // its kernel links and original_module/ without a readlink or a stat each.
            let module_listing = memo.module_dirs.and_then(|d| d.get(&mv.module)).cloned();
            let version_listing = kernel
                .is_none()
                .then(|| self.recorded_listing(&self.version_dir(mv), memo))
                .flatten();
            // No build/ in the version dir: no make.log to look for.
            let make_log = match &version_listing {
                Some(d) if !d.has("build") => None,
                _ => Some(self.build_dir(mv).join("make.log")).filter(|p| p.is_file()),
            };
            let mut refused = false;
            let conf_path = self.source_dir(mv).join("dkms.conf");
            // Read when a target first needs it, once for all the version's targets.
            let mut file = None;
            // The module records, when they hold for every target (see below).
            let mut every_target: Option<Option<Arc<Vec<crate::conf::ModuleRecord>>>> = None;
            // One look at the module dir instead of a stat per target: most modules have no
            // original_module/ at all.
            let has_originals = match &module_listing {
                Some(d) => d.has("original_module"),
                None => self.module_dir(&mv.module).join("original_module").is_dir(),
            };
            let version_dir = self.version_dir(mv);
            let mut link_name = String::new();
            let targets =
                self.targets_listed(mv, kernel, arch, version_listing.as_deref(), &mut |dir| {
                    self.recorded_listing(dir, memo)
                });
            // The facts kept of an unchanged dkms.conf stand for its reading (see
            // conf_cache); else, when what it says may be kept, the key and stat data to
            // keep it with.
            let mut to_keep = None;
            if !targets.is_empty() {
                let etc_names = memo.etc_names.as_deref();
                match memo
                    .confs
                    .lookup(etc_names, module, mv, &conf_path, &memo.host)
                {
                    conf_cache::Lookup::Kept(key, facts) => {
                        memo.kept_confs.push(key);
                        every_target = Some(Some(facts.records.clone()));
                    }
                    conf_cache::Lookup::Keep(key, stat) => to_keep = Some((key, stat)),
                    conf_cache::Lookup::Read => {}
                }
            }
            for target in targets {
                // Only a target with a `module/` dir can be built: skip its dkms.conf read.
                // With the records of an earlier target (the same for every target, as
                // below), every module file found there shows the dir without its own stat.
                let module_dir = joined(
                    &version_dir,
                    &[target.kernel.as_str(), &target.arch, "module"],
                );
                let compression = target.kernel.module_compression();
                let found_early: Option<Option<Vec<(PathBuf, std::fs::Metadata)>>> =
                    match &every_target {
                        Some(Some(records)) => Some(
                            records
                                .iter()
                                .map(|r| module_file_meta(&module_dir, &r.dest_name, compression))
                                .collect(),
                        ),
                        _ => None,
                    };
                if !found_early.as_ref().is_some_and(Option::is_some) && !module_dir.is_dir() {
                    continue;
                }
                // Status needs only the module records: read once for all the targets
                // when the file says the same for each (no kernel name expanded, no
                // override named after a kernel); else for each target, as dkms does.
                let shared = every_target.as_ref().filter(|_| {
                    !crate::conf::target_overrides_there(
                        &self.etc_dir,
                        memo.etc_names.as_deref(),
                        module,
                        version,
                        (target.kernel.as_str(), &target.arch),
                    )
                });
                let shared_taken = shared.is_some();
                let records = match shared {
                    Some(records) => records.clone(),
                    None => {
                        let Ok(file) = file
                            .get_or_insert_with(|| crate::conf::ConfFile::read(&conf_path))
                            .as_ref()
                        else {
                            continue;
                        };
                        let ctx = ResolveContext {
                            etc_names: memo.etc_names.clone(),
                            ..self.resolve_context(&target, None)
                        }
                        .with_module(module, version);
                        match file.evaluate(&ctx, crate::conf::Reader::Auto) {
                            Ok(res) => {
                                if let Some((key, stat)) = to_keep.take()
                                    && let Some(facts) = conf_cache::Facts::of(&res, &ctx)
                                {
                                    memo.seen_confs.insert(&key, stat, facts, memo.limit);
                                }
                                let same = res.records_for_every_target;
                                let records =
                                    res.into_result().ok().map(|conf| Arc::new(conf.modules));
                                if same {
                                    every_target = Some(records.clone());
                                }
                                records
                            }
                            // Not judged: not "built", and not "added" either (it may be both).
                            Err(e @ ConfError::NotRun { .. }) => {
                                if !refused {
                                    not_run.push(e);
                                }
                                refused = true;
                                continue;
                            }
                            Err(_) => None,
                        }
                    }
                };
                let Some(records) = records else { continue };
                // dkms 3.2.2's is_module_built is the module/ dir; a module file missing
                // there is its "incomplete" suffix. The files found early are these
                // records' when the shared ones were taken.
                let built: Option<Vec<(PathBuf, std::fs::Metadata)>> = match found_early {
                    Some(found) if shared_taken => found,
                    _ => records
                        .iter()
                        .map(|r| module_file_meta(&module_dir, &r.dest_name, compression))
                        .collect(),
                };
                let complete = built.is_some();
                // The built dir is there (its module/ is): the link alone decides, as install
                // writes it; any other form as is_installed resolves it.
                let link: Option<std::borrow::Cow<Path>> = match &module_listing {
                    Some(d) => {
                        link_name.clear();
                        link_name.extend(["kernel-", target.kernel.as_str(), "-", &target.arch]);
                        d.link(&link_name).map(std::borrow::Cow::Borrowed)
                    }
                    None => std::fs::read_link(self.kernel_link(&mv.module, &target))
                        .ok()
                        .map(std::borrow::Cow::Owned),
                };
                let installed = link.as_ref().is_some_and(|dest| {
                    is_joined(dest, &[&mv.version, target.kernel.as_str(), &target.arch])
                        || self.is_installed(mv, &target)
                });
                let original_modules =
                    has_originals && self.original_dir(&mv.module, &target).is_dir();
                // module_status_built_extra: the diff only when every module file is there.
                let differs = match &built {
                    Some(built) => {
                        installed && !self.installed_matches_built(&target, &records, built, memo)
                    }
                    None => false,
                };
                let installed_version = if installed {
                    Some(mv.version.clone())
                } else {
                    link.and_then(|dest| self.linked_version(&mv.module, &target, &dest))
                };
                entries.push(StatusEntry {
                    module: mv.clone(),
                    state: if installed {
                        ModuleState::Installed
                    } else {
                        ModuleState::Built
                    },
                    target: Some(target),
                    original_modules,
                    modules_missing: !complete,
                    differs,
                    installed_version,
                    make_log: make_log.clone(),
                });
            }
            if entries.len() == before && !refused {
                entries.push(StatusEntry {
                    module: mv.clone(),
                    target: None,
                    state: ModuleState::Added,
                    original_modules: false,
                    modules_missing: false,
                    differs: false,
                    installed_version: None,
                    make_log,
                });
            }
        }
        Status { entries, not_run }
    }

    /// `dir`'s listing through the status record (see [`record`]): the recorded one while
    /// its stat data are the recorded ones; else listed now with its links read, and
    /// recorded once settled. A dir outside the dkms tree, or its root, is listed each time.
    fn recorded_listing(&self, dir: &Path, memo: &mut Memo) -> Option<Arc<Dir>> {
        let Some(rel) = record::relative(&self.dkms_tree, dir) else {
            return list_dir(dir);
        };
        // Stat'ed before it is listed: a change while it is listed leaves new stat data.
        let meta = std::fs::metadata(dir).ok().filter(|m| m.is_dir())?;
        let stat = StatData::of(&meta);
        if let Some((key, (was, listing))) = memo.old.dir(rel)
            && *was == stat
        {
            memo.kept_dirs.push(key);
            return Some(listing.clone());
        }
        let entries = listing::entries(dir)?;
        let links = entries
            .iter()
            .filter(|e| e.is_link)
            .filter_map(|e| Some((e.name.clone(), std::fs::read_link(dir.join(&e.name)).ok()?)))
            .collect();
        let listing = Arc::new(Dir { entries, links });
        memo.seen
            .insert_dir(rel.to_owned(), stat, listing.clone(), memo.limit);
        Some(listing)
    }

    /// Whether every installed module file is the built one (`built`, with its metadata,
    /// in the conf's order) byte for byte (dkms `diff -q`).
    fn installed_matches_built(
        &self,
        target: &Target,
        records: &[crate::conf::ModuleRecord],
        built: &[(PathBuf, std::fs::Metadata)],
        memo: &mut Memo,
    ) -> bool {
        let compression = target.kernel.module_compression();
        let lib = self.kernel_modules_dir(&target.kernel);
        records.iter().zip(built).all(|(r, (ours, meta))| {
            let dest = r.dest_dir(&lib);
            let Some((theirs, their_meta)) = module_file_meta(&dest, &r.dest_name, compression)
            else {
                return false;
            };
            self.same_module(ours, meta, &theirs, &their_meta, memo)
        })
    }

    /// [`same_bytes`], answered by the status record while both files' stat data are the
    /// recorded ones; a comparison made is recorded in `memo`.
    fn same_module(
        &self,
        ours: &Path,
        a: &std::fs::Metadata,
        theirs: &Path,
        b: &std::fs::Metadata,
        memo: &mut Memo,
    ) -> bool {
        if a.len() != b.len() {
            return false;
        }
        let (sa, sb) = (StatData::of(a), StatData::of(b));
        let key = record::key(&self.dkms_tree, ours, &self.install_tree, theirs);
        if let Some(key) = &key
            && let Some((kept, entry)) = memo.old.get(key)
            && entry.built == sa
            && entry.installed == sb
        {
            memo.kept_entries.push(kept);
            return entry.same;
        }
        let same = match (std::fs::read(ours), std::fs::read(theirs)) {
            (Ok(x), Ok(y)) => x == y,
            _ => return false,
        };
        if let Some(key) = key {
            let entry = record::Entry {
                built: sa,
                installed: sb,
                same,
            };
            memo.seen.insert(key, entry, memo.limit);
        }
        same
    }
}

/// What one `status` worker knows of the status record: the one read, the entries it
/// confirmed or made, and whether it made any.
struct Memo<'a> {
    old: &'a Record,
    /// The module dirs' listings, by module, read before the workers started.
    module_dirs: Option<&'a std::collections::HashMap<String, Arc<Dir>>>,
    /// What was compared or listed anew, as the record will have it.
    seen: Record,
    /// The keys of `old`'s entries and dirs found still valid.
    kept_entries: Vec<&'a str>,
    kept_dirs: Vec<&'a str>,
    /// [`record::settle_limit`] at the start of `status`.
    limit: i128,
    /// [`crate::conf::ResolveContext::etc_names`] for every dkms.conf read.
    etc_names: Option<std::sync::Arc<std::collections::HashSet<std::ffi::OsString>>>,
    /// The conf cache read, the facts read anew, the keys of the old ones still valid.
    confs: &'a ConfCache,
    seen_confs: ConfCache,
    kept_confs: Vec<String>,
    /// The host's distribution and addon dir, as every dkms.conf is read with them.
    host: ResolveContext,
}

impl<'a> Memo<'a> {
    fn new(
        (old, confs): (&'a Record, &'a ConfCache),
        module_dirs: Option<&'a std::collections::HashMap<String, Arc<Dir>>>,
        etc_names: Option<std::sync::Arc<std::collections::HashSet<std::ffi::OsString>>>,
        limit: i128,
    ) -> Memo<'a> {
        Memo {
            old,
            module_dirs,
            seen: Record::default(),
            kept_entries: Vec::new(),
            kept_dirs: Vec::new(),
            limit,
            etc_names,
            confs,
            seen_confs: ConfCache::default(),
            kept_confs: Vec::new(),
            host: ResolveContext::new("", ""),
        }
    }
}

/// [`kernel::module_file`] with the file's metadata (followed links), one stat for a plain
/// `.ko`.
fn module_file_meta(
    dir: &Path,
    name: &str,
    compression: kernel::ModuleCompression,
) -> Option<(PathBuf, std::fs::Metadata)> {
    let plain = joined(dir, &[name]);
    let mut plain = plain.into_os_string();
    plain.push(".ko");
    let plain = PathBuf::from(plain);
    if let Ok(meta) = std::fs::metadata(&plain) {
        return Some((plain, meta));
    }
    let compressed = dir.join(format!("{name}.ko{}", compression.extension()));
    let meta = std::fs::metadata(&compressed).ok()?;
    Some((compressed, meta))
}

/// `base` joined with `parts` (names, no `/` at either end), made in one allocation: status
/// makes a few paths for each of 8,000 targets at 1,000 x 8, and `Path::join`'s regrowth
/// of each was a tenth of its instructions.
fn joined(base: &Path, parts: &[&str]) -> PathBuf {
    let base = base.as_os_str();
    let sep = !base.as_encoded_bytes().ends_with(b"/");
    let len = base.len() + parts.iter().map(|p| p.len() + 1).sum::<usize>();
    let mut path = std::ffi::OsString::with_capacity(len);
    path.push(base);
    for (i, part) in parts.iter().enumerate() {
        if sep || i > 0 {
            path.push("/");
        }
        path.push(part);
    }
    PathBuf::from(path)
}

/// Whether `path` is `parts` joined with `/` (no more, no less), as text.
fn is_joined(path: &Path, parts: &[&str]) -> bool {
    let mut rest = path.as_os_str().as_encoded_bytes();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            match rest.strip_prefix(b"/") {
                Some(r) => rest = r,
                None => return false,
            }
        }
        match rest.strip_prefix(part.as_bytes()) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    rest.is_empty()
}

/// Whether `name` matches bash's `kernel-*-*`: the names dkms 3.2.2 never takes for
/// versions (see [`Tree::added_modules`]).
fn is_kernel_link_name(name: &str) -> bool {
    name.strip_prefix("kernel-")
        .is_some_and(|rest| rest.contains('-'))
}

/// Names in a directory's listing that a bash `*` glob would list (no dot files), sorted.
fn visible_names(dir: Option<&Dir>) -> Vec<String> {
    let mut names: Vec<String> = dir
        .iter()
        .flat_map(|d| d.entries.iter())
        .filter_map(|e| e.name.to_str())
        .filter(|n| !n.starts_with('.'))
        .map(str::to_owned)
        .collect();
    names.sort();
    names
}

/// A directory's entries, listed now; its links are not read.
fn list_dir(dir: &Path) -> Option<Arc<Dir>> {
    listing::entries(dir).map(|entries| {
        Arc::new(Dir {
            entries,
            links: Vec::new(),
        })
    })
}

/// Two files with the same content.
pub fn same_bytes(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(ma), Ok(mb)) if ma.len() == mb.len() => {}
        _ => return false,
    }
    match (std::fs::read(a), std::fs::read(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    fn tree_in(dir: &Path) -> Tree {
        Tree {
            dkms_tree: dir.join("tree"),
            source_tree: dir.join("src"),
            install_tree: dir.join("lib/modules"),
            etc_dir: dir.join("etc"),
            kernel_source_dir: None,
            kernel_config: None,
            no_exec: false,
        }
    }

    /// A `--format plain` field back to its value, as a script reading it would.
    fn unescape(field: &str) -> Option<String> {
        if field == "-" {
            return None;
        }
        let mut out = String::new();
        let mut chars = field.chars();
        while let Some(c) = chars.next() {
            out.push(match (c, c == '\\') {
                (_, false) => c,
                _ => match chars.next() {
                    Some('t') => '\t',
                    Some('n') => '\n',
                    Some('r') => '\r',
                    Some(other) => other,
                    None => panic!("a lone backslash ends {field:?}"),
                },
            });
        }
        Some(out)
    }

    proptest::proptest! {
        /// Whatever the names hold, a plain record is one line of ten fields without a raw
        /// tab, newline or carriage return, each reading back as the value it was.
        #[test]
        fn a_plain_record_is_one_line_of_ten_whole_fields(
            module in "\\PC*|[-\t\n\r\\\\a]{0,6}",
            version in "\\PC*|[-\t\n\r\\\\a]{0,6}",
            kernel in proptest::option::of("\\PC*|[-\t\n\r\\\\a]{0,6}"),
            other in proptest::option::of("[-\t\n\r\\\\a]{0,6}"),
            log in proptest::option::of("[-\t\n\r\\\\/a]{0,8}"),
            flags in proptest::array::uniform3(proptest::bool::ANY),
        ) {
            let entry = StatusEntry {
                module: ModuleVersion { module: module.clone(), version: version.clone() },
                target: kernel.clone().map(|k| Target {
                    kernel: KernelRelease(k.clone()),
                    arch: format!("{k}\tarch"),
                }),
                state: ModuleState::Built,
                original_modules: flags[0],
                modules_missing: flags[1],
                differs: flags[2],
                installed_version: other.clone(),
                make_log: log.clone().map(PathBuf::from),
            };
            let line = entry.plain();
            proptest::prop_assert!(!line.contains(['\n', '\r']), "{:?}", line);
            let fields: Vec<&str> = line.split('\t').collect();
            proptest::prop_assert_eq!(fields.len(), STATUS_FIELDS.len());
            let back: Vec<Option<String>> = fields.iter().map(|f| unescape(f)).collect();
            proptest::prop_assert_eq!(back, entry.values().to_vec());
            // And the json object says the same, field for field.
            let json: serde_json::Value = serde_json::from_str(&entry.json()).expect("json");
            for (field, value) in STATUS_FIELDS.iter().zip(entry.values()) {
                let got = match &json[*field] {
                    serde_json::Value::Bool(b) => Some(if *b { "yes" } else { "no" }.to_owned()),
                    serde_json::Value::String(s) => Some(s.clone()),
                    _ => None,
                };
                proptest::prop_assert_eq!(got, value);
            }
        }
    }

    #[test]
    fn the_lock_taken_again_by_its_thread_is_the_same_lock() {
        let dir = tempfile::tempdir().unwrap();
        let tree = tree_in(dir.path());
        let outer = tree.lock().unwrap();
        // The same tree by another name: the same lock file, so the same lock.
        let again = Tree {
            dkms_tree: dir.path().join("tree/../tree"),
            ..tree.clone()
        };
        let inner = again.lock().unwrap();
        let (done, took) = mpsc::channel();
        let other = std::thread::spawn({
            let tree = tree.clone();
            move || {
                let _held = tree.lock().unwrap();
                done.send(()).unwrap();
            }
        });
        drop(inner);
        // Another thread waits while any guard of the holding thread is out.
        assert!(took.recv_timeout(Duration::from_millis(300)).is_err());
        drop(outer);
        took.recv_timeout(Duration::from_secs(10))
            .expect("the lock is free once the outer guard drops");
        other.join().unwrap();
        // And free again for this thread.
        drop(tree.lock().unwrap());
    }
}
