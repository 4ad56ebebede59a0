//! Names bundle.toml gives: the bundle's and environment variables'.

pub(super) fn valid_name(s: &str) -> bool {
    crate::validate::bundle_name(s).is_ok()
}

pub(super) fn valid_env_name(s: &str) -> bool {
    s.bytes()
        .next()
        .is_some_and(|b| b.is_ascii_uppercase() || b == b'_')
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}
