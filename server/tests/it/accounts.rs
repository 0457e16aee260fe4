use reqwest::StatusCode;

use crate::harness::*;

#[tokio::test]
async fn first_start_offers_a_one_time_admin_setup_link() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let log = server.log();
    let link = log
        .split_whitespace()
        .find(|w| w.contains("/setup/"))
        .unwrap_or_else(|| panic!("no setup link in the log:\n{log}"))
        .trim_end_matches(',')
        .to_string();
    assert!(
        log.contains("layerlab user add"),
        "the log also names the CLI way"
    );
    let path = &link[link.find("/setup/").unwrap()..];
    let client = browser();
    let response = submit(
        &client,
        &server,
        path,
        path,
        &[
            ("name", "root-admin"),
            ("password", "admin password"),
            ("confirm", "admin password"),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let me: serde_json::Value = json(client.get(server.at("/api/me"))).await;
    assert_eq!(me["role"], "admin");
    let again = browser().get(server.at(path)).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::NOT_FOUND, "the link works once");
    let wrong = browser()
        .get(server.at("/setup/guess"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn cli_manages_users_and_tokens_while_the_server_runs() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let data = dir.path().to_str().unwrap();

    // --data-dir after the subcommand's own arguments, and from the environment.
    add_user(dir.path(), "frank", "instructor", "frank's password");
    let out = layerlab_on(dir.path())
        .args(["user", "add", "grace", "--role", "student"])
        .env("LAYERLAB_DATA_DIR", data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let generated = text(&out.stdout).trim().to_string();
    assert!(
        generated.len() >= 16,
        "a generated password is printed on stdout"
    );

    let list = cli(&["--data-dir", data, "user", "list"], "");
    let listing = text(&list.stdout);
    assert!(
        listing.contains("frank") && listing.contains("instructor"),
        "{listing}"
    );
    assert!(
        listing.contains("grace") && listing.contains("student"),
        "{listing}"
    );

    let client = browser();
    assert_eq!(
        login(&client, &server, "grace", &generated).await.status(),
        StatusCode::SEE_OTHER
    );

    let out = cli(&["token", "create", "frank", "--data-dir", data], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let token = text(&out.stdout).trim().to_string();
    assert!(
        !token.contains(' ') && !token.contains('\n'),
        "stdout holds only the token: {token:?}"
    );
    let me: serde_json::Value = json(
        reqwest::Client::new()
            .get(server.at("/api/me"))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(me["name"], "frank");
    let bad = reqwest::Client::new()
        .get(server.at("/api/me"))
        .bearer_auth("llt_forged")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    assert!(bad.text().await.unwrap().contains("token create"));

    let out = cli(
        &[
            "user",
            "passwd",
            "grace",
            "--password-stdin",
            "--data-dir",
            data,
        ],
        "grace's new password\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let me = client.get(server.at("/api/me")).send().await.unwrap();
    assert_eq!(
        me.status(),
        StatusCode::UNAUTHORIZED,
        "a password change ends browser sessions"
    );
    assert_eq!(
        login(&browser(), &server, "grace", "grace's new password")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );

    let dup = cli(
        &[
            "user",
            "add",
            "frank",
            "--password-stdin",
            "--data-dir",
            data,
        ],
        "whatever pw\n",
    );
    assert!(!dup.status.success());
    assert!(text(&dup.stderr).contains("taken"), "{}", text(&dup.stderr));
    let unknown = cli(&["token", "create", "nobody", "--data-dir", data], "");
    assert!(!unknown.status.success());
    assert!(text(&unknown.stderr).contains("no user named"));
}

fn data_cli(dir: &std::path::Path, args: &[&str], stdin: &str) -> std::process::Output {
    let mut all = args.to_vec();
    all.extend(["--data-dir", dir.to_str().unwrap()]);
    cli(&all, stdin)
}

fn new_token(dir: &std::path::Path, name: &str, label: &str) -> String {
    let out = data_cli(dir, &["token", "create", name, "--label", label], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).trim().to_string()
}

async fn me_status(server: &Server, token: &str) -> StatusCode {
    reqwest::Client::new()
        .get(server.at("/api/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn tokens_are_listed_and_revoked_and_accounts_disabled() {
    let dir = temp_dir();
    let data = dir.path();
    add_user(data, "judy", "student", "judy's password");
    add_user(data, "root", "admin", "root's password");
    let server = Server::start(data, &[]);

    // List and revoke from the command line.
    let laptop = new_token(data, "judy", "laptop");
    let listing = text(&data_cli(data, &["token", "list"], "").stdout);
    let row = listing
        .lines()
        .find(|l| l.contains("laptop"))
        .unwrap_or_else(|| panic!("{listing}"));
    assert!(
        row.contains("judy") && !listing.contains(&laptop),
        "{listing}"
    );
    let id = row.split_whitespace().next().unwrap();
    assert_eq!(me_status(&server, &laptop).await, StatusCode::OK);
    assert!(
        data_cli(data, &["token", "revoke", id], "")
            .status
            .success()
    );
    assert_eq!(me_status(&server, &laptop).await, StatusCode::UNAUTHORIZED);
    let again = data_cli(data, &["token", "revoke", id], "");
    assert!(!again.status.success());
    assert!(text(&again.stderr).contains("token list"));

    // A password change ends the account's tokens too.
    let script = new_token(data, "judy", "script");
    let out = data_cli(
        data,
        &["user", "passwd", "judy", "--password-stdin"],
        "judy's new password\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(me_status(&server, &script).await, StatusCode::UNAUTHORIZED);

    // Disabled: no login, no session, no token; enabled: all back.
    let token = new_token(data, "judy", "ci");
    let judy = browser();
    assert_eq!(
        login(&judy, &server, "judy", "judy's new password")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    assert!(
        data_cli(data, &["user", "disable", "judy"], "")
            .status
            .success()
    );
    assert_eq!(
        judy.get(server.at("/api/me"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(me_status(&server, &token).await, StatusCode::UNAUTHORIZED);
    let refused = login(&browser(), &server, "judy", "judy's new password").await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(refused.text().await.unwrap().contains("disabled"));
    let list = text(&data_cli(data, &["user", "list"], "").stdout);
    assert!(
        list.lines()
            .any(|l| l.starts_with("judy") && l.contains("disabled")),
        "{list}"
    );
    assert!(
        data_cli(data, &["user", "enable", "judy"], "")
            .status
            .success()
    );
    assert_eq!(me_status(&server, &token).await, StatusCode::OK);

    // The same from the admin's page.
    let student = browser();
    login(&student, &server, "judy", "judy's new password").await;
    let page = student.get(server.at("/admin/users")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::FORBIDDEN);
    let admin = browser();
    login(&admin, &server, "root", "root's password").await;
    let page = get_page(&admin, &server.at("/admin/users")).await;
    let listing = text(&data_cli(data, &["token", "list"], "").stdout);
    let id = listing
        .lines()
        .find(|l| l.contains(" ci "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_string();
    assert!(page.contains("judy") && page.contains(&id), "{page}");
    let post = |path: String| {
        let admin = &admin;
        let server = &server;
        async move {
            let token = csrf_of(&get_page(admin, &server.at("/admin/users")).await);
            admin
                .post(server.at(&path))
                .form(&[("_csrf", token.as_str())])
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(
        post("/admin/users/judy/disable".into()).await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(me_status(&server, &token).await, StatusCode::UNAUTHORIZED);
    assert!(
        get_page(&admin, &server.at("/admin/users"))
            .await
            .contains("disabled")
    );
    assert_eq!(
        post("/admin/users/judy/enable".into()).await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(me_status(&server, &token).await, StatusCode::OK);
    assert_eq!(
        post(format!("/admin/tokens/{id}/revoke")).await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(me_status(&server, &token).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        post("/admin/users/root/disable".into()).await,
        StatusCode::BAD_REQUEST
    );
}
