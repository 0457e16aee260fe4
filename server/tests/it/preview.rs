//! The port preview on a real lab: the node's ports listed, nginx on a
//! published port and a registry's API seen through the server, fenced in
//! as a site of their own, and nothing of another student or of the host
//! reachable through it.

use std::net::TcpListener;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::harness::*;
use crate::labs::{Socket, lab_server, read_until, start_lesson_lab, type_line, user_token};

/// A websocket server in the node's perl (core modules only): it answers
/// the handshake, reads one masked text frame and sends it back prefixed
/// with `echo: `.
const ECHO: &[&str] = &[
    "cat > /tmp/ws.pl <<'PERL'",
    "use IO::Socket::INET; use Digest::SHA qw(sha1_base64); $SIG{PIPE} = 'IGNORE';",
    "my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 7000, Listen => 5, ReuseAddr => 1) or die;",
    "while (my $c = $s->accept) { my $k; while (my $l = <$c>) { $k = $1 if $l =~ /^Sec-WebSocket-Key:\\s*(\\S+)/i; last if $l =~ /^\\r?\\n$/ }",
    "  my $a = sha1_base64($k . '258EAFA5-E914-47DA-95CA-C5AB0DC85B11') . '=';",
    "  print $c \"HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\nSec-WebSocket-Accept: $a\\r\\n\\r\\n\";",
    "  read($c, my $h, 2); my $n = ord(substr($h, 1, 1)) & 127; read($c, my $m, 4); read($c, my $p, $n);",
    "  my $u = join '', map { chr(ord(substr($p, $_, 1)) ^ ord(substr($m, $_ % 4, 1))) } 0 .. $n - 1;",
    "  my $o = \"echo: $u\"; print $c \"\\x81\" . chr(length $o) . $o; close $c }",
    "PERL",
    "(setsid perl /tmp/ws.pl >/tmp/ws.log 2>&1 &)",
];

async fn run_lines(term: &mut Socket, lines: &[&str]) {
    for line in lines {
        type_line(term, line).await;
    }
    type_line(term, "echo typed-$((40+2))").await;
    read_until(term, "typed-42").await;
}

async fn get(server: &Server, token: Option<&str>, path: &str) -> reqwest::Response {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut request = client.get(server.at(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn published_ports_open_through_the_preview_for_their_owner_only() {
    let data = temp_dir();
    let ada = user_token(&data, "ada");
    let bob = user_token(&data, "bob");
    let server = lab_server(&data);
    let (lab, _guard) = start_lesson_lab(&server, &ada, "02-images-vs-containers").await;
    let mut term = crate::labs::connect(&server, &ada, &lab, "node1", None)
        .await
        .unwrap();

    let none: Value = get(&server, Some(&ada), &format!("/api/labs/{lab}/ports"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(none["ports"], serde_json::json!([]), "{none}");

    type_line(
        &mut term,
        "docker run -d -p 8080:80 nginx >/dev/null && docker run -d -p 5000:5000 registry:2 >/dev/null && \
         until curl -sf -o /dev/null localhost:8080 && curl -sf -o /dev/null localhost:5000/v2/; do sleep 0.1; done; \
         echo up-$((40+2))",
    )
    .await;
    read_until(&mut term, "up-42").await;

    let listed: Value = get(&server, Some(&ada), &format!("/api/labs/{lab}/ports"))
        .await
        .json()
        .await
        .unwrap();
    let ports: Vec<u64> = listed["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_u64().unwrap())
        .collect();
    assert_eq!(ports, [5000, 8080], "{listed}");
    assert_eq!(
        listed["ports"][1]["url"],
        format!("/labs/{lab}/ports/8080/")
    );

    let moved = get(&server, Some(&ada), &format!("/labs/{lab}/ports/8080")).await;
    assert_eq!(moved.status(), 307);
    assert_eq!(
        moved.headers()["location"],
        format!("/labs/{lab}/ports/8080/")
    );

    let page = get(&server, Some(&ada), &format!("/labs/{lab}/ports/8080/")).await;
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(policy.starts_with("sandbox "), "{policy}");
    assert!(!policy.contains("allow-same-origin"), "{policy}");
    let welcome = page.text().await.unwrap();
    assert!(welcome.contains("nginx is running"), "{welcome}");

    let catalog = get(
        &server,
        Some(&ada),
        &format!("/labs/{lab}/ports/5000/v2/_catalog?n=10"),
    )
    .await;
    assert_eq!(catalog.status(), 200);
    assert_eq!(
        catalog.json::<Value>().await.unwrap(),
        serde_json::json!({"repositories": []})
    );

    for (who, token) in [("another student", Some(bob.as_str())), ("nobody", None)] {
        let refused = get(&server, token, &format!("/labs/{lab}/ports/8080/")).await;
        assert_eq!(refused.status(), 404, "{who} reached the preview");
        assert!(!refused.text().await.unwrap().contains("nginx"));
    }
    let listing = get(&server, Some(&bob), &format!("/api/labs/{lab}/ports")).await;
    assert_eq!(listing.status(), 403, "another student listed the ports");

    let nothing = get(&server, Some(&ada), &format!("/labs/{lab}/ports/9/")).await;
    assert_eq!(nothing.status(), 502);
    assert!(
        nothing
            .text()
            .await
            .unwrap()
            .contains("nothing answers on port 9 in node1")
    );

    run_lines(&mut term, ECHO).await;
    type_line(&mut term, "until (exec 3<>/dev/tcp/127.0.0.1/7000) 2>/dev/null; do sleep 0.1; done; echo ws-$((40+2))").await;
    read_until(&mut term, "ws-42").await;
    let url = server
        .at(&format!("/labs/{lab}/ports/7000/"))
        .replacen("http://", "ws://", 1);
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {ada}").parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("a websocket through the preview");
    socket.send(Message::text("hi node1")).await.unwrap();
    let answer = socket.next().await.expect("an answer").unwrap();
    assert_eq!(answer, Message::text("echo: hi node1"));

    // A server on the host's loopback is not the node's.
    let outside = TcpListener::bind("127.0.0.1:0").unwrap();
    outside.set_nonblocking(true).unwrap();
    let port = outside.local_addr().unwrap().port();
    let host = get(&server, Some(&ada), &format!("/labs/{lab}/ports/{port}/")).await;
    assert_eq!(host.status(), 502);
    assert!(outside.accept().is_err(), "the preview reached the host");
}
