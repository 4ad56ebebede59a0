//! Bounded quoting of untrusted text in messages: a leaf every layer uses
//! to name what it refuses without repeating an attacker's bytes at length.

/// The most characters of an untrusted name or value an error quotes.
pub const QUOTE_CHARS: usize = 160;

/// `s` cut to [`QUOTE_CHARS`] characters, control characters escaped, with
/// the full length said when it was cut: error lines stay short whatever an
/// attacker puts in a name. A cut name keeps its head and its tail
/// (`files/d/d/…/../../../etc/x`): where a path points is at its end.
pub fn quote(s: &str) -> String {
    let escaped = |part: &str, out: &mut String| {
        for c in part.chars() {
            if c.is_control() {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
    };
    let count = s.chars().count();
    let mut out = String::new();
    if count <= QUOTE_CHARS {
        escaped(s, &mut out);
        return out;
    }
    let half = QUOTE_CHARS / 2;
    let head_end = s.char_indices().nth(half).map_or(s.len(), |(i, _)| i);
    let tail_start = s
        .char_indices()
        .nth(count - half)
        .map_or(s.len(), |(i, _)| i);
    escaped(&s[..head_end], &mut out);
    out.push('…');
    escaped(&s[tail_start..], &mut out);
    out.push_str(&format!(" ({} bytes in all)", s.len()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_cuts_long_names_and_escapes_control_characters() {
        let long = "a".repeat(10_000);
        let q = quote(&long);
        assert!(q.len() < 200, "{q}");
        assert!(q.ends_with("(10000 bytes in all)"), "{q}");
        assert_eq!(quote("a\nb"), "a\\nb");
    }

    #[test]
    fn a_long_escaping_name_keeps_its_head_and_its_tail() {
        let name = format!("files/{}../../../etc/x", "d/".repeat(200));
        let q = quote(&name);
        assert!(q.starts_with("files/d/d/"), "{q}");
        assert!(q.contains("…"), "{q}");
        assert!(q.ends_with("/../../../etc/x (420 bytes in all)"), "{q}");
        assert!(q.chars().count() < QUOTE_CHARS + 40, "{q}");
    }
}
