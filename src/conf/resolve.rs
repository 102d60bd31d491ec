//! dkms 3.0.10's `read_conf` post-processing: from the whitelisted variables to a
//! [`ModuleConf`] plus the validation problems dkms reports, rule for rule.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::posix;
use super::vars::Vars;
use super::{
    ConfError, ModuleConf, ModuleRecord, NameFault, NeedsShell, Problem, ResolveContext, Rest,
};

/// A dkms.conf resolved for one (kernel, arch), and what dkms would complain about.
#[derive(Debug, Clone)]
pub struct Resolution {
    pub conf: ModuleConf,
    /// In the order dkms reports them; empty when dkms accepts the file.
    pub problems: Vec<ConfError>,
    /// Which reader produced it: whether bash ran the file's shell code.
    pub read_by: ReadBy,
    /// Whether [`ModuleConf::modules`] and `problems` are the same for every (kernel, arch)
    /// of the module (see [`super::ConfFile::has_target_overrides`]): the native reader read it,
    /// expanded no name of [`super::native::TARGET_NAMES`], and no override named after the
    /// kernel was there. What else the conf holds (make command, BUILD_EXCLUSIVE_*, patches)
    /// may still depend on the kernel.
    pub records_for_every_target: bool,
    /// Whether the module records and BUILD_DEPENDS* follow from the dkms.conf's bytes and
    /// the host's distribution (DEST_MODULE_LOCATION's override) alone, for every target and
    /// whatever `$module` it is read with: [`Self::records_for_every_target`], no override
    /// file read at all, none of dkms's variables expanded, and no value with a glob character (see
    /// [`super::native::Reads`]); and read with no `DKMS_DIRECTIVE*` in the environment.
    /// What such a file says may be kept with its stat data (the tree's conf cache, a layer
    /// above), while no entry of the working directory is named like a directive.
    pub text_only: bool,
}

/// Which reader produced a [`Resolution`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadBy {
    /// The native reader: nothing was run.
    Native,
    /// bash sourced the files (running their shell code), because of what it says (`None`:
    /// bash was asked for, with [`super::Reader::Bash`]).
    Bash(Option<NeedsShell>),
}

impl Resolution {
    /// The conf when valid, else the first problem with the others in its `more` (what
    /// `read_conf_or_die` dies with, after saying each).
    pub fn into_result(self) -> Result<ModuleConf, ConfError> {
        match all_problems(self.problems) {
            Some(e) => Err(e),
            None => Ok(self.conf),
        }
    }
}

/// `problems` as one error: the first, the others in its `more` (`None`: no problem).
pub fn all_problems(problems: Vec<ConfError>) -> Option<ConfError> {
    let mut problems = problems.into_iter();
    match problems.next()? {
        ConfError::Invalid {
            path,
            line,
            directive,
            record,
            kind,
            mut rest,
        } => {
            rest.more = problems.collect();
            Some(ConfError::Invalid {
                path,
                line,
                directive,
                record,
                kind,
                rest,
            })
        }
        other => Some(other),
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

    /// One past the highest index set of `NAME` (0 when unset): dkms 3.2.2's record count.
    fn extent(&self, name: &str) -> u64 {
        self.vars
            .get(name)
            .and_then(|v| v.keys().next_back())
            .map_or(0, |i| i + 1)
    }

    /// `[[ $NAME ]]`: a scalar directive, `None` when empty or unset.
    fn optional(&self, name: &str) -> Option<String> {
        Some(self.get(name, 0).to_owned()).filter(|s| !s.is_empty())
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
            rest: Box::new(Rest {
                conf: self.files[0].clone(),
                more: Vec::new(),
            }),
        }
    }
}

const RECORD: &[&str] = &[
    "BUILT_MODULE_NAME",
    "DEST_MODULE_LOCATION",
    "BUILT_MODULE_LOCATION",
    "DEST_MODULE_NAME",
];

/// Apply read_conf's rules to `vars` as sourced from `files` (the dkms.conf first), in
/// read_conf's order: records, make and clean, patches, BUILD_EXCLUSIVE_*, the checks.
/// `read_by` is [`ReadBy::Native`]: the bash path says otherwise.
pub fn resolve(
    vars: &Vars,
    files: &[PathBuf],
    ctx: &ResolveContext,
    module: &str,
    module_version: &str,
) -> Resolution {
    let stripped;
    let vars = if has_cr(vars) {
        stripped = without_cr(vars);
        &stripped
    } else {
        vars
    };
    let r = Reader { vars, files };
    let mut problems = Vec::new();
    let package_name = r.get("PACKAGE_NAME", 0).to_owned();
    let package_version = r.get("PACKAGE_VERSION", 0).to_owned();
    check_package(&r, &package_name, &package_version, &mut problems);
    let records = module_records(&r, ctx, &package_name, &mut problems);
    check_lengths(&r, &records, &mut problems);
    let autoinstall = check_yes_no(&r, &mut problems);
    let build_dir = format!(
        "{}/{module}/{module_version}/build",
        ctx.dkms_tree.display()
    );
    // Read once: read_conf greps $kernel_config, BUILD_EXCLUSIVE_CONFIG its twin.
    let kconfig = KernelConfig::load(&ctx.kernel_config);
    let make_command = make_command(&r, ctx, &build_dir, kconfig.as_deref());
    let clean = clean_command(&r, ctx, &build_dir);
    let patches = patches(&r, &ctx.kernelver);
    let build_exclude = build_exclude(&r, ctx, kconfig.as_ref());
    check_names(&r, &records, &package_name, &package_version, &mut problems);
    Resolution {
        conf: ModuleConf {
            path: files[0].clone(),
            package_name,
            package_version,
            make_command,
            clean,
            modules: records.into_modules(),
            patches,
            pre_build: r.optional("PRE_BUILD"),
            post_build: r.optional("POST_BUILD"),
            pre_install: r.optional("PRE_INSTALL"),
            post_install: r.optional("POST_INSTALL"),
            post_add: r.optional("POST_ADD"),
            post_remove: r.optional("POST_REMOVE"),
            autoinstall,
            build_depends: build_depends(&r),
            // 3.2.2's check_yes_no_value: "yes" in any case; "no" or empty is off.
            build_depends_rebuild: r
                .get("BUILD_DEPENDS_REBUILD", 0)
                .eq_ignore_ascii_case("yes"),
            build_exclude,
            build_exclusive_config: r.optional("BUILD_EXCLUSIVE_CONFIG"),
            obsolete_by: r.optional("OBSOLETE_BY"),
            deprecated: deprecated(&r),
        },
        problems,
        read_by: ReadBy::Native,
        records_for_every_target: false,
        text_only: false,
    }
}

/// Whether a value ends in a carriage return (a dkms.conf with CR/LF line ends).
fn has_cr(vars: &Vars) -> bool {
    vars.values()
        .flat_map(|v| v.values())
        .any(|e| e.value.ends_with('\r'))
}

/// dkms 3.2.2's safe_source: one trailing CR off each element of each directive
/// (`${VAR[$i]%$CR}`), so a dkms.conf saved with CR/LF line ends reads as with LF.
fn without_cr(vars: &Vars) -> Vars {
    let mut vars = vars.clone();
    for elem in vars.values_mut().flat_map(|v| v.values_mut()) {
        if elem.value.ends_with('\r') {
            elem.value.pop();
        }
    }
    vars
}

/// read_conf's lowercase record arrays as its record loop leaves them (conf-set elements
/// beyond the loop stay, as in dkms).
struct Records {
    /// How many records the loop set (the longest uppercase array); beyond, conf-set values.
    looped: u64,
    built_name: BTreeMap<u64, String>,
    built_location: BTreeMap<u64, String>,
    dest_name: BTreeMap<u64, String>,
    dest_location: BTreeMap<u64, String>,
    strip: BTreeMap<u64, String>,
}

impl Records {
    /// dkms's consumers loop `count < ${#built_module_name[@]}` and index every array with it.
    fn into_modules(self) -> Vec<ModuleRecord> {
        let records = self.built_name.len() as u64;
        (0..records)
            .map(|i| ModuleRecord {
                built_name: self.built_name.get(&i).cloned().unwrap_or_default(),
                built_location: self.built_location.get(&i).cloned().unwrap_or_default(),
                dest_name: self.dest_name.get(&i).cloned().unwrap_or_default(),
                dest_location: self.dest_location.get(&i).cloned().unwrap_or_default(),
                strip: self.strip.get(&i).is_none_or(|s| s != "no"),
            })
            .collect()
    }
}

/// read_conf's record loop over the longest of BUILT_MODULE_NAME, BUILT_MODULE_LOCATION,
/// DEST_MODULE_NAME, DEST_MODULE_LOCATION: STRIP, defaults, checks, location override.
fn module_records(
    r: &Reader,
    ctx: &ResolveContext,
    package_name: &str,
    problems: &mut Vec<ConfError>,
) -> Records {
    // dkms 3.2.2: the arrays may be sparse, the highest index counts.
    let array_size = RECORD.iter().map(|n| r.extent(n)).max().unwrap_or(0);
    let mut records = Records {
        looped: array_size,
        built_name: r.array("built_module_name"),
        built_location: r.array("built_module_location"),
        dest_name: r.array("dest_module_name"),
        dest_location: r.array("dest_module_location"),
        strip: r.array("strip"),
    };
    let single_dest = array_size == 1;
    for index in 0..array_size {
        set_strip(&mut records.strip, index, r.get("STRIP", index));
        let (bname, bloc, dname) = record_defaults(r, index, package_name, single_dest);
        let raw_dest = r.get("DEST_MODULE_LOCATION", index);
        check_record(r, index, &bname, &dname, raw_dest, problems);
        records.built_name.insert(index, bname);
        records.built_location.insert(index, bloc);
        records.dest_name.insert(index, dname);
        records
            .dest_location
            .insert(index, override_dest_module_location(ctx, raw_dest));
    }
    records
}

/// `case ${STRIP[i]}`: `n*`/`N*` no, `y*`/`Y*` yes, empty inherits `strip[0]` (else yes),
/// anything else leaves `strip[i]` as it was (unset: strip).
fn set_strip(strip: &mut BTreeMap<u64, String>, index: u64, value: &str) {
    match value.chars().next() {
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
        Some(_) => {}
    }
}

/// read_conf's "If unset, set by defaults": (built name, built location, dest name) of record
/// `index`, BUILT_MODULE_NAME from PACKAGE_NAME when there is one record,
/// DEST_MODULE_NAME from BUILT_MODULE_NAME, BUILT_MODULE_LOCATION ending in `/`.
fn record_defaults(
    r: &Reader,
    index: u64,
    package_name: &str,
    single_dest: bool,
) -> (String, String, String) {
    let mut bname = r.get("BUILT_MODULE_NAME", index).to_owned();
    let mut bloc = r.get("BUILT_MODULE_LOCATION", index).to_owned();
    let mut dname = r.get("DEST_MODULE_NAME", index).to_owned();
    if bname.is_empty() && single_dest {
        bname = package_name.to_owned();
    }
    if dname.is_empty() {
        dname.clone_from(&bname);
    }
    if !bloc.is_empty() && !bloc.ends_with('/') {
        bloc.push('/');
    }
    (bname, bloc, dname)
}

/// read_conf's per-record checks, in its order: no BUILT_MODULE_NAME, a name ending in
/// `.o`/`.ko` (built, then dest), no DEST_MODULE_LOCATION, one outside /kernel, /updates, /extra.
fn check_record(
    r: &Reader,
    index: u64,
    bname: &str,
    dname: &str,
    raw_dest: &str,
    problems: &mut Vec<ConfError>,
) {
    let object = |name: &str| name.ends_with(".o") || name.ends_with(".ko");
    if bname.is_empty() {
        problems.push(r.problem(
            "BUILT_MODULE_NAME",
            Some(index),
            RECORD,
            Problem::NoBuiltModuleName,
        ));
    }
    if object(bname) {
        problems.push(r.problem(
            "BUILT_MODULE_NAME",
            Some(index),
            RECORD,
            Problem::BuiltNameSuffix,
        ));
    }
    if object(dname) {
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
    } else if !(raw_dest.starts_with("/kernel")
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
}

/// read_conf's "Get the correct make command": MAKE[0] unless MAKE_MATCH[0] is set, then the
/// last MAKE[i] whose MAKE_MATCH[i] matches the kernel; else dkms's `make -C <headers> M=<build>`;
/// then ` CC=clang` / ` LD=ld.lld` for a kernel built with them.
fn make_command(
    r: &Reader,
    ctx: &ResolveContext,
    build_dir: &str,
    kconfig: Option<&KernelConfig>,
) -> String {
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
            && posix::ere_match(matcher, &ctx.kernelver) == Some(true)
        {
            make_command = make.to_owned();
        }
    }
    if make_command.is_empty() {
        make_command = format!("make -C {} M={build_dir}", ctx.kernel_source_dir.display());
    }
    let (clang, lld) = kernel_toolchain(ctx, kconfig);
    if clang {
        make_command.push_str(" CC=clang");
    }
    if lld {
        make_command.push_str(" LD=ld.lld");
    }
    make_command
}

/// CLEAN, else dkms's `make -C <headers> M=<build> clean`.
fn clean_command(r: &Reader, ctx: &ResolveContext, build_dir: &str) -> String {
    let clean = r.get("CLEAN", 0);
    if clean.is_empty() {
        format!(
            "make -C {} M={build_dir} clean",
            ctx.kernel_source_dir.display()
        )
    } else {
        clean.to_owned()
    }
}

/// read_conf's "Set patch_array": each set PATCH[i] whose PATCH_MATCH[i] is empty or matches
/// the kernel, numbered from 0 over whatever patch_array the conf set.
fn patches(r: &Reader, kernelver: &str) -> Vec<String> {
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
    patch_array.into_values().collect()
}

/// read_conf's "Set build_exclude": a conf-set build_exclude, a BUILD_EXCLUSIVE_KERNEL or
/// BUILD_EXCLUSIVE_ARCH regex that does not match, or BUILD_EXCLUSIVE_CONFIG not met.
fn build_exclude(r: &Reader, ctx: &ResolveContext, kconfig: Option<&Arc<KernelConfig>>) -> bool {
    let mut build_exclude = !r.get("build_exclude", 0).is_empty();
    let bek = r.get("BUILD_EXCLUSIVE_KERNEL", 0);
    // `[[ $X && ! $1 =~ $X ]]`: a regex that does not compile makes the test false.
    if !bek.is_empty() && posix::ere_match(bek, &ctx.kernelver) == Some(false) {
        build_exclude = true;
    }
    let bea = r.get("BUILD_EXCLUSIVE_ARCH", 0);
    if !bea.is_empty() && posix::ere_match(bea, &ctx.arch) == Some(false) {
        build_exclude = true;
    }
    let bec = r.get("BUILD_EXCLUSIVE_CONFIG", 0);
    if !bec.is_empty() {
        build_exclude |= excluded_by_config(bec, ctx, kconfig);
    }
    build_exclude
}

/// BUILD_EXCLUSIVE_CONFIG against `$kernel_source_dir/.config` (when there is one): each
/// `CONFIG_X` must be `=y`/`=m`, each `!CONFIG_X` must not.
fn excluded_by_config(
    bec: &str,
    ctx: &ResolveContext,
    kconfig: Option<&Arc<KernelConfig>>,
) -> bool {
    // dkms greps $kernel_source_dir/.config here, not $kernel_config.
    let config_path = ctx.kernel_source_dir.join(".config");
    let config = if config_path == ctx.kernel_config {
        kconfig.cloned()
    } else {
        KernelConfig::load(&config_path)
    };
    let Some(config) = config else {
        return false;
    };
    let config = &config.bytes;
    let mut excluded = false;
    for kconf in posix::split_and_glob(bec) {
        excluded |= match kconf.strip_prefix('!') {
            // grep -q ... && exclude: a bad pattern (exit 2) does not exclude.
            Some(name) => config_set(name, config) == Some(true),
            // grep -q ... || exclude: a bad pattern does.
            None => config_set(&kconf, config) != Some(true),
        };
    }
    excluded
}

/// dkms 3.2.2's read_conf checks before the records: no PACKAGE_NAME, no PACKAGE_VERSION.
fn check_package(
    r: &Reader,
    package_name: &str,
    package_version: &str,
    problems: &mut Vec<ConfError>,
) {
    if package_name.is_empty() {
        problems.push(r.problem(
            "PACKAGE_NAME",
            None,
            &["PACKAGE_NAME"],
            Problem::NoPackageName,
        ));
    }
    if package_version.is_empty() {
        problems.push(r.problem(
            "PACKAGE_VERSION",
            None,
            &["PACKAGE_VERSION"],
            Problem::NoPackageVersion,
        ));
    }
}

/// dkms 3.2.2's "Array length sanity check": each of the four lowercase record arrays has
/// exactly as many elements as records (more only when the conf set some beyond them).
fn check_lengths(r: &Reader, records: &Records, problems: &mut Vec<ConfError>) {
    for (lower, upper) in [
        (&records.built_name, "BUILT_MODULE_NAME"),
        (&records.built_location, "BUILT_MODULE_LOCATION"),
        (&records.dest_name, "DEST_MODULE_NAME"),
        (&records.dest_location, "DEST_MODULE_LOCATION"),
    ] {
        if lower.len() as u64 != records.looped {
            let lower_name = upper.to_ascii_lowercase();
            let related: &[&str] = &[&lower_name, upper];
            problems.push(r.problem(upper, None, related, Problem::LengthMismatch));
        }
    }
}

/// dkms 3.2.2's check_yes_no_value of AUTOINSTALL, BUILD_DEPENDS_REBUILD, NO_WEAK_MODULES:
/// empty, `yes` or `no` in any case (`no` empties it). Returns whether AUTOINSTALL is set.
fn check_yes_no(r: &Reader, problems: &mut Vec<ConfError>) -> bool {
    let mut autoinstall = false;
    for directive in ["AUTOINSTALL", "BUILD_DEPENDS_REBUILD", "NO_WEAK_MODULES"] {
        let value = r.get(directive, 0);
        let set = if value.is_empty() || value.eq_ignore_ascii_case("no") {
            false
        } else if value.eq_ignore_ascii_case("yes") {
            true
        } else {
            let kind = Problem::Unsupported(value.into());
            problems.push(r.problem(directive, None, &[directive], kind));
            true
        };
        if directive == "AUTOINSTALL" {
            autoinstall = set;
        }
    }
    autoinstall
}

/// Not dkms 3.0.10 checks (it accepts these and then writes wherever they lead): the names
/// paths are made of are single components, the locations have no `..`. After dkms's own
/// checks, so that a file dkms refuses is refused first for dkms's reason. A name inherited
/// (BUILT_MODULE_NAME from PACKAGE_NAME, DEST_MODULE_NAME from BUILT_MODULE_NAME) is
/// reported once, where it was written.
fn check_names(
    r: &Reader,
    records: &Records,
    package_name: &str,
    package_version: &str,
    problems: &mut Vec<ConfError>,
) {
    if let Some(fault) = NameFault::of(package_name) {
        let kind = Problem::BadPackageName(fault);
        problems.push(r.problem("PACKAGE_NAME", None, &["PACKAGE_NAME"], kind));
    }
    if let Some(fault) = NameFault::of(package_version) {
        let kind = Problem::BadPackageVersion(fault);
        problems.push(r.problem("PACKAGE_VERSION", None, &["PACKAGE_VERSION"], kind));
    }
    let has_dotdot = |s: &str| s.split('/').any(|c| c == "..");
    // The records `into_modules` hands on: the loop's, then conf-set lowercase ones.
    for index in 0..records.built_name.len() as u64 {
        let looped = index < records.looped;
        let value = |m: &BTreeMap<u64, String>| m.get(&index).cloned().unwrap_or_default();
        let written = |name: &str| !looped || !r.get(name, index).is_empty();
        let mut push = |directive: &'static str, lower: &'static str, kind| {
            problems.push(r.problem(directive, Some(index), &[directive, lower], kind));
        };
        if written("BUILT_MODULE_NAME")
            && let Some(fault) = NameFault::of(&value(&records.built_name))
        {
            push(
                "BUILT_MODULE_NAME",
                "built_module_name",
                Problem::BadBuiltModuleName(fault),
            );
        }
        if has_dotdot(&value(&records.built_location)) {
            push(
                "BUILT_MODULE_LOCATION",
                "built_module_location",
                Problem::BuiltLocationOutside,
            );
        }
        if written("DEST_MODULE_NAME")
            && let Some(fault) = NameFault::of(&value(&records.dest_name))
        {
            push(
                "DEST_MODULE_NAME",
                "dest_module_name",
                Problem::BadDestModuleName(fault),
            );
        }
        // As written (Debian's override hides it, other distributions use it) and as used.
        if has_dotdot(r.get("DEST_MODULE_LOCATION", index))
            || has_dotdot(&value(&records.dest_location))
        {
            push(
                "DEST_MODULE_LOCATION",
                "dest_module_location",
                Problem::DestLocationOutside,
            );
        }
    }
}

/// What dkms 3.2.2's safe_source says after sourcing each file (for add, build and install):
/// `REMAKE_INITRD (<file>)`, ..., for each file from the first that set the directive on
/// (the variables outlive the file that set them).
fn deprecated(r: &Reader) -> Vec<String> {
    const DEPRECATED: [&str; 5] = [
        "REMAKE_INITRD",
        "MODULES_CONF",
        "MODULES_CONF_OBSOLETES",
        "MODULES_CONF_ALIAS_TYPE",
        "MODULES_CONF_OBSOLETE_ONLY",
    ];
    let first: Vec<Option<usize>> = DEPRECATED
        .iter()
        .map(|name| {
            let elems = r.vars.get(*name).filter(|v| !v.is_empty())?;
            Some(
                elems
                    .values()
                    .map(|e| e.origin.map_or(0, |(file, _)| file))
                    .min()
                    .unwrap_or(0),
            )
        })
        .collect();
    let mut said = Vec::new();
    for (index, file) in r.files.iter().enumerate() {
        for (name, from) in DEPRECATED.iter().zip(&first) {
            if from.is_some_and(|from| from <= index) {
                said.push(format!("{name} ({})", file.display()));
            }
        }
    }
    said
}

/// BUILD_DEPENDS: every element split on blanks, as dkms's unquoted `${BUILD_DEPENDS[@]}`.
fn build_depends(r: &Reader) -> Vec<String> {
    r.vars
        .get("BUILD_DEPENDS")
        .map(|v| {
            v.values()
                .flat_map(|e| e.value.split([' ', '\t', '\n']))
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
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
        use std::sync::Mutex;
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
