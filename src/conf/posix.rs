//! POSIX pattern matching through the C library, because bash uses exactly these: `[[ =~ ]]`
//! is `regcomp(REG_EXTENDED)`, and pathname expansion decides the same as `fnmatch`/`glob`.
//! Rust regex engines differ from POSIX ERE (longest-match, bracket and backslash rules).

use std::ffi::{CStr, CString};

/// `[[ $text =~ $pattern ]]`: `Some(matched)`, or `None` when the pattern does not compile
/// (bash's `[[` then returns 2, which every dkms test treats as false).
pub fn ere_match(pattern: &str, text: &str) -> Option<bool> {
    ere_search(pattern, text, 0)
}

/// Like [`ere_match`] over a whole file with `^` anchoring at each line, as `grep -E` reads it.
pub fn ere_match_lines(pattern: &str, text: &str) -> Option<bool> {
    ere_search(pattern, text, libc::REG_NEWLINE)
}

fn ere_search(pattern: &str, text: &str, flags: libc::c_int) -> Option<bool> {
    let pattern = CString::new(pattern).ok()?;
    // bash strings cannot hold NUL; a text with one matches up to it, as in bash.
    let text = CString::new(text.split('\0').next().unwrap_or("")).ok()?;
    let mut re = std::mem::MaybeUninit::<libc::regex_t>::uninit();
    // SAFETY: regcomp initialises `re` when it returns 0; we free it exactly once after use.
    unsafe {
        if libc::regcomp(
            re.as_mut_ptr(),
            pattern.as_ptr(),
            libc::REG_EXTENDED | libc::REG_NOSUB | flags,
        ) != 0
        {
            return None;
        }
        let rc = libc::regexec(re.as_ptr(), text.as_ptr(), 0, std::ptr::null_mut(), 0);
        libc::regfree(re.as_mut_ptr());
        Some(rc == 0)
    }
}

/// Whether file name `name` matches glob `pattern` (leading `.` only matched literally).
pub fn fnmatch(pattern: &CStr, name: &CStr) -> bool {
    // SAFETY: both are valid NUL-terminated strings.
    unsafe { libc::fnmatch(pattern.as_ptr(), name.as_ptr(), libc::FNM_PERIOD) == 0 }
}

/// Pathname expansion of one field: the matches, sorted, or empty when nothing matches.
pub fn glob(pattern: &str) -> Vec<String> {
    let Ok(c) = CString::new(pattern) else {
        return Vec::new();
    };
    let mut g = std::mem::MaybeUninit::<libc::glob_t>::zeroed();
    let mut out = Vec::new();
    // SAFETY: glob fills `g` (zeroed first); we read gl_pathc entries and call globfree once.
    unsafe {
        if libc::glob(c.as_ptr(), 0, None, g.as_mut_ptr()) == 0 {
            let g = g.assume_init_mut();
            for i in 0..g.gl_pathc {
                let p = *g.gl_pathv.add(i);
                if !p.is_null() {
                    out.push(CStr::from_ptr(p).to_string_lossy().into_owned());
                }
            }
        }
        libc::globfree(g.as_mut_ptr());
    }
    out
}

/// Unquoted `for x in $value`: split on blanks, each field glob-expanded as bash would
/// (a pattern that matches nothing stays as written).
pub fn split_and_glob(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    for field in value.split([' ', '\t', '\n']).filter(|f| !f.is_empty()) {
        if field.contains(['*', '?', '[']) {
            let matches = glob(field);
            if !matches.is_empty() {
                out.extend(matches);
                continue;
            }
        }
        out.push(field.to_owned());
    }
    out
}
