//! The same schema written as TOML (`config.toml`).
//!
//! A TOML file becomes the same [`Section`]s the INI reader produces, with
//! the line of every key, so both forms share one set of checks and one set
//! of error messages. Mapping:
//! - `[dpdk]`, `[port0]`, … are sections; `[freebsd.boot]` and
//!   `[freebsd.sysctl]` (nested tables in TOML) keep their INI names.
//! - Nested keys inside a section flatten to dotted names, so
//!   `net.inet.tcp.sendspace = 262144` in `[freebsd.sysctl]` is the sysctl of
//!   that name (quoted or dotted, both work).
//! - Booleans are `1`/`0`, integers their decimal value (`lcore_mask` takes
//!   the integer's value as the mask: `lcore_mask = 0x3` or `"3"`), arrays of
//!   integers or strings a comma list (`port_list = [0, 1]`), strings as
//!   written. Dates are refused.

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::{ConfigError, Entry, Section};

/// Splits TOML `text` (from `file`, for messages) into sections.
pub fn parse(file: &str, text: &str) -> Result<Vec<Section>, ConfigError> {
    let doc = DeTable::parse(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(1);
        ConfigError::syntax(file, line, format!("TOML: {}", e.message().trim_end()))
    })?;
    let mut sections = Vec::new();
    for (k, v) in doc.get_ref() {
        let line = line_of(text, k.span().start);
        let name = k.get_ref().as_ref();
        match v.get_ref() {
            DeValue::Table(t) if name == "freebsd" => {
                for (sub, sv) in t {
                    let sline = line_of(text, sub.span().start);
                    let DeValue::Table(st) = sv.get_ref() else {
                        let msg =
                            format!("freebsd.{} must be a table: [freebsd.boot] or [freebsd.sysctl]", sub.get_ref());
                        return Err(ConfigError::syntax(file, sline, msg));
                    };
                    sections.push(section(file, text, &format!("freebsd.{}", sub.get_ref()), sline, st)?);
                }
            }
            DeValue::Table(t) => sections.push(section(file, text, name, line, t)?),
            _ => return Err(ConfigError::syntax(file, line, format!("key before any [section]: {name}"))),
        }
    }
    Ok(sections)
}

fn section(file: &str, text: &str, name: &str, line: usize, t: &DeTable<'_>) -> Result<Section, ConfigError> {
    let mut s = Section { name: name.to_owned(), line, entries: Vec::new() };
    flatten(file, text, "", t, &mut s.entries)?;
    Ok(s)
}

fn flatten(file: &str, text: &str, prefix: &str, t: &DeTable<'_>, out: &mut Vec<Entry>) -> Result<(), ConfigError> {
    for (k, v) in t {
        let key = format!("{prefix}{}", k.get_ref());
        let line = line_of(text, k.span().start);
        if let DeValue::Table(inner) = v.get_ref() {
            flatten(file, text, &format!("{key}."), inner, out)?;
            continue;
        }
        let value = scalar(&key, v).map_err(|what| ConfigError::syntax(file, line, format!("{key}: {what}")))?;
        out.push(Entry { key, value, line });
    }
    Ok(())
}

/// The INI text of one TOML value.
fn scalar(key: &str, v: &Spanned<DeValue<'_>>) -> Result<String, String> {
    Ok(match v.get_ref() {
        DeValue::String(s) => s.to_string(),
        DeValue::Boolean(b) => u8::from(*b).to_string(),
        DeValue::Integer(i) => {
            let Ok(n) = u64::from_str_radix(i.as_str(), i.radix()) else {
                // Negative: passed on as written, for the schema's range message.
                return i64::from_str_radix(i.as_str(), i.radix())
                    .map(|n| n.to_string())
                    .map_err(|_| format!("{i} is not an integer that fits 64 bits"));
            };
            if key == "lcore_mask" {
                format!("0x{n:x}")
            } else {
                n.to_string()
            }
        }
        DeValue::Float(f) => f.as_str().to_owned(),
        DeValue::Datetime(d) => return Err(format!("a date ({d}) is not a configuration value")),
        DeValue::Array(a) => {
            let mut parts = Vec::with_capacity(a.len());
            for item in a {
                if matches!(item.get_ref(), DeValue::Array(_) | DeValue::Table(_)) {
                    return Err("arrays hold integers or strings, not arrays or tables".into());
                }
                parts.push(scalar(key, item)?);
            }
            parts.join(",")
        }
        DeValue::Table(_) => return Err("a table is not a value here".into()),
    })
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}
