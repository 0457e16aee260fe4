//! Lab sessions over the API and their terminal websockets, on real nodes
//! made from the test catalog.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::*;
use crate::sandbox::catalog;

// Other suites reach the terminal helpers through this module.
pub use crate::harness::{Socket, connect, connect_url, read_until, type_line};

pub fn lab_server(data: &tempfile::TempDir) -> Server {
    lab_server_with(data, &[])
}

/// A server whose labs come from the test catalog, with `extra` options.
pub fn lab_server_with(data: &tempfile::TempDir, extra: &[&str]) -> Server {
    let store = format!("{}/store", catalog());
    let mut args = vec!["--store-dir", &store];
    args.extend_from_slice(extra);
    Server::start(data.path(), &args)
}

/// A user with an API token.
pub fn user_token(data: &tempfile::TempDir, name: &str) -> String {
    add_user(data.path(), name, "student", "correct horse battery");
    create_token(data, name)
}

/// An API token for an existing account.
pub fn create_token(data: &tempfile::TempDir, name: &str) -> String {
    let out = cli(
        &[
            "token",
            "create",
            name,
            "--data-dir",
            data.path().to_str().unwrap(),
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).trim().to_string()
}

/// Deletes the lab when dropped, so a failing test leaves no node behind.
pub struct LabGuard {
    pub url: String,
    pub token: String,
}

impl Drop for LabGuard {
    fn drop(&mut self) {
        let (url, token) = (self.url.clone(), self.token.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(async {
                let _ = reqwest::Client::new()
                    .delete(url)
                    .bearer_auth(token)
                    .send()
                    .await;
            });
        })
        .join();
    }
}

/// `POST /api/labs` for `lesson` with `token`'s user.
pub async fn post_lab(server: &Server, token: &str, lesson: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(server.at("/api/labs"))
        .bearer_auth(token)
        .json(&serde_json::json!({ "lesson": lesson }))
        .send()
        .await
        .unwrap()
}

async fn start_lab(server: &Server, token: &str) -> (String, LabGuard) {
    start_lesson_lab(server, token, "01-what-is-a-container").await
}

/// Starts a lab for `lesson` and waits until it is ready.
pub async fn start_lesson_lab(server: &Server, token: &str, lesson: &str) -> (String, LabGuard) {
    let response = post_lab(server, token, lesson).await;
    assert_eq!(response.status(), 201);
    let lab: Value = response.json().await.unwrap();
    let id = lab["id"].as_str().unwrap().to_string();
    assert_eq!(lab["lesson"], lesson);
    assert!(lab["expires_at"].as_i64().is_some(), "{lab}");
    let guard = LabGuard {
        url: server.at(&format!("/api/labs/{id}")),
        token: token.to_string(),
    };
    wait_until_ready(server, token, &id, Duration::from_secs(120)).await;
    (id, guard)
}

/// `GET /api/labs/{id}`.
pub async fn lab_state(server: &Server, token: &str, id: &str) -> Value {
    json(
        reqwest::Client::new()
            .get(server.at(&format!("/api/labs/{id}")))
            .bearer_auth(token),
    )
    .await
}

/// Waits until lab `id` is ready, at most `limit`; fails if it stops.
pub async fn wait_until_ready(server: &Server, token: &str, id: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let lab = lab_state(server, token, id).await;
        match lab["state"].as_str() {
            Some("ready") => return,
            Some("starting") => {}
            _ => panic!("lab did not start: {lab}\n{}", server.log()),
        }
        assert!(
            Instant::now() < deadline,
            "lab still starting after {limit:?}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lab_terminal_echoes_resizes_replays_floods_and_stops() {
    let data = temp_dir();
    let token = user_token(&data, "ada");
    let server = lab_server(&data);
    let (id, _guard) = start_lab(&server, &token).await;

    // The same lesson again gives the same lab.
    let again = post_lab(&server, &token, "01-what-is-a-container").await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap()["id"], id.as_str());

    let mut term = connect(&server, &token, &id, "node1", None).await.unwrap();
    type_line(&mut term, "echo hel''lo-$((6*7))").await;
    read_until(&mut term, "hello-42").await;
    type_line(&mut term, "hostname").await;
    read_until(&mut term, "node1").await;

    term.send(Message::Text(
        r#"{"type":"resize","cols":123,"rows":45}"#.into(),
    ))
    .await
    .unwrap();
    type_line(&mut term, "stty size").await;
    read_until(&mut term, "45 123").await;
    // The terminal is the node's own, from the node's devpts.
    type_line(&mut term, "echo tty-$((1+1))-$(tty)").await;
    read_until(&mut term, "tty-2-/dev/pts/").await;

    // A new socket on the same name is the same shell, screen replayed.
    term.close(None).await.unwrap();
    drop(term);
    let mut term = connect(&server, &token, &id, "node1", None).await.unwrap();
    read_until(&mut term, "hello-42").await;
    type_line(&mut term, "echo $MARK-set; MARK=first").await;
    read_until(&mut term, "-set").await;

    // Another name is another shell.
    let mut second = connect(&server, &token, &id, "shell-2", None)
        .await
        .unwrap();
    type_line(&mut second, "echo mark=${MARK:-none}").await;
    read_until(&mut second, "mark=none").await;
    type_line(&mut term, "echo mark=$MARK").await;
    read_until(&mut term, "mark=first").await;

    // A flood, then Ctrl-C straight to the PTY: the prompt comes back.
    type_line(&mut term, "yes flood").await;
    read_until(&mut term, "flood\r\nflood").await;
    term.send(Message::Binary(b"\x03".to_vec().into()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    type_line(&mut term, "echo after-$((40+2))-flood").await;
    read_until(&mut term, "after-42-flood").await;

    // An unknown control message is answered, not fatal.
    term.send(Message::Text("{\"type\":\"launch\"}".into()))
        .await
        .unwrap();
    type_line(&mut term, "echo still-$((1+1))").await;
    read_until(&mut term, "still-2").await;

    let client = reqwest::Client::new();
    let deleted = client
        .delete(server.at(&format!("/api/labs/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let lab: Value = json(
        client
            .get(server.at(&format!("/api/labs/{id}")))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(lab["state"], "stopped", "{lab}");
    assert!(
        connect(&server, &token, &id, "node1", None).await.is_err(),
        "a stopped lab has no terminal"
    );
}

/// A lab cannot count on its own OOM priority: the server puts itself
/// below the labs, and admits labs only while their memory limits fit the
/// host's memory.
#[tokio::test(flavor = "multi_thread")]
async fn lab_memory_is_admitted_within_the_host_and_the_server_outlives_labs() {
    let data = temp_dir();
    let ada = user_token(&data, "ada");
    // A budget of a few MiB: not even one node's 512 MiB fits.
    let server = Server::start(data.path(), &["--lab-memory-overcommit", "0.0001"]);
    let adj = std::fs::read_to_string(format!("/proc/{}/oom_score_adj", server.pid()))
        .expect("read the server's oom_score_adj");
    let adj: i32 = adj.trim().parse().expect("oom_score_adj is a number");
    // Going below 0 takes CAP_SYS_RESOURCE, which some containers drop;
    // the server then says so and admission is the only guard.
    let status = std::fs::read_to_string("/proc/self/status").expect("read our status");
    let caps = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|c| u64::from_str_radix(c.trim(), 16).ok())
        .expect("CapEff");
    const CAP_SYS_RESOURCE: u64 = 24;
    if caps & (1 << CAP_SYS_RESOURCE) != 0 {
        assert!(
            adj < 0,
            "the server is as likely an OOM victim as anything: {adj}"
        );
    } else {
        assert!(
            server
                .log()
                .contains("cannot lower the server's OOM priority (needs CAP_SYS_RESOURCE)"),
            "no CAP_SYS_RESOURCE, and the server does not say it stays at {adj}: {}",
            server.log()
        );
    }
    let response = post_lab(&server, &ada, "01-what-is-a-container").await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("lab slots are full") && error.contains("512 MiB"),
        "{body}"
    );
}

/// A student filling the lab's disk gets "No space left on device" and
/// keeps a working lab: the 1 GiB disk limit acts before the 512 MiB
/// memory limit, which a full disk does not touch.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_is_enospc_and_the_lab_lives() {
    let data = temp_dir();
    let ada = user_token(&data, "ada");
    let server = lab_server(&data);
    let (id, _guard) = start_lab(&server, &ada).await;
    let mut term = connect(&server, &ada, &id, "node1", None).await.unwrap();
    type_line(
        &mut term,
        // The brackets keep the echoed command line from matching.
        "dd if=/dev/zero of=/fill bs=1M count=1200 2>&1 | grep -o 'No spac[e] left on device'; echo dd-exit=$((40+2))",
    )
    .await;
    let seen = read_until(&mut term, "dd-exit=42").await;
    assert!(seen.contains("No space left on device"), "{seen}");
    type_line(&mut term, "rm /fill; echo still-$((6*7))").await;
    read_until(&mut term, "still-42").await;
}

/// Two installations on one host (two data directories, two servers)
/// never map their labs' root to the same host uid.
#[tokio::test(flavor = "multi_thread")]
async fn labs_of_two_servers_get_different_host_uids() {
    let (one, two) = (temp_dir(), temp_dir());
    let (ada, eve) = (user_token(&one, "ada"), user_token(&two, "eve"));
    let (first, second) = (lab_server(&one), lab_server(&two));
    let (a, _a) = start_lab(&first, &ada).await;
    let (b, _b) = start_lab(&second, &eve).await;
    let base = |data: &tempfile::TempDir, id: &str| {
        let state = data
            .path()
            .join(format!("runtime/sandboxes/{id}/state.json"));
        let state: Value =
            serde_json::from_slice(&std::fs::read(state).expect("lab state")).unwrap();
        state["uid_base"].as_u64().expect("uid_base")
    };
    assert_ne!(
        base(&one, &a),
        base(&two, &b),
        "two servers mapped their labs' root to the same host uid"
    );
}

/// One lab must not take every core: labs get the server's CPU cap
/// unless their lesson sets one.
#[tokio::test(flavor = "multi_thread")]
async fn labs_have_a_cpu_cap_by_default() {
    let data = temp_dir();
    let ada = user_token(&data, "ada");
    let server = lab_server_with(&data, &["--lab-cpus", "0.5"]);
    let (id, _guard) = start_lab(&server, &ada).await;
    let v1 = format!(
        "/sys/fs/cgroup/cpu/{}/{id}/cpu.cfs_quota_us",
        server.cgroup_parent()
    );
    let v2 = format!("/sys/fs/cgroup/{}/{id}/cpu.max", server.cgroup_parent());
    let quota = std::fs::read_to_string(&v1)
        .or_else(|_| std::fs::read_to_string(&v2))
        .expect("the lab's cpu cgroup");
    let quota = quota.split_whitespace().next().unwrap_or_default();
    assert_eq!(quota, "50000", "half a CPU per 100 ms period");
}

/// Labs outlive their server on purpose (a restart adopts them); once the
/// server is gone for good, `layerlab sandbox gc` finds and removes them.
#[tokio::test(flavor = "multi_thread")]
async fn sandbox_gc_removes_the_labs_no_server_will_stop() {
    let data = temp_dir();
    let ada = user_token(&data, "ada");
    let server = lab_server(&data);
    let (id, _guard) = start_lab(&server, &ada).await;
    let state = data
        .path()
        .join(format!("runtime/sandboxes/{id}/state.json"));
    let state: Value = serde_json::from_slice(&std::fs::read(&state).expect("lab state")).unwrap();
    let init = state["init_pid"].as_i64().expect("init pid");
    server.crash();
    let data_dir = data.path().to_str().unwrap();
    let listed = cli(&["sandbox", "gc", "--dry-run", "--only", data_dir], "");
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    assert!(
        text(&listed.stdout).contains(&id),
        "{}",
        text(&listed.stdout)
    );
    assert!(
        std::path::Path::new(&format!("/proc/{init}")).exists(),
        "--dry-run removed the lab"
    );
    let removed = cli(&["sandbox", "gc", "--only", data_dir], "");
    assert!(removed.status.success(), "{}", text(&removed.stderr));
    let out = text(&removed.stdout);
    assert!(out.contains(&id) && out.contains("no server runs"), "{out}");
    let gone = Instant::now();
    while std::fs::read_to_string(format!("/proc/{init}/stat")).is_ok_and(|s| !s.contains(") Z ")) {
        assert!(
            gone.elapsed() < Duration::from_secs(10),
            "the lab's node still runs"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!data.path().join(format!("runtime/sandboxes/{id}")).exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn labs_keep_running_across_a_server_restart() {
    let data = temp_dir();
    let token = user_token(&data, "ada");
    let server = lab_server(&data);
    let (id, guard) = start_lab(&server, &token).await;
    let mut term = connect(&server, &token, &id, "node1", None).await.unwrap();
    type_line(
        &mut term,
        "echo kept-$((2*21)) > /root/marker && echo wr''itten",
    )
    .await;
    read_until(&mut term, "written\r\n").await;
    drop(term);

    let store = format!("{}/store", catalog());
    let server = server.restart(data.path(), &["--store-dir", &store]);
    // Declared after the new server, so it is dropped (and deletes) first.
    let mut guard = guard;
    guard.url = server.at(&format!("/api/labs/{id}"));
    let lab: Value = json(
        reqwest::Client::new()
            .get(server.at(&format!("/api/labs/{id}")))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(lab["state"], "ready", "{lab}\n{}", server.log());
    let mut term = connect(&server, &token, &id, "node1", None).await.unwrap();
    type_line(&mut term, "cat /root/marker").await;
    read_until(&mut term, "kept-42").await;
}

/// The docker CLI in a lab the real server started, typed into its
/// terminal: the lab's engine runs and publishes containers, and a
/// restarted server serves it again to the node that outlived it.
#[tokio::test(flavor = "multi_thread")]
async fn the_docker_cli_in_a_lab_reaches_its_engine_across_a_restart() {
    let data = temp_dir();
    let token = user_token(&data, "ada");
    let server = lab_server(&data);
    let (id, guard) = start_lab(&server, &token).await;
    let mut term = connect(&server, &token, &id, "node1", None).await.unwrap();
    type_line(&mut term, "docker run --rm busybox echo engine-$((6*7))").await;
    read_until(&mut term, "engine-42").await;
    type_line(
        &mut term,
        "docker run -d -p 8080:80 nginx >/dev/null && until curl -s localhost:8080 | grep -o 'shows every reque[s]t'; do sleep 0.2; done",
    )
    .await;
    read_until(&mut term, "shows every request").await;
    drop(term);

    let store = format!("{}/store", catalog());
    let server = server.restart(data.path(), &["--store-dir", &store]);
    let mut guard = guard;
    guard.url = server.at(&format!("/api/labs/{id}"));
    let mut term = connect(&server, &token, &id, "node1", None).await.unwrap();
    type_line(
        &mut term,
        "docker images --format 'image-{{.Repository}}' | sort | tr '\\n' ' '",
    )
    .await;
    read_until(&mut term, "image-busybox image-nginx").await;
    // The nginx started before the restart still runs and still serves.
    type_line(
        &mut term,
        "docker ps --format 'state-{{.State}}'; curl -s localhost:8080 | grep -c 'shows every reque[s]t' | sed 's/^/served-/'",
    )
    .await;
    read_until(&mut term, "state-running").await;
    read_until(&mut term, "served-1").await;
}

/// The lab pane's htmx endpoints, as the lesson page calls them.
#[tokio::test(flavor = "multi_thread")]
async fn the_lesson_page_starts_follows_and_stops_its_lab() {
    let data = temp_dir();
    add_user(data.path(), "grace", "student", "correct horse battery");
    let server = lab_server(&data);
    let client = browser();
    login(&client, &server, "grace", "correct horse battery").await;
    let lesson = server.at("/lessons/01-what-is-a-container");

    let response = client.get(&lesson).send().await.unwrap();
    let policy = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    let html = response.text().await.unwrap();
    assert!(html.contains("Start lab"), "{html}");
    let nonce = html
        .split("name=\"style-nonce\" content=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page carries its style nonce");
    assert!(nonce.len() >= 20, "nonce {nonce:?}");
    assert!(
        policy.contains(&format!("style-src-elem 'self' 'nonce-{nonce}'"))
            && policy.contains("script-src 'self';")
            && !policy.contains("script-src 'self' 'unsafe"),
        "{policy}"
    );
    let again = client.get(&lesson).send().await.unwrap();
    let policy_again = again.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        !policy_again.contains(nonce),
        "every page view gets a fresh nonce"
    );
    let token = csrf_of(&html);
    let pane = format!("{lesson}/lab");

    // Without the CSRF header the start is refused.
    let forged = client
        .post(&pane)
        .header("hx-request", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);

    let started = client
        .post(&pane)
        .header("hx-request", "true")
        .header("x-csrf-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 200);
    let fragment = started.text().await.unwrap();
    assert!(
        fragment.contains("data-state=\"starting\"") || fragment.contains("data-state=\"ready\""),
        "{fragment}"
    );
    assert!(!fragment.contains("<html"), "a fragment, not a page");

    let deadline = Instant::now() + Duration::from_secs(120);
    let ready = loop {
        let fragment = get_page(&client, &pane).await;
        if fragment.contains("id=\"lab-terminals\"") {
            break fragment;
        }
        assert!(
            fragment.contains("Starting node1"),
            "{fragment}\n{}",
            server.log()
        );
        assert!(
            Instant::now() < deadline,
            "lab still starting after 2 minutes"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(ready.contains("data-lab=\"lab-"), "{ready}");
    assert!(ready.contains("class=\"lab-time\""), "{ready}");

    // Reloading the page shows the running lab, not a start button.
    let page = get_page(&client, &lesson).await;
    assert!(page.contains("id=\"lab-terminals\""), "{page}");
    assert!(!page.contains(">Start lab<"), "{page}");
    let status = get_page(&client, &format!("{pane}/status")).await;
    assert!(
        status
            .trim_start()
            .starts_with("<span class=\"lab-status\""),
        "{status}"
    );

    let stopped = client
        .delete(&pane)
        .header("hx-request", "true")
        .header("x-csrf-token", &token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(stopped.contains(">Start lab<"), "{stopped}");
    assert!(stopped.contains("stopped by its user"), "{stopped}");

    // A page still polling a stopped lab gets the whole pane back.
    let status = client.get(format!("{pane}/status")).send().await.unwrap();
    assert_eq!(status.headers()["hx-retarget"], "#lab");
    assert!(status.text().await.unwrap().contains(">Start lab<"));
}

/// A browser that cannot draw fast enough pauses the stream; nothing is
/// sent until it resumes, and then what it missed comes from the ring.
#[tokio::test(flavor = "multi_thread")]
async fn a_paused_terminal_sends_nothing_until_resumed() {
    let data = temp_dir();
    let token = user_token(&data, "pause");
    let server = lab_server(&data);
    let (id, _guard) = start_lab(&server, &token).await;
    let mut term = connect(&server, &token, &id, "node1", None).await.unwrap();
    type_line(&mut term, "echo ready-$((2*2))").await;
    read_until(&mut term, "ready-4\r\n").await;

    term.send(Message::Text(r#"{"type":"pause"}"#.into()))
        .await
        .unwrap();
    type_line(&mut term, "sleep 0.5; echo while-$((3*3))-paused").await;
    // The echo of what was typed may have been on its way before the
    // pause was read; the command's output (expanded) must not come.
    let mut while_paused = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match term.next().await {
                Some(Ok(Message::Binary(bytes))) => {
                    while_paused.push_str(&String::from_utf8_lossy(&bytes))
                }
                Some(Ok(_)) => {}
                other => panic!("socket ended while paused: {other:?}"),
            }
        }
    })
    .await;
    assert!(
        !while_paused.contains("while-9-paused"),
        "output arrived while paused: {while_paused:?}"
    );

    term.send(Message::Text(r#"{"type":"resume"}"#.into()))
        .await
        .unwrap();
    read_until(&mut term, "while-9-paused").await;
}
