//! Query strings the way dockerd reads them: the last value of a key wins,
//! and a boolean is true unless it is empty, `0`, `no`, `false` or `none`.

use std::collections::HashMap;

use axum::http::Uri;

use super::error::{ApiError, ApiResult};

/// Query strings longer than this are refused before parsing.
const MAX_QUERY: usize = 64 * 1024;

pub(crate) struct Query {
    last: HashMap<String, String>,
    /// Every pair in order, for keys given several times (`names=a&names=b`).
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(uri: &Uri) -> ApiResult<Query> {
        let raw = uri.query().unwrap_or("");
        if raw.len() > MAX_QUERY {
            return Err(ApiError::bad_request(format!(
                "the query string is over {} KiB",
                MAX_QUERY >> 10
            )));
        }
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw)
            .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))?;
        Ok(Query {
            last: pairs.iter().cloned().collect(),
            pairs,
        })
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        self.last
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn bool(&self, key: &str) -> bool {
        self.last.get(key).is_some_and(|v| {
            !matches!(
                v.to_ascii_lowercase().as_str(),
                "" | "0" | "no" | "false" | "none"
            )
        })
    }

    /// `h` and `w` of a resize: rows and columns, 1 to 1000 each.
    pub fn window_size(&self) -> ApiResult<(u16, u16)> {
        let dim = |k: &str| {
            self.str(k)
                .and_then(|v| v.parse::<u16>().ok())
                .filter(|v| (1..=1000).contains(v))
                .ok_or_else(|| {
                    ApiError::bad_request(format!("{k} must be a number from 1 to 1000"))
                })
        };
        Ok((dim("h")?, dim("w")?))
    }

    /// Every value of `key`, in order.
    pub fn all(&self, key: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// `filters` as JSON: the map form `{"label":{"a=b":true}}` or the
    /// older list form `{"label":["a=b"]}`; key → values.
    pub fn filters(&self) -> ApiResult<HashMap<String, Vec<String>>> {
        let Some(raw) = self.str("filters") else {
            return Ok(HashMap::new());
        };
        let value: serde_json::Value = serde_json::from_str(raw)
            .map_err(|e| ApiError::bad_request(format!("invalid filter: {e}")))?;
        let serde_json::Value::Object(map) = value else {
            return Err(ApiError::bad_request("invalid filter: not a JSON object"));
        };
        let mut filters = HashMap::new();
        for (key, values) in map {
            let values: Vec<String> = match values {
                serde_json::Value::Object(m) => m
                    .into_iter()
                    .filter(|(_, on)| on.as_bool().unwrap_or(false))
                    .map(|(v, _)| v)
                    .collect(),
                serde_json::Value::Array(a) => a
                    .into_iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "invalid filter '{key}': values must be a map or a list"
                    )));
                }
            };
            filters.insert(key, values);
        }
        Ok(filters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Query {
        Query::parse(&s.parse::<Uri>().unwrap()).unwrap()
    }

    #[test]
    fn booleans_follow_dockerd() {
        let query = q("/x?a=1&b=true&c=0&d=no&e=false&f=none&g=&h=yes&h=0");
        assert!(query.bool("a") && query.bool("b"));
        for off in ["c", "d", "e", "f", "g", "h", "missing"] {
            assert!(!query.bool(off), "{off}");
        }
    }

    #[test]
    fn filters_in_both_forms() {
        let map = q("/x?filters=%7B%22dangling%22%3A%7B%22true%22%3Atrue%7D%7D");
        assert_eq!(map.filters().unwrap()["dangling"], vec!["true"]);
        let list = q("/x?filters=%7B%22reference%22%3A%5B%22busybox%22%5D%7D");
        assert_eq!(list.filters().unwrap()["reference"], vec!["busybox"]);
        assert!(q("/x?filters=nope").filters().is_err());
        assert!(q("/x?filters=%5B1%5D").filters().is_err());
    }
}
