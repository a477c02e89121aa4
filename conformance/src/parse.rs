//! Statements → typed events: header options, times, segment lines, system
//! calls, `%{ }%` blocks and backquoted shell commands.

use crate::error::ParseError;
use crate::packet::{self, PacketLine};
use crate::preprocess::{statements, Stmt};
use crate::value::{head, Cursor, Value};

/// When an event happens; microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    /// `*`: any time.
    Any,
    /// `T`: since the start of the script.
    Abs(i64),
    /// `+T`: since the previous event.
    Rel(i64),
}

/// The time part of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Time {
    /// When it starts.
    pub start: When,
    /// `A~B`: the end of the window the event may happen in (same base as `start`).
    pub window_end: Option<i64>,
    /// `T1...T2`: a blocking call that must return at T2 (same base as `start`).
    pub block_end: Option<i64>,
}

/// A system call's expected result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ret {
    /// The return value (`...` accepts any).
    pub value: Value,
    /// `ENAME` after a -1.
    pub errno: Option<String>,
}

/// What an event does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// A segment line.
    Packet(PacketLine),
    /// `name(args) = ret`.
    Call {
        /// System call name.
        name: String,
        /// Arguments.
        args: Vec<Value>,
        /// Expected result.
        ret: Ret,
    },
    /// `%{ ... }%`: inline Python.
    Python(String),
    /// `` `...` ``: a shell command.
    Shell(String),
}

/// One timed event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Line it starts on.
    pub line: usize,
    /// Its time.
    pub time: Time,
    /// What it does.
    pub action: Action,
}

/// A whole script.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Script {
    /// Header options `--name=value` (value empty for bare flags).
    pub options: Vec<(String, String)>,
    /// The events in order.
    pub events: Vec<Event>,
}

impl Script {
    /// The value of header option `name`, if given.
    pub fn option(&self, name: &str) -> Option<&str> {
        self.options.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Parses a script's text; `defines` are the names `#ifdef` sees.
pub fn parse_script(src: &str, defines: &[String]) -> Result<Script, ParseError> {
    let mut script = Script::default();
    for st in statements(src, defines)? {
        let t = st.text.trim_start();
        if t.starts_with("--") {
            for opt in t.split_whitespace() {
                let o = opt.strip_prefix("--").ok_or_else(|| ParseError::new(st.line, format!("bad option {opt}")))?;
                let (k, v) = o.split_once('=').unwrap_or((o, ""));
                script.options.push((k.to_owned(), v.to_owned()));
            }
            continue;
        }
        script.events.push(parse_event(&st)?);
    }
    Ok(script)
}

/// Seconds with a fraction (`0.1`, `.5`, `2`) → microseconds.
fn seconds(c: &mut Cursor<'_>) -> Option<i64> {
    c.ws();
    let r = c.rest();
    let n = r.find(|ch: char| !(ch.is_ascii_digit() || ch == '.')).unwrap_or(r.len());
    let (txt, rest) = r.split_at(n);
    // "..." right after a number: the number ends before it.
    let txt = match txt.find("..") {
        Some(i) => &txt[..i],
        None => txt,
    };
    let _ = rest;
    if txt.is_empty() || txt == "." {
        return None;
    }
    let (ip, fp) = txt.split_once('.').unwrap_or((txt, ""));
    let whole: i64 = if ip.is_empty() { 0 } else { ip.parse().ok()? };
    let mut frac = 0i64;
    let mut scale = 100_000i64;
    for d in fp.chars().take(6) {
        frac += (d.to_digit(10)? as i64) * scale;
        scale /= 10;
    }
    c.pos += txt.len();
    whole.checked_mul(1_000_000)?.checked_add(frac)
}

fn parse_time(c: &mut Cursor<'_>) -> Result<Time, String> {
    let start = if c.eat("*") {
        When::Any
    } else if c.eat("+") {
        When::Rel(seconds(c).ok_or("expected a time after +")?)
    } else {
        When::Abs(seconds(c).ok_or_else(|| format!("expected a time, found \"{}\"", head(c.rest())))?)
    };
    let mut t = Time { start, window_end: None, block_end: None };
    if c.eat("~") {
        c.eat("+");
        t.window_end = Some(seconds(c).ok_or("expected a time after ~")?);
    } else if c.eat("...") {
        c.eat("+");
        t.block_end = Some(seconds(c).ok_or("expected a time after ...")?);
    }
    Ok(t)
}

fn parse_event(st: &Stmt) -> Result<Event, ParseError> {
    let err = |m: String| ParseError::new(st.line, m);
    let mut c = Cursor::new(&st.text);
    // A shell command may come without a time (Linux scripts' preamble).
    let time = if c.peek() == Some(b'`') {
        Time { start: When::Rel(0), window_end: None, block_end: None }
    } else {
        parse_time(&mut c).map_err(err)?
    };
    let action = match c.peek() {
        Some(b'<') | Some(b'>') => Action::Packet(packet::parse(c.rest()).map_err(err)?),
        Some(b'%') => {
            let r = c.rest().trim();
            let body =
                r.strip_prefix("%{").and_then(|b| b.strip_suffix("}%")).ok_or_else(|| err("bad %{ }% block".into()))?;
            Action::Python(body.trim().to_owned())
        }
        Some(b'`') => {
            let r = c.rest().trim();
            let body =
                r.strip_prefix('`').and_then(|b| b.strip_suffix('`')).ok_or_else(|| err("bad `shell` line".into()))?;
            Action::Shell(body.trim().to_owned())
        }
        Some(ch) if ch.is_ascii_alphabetic() || ch == b'_' => parse_call(&mut c).map_err(err)?,
        _ => return Err(err(format!("cannot parse \"{}\"", head(c.rest())))),
    };
    Ok(Event { line: st.line, time, action })
}

fn parse_call(c: &mut Cursor<'_>) -> Result<Action, String> {
    let name = c.word().to_owned();
    if !c.eat("(") {
        return Err(format!("expected ( after {name}"));
    }
    let mut args = Vec::new();
    if !c.eat(")") {
        loop {
            args.push(c.value().map_err(|e| format!("{name}: {e}"))?);
            if c.eat(")") {
                break;
            }
            if !c.eat(",") {
                return Err(format!("{name}: expected , or ) found \"{}\"", head(c.rest())));
            }
        }
    }
    if !c.eat("=") {
        return Err(format!("{name}: expected = and the return value"));
    }
    let value = c.value().map_err(|e| format!("{name} return value: {e}"))?;
    let mut errno = None;
    if c.peek().is_some_and(|ch| ch.is_ascii_uppercase()) {
        errno = Some(c.word().to_owned());
    }
    // A "(text)" after the result (errno message, flag names) is free text.
    if c.peek() == Some(b'(') {
        let r = c.rest();
        let end = r.rfind(')').ok_or("unterminated (comment) after the return value")?;
        c.pos += end + 1;
    }
    if c.peek().is_some() {
        return Err(format!("{name}: unexpected \"{}\" after the return value", head(c.rest())));
    }
    Ok(Action::Call { name, args, ret: Ret { value, errno } })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::Dir;

    #[test]
    fn times() {
        let s = parse_script(
            "--tolerance_usecs=10000 --ip_version=ipv4\n0 a() = 0\n+.1 b() = 0\n* c() = 0\n1~1.5 d() = 0\n+0...0.25 e() = 0\n",
            &[],
        )
        .unwrap();
        assert_eq!(s.option("tolerance_usecs"), Some("10000"));
        let t: Vec<Time> = s.events.iter().map(|e| e.time).collect();
        assert_eq!(t[0].start, When::Abs(0));
        assert_eq!(t[1].start, When::Rel(100_000));
        assert_eq!(t[2].start, When::Any);
        assert_eq!((t[3].start, t[3].window_end), (When::Abs(1_000_000), Some(1_500_000)));
        assert_eq!((t[4].start, t[4].block_end), (When::Rel(0), Some(250_000)));
    }

    #[test]
    fn calls_and_errno() {
        let s = parse_script("0 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)\n", &[]).unwrap();
        match &s.events[0].action {
            Action::Call { name, args, ret } => {
                assert_eq!(name, "connect");
                assert_eq!(args.len(), 3);
                assert_eq!(ret.value, Value::Int(-1));
                assert_eq!(ret.errno.as_deref(), Some("EINPROGRESS"));
            }
            a => panic!("{a:?}"),
        }
    }

    #[test]
    fn all_kinds() {
        let s = parse_script(
            "0 `sysctl -w net.inet.tcp.msl=1000`\n+0 %{ assert tcpi_state == TCP_ESTABLISHED }%\n+0 > S. 0:0(0) ack 1 <...>\n",
            &[],
        )
        .unwrap();
        assert!(matches!(&s.events[0].action, Action::Shell(t) if t == "sysctl -w net.inet.tcp.msl=1000"));
        assert!(matches!(&s.events[1].action, Action::Python(t) if t == "assert tcpi_state == TCP_ESTABLISHED"));
        assert!(matches!(&s.events[2].action, Action::Packet(PacketLine::Tcp(p)) if p.dir == Dir::Out));
    }

    #[test]
    fn errors_have_lines() {
        assert_eq!(parse_script("0 a() = 0\n\n+0 b(3 = 0\n", &[]).unwrap_err().line, 3);
        assert_eq!(parse_script("0 a() = 0\nfoo\n", &[]).unwrap_err().line, 2);
        assert_eq!(parse_script("0 a() = 0\n+0 < S 0:0 win 1\n", &[]).unwrap_err().line, 2);
        assert_eq!(parse_script("0 a()\n", &[]).unwrap_err().line, 1);
    }
}
