//! Segment lines: `< S 0:0(0) win 65535 <mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7>`.
//!
//! [`Segment`] is both what a script line says and what the stack sent,
//! decoded; its `Display` prints the script's own notation, so a mismatch
//! shows expected and actual side by side.

use std::fmt;

use crate::value::{head, Cursor};

/// Which way a segment goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// `<`: the script injects it into the stack.
    In,
    /// `>`: the stack must send it.
    Out,
}

/// TCP flags (RFC 9293 §3.1 control bits).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    /// SYN.
    pub syn: bool,
    /// FIN.
    pub fin: bool,
    /// RST.
    pub rst: bool,
    /// PSH.
    pub psh: bool,
    /// ACK (`.` in scripts).
    pub ack: bool,
    /// URG.
    pub urg: bool,
    /// ECE.
    pub ece: bool,
    /// CWR.
    pub cwr: bool,
}

impl Flags {
    /// Parses `S.`, `P.`, `F.`, `R`, `-` ...
    pub fn parse(s: &str) -> Result<Flags, String> {
        let mut f = Flags::default();
        if s == "-" {
            return Ok(f);
        }
        for c in s.chars() {
            match c {
                'S' => f.syn = true,
                'F' => f.fin = true,
                'R' => f.rst = true,
                'P' => f.psh = true,
                '.' => f.ack = true,
                'U' => f.urg = true,
                'E' => f.ece = true,
                'W' => f.cwr = true,
                _ => return Err(format!("unknown TCP flag '{c}' in \"{s}\"")),
            }
        }
        Ok(f)
    }
}

impl fmt::Display for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        for (on, c) in [
            (self.syn, 'S'),
            (self.fin, 'F'),
            (self.rst, 'R'),
            (self.psh, 'P'),
            (self.urg, 'U'),
            (self.ece, 'E'),
            (self.cwr, 'W'),
            (self.ack, '.'),
        ] {
            if on {
                s.push(c);
            }
        }
        if s.is_empty() {
            s.push('-');
        }
        f.write_str(&s)
    }
}

/// One TCP option as a script writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpOpt {
    /// `nop` (kind 1).
    Nop,
    /// `eol` (kind 0).
    Eol,
    /// `mss N` (kind 2).
    Mss(u16),
    /// `wscale N` (kind 3).
    WScale(u8),
    /// `sackOK` (kind 4).
    SackOk,
    /// `sack a:b c:d` (kind 5), up to four blocks, relative sequence numbers.
    Sack([Option<(u32, u32)>; 4]),
    /// `TS val X ecr Y` (kind 8).
    Ts(u32, u32),
}

impl fmt::Display for TcpOpt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TcpOpt::Nop => write!(f, "nop"),
            TcpOpt::Eol => write!(f, "eol"),
            TcpOpt::Mss(n) => write!(f, "mss {n}"),
            TcpOpt::WScale(n) => write!(f, "wscale {n}"),
            TcpOpt::SackOk => write!(f, "sackOK"),
            TcpOpt::Sack(b) => {
                write!(f, "sack")?;
                for (l, r) in b.iter().flatten() {
                    write!(f, " {l}:{r}")?;
                }
                Ok(())
            }
            TcpOpt::Ts(v, e) => write!(f, "TS val {v} ecr {e}"),
        }
    }
}

/// The option list of a segment line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Options {
    /// No `<...>` at all: no options.
    None,
    /// `<...>`: any options.
    Any,
    /// An explicit list.
    List(Vec<TcpOpt>),
}

/// A TCP segment: a script line, or a decoded segment of the stack in the
/// same (relative) notation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Direction.
    pub dir: Dir,
    /// Control bits.
    pub flags: Flags,
    /// First sequence number: the stack's relative to its ISS, the peer's as sent.
    pub seq: u32,
    /// Payload length in bytes (`end - start`).
    pub len: u32,
    /// `ack N` (relative to the other side's ISN).
    pub ack: Option<u32>,
    /// `win N`.
    pub win: Option<u32>,
    /// `urg N`.
    pub urg: Option<u16>,
    /// Options.
    pub options: Options,
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = if self.dir == Dir::In { '<' } else { '>' };
        write!(f, "{d} {} {}:{}({})", self.flags, self.seq, self.seq.wrapping_add(self.len), self.len)?;
        if let Some(a) = self.ack {
            write!(f, " ack {a}")?;
        }
        if let Some(w) = self.win {
            write!(f, " win {w}")?;
        }
        if let Some(u) = self.urg {
            write!(f, " urg {u}")?;
        }
        match &self.options {
            Options::None => Ok(()),
            Options::Any => write!(f, " <...>"),
            Options::List(v) => {
                let parts: Vec<String> = v.iter().map(|o| o.to_string()).collect();
                write!(f, " <{}>", parts.join(","))
            }
        }
    }
}

/// Why a segment line is not run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PacketLine {
    /// A TCP segment.
    Tcp(Segment),
    /// An inbound ICMP error (`< icmp unreachable ... [start:end(len)]`).
    Icmp(crate::icmp::IcmpLine),
    /// A line the runner understands but does not support (outbound ICMP, UDP, ...):
    /// the script is skipped with this reason.
    Unsupported(String),
}

fn num<T: std::str::FromStr>(c: &mut Cursor<'_>, what: &str) -> Result<T, String> {
    let w = c.word();
    w.parse::<T>()
        .map_err(|_| format!("expected {what}, found \"{}\"", if w.is_empty() { head(c.rest()) } else { w.into() }))
}

/// Parses a segment line after its time: `< S 0:0(0) win 1000 <mss 1460>`.
pub fn parse(text: &str) -> Result<PacketLine, String> {
    let mut c = Cursor::new(text);
    let dir = if c.eat("<") {
        Dir::In
    } else if c.eat(">") {
        Dir::Out
    } else {
        return Err("a segment line starts with < or >".into());
    };
    // An ICMP line with its quoted segment first: `< [1:1461(1460)] icmp ...`.
    if c.peek() == Some(b'[') && c.rest().as_bytes().get(1).is_some_and(|b| b.is_ascii_digit()) {
        return icmp_line(dir, &mut c);
    }
    // ECN codepoint annotations: [ect0], [noecn], ...
    if c.peek() == Some(b'[') {
        let r = c.rest();
        let end = r.find(']').ok_or("unterminated [ecn] annotation")?;
        c.pos += end + 1;
    }
    let save = c.pos;
    let first = c.word();
    match first {
        "icmp" => {
            c.pos = save;
            return icmp_line(dir, &mut c);
        }
        "udp" => return Ok(PacketLine::Unsupported("UDP lines are not supported by the runner".into())),
        "ipv4" | "ipv6" | "gre" | "mpls" => {
            return Ok(PacketLine::Unsupported(format!("{first} encapsulation lines are not supported")))
        }
        _ => c.pos = save,
    }
    // Flags: a run of non-blank characters.
    c.ws();
    let rest = c.rest();
    let flen = rest.find(|ch: char| ch.is_whitespace()).unwrap_or(rest.len());
    let flags = Flags::parse(&rest[..flen])?;
    c.pos += flen;
    let seq: u32 = num(&mut c, "start sequence number")?;
    if !c.eat(":") {
        return Err("expected start:end(len)".into());
    }
    let end: u32 = num(&mut c, "end sequence number")?;
    if !c.eat("(") {
        return Err("expected (len) after start:end".into());
    }
    let len: u32 = num(&mut c, "payload length")?;
    if !c.eat(")") {
        return Err("expected ) after the payload length".into());
    }
    if end.wrapping_sub(seq) != len {
        return Err(format!("{seq}:{end} is not {len} bytes long"));
    }
    let mut seg = Segment { dir, flags, seq, len, ack: None, win: None, urg: None, options: Options::None };
    loop {
        match c.peek() {
            None => break,
            Some(b'<') => {
                c.pos += 1;
                seg.options = parse_options(&mut c)?;
                if c.peek().is_some() {
                    return Err(format!("unexpected \"{}\" after the options", head(c.rest())));
                }
                break;
            }
            _ => {}
        }
        let w = c.word();
        match w {
            "ack" => seg.ack = Some(num(&mut c, "ack number")?),
            "win" => seg.win = Some(num(&mut c, "window")?),
            "urg" => seg.urg = Some(num(&mut c, "urgent pointer")?),
            "" => return Err(format!("unexpected \"{}\"", head(c.rest()))),
            other => return Err(format!("unknown segment field \"{other}\"")),
        }
    }
    Ok(PacketLine::Tcp(seg))
}

/// An ICMP line: inbound ones run ([`crate::icmp`]); the stack's own ICMP
/// output is not compared (a SKIP).
fn icmp_line(dir: Dir, c: &mut Cursor<'_>) -> Result<PacketLine, String> {
    let l = crate::icmp::parse(c)?;
    Ok(match dir {
        Dir::In => PacketLine::Icmp(l),
        Dir::Out => PacketLine::Unsupported("outbound ICMP lines are not supported by the runner".into()),
    })
}

fn parse_options(c: &mut Cursor<'_>) -> Result<Options, String> {
    if c.eat("...") {
        if !c.eat(">") {
            return Err("expected > after <...".into());
        }
        return Ok(Options::Any);
    }
    let mut v = Vec::new();
    if c.eat(">") {
        return Ok(Options::List(v));
    }
    loop {
        let w = c.word();
        let o = match w {
            "nop" => TcpOpt::Nop,
            "eol" => TcpOpt::Eol,
            "mss" => TcpOpt::Mss(num(c, "MSS value")?),
            "wscale" => TcpOpt::WScale(num(c, "window scale shift")?),
            "sackOK" => TcpOpt::SackOk,
            "TS" => {
                if c.word() != "val" {
                    return Err("expected TS val X ecr Y".into());
                }
                let val = num(c, "TS val")?;
                if c.word() != "ecr" {
                    return Err("expected TS val X ecr Y".into());
                }
                TcpOpt::Ts(val, num(c, "TS ecr")?)
            }
            "sack" => {
                let mut b = [None; 4];
                let mut n = 0;
                while matches!(c.peek(), Some(ch) if ch.is_ascii_digit()) {
                    let l: u32 = num(c, "SACK left edge")?;
                    if !c.eat(":") {
                        return Err("expected a:b in a SACK block".into());
                    }
                    let r: u32 = num(c, "SACK right edge")?;
                    if n == 4 {
                        return Err("more than 4 SACK blocks".into());
                    }
                    b[n] = Some((l, r));
                    n += 1;
                }
                TcpOpt::Sack(b)
            }
            "" => return Err(format!("unexpected \"{}\" in the options", head(c.rest()))),
            other => return Err(format!("unsupported TCP option \"{other}\"")),
        };
        v.push(o);
        if c.eat(">") {
            return Ok(Options::List(v));
        }
        if !c.eat(",") {
            return Err(format!("expected , or > in the options, found \"{}\"", head(c.rest())));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(s: &str) -> Segment {
        match parse(s).unwrap() {
            PacketLine::Tcp(t) => t,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn syn_with_options() {
        let s = tcp("< S 0:0(0) win 32792 <mss 1000,sackOK,TS val 100 ecr 0,nop,wscale 7>");
        assert_eq!(s.dir, Dir::In);
        assert!(s.flags.syn && !s.flags.ack);
        assert_eq!(s.win, Some(32792));
        assert_eq!(
            s.options,
            Options::List(vec![TcpOpt::Mss(1000), TcpOpt::SackOk, TcpOpt::Ts(100, 0), TcpOpt::Nop, TcpOpt::WScale(7)])
        );
        assert_eq!(s.to_string(), "< S 0:0(0) win 32792 <mss 1000,sackOK,TS val 100 ecr 0,nop,wscale 7>");
    }

    #[test]
    fn every_field() {
        let s = tcp("> P. 1:1001(1000) ack 1 win 257 urg 3 <nop,nop,sack 1:2 3:4,eol>");
        assert!(s.flags.psh && s.flags.ack);
        assert_eq!((s.seq, s.len, s.ack, s.urg), (1, 1000, Some(1), Some(3)));
        assert!(
            matches!(&s.options, Options::List(v) if v[2] == TcpOpt::Sack([Some((1, 2)), Some((3, 4)), None, None]))
        );
        assert_eq!(tcp("< R 0:0(0) win 0 <...>").options, Options::Any);
        assert_eq!(tcp("< - 1:1(0) win 0").flags, Flags::default());
        let f = tcp("< SEWUFR. 0:0(0) win 1").flags;
        assert!(f.syn && f.ece && f.cwr && f.urg && f.fin && f.rst && f.ack);
        assert_eq!(tcp("< [ect0] . 1:1(0) ack 1 win 9").win, Some(9));
    }

    #[test]
    fn bad_lines() {
        assert!(parse("< S 0:0 win 1").is_err());
        assert!(parse("< S 0:5(4) win 1").is_err());
        assert!(parse("< Q 0:0(0) win 1").is_err());
        assert!(parse("< S 0:0(0) window 1").is_err());
        assert!(parse("< S 0:0(0) win 1 <mss>").is_err());
        assert!(parse("< S 0:0(0) win 1 <foo 3>").is_err());
        assert!(matches!(parse("> icmp unreachable port_unreachable"), Ok(PacketLine::Unsupported(_))));
        assert!(matches!(parse("< icmp unreachable port_unreachable"), Ok(PacketLine::Icmp(_))));
        assert!(matches!(parse("< [1:11(10)] icmp unreachable frag_needed mtu 1000"), Ok(PacketLine::Icmp(_))));
        assert!(parse("< icmp unreachable frag_needed mtu").is_err());
    }
}
