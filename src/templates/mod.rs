//! Templates: overlays and compose files marked `template = true`, rendered
//! with minijinja (Jinja2 syntax, strict undefined) from the site's values
//! and secrets. The bundle signs the template; the release records the
//! rendered file's digest.

mod isolate;

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

/// The most a template may write: as large as a template may be.
pub const MAX_RENDERED: usize = 16 * 1024 * 1024;

/// The steps (minijinja instructions) one render may take. A template of
/// the real stacks takes a few thousand; a loop of a million iterations is
/// refused instead of running for minutes.
pub const FUEL: u64 = 20_000_000;

/// What a template is rendered into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A file compose does not read.
    Plain,
    /// The compose file: compose interpolates `$` in it, so every value an
    /// expression writes has `$` doubled and stays as given.
    Compose,
}

/// A writer that refuses to grow past [`MAX_RENDERED`].
struct Bounded {
    out: Vec<u8>,
    over: bool,
    written: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl std::io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.out.len() + buf.len() > MAX_RENDERED {
            self.over = true;
            return Err(std::io::Error::other("output bound"));
        }
        self.out.extend_from_slice(buf);
        self.written
            .store(self.out.len(), std::sync::atomic::Ordering::Relaxed);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Renders `source` (the file `name`) with `ctx`, within [`FUEL`] steps,
/// [`MAX_RENDERED`] bytes of output and, in a child process,
/// [`isolate::RENDER_MEMORY`] of memory.
pub fn render(
    name: &str,
    source: &str,
    ctx: &Context,
    kind: Kind,
) -> Result<String, TemplateError> {
    isolate::isolated(|| render_here(name, source, ctx, kind))
}

/// [`render`] in this process: bounded in steps and output only.
fn render_here(
    name: &str,
    source: &str,
    ctx: &Context,
    kind: Kind,
) -> Result<String, TemplateError> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    // In the compose file every expression is escaped below (whatever its
    // filters, `tojson` included), so `| compose` has nothing left to do
    // there; elsewhere it escapes by hand as it always has.
    env.add_filter("compose", move |v: String| match kind {
        Kind::Compose => v,
        Kind::Plain => v.replace('$', "$$"),
    });
    // Every expression's output passes here: it is refused before it is
    // written when it would take the file past the bound, so that the
    // error names the line (the writer below catches literal text).
    let written = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = written.clone();
    env.set_formatter(move |out, _state, value| {
        let text = value.to_string();
        let text = match kind {
            Kind::Compose => text.replace('$', "$$"),
            Kind::Plain => text,
        };
        if seen.load(std::sync::atomic::Ordering::Relaxed) + text.len() > MAX_RENDERED {
            return Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                "output bound",
            ));
        }
        out.write_str(&text)
            .map_err(|_| minijinja::Error::from(minijinja::ErrorKind::WriteFailure))
    });
    env.set_keep_trailing_newline(true);
    let locate = |e: minijinja::Error| {
        let line = e.line().unwrap_or(0);
        let column = e
            .range()
            .map(|r| {
                let start = r.start.min(source.len());
                let before = source.get(..start).unwrap_or_default();
                before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1
            })
            .unwrap_or(0);
        let message = match e.kind() {
            minijinja::ErrorKind::OutOfFuel => format!(
                "the template takes more than {FUEL} steps to render (a loop without end, or one far too large)"
            ),
            _ => e
                .detail()
                .map_or_else(|| e.kind().to_string(), str::to_owned),
        };
        TemplateError {
            line,
            column,
            message,
        }
    };
    env.add_template(name, source).map_err(locate)?;
    let t = env.get_template(name).map_err(locate)?;
    let mut out = Bounded {
        out: Vec::new(),
        over: false,
        written,
    };
    let rendered = t.render_captured_to(ctx.to_value(), &mut out);
    let bound = |e: &minijinja::Error| e.detail() == Some("output bound");
    if out.over || rendered.as_ref().err().is_some_and(bound) {
        let mut e = rendered.err().map(locate).unwrap_or(TemplateError {
            line: 0,
            column: 0,
            message: String::new(),
        });
        e.message = format!(
            "the rendered file would be larger than {} MiB",
            MAX_RENDERED / (1024 * 1024)
        );
        return Err(e);
    }
    rendered.map_err(locate)?;
    String::from_utf8(out.out).map_err(|_| TemplateError {
        line: 0,
        column: 0,
        message: "the rendered file is not UTF-8".into(),
    })
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
            Kind::Plain,
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(out, "a.example.org=sa\nb-2.example.org=sb\n");
        let e = render("x", "line one\n  {{ NOPE }}\n", &ctx, Kind::Plain)
            .err()
            .unwrap_or_else(|| panic!("rendered an undefined name"));
        assert_eq!((e.line, e.column), (2, 6), "{e:?}");
        let e = render("x", "{% for %}", &ctx, Kind::Plain)
            .err()
            .unwrap_or_else(|| panic!("syntax"));
        assert_eq!(e.line, 1);
    }

    #[test]
    fn an_expansion_bomb_stops_at_the_output_bound_naming_its_line() {
        let bomb = "ok\n{% for i in range(100000) %}{{ 'x' * 100000 }}{% endfor %}\n";
        let e = render("bomb", bomb, &Context::default(), Kind::Plain)
            .err()
            .unwrap_or_else(|| panic!("a bomb rendered"));
        assert_eq!(e.line, 2, "{e:?}");
        assert!(e.message.contains("larger than 16 MiB"), "{e:?}");
    }

    #[test]
    fn an_endless_loop_runs_out_of_fuel_naming_its_line() {
        let spin =
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}";
        let e = render("spin", spin, &Context::default(), Kind::Plain)
            .err()
            .unwrap_or_else(|| panic!("spun to the end"));
        assert_eq!(e.line, 1, "{e:?}");
        assert!(e.message.contains("steps"), "{e:?}");
    }

    #[test]
    fn strings_joined_past_the_memory_bound_stop_the_render_not_bale() {
        let join = "{% set s = 'x' * 100000000 %}{% set s = s ~ s %}{% set s = s ~ s %}\
                    {% set s = s ~ s %}{% set s = s ~ s %}{% set s = s ~ s %}{{ s | length }}";
        let e = render("join", join, &Context::default(), Kind::Plain)
            .err()
            .unwrap_or_else(|| panic!("3.2 GB of string rendered"));
        assert!(e.message.contains("memory"), "{e:?}");
    }

    #[test]
    fn values_in_a_compose_template_are_not_interpolated_by_compose() {
        let mut ctx = Context::default();
        ctx.values
            .insert("V".into(), Value::String("${API_TOKEN} $$ $x".into()));
        let out = render(
            "c",
            "a: {{ V }}\nb: {{ V | compose }}\nc: \"{{ V | safe }}\"\nd: $${LIT}\n",
            &ctx,
            Kind::Compose,
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            out,
            "a: $${API_TOKEN} $$$$ $$x\nb: $${API_TOKEN} $$$$ $$x\nc: \"$${API_TOKEN} $$$$ $$x\"\nd: $${LIT}\n"
        );
        let plain = render("p", "{{ V }}", &ctx, Kind::Plain).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(plain, "${API_TOKEN} $$ $x");
    }
}
