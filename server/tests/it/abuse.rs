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
        .get(server.at(&format!("/api/labs/{id}")))
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

/// 128 sign-ups at once with the longest passwords allowed: a few accounts
/// are made, the rest are told to wait, and memory stays put (argon2 takes
/// 19 MiB per hash in flight).
#[tokio::test(flavor = "multi_thread")]
async fn a_crowd_of_signups_is_limited_and_hashing_stays_bounded() {
    let data = temp_dir();
    let server = Server::start(data.path(), &[]);
    let password = "p".repeat(256);
    let mut forms = Vec::new();
    for _ in 0..128 {
        let client = browser();
        let token = csrf_of(&get_page(&client, &server.at("/signup")).await);
        forms.push((client, token));
    }
    let peak_before = server.peak_rss_kib();
    let server = &server;
    let posts = forms.iter().enumerate().map(|(i, (client, token))| {
        let name = format!("throwaway{i}");
        let password = password.clone();
        async move {
            let response = client
                .post(server.at("/signup"))
                .form(&[
                    ("_csrf", token.as_str()),
                    ("name", name.as_str()),
                    ("password", password.as_str()),
                    ("confirm", password.as_str()),
                ])
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        }
    });
    let answers = futures_util::future::join_all(posts).await;
    let created = answers.iter().filter(|(s, _)| *s == 303).count();
    assert!(
        (1..=30).contains(&created),
        "{created} accounts from one address"
    );
    for (status, body) in &answers {
        match status {
            303 => {}
            429 => assert!(body.contains("from your network address"), "{body}"),
            503 => assert!(body.contains("try again in a few seconds"), "{body}"),
            other => panic!("sign-up answered {other}: {body}"),
        }
    }
    let grown_mib = (server.peak_rss_kib() - peak_before) / 1024;
    assert!(grown_mib < 200, "the server grew by {grown_mib} MiB");
}

/// Reads from `socket` until it ends or `within` passes; true when it
/// ended (closed by the server, or reset).
async fn closed_within(socket: &mut crate::labs::Socket, within: Duration) -> bool {
    use futures_util::StreamExt;
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Err(_) => return false,
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return true,
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// Oversized frames, silent clients and slow request headers are cut off;
/// a user's sockets are capped over all their terminals.
#[tokio::test(flavor = "multi_thread")]
async fn sockets_and_connections_are_bounded_in_size_count_and_time() {
    let data = temp_dir();
    let token = user_token(&data, "hoarder");
    let server = crate::labs::lab_server_with(&data, &["--socket-timeout", "3s"]);
    let (id, _guard) = start_lesson_lab(&server, &token, "01-what-is-a-container").await;

    // A 1 MiB message is refused: the socket is closed, the shell unharmed.
    let mut big = connect(&server, &token, &id, "node1", None).await.unwrap();
    let _ = big.send(Message::Binary(vec![b'#'; 1 << 20].into())).await;
    assert!(
        closed_within(&mut big, Duration::from_secs(5)).await,
        "a 1 MiB message was accepted"
    );

    // A client that never reads never answers pings: closed after the
    // timeout. One that reads stays, however long it is quiet.
    let mut silent = connect(&server, &token, &id, "node1", None).await.unwrap();
    let mut quiet = connect(&server, &token, &id, "shell-2", None)
        .await
        .unwrap();
    let listening = tokio::spawn(async move {
        let alive = !closed_within(&mut quiet, Duration::from_secs(8)).await;
        (alive, quiet)
    });
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(
        closed_within(&mut silent, Duration::from_secs(1)).await,
        "a socket that answered no pings for 8 s is still open"
    );
    let (alive, mut quiet) = listening.await.unwrap();
    assert!(alive, "a socket answering pings was closed");
    type_line(&mut quiet, "echo still-$((2*3))").await;
    read_until(&mut quiet, "still-6").await;

    // Sockets per user, over all the lab's terminals.
    let mut held = vec![quiet];
    let mut refusal = None;
    'open: for name in ["node1", "shell-2", "shell-3", "shell-4"] {
        for _ in 0..4 {
            match connect(&server, &token, &id, name, None).await {
                Ok(socket) => held.push(socket),
                Err(WsError::Http(response)) => {
                    refusal = Some((
                        response.status(),
                        text(response.body().as_deref().unwrap_or_default()),
                    ));
                    if held.len() >= 12 {
                        break 'open;
                    }
                }
                Err(other) => panic!("{other}"),
            }
        }
    }
    let (status, body) = refusal.expect("a user opened 16 terminal sockets");
    assert_eq!(status, 429);
    assert_eq!(held.len(), 12, "{body}");
    assert!(body.contains("terminal connections open"), "{body}");
    drop(held);

    // Slow request headers: 50 connections that trickle a header line
    // are closed, not held.
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut tcp = tokio::net::TcpStream::connect(server.url.trim_start_matches("http://"))
            .await
            .unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut tcp, b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slow.push(tcp);
    }
    let started = Instant::now();
    let mut open = slow.len();
    while open > 0 && started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        open = 0;
        for tcp in &mut slow {
            // A header line a second never finishes the request.
            let _ = tokio::io::AsyncWriteExt::write_all(tcp, b"X-Slow: 1\r\n").await;
            if still_open(tcp) {
                open += 1;
            }
        }
    }
    assert_eq!(
        open, 0,
        "{open} slow-header connections still open after 20 s"
    );
}

/// Whether the server has not closed `tcp` (anything it sent is drained).
fn still_open(tcp: &tokio::net::TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match tcp.try_read(&mut buf) {
            Ok(0) => return false,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
    }
}
