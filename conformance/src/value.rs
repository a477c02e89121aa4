//! System-call arguments and return values: `...`, integers, symbolic
//! constants joined with `|`, strings, `[list]` and `{name=value, ...}`.

use std::fmt;

/// One argument expression of a system call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// `...`: the script does not care.
    Ellipsis,
    /// A number.
    Int(i64),
    /// A symbol such as `SOCK_STREAM` or `O_NONBLOCK`.
    Sym(String),
    /// `A|B|...`.
    Or(Vec<Value>),
    /// `"text"`.
    Str(String),
    /// `[a, b]`.
    List(Vec<Value>),
    /// `{name=value, ...}` (entries without a name get an empty one).
    Struct(Vec<(String, Value)>),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Ellipsis => write!(f, "..."),
            Value::Int(n) => write!(f, "{n}"),
            Value::Sym(s) => write!(f, "{s}"),
            Value::Or(v) => {
                let parts: Vec<String> = v.iter().map(|x| x.to_string()).collect();
                write!(f, "{}", parts.join("|"))
            }
            Value::Str(s) => write!(f, "\"{s}\""),
            Value::List(v) => {
                let parts: Vec<String> = v.iter().map(|x| x.to_string()).collect();
                write!(f, "[{}]", parts.join(", "))
            }
            Value::Struct(v) => {
                let parts: Vec<String> = v.iter().map(|(k, x)| format!("{k}={x}")).collect();
                write!(f, "{{{}}}", parts.join(", "))
            }
        }
    }
}

/// How deeply `[`, `{`, `&` and `name(` may nest in one value: deeper
/// input is an error, not a stack overflow (real scripts nest 2 or 3 deep).
pub const MAX_NESTING: usize = 32;

/// A cursor over argument text.
#[derive(Debug)]
pub struct Cursor<'a> {
    s: &'a [u8],
    /// Byte position.
    pub pos: usize,
    /// Current nesting depth of [`Cursor::value`] (bounded by [`MAX_NESTING`]).
    depth: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `s`.
    pub fn new(s: &'a str) -> Self {
        Cursor { s: s.as_bytes(), pos: 0, depth: 0 }
    }

    /// Skips white space (newlines included).
    pub fn ws(&mut self) {
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    /// The next non-blank byte, not consumed.
    pub fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.pos).copied()
    }

    /// Consumes `tok` if it comes next.
    pub fn eat(&mut self, tok: &str) -> bool {
        self.ws();
        if self.s[self.pos..].starts_with(tok.as_bytes()) {
            self.pos += tok.len();
            true
        } else {
            false
        }
    }

    /// What is left.
    pub fn rest(&self) -> &'a str {
        std::str::from_utf8(&self.s[self.pos..]).unwrap_or("")
    }

    /// A word of `[A-Za-z0-9_.]` characters (may be empty).
    pub fn word(&mut self) -> &'a str {
        self.ws();
        let start = self.pos;
        while self.pos < self.s.len() && (self.s[self.pos].is_ascii_alphanumeric() || b"_.".contains(&self.s[self.pos]))
        {
            self.pos += 1;
        }
        std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("")
    }

    /// An integer: decimal, `0x` hex, optionally negative.
    pub fn int(&mut self) -> Option<i64> {
        self.ws();
        let save = self.pos;
        let neg = self.eat("-");
        let w = self.word();
        let v = if let Some(h) = w.strip_prefix("0x").or_else(|| w.strip_prefix("0X")) {
            i64::from_str_radix(h, 16).ok()
        } else {
            w.parse::<i64>().ok()
        };
        match v {
            Some(v) => Some(if neg { -v } else { v }),
            None => {
                self.pos = save;
                None
            }
        }
    }

    /// One value expression.
    pub fn value(&mut self) -> Result<Value, String> {
        let first = self.atom()?;
        if self.peek() == Some(b'|') && !self.rest().starts_with("||") {
            let mut v = vec![first];
            while self.eat("|") {
                v.push(self.atom()?);
            }
            return Ok(Value::Or(v));
        }
        Ok(first)
    }

    /// One operand of a value; every nested `[`, `{`, `&` or `name(` goes
    /// one level deeper, at most [`MAX_NESTING`] levels.
    fn atom(&mut self) -> Result<Value, String> {
        if self.depth >= MAX_NESTING {
            return Err(format!("nesting deeper than {MAX_NESTING}"));
        }
        self.depth += 1;
        let r = self.atom_inner();
        self.depth -= 1;
        r
    }

    fn atom_inner(&mut self) -> Result<Value, String> {
        match self.peek() {
            None => Err("missing value".into()),
            Some(b'.') if self.eat("...") => Ok(Value::Ellipsis),
            Some(b'"') => {
                self.pos += 1;
                let start = self.pos;
                while self.pos < self.s.len() && self.s[self.pos] != b'"' {
                    self.pos += 1;
                }
                if self.pos >= self.s.len() {
                    return Err("unterminated string".into());
                }
                let t = std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("").to_owned();
                self.pos += 1;
                Ok(Value::Str(t))
            }
            Some(b'[') => {
                self.pos += 1;
                let mut v = Vec::new();
                if !self.eat("]") {
                    loop {
                        v.push(self.value()?);
                        if self.eat("]") {
                            break;
                        }
                        if !self.eat(",") {
                            return Err("expected , or ] in list".into());
                        }
                    }
                }
                Ok(Value::List(v))
            }
            Some(b'{') => {
                self.pos += 1;
                let mut v = Vec::new();
                if !self.eat("}") {
                    loop {
                        let save = self.pos;
                        let name = self.word();
                        let name = if !name.is_empty() && self.eat("=") {
                            name.to_owned()
                        } else {
                            self.pos = save;
                            String::new()
                        };
                        v.push((name, self.value()?));
                        if self.eat("}") {
                            break;
                        }
                        if !self.eat(",") {
                            return Err("expected , or } in struct".into());
                        }
                    }
                }
                Ok(Value::Struct(v))
            }
            Some(b'&') => {
                self.pos += 1;
                self.atom()
            }
            Some(c) if c == b'-' || c.is_ascii_digit() => {
                self.int().map(Value::Int).ok_or_else(|| format!("bad number near \"{}\"", head(self.rest())))
            }
            Some(c) if c.is_ascii_alphabetic() || c == b'_' => {
                let w = self.word().to_owned();
                // sizeof(x), htonl(x) and friends: keep the inner value.
                if self.peek() == Some(b'(') {
                    self.pos += 1;
                    let inner = self.value()?;
                    if !self.eat(")") {
                        return Err(format!("expected ) after {w}("));
                    }
                    return Ok(inner);
                }
                Ok(Value::Sym(w))
            }
            Some(_) => Err(format!("unexpected \"{}\"", head(self.rest()))),
        }
    }
}

/// The first few characters of `s`, for messages.
pub fn head(s: &str) -> String {
    s.chars().take(20).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        let mut c =
            Cursor::new("[{fd=4, events=POLLIN|POLLOUT, revents=0}], ..., -1, 0x10, \"ab\", {onoff=1, linger=0}");
        let v = c.value().unwrap();
        assert_eq!(
            v,
            Value::List(vec![Value::Struct(vec![
                ("fd".into(), Value::Int(4)),
                ("events".into(), Value::Or(vec![Value::Sym("POLLIN".into()), Value::Sym("POLLOUT".into())])),
                ("revents".into(), Value::Int(0)),
            ])])
        );
        assert!(c.eat(","));
        assert_eq!(c.value().unwrap(), Value::Ellipsis);
        assert!(c.eat(","));
        assert_eq!(c.value().unwrap(), Value::Int(-1));
        assert!(c.eat(","));
        assert_eq!(c.value().unwrap(), Value::Int(16));
        assert!(c.eat(","));
        assert_eq!(c.value().unwrap(), Value::Str("ab".into()));
        assert!(c.eat(","));
        assert!(matches!(c.value().unwrap(), Value::Struct(v) if v.len() == 2));
    }

    /// Nesting is bounded: at the limit it parses, one deeper is an error.
    #[test]
    fn nesting_is_bounded() {
        for open in ["[", "{", "&", "sizeof("] {
            let close = match open {
                "[" => "]",
                "{" => "}",
                "&" => "",
                _ => ")",
            };
            let ok = format!("{}1{}", open.repeat(MAX_NESTING - 1), close.repeat(MAX_NESTING - 1));
            assert!(Cursor::new(&ok).value().is_ok(), "{open} x {}", MAX_NESTING - 1);
            let deep = format!("{}1{}", open.repeat(MAX_NESTING), close.repeat(MAX_NESTING));
            let e = Cursor::new(&deep).value().unwrap_err();
            assert!(e.contains("nesting deeper than"), "{e}");
        }
    }
}
