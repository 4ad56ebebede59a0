//! apk's ordering (apk-tools' `apk_version_compare`): a version is read as
//! a sequence of typed tokens: dotted numbers, one letter, `_suffix`es with
//! optional numbers, and `-rN`. Pre-release suffixes (`alpha`, `beta`,
//! `pre`, `rc`) sort before the bare version, post-release ones (`cvs`,
//! `svn`, `git`, `hg`, `p`) after it; a number after a dot that starts with
//! `0` compares as a fraction (`1.02 < 1.1`). Where the token types differ
//! the one that goes on is newer, except a pre-release suffix; a version
//! that breaks the grammar compares by what could be read.

use std::cmp::Ordering;

/// Token types in grammar order: a token may only be followed by one of a
/// later type (or the exceptions in `next`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Invalid,
    DigitOrZero,
    Digit,
    Letter,
    Suffix,
    SuffixNo,
    RevisionNo,
    End,
}

const PRE: [&str; 4] = ["alpha", "beta", "pre", "rc"];
const POST: [&str; 5] = ["cvs", "svn", "git", "hg", "p"];

struct Reader<'a> {
    s: &'a [u8],
    kind: Kind,
}

impl Reader<'_> {
    /// Reads the token of the current kind; returns its value and moves
    /// the kind on to what follows.
    fn token(&mut self) -> i64 {
        if self.s.is_empty() {
            self.kind = Kind::End;
            return 0;
        }
        let mut value: i64 = 0;
        let mut used = 0;
        let mut then = None;
        match self.kind {
            Kind::DigitOrZero if self.s[0] == b'0' => {
                // Leading zeros: the more there are, the smaller.
                while used < self.s.len() && self.s[used] == b'0' {
                    used += 1;
                }
                value = -(used as i64);
                then = Some(Kind::Digit);
            }
            Kind::DigitOrZero | Kind::Digit | Kind::SuffixNo | Kind::RevisionNo => {
                while used < self.s.len() && self.s[used].is_ascii_digit() {
                    value = value
                        .saturating_mul(10)
                        .saturating_add(i64::from(self.s[used] - b'0'));
                    used += 1;
                }
            }
            Kind::Letter => {
                value = i64::from(self.s[0]);
                used = 1;
            }
            Kind::Suffix => {
                let starts = |w: &str| self.s.starts_with(w.as_bytes());
                if let Some(n) = PRE.iter().position(|w| starts(w)) {
                    value = n as i64 - PRE.len() as i64;
                    used = PRE[n].len();
                } else if let Some(n) = POST.iter().position(|w| starts(w)) {
                    value = n as i64;
                    used = POST[n].len();
                } else {
                    self.kind = Kind::Invalid;
                    return -1;
                }
            }
            Kind::Invalid | Kind::End => {
                self.kind = Kind::Invalid;
                return -1;
            }
        }
        self.s = &self.s[used..];
        if self.s.is_empty() {
            self.kind = Kind::End;
        } else if let Some(k) = then {
            self.kind = k;
        } else {
            self.next();
        }
        value
    }

    /// Decides the next token's kind from the separator or character ahead.
    fn next(&mut self) {
        let c = self.s[0];
        let n = if matches!(self.kind, Kind::Digit | Kind::DigitOrZero) && c.is_ascii_lowercase() {
            Kind::Letter
        } else if self.kind == Kind::Letter && c.is_ascii_digit() {
            Kind::Digit
        } else if self.kind == Kind::Suffix && c.is_ascii_digit() {
            Kind::SuffixNo
        } else {
            let n = match c {
                b'.' => Kind::DigitOrZero,
                b'_' => Kind::Suffix,
                b'-' if self.s.get(1) == Some(&b'r') => {
                    self.s = &self.s[1..];
                    Kind::RevisionNo
                }
                _ => Kind::Invalid,
            };
            self.s = &self.s[1..];
            n
        };
        let allowed = n >= self.kind
            || (n == Kind::DigitOrZero && self.kind == Kind::Digit)
            || (n == Kind::Suffix && self.kind == Kind::SuffixNo)
            || (n == Kind::Digit && self.kind == Kind::Letter);
        self.kind = if allowed { n } else { Kind::Invalid };
    }
}

/// Compares two apk versions.
pub(super) fn compare(a: &str, b: &str) -> Ordering {
    let mut x = Reader {
        s: a.trim().as_bytes(),
        kind: Kind::Digit,
    };
    let mut y = Reader {
        s: b.trim().as_bytes(),
        kind: Kind::Digit,
    };
    let (mut xv, mut yv) = (0, 0);
    while x.kind == y.kind && x.kind != Kind::End && x.kind != Kind::Invalid && xv == yv {
        xv = x.token();
        yv = y.token();
    }
    match xv.cmp(&yv) {
        Ordering::Equal => {}
        o => return o,
    }
    if x.kind == y.kind {
        return Ordering::Equal;
    }
    // Equal so far: the one that goes on is newer, unless what follows
    // is a pre-release suffix.
    let pre = |r: &Reader| {
        r.kind == Kind::Suffix
            && Reader {
                s: r.s,
                kind: Kind::Suffix,
            }
            .token()
                < 0
    };
    if pre(&x) {
        return Ordering::Less;
    }
    if pre(&y) {
        return Ordering::Greater;
    }
    y.kind.cmp(&x.kind)
}
