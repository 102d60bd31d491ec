//! Shell words of a declarative dkms.conf: assignments, quoting, `$name` / `${name}`, comments,
//! line continuations. Anything beyond that is reported as [`Beyond`] so the caller hands the
//! file to bash instead of guessing.

/// One piece of an assignment's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Text taken literally (quotes already removed).
    Lit(String),
    /// `$name` or `${name}`: the value of `${name[0]}` at evaluation time.
    Var(String),
}

/// `NAME=value` or `NAME[index]=value`, with the 1-based line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub name: String,
    /// `None` for `NAME=`: bash assigns index 0 then.
    pub index: Option<u64>,
    pub value: Vec<Part>,
    pub line: usize,
}

/// The file (or line) uses shell the native reader does not model; `line` is where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Beyond {
    pub line: usize,
    pub what: &'static str,
}

/// Parse `text` into the assignments it consists of, in order.
pub fn parse(text: &str) -> Result<Vec<Assignment>, Beyond> {
    Lexer {
        s: text.as_bytes(),
        text,
        pos: 0,
        line: 1,
    }
    .file()
}

struct Lexer<'a> {
    s: &'a [u8],
    text: &'a str,
    pos: usize,
    line: usize,
}

fn is_name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

impl Lexer<'_> {
    /// The next byte bash's parser sees: like bash's `shell_getc`, an unquoted backslash-newline
    /// pair is removed wherever it is (between the `$` and the name of `$name`, inside a
    /// name, before a `~`), so words join across it. Single quotes, comments and the byte a
    /// backslash escapes are read with [`Lexer::raw`] instead.
    fn peek(&mut self) -> Option<u8> {
        while self.raw() == Some(b'\\') && self.s.get(self.pos + 1) == Some(&b'\n') {
            self.pos += 2;
            self.line += 1;
        }
        self.raw()
    }

    /// The byte at `pos` as it is in the file.
    fn raw(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    /// The byte bash sees after the next one (continuations skipped, as [`Lexer::peek`] does).
    fn peek_second(&self) -> Option<u8> {
        let mut at = self.pos + 1;
        while self.s.get(at) == Some(&b'\\') && self.s.get(at + 1) == Some(&b'\n') {
            at += 2;
        }
        self.s.get(at).copied()
    }

    /// A name (`[A-Za-z_][A-Za-z0-9_]*` once continuations are removed) starting at `pos`,
    /// or `""` when there is none.
    fn name(&mut self) -> String {
        let mut name = String::new();
        if self.peek().is_some_and(is_name_start) {
            while let Some(c) = self.peek().filter(|&c| is_name_char(c)) {
                name.push(char::from(c));
                self.pos += 1;
            }
        }
        name
    }

    fn beyond(&self, what: &'static str) -> Beyond {
        Beyond {
            line: self.line,
            what,
        }
    }

    fn file(mut self) -> Result<Vec<Assignment>, Beyond> {
        // bash drops NUL bytes from what it sources: the text it runs is not this one.
        if let Some(at) = memchr::memchr(0, self.s) {
            self.line += memchr::memchr_iter(b'\n', &self.s[..at]).count();
            return Err(self.beyond("a NUL byte"));
        }
        let mut out = Vec::new();
        // Whether a command (an assignment) was read since the last `;` or newline: a `;`
        // with none before it is a syntax error, and bash stops sourcing there.
        let mut command = false;
        while let Some(c) = self.peek() {
            match c {
                b' ' | b'\t' => self.pos += 1,
                b';' if command => {
                    self.pos += 1;
                    command = false;
                }
                b';' => return Err(self.beyond("a ';' with no command before it")),
                b'\n' => {
                    self.pos += 1;
                    self.line += 1;
                    command = false;
                }
                // A comment ends at the newline, backslash or not (bash reads it raw).
                b'#' => {
                    while let Some(c) = self.raw() {
                        if c == b'\n' {
                            break;
                        }
                        self.pos += 1;
                    }
                }
                _ => {
                    out.push(self.assignment()?);
                    command = true;
                }
            }
        }
        Ok(out)
    }

    /// `NAME[idx]=word` at the start of a word; anything else is a command: bash's business.
    fn assignment(&mut self) -> Result<Assignment, Beyond> {
        let line = self.line;
        let name = self.name();
        if name.is_empty() {
            return Err(self.beyond("a command or shell syntax"));
        }
        let index = if self.peek() == Some(b'[') {
            self.pos += 1;
            let mut digits = String::new();
            while let Some(c) = self.peek().filter(u8::is_ascii_digit) {
                digits.push(char::from(c));
                self.pos += 1;
            }
            // Only plain decimal: bash evaluates subscripts arithmetically (`010` is octal).
            if self.peek() != Some(b']')
                || digits.is_empty()
                || (digits.len() > 1 && digits.starts_with('0'))
                || digits.len() > 9
            {
                return Err(self.beyond("an array subscript that is not a plain number"));
            }
            self.pos += 1;
            digits.parse().ok()
        } else {
            None
        };
        if self.peek() != Some(b'=') {
            return Err(self.beyond("a command or shell syntax"));
        }
        self.pos += 1;
        let value = self.value()?;
        Ok(Assignment {
            name,
            index,
            value,
            line,
        })
    }

    fn push_lit(parts: &mut Vec<Part>, c: char) {
        if let Some(Part::Lit(s)) = parts.last_mut() {
            s.push(c);
        } else {
            parts.push(Part::Lit(c.to_string()));
        }
    }

    /// The full character at `pos`, as it is in the file (values may hold UTF-8).
    fn take_char(&mut self) -> char {
        let ch = self.text[self.pos..].chars().next().unwrap_or('\0');
        self.pos += ch.len_utf8();
        ch
    }

    fn value(&mut self) -> Result<Vec<Part>, Beyond> {
        let mut parts = Vec::new();
        let mut first = true;
        while let Some(c) = self.peek() {
            match c {
                b' ' | b'\t' | b'\n' | b';' => break,
                b'|' | b'&' | b'<' | b'>' | b'(' | b')' => {
                    return Err(self.beyond("an operator or array list"));
                }
                b'`' => return Err(self.beyond("command substitution")),
                b'~' if first => return Err(self.beyond("tilde expansion")),
                b':' if self.peek_second() == Some(b'~') => {
                    return Err(self.beyond("tilde expansion"));
                }
                // Not before a newline: [`Lexer::peek`] removed that pair.
                b'\\' => {
                    self.pos += 1;
                    if self.raw().is_none() {
                        Self::push_lit(&mut parts, '\\');
                    } else {
                        let ch = self.take_char();
                        Self::push_lit(&mut parts, ch);
                    }
                }
                b'\'' => {
                    self.pos += 1;
                    let start = self.pos;
                    loop {
                        match self.raw() {
                            None => return Err(self.beyond("an unterminated quote")),
                            Some(b'\'') => break,
                            Some(b'\n') => self.line += 1,
                            _ => {}
                        }
                        self.pos += 1;
                    }
                    let lit = &self.text[start..self.pos];
                    self.pos += 1;
                    for ch in lit.chars() {
                        Self::push_lit(&mut parts, ch);
                    }
                    // An empty '' still makes the word non-empty: nothing to record.
                }
                b'"' => {
                    self.pos += 1;
                    self.double_quoted(&mut parts)?;
                }
                b'$' => self.dollar(&mut parts, false)?,
                _ => {
                    let ch = self.take_char();
                    Self::push_lit(&mut parts, ch);
                }
            }
            first = false;
        }
        Ok(parts)
    }

    fn double_quoted(&mut self, parts: &mut Vec<Part>) -> Result<(), Beyond> {
        loop {
            match self.peek() {
                None => return Err(self.beyond("an unterminated quote")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'`') => return Err(self.beyond("command substitution")),
                Some(b'\\') => {
                    self.pos += 1;
                    match self.raw() {
                        // Inside "", a backslash escapes only $ ` " \ and newline (a
                        // backslash-newline [`Lexer::peek`] removed).
                        Some(b'$' | b'`' | b'"' | b'\\') => {
                            let ch = self.take_char();
                            Self::push_lit(parts, ch);
                        }
                        _ => Self::push_lit(parts, '\\'),
                    }
                }
                Some(b'$') => self.dollar(parts, true)?,
                Some(c) => {
                    if c == b'\n' {
                        self.line += 1;
                    }
                    let ch = self.take_char();
                    Self::push_lit(parts, ch);
                }
            }
        }
    }

    /// `$name`, `${name}`, or a `$` that stays literal; every other expansion is bash's.
    fn dollar(&mut self, parts: &mut Vec<Part>, in_dq: bool) -> Result<(), Beyond> {
        self.pos += 1;
        match self.peek() {
            // Inside "", `$"` and `$'` are a literal dollar sign.
            Some(b'\'' | b'"') if in_dq => {
                Self::push_lit(parts, '$');
                Ok(())
            }
            Some(c) if is_name_start(c) => {
                let name = self.name();
                if name == "_" {
                    return Err(self.beyond("a special parameter"));
                }
                parts.push(Part::Var(name));
                Ok(())
            }
            Some(b'{') => {
                let start = self.pos + 1;
                let mut end = start;
                while self.s.get(end).copied().is_some_and(is_name_char) {
                    end += 1;
                }
                let name = &self.text[start..end];
                if self.s.get(end) != Some(&b'}')
                    || !name.as_bytes().first().copied().is_some_and(is_name_start)
                    || name == "_"
                {
                    return Err(self.beyond("a parameter expansion beyond ${name}"));
                }
                parts.push(Part::Var(name.to_owned()));
                self.pos = end + 1;
                Ok(())
            }
            Some(b'(') => Err(self.beyond("command or arithmetic substitution")),
            Some(b'[') => Err(self.beyond("arithmetic expansion $[...]")),
            Some(b'\'' | b'"') => Err(self.beyond("$'...' or $\"...\" quoting")),
            Some(c) if c.is_ascii_digit() || b"@*#?-$!".contains(&c) => {
                Err(self.beyond("a special parameter"))
            }
            // `$` before anything else is a literal dollar sign.
            _ => {
                Self::push_lit(parts, '$');
                Ok(())
            }
        }
    }
}
