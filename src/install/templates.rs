//! Templates: overlays and compose files marked `template = true`, rendered
//! with minijinja (Jinja2 syntax, strict undefined) from the site's values
//! and secrets. The bundle signs the template; the release records the
//! rendered file's digest.

use std::collections::BTreeMap;

use minijinja::{Environment, UndefinedBehavior};

use crate::spec::{BundleSpec, SecretSpec, Value, ValueType};

/// What every template sees.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// Values by name: strings, and lists.
    pub values: BTreeMap<String, Value>,
    /// Secrets by name; a per-item secret is a map from item to secret.
    pub secrets: BTreeMap<String, SecretValue>,
    /// `bundle.name`, `bundle.version`.
    pub bundle: (String, String),
    /// `images.<service>`: the reference each service is pinned to.
    pub images: BTreeMap<String, String>,
}

/// A secret's value, or one per list item.
#[derive(Clone, Debug)]
pub enum SecretValue {
    /// One value.
    One(String),
    /// Item → value.
    PerItem(BTreeMap<String, String>),
}

impl Context {
    /// Every secret value in the context, for finding them in output.
    pub fn secret_values(&self) -> Vec<&str> {
        let mut out = Vec::new();
        for v in self.secrets.values() {
            match v {
                SecretValue::One(s) => out.push(s.as_str()),
                SecretValue::PerItem(m) => out.extend(m.values().map(String::as_str)),
            }
        }
        out
    }

    fn to_value(&self) -> minijinja::Value {
        let mut m: BTreeMap<String, minijinja::Value> = BTreeMap::new();
        for (k, v) in &self.values {
            m.insert(
                k.clone(),
                match v {
                    Value::String(s) => minijinja::Value::from(s.clone()),
                    Value::List(l) => minijinja::Value::from(l.clone()),
                },
            );
        }
        for (k, v) in &self.secrets {
            m.insert(
                k.clone(),
                match v {
                    SecretValue::One(s) => minijinja::Value::from(s.clone()),
                    SecretValue::PerItem(map) => minijinja::Value::from(map.clone()),
                },
            );
        }
        let mut bundle = BTreeMap::new();
        bundle.insert("name", self.bundle.0.clone());
        bundle.insert("version", self.bundle.1.clone());
        m.insert("bundle".into(), minijinja::Value::from(bundle));
        m.insert("images".into(), minijinja::Value::from(self.images.clone()));
        minijinja::Value::from(m)
    }
}

/// Where a template failed: line, column (1-based, 0 when unknown) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, 0 when minijinja gives none.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

/// Renders `source` (the file `name`) with `ctx`.
pub fn render(name: &str, source: &str, ctx: &Context) -> Result<String, TemplateError> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Compose interpolates `$` in the files it reads: a value rendered into
    // a compose file passes through `| compose` to stay as given.
    env.add_filter("compose", |v: String| v.replace('$', "$$"));
    env.set_keep_trailing_newline(true);
    let locate = |e: minijinja::Error| {
        let line = e.line().unwrap_or(0);
        let column = e
            .range()
            .map(|r| {
                let start = r.start.min(source.len());
                let before = &source[..start];
                before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1
            })
            .unwrap_or(0);
        TemplateError {
            line,
            column,
            message: e
                .detail()
                .map_or_else(|| e.kind().to_string(), str::to_owned),
        }
    };
    env.add_template(name, source).map_err(locate)?;
    let t = env.get_template(name).map_err(locate)?;
    t.render(ctx.to_value()).map_err(locate)
}

/// The context `bale build` checks templates with: every declared value
/// with its default (or a placeholder), every secret as a placeholder.
pub fn placeholder_context(spec: &BundleSpec, images: BTreeMap<String, String>) -> Context {
    let mut values = BTreeMap::new();
    for v in &spec.values {
        // A placeholder that fits the pattern where one of a few does, so
        // that filters such as `|int` see a plausible value.
        let fitting = |first: &str| {
            [
                first,
                "placeholder",
                "example.org",
                "1024",
                "a",
                "admin@example.org",
                "true",
            ]
            .into_iter()
            .find(|c| v.pattern.as_ref().is_none_or(|p| p.is_match(c)))
            .unwrap_or("placeholder")
            .to_owned()
        };
        let val = match (&v.default, v.kind) {
            (Some(Value::List(l)), _) if !l.is_empty() => Value::List(l.clone()),
            (_, ValueType::List) => Value::List(vec![fitting("item-a"), fitting("item-b")]),
            (Some(Value::String(s)), _) if !s.is_empty() => Value::String(s.clone()),
            (_, ValueType::File) => Value::String("/placeholder/file".into()),
            _ => Value::String(
                v.choices
                    .first()
                    .cloned()
                    .unwrap_or_else(|| fitting("placeholder")),
            ),
        };
        values.insert(v.name.clone(), val);
    }
    let secrets = secret_context(&spec.secrets, &values, &mut |_| "placeholder-secret".into());
    Context {
        values,
        secrets,
        bundle: (spec.name.clone(), spec.version.to_string()),
        images,
    }
}

/// Secrets as templates see them, each value from `get` (by `.env` key).
pub fn secret_context(
    secrets: &[SecretSpec],
    values: &BTreeMap<String, Value>,
    get: &mut dyn FnMut(&str) -> String,
) -> BTreeMap<String, SecretValue> {
    let mut out = BTreeMap::new();
    for s in secrets {
        let v = match &s.per {
            None => SecretValue::One(get(&s.name)),
            Some(list) => {
                let items = match values.get(list) {
                    Some(Value::List(l)) => l.clone(),
                    _ => Vec::new(),
                };
                SecretValue::PerItem(
                    items
                        .iter()
                        .map(|i| (i.clone(), get(&s.key_for(i))))
                        .collect(),
                )
            }
        };
        out.insert(s.name.clone(), v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_lists_and_per_item_secrets_and_locates_errors() {
        let mut ctx = Context::default();
        ctx.values.insert(
            "TENANTS".into(),
            Value::List(vec!["a".into(), "b-2".into()]),
        );
        ctx.values
            .insert("DOMAIN".into(), Value::String("example.org".into()));
        let mut per = BTreeMap::new();
        per.insert("a".to_owned(), "sa".to_owned());
        per.insert("b-2".to_owned(), "sb".to_owned());
        ctx.secrets.insert("KEY".into(), SecretValue::PerItem(per));
        let out = render(
            "x",
            "{% for t in TENANTS %}{{ t }}.{{ DOMAIN }}={{ KEY[t] }}\n{% endfor %}",
            &ctx,
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(out, "a.example.org=sa\nb-2.example.org=sb\n");
        let e = render("x", "line one\n  {{ NOPE }}\n", &ctx)
            .err()
            .unwrap_or_else(|| panic!("rendered an undefined name"));
        assert_eq!((e.line, e.column), (2, 6), "{e:?}");
        let e = render("x", "{% for %}", &ctx)
            .err()
            .unwrap_or_else(|| panic!("syntax"));
        assert_eq!(e.line, 1);
    }
}
