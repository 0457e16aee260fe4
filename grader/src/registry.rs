//! `registry`: ask a registry reachable from the node for a manifest, the
//! way `docker pull` would (OCI and Docker manifest types accepted), and
//! compare its digest when the lesson gives one.

use course::RegistryCheck;
use host::{HttpRequest, HttpResponse, SandboxHost};
use sha2::{Digest, Sha256};

use crate::{DEFAULT_TIMEOUT, Evaluate, Verdict, host_failure, quote};

/// The manifest types a registry may answer with; without them a registry
/// may convert or refuse (distribution answers schema 1 to a bare GET).
const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

/// The distribution spec's limit on manifests a registry must accept.
const MAX_MANIFEST: usize = 4 << 20;
/// A tag list this long is more than any lesson makes.
const MAX_TAGS_BODY: usize = 256 << 10;

impl Evaluate for RegistryCheck {
    fn evaluate(&self, host: &dyn SandboxHost, lab: &str) -> Verdict {
        let Some((name, port)) = split_host(&self.host) else {
            return Verdict::Broken(format!(
                "registry address {} is not host:port",
                quote(&self.host, 60)
            ));
        };
        let reference = match (&self.tag, &self.digest) {
            (Some(tag), _) => tag.clone(),
            (None, Some(digest)) => digest.clone(),
            (None, None) => "latest".to_owned(),
        };
        let shown = describe(self, &reference);
        let mut request = HttpRequest::get(
            name.clone(),
            port,
            format!("/v2/{}/manifests/{reference}", self.repository),
        );
        request.headers.push(("accept".into(), ACCEPT.into()));
        request.timeout = DEFAULT_TIMEOUT;
        request.max_body = MAX_MANIFEST;
        let response = match host.http(lab, &request) {
            Ok(r) => r,
            Err(e) => return host_failure(&e),
        };
        match response.status {
            200 => {}
            401 | 403 => {
                return Verdict::Fail(format!(
                    "the registry at {} refused to show {shown} without credentials",
                    self.host
                ));
            }
            404 => {
                let tags = tags(host, lab, &name, port, &self.repository);
                return Verdict::Fail(match tags {
                    Some(tags) if !tags.is_empty() => format!(
                        "{shown} is not in the registry at {}; {} has the tags {}",
                        self.host,
                        self.repository,
                        quote(&tags.join(", "), 120)
                    ),
                    _ => format!("{shown} is not in the registry at {}", self.host),
                });
            }
            status => {
                return Verdict::Fail(format!(
                    "the registry at {} answered {status} for {shown}",
                    self.host
                ));
            }
        }
        if response.truncated {
            return Verdict::Fail(format!("the manifest of {shown} is larger than 4 MiB"));
        }
        if let Some(local) = &self.same_as {
            return same_as_local(host, lab, &response, &shown, local);
        }
        match (&self.tag, &self.digest) {
            (Some(_), Some(want)) => {
                let got = digest_of(&response, want);
                if got.as_deref() == Some(want.as_str()) {
                    Verdict::Pass(format!("{shown} is in the registry with digest {want}"))
                } else {
                    Verdict::Fail(format!(
                        "{shown} is in the registry but points at {}, not {want}",
                        got.unwrap_or_else(|| "an unknown digest".into())
                    ))
                }
            }
            _ => Verdict::Pass(format!("{shown} is in the registry at {}", self.host)),
        }
    }
}

/// Whether what the registry serves is the lab's image `local`, manifest
/// for manifest.
fn same_as_local(
    host: &dyn SandboxHost,
    lab: &str,
    response: &HttpResponse,
    shown: &str,
    local: &str,
) -> Verdict {
    let image = match host.engine_image(lab, local) {
        Ok(Some(image)) => image,
        Ok(None) => {
            return Verdict::Fail(format!(
                "{shown} is in the registry, but there is no image {local} here to compare it with"
            ));
        }
        Err(e) => return host_failure(&e),
    };
    let want = image.manifest_digest;
    match digest_of(response, &want) {
        Some(got) if got == want => Verdict::Pass(format!(
            "{shown} in the registry is the image {local} ({want})"
        )),
        _ => Verdict::Fail(format!(
            "{shown} in the registry is not the image {local} you have: push {local} again"
        )),
    }
}

fn describe(check: &RegistryCheck, reference: &str) -> String {
    if reference.contains(':') {
        format!("{}@{reference}", check.repository)
    } else {
        format!("{}:{reference}", check.repository)
    }
}

/// `localhost:5000` → (`localhost`, 5000); the course crate already
/// checked the shape, a missing port means the registry default, 443,
/// which plain HTTP cannot reach, so it is refused.
pub(crate) fn split_host(host: &str) -> Option<(String, u16)> {
    let (name, port) = host.rsplit_once(':')?;
    Some((name.to_owned(), port.parse().ok()?))
}

/// The manifest's digest in the algorithm of `want`: computed from the
/// body for sha256 (a registry's header could say anything), else the
/// registry's `Docker-Content-Digest`.
pub(crate) fn digest_of(response: &HttpResponse, want: &str) -> Option<String> {
    if want.starts_with("sha256:") {
        return Some(format!(
            "sha256:{}",
            hex::encode(Sha256::digest(&response.body))
        ));
    }
    response
        .header("docker-content-digest")
        .map(|d| d.trim().to_owned())
}

/// The repository's tags, for a helpful message; `None` when the registry
/// does not list them.
fn tags(
    host: &dyn SandboxHost,
    lab: &str,
    name: &str,
    port: u16,
    repository: &str,
) -> Option<Vec<String>> {
    let mut request = HttpRequest::get(name, port, format!("/v2/{repository}/tags/list"));
    request.timeout = DEFAULT_TIMEOUT;
    request.max_body = MAX_TAGS_BODY;
    let response = host.http(lab, &request).ok()?;
    if response.status != 200 || response.truncated {
        return None;
    }
    #[derive(serde::Deserialize)]
    struct TagList {
        tags: Option<Vec<String>>,
    }
    let list: TagList = serde_json::from_slice(&response.body).ok()?;
    Some(list.tags.unwrap_or_default().into_iter().take(20).collect())
}
