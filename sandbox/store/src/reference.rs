//! Image references, parsed and normalized the way the Docker CLI does:
//! `busybox` is `docker.io/library/busybox:latest`, `localhost:5000/x:1`
//! keeps its registry, and `name@sha256:…` / `name:tag@sha512:…` pin a digest.
//!
//! The grammar (from the distribution project's reference package):
//!
//! ```text
//! reference  := name [ ":" tag ] [ "@" digest ]
//! name       := [ domain "/" ] path-component ( "/" path-component )*
//! domain     := host [ ":" port ]
//! path-comp  := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
//! tag        := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
//! ```
//!
//! The first component is a domain only if it contains `.` or `:`, or is
//! `localhost`; otherwise the image lives on Docker Hub (`docker.io`), where
//! single-component names live under `library/`.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;

pub const DEFAULT_REGISTRY: &str = "docker.io";
pub const DEFAULT_TAG: &str = "latest";
const MAX_NAME_LEN: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("invalid reference {0:?}: it is empty")]
    Empty(String),
    #[error("invalid reference {0:?}: repository name must be lowercase")]
    Uppercase(String),
    #[error("invalid reference {0:?}: expected [registry/]name[:tag][@algorithm:digest]")]
    Format(String),
    #[error(
        "invalid reference {0:?}: invalid tag (use letters, digits, '_', '.', '-', at most 128 characters)"
    )]
    Tag(String),
    #[error(
        "invalid reference {0:?}: invalid digest (expected sha256: and 64 or sha512: and 128 lower-case hex digits)"
    )]
    Digest(String),
    #[error("invalid reference {0:?}: invalid registry host")]
    Domain(String),
    #[error("invalid reference {0:?}: repository name is longer than 255 characters")]
    TooLong(String),
    #[error("invalid reference {0:?}: a 64-character hex string is an image id, not a name")]
    HexName(String),
}

/// A parsed, normalized image reference.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses and normalizes; a reference without tag or digest gets `latest`.
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        let err_format = || ReferenceError::Format(s.to_owned());
        if s.is_empty() {
            return Err(ReferenceError::Empty(s.to_owned()));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((rest, d)) => (
                rest,
                Some(
                    d.parse::<Digest>()
                        .map_err(|_| ReferenceError::Digest(s.to_owned()))?,
                ),
            ),
            None => (s, None),
        };
        // A tag's ':' comes after the last '/'; an earlier ':' is a port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag
            && !valid_tag(tag)
        {
            return Err(ReferenceError::Tag(s.to_owned()));
        }
        if name.is_empty() {
            return Err(err_format());
        }
        if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ReferenceError::HexName(s.to_owned()));
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, path))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.chars().any(|c| c.is_ascii_uppercase()) =>
            {
                (first, path)
            }
            _ => (DEFAULT_REGISTRY, name),
        };
        if !valid_domain(domain) {
            return Err(ReferenceError::Domain(s.to_owned()));
        }
        if path.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase(s.to_owned()));
        }
        if !path.split('/').all(valid_path_component) {
            return Err(err_format());
        }
        let registry = if domain == "index.docker.io" {
            DEFAULT_REGISTRY
        } else {
            domain
        };
        let repository = if registry == DEFAULT_REGISTRY && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_owned()
        };
        if registry.len() + 1 + repository.len() > MAX_NAME_LEN {
            return Err(ReferenceError::TooLong(s.to_owned()));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_owned()),
            (None, None) => Some(DEFAULT_TAG.to_owned()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            registry: registry.to_owned(),
            repository,
            tag,
            digest,
        })
    }

    /// `docker.io`, `localhost:5000`, …
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The path within the registry: `library/busybox`, `x`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `registry/repository` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same name with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        if !valid_tag(tag) {
            return Err(ReferenceError::Tag(format!("{}:{tag}", self.name())));
        }
        Ok(Reference {
            tag: Some(tag.to_owned()),
            digest: None,
            ..self.clone()
        })
    }

    /// The same name pinned to `digest`, without a tag.
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            tag: None,
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The short form the Docker CLI prints: `busybox:latest`,
    /// `user/app:1`, `localhost:5000/x:1`.
    ///
    /// The short form always parses back to this reference: Docker Hub's
    /// `library/` goes only from a one-component rest (as in Docker), and a
    /// Docker Hub name whose first component reads as a registry host
    /// (`docker.io/deb.io/x`, where Docker would print `deb.io/x`, another
    /// registry's image) keeps its `docker.io/`.
    pub fn familiar(&self) -> String {
        let name = if self.registry == DEFAULT_REGISTRY {
            let short = match self.repository.strip_prefix("library/") {
                Some(rest) if !rest.contains('/') => rest,
                _ => &self.repository,
            };
            let reads_as_host = short
                .split_once('/')
                .is_some_and(|(first, _)| first.contains(['.', ':']) || first == "localhost");
            if reads_as_host {
                self.name()
            } else {
                short.to_owned()
            }
        } else {
            self.name()
        };
        let mut s = match &self.tag {
            Some(t) => format!("{name}:{t}"),
            None => name,
        };
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
        s
    }

    /// The familiar name without tag or digest (the key of `repositories`
    /// in a `docker save` archive).
    pub fn familiar_name(&self) -> String {
        Reference {
            tag: None,
            digest: None,
            ..self.clone()
        }
        .familiar()
    }
}

fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: &u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(&b[0]) || !alnum(&b[b.len() - 1]) {
        return false;
    }
    // Separators between alphanumeric runs: ".", "_", "__" or any number of "-".
    let mut i = 0;
    while i < b.len() {
        if alnum(&b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(&b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn valid_domain(domain: &str) -> bool {
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        // IPv6 literal: [addr]:port
        match rest.split_once(']') {
            Some((addr, tail)) => {
                if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
                    return false;
                }
                match tail {
                    "" => return true,
                    t => match t.strip_prefix(':') {
                        Some(p) => ("", Some(p)),
                        None => return false,
                    },
                }
            }
            None => return false,
        }
    } else {
        match domain.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (domain, None),
        }
    };
    if let Some(p) = port
        && (p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    if host.is_empty() {
        return domain.starts_with('[');
    }
    host.split('.').all(|label| {
        let b = label.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
    })
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Reference, ReferenceError> {
        Reference::parse(s)
    }
}

/// The fully qualified form: `docker.io/library/busybox:latest`.
impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}
