//! CSRF, Origin, body limits, headers, caching and API errors, in process.

use reqwest::StatusCode;

use crate::harness::*;

#[tokio::test]
async fn forms_without_a_valid_csrf_token_are_refused() {
    let server = App::start(&[]).await;
    server
        .add_user("alice", "student", "alice's password")
        .await;
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
    let server = App::start(&[]).await;
    server.add_user("bob", "student", "bob's password").await;
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
    // Our host under another scheme is another origin.
    let https = server.url.replacen("http://", "https://", 1);
    let response = client
        .post(server.at("/login"))
        .header("Origin", https)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN, "https origin");
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
async fn oversized_bodies_are_refused() {
    let server = App::start(&[]).await;
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
    let server = App::start(&[]).await;
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
    let server = App::start(&[]).await;
    let client = reqwest::Client::new();
    let home = get_page(&client, &server.at("/")).await;
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
    // Every script and stylesheet a lesson page names (xterm.js and its
    // addons to load once a lab runs) is in the binary.
    let lesson = get_page(&client, &server.at("/lessons/01-what-is-a-container")).await;
    let assets: Vec<&str> = lesson
        .split('"')
        .filter(|part| part.starts_with("/static/"))
        .collect();
    for name in [
        "htmx.min.js",
        "xterm.js",
        "xterm.css",
        "addon-fit.js",
        "lab.js",
    ] {
        assert!(
            assets.iter().any(|a| a.ends_with(&format!("/{name}"))),
            "the lesson page names {name}: {assets:?}"
        );
    }
    for asset in assets {
        let response = client.get(server.at(asset)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
        assert!(!response.bytes().await.unwrap().is_empty(), "{asset}");
    }
    let missing = client
        .get(server.at("/static/x/../../Cargo.toml"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn api_errors_are_json_and_say_what_to_do() {
    let server = App::start(&[]).await;
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

/// Someone guessing a password slows down only themselves: the owner, from
/// another address (behind a proxy named by --trust-proxy, the address it
/// reports), still logs in. A client that is not a named proxy cannot
/// escape the limit by writing X-Forwarded-For itself.
#[tokio::test]
async fn a_guesser_does_not_lock_the_owner_out() {
    // The test connects from 127.0.0.1 as the proxy, and from 127.0.0.2
    // as a client reaching the server directly.
    let server = App::start(&["--trust-proxy", "10.0.0.0/8,127.0.0.1"]).await;
    server
        .add_user("heidi", "student", "heidi's password")
        .await;
    server.add_user("ivan", "student", "ivan's password").await;
    let from = |local: &str, forwarded: &str| {
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .local_address(local.parse::<std::net::IpAddr>().unwrap())
            .default_headers(
                [(
                    "x-forwarded-for".parse().unwrap(),
                    forwarded.parse().unwrap(),
                )]
                .into_iter()
                .collect(),
            )
            .build()
            .unwrap()
    };
    // The client's own X-Forwarded-For entries come first; the proxy's is last.
    let guesser = from("127.0.0.1", "10.9.9.9, 203.0.113.7");
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(
            login(&guesser, &server, "heidi", "guess guess")
                .await
                .status(),
        );
    }
    assert_eq!(statuses[5], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
    let owner = from("127.0.0.1", "10.9.9.9, 198.51.100.9");
    let response = login(&owner, &server, "heidi", "heidi's password").await;
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "the owner is locked out"
    );

    // Directly, a new made-up address on every try changes nothing: the
    // limit keys on the connecting address.
    let mut statuses = Vec::new();
    for n in 0..6 {
        let direct = from("127.0.0.2", &format!("198.51.100.{}", 100 + n));
        statuses.push(
            login(&direct, &server, "ivan", "guess guess")
                .await
                .status(),
        );
    }
    assert_eq!(statuses[5], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
    // The same header through the proxy is believed: another client.
    let owner = from("127.0.0.1", "198.51.100.105");
    let response = login(&owner, &server, "ivan", "ivan's password").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

/// A token for a CSRF cookie value the attacker planted in the victim's
/// browser does not work on the victim's session; login rotates the value.
#[tokio::test]
async fn a_csrf_token_for_a_planted_cookie_is_refused() {
    let server = App::start(&[]).await;
    server.add_user("ivan", "student", "ivan's password").await;
    let victim = browser();
    let before = victim.get(server.at("/login")).send().await.unwrap();
    let csrf_before = set_cookie(&before, "layerlab_csrf").expect("a csrf cookie");
    let logged_in = login(&victim, &server, "ivan", "ivan's password").await;
    assert_eq!(logged_in.status(), StatusCode::SEE_OTHER);
    let session = set_cookie(&logged_in, "layerlab_session").expect("a session cookie");
    let rotated = set_cookie(&logged_in, "layerlab_csrf").expect("login sets a new csrf cookie");
    assert_ne!(rotated, csrf_before);

    // The attacker's own cookie value and its token, planted beside the
    // victim's session.
    let attacker = browser();
    let page = attacker.get(server.at("/login")).send().await.unwrap();
    let planted = set_cookie(&page, "layerlab_csrf").unwrap();
    let token = csrf_of(&page.text().await.unwrap());
    let forged = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(server.at("/logout"))
        .header(
            "cookie",
            format!("layerlab_session={session}; layerlab_csrf={planted}"),
        )
        .form(&[("_csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let me = victim.get(server.at("/api/me")).send().await.unwrap();
    assert_eq!(
        me.status(),
        StatusCode::OK,
        "the forged logout went through"
    );

    // The victim's own page token works.
    let token = csrf_of(&get_page(&victim, &server.at("/")).await);
    let logout = victim
        .post(server.at("/logout"))
        .form(&[("_csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn over_https_the_csrf_cookie_is_host_only() {
    let server = App::start(&["--base-url", "https://labs.example"]).await;
    let page = reqwest::Client::new()
        .get(server.at("/login"))
        .send()
        .await
        .unwrap();
    let cookie = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.contains("csrf"))
        .expect("a csrf cookie");
    assert!(cookie.starts_with("__Host-layerlab_csrf="), "{cookie}");
    assert!(
        cookie.contains("Secure") && cookie.contains("Path=/"),
        "{cookie}"
    );
    assert!(!cookie.contains("Domain"), "{cookie}");
}

/// An answer sent before the request's body arrived (an API call without
/// credentials is refused at once) leaves a keep-alive client a usable
/// connection; a rest too large to read for nothing gets `Connection:
/// close` instead of a connection that closes unannounced.
#[tokio::test]
async fn an_answer_before_the_body_keeps_the_connection_usable() {
    use axum::body::Bytes;
    use axum::http::{Method, Request};
    let server = App::start(&[]).await;
    let addr = server
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("server address");
    let create_lab = |len: usize| {
        Request::builder()
            .method(Method::POST)
            .uri("/api/labs")
            .header("Content-Type", "application/json")
            .body(Bytes::from(vec![b' '; len]))
            .expect("request")
    };
    let healthz = || {
        Request::builder()
            .uri("/healthz")
            .body(())
            .expect("request")
    };

    let answer = testkit::http::answer_before_body(addr, create_lab(64), healthz()).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(!answer.says_close(), "{answer:?}");
    assert_eq!(answer.next, Ok(StatusCode::OK));

    let answer = testkit::http::answer_before_body(addr, create_lab(2 << 20), healthz()).await;
    assert!(answer.status.is_client_error(), "{answer:?}");
    assert!(answer.says_close(), "{answer:?}");
}
