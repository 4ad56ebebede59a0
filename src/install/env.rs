//! The install directory's `.env`: site values and secrets, one
//! `KEY=VALUE` per line. bale changes only the lines of keys it manages
//! and keeps every other line (comments, the operator's own settings).

use std::collections::BTreeMap;

/// `.env`, line by line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnvFile {
    lines: Vec<String>,
}

/// The key of a `KEY=VALUE` line (an `export ` prefix allowed).
fn key_of(line: &str) -> Option<&str> {
    let t = line.trim_start();
    if t.starts_with('#') {
        return None;
    }
    let (k, _) = t.split_once('=')?;
    Some(k.trim().trim_start_matches("export ").trim())
}

/// The value of a line, one pair of surrounding quotes removed.
fn value_of(line: &str) -> &str {
    let v = line.split_once('=').map_or("", |(_, v)| v.trim());
    v.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .or_else(|| v.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
        .unwrap_or(v)
}

impl EnvFile {
    /// Reads `.env` text.
    pub fn parse(text: &str) -> Self {
        EnvFile {
            lines: text.lines().map(str::to_owned).collect(),
        }
    }

    /// The value of `key` (its last line wins, as compose reads it).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.lines
            .iter()
            .rev()
            .find(|l| key_of(l) == Some(key))
            .map(|l| value_of(l))
    }

    /// Sets `key` to `value`: its line is rewritten in place, or appended.
    /// Returns whether anything changed.
    pub fn set(&mut self, key: &str, value: &str) -> bool {
        if self.get(key) == Some(value) {
            return false;
        }
        let line = format!("{key}={value}");
        match self.lines.iter().rposition(|l| key_of(l) == Some(key)) {
            Some(i) => self.lines[i] = line,
            None => self.lines.push(line),
        }
        true
    }

    /// Every key and value.
    pub fn pairs(&self) -> BTreeMap<String, String> {
        self.lines
            .iter()
            .filter_map(|l| key_of(l).map(|k| (k.to_owned(), value_of(l).to_owned())))
            .collect()
    }

    /// The text, ending in a newline.
    pub fn render(&self) -> String {
        let mut s = self.lines.join("\n");
        if !s.is_empty() {
            s.push('\n');
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_rewrites_in_place_and_keeps_other_lines() {
        let mut e = EnvFile::parse("# site\nDOMAIN=old.example\nPORT=80\n");
        assert!(e.set("DOMAIN", "new.example"));
        assert!(!e.set("PORT", "80"));
        assert!(e.set("TENANTS", "a,b"));
        assert_eq!(
            e.render(),
            "# site\nDOMAIN=new.example\nPORT=80\nTENANTS=a,b\n"
        );
        assert_eq!(EnvFile::parse("export X=\"q\"\n").get("X"), Some("q"));
    }
}
