//! RSA keys and signatures: PKCS#1 v1.5 over SHA-1, as in the seed.
//! Keys are PEM files (PKCS#8 private, SPKI public) named after replicas.

use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use rsa::{Oaep, RsaPrivateKey, RsaPublicKey};
use sha1::Sha1;
use std::path::Path;

pub const KEY_BITS: usize = 2048;
/// Signatures longer than this (a 4096-bit key) are refused unread.
pub const MAX_SIGNATURE: usize = 512;

/// A replica's private key, ready to sign.
#[derive(Clone)]
pub struct PrivateKey {
    private: RsaPrivateKey,
    signing: SigningKey<Sha1>,
}

/// A replica's public key, ready to verify.
#[derive(Clone, Debug)]
pub struct PublicKey {
    verifying: VerifyingKey<Sha1>,
}

impl PrivateKey {
    pub fn generate(
        rng: &mut (impl rand::CryptoRng + rand::RngCore),
        bits: usize,
    ) -> Result<Self, String> {
        let private = RsaPrivateKey::new(rng, bits).map_err(|e| format!("key generation: {e}"))?;
        Ok(Self::from_rsa(private))
    }

    fn from_rsa(private: RsaPrivateKey) -> Self {
        PrivateKey {
            signing: SigningKey::<Sha1>::new(private.clone()),
            private,
        }
    }

    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let private = RsaPrivateKey::from_pkcs8_pem(pem)
            .map_err(|e| format!("not a PKCS#8 PEM RSA private key: {e}"))?;
        Ok(Self::from_rsa(private))
    }

    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "cannot read key {}: {}",
                path.display(),
                crate::cli_words::io_error(&e)
            )
        })?;
        Self::from_pem(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn to_pem(&self) -> Result<String, String> {
        self.private
            .to_pkcs8_pem(LineEnding::LF)
            .map(|s| s.to_string())
            .map_err(|e| e.to_string())
    }

    pub fn public(&self) -> PublicKey {
        PublicKey {
            verifying: VerifyingKey::<Sha1>::new(RsaPublicKey::from(&self.private)),
        }
    }

    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.signing.sign(message).to_vec()
    }

    /// Open what [`PublicKey::seal`] sealed for this key.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, String> {
        self.private
            .decrypt(Oaep::new::<Sha1>(), sealed)
            .map_err(|_| "cannot open the sealed link key".to_string())
    }
}

impl PublicKey {
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let public = RsaPublicKey::from_public_key_pem(pem)
            .map_err(|e| format!("not an SPKI PEM RSA public key: {e}"))?;
        Ok(PublicKey {
            verifying: VerifyingKey::<Sha1>::new(public),
        })
    }

    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "cannot read key {}: {}",
                path.display(),
                crate::cli_words::io_error(&e)
            )
        })?;
        Self::from_pem(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn to_pem(&self) -> Result<String, String> {
        self.verifying
            .as_ref()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| e.to_string())
    }

    /// Encrypt a short secret (a link key) so that only the holder of the
    /// private key can read it (RSA-OAEP with SHA-1).
    pub fn seal(&self, secret: &[u8]) -> Result<Vec<u8>, String> {
        self.seal_with(&mut rand::rngs::OsRng, secret)
    }

    /// [`PublicKey::seal`] with the padding drawn from `rng` (the simulator
    /// passes a seeded one so runs replay byte for byte).
    pub fn seal_with(
        &self,
        rng: &mut (impl rand::CryptoRng + rand::RngCore),
        secret: &[u8],
    ) -> Result<Vec<u8>, String> {
        let key: &RsaPublicKey = self.verifying.as_ref();
        key.encrypt(rng, Oaep::new::<Sha1>(), secret)
            .map_err(|e| format!("cannot seal a link key: {e}"))
    }

    /// Whether both are the same RSA key.
    pub fn same_key(&self, other: &PublicKey) -> bool {
        let a: &RsaPublicKey = self.verifying.as_ref();
        let b: &RsaPublicKey = other.verifying.as_ref();
        a == b
    }

    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match Signature::try_from(signature) {
            Ok(sig) => self.verifying.verify(message, &sig).is_ok(),
            Err(_) => false,
        }
    }
}

/// File names for replica `name`'s keys inside a key directory.
pub fn private_key_file(dir: &Path, name: &str) -> std::path::PathBuf {
    dir.join(format!("{name}.pem"))
}

pub fn public_key_file(dir: &Path, name: &str) -> std::path::PathBuf {
    dir.join(format!("{name}.pub.pem"))
}

/// Write replica `name`'s new key pair into `dir`. An existing pair is
/// replaced only with `force`: the other replicas know this replica by its
/// public key, and a new one locks it out until they all have the new file.
pub fn keygen(dir: &Path, name: &str, bits: usize, force: bool) -> Result<(), String> {
    if !force {
        for path in [private_key_file(dir, name), public_key_file(dir, name)] {
            if path.exists() {
                return Err(format!(
                    "{} already exists: replacing {name}'s key locks {name} out until every replica has the new {name}.pub.pem; use --force to replace it anyway",
                    path.display()
                ));
            }
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| {
        format!(
            "cannot create {}: {}",
            dir.display(),
            crate::cli_words::io_error(&e)
        )
    })?;
    let mut rng = rand::rngs::OsRng;
    let key = PrivateKey::generate(&mut rng, bits)?;
    let private = private_key_file(dir, name);
    let public = public_key_file(dir, name);
    write_private(&private, &key.to_pem()?)?;
    std::fs::write(&public, key.public().to_pem()?).map_err(|e| {
        format!(
            "cannot write {}: {}",
            public.display(),
            crate::cli_words::io_error(&e)
        )
    })?;
    Ok(())
}

fn write_private(path: &Path, pem: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            format!(
                "cannot write {}: {}",
                path.display(),
                crate::cli_words::io_error(&e)
            )
        })?;
    file.write_all(pem.as_bytes()).map_err(|e| {
        format!(
            "cannot write {}: {}",
            path.display(),
            crate::cli_words::io_error(&e)
        )
    })
}

/// Keys for tests and the simulator, made once per process from a fixed
/// seed: small (1024 bits) to keep them fast, the algorithm is the same.
pub fn sim_keys(n: usize) -> Vec<PrivateKey> {
    use rand::SeedableRng;
    use std::sync::OnceLock;
    static KEYS: OnceLock<Vec<PrivateKey>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        (0..8)
            .map(|_| PrivateKey::generate(&mut rng, 1024).expect("an RSA key"))
            .collect()
    });
    keys[..n].to_vec()
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// See [`sim_keys`].
    pub fn test_keys(n: usize) -> Vec<PrivateKey> {
        sim_keys(n)
    }

    #[test]
    fn signatures_verify_only_for_the_signed_bytes_and_key() {
        let keys = test_keys(2);
        let sig = keys[0].sign(b"hello");
        assert!(keys[0].public().verify(b"hello", &sig));
        assert!(!keys[0].public().verify(b"hellO", &sig));
        assert!(!keys[1].public().verify(b"hello", &sig));
        assert!(!keys[0].public().verify(b"hello", &sig[1..]));
    }

    #[test]
    fn a_sealed_secret_opens_with_its_private_key_only() {
        let keys = test_keys(2);
        let sealed = keys[0].public().seal(&[9; 32]).unwrap();
        assert_eq!(keys[0].open(&sealed).unwrap(), vec![9; 32]);
        assert!(keys[1].open(&sealed).is_err());
    }

    #[test]
    fn keys_round_trip_through_pem() {
        let key = &test_keys(1)[0];
        let again = PrivateKey::from_pem(&key.to_pem().unwrap()).unwrap();
        let public = PublicKey::from_pem(&key.public().to_pem().unwrap()).unwrap();
        assert!(public.verify(b"x", &again.sign(b"x")));
        assert!(PublicKey::from_pem("garbage").is_err());
        assert!(public.same_key(&key.public()));
        assert!(!public.same_key(&test_keys(2)[1].public()));
    }
}
