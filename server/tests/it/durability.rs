use reqwest::StatusCode;

use crate::harness::*;

#[tokio::test]
async fn accounts_sessions_and_progress_survive_a_restart_and_a_crash() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let client = browser();
    assert_eq!(
        signup(&client, &server, "henry", "henry's password")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    get_page(&client, &server.at("/lessons/01-what-is-a-container")).await;
    let token_before = csrf_of(&get_page(&client, &server.at("/")).await);
    server.stop();

    // Cookies are per host, not per port: the browser keeps its session.
    let server = Server::start(dir.path(), &[]);
    let me = client.get(server.at("/api/me")).send().await.unwrap();
    assert_eq!(
        me.status(),
        StatusCode::OK,
        "the browser session survived a clean restart"
    );
    let home = get_page(&client, &server.at("/")).await;
    assert!(
        home.contains("progress started"),
        "lesson progress survived the restart"
    );
    assert_eq!(
        csrf_of(&home),
        token_before,
        "forms rendered before a restart still submit"
    );
    server.crash();

    let server = Server::start(dir.path(), &[]);
    let me: serde_json::Value = json(client.get(server.at("/api/me"))).await;
    assert_eq!(me["name"], "henry", "the session survived kill -9");
    let fresh = browser();
    assert_eq!(
        login(&fresh, &server, "henry", "henry's password")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    server.stop();
}
