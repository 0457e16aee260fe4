//! Content digests (`<algorithm>:<hex>`), the only addresses blobs have.
//!
//! Two algorithms are accepted, the two the OCI image spec registers:
//! sha256 (what every image uses, and what the store computes on its own)
//! and sha512 (which OCI clients may push). Anything else is refused with
//! [`DigestError::UnsupportedAlgorithm`], so a client can tell "not this
//! algorithm" from "malformed".

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use sha2::{Digest as _, Sha256, Sha512};

/// Why a string is not a digest we accept.
#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    #[error(
        "invalid digest {0:?}: expected sha256: followed by 64 or sha512: followed by 128 lower-case hex digits"
    )]
    Invalid(String),
    #[error("unsupported digest algorithm in {0:?}: use sha256 or sha512")]
    UnsupportedAlgorithm(String),
}

/// A digest algorithm the store can address blobs by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    /// Every algorithm, in the order blobs are walked.
    pub const ALL: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Sha512];

    /// The name before the `:` of a digest, and the blob directory's name.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Hex digits of a digest in this algorithm.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    /// The digest of `bytes` in this algorithm.
    pub fn digest(self, bytes: &[u8]) -> Digest {
        let mut hasher = Hasher::new(self);
        hasher.update(bytes);
        hasher.finish()
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Algorithm, DigestError> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| DigestError::UnsupportedAlgorithm(s.to_owned()))
    }
}

/// A validated `<algorithm>:<hex>` digest.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    /// A boxed `str` keeps a digest as small as a `String` alone, so the
    /// errors that carry two of them stay small too.
    hex: Box<str>,
}

impl Digest {
    /// The sha256 digest of `bytes`: what the store computes on its own
    /// (image IDs, chain IDs, manifests it writes).
    pub fn of(bytes: &[u8]) -> Digest {
        Algorithm::Sha256.digest(bytes)
    }

    /// Checks `hex` as the encoded part of an `algorithm` digest (as used
    /// in file names).
    pub fn new(algorithm: Algorithm, hex: &str) -> Result<Digest, DigestError> {
        if hex.len() == algorithm.hex_len()
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Digest {
                algorithm,
                hex: hex.into(),
            })
        } else {
            Err(DigestError::Invalid(format!("{algorithm}:{hex}")))
        }
    }

    /// Parses a bare 64-digit sha256 hex string (as used in file names and
    /// image IDs).
    pub fn from_hex(hex: &str) -> Result<Digest, DigestError> {
        Digest::new(Algorithm::Sha256, hex).map_err(|_| DigestError::Invalid(hex.to_owned()))
    }

    /// The hex digits without the algorithm prefix.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Digest, DigestError> {
        let invalid = || DigestError::Invalid(s.to_owned());
        let (algorithm, hex) = s.split_once(':').ok_or_else(invalid)?;
        // The OCI grammar: components of [a-z0-9] joined by [+._-].
        let well_formed = !algorithm.is_empty()
            && algorithm.split(['+', '.', '_', '-']).all(|c| {
                !c.is_empty()
                    && c.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            });
        if !well_formed {
            return Err(invalid());
        }
        let algorithm = algorithm
            .parse::<Algorithm>()
            .map_err(|_| DigestError::UnsupportedAlgorithm(s.to_owned()))?;
        Digest::new(algorithm, hex).map_err(|_| invalid())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl TryFrom<&oci_spec::image::Digest> for Digest {
    type Error = DigestError;
    fn try_from(d: &oci_spec::image::Digest) -> Result<Digest, DigestError> {
        d.to_string().parse()
    }
}

impl From<&Digest> for oci_spec::image::Digest {
    fn from(d: &Digest) -> oci_spec::image::Digest {
        // A validated digest of a registered algorithm is always a valid OCI digest.
        oci_spec::image::Digest::from_str(&d.to_string())
            .unwrap_or_else(|_| unreachable!("validated {} hex", d.algorithm))
    }
}

/// A running hash in one algorithm.
#[derive(Clone)]
pub(crate) enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    pub(crate) fn new(algorithm: Algorithm) -> Hasher {
        match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }

    fn algorithm(&self) -> Algorithm {
        match self {
            Hasher::Sha256(_) => Algorithm::Sha256,
            Hasher::Sha512(_) => Algorithm::Sha512,
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    fn finish(self) -> Digest {
        let (algorithm, hex) = match self {
            Hasher::Sha256(h) => (Algorithm::Sha256, hex::encode(h.finalize())),
            Hasher::Sha512(h) => (Algorithm::Sha512, hex::encode(h.finalize())),
        };
        Digest {
            algorithm,
            hex: hex.into(),
        }
    }
}

/// Hashes and counts everything that passes through, in either direction.
pub(crate) struct Hashing<T> {
    inner: T,
    hasher: Hasher,
    count: u64,
}

impl<T> std::fmt::Debug for Hashing<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hashing")
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl<T> Hashing<T> {
    /// Hashes in sha256, the store's own algorithm.
    pub(crate) fn new(inner: T) -> Self {
        Hashing::new_in(Algorithm::Sha256, inner)
    }

    pub(crate) fn new_in(algorithm: Algorithm, inner: T) -> Self {
        Hashing {
            inner,
            hasher: Hasher::new(algorithm),
            count: 0,
        }
    }

    pub(crate) fn algorithm(&self) -> Algorithm {
        self.hasher.algorithm()
    }

    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    pub(crate) fn digest(&self) -> Digest {
        self.hasher.clone().finish()
    }

    /// Accounts for bytes that are already in the inner sink (a resumed write).
    pub(crate) fn absorb(&mut self, mut reader: impl Read) -> io::Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    self.hasher.update(&buf[..n]);
                    self.count += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    pub(crate) fn into_inner(self) -> (T, Digest, u64) {
        let digest = self.hasher.finish();
        (self.inner, digest, self.count)
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
