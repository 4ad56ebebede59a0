//! The `.env` line format, written so that every value reads back exactly
//! as given: by bale, by Compose's dotenv parser and by a POSIX shell.
//!
//! No quoting survives every dotenv reader (python-dotenv expands `${X}`
//! even inside single quotes; Compose's parser cannot end a double-quoted
//! value with `"`), so bale never hands `.env` to a compose tool: it reads
//! the file itself and passes the values through the process environment,
//! which carries bytes as they are. The encoding below is still chosen to
//! mean the same to Compose and to `sh` for an operator at the console:
//!
//! - plain (`A-Z a-z 0-9 _ . / : @ % + , = -`, not empty): unquoted;
//! - no `'` and no `\`: in single quotes, where nothing is special;
//! - otherwise in double quotes, `\ " $` and backtick escaped with `\`.

/// Whether `c` needs no quoting in any reader.
fn plain(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_./:@%+,=-".contains(c)
}

/// `value` as the right-hand side of a `.env` line.
pub fn encode(value: &str) -> String {
    if !value.is_empty() && value.chars().all(plain) {
        return value.to_owned();
    }
    if !value.contains(['\'', '\\']) {
        return format!("'{value}'");
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if matches!(c, '\\' | '"' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The key and value of one `.env` line (`export ` allowed), or `None`
/// for a blank line, a comment or a line without `=`.
pub fn parse_line(line: &str) -> Option<(String, String)> {
    let t = line.trim_start();
    if t.is_empty() || t.starts_with('#') {
        return None;
    }
    let (k, v) = t.split_once('=')?;
    let k = k.trim();
    let k = k.strip_prefix("export ").map_or(k, str::trim);
    Some((k.to_owned(), decode(v)))
}

/// The value of a right-hand side: quoted forms as [`encode`] writes them,
/// and an unquoted one up to a ` #` comment, trimmed, as Compose reads it.
pub fn decode(raw: &str) -> String {
    let v = raw.trim_start_matches([' ', '\t']);
    if let Some(rest) = v.strip_prefix('\'') {
        return rest.split_once('\'').map_or(rest, |(x, _)| x).to_owned();
    }
    if let Some(rest) = v.strip_prefix('"') {
        let mut out = String::with_capacity(rest.len());
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('r') => out.push('\r'),
                    Some(x) => out.push(x),
                    None => out.push('\\'),
                },
                c => out.push(c),
            }
        }
        return out;
    }
    let end = v
        .char_indices()
        .find(|&(i, c)| c == '#' && (i == 0 || v[..i].ends_with([' ', '\t'])))
        .map_or(v.len(), |(i, _)| i);
    v[..end].trim_end().to_owned()
}

/// Every `KEY=VALUE` pair of an env file, in order (a later line for the
/// same key wins where a map is made of them).
pub fn pairs(text: &str) -> Vec<(String, String)> {
    text.lines().filter_map(parse_line).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_reads_back_as_written() {
        for v in [
            "",
            "example.org",
            "listen 8080 #primary",
            "\"quoted\"",
            "'single'",
            "it's",
            "back\\slash",
            "ends with \\",
            "ends with \"",
            "${API_TOKEN}",
            "$HOME and `cmd`",
            "  spaces at both ends  ",
            "a=b=c",
            "#not a comment",
            "grüße — 日本",
            "\t",
        ] {
            let line = format!("K={}", encode(v));
            assert_eq!(
                parse_line(&line),
                Some(("K".to_owned(), v.to_owned())),
                "{line}"
            );
        }
        assert_eq!(encode("Ab3_x.y"), "Ab3_x.y");
        assert_eq!(encode("a b"), "'a b'");
        assert_eq!(encode("it's $x"), "\"it's \\$x\"");
    }

    #[test]
    fn hand_written_lines_read_as_compose_reads_them() {
        assert_eq!(decode(" value # comment"), "value");
        assert_eq!(decode("a#b"), "a#b");
        assert_eq!(decode("\"x\" # c"), "x");
        assert_eq!(parse_line("export X=\"q\""), Some(("X".into(), "q".into())));
        assert_eq!(parse_line("# c"), None);
    }
}
