//! A strict INI reader: `[section]` headers, `key=value` lines, `;` and `#`
//! comments (whole lines, or after whitespace at the end of a value), blank
//! lines. Every entry keeps its line number for error messages. Anything
//! else is an error, never skipped.

use super::ConfigError;

/// One `key=value` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The key, trimmed.
    pub key: String,
    /// The value, trimmed, trailing comment removed.
    pub value: String,
    /// 1-based line number.
    pub line: usize,
}

/// One `[section]` and its entries, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    /// The name between the brackets, trimmed.
    pub name: String,
    /// 1-based line of the header.
    pub line: usize,
    /// Entries in file order.
    pub entries: Vec<Entry>,
}

/// Splits `text` (from `file`, for messages) into sections.
pub fn parse(file: &str, text: &str) -> Result<Vec<Section>, ConfigError> {
    let mut sections: Vec<Section> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let t = raw.trim();
        if t.is_empty() || t.starts_with(';') || t.starts_with('#') {
            continue;
        }
        if let Some(rest) = t.strip_prefix('[') {
            let Some(name) = rest.strip_suffix(']') else {
                return Err(ConfigError::syntax(file, line, format!("section header without closing ']': {t}")));
            };
            let name = name.trim();
            if name.is_empty() {
                return Err(ConfigError::syntax(file, line, "empty section name".into()));
            }
            if let Some(prev) = sections.iter().find(|s| s.name == name) {
                return Err(ConfigError::syntax(
                    file,
                    line,
                    format!("section [{name}] appears twice (first on line {})", prev.line),
                ));
            }
            sections.push(Section { name: name.to_owned(), line, entries: Vec::new() });
            continue;
        }
        let Some((k, v)) = t.split_once('=') else {
            return Err(ConfigError::syntax(file, line, format!("expected key=value, [section] or a comment: {t}")));
        };
        let Some(section) = sections.last_mut() else {
            return Err(ConfigError::syntax(file, line, format!("key before any [section]: {}", k.trim())));
        };
        let key = k.trim();
        if key.is_empty() {
            return Err(ConfigError::syntax(file, line, "empty key".into()));
        }
        if let Some(prev) = section.entries.iter().find(|e| e.key == key) {
            return Err(ConfigError::syntax(
                file,
                line,
                format!("[{}] {key} is set twice (first on line {})", section.name, prev.line),
            ));
        }
        section.entries.push(Entry { key: key.to_owned(), value: strip_comment(v).to_owned(), line });
    }
    Ok(sections)
}

/// Removes a trailing ` ; comment` or ` # comment` from a value.
fn strip_comment(v: &str) -> &str {
    let v = v.trim();
    let cut = v
        .char_indices()
        .find(|&(i, c)| (c == ';' || c == '#') && v[..i].ends_with(char::is_whitespace))
        .map(|(i, _)| i);
    match cut {
        Some(i) => v[..i].trim_end(),
        None => v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_entries_comments_and_lines() {
        let text = "; top\n[dpdk]\nlcore_mask = 3 ; two cores\n# note\n\n[port0]\naddr=10.0.0.1\npath=/a;b\n";
        let s = parse("f.ini", text).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].entries[0], Entry { key: "lcore_mask".into(), value: "3".into(), line: 3 });
        assert_eq!(s[1].line, 6);
        assert_eq!(s[1].entries[1].value, "/a;b", "a ';' inside a value is kept");
    }

    #[test]
    fn malformed_lines_are_errors_with_their_line() {
        let e = parse("f.ini", "[dpdk]\nlcore_mask\n").unwrap_err();
        assert_eq!(e.to_string(), "f.ini:2: expected key=value, [section] or a comment: lcore_mask");
        let e = parse("f.ini", "x=1\n").unwrap_err();
        assert_eq!(e.to_string(), "f.ini:1: key before any [section]: x");
        let e = parse("f.ini", "[dpdk\n").unwrap_err();
        assert_eq!(e.to_string(), "f.ini:1: section header without closing ']': [dpdk");
        let e = parse("f.ini", "[a]\nk=1\nk=2\n").unwrap_err();
        assert_eq!(e.to_string(), "f.ini:3: [a] k is set twice (first on line 2)");
        let e = parse("f.ini", "[a]\n[a]\n").unwrap_err();
        assert_eq!(e.to_string(), "f.ini:2: section [a] appears twice (first on line 1)");
    }
}
