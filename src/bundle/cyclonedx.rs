//! CycloneDX 1.5 JSON, made from the bundle's signed SPDX document, so the
//! two formats can never disagree: SPDX's CONTAINS relationships become
//! CycloneDX's nested `components` (bundle → images and files, image → its
//! packages), SPDX's checksums `hashes`, suppliers and licences map
//! across, and an SPDX `LicenseRef-` becomes a named licence carrying the
//! database's own words. Deterministic like its source: the serial number
//! is derived from the SPDX document's namespace, the time is its own.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::digest::Digest;

/// The CycloneDX document for an SPDX document bale wrote; `None` when
/// `spdx` is not one.
pub fn from_spdx(spdx: &[u8]) -> Option<Vec<u8>> {
    let doc: Value = serde_json::from_slice(spdx).ok()?;
    let packages = doc["packages"].as_array()?;
    let by_id: BTreeMap<&str, &Value> = packages
        .iter()
        .chain(doc["files"].as_array().map_or(&[][..], Vec::as_slice))
        .filter_map(|p| Some((p["SPDXID"].as_str()?, p)))
        .collect();
    let children = crate::bundle::sbom::contains(&doc);
    let extracted: BTreeMap<&str, &str> = doc["hasExtractedLicensingInfos"]
        .as_array()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .filter_map(|x| Some((x["licenseId"].as_str()?, x["extractedText"].as_str()?)))
        .collect();
    let bundle = by_id.get("SPDXRef-Bundle")?;
    let ctx = Context {
        by_id: &by_id,
        children: &children,
        extracted: &extracted,
    };
    let components: Vec<Value> = children
        .get("SPDXRef-Bundle")
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .filter_map(|id| ctx.component(id, 1))
        .collect();
    let namespace = doc["documentNamespace"].as_str().unwrap_or_default();
    let mut top = ctx.component("SPDXRef-Bundle", 0)?;
    if let Some(t) = top.as_object_mut() {
        t.insert("type".into(), json!("application"));
    }
    let bom = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": serial(namespace),
        "version": 1,
        "metadata": {
            "timestamp": doc["creationInfo"]["created"],
            "tools": {"components": [{
                "type": "application",
                "name": "bale",
                "version": env!("CARGO_PKG_VERSION"),
            }]},
            "component": top,
            "supplier": supplier(&bundle["supplier"]).unwrap_or(Value::Null),
        },
        "components": components,
    });
    let mut bom = bom;
    if let Some(m) = bom["metadata"].as_object_mut()
        && m["supplier"].is_null()
    {
        m.remove("supplier");
    }
    let mut out = serde_json::to_vec_pretty(&bom).ok()?;
    out.push(b'\n');
    Some(out)
}

struct Context<'a> {
    by_id: &'a BTreeMap<&'a str, &'a Value>,
    children: &'a BTreeMap<&'a str, Vec<&'a str>>,
    extracted: &'a BTreeMap<&'a str, &'a str>,
}

impl Context<'_> {
    /// The component for SPDX element `id`, with what it contains nested
    /// (`depth` bounds the nesting: bundle → image → package).
    fn component(&self, id: &str, depth: u8) -> Option<Value> {
        let p = self.by_id.get(id)?;
        let mut c = Map::new();
        let is_file = p.get("fileName").is_some();
        let kind = match p["primaryPackagePurpose"].as_str() {
            _ if is_file => "file",
            Some("CONTAINER") => "container",
            Some("APPLICATION") => "application",
            _ => "library",
        };
        c.insert("type".into(), json!(kind));
        c.insert("bom-ref".into(), json!(id));
        let name = if is_file {
            p["fileName"].as_str().map(|n| n.trim_start_matches("./"))
        } else {
            p["name"].as_str()
        };
        c.insert("name".into(), json!(name?));
        if let Some(v) = p["versionInfo"].as_str() {
            c.insert("version".into(), json!(v));
        }
        if let Some(s) = supplier(&p["supplier"]) {
            c.insert("supplier".into(), s);
        }
        if let Some(l) = self.licenses(&p["licenseDeclared"]) {
            c.insert("licenses".into(), l);
        }
        let hashes: Vec<Value> = p["checksums"]
            .as_array()
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .filter_map(|h| {
                let alg = match h["algorithm"].as_str()? {
                    "SHA1" => "SHA-1",
                    "SHA256" => "SHA-256",
                    _ => return None,
                };
                Some(json!({"alg": alg, "content": h["checksumValue"]}))
            })
            .collect();
        if !hashes.is_empty() {
            c.insert("hashes".into(), Value::Array(hashes));
        }
        if let Some(purl) = super::sbom::purl_of(p) {
            c.insert("purl".into(), json!(purl));
        }
        if let Some(comment) = p["comment"].as_str() {
            c.insert(
                "properties".into(),
                json!([{"name": "bale:comment", "value": comment}]),
            );
        }
        if depth > 0
            && let Some(kids) = self.children.get(id)
        {
            let nested: Vec<Value> = kids
                .iter()
                .filter_map(|k| self.component(k, depth - 1))
                .collect();
            if !nested.is_empty() {
                c.insert("components".into(), Value::Array(nested));
            }
        }
        Some(Value::Object(c))
    }

    /// SPDX's declared licence as CycloneDX licences.
    fn licenses(&self, declared: &Value) -> Option<Value> {
        let d = declared
            .as_str()
            .filter(|d| *d != "NOASSERTION" && *d != "NONE")?;
        Some(match self.extracted.get(d) {
            Some(text) => json!([{"license": {"name": text}}]),
            None => json!([{"expression": d}]),
        })
    }
}

/// `Organization: X` → `{"name": "X"}`.
fn supplier(v: &Value) -> Option<Value> {
    let s = v.as_str()?;
    let name = s
        .strip_prefix("Organization: ")
        .or_else(|| s.strip_prefix("Person: "))?;
    Some(json!({"name": name}))
}

/// A UUID (version 5 layout) derived from the SPDX document's namespace.
fn serial(namespace: &str) -> String {
    let h = Digest::of(namespace.as_bytes());
    let x = h.hex();
    let variant = match &x[16..17] {
        "0" | "4" | "8" | "c" => "8",
        "1" | "5" | "9" | "d" => "9",
        "2" | "6" | "a" | "e" => "a",
        _ => "b",
    };
    format!(
        "urn:uuid:{}-{}-5{}-{variant}{}-{}",
        &x[0..8],
        &x[8..12],
        &x[13..16],
        &x[17..20],
        &x[20..32]
    )
}
