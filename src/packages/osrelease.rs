//! os-release(5): `KEY=value` lines, values optionally quoted.

use super::{Distro, field};

/// Reads `ID`, `VERSION_ID` and `PRETTY_NAME`; `None` without an `ID`.
pub fn parse(text: &str) -> Option<Distro> {
    let mut d = Distro::default();
    for line in text.lines().take(1000) {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(v);
        let v = field(&v.replace("\\\"", "\""));
        match k.trim() {
            "ID" => d.id = v.to_ascii_lowercase(),
            "VERSION_ID" if !v.is_empty() => d.version_id = Some(v),
            "PRETTY_NAME" if !v.is_empty() => d.pretty_name = Some(v),
            _ => {}
        }
    }
    (!d.id.is_empty()).then_some(d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_quoted_and_bare_values() {
        let d = super::parse(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n",
        )
        .unwrap();
        assert_eq!(
            (d.id.as_str(), d.version_id.as_deref()),
            ("debian", Some("12"))
        );
        assert_eq!(d.qualifier(), "debian-12");
        assert!(super::parse("NAME=x\n").is_none());
    }
}
