//! What tests of a server do as its clients: a browser-like client,
//! forms with their CSRF tokens, JSON and API-token calls, terminal
//! websockets. Shared by the suites on the real binary (`it`) and in
//! process (`app`); each uses its own part of it.
#![allow(dead_code)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A terminal websocket.
pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A server a test talks to over HTTP.
pub trait Site {
    /// `http://127.0.0.1:PORT`.
    fn url(&self) -> &str;

    /// The URL of `path` on this server.
    fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url())
    }
}

impl<T: Site + ?Sized> Site for std::sync::Arc<T> {
    fn url(&self) -> &str {
        (**self).url()
    }
}

/// Writes `content` to `rel` under `root`, making its directories (a
/// course of a test's own).
pub fn write_file(root: &std::path::Path, rel: &str, content: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

/// The value a response sets cookie `name` to.
pub fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .map(|rest| rest.split(';').next().unwrap().to_string())
}

/// The course this repository bundles.
pub fn bundled_lessons() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../lessons")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A browser-like client: keeps cookies, does not follow redirects (tests
/// look at them).
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The CSRF token embedded in a page's forms.
pub fn csrf_of(html: &str) -> String {
    let marker = "name=\"_csrf\" value=\"";
    let start = html
        .find(marker)
        .unwrap_or_else(|| panic!("no csrf field in page:\n{html}"))
        + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_string()
}

/// Sends a request and parses its JSON answer.
pub async fn json(request: reqwest::RequestBuilder) -> serde_json::Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// The body of `url`, fetched as the API token's user.
pub async fn text_as(token: &str, url: &str) -> String {
    send_as(token, reqwest::Method::GET, url)
        .await
        .text()
        .await
        .unwrap()
}

/// `method` on `url` as the API token's user; fails unless it succeeds.
pub async fn send_as(token: &str, method: reqwest::Method, url: &str) -> reqwest::Response {
    let response = reqwest::Client::new()
        .request(method.clone(), url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{method} {url}: {}",
        response.status()
    );
    response
}

pub async fn get_page(client: &reqwest::Client, url: &str) -> String {
    let response = client.get(url).send().await.unwrap();
    assert!(
        response.status().is_success(),
        "GET {url}: {}",
        response.status()
    );
    response.text().await.unwrap()
}

/// Loads `page` for its token, then posts `fields` with it.
pub async fn submit(
    client: &reqwest::Client,
    site: &impl Site,
    page: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    submit_to(client, site.url(), page, action, fields).await
}

/// Fills the form of `page` on the server at `base` and posts it to `action`.
pub async fn submit_to(
    client: &reqwest::Client,
    base: &str,
    page: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let html = get_page(client, &format!("{base}{page}")).await;
    let token = csrf_of(&html);
    let mut form: Vec<(&str, &str)> = vec![("_csrf", &token)];
    form.extend_from_slice(fields);
    client
        .post(format!("{base}{action}"))
        .form(&form)
        .send()
        .await
        .unwrap()
}

pub async fn signup(
    client: &reqwest::Client,
    site: &impl Site,
    name: &str,
    password: &str,
) -> reqwest::Response {
    submit(
        client,
        site,
        "/signup",
        "/signup",
        &[
            ("name", name),
            ("password", password),
            ("confirm", password),
        ],
    )
    .await
}

pub async fn login(
    client: &reqwest::Client,
    site: &impl Site,
    name: &str,
    password: &str,
) -> reqwest::Response {
    submit(
        client,
        site,
        "/login",
        "/login",
        &[("name", name), ("password", password)],
    )
    .await
}

/// A loopback port nothing listens on right now (for a process that binds
/// it itself, so another may take it in between: rare enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("layerlab-it-")
        .tempdir()
        .unwrap()
}

/// Opens terminal `name` of lab `id` as `token`'s user, from `origin`.
pub async fn connect(
    site: &impl Site,
    token: &str,
    id: &str,
    name: &str,
    origin: Option<&str>,
) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
    connect_url(site.url(), token, id, name, origin).await
}

/// [`connect`] to the server at `base_url`, for tasks that do not borrow
/// the server.
pub async fn connect_url(
    base_url: &str,
    token: &str,
    id: &str,
    name: &str,
    origin: Option<&str>,
) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
    let url = format!("{base_url}/api/labs/{id}/terminals/{name}").replacen("http://", "ws://", 1);
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
    }
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(socket, _)| socket)
}

/// Reads terminal output until `want` appears in what was read (since the
/// call); returns all of it.
pub async fn read_until(socket: &mut Socket, want: &str) -> String {
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let next = tokio::time::timeout_at(deadline, socket.next()).await;
        match next {
            Ok(Some(Ok(Message::Binary(bytes)))) => {
                seen.push_str(&String::from_utf8_lossy(&bytes));
                if seen.contains(want) {
                    return seen;
                }
                // Keep memory bounded while a flood scrolls by.
                if seen.len() > 1 << 20 {
                    seen.drain(..seen.len() - 4096);
                }
            }
            Ok(Some(Ok(_))) => {}
            Ok(other) => panic!("socket ended waiting for {want:?}: {other:?}; got {seen:?}"),
            Err(_) => panic!(
                "no {want:?} within 30s; last output: {:?}",
                &seen[seen.len().saturating_sub(500)..]
            ),
        }
    }
}

pub async fn type_line(socket: &mut Socket, line: &str) {
    socket
        .send(Message::Binary(format!("{line}\r").into_bytes().into()))
        .await
        .unwrap();
}
