//! Which records apply to an installed package: the ecosystem names osv.dev
//! uses for each distribution release, and the range evaluation of the OSV
//! schema ("Evaluation" section) under the package manager's own ordering.

use std::cmp::Ordering;

use super::Affected;
use crate::packages::Purl;
use crate::versions::{Scheme, compare};

/// The OSV ecosystem of an OS package's purl (`pkg:deb/debian/…?distro=
/// debian-12` → `Debian:12`); `None` for a distribution osv.dev does not
/// publish, or a purl without its release.
pub fn ecosystem_of(purl: &Purl) -> Option<String> {
    let distro = purl.qualifiers.get("distro")?;
    let ns = purl.namespace.as_deref()?;
    let version = distro.strip_prefix(&format!("{ns}-"))?;
    let major = version.split('.').next()?;
    let major_minor = version.split('.').take(2).collect::<Vec<_>>().join(".");
    Some(match ns {
        "debian" => format!("Debian:{major}"),
        "alpine" => format!("Alpine:v{major_minor}"),
        "ubuntu" => format!("Ubuntu:{major_minor}"),
        "rocky" => format!("Rocky Linux:{major}"),
        "almalinux" => format!("AlmaLinux:{major}"),
        "rhel" => format!("Red Hat:enterprise_linux:{major}"),
        "mageia" => format!("Mageia:{major}"),
        "opensuse-leap" => format!("openSUSE:Leap {major_minor}"),
        "wolfi" => "Wolfi".to_owned(),
        "chainguard" => "Chainguard".to_owned(),
        _ => return None,
    })
}

/// Whether a record's ecosystem (`Ubuntu:22.04:LTS`, `Debian:12`,
/// `Debian`) covers the release `wanted` names (`Ubuntu:22.04`).
pub fn ecosystem_applies(record: &str, wanted: &str) -> bool {
    if record == wanted || record.starts_with(&format!("{wanted}:")) {
        return true;
    }
    // An ecosystem named without a release covers every release of it.
    let base = wanted.split(':').next().unwrap_or(wanted);
    record == base
}

/// Whether `version` is affected; then the version that fixes it, where a
/// range names one above `version`.
pub fn affected(a: &Affected, scheme: Scheme, version: &str) -> Option<Option<String>> {
    let cmp = |x: &str, y: &str| {
        // "0" is the start of every ordering.
        match (x == "0", y == "0") {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            _ => compare(scheme, x, y),
        }
    };
    let mut hit = a
        .versions
        .iter()
        .any(|v| compare(scheme, v, version) == Ordering::Equal);
    let mut fixed: Option<String> = None;
    for r in a.ranges.iter().filter(|r| r.kind == "ECOSYSTEM") {
        // The events in the ecosystem's order, bounded like every input.
        let mut events: Vec<(&str, u8)> = r
            .events
            .iter()
            .take(10_000)
            .filter_map(|e| {
                e.introduced
                    .as_deref()
                    .map(|v| (v, 0))
                    .or_else(|| e.fixed.as_deref().map(|v| (v, 1)))
                    .or_else(|| e.last_affected.as_deref().map(|v| (v, 2)))
            })
            .collect();
        events.sort_by(|x, y| cmp(x.0, y.0).then(x.1.cmp(&y.1)));
        let mut vulnerable = false;
        for (v, kind) in &events {
            match kind {
                0 if cmp(version, v) != Ordering::Less => vulnerable = true,
                1 if cmp(version, v) != Ordering::Less => vulnerable = false,
                2 if cmp(version, v) == Ordering::Greater => vulnerable = false,
                _ => {}
            }
        }
        if vulnerable {
            hit = true;
            // The lowest fix above the installed version.
            fixed = events
                .iter()
                .filter(|(v, k)| *k == 1 && cmp(version, v) == Ordering::Less)
                .map(|(v, _)| (*v).to_owned())
                .next();
        }
    }
    hit.then_some(fixed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::osv::{Event, Range};

    fn range(events: &[(&str, &str)]) -> Affected {
        Affected {
            package: None,
            ranges: vec![Range {
                kind: "ECOSYSTEM".into(),
                events: events
                    .iter()
                    .map(|(k, v)| Event {
                        introduced: (*k == "introduced").then(|| (*v).into()),
                        fixed: (*k == "fixed").then(|| (*v).into()),
                        last_affected: (*k == "last_affected").then(|| (*v).into()),
                        limit: None,
                    })
                    .collect(),
            }],
            versions: vec![],
            severity: vec![],
            ecosystem_specific: None,
            database_specific: None,
        }
    }

    #[test]
    fn ranges_with_several_events_follow_the_ecosystem_ordering() {
        // Affected from the start until 1.0-3, and again from 2.0 until 2.0-2.
        let a = range(&[
            ("introduced", "0"),
            ("fixed", "1.0-3"),
            ("introduced", "2.0"),
            ("fixed", "2.0-2"),
        ]);
        assert_eq!(
            affected(&a, Scheme::Dpkg, "1.0-2"),
            Some(Some("1.0-3".into()))
        );
        assert_eq!(affected(&a, Scheme::Dpkg, "1.0-3"), None);
        assert_eq!(affected(&a, Scheme::Dpkg, "1.5"), None);
        assert_eq!(
            affected(&a, Scheme::Dpkg, "2.0-1"),
            Some(Some("2.0-2".into()))
        );
        assert_eq!(
            affected(&a, Scheme::Dpkg, "1:0.1"),
            None,
            "an epoch is newer"
        );
        let la = range(&[("introduced", "3.1.0-r0"), ("last_affected", "3.1.4-r5")]);
        assert_eq!(affected(&la, Scheme::Apk, "3.1.4-r5"), Some(None));
        assert_eq!(affected(&la, Scheme::Apk, "3.1.4-r6"), None);
    }

    #[test]
    fn ecosystems_follow_osv_dev_names() {
        let p = Purl::parse("pkg:apk/alpine/libssl3@3.1.4-r5?distro=alpine-3.19.1").unwrap();
        assert_eq!(ecosystem_of(&p).as_deref(), Some("Alpine:v3.19"));
        let u = Purl::parse("pkg:deb/ubuntu/x@1?distro=ubuntu-22.04").unwrap();
        assert!(ecosystem_applies(
            "Ubuntu:22.04:LTS",
            &ecosystem_of(&u).unwrap()
        ));
        assert!(!ecosystem_applies("Debian:11", "Debian:12"));
        assert!(ecosystem_applies("Debian", "Debian:12"));
        assert!(!ecosystem_applies("Debian:12", "Alpine:v3.19"));
    }
}
