//! The secrets kept outside the database: made on first start, one file each, readable
//! by the owner only.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

use super::{from_hex, to_hex};
use crate::store::StoreError;

const CHAIN_KEY: &str = "chain.key";
const SIGNING_KEY: &str = "signing.key";
const PUBLIC_KEY: &str = "signing.pub";
const PSEUDONYM_KEY: &str = "pseudonym.key";

/// Where the keys of the database at `db` live unless configured: a `keys` directory
/// beside it.
pub fn default_key_dir(db: &Path) -> PathBuf {
    db.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join("keys")
}

/// The collector's secrets.
pub struct Keys {
    chain: [u8; 32],
    signing: SigningKey,
    pseudonym: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("public", &to_hex(self.signing.verifying_key().as_bytes()))
            .finish_non_exhaustive()
    }
}

fn io_err(context: String) -> impl FnOnce(io::Error) -> StoreError {
    move |source| StoreError::Io { context, source }
}

/// 32 bytes from the system's random source.
pub fn random_bytes() -> Result<[u8; 32], StoreError> {
    let mut b = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(io_err("reading /dev/urandom".into()))?;
    Ok(b)
}

/// Reads a 32-byte key stored as hex; creates it (mode 0600) when `create` and absent.
fn key_file(dir: &Path, name: &str, create: bool) -> Result<[u8; 32], StoreError> {
    let path = dir.join(name);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let mode = fs::metadata(&path)
                .map_err(io_err(format!("reading {}", path.display())))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format_args!("{:o}", mode & 0o777),
                    "A key file is readable by other users; chmod 600 it."
                );
            }
            from_hex::<32>(&text).ok_or_else(|| StoreError::Io {
                context: format!("{} is not a key (64 hex digits)", path.display()),
                source: io::Error::from(io::ErrorKind::InvalidData),
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_err(format!("creating {}", dir.display())))?;
            let key = random_bytes()?;
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(mut f) => {
                    f.write_all(format!("{}\n", to_hex(&key)).as_bytes())
                        .and_then(|()| f.sync_all())
                        .map_err(io_err(format!("writing {}", path.display())))?;
                    Ok(key)
                }
                // Another process made it first: use theirs.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => key_file(dir, name, false),
                Err(e) => Err(io_err(format!("creating {}", path.display()))(e)),
            }
        }
        Err(e) => Err(io_err(format!("reading key {}", path.display()))(e)),
    }
}

impl Keys {
    /// Loads the keys in `dir`, making any that are missing (and the directory, 0700).
    pub fn load_or_create(dir: &Path) -> Result<Self, StoreError> {
        Self::load_inner(dir, true)
    }

    /// Loads the keys in `dir`; a missing key is an error.
    pub fn load(dir: &Path) -> Result<Self, StoreError> {
        Self::load_inner(dir, false)
    }

    fn load_inner(dir: &Path, create: bool) -> Result<Self, StoreError> {
        let keys = Self {
            chain: key_file(dir, CHAIN_KEY, create)?,
            signing: SigningKey::from_bytes(&key_file(dir, SIGNING_KEY, create)?),
            pseudonym: key_file(dir, PSEUDONYM_KEY, create)?,
        };
        // The public half, for whoever verifies copied checkpoints elsewhere.
        let public = dir.join(PUBLIC_KEY);
        let text = format!("{}\n", keys.public().to_hex());
        if fs::read_to_string(&public).ok().as_deref() != Some(text.as_str()) && create {
            fs::write(&public, text).map_err(io_err(format!("writing {}", public.display())))?;
        }
        Ok(keys)
    }

    /// The key of the audit chain.
    pub fn chain_key(&self) -> &[u8; 32] {
        &self.chain
    }

    /// The key of redaction pseudonyms.
    pub fn pseudonym_key(&self) -> &[u8; 32] {
        &self.pseudonym
    }

    /// A key for another purpose, derived from the chain key and `label` (HMAC-SHA256):
    /// kept with the others without a file of its own, and useless for the chain.
    pub fn derive(&self, label: &str) -> [u8; 32] {
        use hmac::Mac as _;
        let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(&self.chain)
            .expect("HMAC takes keys of any length");
        mac.update(b"logbook derived key: ");
        mac.update(label.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }

    /// The public half of the signing key.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.signing.verifying_key())
    }
}

/// The key that checks checkpoint and anchor signatures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Reads `signing.pub` from a key directory, or a file holding the key's hex.
    pub fn read(path: &Path) -> Result<Self, StoreError> {
        let path = if path.is_dir() {
            path.join(PUBLIC_KEY)
        } else {
            path.to_owned()
        };
        let text = fs::read_to_string(&path)
            .map_err(io_err(format!("reading public key {}", path.display())))?;
        Self::from_hex(&text).ok_or_else(|| StoreError::Io {
            context: format!("{} is not an ed25519 public key", path.display()),
            source: io::Error::from(io::ErrorKind::InvalidData),
        })
    }

    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Option<Self> {
        VerifyingKey::from_bytes(&from_hex::<32>(s)?).ok().map(Self)
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        to_hex(self.0.as_bytes())
    }

    /// Whether `signature` signs `message`.
    pub fn verifies(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        self.0
            .verify(message, &Signature::from_bytes(signature))
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let kd = dir.path().join("keys");
        assert!(Keys::load(&kd).is_err(), "load never creates");
        let a = Keys::load_or_create(&kd).unwrap();
        let b = Keys::load(&kd).unwrap();
        assert_eq!(a.chain_key(), b.chain_key());
        assert_eq!(a.public(), b.public());
        assert_ne!(a.chain_key(), a.pseudonym_key());
        for f in [CHAIN_KEY, SIGNING_KEY, PSEUDONYM_KEY] {
            let mode = fs::metadata(kd.join(f)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
        let sig = a.sign(b"m");
        let public = PublicKey::read(&kd).unwrap();
        assert!(public.verifies(b"m", &sig));
        assert!(!public.verifies(b"n", &sig));
    }
}
