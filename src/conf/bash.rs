//! The bash path: evaluate dkms.conf (and its `/etc/dkms` overrides) in bash with dkms
//! 3.0.10's own prelude — `shopt -s extglob`, the `dkms_conf_variables` whitelist, its
//! `safe_source` verbatim, the variables `read_conf` exposes — and read the whitelisted
//! variables back as NUL-separated triples (no parsing of `declare -p`). The dkms.conf text is
//! the one [`ConfFile`] read, not the file on disk, and so are the `/etc/dkms` overrides: each
//! read by [`ConfFile::read`] (bounded, regular files only) before bash sources its text.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::vars::{Elem, Vars};
use super::{ConfError, ConfFile, ResolveContext, ShellFailure};

/// Marks the start of the variable dump: anything a conf prints before it is not ours.
const MARKER: &str = "\u{1}DKMS-RS-VARS\u{1}";

/// dkms 3.0.10's code (GPL-2.0-or-later, as this crate), trimmed to what reading needs.
///
/// When `${17}` is set, stdin holds the dkms.conf text dkms-rs already read: the first line
/// moves it to a spare fd (10 or above, leaving inherited ones alone) and gives everything else
/// /dev/null as before, and read_conf sources that fd's `/dev/fd/N` instead of the dkms.conf's
/// path (without `[ -e ]`: the file was there). These edits keep every line where it was: a
/// conf sees the prelude's line numbers in `$BASH_LINENO`.
const PRELUDE: &str = r#"
shopt -s extglob; [[ ${17} ]] && exec {dkms_rs_fd}<&0 </dev/null && dkms_rs_text=/dev/fd/$dkms_rs_fd
readonly dkms_conf_variables="CLEAN PACKAGE_NAME
   PACKAGE_VERSION POST_ADD POST_BUILD POST_INSTALL POST_REMOVE PRE_BUILD
   PRE_INSTALL BUILD_DEPENDS BUILD_EXCLUSIVE_KERNEL BUILD_EXCLUSIVE_ARCH
   BUILD_EXCLUSIVE_CONFIG
   build_exclude OBSOLETE_BY MAKE MAKE_MATCH
   PATCH PATCH_MATCH patch_array BUILT_MODULE_NAME
   built_module_name BUILT_MODULE_LOCATION built_module_location
   DEST_MODULE_NAME dest_module_name
   DEST_MODULE_LOCATION dest_module_location
   STRIP strip AUTOINSTALL NO_WEAK_MODULES BUILD_DEPENDS_REBUILD
   SIGN_FILE MOK_SIGNING_KEY MOK_CERTIFICATE

   REMAKE_INITRD MODULES_CONF MODULES_CONF_OBSOLETES
   MODULES_CONF_ALIAS_TYPE MODULES_CONF_OBSOLETE_ONLY"
readonly mv_re='^([^/]*)/(.*)$'
error() (
    exec >&2
    echo -n $"Error! "
    for s in "$@"; do echo "$s"; done
)
deprecated() (
    exec >&2
    echo -n $"Deprecated feature: "
    for s in "$@"; do echo "$s"; done
)
die() {
    ret=$1
    shift
    error "$@"
    exit $ret
}
mktemp_or_die() {
    local t
    t=$(mktemp "$@") && echo "$t" && return
    [[ $* = *-d* ]] && die 1 $"Unable to make temporary directory"
    die 1 "Unable to make temporary file."
}
safe_source() {
    # $1 = file to source
    # $@ = environment variables to echo out
    local to_source_file="$1"; shift
    declare -a -r export_envs=("$@")
    local tmpfile=$(mktemp_or_die)
    ( exec >"$tmpfile"
    . "${dkms_rs_from_text:-$to_source_file}" >/dev/null
    # dkms-rs: with the default IFS, `$(eval echo \${!X[@]})` is exactly X's index list;
    # taking it without a subshell saves a fork per whitelisted variable (40 per file).
    if [[ $IFS == $' \t\n' ]]; then
    for _export_env in "${export_envs[@]}"; do
        eval "_dkms_rs_idx=(\"\${!$_export_env[@]}\")"
        for _i in "${_dkms_rs_idx[@]}"; do
            eval echo '$_export_env[$_i]=\"${'$_export_env'[$_i]}\"'
        done
    done
    else
    # This is really ugly, but a neat hack
    # Remember, in bash 2.0 and greater all variables are really arrays.
    for _export_env in "${export_envs[@]}"; do
        for _i in $(eval echo \${!$_export_env[@]}); do
            eval echo '$_export_env[$_i]=\"${'$_export_env'[$_i]}\"'
        done
    done
    fi

    # handle DKMS_DIRECTIVE stuff specially.
    # dkms-rs: the `set | grep | cut` pipeline can only print something when a variable or
    # function named DKMS_DIRECTIVE* exists; skip its three forks otherwise.
    if [[ ${!DKMS_DIRECTIVE@} ]] || compgen -A function DKMS_DIRECTIVE >/dev/null; then
    for directive in $(set | grep ^DKMS_DIRECTIVE | cut -d = -f 2-3); do
        directive_name=${directive%%=*}
        directive_value=${directive#*=}
        echo "$directive_name=\"$directive_value\""
    done
    fi
    )
    . "$tmpfile"
    rm "$tmpfile"

    (( ${#REMAKE_INITRD[@]} )) && deprecated "REMAKE_INITRD ($to_source_file)"
    (( ${#MODULES_CONF[@]} )) && deprecated "MODULES_CONF ($to_source_file)"
    (( ${#MODULES_CONF_OBSOLETES[@]} )) && deprecated "MODULES_CONF_OBSOLETES ($to_source_file)"
    (( ${#MODULES_CONF_ALIAS_TYPE[@]} )) && deprecated "MODULES_CONF_ALIAS_TYPE ($to_source_file)"
    (( ${#MODULES_CONF_OBSOLETE_ONLY[@]} )) && deprecated "MODULES_CONF_OBSOLETE_ONLY ($to_source_file)"
}
# The sourcing half of read_conf: same locals, same unset, same override order.
dkms_rs_read_conf() {
    local return_value=0
    local read_conf_file="$3"
    local kernelver="$1"
    local arch="$2"
    for var in $dkms_conf_variables; do
        unset $var
    done
    local _conf_file dkms_rs_from_text=$dkms_rs_text dkms_rs_n=0
    for _conf_file in "$read_conf_file" "$dkms_rs_etc/$module.conf" \
        "$dkms_rs_etc/$module-$module_version.conf" "$dkms_rs_etc/$module-$module_version-$1.conf" \
        "$dkms_rs_etc/$module-$module_version-$1-$2.conf" "$dkms_rs_etc/$module--$1.conf" \
        "$dkms_rs_etc/$module--$1-$2.conf"; do
        { [[ $dkms_rs_from_text ]] || { ((dkms_rs_n == 0)) && [ -e "$_conf_file" ]; }; } && safe_source "$_conf_file" $dkms_conf_variables; dkms_rs_from_text=${dkms_rs_over[++dkms_rs_n]}
    done
}
dkms_rs_kernelver=$1 dkms_rs_arch=$2 kernel_source_dir=$3 kernel_config=$4 dkms_tree=$5
source_tree=$6 install_tree=$7 dkms_rs_etc=$8 dkms_rs_conf=$9
module=${10} module_version=${11} dkms_rs_identify=${12}
running_distribution=${13} addon_modules_dir=${14}
current_os=${15} current_kernel=${16}; dkms_rs_over=("" "${@:18:6}")
tmp_location=${TMPDIR:-/tmp}
PATH="$PATH:/usr/lib/dkms"
umask 022
unset CC CXX CFLAGS CXXFLAGS LDFLAGS
if [[ $dkms_rs_identify ]]; then
    dkms_rs_read_conf "$dkms_rs_kernelver" "$dkms_rs_arch" "$dkms_rs_conf"
    module="${PACKAGE_NAME%$'\r'}"
    module_version="${PACKAGE_VERSION%$'\r'}"; dkms_rs_over=()
fi
dkms_rs_read_conf "$dkms_rs_kernelver" "$dkms_rs_arch" "$dkms_rs_conf"
[[ $dkms_rs_text ]] && exec {dkms_rs_fd}<&-
printf '%s%s\0%s\0' "$DKMS_RS_MARKER" "$module" "$module_version"
for dkms_rs_v in $dkms_conf_variables; do
    eval "dkms_rs_idx=(\"\${!$dkms_rs_v[@]}\")"
    for dkms_rs_i in "${dkms_rs_idx[@]}"; do
        eval "printf '%s\0%s\0%s\0' \"\$dkms_rs_v\" \"\$dkms_rs_i\" \"\${$dkms_rs_v[\$dkms_rs_i]}\""
    done
done
"#;

/// What bash left in dkms's whitelisted variables, and the module name/version it used.
pub struct Sourced {
    pub vars: Vars,
    pub module: String,
    pub module_version: String,
}

/// Evaluate `file` with bash as dkms's read_conf does (in the current working directory,
/// with this process's environment, like dkms). When `ctx.module` is unset, reads twice:
/// first to learn PACKAGE_NAME/VERSION, then as `dkms build -m <name> -v <version>` would.
///
/// bash sources the bytes `file` holds, handed over on stdin (a memfd that bash reopens as
/// `/dev/fd/N` for each pass), unless the file could tell under which name it is sourced
/// ([`names_itself`]): then bash sources `file.path()` as dkms does, since bash (5.2) cannot
/// give sourced text a name of our choosing (`BASH_SOURCE` ignores assignments).
///
/// The `/etc/dkms` overrides that exist are read first ([`ConfFile::overrides`]: a FIFO or a
/// link to /dev/zero is refused, exit 8), and bash sources copies of their texts. The second
/// pass of an identifying read needs the overrides of a module name only bash knows: the
/// pass runs without them, and when that name has overrides the file is read again with it.
pub fn source(file: &ConfFile, ctx: &ResolveContext) -> Result<Sourced, ConfError> {
    let first = ConfFile::overrides(
        ctx,
        ctx.module.as_deref().unwrap_or(""),
        ctx.module_version.as_deref().unwrap_or(""),
    )?;
    let sourced = source_with(file, ctx, &first)?;
    if ctx.module.is_some() {
        return Ok(sourced);
    }
    let second = ConfFile::overrides(ctx, &sourced.module, &sourced.module_version)?;
    if second.iter().all(Option::is_none) {
        return Ok(sourced);
    }
    let ctx = ctx
        .clone()
        .with_module(&sourced.module, &sourced.module_version);
    source_with(file, &ctx, &second)
}

/// One bash run of [`PRELUDE`] on `file`, sourcing `overrides` (`None`: not there) in the
/// override places of its first pass.
fn source_with(
    file: &ConfFile,
    ctx: &ResolveContext,
    overrides: &[Option<ConfFile>; 6],
) -> Result<Sourced, ConfError> {
    let conf = file.path();
    // Kept until bash is done: what it sources in place of each override.
    let copies: Vec<Option<OverrideText>> = overrides
        .iter()
        .map(|o| o.as_ref().map(OverrideText::new))
        .collect();
    let text = if names_itself(file.text()) {
        None
    } else {
        text_for_bash(file.text())
    };
    let shell_err = |failure| ConfError::Shell {
        path: conf.to_path_buf(),
        failure,
    };
    let identify = ctx.module.is_none();
    // dkms sets these with `$(uname -s)` / `$(uname -r)`: same values, two forks fewer.
    let uts = crate::kernel::Uname::get();
    let out = Command::new("bash")
        .arg("--norc")
        .arg("--noprofile")
        .arg("-c")
        .arg(PRELUDE)
        .arg("dkms")
        .arg(&ctx.kernelver)
        .arg(&ctx.arch)
        .arg(&ctx.kernel_source_dir)
        .arg(&ctx.kernel_config)
        .arg(&ctx.dkms_tree)
        .arg(&ctx.source_tree)
        .arg(&ctx.install_tree)
        .arg(&ctx.etc_dir)
        .arg(conf)
        .arg(ctx.module.as_deref().unwrap_or(""))
        .arg(ctx.module_version.as_deref().unwrap_or(""))
        .arg(if identify { "yes" } else { "" })
        .arg(&ctx.running_distribution)
        .arg(ctx.addon_modules_dir.as_deref().unwrap_or(""))
        .arg(&uts.sysname)
        .arg(&uts.release)
        .arg(if text.is_some() { "yes" } else { "" })
        .args(copies.iter().map(|c| {
            c.as_ref()
                .map_or_else(std::ffi::OsString::new, |c| c.path().as_os_str().to_owned())
        }))
        .env("DKMS_RS_MARKER", MARKER)
        .stdin(text.map_or_else(Stdio::null, Stdio::from))
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| shell_err(ShellFailure::Spawn(e)))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let Some(at) = stdout.rfind(MARKER) else {
        return Err(shell_err(ShellFailure::Ended {
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        }));
    };
    let mut fields = stdout[at + MARKER.len()..].split('\0');
    let module = fields.next().unwrap_or("").to_owned();
    let module_version = fields.next().unwrap_or("").to_owned();
    let mut vars = Vars::default();
    while let (Some(name), Some(index), Some(value)) = (fields.next(), fields.next(), fields.next())
    {
        let Ok(index) = index.parse::<u64>() else {
            return Err(shell_err(ShellFailure::BadIndex {
                name: name.to_owned(),
                index: index.to_owned(),
            }));
        };
        vars.entry(name.to_owned()).or_default().insert(
            index,
            Elem {
                value: value.to_owned(),
                origin: None,
            },
        );
    }
    Ok(Sourced {
        vars,
        module,
        module_version,
    })
}

/// What bash sources in place of one override: a temp file holding the text dkms-rs read, or
/// the override's own path when it could see its name ([`names_itself`]) or no temp file can
/// be made (it was read and passed the checks just now).
enum OverrideText<'a> {
    Copy(tempfile::NamedTempFile),
    Path(&'a Path),
}

impl<'a> OverrideText<'a> {
    fn new(file: &'a ConfFile) -> OverrideText<'a> {
        use std::io::Write;
        if names_itself(file.text()) {
            return OverrideText::Path(file.path());
        }
        let copy = tempfile::NamedTempFile::new().and_then(|mut t| {
            t.write_all(file.text())?;
            Ok(t)
        });
        match copy {
            Ok(t) => OverrideText::Copy(t),
            Err(_) => OverrideText::Path(file.path()),
        }
    }

    fn path(&self) -> &Path {
        match self {
            OverrideText::Copy(t) => t.path(),
            OverrideText::Path(p) => p,
        }
    }
}

/// Whether a dkms.conf could tell the name bash sources it under: `$BASH_SOURCE` (as in
/// `pushd $(dirname $BASH_SOURCE)`), `caller`, extdebug's `BASH_ARGV`, or bash's own
/// `<file>: line N: ...` messages caught through a stderr redirection (`2>&1`, `2>file`, `&>`,
/// `|&`; sending stderr to /dev/null, or stdout to stderr, catches nothing). A false yes only
/// costs bash opening the file itself, as dkms does.
pub fn names_itself(text: &[u8]) -> bool {
    const HARMLESS: &[&str] = &["2>/dev/null", "&>/dev/null", ">&2"];
    const TELLS: &[&str] = &[
        "BASH_SOURCE",
        "BASH_ARGV",
        "caller",
        "extdebug",
        "2>",
        "2<",
        ">&",
        "&>",
        "|&",
    ];
    let mut text = String::from_utf8_lossy(text).into_owned();
    for h in HARMLESS {
        text = text.replace(h, " ");
    }
    TELLS.iter().any(|t| text.contains(t))
}

/// `text` on a file that bash reopens as `/dev/fd/N` for each pass (so each pass reads it from
/// its start): a memfd, else an unlinked temp file. `None` (bash then opens the dkms.conf) when
/// neither can be made or `/dev/fd` is not there (no /proc).
fn text_for_bash(text: &[u8]) -> Option<std::fs::File> {
    use std::io::Write;
    use std::os::fd::FromRawFd;
    static DEV_FD: OnceLock<bool> = OnceLock::new();
    if !*DEV_FD.get_or_init(|| Path::new("/dev/fd").is_dir()) {
        return None;
    }
    // SAFETY: the name is NUL-terminated; memfd_create has no other requirement.
    let fd = unsafe { libc::memfd_create(c"dkms.conf".as_ptr(), libc::MFD_CLOEXEC) };
    let mut file = if fd >= 0 {
        // SAFETY: a non-negative result is a new fd that nothing else owns.
        unsafe { std::fs::File::from_raw_fd(fd) }
    } else {
        tempfile::tempfile().ok()?
    };
    file.write_all(text).ok()?;
    Some(file)
}

/// Run a small bash snippet and return its stdout (for `/etc/os-release` and
/// `/etc/sysconfig/module-init-tools`, which are shell too).
pub fn snippet(script: &str) -> Option<String> {
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", script])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The files dkms 3.2.2's read_conf sources for `module`/`version` on (kernel, arch), in its
/// order, existing or not, spelled as dkms spells them (`"/etc/dkms/$module.conf"`: plain
/// concatenation, not a path join): 3.0.10's four, then 3.2.2's `$module--$kernel.conf` and
/// `$module--$kernel-$arch.conf` (any version; with an empty `$module_version` the third
/// and the fifth are one file, sourced twice, as by dkms).
pub fn override_paths(
    etc: &Path,
    module: &str,
    version: &str,
    kernel: &str,
    arch: &str,
) -> [PathBuf; 6] {
    let at = |name: String| {
        let mut p = etc.as_os_str().to_owned();
        p.push("/");
        p.push(name);
        PathBuf::from(p)
    };
    [
        at(format!("{module}.conf")),
        at(format!("{module}-{version}.conf")),
        at(format!("{module}-{version}-{kernel}.conf")),
        at(format!("{module}-{version}-{kernel}-{arch}.conf")),
        at(format!("{module}--{kernel}.conf")),
        at(format!("{module}--{kernel}-{arch}.conf")),
    ]
}

#[cfg(test)]
mod tests {
    use super::names_itself;

    #[test]
    fn files_that_could_see_their_own_name() {
        for text in [
            "pushd `dirname $BASH_SOURCE`\n",
            "D=${BASH_SOURCE[0]%/*}\n",
            "X=$(caller)\n",
            "shopt -s extdebug\n",
            "V=$(gcc-99 --version 2>&1)\n",
            "V=$(nope |& head -1)\n",
            "nope &>log\n",
        ] {
            assert!(names_itself(text.as_bytes()), "{text}");
        }
        for text in [
            "PACKAGE_NAME=x\nMAKE[0]=\"make -C $kernel_source_dir\"\n",
            "grep -q X \"$kernel_source_dir/.config\" 2>/dev/null || echo no >&2\n",
            "test -e x &>/dev/null\n",
        ] {
            assert!(!names_itself(text.as_bytes()), "{text}");
        }
    }
}
