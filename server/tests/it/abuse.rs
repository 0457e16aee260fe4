//! What one hostile client can do to everyone else: each test plays the
//! attacker against the real server on loopback, with bounded loops, and
//! checks that other users are still served.

use std::time::{Duration, Instant};

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::harness::*;
use crate::labs::{
    connect, connect_url, lab_server, read_until, start_lesson_lab, type_line, user_token,
};

/// How long a login may take while someone attacks.
const LOGIN_BUDGET: Duration = Duration::from_secs(1);

/// Logs `name` in from a fresh browser and returns how long it took.
async fn timed_login(server: &Server, name: &str, password: &str) -> Duration {
    let client = browser();
    let started = Instant::now();
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        login(&client, server, name, password),
    )
    .await
    .unwrap_or_else(|_| panic!("login of {name} hung for 10 s"));
    assert_eq!(response.status(), 303, "login of {name} failed");
    started.elapsed()
}

/// A student whose shell stops reading, whose input queue is full, and who
/// piles hundreds of sockets onto that terminal must not slow anyone else
/// down: logins, lab calls and the server's thread count stay as they were.
#[tokio::test(flavor = "multi_thread")]
async fn a_terminal_that_stops_reading_stalls_nobody_else() {
    let data = temp_dir();
    let token = user_token(&data, "mallory");
    add_user(data.path(), "bystander", "student", "bystander password");
    let server = lab_server(&data);
    let (id, _guard) = start_lesson_lab(&server, &token, "01-what-is-a-container").await;
    let threads_before = server.threads();

    let mut term = connect(&server, &token, &id, "node1", None).await.unwrap();
    type_line(&mut term, "stty raw -echo; echo st''alled; sleep 600").await;
    read_until(&mut term, "stalled").await;
    // 120 KB of input the shell never reads: the PTY's buffer fills and
    // the rest waits in the server. Sent from a task of its own, as the
    // sender may be held back.
    let flood = tokio::spawn(async move {
        for _ in 0..30 {
            if term
                .send(Message::Binary(vec![b'x'; 4096].into()))
                .await
                .is_err()
            {
                break;
            }
        }
        term
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    // 520 more sockets on the same terminal, one byte each.
    let attempts: Vec<_> = (0..520)
        .map(|_| {
            let (url, token, id) = (server.url.clone(), token.clone(), id.clone());
            tokio::spawn(async move {
                let mut socket = connect_url(&url, &token, &id, "node1", None).await?;
                socket.send(Message::Binary(b"y".to_vec().into())).await?;
                Ok::<_, WsError>(socket)
            })
        })
        .collect();
    let mut open = Vec::new();
    let mut refused = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(socket) => open.push(socket),
            Err(WsError::Http(response)) => {
                assert_eq!(response.status(), 429);
                let body = text(response.body().as_deref().unwrap_or_default());
                assert!(body.contains("close one of them"), "{body}");
                refused += 1;
            }
            Err(other) => panic!("a socket failed other than by a clear refusal: {other}"),
        }
    }
    assert!(
        open.len() < 10,
        "{} more sockets were let onto one terminal ({refused} refused)",
        open.len()
    );

    for attempt in 0..3 {
        let took = timed_login(&server, "bystander", "bystander password").await;
        assert!(
            took < LOGIN_BUDGET,
            "login {attempt} took {took:?} while a terminal was flooded"
        );
    }
    let started = Instant::now();
    let lab = reqwest::Client::new()
        .get(server.at(&format!("/api/sessions/{id}")))
        .bearer_auth(&token)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("the lab answers while its terminal is flooded");
    assert_eq!(lab.status(), 200);
    assert!(
        started.elapsed() < LOGIN_BUDGET,
        "GET lab took {:?}",
        started.elapsed()
    );
    let threads = server.threads();
    assert!(
        threads < threads_before + 20,
        "the server went from {threads_before} to {threads} threads"
    );
    drop(open);
    flood.abort();
}
