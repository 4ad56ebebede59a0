//! Licences as package databases state them, made valid for SPDX: a text
//! that is an expression of SPDX licence identifiers bale knows is kept as
//! it is; any other text (`GPLv2+`, `MIT BSD`, `custom`) becomes one
//! `LicenseRef-` whose extracted text is the database's own words, so the
//! document validates and nothing is guessed.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// SPDX licence identifiers common in distributions' package databases
/// (from the SPDX licence list; deprecated forms left out).
const KNOWN: &[&str] = &[
    "0BSD",
    "AFL-2.1",
    "AGPL-3.0-only",
    "AGPL-3.0-or-later",
    "Apache-1.1",
    "Apache-2.0",
    "Artistic-1.0",
    "Artistic-1.0-Perl",
    "Artistic-2.0",
    "BSD-1-Clause",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "BSD-4-Clause",
    "BSL-1.0",
    "bzip2-1.0.6",
    "CC-BY-4.0",
    "CC-BY-SA-4.0",
    "CC0-1.0",
    "curl",
    "EPL-1.0",
    "EPL-2.0",
    "FSFAP",
    "FSFUL",
    "FSFULLR",
    "FTL",
    "GFDL-1.3-only",
    "GFDL-1.3-or-later",
    "GPL-1.0-only",
    "GPL-1.0-or-later",
    "GPL-2.0-only",
    "GPL-2.0-or-later",
    "GPL-3.0-only",
    "GPL-3.0-or-later",
    "HPND",
    "ICU",
    "IJG",
    "ISC",
    "LGPL-2.0-only",
    "LGPL-2.0-or-later",
    "LGPL-2.1-only",
    "LGPL-2.1-or-later",
    "LGPL-3.0-only",
    "LGPL-3.0-or-later",
    "Libpng",
    "libpng-2.0",
    "MIT",
    "MIT-0",
    "MPL-1.1",
    "MPL-2.0",
    "NCSA",
    "OFL-1.1",
    "OLDAP-2.8",
    "OpenSSL",
    "PHP-3.01",
    "PostgreSQL",
    "PSF-2.0",
    "Python-2.0",
    "Ruby",
    "Sleepycat",
    "TCL",
    "Unicode-DFS-2016",
    "Unicode-3.0",
    "Unlicense",
    "Vim",
    "W3C",
    "WTFPL",
    "X11",
    "Zlib",
    "ZPL-2.1",
];
/// Licence exceptions that may follow `WITH`.
const EXCEPTIONS: &[&str] = &[
    "Autoconf-exception-2.0",
    "Autoconf-exception-3.0",
    "Bison-exception-2.2",
    "Classpath-exception-2.0",
    "GCC-exception-2.0",
    "GCC-exception-3.1",
    "LLVM-exception",
    "OpenSSL-exception",
    "openvpn-openssl-exception",
];

/// The `LicenseRef-`s a document uses, by id, with the text each stands for.
#[derive(Default)]
pub(super) struct Extracted(BTreeMap<String, String>);

impl Extracted {
    /// The SPDX expression for a database's licence text.
    pub(super) fn expression(&mut self, text: &str) -> String {
        if is_known_expression(text) {
            return text.split_whitespace().collect::<Vec<_>>().join(" ");
        }
        let id = format!("LicenseRef-{}", reference(text));
        self.0.entry(id.clone()).or_insert_with(|| text.to_owned());
        id
    }

    /// `hasExtractedLicensingInfos` for the document.
    pub(super) fn infos(&self) -> Vec<Value> {
        self.0
            .iter()
            .map(|(id, text)| {
                json!({
                    "licenseId": id,
                    "extractedText": text,
                    "name": text,
                    "comment": "the licence as the package database states it",
                })
            })
            .collect()
    }
}

/// A `LicenseRef-` suffix: letters, digits, `.` and `-` of the text, cut
/// short, and a hash of the whole so different texts stay different.
fn reference(text: &str) -> String {
    let mut s: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .take(48)
        .collect();
    while s.contains("--") {
        s = s.replace("--", "-");
    }
    let h = crate::digest::Digest::of(text.as_bytes());
    format!("{}-{}", s.trim_matches('-'), &h.hex()[..8])
}

/// Whether `text` is a well-formed expression of known identifiers:
/// operands joined by AND/OR, optionally `WITH` an exception, in
/// balanced parentheses.
fn is_known_expression(text: &str) -> bool {
    let spaced = text.replace('(', " ( ").replace(')', " ) ");
    let tokens: Vec<&str> = spaced.split_whitespace().collect();
    if tokens.is_empty() {
        return false;
    }
    let mut depth = 0i32;
    let mut want_operand = true;
    let mut after_with = false;
    for t in tokens {
        match t {
            "(" if want_operand => depth += 1,
            ")" if !want_operand => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            "AND" | "OR" if !want_operand => want_operand = true,
            "WITH" if !want_operand => {
                want_operand = true;
                after_with = true;
            }
            id if want_operand => {
                let id = id.strip_suffix('+').unwrap_or(id);
                let ok = if after_with {
                    EXCEPTIONS.contains(&id)
                } else {
                    KNOWN.contains(&id)
                };
                if !ok {
                    return false;
                }
                want_operand = false;
                after_with = false;
            }
            _ => return false,
        }
    }
    depth == 0 && !want_operand
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_expressions_stay_and_others_become_references() {
        let mut x = Extracted::default();
        assert_eq!(x.expression("MIT"), "MIT");
        assert_eq!(
            x.expression("GPL-2.0-or-later AND (MIT OR BSD-3-Clause)"),
            "GPL-2.0-or-later AND (MIT OR BSD-3-Clause)"
        );
        assert_eq!(
            x.expression("GPL-2.0-only WITH Classpath-exception-2.0"),
            "GPL-2.0-only WITH Classpath-exception-2.0"
        );
        let r = x.expression("GPLv2+");
        assert!(r.starts_with("LicenseRef-GPLv2-"), "{r}");
        assert!(x.expression("MIT BSD").starts_with("LicenseRef-MIT-BSD-"));
        assert!(x.expression("MIT AND").starts_with("LicenseRef-"));
        assert_eq!(x.infos().len(), 3);
    }
}
