//! Script text → statements: comments removed (`//`, `/* */`, and `#`
//! lines other than the conditionals), `#ifdef NAME`/`#ifndef`/`#else`/
//! `#endif` resolved against the names given with `--define`, and lines
//! joined while brackets, a `%{ ... }%` block or a backquoted shell command
//! are open. Every statement keeps the number of the line it starts on.

use crate::error::ParseError;

/// One statement of the script and the (1-based) line it starts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stmt {
    /// Line number in the script file.
    pub line: usize,
    /// The statement's text, lines joined with `\n`.
    pub text: String,
}

/// Removes `//` and `/* */` comments, keeping newlines (so line numbers hold).
/// Text inside `"..."` strings, `%{ }%` blocks and backquotes is kept as is.
fn strip_comments(src: &str) -> Result<String, ParseError> {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let mut line = 1;
    let mut in_str = false;
    let mut in_py = false;
    let mut in_shell = false;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == b'\n' {
            line += 1;
        }
        if in_str {
            in_str = c != b'"';
        } else if in_py {
            if c == b'}' && next == Some(b'%') {
                in_py = false;
                out.push_str("}%");
                i += 2;
                continue;
            }
        } else if in_shell {
            in_shell = c != b'`';
        } else if c == b'"' {
            in_str = true;
        } else if c == b'`' {
            in_shell = true;
        } else if c == b'%' && next == Some(b'{') {
            in_py = true;
            out.push_str("%{");
            i += 2;
            continue;
        } else if c == b'/' && next == Some(b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        } else if c == b'/' && next == Some(b'*') {
            let start = line;
            i += 2;
            loop {
                if i + 1 >= b.len() {
                    return Err(ParseError::new(start, "unterminated /* comment"));
                }
                if b[i] == b'*' && b[i + 1] == b'/' {
                    i += 2;
                    break;
                }
                if b[i] == b'\n' {
                    line += 1;
                    out.push('\n');
                }
                i += 1;
            }
            out.push(' ');
            continue;
        }
        // Push the whole UTF-8 character starting here.
        let ch_len = src[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&src[i..i + ch_len]);
        i += ch_len;
    }
    Ok(out)
}

/// Resolves `#ifdef`/`#ifndef`/`#else`/`#endif` (nesting allowed) and drops
/// other `#` lines; returns the surviving lines with their numbers.
fn conditionals<'a>(text: &'a str, defines: &[String]) -> Result<Vec<(usize, &'a str)>, ParseError> {
    // Stack of (this branch active, some branch taken, line of the #if).
    let mut stack: Vec<(bool, bool, usize)> = Vec::new();
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        let t = raw.trim();
        let active = stack.iter().all(|s| s.0);
        if let Some(rest) = t.strip_prefix('#') {
            let mut words = rest.split_whitespace();
            let word = words.next().unwrap_or("");
            let name = words.next();
            match word {
                "ifdef" | "ifndef" => {
                    let name = name.ok_or_else(|| ParseError::new(line, format!("#{word} needs a name")))?;
                    let def = defines.iter().any(|d| d == name);
                    let on = if word == "ifdef" { def } else { !def };
                    stack.push((on, on, line));
                }
                "if" => {
                    // `#if 0` / `#if 1` only.
                    let on = name.is_some_and(|v| v != "0");
                    stack.push((on, on, line));
                }
                "else" => {
                    let top = stack.last_mut().ok_or_else(|| ParseError::new(line, "#else without #ifdef"))?;
                    top.0 = !top.1;
                    top.1 = true;
                }
                "endif" => {
                    stack.pop().ok_or_else(|| ParseError::new(line, "#endif without #ifdef"))?;
                }
                _ => {} // other preprocessor-ish lines: ignored
            }
            continue;
        }
        if active {
            out.push((line, raw));
        }
    }
    if let Some(&(_, _, line)) = stack.last() {
        return Err(ParseError::new(line, "#ifdef without #endif"));
    }
    Ok(out)
}

/// Splits the script into statements.
pub fn statements(src: &str, defines: &[String]) -> Result<Vec<Stmt>, ParseError> {
    let text = strip_comments(src)?;
    let lines = conditionals(&text, defines)?;
    let mut out = Vec::new();
    let mut cur: Option<Stmt> = None;
    let mut depth: i32 = 0;
    let mut in_py = false;
    let mut in_shell = false;
    for (line, raw) in lines {
        if cur.is_none() && raw.trim().is_empty() {
            continue;
        }
        let s = cur.get_or_insert_with(|| Stmt { line, text: String::new() });
        if !s.text.is_empty() {
            s.text.push('\n');
        }
        s.text.push_str(raw);
        let b = raw.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            let next = b.get(i + 1).copied();
            if in_py {
                if c == b'}' && next == Some(b'%') {
                    in_py = false;
                    i += 1;
                }
            } else if in_shell {
                in_shell = c != b'`';
            } else {
                match c {
                    b'%' if next == Some(b'{') => {
                        in_py = true;
                        i += 1;
                    }
                    b'`' => in_shell = true,
                    b'(' | b'[' | b'{' => depth += 1,
                    b')' | b']' | b'}' => depth -= 1,
                    _ => {}
                }
            }
            i += 1;
        }
        if depth < 0 {
            return Err(ParseError::new(line, "unbalanced closing bracket"));
        }
        if depth == 0 && !in_py && !in_shell {
            out.push(cur.take().expect("statement in progress"));
        }
    }
    if let Some(s) = cur {
        let what = if in_py {
            "unterminated %{ block"
        } else if in_shell {
            "unterminated backquote"
        } else {
            "unbalanced brackets"
        };
        return Err(ParseError::new(s.line, what));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_lines() {
        let s = statements("// c\n0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3 /* x\n y */\n\n+0 close(3) = 0\n", &[])
            .unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].line, 2);
        assert_eq!(s[1].line, 5);
        assert!(!s[0].text.contains('x'));
    }

    #[test]
    fn ifdef_else() {
        let src = "#ifdef A\n1 a() = 0\n#else\n2 b() = 0\n#endif\n3 c() = 0\n";
        let with = statements(src, &["A".into()]).unwrap();
        assert_eq!(with.iter().map(|s| s.line).collect::<Vec<_>>(), vec![2, 6]);
        let without = statements(src, &[]).unwrap();
        assert_eq!(without.iter().map(|s| s.line).collect::<Vec<_>>(), vec![4, 6]);
        assert!(statements("#ifdef A\n", &[]).is_err());
        assert!(statements("#endif\n", &[]).is_err());
    }

    #[test]
    fn multi_line_blocks() {
        let src = "0 `sysctl -w a=1\nsysctl -w b=2`\n+0 %{\nassert tcpi_state == 1\n}%\n+0 poll([{fd=3,\n events=POLLIN}], 1, 0) = 0\n";
        let s = statements(src, &[]).unwrap();
        assert_eq!(s.iter().map(|s| s.line).collect::<Vec<_>>(), vec![1, 3, 6]);
        assert!(statements("0 `oops\n", &[]).is_err());
        assert!(statements("0 f(\n", &[]).is_err());
    }
}
