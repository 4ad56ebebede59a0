//! The three package managers' version orderings, checked against the
//! package managers themselves: `dpkg --compare-versions` and rpm's own
//! EVR comparison (`rpm.ver`, through `rpm --eval`'s Lua), for every pair of a list of
//! real and tricky versions; apk's against pairs whose order apk-tools'
//! own test data states (no apk runs on Debian).

use std::cmp::Ordering;
use std::process::Command;

use bale::versions::{Scheme, compare};

/// Versions as Debian, Alpine and Fedora write them, and the corner cases
/// of each ordering.
const VERSIONS: &[&str] = &[
    "1.0",
    "1.0-1",
    "1.0-2",
    "1:0.9",
    "2:0.1",
    "0:1.0",
    "1.0~rc1",
    "1.0~~",
    "1.0~",
    "1.0a",
    "1.0.1",
    "1.00",
    "1.01",
    "1.1",
    "1.10",
    "1.9",
    "2.36-9+deb12u4",
    "2.36-9+deb12u10",
    "3.0.11-1~deb12u2",
    "3.0.15-1~deb12u1",
    "1.2.13.dfsg-1",
    "1.2.13.dfsg-1+b1",
    "252.30-1~deb12u2",
    "7.88.1-10+deb12u8",
    "1.0+git20230101",
    "1.0.0+dfsg",
    "1.0-1ubuntu1",
    "1.0-1ubuntu0.1",
    "3.0.7-25.el9_3",
    "3.0.7-24.el9",
    "1.0^git1",
    "1.0^",
    "20230101",
    "1.2.3.4.5",
    "a",
    "b1",
    "1.0-rc1",
    "1.0_rc1",
    "2.4.57",
    "2.4.62",
    "1.36.1-r15",
    "1.36.1-r2",
    "9.4p1",
    "9.4p2",
];

fn dpkg_says(a: &str, b: &str) -> Ordering {
    let ok = |op: &str| {
        Command::new("dpkg")
            .args(["--compare-versions", a, op, b])
            .status()
            .is_ok_and(|s| s.success())
    };
    if ok("lt") {
        Ordering::Less
    } else if ok("eq") {
        Ordering::Equal
    } else {
        Ordering::Greater
    }
}

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn dpkg_ordering_matches_dpkg_compare_versions_for_every_pair() {
    assert!(have("dpkg"), "dpkg is needed (Debian's dpkg package)");
    // dpkg refuses some strings as versions; those pairs are skipped by
    // asking it about equality with itself first.
    let valid: Vec<&str> = VERSIONS
        .iter()
        .copied()
        .filter(|v| {
            Command::new("dpkg")
                .args(["--validate-version", v])
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect();
    assert!(valid.len() > 30, "{valid:?}");
    let mut checked = 0;
    for a in &valid {
        for b in &valid {
            assert_eq!(
                compare(Scheme::Dpkg, a, b),
                dpkg_says(a, b),
                "dpkg: {a} vs {b}"
            );
            checked += 1;
        }
    }
    assert!(checked > 900, "{checked}");
}

#[test]
fn rpm_ordering_matches_rpms_own_evr_comparison_for_every_pair() {
    assert!(have("rpm"), "rpm is needed (Debian's rpm package)");
    // One rpm run answers every pair: its Lua compares rpm.ver objects.
    let quoted: Vec<String> = VERSIONS.iter().map(|v| format!("{v:?}")).collect();
    let lua = format!(
        "%{{lua: local v = {{{}}} for i = 1, #v do for j = 1, #v do local a, b = rpm.ver(v[i]), rpm.ver(v[j]) if a < b then print(\"-1 \") elseif a == b then print(\"0 \") else print(\"1 \") end end end}}",
        quoted.join(",")
    );
    let out = Command::new("rpm").args(["--eval", &lua]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answers: Vec<i32> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(answers.len(), VERSIONS.len() * VERSIONS.len());
    let mut n = 0;
    for a in VERSIONS {
        for b in VERSIONS {
            let said = answers[n].cmp(&0);
            assert_eq!(compare(Scheme::Rpm, a, b), said, "rpm: {a} vs {b}");
            n += 1;
        }
    }
}

#[test]
fn apk_ordering_matches_apk_tools_own_pairs() {
    // From apk-tools' test/version.data: each line is "a op b".
    let pairs = "2.34 > 0.1.0_alpha
23_foo > 4_beta
1.0 < 1.0bc
0.1.0_alpha = 0.1.0_alpha
0.1.0_alpha2 > 0.1.0_alpha
2.2.39-r1 > 1.0.4-r3
1.1 > 1.1_alpha1
1.2.1 > 1.2
1.2 < 1.3_alpha
0.7.0 < 0.8_beta1
3.10.18-r1 > 2.3.0b-r1
2.3.0b-r1 < 2.3.0b-r2
0.12.3 > 0.12
0.12 < 0.13_beta1
3.1_p16 < 3.1_p17
1.06-r6 < 006
006 > 1.0.0
1.2.2-r1 > 1.2.2
0.99.3.20040818 > 0.7
2.01.01_alpha10 > 0.94
3.0.20060720 < 20060720
2.5.1-r8 < 2.5.1a-r1
2.0.0_rc3-r1 > 1.5
0.10.0-r1 > 0.10.0
0.10.0 < 0.10.1_rc1
1.6d > 1.2.07.8
1.2.07.8 < 1.2.12.04
0.20070118 < 0.20070207_rc1
4.5_p1-r1 > 4.5_p1
0.9.8c-r1 < 0.9.8d
2.9.11_pre20051101-r3 > 2.9.11_pre20051101
1.7 < 1.7b
1.8.5 < 1.8.5_p2
0.9.28.1 < 087-r1
2.12r-r4 < 2.12r-r5
7.0.17 < 7.0.174
0.3.4_pre20061029 < 0.4.0
22.7-r1 < 22.7.3-r1
02.08.01b < 4.77
1.3-r0 < 1.3.1-r0
1.3_pre1-r1 < 1.3.2
1.0_p10-r0 > 1.0_p9-r0
0.1.0_alpha_pre2 < 0.1.0_alpha
1.0.0_pre20191002222144-r0 < 1.0.0_pre20210530193627-r0
1.36.1-r15 > 1.36.1-r2
3.1.4-r5 < 3.1.4-r6";
    for line in pairs.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        let want = match w[1] {
            "<" => Ordering::Less,
            ">" => Ordering::Greater,
            _ => Ordering::Equal,
        };
        assert_eq!(compare(Scheme::Apk, w[0], w[2]), want, "apk: {line}");
        assert_eq!(
            compare(Scheme::Apk, w[2], w[0]),
            want.reverse(),
            "apk reversed: {line}"
        );
    }
}
