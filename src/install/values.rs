//! Site values at install: taken from `--set`, `--values FILE`, the
//! existing `.env`, the declared default or a prompt, in that order, and
//! checked all at once before anything on the host changes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::InstallError;
use super::env::EnvFile;
use crate::quote::quote;
use crate::spec::{SecretSpec, Value, ValueSpec, ValueType};

/// Values the operator gives on the command line.
#[derive(Clone, Debug, Default)]
pub struct Supplied {
    /// `NAME=VALUE` from each `--set`.
    pub set: Vec<String>,
    /// `--values FILE`.
    pub file: Option<PathBuf>,
}

/// Asks for a value on a terminal; `None` when there is none to ask.
pub type Prompt<'a> = &'a dyn Fn(&ValueSpec) -> Option<String>;

/// Every declared value, resolved.
#[derive(Clone, Debug, Default)]
pub struct Resolved {
    /// By name.
    pub values: BTreeMap<String, Value>,
    /// Names whose stored form differs from the `.env` they were read
    /// against (new ones included).
    pub changed: Vec<String>,
}

/// The largest `--values` file bale reads.
pub const MAX_VALUES_FILE: u64 = 1024 * 1024;
/// The largest value (each item of a list): environment variables carry
/// them to compose, and Linux refuses one over 128 KiB.
pub const MAX_VALUE: usize = 64 * 1024;
/// The largest file a `type = "file"` value may name.
pub const MAX_FILE_VALUE: u64 = 16 * 1024 * 1024;

/// Reads at most `max` bytes of `path` (a FIFO or a device too), or says
/// how large the bound is.
fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    f.take(max + 1)
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    if out.len() as u64 > max {
        return Err(format!(
            "is larger than {} KiB, the most bale reads here",
            max / 1024
        ));
    }
    Ok(out)
}

/// Reads `--values FILE`: `NAME = "value"` or `NAME = ["a", "b"]`.
fn read_file(path: &Path) -> Result<BTreeMap<String, Value>, String> {
    let bytes = read_bounded(path, MAX_VALUES_FILE)
        .map_err(|e| format!("--values {}: {e}", path.display()))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("--values {}: is not UTF-8 text", path.display()))?;
    let table: toml::Table = toml::from_str(&text)
        .map_err(|e| format!("--values {}: {}", path.display(), e.message().trim_end()))?;
    let mut out = BTreeMap::new();
    for (k, v) in table {
        let v = match v {
            toml::Value::String(s) => Value::String(s),
            toml::Value::Array(a) => Value::List(
                a.into_iter()
                    .map(|i| match i {
                        toml::Value::String(s) => Ok(s),
                        _ => Err(format!(
                            "--values {}: `{k}`: list items must be strings",
                            path.display()
                        )),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            toml::Value::Integer(i) => Value::String(i.to_string()),
            toml::Value::Boolean(b) => Value::String(b.to_string()),
            _ => {
                return Err(format!(
                    "--values {}: `{k}` must be a string or a list of strings",
                    path.display()
                ));
            }
        };
        out.insert(k, v);
    }
    Ok(out)
}

/// Resolves every value of `specs` against the existing `.env`; one error
/// lists every value that is missing or invalid.
pub fn resolve(
    specs: &[ValueSpec],
    secrets: &[SecretSpec],
    env: &EnvFile,
    supplied: &Supplied,
    prompt: Option<Prompt<'_>>,
) -> Result<Resolved, InstallError> {
    let mut problems = Vec::new();
    let mut given: BTreeMap<String, Value> = BTreeMap::new();
    if let Some(f) = &supplied.file {
        match read_file(f) {
            Ok(m) => given.extend(m),
            Err(e) => problems.push(e),
        }
    }
    for s in &supplied.set {
        match s.split_once('=') {
            Some((k, v)) => {
                let v = match specs.iter().find(|sp| sp.name == k) {
                    Some(sp) => sp.parse_text(v),
                    None => Value::String(v.to_owned()),
                };
                given.insert(k.to_owned(), v);
            }
            None => problems.push(format!("--set `{}`: write NAME=VALUE", quote(s))),
        }
    }
    for k in given.keys() {
        if !specs.iter().any(|s| &s.name == k) {
            let known: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
            problems.push(format!(
                "{}: the bundle declares no such value (it declares: {})",
                quote(k),
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ));
        }
    }
    let mut out = Resolved::default();
    for spec in specs {
        let from_env = env.get(&spec.name).map(|t| spec.parse_text(&t));
        let v = given
            .remove(&spec.name)
            .or(from_env)
            .or_else(|| spec.default.clone())
            .or_else(|| prompt.and_then(|p| p(spec)).map(|t| spec.parse_text(&t)));
        let Some(v) = v else {
            problems.push(format!(
                "{}: required{}; pass --set {}=… or --values FILE",
                spec.name,
                spec.description
                    .as_ref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default(),
                spec.name
            ));
            continue;
        };
        if let Err(m) = check(spec, &v) {
            problems.push(format!("{}: {m}", spec.name));
            continue;
        }
        if env.get(&spec.name) != Some(v.env_form()) {
            out.changed.push(spec.name.clone());
        }
        out.values.insert(spec.name.clone(), v);
    }
    problems.extend(per_item_problems(specs, secrets, &out.values));
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(InstallError::Values(problems))
    }
}

/// The per-item secrets' keys of `values`, checked one to one.
fn per_item_problems(
    specs: &[ValueSpec],
    secrets: &[SecretSpec],
    values: &BTreeMap<String, Value>,
) -> Vec<String> {
    let declared: Vec<&str> = specs
        .iter()
        .map(|s| s.name.as_str())
        .chain(secrets.iter().map(|s| s.name.as_str()))
        .collect();
    secrets
        .iter()
        .filter_map(|s| match values.get(s.per.as_deref()?) {
            Some(Value::List(items)) => Some(s.check_items(items, &declared)),
            _ => None,
        })
        .flatten()
        .collect()
}

fn check(spec: &ValueSpec, v: &Value) -> Result<(), String> {
    let empty_default = matches!(&spec.default, Some(Value::String(s)) if s.is_empty())
        || matches!(&spec.default, Some(Value::List(l)) if l.is_empty());
    let empty = matches!(v, Value::String(s) if s.is_empty())
        || matches!(v, Value::List(l) if l.is_empty());
    if empty && empty_default {
        return Ok(());
    }
    let longest = match v {
        Value::String(s) => s.len(),
        Value::List(l) => l.iter().map(String::len).max().unwrap_or(0),
    };
    if longest > MAX_VALUE {
        return Err(format!(
            "is {longest} bytes long; a value may hold at most {} KiB (pass a larger content as a `type = \"file\"` value)",
            MAX_VALUE / 1024
        ));
    }
    if spec.kind == ValueType::File {
        let Value::String(p) = v else {
            return Err("a file value is one path".into());
        };
        return match std::fs::metadata(p) {
            Ok(m) if m.is_file() && m.len() > MAX_FILE_VALUE => Err(format!(
                "{} is larger than {} MiB, the most a file value may hold",
                quote(p),
                MAX_FILE_VALUE / (1024 * 1024)
            )),
            Ok(m) if m.is_file() => Ok(()),
            Ok(_) => Err(format!("{} is not a regular file", quote(p))),
            Err(e) => Err(format!("{}: {e}", quote(p))),
        };
    }
    spec.check(v)
}

/// Where a file value's copy lives in the install directory.
fn file_dest(root: &Path, name: &str) -> PathBuf {
    root.join("values").join(name)
}

/// The values as the release sees them: a file value is the path of its
/// copy in the install directory (empty when none was given).
pub(super) fn placed(
    values: &BTreeMap<String, Value>,
    specs: &[ValueSpec],
    root: &Path,
) -> BTreeMap<String, Value> {
    values
        .iter()
        .map(|(k, v)| {
            let is_file = specs
                .iter()
                .any(|s| &s.name == k && s.kind == ValueType::File);
            match v {
                Value::String(p) if is_file && !p.is_empty() => (
                    k.clone(),
                    Value::String(file_dest(root, k).display().to_string()),
                ),
                v => (k.clone(), v.clone()),
            }
        })
        .collect()
}

/// Copies each file value into `root/values/NAME` (mode 0600, temp then
/// rename), unless it is that copy already.
pub(super) fn copy_files(
    values: &BTreeMap<String, Value>,
    specs: &[ValueSpec],
    root: &Path,
) -> Result<(), InstallError> {
    for s in specs.iter().filter(|s| s.kind == ValueType::File) {
        let Some(Value::String(src)) = values.get(&s.name) else {
            continue;
        };
        let dest = file_dest(root, &s.name);
        if src.is_empty() || Path::new(src) == dest {
            continue;
        }
        let bytes = read_bounded(Path::new(src), MAX_FILE_VALUE)
            .map_err(|e| InstallError::Values(vec![format!("{}: {}: {e}", s.name, quote(src))]))?;
        // A symlink planted as `values` would carry the write elsewhere;
        // one planted as `values/NAME` is replaced by the rename, never
        // written through.
        super::target::ensure_dir(&root.join("values"))?;
        super::target::write_private(&dest, &bytes, 0o600)?;
    }
    Ok(())
}

/// Keyed digests of `values`: SHA-256 over a per-install key and the
/// value, so that the record says which changed without revealing any.
pub(super) fn digests(values: &BTreeMap<String, Value>, key: &str) -> BTreeMap<String, String> {
    use sha2::{Digest as _, Sha256};
    values
        .iter()
        .map(|(k, v)| {
            let mut h = Sha256::new();
            h.update(key.as_bytes());
            h.update([0]);
            h.update(k.as_bytes());
            h.update([0]);
            h.update(v.env_form().as_bytes());
            (
                k.clone(),
                crate::digest::Digest::from_sha256(h).hex().to_owned(),
            )
        })
        .collect()
}

/// The names of the site values whose `.env` content differs from what
/// the release at `target` was installed with (compared by keyed digest).
pub fn changed_since_install(target: &Path, release: &super::Release) -> Vec<String> {
    if release.values.is_empty() {
        return Vec::new();
    }
    let key = super::target::read_nofollow(&target.join(".bale").join("values.key"))
        .ok()
        .flatten()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default();
    let env = super::secrets::read_env(target).unwrap_or_default();
    let now: BTreeMap<String, Value> = release
        .values
        .keys()
        .map(|k| {
            (
                k.clone(),
                Value::String(env.get(k).unwrap_or_default().to_owned()),
            )
        })
        .collect();
    let now = digests(&now, &key);
    release
        .values
        .iter()
        .filter(|(k, d)| now.get(*k) != Some(*d))
        .map(|(k, _)| k.clone())
        .collect()
}
