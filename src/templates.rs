//! The minijinja environment for generated package files: templates embedded from `templates/`,
//! overridable file by file from a user directory.
//!
//! Rendering is strict: a template that names a variable the caller does not provide is an error,
//! never an empty string silently written into a maintainer script.

use std::path::{Path, PathBuf};

use minijinja::{Environment, UndefinedBehavior, Value};

/// The templates this crate ships, by name (the file name under `templates/`).
const EMBEDDED: &[(&str, &str)] = &[
    ("control", include_str!("../templates/control")),
    ("postinst", include_str!("../templates/postinst")),
    ("prerm", include_str!("../templates/prerm")),
    ("changelog", include_str!("../templates/changelog")),
    ("copyright", include_str!("../templates/copyright")),
    // The maintainer-script bodies: included by `postinst`/`prerm` above, and used on their own
    // by dh_dkms-rs as debhelper autoscripts (with `autoscript` defined).
    (
        "autoscripts/postinst-dkms",
        include_str!("../templates/autoscripts/postinst-dkms"),
    ),
    (
        "autoscripts/prerm-dkms",
        include_str!("../templates/autoscripts/prerm-dkms"),
    ),
    // The binary-modules package of `dkms-mkdeb --binaries-only` (no overrides).
    ("bmdeb/control", include_str!("../templates/bmdeb/control")),
    (
        "bmdeb/postinst",
        include_str!("../templates/bmdeb/postinst"),
    ),
    ("bmdeb/postrm", include_str!("../templates/bmdeb/postrm")),
    // The source package of mkdsc (`dkms-mkdeb --source-package`): debian/control, debian/rules,
    // debian/source/format and the .dsc; its debian/changelog and debian/copyright are the
    // `changelog` and `copyright` above.
    ("dsc/control", include_str!("../templates/dsc/control")),
    ("dsc/rules", include_str!("../templates/dsc/rules")),
    ("dsc/format", include_str!("../templates/dsc/format")),
    ("dsc/dsc", include_str!("../templates/dsc/dsc")),
];

/// The subdirectories of an override directory holding overrides of the autoscripts and of
/// the source package's files.
const SUBDIRS: &[&str] = &["autoscripts", "dsc"];

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("{path}: cannot read template: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{dir}: {name} is not a template dkms-mkdeb uses (known: {known})")]
    Unknown {
        dir: PathBuf,
        name: String,
        known: String,
    },
    #[error("{origin}: {source}")]
    Render {
        origin: String,
        source: minijinja::Error,
    },
}

/// The set of templates in force: the embedded ones, each replaced by the file of the same name
/// in the override directory when there is one.
pub struct Templates {
    env: Environment<'static>,
    /// Where each template came from, for error messages.
    origins: Vec<(String, String)>,
}

impl Templates {
    /// The embedded templates, with `override_dir`'s files (if any) taking their place.
    /// A file in `override_dir` that is not a known template name is an error: a typo there
    /// would otherwise be silently ignored.
    pub fn load(override_dir: Option<&Path>) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // Maintainer scripts and control files end in a newline; keep the template's.
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .keep_trailing_newline(true)
            .build()
            .map_err(|source| TemplateError::Render {
                origin: "template syntax".into(),
                source,
            })?;
        env.set_syntax(syntax);
        env.add_filter("shell_quote", shell_quote);
        env.add_filter("debian_long_description", debian_long_description);

        let mut origins = Vec::new();
        let mut sources: Vec<(String, String)> = EMBEDDED
            .iter()
            .map(|(name, text)| {
                origins.push((name.to_string(), format!("template {name} (built in)")));
                (name.to_string(), text.to_string())
            })
            .collect();

        if let Some(dir) = override_dir {
            let mut entries: Vec<(String, PathBuf)> = fs_read_dir(dir)?
                .into_iter()
                .map(|path| (file_name(&path), path))
                .collect();
            for subdir in SUBDIRS {
                let sub = dir.join(subdir);
                if sub.is_dir() {
                    entries.extend(
                        fs_read_dir(&sub)?
                            .into_iter()
                            .map(|path| (format!("{subdir}/{}", file_name(&path)), path)),
                    );
                }
            }
            for (name, path) in entries {
                let Some(slot) = sources.iter_mut().find(|(n, _)| *n == name) else {
                    return Err(TemplateError::Unknown {
                        dir: dir.to_path_buf(),
                        name,
                        known: EMBEDDED
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                };
                slot.1 = std::fs::read_to_string(&path).map_err(|source| TemplateError::Read {
                    path: path.clone(),
                    source,
                })?;
                if let Some(origin) = origins.iter_mut().find(|(n, _)| *n == name) {
                    origin.1 = path.display().to_string();
                }
            }
        }

        for (name, text) in sources {
            let origin = origin_of(&origins, &name);
            env.add_template_owned(name, text)
                .map_err(|source| TemplateError::Render { origin, source })?;
        }
        Ok(Templates { env, origins })
    }

    /// Render template `name` with `context`.
    pub fn render(&self, name: &str, context: &Value) -> Result<String, TemplateError> {
        let origin = origin_of(&self.origins, name);
        self.env
            .get_template(name)
            .and_then(|t| t.render(context))
            .map_err(|source| TemplateError::Render { origin, source })
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn origin_of(origins: &[(String, String)], name: &str) -> String {
    origins
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, o)| o.clone())
        .unwrap_or_else(|| format!("template {name}"))
}

/// The regular files of `dir`, sorted; hidden files (editor backups, `.git`) are not templates.
fn fs_read_dir(dir: &Path) -> Result<Vec<PathBuf>, TemplateError> {
    let read_err = |source| TemplateError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') || !entry.path().is_file() {
            continue;
        }
        paths.push(entry.path());
    }
    paths.sort();
    Ok(paths)
}

/// Quote a value for a POSIX shell: bare when it is made only of safe characters, else in
/// single quotes (a single quote inside becomes `'\''`).
pub fn shell_quote(value: &str) -> String {
    let safe = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-._/:=@,%".contains(&b));
    if safe {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

/// The longest line of a control field's extended description: lintian's
/// `extended-description-line-too-long` counts more than 80 (Check/Fields/Description.pm); the
/// leading space included, 79 stays below it with room.
const DESCRIPTION_WIDTH: usize = 79;

/// Format free text as the extended part of a Debian `Description` field (Policy 5.6.13):
/// every line starts with a space, blank lines become ` .`, no trailing blank lines. Lines of
/// prose are wrapped at word boundaries to [`DESCRIPTION_WIDTH`]; a line that starts with
/// whitespace is kept as it is (Policy: such lines are displayed verbatim).
pub fn debian_long_description(text: &str) -> String {
    let mut out = Vec::new();
    for line in text.trim_end().lines() {
        let line = line.trim_end();
        if line.is_empty() {
            out.push(" .".to_string());
        } else if line.starts_with(char::is_whitespace) {
            out.push(format!(" {line}"));
        } else {
            wrap_words(line, DESCRIPTION_WIDTH - 1, &mut out);
        }
    }
    out.join("\n")
}

/// Greedy word wrap of `line` to `width` characters, each output line led by one space; a
/// word longer than `width` (a URL) gets a line of its own.
fn wrap_words(line: &str, width: usize, out: &mut Vec<String>) {
    let mut current = String::new();
    let mut len = 0;
    for word in line.split_whitespace() {
        let n = word.chars().count();
        if len > 0 && len + 1 + n > width {
            out.push(format!(" {current}"));
            current.clear();
            len = 0;
        }
        if len > 0 {
            current.push(' ');
            len += 1;
        }
        current.push_str(word);
        len += n;
    }
    if len > 0 {
        out.push(format!(" {current}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    #[test]
    fn shell_quote_leaves_safe_words_bare_and_quotes_the_rest() {
        assert_eq!(shell_quote("hello"), "hello");
        assert_eq!(shell_quote("1.2.3+dfsg"), "1.2.3+dfsg");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("$(reboot)"), "'$(reboot)'");
    }

    #[test]
    fn long_description_marks_paragraph_breaks() {
        assert_eq!(
            debian_long_description("First line.\nsecond\n\nNew paragraph.\n\n"),
            " First line.\n second\n .\n New paragraph."
        );
    }

    #[test]
    fn long_description_wraps_prose_and_keeps_verbatim_lines() {
        let words = "word ".repeat(40);
        let text = format!("{words}\n  verbatim {words}\n{}", "x".repeat(100));
        let out = debian_long_description(&text);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines.len() > 4, "{out}");
        for l in &lines[..lines.len() - 1] {
            assert!(l.starts_with(' '), "{l:?}");
            assert!(
                l.chars().count() <= DESCRIPTION_WIDTH || l.starts_with("   verbatim"),
                "{l:?}"
            );
        }
        assert!(lines.iter().any(|l| l.starts_with("   verbatim word")));
        assert_eq!(
            lines.last(),
            Some(&format!(" {}", "x".repeat(100)).as_str())
        );
        let rejoined: Vec<&str> = lines
            .iter()
            .take_while(|l| !l.starts_with("   "))
            .flat_map(|l| l.split_whitespace())
            .collect();
        assert_eq!(rejoined, words.split_whitespace().collect::<Vec<_>>());
    }

    #[test]
    fn unknown_variable_is_an_error_naming_the_template() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("prerm"), "#!/bin/sh\n{{ no_such_thing }}\n").unwrap();
        let templates = Templates::load(Some(dir.path())).unwrap();
        let err = templates
            .render("prerm", &context! { name => "hello" })
            .unwrap_err()
            .to_string();
        assert!(err.contains("prerm"), "{err}");
        assert!(err.contains("undefined"), "{err}");
    }

    #[test]
    fn override_replaces_only_its_own_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("changelog"), "custom {{ name }}\n").unwrap();
        let templates = Templates::load(Some(dir.path())).unwrap();
        let ctx = context! { name => "hello", version => "0.1", package => "hello-dkms" };
        assert_eq!(
            templates.render("changelog", &ctx).unwrap(),
            "custom hello\n"
        );
        assert!(
            templates
                .render("prerm", &ctx)
                .unwrap()
                .starts_with("#!/bin/sh\n")
        );
    }

    #[test]
    fn source_package_templates_are_overridden_from_dsc() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("dsc")).unwrap();
        std::fs::write(dir.path().join("dsc/format"), "3.0 (quilt)\n").unwrap();
        let templates = Templates::load(Some(dir.path())).unwrap();
        let ctx = context! { format => "3.0 (native)" };
        assert_eq!(
            templates.render("dsc/format", &ctx).unwrap(),
            "3.0 (quilt)\n"
        );
        std::fs::write(dir.path().join("dsc/rule"), "x").unwrap();
        let err = Templates::load(Some(dir.path())).err().unwrap().to_string();
        assert!(err.contains("dsc/rule is not a template"), "{err}");
    }

    #[test]
    fn misspelt_override_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("postinstall"), "x").unwrap();
        let err = Templates::load(Some(dir.path())).err().unwrap().to_string();
        assert!(err.contains("postinstall is not a template"), "{err}");
    }
}
