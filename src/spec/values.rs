//! Site values (`[values.*]`) and host requirements (`[preflight]`):
//! declared in bundle.toml, supplied at install.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_spanned::Spanned;

use super::LocatedError;
use super::targets::valid_env_name;

/// What kind of value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueType {
    /// One string (the default).
    String,
    /// A list of strings, stored comma-separated.
    List,
    /// A file the site supplies; the value is its path on the host.
    File,
}

/// A value as supplied or stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// A string, or a file's path.
    String(String),
    /// A list.
    List(Vec<String>),
}

impl Value {
    /// The form kept in `.env`: a list comma-separated.
    pub fn env_form(&self) -> String {
        match self {
            Value::String(s) => s.clone(),
            Value::List(v) => v.join(","),
        }
    }
}

/// One declared value.
#[derive(Clone, Debug)]
pub struct ValueSpec {
    /// Its name, an environment variable name.
    pub name: String,
    /// What it is for, shown when prompting.
    pub description: Option<String>,
    /// Whole-value regex (each item, for a list), anchored.
    pub pattern: Option<regex::Regex>,
    /// The pattern as written, for messages.
    pub pattern_text: Option<String>,
    /// The only values allowed (each item, for a list).
    pub choices: Vec<String>,
    /// Used when none is supplied; a value without one is required.
    pub default: Option<Value>,
    /// Supplied by the operator, never printed, never generated.
    pub secret: bool,
    /// String, list or file.
    pub kind: ValueType,
}

impl ValueSpec {
    /// Checks `v`; the message never quotes a secret value.
    pub fn check(&self, v: &Value) -> Result<(), String> {
        let items: Vec<&str> = match (v, self.kind) {
            (Value::List(items), ValueType::List) => items.iter().map(String::as_str).collect(),
            (Value::String(s), ValueType::List) => {
                if s.is_empty() {
                    Vec::new()
                } else {
                    s.split(',').collect()
                }
            }
            (Value::String(s), _) => vec![s.as_str()],
            (Value::List(_), _) => return Err("is a list, but a single value is declared".into()),
        };
        let show = |s: &str| {
            if self.secret {
                "the value given".to_owned()
            } else {
                format!("`{}`", crate::quote::quote(s))
            }
        };
        for item in &items {
            if item.contains('\n') || item.contains('\r') || item.contains('\0') {
                return Err("contains a line break or NUL, which .env cannot hold".into());
            }
            if self.kind == ValueType::List && (item.is_empty() || item.contains(',')) {
                return Err("has an empty list item".into());
            }
            if !self.choices.is_empty() && !self.choices.iter().any(|c| c == item) {
                return Err(format!(
                    "{} is not one of: {}",
                    show(item),
                    self.choices.join(", ")
                ));
            }
            if let Some(p) = &self.pattern
                && !p.is_match(item)
            {
                return Err(format!(
                    "{} does not match the pattern {}",
                    show(item),
                    p.as_str()
                ));
            }
        }
        Ok(())
    }

    /// Parses a value as `--set` and `.env` give it (a list comma-separated).
    pub fn parse_text(&self, text: &str) -> Value {
        match self.kind {
            ValueType::List if text.is_empty() => Value::List(Vec::new()),
            ValueType::List => Value::List(text.split(',').map(|s| s.trim().to_owned()).collect()),
            _ => Value::String(text.to_owned()),
        }
    }
}

/// `[preflight]`: what the host must have before anything changes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Preflight {
    /// Total memory, in GiB.
    pub memory_gib: Option<f64>,
    /// Free disk in the install directory (and the runtime's data root), in GiB.
    pub disk_gib: Option<f64>,
    /// TCP ports that must be free.
    pub ports: Vec<u16>,
    /// Minimum compose version.
    pub compose_version: Option<semver::Version>,
    /// Minimum runtime (server) version.
    pub runtime_version: Option<semver::Version>,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawValue {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawValueSpec {
    description: Option<String>,
    pattern: Option<Spanned<String>>,
    #[serde(default)]
    choices: Vec<String>,
    default: Option<Spanned<RawValue>>,
    #[serde(default)]
    secret: bool,
    #[serde(rename = "type")]
    kind: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPreflight {
    memory_gib: Option<f64>,
    disk_gib: Option<f64>,
    #[serde(default)]
    ports: Vec<u16>,
    compose_version: Option<Spanned<String>>,
    runtime_version: Option<Spanned<String>>,
}

use super::Err;

/// Checks `[values.*]`.
pub(super) fn parse(
    raw: &BTreeMap<String, Spanned<RawValueSpec>>,
    err: Err<'_>,
) -> Result<Vec<ValueSpec>, LocatedError> {
    let mut out = Vec::new();
    for (name, r) in raw {
        let span = r.span();
        let r = r.get_ref();
        if !valid_env_name(name) {
            return Err(err(
                span,
                format!("value name `{name}` must be an environment variable name (A-Z, 0-9, _)"),
            ));
        }
        let kind = match r.kind.as_ref().map(|k| k.get_ref().as_str()) {
            None | Some("string") => ValueType::String,
            Some("list") => ValueType::List,
            Some("file") => ValueType::File,
            Some(other) => {
                let s = r.kind.as_ref().map_or(span.clone(), Spanned::span);
                return Err(err(
                    s,
                    format!("value `{name}`: type `{other}` is not string, list or file"),
                ));
            }
        };
        let pattern = match &r.pattern {
            None => None,
            Some(p) => Some(
                // Whole-value: anchored whatever the author wrote.
                regex::Regex::new(&format!("^(?:{})$", p.get_ref())).map_err(|e| {
                    err(
                        p.span(),
                        format!("value `{name}`: pattern does not compile: {e}"),
                    )
                })?,
            ),
        };
        if kind == ValueType::File && (pattern.is_some() || !r.choices.is_empty()) {
            return Err(err(
                span,
                format!("value `{name}`: a file value takes no pattern or choices"),
            ));
        }
        let mut spec = ValueSpec {
            name: name.clone(),
            description: r.description.clone(),
            pattern,
            pattern_text: r.pattern.as_ref().map(|p| p.get_ref().clone()),
            choices: r.choices.clone(),
            default: None,
            secret: r.secret,
            kind,
        };
        if let Some(d) = &r.default {
            // A secret's only default is empty: "optional", revealing nothing.
            let empty = matches!(d.get_ref(), RawValue::One(x) if x.is_empty());
            if spec.secret && !empty {
                return Err(err(
                    d.span(),
                    format!(
                        "value `{name}`: a secret value has no default: the operator supplies it"
                    ),
                ));
            }
            let v = match (d.get_ref(), kind) {
                (RawValue::One(s), _) => spec.parse_text(s),
                (RawValue::Many(v), ValueType::List) => Value::List(v.clone()),
                (RawValue::Many(_), _) => {
                    return Err(err(
                        d.span(),
                        format!("value `{name}`: a list default for a single value"),
                    ));
                }
            };
            // An empty default makes a value optional, whatever its pattern.
            let empty = matches!(&v, Value::String(s) if s.is_empty())
                || matches!(&v, Value::List(l) if l.is_empty());
            if !empty {
                spec.check(&v)
                    .map_err(|m| err(d.span(), format!("value `{name}`: the default {m}")))?;
            }
            spec.default = Some(v);
        }
        out.push(spec);
    }
    Ok(out)
}

/// Checks `[preflight]`.
pub(super) fn parse_preflight(raw: &RawPreflight, err: Err<'_>) -> Result<Preflight, LocatedError> {
    let version = |v: &Option<Spanned<String>>, what: &str| -> Result<_, LocatedError> {
        v.as_ref()
            .map(|s| {
                lenient_version(s.get_ref()).ok_or_else(|| {
                    err(
                        s.span(),
                        format!("preflight {what} `{}` is not a version", s.get_ref()),
                    )
                })
            })
            .transpose()
    };
    Ok(Preflight {
        memory_gib: raw.memory_gib,
        disk_gib: raw.disk_gib,
        ports: raw.ports.clone(),
        compose_version: version(&raw.compose_version, "compose_version")?,
        runtime_version: version(&raw.runtime_version, "runtime_version")?,
    })
}

/// `1.29`, `20.10.24`, `v2.20.2`, `1.29.2-1` as semver (missing parts 0).
pub fn lenient_version(s: &str) -> Option<semver::Version> {
    let s = s.trim().trim_start_matches('v');
    let core: &str = s.split(['-', '+', ' ', ',']).next().unwrap_or_default();
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    let major = parts.next().flatten()?;
    let minor = parts.next().flatten().unwrap_or(0);
    let patch = parts.next().flatten().unwrap_or(0);
    Some(semver::Version::new(major, minor, patch))
}
