//! OpenVEX statements (github.com/openvex/spec): what a supplier or the
//! site says about a vulnerability in a product: `not_affected` (with a
//! justification or an impact statement), `affected`, `fixed`,
//! `under_investigation`. `bale scan` applies them to its findings; the
//! last statement that matches a finding wins, in the order the documents
//! were given (the bundle's own first, then `--vex` files).
//!
//! Both the v0.2 form (`vulnerability: {name, aliases}`, products as
//! objects with `@id` and `subcomponents`) and the earlier one (strings)
//! are read.

use serde::{Deserialize, Serialize};

use crate::packages::Purl;

/// Largest VEX document read.
pub const MAX_VEX_BYTES: u64 = 16 * 1024 * 1024;
/// Most statements one document may hold.
const MAX_STATEMENTS: usize = 100_000;

/// The justifications OpenVEX defines for `not_affected`.
const JUSTIFICATIONS: &[&str] = &[
    "component_not_present",
    "vulnerable_code_not_present",
    "vulnerable_code_not_in_execute_path",
    "vulnerable_code_cannot_be_controlled_by_adversary",
    "inline_mitigations_already_exist",
];

/// One statement, as bale applies it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Statement {
    /// The vulnerability's name and aliases.
    #[serde(skip)]
    pub names: Vec<String>,
    /// Products (`@id`s) with their subcomponents; empty: every product.
    #[serde(skip)]
    pub products: Vec<(String, Vec<String>)>,
    /// `not_affected`, `affected`, `fixed` or `under_investigation`.
    pub status: String,
    /// Why it is not affected, in OpenVEX's words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
    /// The author's explanation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impact_statement: Option<String>,
    /// What to do (for `affected`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action_statement: Option<String>,
    /// Which document it came from (`bundle` or the file given).
    pub source: String,
}

impl Statement {
    /// Whether the statement settles the finding: nothing to act on.
    pub fn resolves(&self) -> bool {
        self.status == "not_affected" || self.status == "fixed"
    }
}

/// Errors reading a VEX document.
#[derive(Debug, thiserror::Error)]
#[error("VEX {source_name}: {reason}")]
pub struct VexError {
    /// The document.
    pub source_name: String,
    /// What is wrong, never quoting its bytes.
    pub reason: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Vulnerability {
    Name(String),
    Object {
        #[serde(default)]
        name: Option<String>,
        #[serde(rename = "@id", default)]
        id: Option<String>,
        #[serde(default)]
        aliases: Vec<String>,
    },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Product {
    Id(String),
    Object {
        #[serde(rename = "@id", default)]
        id: Option<String>,
        #[serde(default)]
        subcomponents: Vec<Product>,
    },
}

impl Product {
    fn id(&self) -> Option<&str> {
        match self {
            Product::Id(s) => Some(s),
            Product::Object { id, .. } => id.as_deref(),
        }
    }
}

#[derive(Deserialize)]
struct RawStatement {
    vulnerability: Vulnerability,
    #[serde(default)]
    products: Vec<Product>,
    status: String,
    #[serde(default)]
    justification: Option<String>,
    #[serde(default)]
    impact_statement: Option<String>,
    #[serde(default)]
    action_statement: Option<String>,
}

#[derive(Deserialize)]
struct Document {
    #[serde(default)]
    statements: Vec<RawStatement>,
}

/// Reads an OpenVEX document; `source` names it in statements and errors.
pub fn parse(bytes: &[u8], source: &str) -> Result<Vec<Statement>, VexError> {
    let bad = |reason: String| VexError {
        source_name: source.to_owned(),
        reason,
    };
    if bytes.len() as u64 > MAX_VEX_BYTES {
        return Err(bad(format!("larger than {MAX_VEX_BYTES} bytes")));
    }
    let doc: Document = serde_json::from_slice(bytes).map_err(|e| {
        bad(format!(
            "not an OpenVEX document (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    if doc.statements.len() > MAX_STATEMENTS {
        return Err(bad(format!("more than {MAX_STATEMENTS} statements")));
    }
    let mut out = Vec::new();
    for (n, s) in doc.statements.into_iter().enumerate() {
        let at = n + 1;
        let names: Vec<String> = match s.vulnerability {
            Vulnerability::Name(n) => vec![n],
            Vulnerability::Object { name, id, aliases } => {
                name.into_iter().chain(id).chain(aliases).collect()
            }
        };
        if names.is_empty() {
            return Err(bad(format!("statement {at} names no vulnerability")));
        }
        if !["not_affected", "affected", "fixed", "under_investigation"]
            .contains(&s.status.as_str())
        {
            return Err(bad(format!(
                "statement {at}: status is none of OpenVEX's four"
            )));
        }
        if s.status == "not_affected" && s.justification.is_none() && s.impact_statement.is_none() {
            return Err(bad(format!(
                "statement {at}: not_affected needs a justification or an impact_statement"
            )));
        }
        if let Some(j) = &s.justification
            && !JUSTIFICATIONS.contains(&j.as_str())
        {
            return Err(bad(format!(
                "statement {at}: justification is none of OpenVEX's ({})",
                JUSTIFICATIONS.join(", ")
            )));
        }
        let products = s
            .products
            .iter()
            .filter_map(|p| {
                let subs = match p {
                    Product::Object { subcomponents, .. } => subcomponents
                        .iter()
                        .filter_map(|c| c.id().map(str::to_owned))
                        .collect(),
                    Product::Id(_) => Vec::new(),
                };
                Some((p.id()?.to_owned(), subs))
            })
            .collect();
        let field = |v: Option<String>| v.map(|t| crate::packages::field(&t));
        out.push(Statement {
            names,
            products,
            status: s.status,
            justification: s.justification,
            impact_statement: field(s.impact_statement),
            action_statement: field(s.action_statement),
            source: source.to_owned(),
        });
    }
    Ok(out)
}

/// Whether a product `@id` (a purl) names `purl`: same type, namespace and
/// name; its version, where given, equal; its qualifiers all present.
fn names(product: &str, purl: &str) -> bool {
    let (Some(p), Some(q)) = (Purl::parse(product), Purl::parse(purl)) else {
        return product == purl;
    };
    p.kind == q.kind
        && p.namespace == q.namespace
        && p.name == q.name
        && p.version
            .as_ref()
            .is_none_or(|v| Some(v) == q.version.as_ref())
        && p.qualifiers
            .iter()
            .all(|(k, v)| q.qualifiers.get(k) == Some(v))
}

/// The statement that applies to vulnerability `ids` (id and aliases) of
/// `package` in `image` (both purls): the last that matches.
pub fn applies<'a>(
    statements: &'a [Statement],
    ids: &[&str],
    image: &str,
    package: &str,
) -> Option<&'a Statement> {
    statements.iter().rev().find(|s| {
        s.names.iter().any(|n| ids.contains(&n.as_str()))
            && (s.products.is_empty()
                || s.products.iter().any(|(p, subs)| {
                    if subs.is_empty() {
                        names(p, package) || names(p, image)
                    } else {
                        names(p, image) && subs.iter().any(|c| names(c, package))
                    }
                }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_applies_by_alias_product_and_subcomponent() {
        let doc = br#"{"@context":"https://openvex.dev/ns/v0.2.0","statements":[
          {"vulnerability":{"name":"CVE-2023-5678"},"products":[{"@id":"pkg:oci/app","subcomponents":[{"@id":"pkg:apk/alpine/libssl3"}]}],
           "status":"not_affected","justification":"vulnerable_code_not_in_execute_path","impact_statement":"no DH"}]}"#;
        let s = parse(doc, "vex.json").unwrap();
        let img = "pkg:oci/app@sha256%3Aab?arch=amd64";
        let pkg = "pkg:apk/alpine/libssl3@3.1.4-r5?arch=x86_64";
        let hit = applies(&s, &["ALPINE-1", "CVE-2023-5678"], img, pkg).unwrap();
        assert!(hit.resolves());
        assert!(applies(&s, &["CVE-2023-5678"], img, "pkg:apk/alpine/musl@1").is_none());
        assert!(applies(&s, &["CVE-2023-5678"], "pkg:oci/other@x", pkg).is_none());
        assert!(
            parse(
                br#"{"statements":[{"vulnerability":"CVE-1","status":"not_affected"}]}"#,
                "x"
            )
            .is_err()
        );
        assert!(
            parse(
                br#"{"statements":[{"vulnerability":"CVE-1","status":"maybe"}]}"#,
                "x"
            )
            .is_err()
        );
    }
}
