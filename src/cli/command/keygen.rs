//! `bale keygen`.

use bale::ops::keygen::KeygenOptions;
use bale::sign::SignError;

use super::Run;
use crate::cli::output::Output;
use std::path::PathBuf;

/// `bale keygen`, resolved.
pub struct Keygen {
    /// Where the keys go.
    pub options: KeygenOptions,
    /// Leave the secret key unencrypted.
    pub no_password: bool,
    /// `BALE_SIGN_KEY_PASSWORD`, when set.
    pub password: Option<String>,
}

impl Keygen {
    /// The password: none with `--no-password`, else the environment's, else
    /// asked twice on a terminal.
    fn password(&self, out: &Output) -> Result<Option<String>, bale::Error> {
        if self.no_password {
            return Ok(None);
        }
        if let Some(p) = &self.password {
            return Ok(Some(p.clone()));
        }
        if !out.interactive {
            return Err(SignError::Keygen(
                "no password: set BALE_SIGN_KEY_PASSWORD, run on a terminal, or pass --no-password"
                    .into(),
            )
            .into());
        }
        let a = rpassword::prompt_password("Password for the new secret key: ").unwrap_or_default();
        let b = rpassword::prompt_password("Password (again): ").unwrap_or_default();
        if a != b {
            return Err(SignError::Keygen("passwords differ".into()).into());
        }
        Ok(Some(a))
    }
}

impl Keygen {
    /// From `bale keygen`'s flags and `BALE_SIGN_KEY_PASSWORD`.
    pub fn new(public_key: PathBuf, secret_key: PathBuf, no_password: bool, force: bool) -> Keygen {
        Keygen {
            options: KeygenOptions {
                public_key,
                secret_key,
                force,
            },
            no_password,
            password: std::env::var("BALE_SIGN_KEY_PASSWORD").ok(),
        }
    }
}

impl Run for Keygen {
    fn run(&self, out: &Output) -> Result<(), bale::Error> {
        let password = self.password(out)?;
        let key_id = bale::ops::keygen::run(&self.options, password.as_deref())?;
        errln!(
            "key {key_id}: public key {}, secret key {}{}",
            self.options.public_key.display(),
            self.options.secret_key.display(),
            if password.is_some() {
                " (encrypted)"
            } else {
                " (NOT encrypted)"
            }
        );
        Ok(())
    }
}
