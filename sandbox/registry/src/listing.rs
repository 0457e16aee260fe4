//! `GET /v2/<name>/tags/list` and `GET /v2/_catalog`, both paginated with
//! `n` and `last` and a `Link: <…>; rel="next"` header while more remain.

use axum::Json;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::context::Call;
use crate::error::{Code, Error, Result};
use crate::state::{Registry, repositories};

/// Most entries one page holds, whatever `n` asks for.
const MAX_PAGE: usize = 10_000;

/// One page of the sorted, deduplicated `items`, and the `Link` to the next.
fn page(items: Vec<String>, call: &Call, url: &str) -> Result<(Vec<String>, Option<String>)> {
    let n = match call.query.get("n") {
        Some(n) => n.parse::<usize>().map_err(|_| {
            Error::protocol(
                Code::SizeInvalid,
                format!("n={n:?} is not a page size; use a whole number"),
            )
        })?,
        None => MAX_PAGE,
    }
    .min(MAX_PAGE);
    let last = call.query.get("last");
    let mut rest: Vec<String> = items
        .into_iter()
        .filter(|i| last.is_none_or(|l| i.as_str() > l.as_str()))
        .collect();
    rest.sort();
    rest.dedup();
    let more = rest.len() > n;
    rest.truncate(n);
    let link = match (more, rest.last()) {
        (true, Some(last)) => Some(format!("<{url}?n={n}&last={last}>; rel=\"next\"")),
        _ => None,
    };
    Ok((rest, link))
}

fn with_link(mut response: Response, link: Option<String>) -> Response {
    if let Some(link) = link
        && let Ok(v) = HeaderValue::from_str(&link)
    {
        response.headers_mut().insert(header::LINK, v);
    }
    response
}

#[derive(Serialize)]
struct TagList {
    name: String,
    tags: Vec<String>,
}

pub(crate) fn tags(registry: &Registry, name: &str, call: &Call) -> Result<Response> {
    let key = registry.naming().repository_key(name)?;
    let names: Vec<store::Tag> = registry
        .store()
        .list(registry.namespace())?
        .into_iter()
        .filter(|t| t.reference.name() == key)
        .collect();
    if names.is_empty() {
        return Err(Error::protocol(
            Code::NameUnknown,
            format!("repository {name} is not in this registry"),
        ));
    }
    let tags = names
        .iter()
        .filter_map(|t| t.reference.tag().map(str::to_owned))
        .collect();
    let (tags, link) = page(tags, call, &format!("/v2/{name}/tags/list"))?;
    let body = TagList {
        name: name.to_owned(),
        tags,
    };
    Ok(with_link(Json(body).into_response(), link))
}

#[derive(Serialize)]
struct Catalog {
    repositories: Vec<String>,
}

pub(crate) fn catalog(registry: &Registry, call: &Call) -> Result<Response> {
    let repos = repositories(registry)?;
    let (repositories, link) = page(repos, call, "/v2/_catalog")?;
    Ok(with_link(
        Json(Catalog { repositories }).into_response(),
        link,
    ))
}
