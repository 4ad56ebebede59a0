//! `bale keygen`: a minisign-compatible key pair for signing bundles.

use std::path::PathBuf;

use crate::error::Error;
use crate::sign::{self, SignError};

/// What `bale keygen` is asked to write.
#[derive(Clone, Debug)]
pub struct KeygenOptions {
    /// The public key file.
    pub public_key: PathBuf,
    /// The secret key file (mode 0600).
    pub secret_key: PathBuf,
    /// Overwrite existing files.
    pub force: bool,
}

/// Writes a new key pair, its secret key encrypted with `password` when
/// given (an empty one is refused: `None` is the unencrypted key); returns
/// the key ID.
pub fn run(opts: &KeygenOptions, password: Option<&str>) -> Result<String, Error> {
    if password == Some("") {
        return Err(SignError::Keygen(
            "empty password: pass --no-password for an unencrypted key".into(),
        )
        .into());
    }
    let keys = sign::generate(password)?;
    sign::write_keys(&keys, &opts.public_key, &opts.secret_key, opts.force)?;
    Ok(keys.key_id)
}
