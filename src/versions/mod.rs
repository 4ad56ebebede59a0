//! The version orderings of the OS package managers whose databases bale
//! reads: dpkg's (Debian, Ubuntu), apk's (Alpine) and rpm's (Fedora, RHEL
//! and its rebuilds). A vulnerability's "fixed in" only means something
//! under the ordering of the distribution that shipped the package, and
//! none of the three is semver: `1:1.0 > 2.0` for dpkg, `1.0_rc1 < 1.0`
//! for apk, `1.0~rc1 < 1.0` for dpkg and rpm.
//!
//! Hand-written (no maintained crate covers all three): each file follows
//! the package manager's own comparison, and tests/versions.rs checks it
//! against `dpkg --compare-versions` and rpm's `rpm.vercmp` for many pairs.

use std::cmp::Ordering;

mod apk;
mod dpkg;
mod rpm;

/// Which package manager's ordering a version follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// dpkg: `[epoch:]upstream[-revision]`.
    Dpkg,
    /// apk: `1.2.3a_rc1_p2-r4`.
    Apk,
    /// rpm: `[epoch:]version[-release]`.
    Rpm,
}

/// `[epoch:]rest[-release]` → (epoch, rest, release): the shape dpkg's
/// and rpm's versions share. An epoch is digits before the first `:`; the
/// release is what follows the last `-`.
fn split_evr(v: &str) -> (u64, &str, Option<&str>) {
    let v = v.trim();
    let (epoch, rest) = match v.split_once(':') {
        Some((e, r)) if !e.is_empty() && e.bytes().all(|c| c.is_ascii_digit()) => {
            (e.parse().unwrap_or(u64::MAX), r)
        }
        _ => (0, v),
    };
    match rest.rsplit_once('-') {
        Some((ver, rel)) => (epoch, ver, Some(rel)),
        None => (epoch, rest, None),
    }
}

/// Compares two versions under `scheme`.
pub fn compare(scheme: Scheme, a: &str, b: &str) -> Ordering {
    match scheme {
        Scheme::Dpkg => dpkg::compare(a, b),
        Scheme::Apk => apk::compare(a, b),
        Scheme::Rpm => rpm::compare_evr(a, b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::{Equal, Greater, Less};

    #[test]
    fn dpkg_orders_epochs_tildes_and_revisions() {
        for (a, b, o) in [
            ("1:1.0", "2.0", Greater),
            ("1.0~rc1", "1.0", Less),
            ("1.0-1", "1.0-2", Less),
            ("1.0", "1.0-0", Equal),
            ("2.36-9+deb12u4", "2.36-9+deb12u10", Less),
            ("1.2.3", "1.2.3a", Less),
            ("0:1.0", "1.0", Equal),
        ] {
            assert_eq!(compare(Scheme::Dpkg, a, b), o, "{a} vs {b}");
        }
    }

    #[test]
    fn rpm_orders_epochs_tildes_carets_and_releases() {
        for (a, b, o) in [
            ("1:3.0.7-25.el9_3", "3.0.8-1.el9", Greater),
            ("1.0~rc1", "1.0", Less),
            ("1.0^git1", "1.0", Greater),
            ("1.0^git1", "1.0.1", Less),
            ("1.0a", "1.0", Greater),
            ("1.01", "1.1", Equal),
            ("3.0.7-24.el9", "3.0.7-25.el9_3", Less),
        ] {
            assert_eq!(compare(Scheme::Rpm, a, b), o, "{a} vs {b}");
        }
    }
}
