//! Sign-up, login, logout and redirects, in process.

use reqwest::StatusCode;

use crate::harness::*;

#[tokio::test]
async fn signup_logs_in_and_logout_ends_the_session() {
    let server = App::start(&[]).await;
    let client = browser();

    let response = signup(&client, &server, "Alice", "correct horse battery").await;
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "sign-up redirects home"
    );
    let home = get_page(&client, &server.at("/")).await;
    assert!(
        home.contains(">alice<") || home.contains("alice"),
        "home shows the new user: {home}"
    );
    assert!(home.contains("Log out"));

    let token = csrf_of(&home);
    let response = client
        .post(server.at("/logout"))
        .form(&[("_csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let home = get_page(&client, &server.at("/")).await;
    assert!(
        home.contains("Log in") && !home.contains("Log out"),
        "logged out: {home}"
    );
    let me = client.get(server.at("/api/me")).send().await.unwrap();
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn signup_rejects_bad_names_short_passwords_mismatches_and_taken_names() {
    let server = App::start(&[]).await;
    let client = browser();
    let cases = [
        (
            "x",
            "long enough pw",
            "long enough pw",
            "2 to 32 characters",
        ),
        (
            "bad name",
            "long enough pw",
            "long enough pw",
            "lowercase letters",
        ),
        (
            "../etc",
            "long enough pw",
            "long enough pw",
            "lowercase letters",
        ),
        ("bob", "short", "short", "at least 8"),
        ("bob", "long enough pw", "different pw!!", "differ"),
    ];
    for (name, password, confirm, expected) in cases {
        let response = submit(
            &client,
            &server,
            "/signup",
            "/signup",
            &[("name", name), ("password", password), ("confirm", confirm)],
        )
        .await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{name}/{password}"
        );
        let body = response.text().await.unwrap();
        assert!(
            body.contains(expected),
            "{name}: expected {expected:?} in {body}"
        );
    }
    assert_eq!(
        signup(&client, &server, "bob", "long enough pw")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let other = browser();
    let response = signup(&other, &server, "BOB", "another password").await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert!(response.text().await.unwrap().contains("taken"));
}

#[tokio::test]
async fn login_with_wrong_password_is_refused_and_right_one_rotates_the_session() {
    let server = App::start(&[]).await;
    server
        .add_user("carol", "student", "carol's password")
        .await;
    let client = browser();

    let response = login(&client, &server, "carol", "wrong password").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("Wrong user name or password")
    );
    let response = login(&client, &server, "nobody", "whatever123").await;
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "unknown names look like wrong passwords"
    );

    let first = login(&client, &server, "carol", "carol's password").await;
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    let cookie_of = |r: &reqwest::Response| {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .find(|c| c.starts_with("layerlab_session="))
            .expect("login sets the session cookie")
    };
    let first_cookie = cookie_of(&first);
    assert!(
        first_cookie.contains("HttpOnly") && first_cookie.contains("SameSite=Lax"),
        "{first_cookie}"
    );
    // Logged in, /login redirects away; a second login posts from the home page's token.
    let token = csrf_of(&get_page(&client, &server.at("/")).await);
    let second = client
        .post(server.at("/login"))
        .form(&[
            ("_csrf", token.as_str()),
            ("name", "carol"),
            ("password", "carol's password"),
        ])
        .send()
        .await
        .unwrap();
    let second_cookie = cookie_of(&second);
    assert_ne!(
        first_cookie.split(';').next(),
        second_cookie.split(';').next(),
        "a new login gets a new session id"
    );

    // The replaced session is gone server-side, not just in this browser.
    let stale = reqwest::Client::new()
        .get(server.at("/api/me"))
        .header("cookie", first_cookie.split(';').next().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::UNAUTHORIZED);
    let me: serde_json::Value = json(client.get(server.at("/api/me"))).await;
    assert_eq!(me["name"], "carol");
    assert_eq!(me["role"], "student");
}

#[tokio::test]
async fn login_redirects_only_to_local_pages() {
    let server = App::start(&[]).await;
    server.add_user("dave", "student", "dave's password").await;
    // Browsers drop tabs and newlines from URLs and read `\\` as `/`.
    let hostile = [
        "https://evil.example/",
        "//evil.example",
        "/\t/evil.example",
        "/\n/evil.example",
        "/\\evil.example",
        "/lessons//evil.example",
        "/\u{e9}vil",
        "lessons/x",
    ];
    let cases: Vec<(&str, &str)> = hostile
        .iter()
        .map(|next| (*next, "/"))
        .chain([("/lessons/x?tab=2", "/lessons/x?tab=2")])
        .collect();
    // The login form's `next` (a few: each login counts against the account).
    let mut client = browser();
    for (next, expected) in [cases[2], cases[4], cases[8]] {
        client = browser();
        let response = submit(
            &client,
            &server,
            "/login",
            "/login",
            &[
                ("name", "dave"),
                ("password", "dave's password"),
                ("next", next),
            ],
        )
        .await;
        assert_eq!(response.headers()["location"], expected, "next={next:?}");
    }
    // Logged in, GET /login?next=… redirects at once.
    for (next, expected) in cases {
        let url = format!(
            "{}?{}",
            server.at("/login"),
            serde_urlencoded::to_string([("next", next)]).unwrap()
        );
        let response = client.get(url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            response.headers()["location"],
            expected,
            "GET next={next:?}"
        );
    }
}

#[tokio::test]
async fn htmx_login_swaps_the_form_or_redirects() {
    let server = App::start(&[]).await;
    server.add_user("erin", "student", "erin's password").await;
    let client = browser();
    let token = csrf_of(&get_page(&client, &server.at("/login")).await);
    let post = |password: &'static str| {
        client
            .post(server.at("/login"))
            .header("HX-Request", "true")
            .form(&[
                ("_csrf", token.as_str()),
                ("name", "erin"),
                ("password", password),
            ])
            .send()
    };
    let refused = post("not it at all").await.unwrap();
    assert_eq!(
        refused.status(),
        StatusCode::OK,
        "htmx only swaps 2xx answers"
    );
    let fragment = refused.text().await.unwrap();
    assert!(
        fragment.starts_with("<form") && fragment.contains("Wrong user name or password"),
        "{fragment}"
    );
    let accepted = post("erin's password").await.unwrap();
    assert_eq!(accepted.headers()["hx-redirect"], "/");
}

#[tokio::test]
async fn closed_signup_refuses_new_accounts() {
    let server = App::start(&["--signup", "closed"]).await;
    let client = browser();
    let response = client.get(server.at("/signup")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.text().await.unwrap().contains("sign-up is closed"));
    let token = csrf_of(&get_page(&client, &server.at("/login")).await);
    let response = client
        .post(server.at("/signup"))
        .form(&[
            ("_csrf", token.as_str()),
            ("name", "mallory"),
            ("password", "mallory pw 1"),
            ("confirm", "mallory pw 1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let users = server.state.db.list_users().await.expect("list users");
    assert!(users.iter().all(|u| u.name != "mallory"));
}

#[tokio::test]
async fn the_setup_link_makes_one_admin_however_many_race_for_it() {
    let server = App::start(&[]).await;
    let path = server.setup_path().await;
    // Six browsers load the form, then all submit at once.
    let mut forms = Vec::new();
    for i in 0..6 {
        let client = browser();
        let token = csrf_of(&get_page(&client, &server.at(&path)).await);
        forms.push((client, token, format!("admin{i}")));
    }
    let posts = forms.iter().map(|(client, token, name)| {
        client
            .post(server.at(&path))
            .form(&[
                ("_csrf", token.as_str()),
                ("name", name.as_str()),
                ("password", "admin password"),
                ("confirm", "admin password"),
            ])
            .send()
    });
    let statuses: Vec<u16> = futures_util::future::join_all(posts)
        .await
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 303).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [303, 404].contains(s)),
        "{statuses:?}"
    );
    assert_eq!(
        server.admins().await.len(),
        1,
        "{:?}",
        server.admins().await
    );
}

#[tokio::test]
async fn the_setup_link_dies_once_an_admin_exists() {
    let server = App::start(&[]).await;
    let path = server.setup_path().await;
    let client = browser();
    let token = csrf_of(&get_page(&client, &server.at(&path)).await);
    server.add_user("boss", "admin", "boss password").await;

    let page = browser().get(server.at(&path)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    assert!(page.text().await.unwrap().contains("user add"));
    let post = client
        .post(server.at(&path))
        .form(&[
            ("_csrf", token.as_str()),
            ("name", "intruder"),
            ("password", "admin password"),
            ("confirm", "admin password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), StatusCode::NOT_FOUND);
    assert_eq!(server.admins().await, ["boss"]);
}
