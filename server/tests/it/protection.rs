use reqwest::StatusCode;

use crate::harness::*;

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
        body.contains("Too many login attempts for this account from your network address")
            && body.contains("seconds"),
        "{body}"
    );
    server.log_once_it_says("login rate limited");
}

/// --trust-proxy takes addresses and networks; anything else stops the
/// server before it starts, saying what to write.
#[test]
fn trust_proxy_refuses_what_is_not_an_address() {
    let dir = temp_dir();
    for bad in ["nonsense", "true", "10.0.0.0/40"] {
        let out = cli(
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                dir.path().to_str().unwrap(),
                "--trust-proxy",
                bad,
            ],
            "",
        );
        assert!(!out.status.success(), "{bad:?} was accepted");
        let err = text(&out.stderr);
        assert!(
            err.contains(&format!("{bad:?} is not an IP address or network"))
                && err.contains("10.0.0.0/8"),
            "{err}"
        );
    }
}

/// A login name cannot forge log lines, and a huge one is not logged whole.
#[tokio::test]
async fn login_names_are_escaped_and_cut_in_the_log() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let forged = "nobody\n2026-01-01T00:00:00.000000Z  INFO forged: admin logged in";
    login(&browser(), &server, forged, "whatever pw").await;
    let huge = "y".repeat(20_000);
    login(&browser(), &server, &huge, "whatever pw").await;
    server.log_once_it_says("login refused");
    // The long name's line, cut: both lines are in.
    let log = server.log_once_it_says(&"y".repeat(16));
    assert!(
        !log.lines()
            .any(|l| l.starts_with("2026-01-01T00:00:00.000000Z  INFO forged")),
        "a forged line:\n{log}"
    );
    assert!(
        !log.contains(&"y".repeat(200)),
        "a 20 KB name was logged whole"
    );
}
