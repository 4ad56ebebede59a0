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
fn key_of(line: &str) -> Option<String> {
    crate::dotenv::parse_line(line).map(|(k, _)| k)
}

impl EnvFile {
    /// Reads `.env` text.
    pub fn parse(text: &str) -> Self {
        EnvFile {
            lines: text.lines().map(str::to_owned).collect(),
        }
    }

    /// The value of `key` (its last line wins, as compose reads it).
    pub fn get(&self, key: &str) -> Option<String> {
        self.lines
            .iter()
            .rev()
            .filter_map(|l| crate::dotenv::parse_line(l))
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Sets `key` to `value`: its line is rewritten in place, or appended.
    /// Returns whether the value changed. A line of the same value written
    /// in another form (by an older bale, or by hand) is rewritten in
    /// bale's encoding, which `sh` and Compose read alike.
    pub fn set(&mut self, key: &str, value: &str) -> bool {
        let changed = self.get(key).as_deref() != Some(value);
        let line = format!("{key}={}", crate::dotenv::encode(value));
        match self
            .lines
            .iter()
            .rposition(|l| key_of(l).as_deref() == Some(key))
        {
            Some(i) => self.lines[i] = line,
            None => self.lines.push(line),
        }
        changed
    }

    /// Every key and value.
    pub fn pairs(&self) -> BTreeMap<String, String> {
        self.lines
            .iter()
            .filter_map(|l| crate::dotenv::parse_line(l))
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
        assert_eq!(
            EnvFile::parse("export X=\"q\"\n").get("X").as_deref(),
            Some("q")
        );
    }
}
