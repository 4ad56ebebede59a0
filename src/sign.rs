//! Keys and signatures in minisign's format, so that the reference
//! `minisign` tool verifies what bale signs, and bale uses keys it made.
//!
//! Signing is deterministic (plain Ed25519, RFC 8032, over minisign's
//! BLAKE2b-512 prehash): the same key and manifest always give the same
//! signature bytes, so a signed bundle rebuilds byte for byte. The minisign
//! crate adds random noise to its signatures, so it is used here only to
//! generate and decrypt key files; verification uses minisign-verify.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use blake2::Digest as _;
use ed25519_dalek::Signer as _;

/// Errors about keys and signatures. None contains key material or a password.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// A key file to use could not be read (missing, unreadable): an input
    /// like a bundle, and the same exit code.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A key file could not be written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Not a minisign key of the expected kind.
    #[error("{what}: not a valid minisign {kind} key: {reason}")]
    BadKey {
        /// Where the key came from.
        what: String,
        /// `public` or `secret`.
        kind: &'static str,
        /// Why.
        reason: String,
    },
    /// An encrypted secret key and no password.
    #[error("{0}: the secret key is encrypted: set BALE_SIGN_KEY_PASSWORD")]
    NeedPassword(String),
    /// The password did not decrypt the key.
    #[error("{0}: cannot decrypt the secret key (wrong password?)")]
    WrongPassword(String),
    /// No key and no explicit `--unsigned`.
    #[error(
        "no signing key: pass --sign-key PATH or set BALE_SIGN_KEY (or --unsigned, to sign nothing)"
    )]
    NoKey,
    /// Key generation failed, or a file would be overwritten.
    #[error("{0}")]
    Keygen(String),
}

/// A secret key ready to sign.
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
    keynum: [u8; 8],
}

/// A public key ready to verify.
pub struct VerifyingKey {
    key: minisign_verify::PublicKey,
    keynum: [u8; 8],
    /// The Ed25519 public key itself, for signatures over raw bytes (DSSE).
    raw: [u8; 32],
}

/// The hex key ID minisign prints (`{:016X}` of the little-endian key number).
pub fn key_id(keynum: &[u8; 8]) -> String {
    format!("{:016X}", u64::from_le_bytes(*keynum))
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// The base64 payload of a minisign box: the first line that is not a comment.
fn payload(text: &str) -> Option<&str> {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
}

impl SigningKey {
    /// Reads a minisign secret key box (`text`, from `what`), decrypting it
    /// with `password` when it is encrypted.
    pub fn from_box(text: &str, what: &str, password: Option<&str>) -> Result<Self, SignError> {
        let bad = |reason: &str| SignError::BadKey {
            what: what.to_owned(),
            kind: "secret",
            reason: reason.to_owned(),
        };
        let raw = payload(text)
            .and_then(|p| b64().decode(p).ok())
            .ok_or_else(|| bad("no base64 key line"))?;
        // sig_alg(2) kdf_alg(2) chk_alg(2) salt(32) ops(8) mem(8) keynum(8) sk(64) chk(32)
        if raw.len() != 158 || &raw[..2] != b"Ed" {
            return Err(bad("unexpected length or algorithm"));
        }
        let encrypted = raw[2..4] != [0, 0];
        // An unencrypted key is read directly: the reference tool writes
        // some (`minisign -G -W`, 0.11) with an all-zero checksum, which the
        // minisign crate rejects. The public-half check below stands in.
        let bytes = if encrypted {
            let password = password.ok_or_else(|| SignError::NeedPassword(what.to_owned()))?;
            let sk_box =
                minisign::SecretKeyBox::from_string(text).map_err(|e| bad(&e.to_string()))?;
            // The decrypted key serialises in the same layout, secret in clear.
            sk_box
                .into_secret_key(Some(password.to_owned()))
                .map_err(|_| SignError::WrongPassword(what.to_owned()))?
                .to_bytes()
        } else {
            raw
        };
        if bytes.len() != 158 {
            return Err(bad("unexpected decrypted length"));
        }
        let mut keynum = [0u8; 8];
        keynum.copy_from_slice(&bytes[54..62]);
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&bytes[62..94]);
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        if key.verifying_key().as_bytes()[..] != bytes[94..126] {
            return Err(bad("secret and public halves disagree"));
        }
        Ok(SigningKey { key, keynum })
    }

    /// Reads a secret key file.
    pub fn from_file(path: &Path, password: Option<&str>) -> Result<Self, SignError> {
        let text = std::fs::read_to_string(path).map_err(|source| SignError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_box(&text, &path.display().to_string(), password)
    }

    /// Whether the key in `text` is encrypted (needs a password).
    pub fn is_encrypted(text: &str) -> bool {
        payload(text)
            .and_then(|p| b64().decode(p).ok())
            .is_some_and(|raw| raw.len() > 4 && raw[2..4] != [0, 0])
    }

    /// The key ID.
    pub fn key_id(&self) -> String {
        key_id(&self.keynum)
    }

    /// A plain Ed25519 signature over `data` (RFC 8032, no prehash): what
    /// DSSE envelopes carry, checkable by any Ed25519 implementation.
    pub fn sign_raw(&self, data: &[u8]) -> [u8; 64] {
        self.key.sign(data).to_bytes()
    }

    /// The Ed25519 public key, raw.
    pub fn public_raw(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// Signs `data` in minisign's prehashed format, with `trusted_comment`.
    /// Returns the `.minisig` file content.
    pub fn sign(&self, data: &[u8], trusted_comment: &str) -> String {
        let prehash = blake2::Blake2b512::digest(data);
        let sig = self.key.sign(prehash.as_slice()).to_bytes();
        let mut sig_line = Vec::with_capacity(74);
        sig_line.extend_from_slice(b"ED");
        sig_line.extend_from_slice(&self.keynum);
        sig_line.extend_from_slice(&sig);
        let mut global = Vec::with_capacity(64 + trusted_comment.len());
        global.extend_from_slice(&sig);
        global.extend_from_slice(trusted_comment.as_bytes());
        let global_sig = self.key.sign(&global).to_bytes();
        format!(
            "untrusted comment: signature from bale secret key {}\n{}\ntrusted comment: {trusted_comment}\n{}\n",
            self.key_id(),
            b64().encode(&sig_line),
            b64().encode(global_sig)
        )
    }
}

impl VerifyingKey {
    /// Reads a minisign public key: a file's content or a bare base64 line.
    pub fn from_text(text: &str, what: &str) -> Result<Self, SignError> {
        let bad = |reason: String| SignError::BadKey {
            what: what.to_owned(),
            kind: "public",
            reason,
        };
        let line = payload(text).ok_or_else(|| bad("no base64 key line".into()))?;
        let raw = b64().decode(line).map_err(|e| bad(e.to_string()))?;
        if raw.len() != 42 || &raw[..2] != b"Ed" {
            return Err(bad("unexpected length or algorithm".into()));
        }
        let mut keynum = [0u8; 8];
        keynum.copy_from_slice(&raw[2..10]);
        let mut pk = [0u8; 32];
        pk.copy_from_slice(&raw[10..42]);
        let key = minisign_verify::PublicKey::from_base64(line).map_err(|e| bad(e.to_string()))?;
        Ok(VerifyingKey {
            key,
            keynum,
            raw: pk,
        })
    }

    /// Reads a public key file.
    pub fn from_file(path: &Path) -> Result<Self, SignError> {
        let text = std::fs::read_to_string(path).map_err(|source| SignError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_text(&text, &path.display().to_string())
    }

    /// The key ID.
    pub fn key_id(&self) -> String {
        key_id(&self.keynum)
    }

    /// The Ed25519 public key, raw (what securesystemslib and openssl take).
    pub fn public_raw(&self) -> [u8; 32] {
        self.raw
    }

    /// Whether `signature` is a plain Ed25519 signature of `data` by this
    /// key (strict: no malleable or small-order forms).
    pub fn verify_raw(&self, data: &[u8], signature: &[u8]) -> bool {
        let Ok(sig) = ed25519_dalek::Signature::from_slice(signature) else {
            return false;
        };
        ed25519_dalek::VerifyingKey::from_bytes(&self.raw)
            .is_ok_and(|k| k.verify_strict(data, &sig).is_ok())
    }

    /// Checks `signature` (a `.minisig` file's content) over `data`; returns
    /// the trusted comment. Legacy (non-prehashed) signatures are refused.
    pub fn verify(&self, data: &[u8], signature: &str) -> Result<String, String> {
        let sig = minisign_verify::Signature::decode(signature)
            .map_err(|e| format!("malformed signature: {e}"))?;
        self.key.verify(data, &sig, false).map_err(|e| {
            let signer = payload(signature)
                .and_then(|p| b64().decode(p).ok())
                .filter(|raw| raw.len() >= 10)
                .map(|raw| {
                    let mut k = [0u8; 8];
                    k.copy_from_slice(&raw[2..10]);
                    key_id(&k)
                })
                .unwrap_or_default();
            if !signer.is_empty() && signer != self.key_id() {
                format!(
                    "signed by key {signer}, not by the given public key {}",
                    self.key_id()
                )
            } else {
                format!("signature does not verify with key {}: {e}", self.key_id())
            }
        })?;
        Ok(sig.trusted_comment().to_owned())
    }
}

/// A generated key pair, as file contents.
pub struct GeneratedKeys {
    /// Public key file content.
    pub public: String,
    /// Secret key file content.
    pub secret: String,
    /// Key ID.
    pub key_id: String,
}

/// Generates a key pair, encrypted with `password` when given.
pub fn generate(password: Option<&str>) -> Result<GeneratedKeys, SignError> {
    let kp = match password {
        Some(p) => minisign::KeyPair::generate_encrypted_keypair(Some(p.to_owned())),
        None => minisign::KeyPair::generate_unencrypted_keypair(),
    }
    .map_err(|e| SignError::Keygen(e.to_string()))?;
    let public = kp
        .pk
        .to_box()
        .map_err(|e| SignError::Keygen(e.to_string()))?
        .into_string();
    let secret = kp
        .sk
        .to_box(None)
        .map_err(|e| SignError::Keygen(e.to_string()))?
        .into_string();
    let key_id = VerifyingKey::from_text(&public, "generated key")?.key_id();
    Ok(GeneratedKeys {
        public,
        secret,
        key_id,
    })
}

/// Writes a generated key pair; refuses to overwrite unless `force`. The
/// secret key file is created with mode 0600.
pub fn write_keys(
    keys: &GeneratedKeys,
    public: &Path,
    secret: &Path,
    force: bool,
) -> Result<(), SignError> {
    for p in [public, secret] {
        if !force && p.exists() {
            return Err(SignError::Keygen(format!(
                "{} exists; pass --force to overwrite it",
                p.display()
            )));
        }
    }
    let write = |path: &Path, content: &str, mode: u32| -> Result<(), SignError> {
        use std::io::Write as _;
        use std::os::unix::fs::PermissionsExt as _;
        let io = |source| SignError::Io {
            path: path.to_owned(),
            source,
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        std::fs::create_dir_all(dir).map_err(|source| SignError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".bale-key-")
            .tempfile_in(dir)
            .map_err(io)?;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(io)?;
        tmp.write_all(content.as_bytes()).map_err(io)?;
        tmp.as_file().sync_all().map_err(io)?;
        tmp.persist(path).map_err(|e| io(e.error))?;
        Ok(())
    };
    write(secret, &keys.secret, 0o600)?;
    write(public, &keys.public, 0o644)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_deterministic_and_verify() {
        let keys = generate(None).unwrap_or_else(|e| panic!("{e}"));
        let sk = SigningKey::from_box(&keys.secret, "test", None).unwrap_or_else(|e| panic!("{e}"));
        let pk = VerifyingKey::from_text(&keys.public, "test").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sk.key_id(), keys.key_id);
        let a = sk.sign(b"manifest", "bale name=x");
        assert_eq!(a, sk.sign(b"manifest", "bale name=x"));
        assert_eq!(pk.verify(b"manifest", &a).as_deref(), Ok("bale name=x"));
        assert!(pk.verify(b"other", &a).is_err());
        let other = generate(None).unwrap_or_else(|e| panic!("{e}"));
        let other_pk =
            VerifyingKey::from_text(&other.public, "o").unwrap_or_else(|e| panic!("{e}"));
        let e = other_pk.verify(b"manifest", &a).err().unwrap_or_default();
        assert!(e.contains("not by the given public key"), "{e}");
    }
}
