//! The signing key a command signs with: `--sign-key`, else the key
//! itself in `BALE_SIGN_KEY`, or none with `--unsigned`; its password from
//! `BALE_SIGN_KEY_PASSWORD` or, on a terminal, a prompt.

use std::path::PathBuf;

use bale::sign::{SignError, SigningKey};

use super::output::Output;

/// Where a command's signing key comes from, as resolved from its flags
/// and the environment.
pub struct SignWith {
    /// `--sign-key PATH`.
    pub path: Option<PathBuf>,
    /// The key in `BALE_SIGN_KEY`, when set and not empty.
    pub env: Option<String>,
    /// `--unsigned`.
    pub unsigned: bool,
    /// `BALE_SIGN_KEY_PASSWORD`, when set.
    pub password: Option<String>,
}

impl SignWith {
    /// From the flags and this process's environment.
    pub fn resolve(path: Option<PathBuf>, unsigned: bool) -> SignWith {
        SignWith {
            path,
            env: std::env::var("BALE_SIGN_KEY")
                .ok()
                .filter(|k| !k.is_empty()),
            unsigned,
            password: std::env::var("BALE_SIGN_KEY_PASSWORD").ok(),
        }
    }

    /// The key, read (and decrypted) now; `None` for an unsigned build.
    pub fn key(&self, out: &Output) -> Result<Option<SigningKey>, bale::Error> {
        let (text, what) = match (&self.path, &self.env) {
            (Some(p), _) => (
                std::fs::read_to_string(p).map_err(|source| SignError::Read {
                    path: p.clone(),
                    source,
                })?,
                p.display().to_string(),
            ),
            (None, Some(k)) if !self.unsigned => (k.clone(), "BALE_SIGN_KEY".to_owned()),
            (None, _) if self.unsigned => return Ok(None),
            (None, _) => return Err(SignError::NoKey.into()),
        };
        let mut password = self.password.clone();
        if password.is_none() && SigningKey::is_encrypted(&text) && out.interactive {
            password = rpassword::prompt_password(format!("Password for {what}: ")).ok();
        }
        Ok(Some(SigningKey::from_box(
            &text,
            &what,
            password.as_deref(),
        )?))
    }
}
