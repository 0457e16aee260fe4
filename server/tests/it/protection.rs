use reqwest::StatusCode;

use crate::harness::*;

#[tokio::test]
async fn forms_without_a_valid_csrf_token_are_refused() {
    let dir = temp_dir();
    add_user(dir.path(), "alice", "student", "alice's password");
    let server = Server::start(dir.path(), &[]);
    let client = browser();
    get_page(&client, &server.at("/login")).await;
    let fields = [("name", "alice"), ("password", "alice's password")];

    let missing = client
        .post(server.at("/login"))
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::FORBIDDEN);
    assert!(missing.text().await.unwrap().contains("reload the page"));

    let mut forged = fields.to_vec();
    forged.push(("_csrf", "forged-token"));
    let response = client
        .post(server.at("/login"))
        .form(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    // A token from another browser does not fit this browser's cookie.
    let other = browser();
    let stolen = csrf_of(&get_page(&other, &server.at("/login")).await);
    let mut with_stolen = fields.to_vec();
    with_stolen.push(("_csrf", &stolen));
    let response = client
        .post(server.at("/login"))
        .form(&with_stolen)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    let me = client.get(server.at("/api/me")).send().await.unwrap();
    assert_eq!(
        me.status(),
        StatusCode::UNAUTHORIZED,
        "none of those logged in"
    );
}

#[tokio::test]
async fn forms_from_another_origin_are_refused() {
    let dir = temp_dir();
    add_user(dir.path(), "bob", "student", "bob's password");
    let server = Server::start(dir.path(), &[]);
    let client = browser();
    let token = csrf_of(&get_page(&client, &server.at("/login")).await);
    let form = [
        ("_csrf", token.as_str()),
        ("name", "bob"),
        ("password", "bob's password"),
    ];
    let response = client
        .post(server.at("/login"))
        .header("Origin", "http://evil.example")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = client
        .post(server.at("/login"))
        .header("Origin", server.url.clone())
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "our own origin is fine"
    );
}

#[tokio::test]
async fn login_attempts_are_rate_limited_per_account_with_a_clear_message() {
    let dir = temp_dir();
    add_user(dir.path(), "carol", "student", "carol's password");
    let server = Server::start(dir.path(), &[]);
    let client = browser();
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(
            login(&client, &server, "carol", "guess guess")
                .await
                .status(),
        );
    }
    assert_eq!(&statuses[..5], &[StatusCode::UNAUTHORIZED; 5]);
    assert_eq!(statuses[5], StatusCode::TOO_MANY_REQUESTS);
    let response = login(&client, &server, "carol", "carol's password").await;
    assert_eq!(
        response.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits"
    );
    let body = response.text().await.unwrap();
    assert!(
        body.contains("Too many login attempts for this account") && body.contains("seconds"),
        "{body}"
    );
    assert!(server.log().contains("login rate limited"));
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let client = browser();
    let token = csrf_of(&get_page(&client, &server.at("/login")).await);
    let huge = "x".repeat(1024 * 1024);
    let response = client
        .post(server.at("/login"))
        .form(&[
            ("_csrf", token.as_str()),
            ("name", huge.as_str()),
            ("password", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn responses_carry_security_headers_request_ids_and_compression() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let client = reqwest::Client::new();
    let health = client.get(server.at("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let headers = health.headers().clone();
    assert_eq!(health.text().await.unwrap(), "ok");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'self'")
            && csp.contains("script-src 'self'")
            && !csp.contains("unsafe"),
        "{csp}"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert!(!headers["x-request-id"].is_empty());

    let sent = client
        .get(server.at("/healthz"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(
        sent.headers()["x-request-id"],
        "trace-me-42",
        "a caller's request id is kept"
    );

    let page = client
        .get(server.at("/lessons/01-what-is-a-container"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["content-encoding"], "gzip");
}

#[tokio::test]
async fn static_assets_are_versioned_and_cached() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let client = reqwest::Client::new();
    let home = client
        .get(server.at("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let start = home.find("/static/").expect("home links a static asset");
    let css = &home[start..home[start..].find(".css").unwrap() + start + 4];
    let response = client.get(server.at(css)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/css");
    assert!(
        response.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    let stale = client
        .get(server.at("/static/oldversion/app.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.headers()["cache-control"], "no-cache");
    let htmx = client
        .get(server.at(&css.replace("app.css", "vendor/htmx.min.js")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        htmx.status(),
        StatusCode::OK,
        "htmx is bundled, not loaded from a CDN"
    );
    let missing = client
        .get(server.at("/static/x/../../Cargo.toml"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn api_errors_are_json_and_say_what_to_do() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let anonymous = reqwest::Client::new()
        .get(server.at("/api/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = anonymous.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("log in"), "{body}");
    let bad_auth = reqwest::Client::new()
        .get(server.at("/api/me"))
        .header("authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_auth.status(), StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = bad_auth.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("Bearer"), "{body}");
}
