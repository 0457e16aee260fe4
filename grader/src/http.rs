//! `http`: send a request inside the node's network and look at the
//! answer.

use course::HttpCheck;
use host::{HttpRequest, HttpResponse, SandboxHost};

use crate::{DEFAULT_TIMEOUT, Evaluate, Verdict, host_failure, quote};

/// Bytes of a response body the checks look at.
const MAX_BODY: usize = 1 << 20;

/// Host, port and path of an `http://` URL.
pub(crate) fn split_url(url: &str) -> Result<(String, u16, String), String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("the URL {} is not valid: {e}", quote(url, 80)))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(
                "https:// URLs cannot be checked yet: check the plain http:// port".to_owned(),
            );
        }
        _ => return Err(format!("the URL {} is not http://", quote(url, 80))),
    }
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("the URL {} has no host", quote(url, 80)))?;
    let path = uri
        .path_and_query()
        .map_or("/".to_owned(), |p| p.as_str().to_owned());
    let path = if path.is_empty() {
        "/".to_owned()
    } else {
        path
    };
    Ok((host.to_owned(), uri.port_u16().unwrap_or(80), path))
}

impl Evaluate for HttpCheck {
    fn evaluate(&self, host: &dyn SandboxHost, lab: &str) -> Verdict {
        let (name, port, path) = match split_url(&self.url) {
            Ok(parts) => parts,
            Err(message) => return Verdict::Broken(message),
        };
        let mut request = HttpRequest::get(name, port, path);
        request.method = self.method.clone();
        request.timeout = DEFAULT_TIMEOUT;
        request.max_body = MAX_BODY;
        match host.http(lab, &request) {
            Ok(response) => judge(self, &response),
            Err(e) => host_failure(&e),
        }
    }
}

pub(crate) fn judge(check: &HttpCheck, response: &HttpResponse) -> Verdict {
    let url = &check.url;
    let status = response.status;
    match check.status {
        Some(want) if want != status => {
            return Verdict::Fail(format!("{url} answered {status}, expected {want}"));
        }
        None if !(200..300).contains(&status) => {
            return Verdict::Fail(format!("{url} answered {status}, expected a 2xx status"));
        }
        _ => {}
    }
    for (name, want) in &check.header {
        match response.header(name) {
            None => return Verdict::Fail(format!("{url} sent no {name} header")),
            Some(value) if !value.contains(want.as_str()) => {
                return Verdict::Fail(format!(
                    "{url} sent {name}: {}, expected it to contain {}",
                    quote(value, 80),
                    quote(want, 60)
                ));
            }
            Some(_) => {}
        }
    }
    let body = String::from_utf8_lossy(&response.body);
    if let Some(want) = &check.body_contains
        && !body.contains(want.as_str())
    {
        return Verdict::Fail(format!(
            "the page at {url} does not contain {}",
            quote(want, 60)
        ));
    }
    if let Some(pattern) = &check.body_regex
        && !pattern.regex().is_match(&body)
    {
        return Verdict::Fail(format!(
            "the page at {url} does not match /{}/",
            pattern.as_str()
        ));
    }
    Verdict::Pass(format!("{url} answered {status}"))
}
