//! rpm's ordering (`rpmvercmp`): alternating runs of digits and letters,
//! separators ignored, a digit run newer than a letter run, `~` older than
//! anything and `^` newer than the end; `[epoch:]version[-release]` compares
//! epoch, then version, then release.

use std::cmp::Ordering;

/// Compares two `[epoch:]version[-release]` strings.
pub(super) fn compare_evr(a: &str, b: &str) -> Ordering {
    let (ea, va, ra) = super::split_evr(a);
    let (eb, vb, rb) = super::split_evr(b);
    ea.cmp(&eb)
        .then_with(|| vercmp(va, vb))
        // A missing release is an empty one, as rpm's `rpmverCmp` has it.
        .then_with(|| vercmp(ra.unwrap_or(""), rb.unwrap_or("")))
}

/// rpm's segment comparison of one version or release field.
fn vercmp(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    let sep = |c: u8| !c.is_ascii_alphanumeric() && c != b'~' && c != b'^';
    loop {
        while i < a.len() && sep(a[i]) {
            i += 1;
        }
        while j < b.len() && sep(b[j]) {
            j += 1;
        }
        let (ca, cb) = (a.get(i).copied(), b.get(j).copied());
        if ca == Some(b'~') || cb == Some(b'~') {
            if ca != Some(b'~') {
                return Ordering::Greater;
            }
            if cb != Some(b'~') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        if ca == Some(b'^') || cb == Some(b'^') {
            return match (ca, cb) {
                (None, _) => Ordering::Less,
                (_, None) => Ordering::Greater,
                (Some(b'^'), Some(b'^')) => {
                    i += 1;
                    j += 1;
                    continue;
                }
                (Some(b'^'), _) => Ordering::Less,
                _ => Ordering::Greater,
            };
        }
        let (Some(ca), Some(_)) = (ca, cb) else {
            break;
        };
        let numeric = ca.is_ascii_digit();
        let run = |s: &[u8], k: &mut usize| {
            let start = *k;
            while *k < s.len()
                && if numeric {
                    s[*k].is_ascii_digit()
                } else {
                    s[*k].is_ascii_alphabetic()
                }
            {
                *k += 1;
            }
            start
        };
        let (sa, sb) = (run(a, &mut i), run(b, &mut j));
        if sb == j {
            // A digit run is newer than a letter run.
            return if numeric {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        let (mut x, mut y) = (&a[sa..i], &b[sb..j]);
        if numeric {
            while x.first() == Some(&b'0') {
                x = &x[1..];
            }
            while y.first() == Some(&b'0') {
                y = &y[1..];
            }
            match x.len().cmp(&y.len()) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        match x.cmp(y) {
            Ordering::Equal => {}
            o => return o,
        }
    }
    match (i < a.len(), j < b.len()) {
        (false, false) => Ordering::Equal,
        (true, _) => Ordering::Greater,
        (false, true) => Ordering::Less,
    }
}
