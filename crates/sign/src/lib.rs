//! Detached signatures in the minisign format, so that anyone can check a feed they
//! fetched from the hub with the stock `minisign` tool, or with `sharedefend verify`.
//!
//! Signing and checking use ring's Ed25519 (ring is the tree's one crypto provider);
//! the format is written here. A signature is the modern, prehashed kind (`ED`:
//! Ed25519 over the BLAKE2b-512 of the file), which `minisign` 0.11 makes by default
//! and checks even with `-H`; checking also accepts the legacy kind (`Ed`: Ed25519
//! over the file itself). The trusted comment is signed too (the "global signature"
//! over signature ‖ comment), so what it says — feed, serial, format, time — cannot be
//! changed without breaking the signature.
//!
//! The formats (<https://jedisct1.github.io/minisign/>):
//!
//! ```text
//! public key file       untrusted comment: minisign public key <KEY ID>
//!                       base64("Ed" ‖ key id (8) ‖ Ed25519 public key (32))
//! signature file        untrusted comment: <anything>
//!                       base64("ED" ‖ key id (8) ‖ Ed25519 signature (64))
//!                       trusted comment: <one line>
//!                       base64(Ed25519 signature of (signature ‖ trusted comment))
//! ```
//!
//! The secret key is kept in a file of our own shape (ring's PKCS#8 document and the
//! key id, base64), not minisign's password-encrypted one: the hub must sign unattended.
//! Parsing never panics on any input (the signature and key are untrusted).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};

const UNTRUSTED_PREFIX: &str = "untrusted comment: ";
const TRUSTED_PREFIX: &str = "trusted comment: ";
/// The key algorithm tag of public keys (and of legacy signatures).
const ALG_ED25519: [u8; 2] = *b"Ed";
/// The tag of prehashed signatures (BLAKE2b-512, then Ed25519).
const ALG_PREHASHED: [u8; 2] = *b"ED";

/// The 8-byte key id that ties a signature to its key; shown as minisign shows it
/// (16 upper-case hex digits of the little-endian number).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(pub [u8; 8]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016X}", u64::from_le_bytes(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// Which message the Ed25519 signature covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// `Ed`: the file itself.
    Legacy,
    /// `ED`: the BLAKE2b-512 hash of the file.
    Prehashed,
}

/// Input that is not a minisign key or signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {message}")]
pub struct FormatError {
    /// What was being read and where: `public key`, `signature line 2`, …
    pub what: String,
    pub message: String,
}

fn format_error(what: impl Into<String>, message: impl Into<String>) -> FormatError {
    FormatError {
        what: what.into(),
        message: message.into(),
    }
}

/// A signature that does not hold for this file and key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the signature was made by key {signature}, not by this public key ({key})")]
    KeyMismatch { signature: KeyId, key: KeyId },
    #[error("the signature does not match the file")]
    BadSignature,
    #[error("the trusted comment does not match its signature (it was altered)")]
    BadTrustedComment,
}

/// Making a key or a signature failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("the system random number generator failed")]
    Random,
    #[error("the trusted comment must be one line")]
    MultiLineComment,
}

/// An Ed25519 public key with its key id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub id: KeyId,
    key: [u8; 32],
}

impl PublicKey {
    /// Reads a public key: a minisign `.pub` file (comment line, key line) or the bare
    /// base64 key line (`minisign -P KEY`).
    pub fn parse(text: &str) -> Result<PublicKey, FormatError> {
        let lines: Vec<&str> = text
            .lines()
            .map(|l| l.trim_end_matches('\r'))
            .filter(|l| !l.trim().is_empty())
            .collect();
        let line = match lines.as_slice() {
            [key] => *key,
            [comment, key] => {
                if !comment.starts_with(UNTRUSTED_PREFIX) {
                    return Err(format_error(
                        "public key line 1",
                        "expected \"untrusted comment: …\"",
                    ));
                }
                *key
            }
            [] => return Err(format_error("public key", "empty")),
            _ => {
                return Err(format_error(
                    "public key",
                    "expected a comment line and a base64 key line",
                ));
            }
        };
        let bytes = decode("public key", line.trim())?;
        let (alg, rest) = bytes.split_at_checked(2).unwrap_or((&[], &[]));
        if alg != ALG_ED25519 || rest.len() != 40 {
            return Err(format_error(
                "public key",
                format!("not a minisign Ed25519 public key ({} bytes)", bytes.len()),
            ));
        }
        let mut id = [0u8; 8];
        let mut key = [0u8; 32];
        let (i, k) = rest.split_at(8);
        id.copy_from_slice(i);
        key.copy_from_slice(k);
        Ok(PublicKey { id: KeyId(id), key })
    }

    /// The base64 key line (what `minisign -P` takes).
    pub fn to_base64(&self) -> String {
        let mut bytes = Vec::with_capacity(42);
        bytes.extend_from_slice(&ALG_ED25519);
        bytes.extend_from_slice(&self.id.0);
        bytes.extend_from_slice(&self.key);
        BASE64.encode(bytes)
    }

    /// The `.pub` file, as `minisign -G` writes it.
    pub fn to_file(&self) -> String {
        format!(
            "{UNTRUSTED_PREFIX}minisign public key {}\n{}\n",
            self.id,
            self.to_base64()
        )
    }
}

/// A parsed signature file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub algorithm: Algorithm,
    pub key_id: KeyId,
    signature: [u8; 64],
    /// The trusted comment, as signed (without the `trusted comment: ` prefix).
    pub trusted_comment: String,
    global: [u8; 64],
}

impl Signature {
    /// Reads a `.minisig` file.
    pub fn parse(text: &str) -> Result<Signature, FormatError> {
        let lines: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
        let line = |n: usize| -> Result<&str, FormatError> {
            lines.get(n - 1).copied().ok_or_else(|| {
                format_error(
                    format!("signature line {n}"),
                    "missing (a signature has four lines)",
                )
            })
        };
        if !line(1)?.starts_with(UNTRUSTED_PREFIX) {
            return Err(format_error(
                "signature line 1",
                "expected \"untrusted comment: …\"",
            ));
        }
        let sig = decode("signature line 2", line(2)?.trim())?;
        if sig.len() != 74 {
            return Err(format_error(
                "signature line 2",
                format!("expected 74 bytes, got {}", sig.len()),
            ));
        }
        let (alg, rest) = sig.split_at(2);
        let algorithm = if alg == ALG_PREHASHED {
            Algorithm::Prehashed
        } else if alg == ALG_ED25519 {
            Algorithm::Legacy
        } else {
            return Err(format_error(
                "signature line 2",
                "unknown signature algorithm (expected Ed or ED)",
            ));
        };
        let (id, signature) = rest.split_at(8);
        let trusted_comment = line(3)?
            .strip_prefix(TRUSTED_PREFIX)
            .ok_or_else(|| format_error("signature line 3", "expected \"trusted comment: …\""))?
            .to_owned();
        let global = decode("signature line 4", line(4)?.trim())?;
        if global.len() != 64 {
            return Err(format_error(
                "signature line 4",
                format!("expected 64 bytes, got {}", global.len()),
            ));
        }
        if lines.iter().skip(4).any(|l| !l.trim().is_empty()) {
            return Err(format_error(
                "signature line 5",
                "unexpected text after the signature",
            ));
        }
        let mut s = Signature {
            algorithm,
            key_id: KeyId([0; 8]),
            signature: [0; 64],
            trusted_comment,
            global: [0; 64],
        };
        s.key_id.0.copy_from_slice(id);
        s.signature.copy_from_slice(signature);
        s.global.copy_from_slice(&global);
        Ok(s)
    }
}

fn decode(what: &str, line: &str) -> Result<Vec<u8>, FormatError> {
    BASE64
        .decode(line)
        .map_err(|e| format_error(what, format!("not base64: {e}")))
}

/// BLAKE2b-512 of `body`, the message of a prehashed signature.
fn prehash(body: &[u8]) -> [u8; 64] {
    let hash = blake2b_simd::Params::new().hash_length(64).hash(body);
    let mut out = [0u8; 64];
    out.copy_from_slice(hash.as_bytes());
    out
}

/// Checks `sig` over `body` with `key`: the file signature, then the trusted comment.
pub fn verify(key: &PublicKey, body: &[u8], sig: &Signature) -> Result<(), VerifyError> {
    if sig.key_id != key.id {
        return Err(VerifyError::KeyMismatch {
            signature: sig.key_id,
            key: key.id,
        });
    }
    let ed = UnparsedPublicKey::new(&ED25519, &key.key);
    let checked = match sig.algorithm {
        Algorithm::Prehashed => ed.verify(&prehash(body), &sig.signature),
        Algorithm::Legacy => ed.verify(body, &sig.signature),
    };
    checked.map_err(|_| VerifyError::BadSignature)?;
    let mut global = Vec::with_capacity(64 + sig.trusted_comment.len());
    global.extend_from_slice(&sig.signature);
    global.extend_from_slice(sig.trusted_comment.as_bytes());
    ed.verify(&global, &sig.global)
        .map_err(|_| VerifyError::BadTrustedComment)
}

/// A signing key: ring's Ed25519 key pair and its key id. `Debug` hides the secret.
pub struct SigningKey {
    id: KeyId,
    pkcs8: Vec<u8>,
    pair: Ed25519KeyPair,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The first line of a secret key file.
const SECRET_COMMENT: &str = "sharedefend signing key";

impl SigningKey {
    /// A new random key pair with a random key id.
    pub fn generate() -> Result<SigningKey, SignError> {
        let rng = SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| SignError::Random)?;
        let mut id = [0u8; 8];
        rng.fill(&mut id).map_err(|_| SignError::Random)?;
        let pkcs8 = doc.as_ref().to_vec();
        let pair = Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(|_| SignError::Random)?;
        Ok(SigningKey {
            id: KeyId(id),
            pkcs8,
            pair,
        })
    }

    /// Reads a key written by [`SigningKey::to_file`].
    pub fn from_file(text: &str) -> Result<SigningKey, FormatError> {
        let mut lines = text.lines().map(|l| l.trim_end_matches('\r'));
        let comment = lines.next().unwrap_or_default();
        if !comment
            .strip_prefix(UNTRUSTED_PREFIX)
            .is_some_and(|c| c.starts_with(SECRET_COMMENT))
        {
            return Err(format_error(
                "secret key line 1",
                format!("expected \"{UNTRUSTED_PREFIX}{SECRET_COMMENT} …\""),
            ));
        }
        let bytes = decode("secret key line 2", lines.next().unwrap_or_default().trim())?;
        let Some((id, pkcs8)) = bytes.split_first_chunk::<8>() else {
            return Err(format_error("secret key line 2", "too short"));
        };
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8)
            .map_err(|e| format_error("secret key line 2", format!("not an Ed25519 key: {e}")))?;
        Ok(SigningKey {
            id: KeyId(*id),
            pkcs8: pkcs8.to_vec(),
            pair,
        })
    }

    /// The secret key file: a comment line, then base64(key id ‖ PKCS#8 document).
    pub fn to_file(&self) -> String {
        let mut bytes = self.id.0.to_vec();
        bytes.extend_from_slice(&self.pkcs8);
        format!(
            "{UNTRUSTED_PREFIX}{SECRET_COMMENT} {} (Ed25519, PKCS#8); keep it secret\n{}\n",
            self.id,
            BASE64.encode(bytes)
        )
    }

    pub fn id(&self) -> KeyId {
        self.id
    }

    pub fn public(&self) -> PublicKey {
        let mut key = [0u8; 32];
        key.copy_from_slice(self.pair.public_key().as_ref());
        PublicKey { id: self.id, key }
    }

    /// Signs `body` (prehashed) with `trusted_comment`; returns the `.minisig` file.
    pub fn sign(&self, body: &[u8], trusted_comment: &str) -> Result<String, SignError> {
        if trusted_comment.contains(['\n', '\r']) {
            return Err(SignError::MultiLineComment);
        }
        let signature = self.pair.sign(&prehash(body));
        let mut line = Vec::with_capacity(74);
        line.extend_from_slice(&ALG_PREHASHED);
        line.extend_from_slice(&self.id.0);
        line.extend_from_slice(signature.as_ref());
        let mut global = signature.as_ref().to_vec();
        global.extend_from_slice(trusted_comment.as_bytes());
        let global = self.pair.sign(&global);
        Ok(format!(
            "{UNTRUSTED_PREFIX}signature from sharedefend key {}\n{}\n{TRUSTED_PREFIX}{trusted_comment}\n{}\n",
            self.id,
            BASE64.encode(line),
            BASE64.encode(global.as_ref())
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::generate().unwrap_or_else(|e| panic!("{e}"))
    }

    fn parse(sig: &str) -> Signature {
        Signature::parse(sig).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn signs_and_verifies_and_names_the_comment() {
        let k = key();
        let sig = k
            .sign(b"evil.example\n", "feed:phishing\tserial:7")
            .unwrap_or_else(|e| panic!("{e}"));
        let s = parse(&sig);
        assert_eq!(s.algorithm, Algorithm::Prehashed);
        assert_eq!(s.trusted_comment, "feed:phishing\tserial:7");
        assert_eq!(verify(&k.public(), b"evil.example\n", &s), Ok(()));
        assert_eq!(
            verify(&k.public(), b"evil.example\nmore\n", &s),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn an_altered_trusted_comment_fails() {
        let k = key();
        let sig = k.sign(b"x", "serial:7").unwrap_or_else(|e| panic!("{e}"));
        let s = parse(&sig.replace("serial:7", "serial:8"));
        assert_eq!(
            verify(&k.public(), b"x", &s),
            Err(VerifyError::BadTrustedComment)
        );
    }

    #[test]
    fn another_key_is_named() {
        let (a, b) = (key(), key());
        let s = parse(&a.sign(b"x", "c").unwrap_or_else(|e| panic!("{e}")));
        assert!(matches!(
            verify(&b.public(), b"x", &s),
            Err(VerifyError::KeyMismatch { .. })
        ));
    }

    #[test]
    fn keys_round_trip_through_their_files() {
        let k = key();
        let again = SigningKey::from_file(&k.to_file()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.public(), k.public());
        let pub_file = k.public().to_file();
        assert!(pub_file.starts_with(&format!(
            "untrusted comment: minisign public key {}\n",
            k.id()
        )));
        assert_eq!(PublicKey::parse(&pub_file), Ok(k.public()));
        assert_eq!(PublicKey::parse(&k.public().to_base64()), Ok(k.public()));
        assert!(!format!("{k:?}").contains(&BASE64.encode(&k.pkcs8)));
    }

    /// Made by the real minisign 0.11 (`minisign -G -W`, then `minisign -S` and
    /// `minisign -S -l`) over the bytes "legacy\n": both kinds verify here, with the
    /// key id as minisign prints it.
    #[test]
    fn reads_what_minisign_makes() {
        let pk = PublicKey::parse(
            "untrusted comment: minisign public key F1DD3B54B7B207AA\n\
             RWSqB7K3VDvd8U4VfqJ+AwNfg4foTQxvUV8ivhRc8JUFex/yDyGXZ5Gz\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(pk.id.to_string(), "F1DD3B54B7B207AA");
        let legacy = parse(
            "untrusted comment: signature from minisign secret key\n\
             RWSqB7K3VDvd8f9NFm16pHI8rHAJEVb3y+Y5oH5v5+nUC5/l1lENtSmosv2BDaT/1CO8drZbtHwQxfkZrqGLboYyzq7mm+Bqiwg=\n\
             trusted comment: made by minisign -l\n\
             Cmri0unJ034d2935dHhEyU0dkdBrHY9XQCCGAOF0LeuT2BUsp+XIahYgZQLOywsVckAYhrrzxOPBmDylj5zyAQ==\n",
        );
        assert_eq!(legacy.algorithm, Algorithm::Legacy);
        assert_eq!(verify(&pk, b"legacy\n", &legacy), Ok(()));
        let hashed = parse(
            "untrusted comment: signature from minisign secret key\n\
             RUSqB7K3VDvd8c8bBk4rpFJc4sG7/agkjv3w5BfTityq1OR/hZnSiN5b+SpgdhL4qmDkahynMCRl9qbGwAxJz0/+xTlB2KWiVg4=\n\
             trusted comment: made by minisign\n\
             gbYQlwtjPMomGgzIvG64v447neRdQrrEdQQIa6bfPEaTdeyZKXj1XpqYFo75lLy/oYJ9Lsse99qr01yzdMSkDg==\n",
        );
        assert_eq!(hashed.algorithm, Algorithm::Prehashed);
        assert_eq!(hashed.trusted_comment, "made by minisign");
        assert_eq!(verify(&pk, b"legacy\n", &hashed), Ok(()));
        assert_eq!(
            verify(&pk, b"legacy!\n", &hashed),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn malformed_input_names_the_line() {
        let cases = [
            ("", "signature line 1: missing (a signature has four lines)"),
            (
                "hello\n",
                "signature line 1: expected \"untrusted comment: …\"",
            ),
            (
                "untrusted comment: x\n!!!\n",
                "signature line 2: not base64: Invalid symbol 33, offset 0.",
            ),
            (
                "untrusted comment: x\nRWQ=\n",
                "signature line 2: expected 74 bytes, got 2",
            ),
        ];
        for (input, want) in cases {
            let got = Signature::parse(input)
                .map(|_| ())
                .map_err(|e| e.to_string());
            assert_eq!(got, Err(want.to_owned()), "{input:?}");
        }
        assert!(PublicKey::parse("RWQ=").is_err());
        assert!(PublicKey::parse("").is_err());
        assert!(SigningKey::from_file("untrusted comment: minisign public key\nRWQ=\n").is_err());
    }

    #[test]
    fn a_multi_line_comment_is_refused() {
        assert_eq!(key().sign(b"x", "a\nb"), Err(SignError::MultiLineComment));
    }
}
