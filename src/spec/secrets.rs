//! Secrets the installer generates: names, lengths, alphabets.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use serde::Deserialize;
use serde_spanned::Spanned;

use super::LocatedError;
use super::targets::valid_env_name;

/// The character set of a generated secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Alphabet {
    /// `A-Za-z0-9`.
    Alphanumeric,
    /// `0-9a-f`.
    Hex,
    /// `A-Za-z0-9-_`.
    Base64Url,
    /// Exactly these characters.
    Custom(String),
}

impl Alphabet {
    /// The characters, in a fixed order.
    pub fn chars(&self) -> Vec<char> {
        let range = |a: char, b: char| (a..=b).collect::<Vec<_>>();
        match self {
            Alphabet::Alphanumeric => [range('A', 'Z'), range('a', 'z'), range('0', '9')].concat(),
            Alphabet::Hex => [range('0', '9'), range('a', 'f')].concat(),
            Alphabet::Base64Url => [
                range('A', 'Z'),
                range('a', 'z'),
                range('0', '9'),
                vec!['-', '_'],
            ]
            .concat(),
            Alphabet::Custom(s) => s.chars().collect(),
        }
    }
}

/// A secret the installer generates (never stored in the bundle).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretSpec {
    /// Environment variable name.
    pub name: String,
    /// Number of characters.
    pub length: usize,
    /// Characters drawn from.
    pub alphabet: Alphabet,
    /// The list value with one secret per item (`NAME_<ITEM>`), if any.
    pub per: Option<String>,
}

impl SecretSpec {
    /// The `.env` key of this secret for list item `item`: upper-cased,
    /// `-` mapped to `_`.
    pub fn key_for(&self, item: &str) -> String {
        format!("{}_{}", self.name, item.to_uppercase().replace('-', "_"))
    }

    /// Checks that `items` map to `.env` keys one to one: each item of
    /// ASCII letters, digits, `-` and `_` only, no two items to one key
    /// (`acme-1` and `acme_1`), and no key that is another declared name.
    /// Each problem names the items.
    pub fn check_items(&self, items: &[String], declared: &[&str]) -> Vec<String> {
        let mut problems = Vec::new();
        let mut seen: BTreeMap<String, &str> = BTreeMap::new();
        for item in items {
            if item.is_empty()
                || !item
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                problems.push(format!(
                    "item `{}` of {} cannot name its `{}` secret: items that get a secret each hold only ASCII letters, digits, `-` and `_`",
                    crate::quote::quote(item),
                    self.per.as_deref().unwrap_or_default(),
                    self.name
                ));
                continue;
            }
            let key = self.key_for(item);
            if let Some(first) = seen.get(&key) {
                if *first != item {
                    problems.push(format!(
                        "items `{first}` and `{item}` of {} would share the secret {key}; rename one of them",
                        self.per.as_deref().unwrap_or_default()
                    ));
                }
                continue;
            }
            if declared.contains(&key.as_str()) {
                problems.push(format!(
                    "item `{item}` of {} would store its secret as {key}, which the bundle declares for something else",
                    self.per.as_deref().unwrap_or_default()
                ));
            }
            seen.insert(key, item);
        }
        problems
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSecret {
    length: Spanned<i64>,
    #[serde(default)]
    alphabet: Option<Spanned<String>>,
    #[serde(default)]
    characters: Option<Spanned<String>>,
    #[serde(default)]
    per: Option<Spanned<String>>,
}

/// Checks `[secrets.*]`.
pub(super) fn parse(
    raw: &BTreeMap<String, Spanned<RawSecret>>,
    values: &[super::ValueSpec],
    err: &dyn Fn(Range<usize>, String) -> LocatedError,
) -> Result<Vec<SecretSpec>, LocatedError> {
    let mut secrets = Vec::new();
    for (sname, s) in raw {
        let span = s.span();
        let s = s.get_ref();
        if !valid_env_name(sname) {
            return Err(err(
                span,
                format!("secret name `{sname}` must be an environment variable name (A-Z, 0-9, _)"),
            ));
        }
        let length = *s.length.get_ref();
        if !(8..=4096).contains(&length) {
            return Err(err(
                s.length.span(),
                format!("secret `{sname}`: length {length} is outside 8..=4096"),
            ));
        }
        let alphabet = match (&s.alphabet, &s.characters) {
            (Some(_), Some(c)) => {
                return Err(err(
                    c.span(),
                    format!("secret `{sname}`: give either alphabet or characters, not both"),
                ));
            }
            (None, None) => Alphabet::Alphanumeric,
            (None, Some(c)) => {
                let set: BTreeSet<char> = c.get_ref().chars().collect();
                if set.len() < 2
                    || set.len() != c.get_ref().chars().count()
                    || c.get_ref()
                        .chars()
                        .any(|ch| ch.is_whitespace() || ch.is_control() || "\"'$`\\#=".contains(ch))
                {
                    return Err(err(
                        c.span(),
                        format!(
                            "secret `{sname}`: characters must be at least two distinct printable characters, none of whitespace \" ' $ ` \\ # ="
                        ),
                    ));
                }
                Alphabet::Custom(c.get_ref().clone())
            }
            (Some(a), None) => match a.get_ref().as_str() {
                "alphanumeric" => Alphabet::Alphanumeric,
                "hex" => Alphabet::Hex,
                "base64url" => Alphabet::Base64Url,
                other => {
                    return Err(err(
                        a.span(),
                        format!(
                            "secret `{sname}`: unknown alphabet `{other}` (alphanumeric, hex, base64url; or set characters)"
                        ),
                    ));
                }
            },
        };
        if values.iter().any(|v| &v.name == sname) {
            return Err(err(
                span,
                format!("`{sname}` is declared both as a secret and as a value"),
            ));
        }
        let per = match &s.per {
            None => None,
            Some(p) => match values.iter().find(|v| &v.name == p.get_ref()) {
                Some(v) if v.kind == super::ValueType::List => Some(p.get_ref().clone()),
                _ => {
                    return Err(err(
                        p.span(),
                        format!(
                            "secret `{sname}`: per = `{}` names no list value",
                            p.get_ref()
                        ),
                    ));
                }
            },
        };
        secrets.push(SecretSpec {
            name: sname.clone(),
            length: length as usize,
            alphabet,
            per,
        });
    }

    Ok(secrets)
}
