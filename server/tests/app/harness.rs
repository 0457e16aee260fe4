//! The whole web tier in this process on a [`FakeHost`]: the same state
//! `layerlab serve` builds (from the same command line) and the same
//! router, without root, a kernel's namespaces or the image catalog.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response};
use clap::Parser;
use host::FakeHost;
use layerlab::cli::{Cli, Command};
use layerlab::db::Role;
use layerlab::http::SharedState;
use tower::ServiceExt;

#[path = "../common/client.rs"]
mod client;
pub use client::*;

/// A server on a fake host. [`App::start`] also listens on loopback, for
/// reqwest and websockets; [`App::send`] goes through the router alone.
pub struct App {
    pub state: SharedState,
    pub host: Arc<FakeHost>,
    pub url: String,
    router: axum::Router,
    _data: tempfile::TempDir,
}

const PEER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 40000);

impl App {
    /// A server as `layerlab serve EXTRA…` would make it, on the wall
    /// clock, listening on a free loopback port.
    pub async fn start(extra: &[&str]) -> App {
        let mut app = App::build(extra, Arc::new(SystemTime::now)).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        app.url = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(layerlab::http::serve(
            listener,
            None,
            app.state.clone(),
            std::future::pending(),
        ));
        app
    }

    /// A server whose labs (and host) tell the time by `clock`, which the
    /// test moves instead of sleeping. It does not listen, and no reaper
    /// runs by itself: the test calls `state.labs.reap()`.
    ///
    /// Not tokio's paused clock: it would move by itself while the SQLite
    /// worker thread answers a query (the runtime looks idle then), up to
    /// the pool's acquire timeout, and fail the query.
    pub async fn on_clock(extra: &[&str], clock: &TestClock) -> App {
        let clock = clock.clone();
        App::build(extra, Arc::new(move || clock.now())).await
    }

    /// [`App::on_clock`] on a clock of its own, for tests that do not move it.
    pub async fn in_process(extra: &[&str]) -> App {
        App::on_clock(extra, &TestClock::default()).await
    }

    async fn build(extra: &[&str], clock: layerlab::labs::Clock) -> App {
        let data = tempfile::Builder::new()
            .prefix("layerlab-app-")
            .tempdir()
            .expect("temp dir");
        let lessons = bundled_lessons();
        let mut args = vec![
            "layerlab".to_owned(),
            "serve".to_owned(),
            "--data-dir".to_owned(),
            data.path().display().to_string(),
        ];
        if !extra.contains(&"--lessons") {
            args.extend(["--lessons".to_owned(), lessons.display().to_string()]);
        }
        args.extend(extra.iter().map(|a| a.to_string()));
        let cli = Cli::try_parse_from(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let Command::Serve(serve) = cli.command else {
            unreachable!("parsed as serve");
        };
        let db = layerlab::db::Db::open(&cli.global.data_dir, None)
            .await
            .expect("open the database");
        let host = Arc::new(FakeHost::with_clock(clock.clone()));
        let state = layerlab::commands::state(
            &cli.global,
            db,
            &serve,
            host.clone(),
            layerlab::catalog::Catalog::ready(),
            clock,
        )
        .await
        .expect("build the server's state");
        App {
            router: layerlab::http::app(state.clone()),
            state,
            host,
            url: String::new(),
            _data: data,
        }
    }

    /// One request through the router, as from a loopback client.
    pub async fn send(&self, mut request: Request<Body>) -> Response<Body> {
        request.extensions_mut().insert(ConnectInfo(PEER));
        self.router
            .clone()
            .oneshot(request)
            .await
            .expect("the router answers everything")
    }

    /// `method path` as `token`'s user, with an optional JSON body; the
    /// status and the body parsed as JSON (`Null` when it is not).
    pub async fn api(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"));
        let request = match body {
            Some(body) => request
                .header("content-type", "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        }
        .expect("a valid request");
        let response = self.send(request).await;
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("read the body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }

    /// An account of `role` ("student", "instructor", "admin") with
    /// `password`, as `layerlab user add` makes it.
    pub async fn add_user(&self, name: &str, role: &str, password: &str) {
        let role = match role {
            "student" => Role::Student,
            "instructor" => Role::Instructor,
            "admin" => Role::Admin,
            other => panic!("no role {other:?}"),
        };
        let password = password.to_owned();
        let hash = tokio::task::spawn_blocking(move || layerlab::auth::password::hash(&password))
            .await
            .expect("hash");
        self.state
            .db
            .create_user(name, &hash, role)
            .await
            .expect("create the account");
    }

    /// The one-time link that makes the first admin, as `serve` logs it
    /// when there is none (made here: this server writes no log).
    pub async fn setup_path(&self) -> String {
        let token = layerlab::db::random_secret();
        self.state
            .db
            .set_setup_token(&token)
            .await
            .expect("set the setup token");
        format!("/setup/{token}")
    }

    /// The names of the admins.
    pub async fn admins(&self) -> Vec<String> {
        let users = self.state.db.list_users().await.expect("list users");
        users
            .into_iter()
            .filter(|u| u.role == Role::Admin)
            .map(|u| u.name)
            .collect()
    }

    /// Starts a lab for `lesson` as `token`'s user and waits until it is
    /// ready (on the fake host, at once); its id.
    pub async fn start_lab(&self, token: &str, lesson: &str) -> String {
        let body = serde_json::json!({ "lesson": lesson });
        let (status, lab) = self.api(token, "POST", "/api/labs", Some(body)).await;
        assert_eq!(status, 201, "{lab}");
        let id = lab["id"].as_str().expect("an id").to_owned();
        self.wait_ready(token, &id).await;
        id
    }

    /// Waits until lab `id` is ready; fails if it stops or takes 10 s.
    pub async fn wait_ready(&self, token: &str, id: &str) {
        let wall = std::time::Instant::now();
        loop {
            let (_, lab) = self
                .api(token, "GET", &format!("/api/labs/{id}"), None)
                .await;
            match lab["state"].as_str() {
                Some("ready") => return,
                Some("starting") if wall.elapsed() < std::time::Duration::from_secs(10) => {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await
                }
                _ => panic!("the lab did not start: {lab}"),
            }
        }
    }

    /// A student account with an API token.
    pub async fn user_token(&self, name: &str) -> String {
        self.account(name, Role::Student).await
    }

    /// An account of `role` with an API token. The password hash is a
    /// real one made once: tests here log in with tokens.
    pub async fn account(&self, name: &str, role: Role) -> String {
        static HASH: std::sync::LazyLock<String> =
            std::sync::LazyLock::new(|| layerlab::auth::password::hash("correct horse battery"));
        let db = &self.state.db;
        let user = db
            .create_user(name, &HASH, role)
            .await
            .expect("create the account");
        db.create_token(&user.id, "test").await.expect("a token")
    }
}

/// A clock that moves only when the test says so.
#[derive(Clone)]
pub struct TestClock(Arc<std::sync::Mutex<SystemTime>>);

impl Default for TestClock {
    fn default() -> Self {
        Self(Arc::new(std::sync::Mutex::new(SystemTime::now())))
    }
}

impl TestClock {
    pub fn now(&self) -> SystemTime {
        *self.0.lock().expect("clock")
    }

    pub fn advance(&self, by: std::time::Duration) {
        *self.0.lock().expect("clock") += by;
    }
}

impl Site for App {
    fn url(&self) -> &str {
        assert!(
            !self.url.is_empty(),
            "this App does not listen: use App::start"
        );
        &self.url
    }
}
