//! The word lexer Dockerfile instructions share (BuildKit's `shell` package
//! in v0.8): quotes, the escape character, and variable substitution with
//! `$VAR`, `${VAR}`, `${VAR:-default}` (the default when unset or empty)
//! and `${VAR:+alternative}` (the alternative when set and not empty).
//!
//! Outside quotes the escape character makes the next character literal;
//! in single quotes everything is literal; in double quotes variables
//! expand and the escape character escapes only `"`, `$` and itself.

use thiserror::Error;

/// Nesting of `${…}` inside defaults deeper than this is refused.
const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LexError {
    #[error("unexpected end of statement while looking for matching {0}")]
    Unterminated(&'static str),
    #[error("unsupported modifier ({0}) in substitution")]
    Modifier(char),
    #[error("bad substitution: missing '}}'")]
    MissingBrace,
    #[error("variable substitution nested more than {MAX_DEPTH} deep")]
    TooDeep,
}

/// Expands `text` as one word (ENV values, WORKDIR, USER…): quotes are
/// removed, whitespace is kept.
pub fn word(
    text: &str,
    escape: char,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, LexError> {
    let mut lexer = Lexer::new(text, escape, env, 0);
    let words = lexer.run(false)?;
    Ok(words.concat())
}

/// Expands `text` and splits it into words at unquoted whitespace (COPY
/// sources, EXPOSE ports, `KEY=VALUE` pairs).
pub fn words(
    text: &str,
    escape: char,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, LexError> {
    Lexer::new(text, escape, env, 0).run(true)
}

struct Lexer<'a> {
    chars: Vec<char>,
    at: usize,
    escape: char,
    env: &'a dyn Fn(&str) -> Option<String>,
    depth: usize,
}

impl<'a> Lexer<'a> {
    fn new(
        text: &str,
        escape: char,
        env: &'a dyn Fn(&str) -> Option<String>,
        depth: usize,
    ) -> Self {
        Lexer {
            chars: text.chars().collect(),
            at: 0,
            escape,
            env,
            depth,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += 1;
        Some(c)
    }

    fn run(&mut self, split: bool) -> Result<Vec<String>, LexError> {
        if self.depth > MAX_DEPTH {
            return Err(LexError::TooDeep);
        }
        let mut words = Vec::new();
        let mut current = String::new();
        let mut started = false;
        while let Some(c) = self.next() {
            match c {
                c if split && c.is_whitespace() => {
                    if started {
                        words.push(std::mem::take(&mut current));
                        started = false;
                    }
                }
                '\'' => {
                    started = true;
                    loop {
                        match self.next() {
                            Some('\'') => break,
                            Some(c) => current.push(c),
                            None => return Err(LexError::Unterminated("single-quote")),
                        }
                    }
                }
                '"' => {
                    started = true;
                    loop {
                        match self.next() {
                            Some('"') => break,
                            Some('$') => current.push_str(&self.variable()?),
                            Some(c) if c == self.escape => match self.peek() {
                                Some(n) if n == '"' || n == '$' || n == self.escape => {
                                    current.push(n);
                                    self.at += 1;
                                }
                                _ => current.push(c),
                            },
                            Some(c) => current.push(c),
                            None => return Err(LexError::Unterminated("double-quote")),
                        }
                    }
                }
                '$' => {
                    started = true;
                    current.push_str(&self.variable()?);
                }
                c if c == self.escape => {
                    started = true;
                    match self.next() {
                        Some(n) => current.push(n),
                        None => current.push(c),
                    }
                }
                c => {
                    started = true;
                    current.push(c);
                }
            }
        }
        if started || !split {
            words.push(current);
        }
        Ok(words)
    }

    /// After a `$`: the expansion of what follows.
    fn variable(&mut self) -> Result<String, LexError> {
        match self.peek() {
            Some('{') => {
                self.at += 1;
                self.braced()
            }
            Some(c) if c.is_ascii_alphanumeric() || c == '_' => {
                let name = self.name();
                Ok((self.env)(&name).unwrap_or_default())
            }
            // A lone `$` stays itself.
            _ => Ok("$".to_owned()),
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self
            .peek()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        {
            name.push(c);
            self.at += 1;
        }
        name
    }

    /// `${NAME}`, `${NAME:-word}`, `${NAME:+word}` after the `{`.
    fn braced(&mut self) -> Result<String, LexError> {
        let name = self.name();
        match self.next() {
            Some('}') => Ok((self.env)(&name).unwrap_or_default()),
            Some(':') => {
                let modifier = self.next().ok_or(LexError::MissingBrace)?;
                let word = self.until_brace()?;
                let value = (self.env)(&name).filter(|v| !v.is_empty());
                let expand = |w: &str| {
                    Lexer::new(w, self.escape, self.env, self.depth + 1)
                        .run(false)
                        .map(|w| w.concat())
                };
                match modifier {
                    '-' => value.map_or_else(|| expand(&word), Ok),
                    '+' => match value {
                        Some(_) => expand(&word),
                        None => Ok(String::new()),
                    },
                    other => Err(LexError::Modifier(other)),
                }
            }
            Some(_) | None => Err(LexError::MissingBrace),
        }
    }

    /// The raw text up to the `}` closing this substitution (nested braces
    /// counted).
    fn until_brace(&mut self) -> Result<String, LexError> {
        let mut depth = 0usize;
        let mut word = String::new();
        loop {
            match self.next() {
                Some('}') if depth == 0 => return Ok(word),
                Some('}') => {
                    depth -= 1;
                    word.push('}');
                }
                Some('{') => {
                    depth += 1;
                    word.push('{');
                }
                Some(c) => word.push(c),
                None => return Err(LexError::MissingBrace),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "NAME" => Some("world".into()),
            "EMPTY" => Some(String::new()),
            "SPACED" => Some("a b".into()),
            _ => None,
        }
    }

    /// `input|expected` rows: one word each.
    const WORDS: &str = r#"hello|hello
$NAME|world
${NAME}x|worldx
"$NAME"|world
'$NAME'|$NAME
\$NAME|$NAME
${NOPE:-dflt}|dflt
${EMPTY:-dflt}|dflt
${NAME:-dflt}|world
${NAME:+alt}|alt
${NOPE:+alt}|
${NOPE:-${NAME}}|world
"a \"q\" b"|a "q" b
"a \x"|a \x
$|$
a$|a$
$NOPE|"#;

    #[test]
    fn words_expand_as_buildkit_does() {
        for row in WORDS.lines() {
            let (input, expected) = row.split_once('|').expect("a row");
            assert_eq!(word(input, '\\', &env).expect(input), expected, "{input}");
        }
    }

    #[test]
    fn splitting_keeps_quoted_spaces() {
        assert_eq!(
            words("a \"b c\" $SPACED 'd e'", '\\', &env).expect("words"),
            vec!["a", "b c", "a b", "d e"]
        );
        assert_eq!(words("  ", '\\', &env).expect("none"), Vec::<String>::new());
        assert_eq!(
            words("c:\\path `$x", '`', &env).expect("backtick"),
            vec!["c:\\path", "$x"]
        );
    }

    #[test]
    fn bad_words_say_why() {
        for (input, message) in [
            ("\"open", "double-quote"),
            ("'open", "single-quote"),
            ("${NAME", "missing '}'"),
            ("${NAME:?x}", "unsupported modifier (?)"),
            ("${NAME:-x", "missing '}'"),
        ] {
            let e = word(input, '\\', &env).expect_err(input).to_string();
            assert!(e.contains(message), "{input}: {e}");
        }
        let deep = format!("{}x{}", "${A:-".repeat(100), "}".repeat(100));
        assert_eq!(word(&deep, '\\', &env), Err(LexError::TooDeep));
    }
}
