//! [`ConfFile`]: one dkms.conf read once, resolved for any number of (kernel, arch) without
//! opening it again (dkms re-sources it at every step; dkms-postinst resolves it per kernel).

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::{
    ConfError, MAX_CONF_SIZE, ModuleConf, NeedsShell, ReadBy, Reader, Refusal, Resolution,
    ResolveContext, ShellFailure, bash, native, resolve, vars,
};

/// The bytes of a dkms.conf and the path they were read from. Every resolution reads these
/// bytes (the native reader parses them, bash sources them); only the `/etc/dkms/<module>*.conf`
/// overrides, which depend on the module and kernel, are read again at each resolution (by
/// [`ConfFile::read`] too: bounded, regular files only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfFile {
    path: PathBuf,
    text: Vec<u8>,
}

impl ConfFile {
    /// Read `path`; dkms's "Could not locate dkms.conf file." (exit 4) when it cannot be read,
    /// [`ConfError::Refused`] (exit 8) when it is not a regular file or is larger than
    /// [`MAX_CONF_SIZE`]. Bounded whatever `path` is: opened without blocking (a FIFO with no
    /// writer would block `open`), type and size taken from the open file, at most the limit
    /// plus one byte read (a file growing meanwhile, or a link to /dev/zero, stops there).
    pub fn read(path: &Path) -> Result<ConfFile, ConfError> {
        let missing = |source| ConfError::Missing {
            path: path.to_path_buf(),
            source,
        };
        let refused = |why| ConfError::Refused {
            path: path.to_path_buf(),
            why,
        };
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
        {
            Ok(file) => file,
            Err(source) => {
                // A socket cannot be opened (ENXIO): say what it is rather than "missing".
                return Err(match std::fs::metadata(path) {
                    Ok(meta) if !meta.is_file() => refused(Refusal::NotRegular(kind(&meta))),
                    _ => missing(source),
                });
            }
        };
        let meta = file.metadata().map_err(missing)?;
        if !meta.is_file() {
            return Err(refused(Refusal::NotRegular(kind(&meta))));
        }
        if meta.len() > MAX_CONF_SIZE {
            return Err(refused(Refusal::TooLarge { size: meta.len() }));
        }
        let mut text = Vec::with_capacity(meta.len() as usize);
        file.take(MAX_CONF_SIZE + 1)
            .read_to_end(&mut text)
            .map_err(missing)?;
        if text.len() as u64 > MAX_CONF_SIZE {
            return Err(refused(Refusal::TooLarge {
                size: text.len() as u64,
            }));
        }
        Ok(ConfFile {
            path: path.to_path_buf(),
            text,
        })
    }

    /// The `/etc/dkms` overrides dkms sources after the dkms.conf for `module`/`version` on
    /// `ctx`'s (kernel, arch), in dkms's order, each read as a dkms.conf is ([`ConfFile::read`]:
    /// a FIFO, a device, a directory or more than 1 MiB is refused, exit 8); `None` where
    /// there is none (dkms's `[ -e "$_conf_file" ]`).
    pub(super) fn overrides(
        ctx: &ResolveContext,
        module: &str,
        version: &str,
    ) -> Result<[Option<ConfFile>; 6], ConfError> {
        let paths = bash::override_paths(&ctx.etc_dir, module, version, &ctx.kernelver, &ctx.arch);
        let mut out: [Option<ConfFile>; 6] = std::array::from_fn(|_| None);
        for (slot, path) in out.iter_mut().zip(paths) {
            let listed = match (&ctx.etc_names, path.file_name()) {
                (Some(names), Some(name)) => names.contains(name),
                _ => true,
            };
            if !listed || !path.exists() {
                continue;
            }
            match ConfFile::read(&path) {
                Ok(file) => *slot = Some(file),
                // Gone since it was seen: not there, as for dkms a moment later.
                Err(ConfError::Missing { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The path the file was read from (what `ModuleConf::path` and errors name).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The bytes as read.
    pub fn text(&self) -> &[u8] {
        &self.text
    }

    /// Resolve for `ctx` as dkms 3.0.10's `read_conf_or_die` does: the conf, or the first
    /// problem dkms would die with.
    pub fn resolve(&self, ctx: &ResolveContext) -> Result<ModuleConf, ConfError> {
        self.evaluate(ctx, Reader::Auto)?.into_result()
    }

    /// PACKAGE_NAME and PACKAGE_VERSION, fully validated, for any kernel (resolved with a
    /// context naming no kernel or architecture).
    pub fn identity(&self) -> Result<(String, String), ConfError> {
        let conf = self.resolve(&ResolveContext::new("", ""))?;
        Ok((conf.package_name, conf.package_version))
    }

    /// Resolve for `ctx` without failing on validation: the facts plus dkms's complaints, and
    /// which reader read the file ([`Resolution::read_by`]). `Err` when the file or an
    /// override is refused unread, when bash fails, and when the file needs bash but is not
    /// to be run by it: with `Reader::Native` (a `Shell` error naming the line) and with
    /// [`ResolveContext::no_exec`] ([`ConfError::NotRun`], before anything is run).
    pub fn evaluate(&self, ctx: &ResolveContext, reader: Reader) -> Result<Resolution, ConfError> {
        let why = match reader {
            Reader::Bash => None,
            Reader::Native | Reader::Auto => match self.evaluate_native(ctx) {
                Ok(res) => return Ok(res),
                Err(Stop::Refused(e)) => return Err(e),
                Err(Stop::Bash(why)) if reader == Reader::Native => {
                    return Err(ConfError::Shell {
                        path: why.file,
                        failure: ShellFailure::NeedsBash {
                            line: why.line,
                            what: why.what,
                        },
                    });
                }
                Err(Stop::Bash(why)) => Some(why),
            },
        };
        if ctx.no_exec {
            let shell = why.unwrap_or_else(|| NeedsShell {
                file: self.path.clone(),
                line: 0,
                what: "the bash reader was asked for",
            });
            return Err(ConfError::NotRun { shell });
        }
        let sourced = bash::source(self, ctx)?;
        let mut res = resolve::resolve(
            &sourced.vars,
            std::slice::from_ref(&self.path),
            ctx,
            &sourced.module,
            &sourced.module_version,
        );
        res.read_by = ReadBy::Bash(why);
        Ok(res)
    }

    fn evaluate_native(&self, ctx: &ResolveContext) -> Result<Resolution, Stop> {
        let text = std::str::from_utf8(&self.text)
            .map_err(|_| needs(&self.path, 0, "bytes that are not UTF-8"))?;
        let mut probe = native::GlobProbe::default();
        let (module, version) = match &ctx.module {
            Some(m) => (m.clone(), ctx.module_version.clone().unwrap_or_default()),
            None => {
                // `dkms add <dir>` reads with empty $module first, as here.
                let (vars, _, _) = self.source_native(text, ctx, "", "", &mut probe)?;
                let get = |n: &str| {
                    vars.get(n)
                        .and_then(|v| v.get(&0))
                        .map(|e| e.value.strip_suffix('\r').unwrap_or(&e.value).to_owned())
                        .unwrap_or_default()
                };
                // Without the CR of a CR/LF file, as the resolved directives.
                (get("PACKAGE_NAME"), get("PACKAGE_VERSION"))
            }
        };
        let (vars, files, reads) = self.source_native(text, ctx, &module, &version, &mut probe)?;
        let mut res = resolve::resolve(&vars, &files, ctx, &module, &version);
        // Files beyond the dkms.conf are overrides; one named after the kernel is per target.
        res.records_for_every_target =
            !reads.target && !self.has_target_overrides(ctx, &module, &version);
        res.text_only =
            res.records_for_every_target && files.len() == 1 && reads == native::Reads::default();
        Ok(res)
    }

    /// Whether an `/etc/dkms` override named after `ctx`'s kernel (and arch) is there for
    /// `module`/`version`: a [`Resolution::records_for_every_target`] of another target does
    /// not hold for this one then.
    pub fn has_target_overrides(&self, ctx: &ResolveContext, module: &str, version: &str) -> bool {
        let target = (ctx.kernelver.as_str(), ctx.arch.as_str());
        target_overrides_there(
            &ctx.etc_dir,
            ctx.etc_names.as_deref(),
            module,
            version,
            target,
        )
    }

    fn source_native(
        &self,
        text: &str,
        ctx: &ResolveContext,
        module: &str,
        version: &str,
        probe: &mut native::GlobProbe,
    ) -> Result<(vars::Vars, Vec<PathBuf>, native::Reads), Stop> {
        let mut files = vec![self.path.clone()];
        let mut overrides = Vec::new();
        for file in ConfFile::overrides(ctx, module, version)?
            .into_iter()
            .flatten()
        {
            let t = String::from_utf8(file.text)
                .map_err(|_| needs(&file.path, 0, "an override file that is not UTF-8 text"))?;
            files.push(file.path);
            overrides.push(t);
        }
        let path_str = |p: &Path| {
            p.to_str()
                .map(str::to_owned)
                .ok_or_else(|| needs(&self.path, 0, "a tree path that is not UTF-8"))
        };
        let context = [
            ("kernelver", ctx.kernelver.clone()),
            ("arch", ctx.arch.clone()),
            ("kernel_source_dir", path_str(&ctx.kernel_source_dir)?),
            ("kernel_config", path_str(&ctx.kernel_config)?),
            ("dkms_tree", path_str(&ctx.dkms_tree)?),
            ("source_tree", path_str(&ctx.source_tree)?),
            ("install_tree", path_str(&ctx.install_tree)?),
            ("module", module.to_owned()),
            ("module_version", version.to_owned()),
        ];
        let text_refs: Vec<&str> = std::iter::once(text)
            .chain(overrides.iter().map(String::as_str))
            .collect();
        let (vars, reads) = native::source_all(&text_refs, &context, probe)
            .map_err(|nb| needs(&files[nb.file.min(files.len() - 1)], nb.line, nb.what))?;
        Ok((vars, files, reads))
    }
}

/// Why the native reader stopped: the file needs bash, or an override is refused unread.
enum Stop {
    Bash(NeedsShell),
    Refused(ConfError),
}

impl From<NeedsShell> for Stop {
    fn from(why: NeedsShell) -> Self {
        Stop::Bash(why)
    }
}

impl From<ConfError> for Stop {
    fn from(e: ConfError) -> Self {
        Stop::Refused(e)
    }
}

/// What a file that is not a regular one is, for [`Refusal::NotRegular`].
fn kind(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

/// Where the native reader stopped: file, line, what it met.
fn needs(file: &Path, line: usize, what: &'static str) -> NeedsShell {
    NeedsShell {
        file: file.to_path_buf(),
        line,
        what,
    }
}

/// [`ConfFile::has_target_overrides`] for a (kernel, arch) target: `etc_names`, when given,
/// is `etc_dir`'s listing, and is searched without a path made for each name (`status` asks
/// for every module x kernel).
pub fn target_overrides_there(
    etc_dir: &std::path::Path,
    etc_names: Option<&std::collections::HashSet<std::ffi::OsString>>,
    module: &str,
    version: &str,
    (kernel, arch): (&str, &str),
) -> bool {
    let Some(names) = etc_names else {
        let paths = bash::override_paths(etc_dir, module, version, kernel, arch);
        return paths[2..].iter().any(|path| path.exists());
    };
    // `<module>-<version>-<kernel>[-<arch>].conf`, or 3.2.2's `<module>--<kernel>[-<arch>].conf`.
    let for_target = |rest: Option<&[u8]>| {
        rest.and_then(|r| r.strip_prefix(kernel.as_bytes()))
            .is_some_and(|r| {
                r == b".conf"
                    || r.strip_prefix(b"-")
                        .and_then(|r| r.strip_prefix(arch.as_bytes()))
                        .is_some_and(|r| r == b".conf")
            })
    };
    names.iter().any(|name| {
        let after_module = name
            .as_encoded_bytes()
            .strip_prefix(module.as_bytes())
            .and_then(|r| r.strip_prefix(b"-"));
        for_target(
            after_module
                .and_then(|r| r.strip_prefix(version.as_bytes()))
                .and_then(|r| r.strip_prefix(b"-")),
        ) || for_target(after_module.and_then(|r| r.strip_prefix(b"-")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(dir: &Path, kernel: &str) -> ResolveContext {
        let mut ctx = ResolveContext::new(kernel, "x86_64");
        ctx.etc_dir = dir.join("no-etc");
        ctx
    }

    #[test]
    fn every_resolution_reads_the_bytes_read_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("dkms.conf");
        // `$(...)`: only bash can evaluate this one.
        let text = "PACKAGE_NAME=once\nPACKAGE_VERSION=$(echo 1.$((1+1)))\n\
                    BUILT_MODULE_NAME[0]=once\nDEST_MODULE_LOCATION[0]=/extra\n";
        std::fs::write(&path, text).expect("write dkms.conf");
        let file = ConfFile::read(&path).expect("read");
        std::fs::write(&path, "PACKAGE_NAME=changed\nPACKAGE_VERSION=9\n").expect("rewrite");
        for kernel in ["6.1.0-999-amd64", "4.19.0-999-686-pae"] {
            for reader in [Reader::Auto, Reader::Bash] {
                let res = file
                    .evaluate(&ctx(dir.path(), kernel), reader)
                    .expect("bash");
                assert_eq!(res.conf.package_name, "once", "{kernel} {reader:?}");
                assert_eq!(res.conf.package_version, "1.2", "{kernel} {reader:?}");
                assert_eq!(res.conf.path, path);
            }
        }
        std::fs::remove_file(&path).expect("remove");
        let conf = file
            .resolve(&ctx(dir.path(), "6.1.0-999-amd64"))
            .expect("valid");
        assert_eq!(conf.package_version, "1.2");
        assert_eq!(
            file.identity().expect("identity"),
            ("once".into(), "1.2".into())
        );
    }

    #[test]
    fn a_file_that_names_itself_is_sourced_by_its_path() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("dkms.conf");
        std::fs::write(dir.path().join("common.sh"), "PACKAGE_VERSION=3.1\n").expect("common");
        let text = ". \"$(dirname \"$BASH_SOURCE\")/common.sh\"\nPACKAGE_NAME=\"$BASH_SOURCE\"\n\
                    BUILT_MODULE_NAME[0]=m\nDEST_MODULE_LOCATION[0]=/extra\n";
        std::fs::write(&path, text).expect("write dkms.conf");
        let res = ConfFile::read(&path)
            .expect("read")
            .evaluate(&ctx(dir.path(), "6.1.0-999-amd64"), Reader::Auto)
            .expect("bash");
        assert_eq!(res.conf.package_version, "3.1");
        assert_eq!(Path::new(&res.conf.package_name), path);
    }

    #[test]
    fn only_regular_files_up_to_the_limit_are_read() {
        let dir = tempfile::tempdir().expect("temp dir");
        let refusal = |path: &Path| match ConfFile::read(path) {
            Err(ConfError::Refused { why, .. }) => why,
            other => panic!("{}: {other:?}", path.display()),
        };
        let zero = dir.path().join("zero.conf");
        std::os::unix::fs::symlink("/dev/zero", &zero).expect("link");
        assert_eq!(refusal(&zero), Refusal::NotRegular("a character device"));
        assert_eq!(refusal(dir.path()), Refusal::NotRegular("a directory"));
        let fifo = dir.path().join("fifo.conf");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
        // No writer: a blocking open would never return.
        assert_eq!(refusal(&fifo), Refusal::NotRegular("a FIFO"));
        let edge = dir.path().join("edge.conf");
        std::fs::write(&edge, vec![b'#'; MAX_CONF_SIZE as usize]).expect("write");
        let file = ConfFile::read(&edge).expect("exactly the limit is read");
        assert_eq!(file.text().len() as u64, MAX_CONF_SIZE);
        std::fs::write(&edge, vec![b'#'; MAX_CONF_SIZE as usize + 1]).expect("write");
        let err = ConfFile::read(&edge).expect_err("one byte more");
        assert_eq!(err.exit_code(), 8);
        assert!(matches!(
            err,
            ConfError::Refused {
                why: Refusal::TooLarge { size },
                ..
            } if size == MAX_CONF_SIZE + 1
        ));
    }

    #[test]
    fn a_missing_file_is_dkms_exit_4() {
        let err = ConfFile::read(Path::new("/nonexistent/dkms.conf")).expect_err("missing");
        assert_eq!(err.exit_code(), 4);
    }
}
