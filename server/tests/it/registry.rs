//! `layerlab registry serve` as a process (skopeo pushes and pulls, a
//! `kill -9` in the middle of an upload, basic auth), the same binary
//! inside a lab node, and the hub of `layerlab serve --hub-listen`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::harness::*;
use crate::labs::lab_server_with;
use crate::sandbox::catalog;

/// A running `layerlab registry serve`; killed when dropped.
struct Registry {
    child: Child,
    addr: String,
}

impl Registry {
    fn start(root: &Path, extra: &[&str]) -> Registry {
        Registry::start_with_env(root, extra, &[])
    }

    /// With distribution's environment variables set as well.
    fn start_with_env(root: &Path, extra: &[&str], env: &[(&str, &str)]) -> Registry {
        let mut child = Command::new(BIN)
            .args(["registry", "serve", "--listen", "127.0.0.1:0", "--root"])
            .arg(root)
            .args(extra)
            .envs(env.iter().copied())
            .env("LAYERLAB_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn layerlab registry serve");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut log = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.split("listening on http://").nth(1) {
                    let addr = url.split_whitespace().next().unwrap_or_default();
                    let _ = tx.send(Ok(addr.to_string()));
                }
                log.push_str(&line);
                log.push('\n');
            }
            let _ = tx.send(Err(log));
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(addr)) => Registry { child, addr },
            Ok(Err(log)) => panic!("registry serve exited: {log}"),
            Err(_) => {
                let _ = child.kill();
                panic!("registry serve did not start in 30 s");
            }
        }
    }

    fn at(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// kill -9.
    fn crash(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reap");
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo (apt-get install -y skopeo)");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// Exports a catalog image as an OCI archive; returns its manifest digest.
fn export(name: &str, file: &Path) -> String {
    let out = cli(
        &[
            "images",
            "export",
            name,
            file.to_str().expect("utf-8 path"),
            "--data-dir",
            catalog(),
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    stderr
        .split('(')
        .nth(1)
        .and_then(|s| s.split(')').next())
        .unwrap_or_else(|| panic!("no digest in {stderr}"))
        .to_string()
}

#[tokio::test]
async fn registry_serve_takes_skopeo_pushes_and_survives_kill_9_mid_upload() {
    let root = temp_dir();
    let work = temp_dir();
    let archive = work.path().join("busybox.tar");
    let digest = export("busybox", &archive);

    let first = Registry::start(root.path(), &[]);
    let dest = format!("docker://{}/lessons/busybox:1", first.addr);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci-archive:{}", archive.display()),
        &dest,
    ]);
    let raw = skopeo(&["inspect", "--tls-verify=false", "--raw", &dest]);
    assert_eq!(sha256(raw.as_bytes()), digest);

    // Half an upload, then kill -9.
    let client = reqwest::Client::new();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 241) as u8).collect();
    let blob = sha256(&data);
    let r = client
        .post(first.at("/v2/lessons/busybox/blobs/uploads/"))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 202);
    let location = r.headers()["Location"]
        .to_str()
        .expect("location")
        .to_string();
    let r = client
        .patch(first.at(&location))
        .header("Content-Range", "0-49999")
        .body(data[..50_000].to_vec())
        .send()
        .await
        .expect("patch");
    assert_eq!(r.status(), 202);
    first.crash();

    let second = Registry::start(root.path(), &[]);
    let r = client
        .head(second.at(&format!("/v2/lessons/busybox/blobs/{blob}")))
        .send()
        .await
        .expect("head");
    assert_eq!(r.status(), 404, "an unfinished upload is not a blob");
    let r = client
        .get(second.at(&location))
        .send()
        .await
        .expect("status");
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["Range"], "0-49999");
    let r = client
        .patch(second.at(&location))
        .header("Content-Range", "50000-99999")
        .body(data[50_000..].to_vec())
        .send()
        .await
        .expect("patch");
    assert_eq!(r.status(), 202);
    let r = client
        .put(second.at(&format!("{location}?digest={blob}")))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 201);
    let got = client
        .get(second.at(&format!("/v2/lessons/busybox/blobs/{blob}")))
        .send()
        .await
        .expect("get")
        .bytes()
        .await
        .expect("body");
    assert_eq!(got.as_ref(), &data[..]);

    // The image pushed before the crash comes back out, digest unchanged.
    let back = work.path().join("back");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}/lessons/busybox:1", second.addr),
        &format!("oci:{}:1", back.display()),
    ]);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(back.join("index.json")).expect("index"))
            .expect("json");
    assert_eq!(index["manifests"][0]["digest"], digest.as_str());
}

/// Set up the way Docker's documentation sets up `registry:2` with
/// logins: distribution's environment variables.
#[tokio::test]
async fn registry_serve_with_htpasswd_wants_a_login() {
    let root = temp_dir();
    let htpasswd = root.path().join("htpasswd");
    let hash = bcrypt::hash("lab-password", 4).expect("bcrypt");
    std::fs::write(&htpasswd, format!("student:{hash}\n")).expect("write htpasswd");
    let path = htpasswd.to_str().expect("utf-8");
    let registry = Registry::start_with_env(
        &root.path().join("data"),
        &[],
        &[
            ("REGISTRY_AUTH", "htpasswd"),
            ("REGISTRY_AUTH_HTPASSWD_REALM", "Registry Realm"),
            ("REGISTRY_AUTH_HTPASSWD_PATH", path),
        ],
    );
    let client = reqwest::Client::new();
    let r = client.get(registry.at("/v2/")).send().await.expect("ping");
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["WWW-Authenticate"],
        "Basic realm=\"Registry Realm\""
    );
    let r = client
        .get(registry.at("/v2/"))
        .basic_auth("student", Some("lab-password"))
        .send()
        .await
        .expect("ping");
    assert_eq!(r.status(), 200);

    let unused = root.path().join("unused");
    let out = cli(
        &[
            "registry",
            "serve",
            "--root",
            unused.to_str().expect("utf-8"),
            "--htpasswd",
            "/nonexistent/htpasswd",
        ],
        "",
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("/nonexistent/htpasswd"),
        "{}",
        text(&out.stderr)
    );
    // Settings distribution has and layerlab does not are refused by name.
    for (env, expected) in [
        (vec![("REGISTRY_AUTH", "token")], "not supported"),
        (
            vec![("REGISTRY_AUTH", "htpasswd")],
            "REGISTRY_AUTH_HTPASSWD_PATH",
        ),
        (vec![("REGISTRY_HTTP_ADDR", "localhost")], ":5000"),
    ] {
        let out = Command::new(BIN)
            .args(["registry", "serve", "--root"])
            .arg(&unused)
            .envs(env.iter().copied())
            .output()
            .expect("run layerlab registry serve");
        assert!(!out.status.success(), "{env:?}");
        assert!(
            text(&out.stderr).contains(expected),
            "{env:?}: {}",
            text(&out.stderr)
        );
    }
    assert!(!unused.exists(), "a refused start creates no storage");
}

#[test]
fn layerlab_registry_serve_runs_inside_a_workstation_node() {
    let script = "layerlab registry serve --listen 127.0.0.1:5000 --root /var/lib/registry 2>/dev/null & \
        for i in $(seq 200); do curl -sf -o /dev/null http://127.0.0.1:5000/v2/ && break; sleep 0.05; done; \
        curl -si http://127.0.0.1:5000/v2/";
    let out = cli(
        &[
            "sandbox",
            "run",
            "--data-dir",
            catalog(),
            "--image",
            "workstation",
            "--",
            "bash",
            "-c",
            script,
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout).to_ascii_lowercase();
    assert!(stdout.starts_with("http/1.1 200"), "{stdout}");
    assert!(
        stdout.contains("docker-distribution-api-version: registry/2.0"),
        "{stdout}"
    );

    // registry:2 carries the same binary where its entrypoint expects it.
    let out = cli(
        &[
            "sandbox",
            "run",
            "--data-dir",
            catalog(),
            "--image",
            "registry:2",
            "--",
            "/usr/local/bin/layerlab",
            "registry",
            "serve",
            "--help",
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("--htpasswd"));
}

#[test]
fn a_hub_upstream_must_be_a_registry_url_and_needs_the_hub() {
    for (args, expected) in [
        (
            vec![
                "--hub-listen",
                "127.0.0.1:0",
                "--hub-upstream",
                "ftp://mirror",
            ],
            "not a registry URL",
        ),
        (
            vec!["--hub-upstream", "https://registry-1.docker.io"],
            "--hub-listen",
        ),
    ] {
        let mut argv = vec!["serve"];
        argv.extend(args);
        let out = cli(&argv, "");
        assert!(!out.status.success(), "{argv:?}");
        assert!(
            text(&out.stderr).contains(expected),
            "{argv:?}: {}",
            text(&out.stderr)
        );
    }
}

/// The hub's `host:port`, once its line (which follows the web server's
/// "listening on") is in the log.
pub async fn hub_address(server: &Server) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let log = server.log();
        if let Some(addr) = log
            .split("hub serving the catalog at http://")
            .nth(1)
            .and_then(|s| s.split("/v2/").next())
        {
            return addr.to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no hub address in the log:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn layerlab_serve_hub_listen_serves_the_catalog() {
    let data = temp_dir();
    let server = lab_server_with(&data, &["--hub-listen", "127.0.0.1:0"]);
    let hub = hub_address(&server).await;
    let inspected = skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{hub}/busybox:latest"),
    ]);
    let inspected: serde_json::Value = serde_json::from_str(&inspected).expect("json");
    let raw = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{hub}/library/busybox:latest"),
    ]);
    assert_eq!(inspected["Digest"], sha256(raw.as_bytes()).as_str());
    let r = reqwest::Client::new()
        .delete(format!("http://{hub}/v2/busybox/manifests/latest"))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 405, "the hub is read-only");
    server.stop();
}

/// `--gc-every`: blobs no manifest references go once they are older than
/// the period; blobs an image uses stay.
#[tokio::test]
async fn registry_serve_collects_unreferenced_blobs() {
    let root = temp_dir();
    let registry = Registry::start(root.path(), &["--gc-every", "2s"]);
    let client = reqwest::Client::new();
    let push = |bytes: &'static [u8]| {
        let url = registry.at(&format!("/v2/gc/blobs/uploads/?digest={}", sha256(bytes)));
        let client = client.clone();
        async move {
            let response = client.post(url).body(bytes).send().await.unwrap();
            assert_eq!(response.status(), 201, "{:?}", response.text().await);
        }
    };
    let config: &[u8] =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let stray: &[u8] = b"a layer nobody will ever reference";
    push(config).await;
    push(stray).await;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha256(config),
            "size": config.len(),
        },
        "layers": [],
    });
    let response = client
        .put(registry.at("/v2/gc/manifests/kept"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{:?}", response.text().await);

    let status = |digest: String| {
        let url = registry.at(&format!("/v2/gc/blobs/{digest}"));
        let client = client.clone();
        async move { client.head(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status(sha256(stray)).await, 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while status(sha256(stray)).await != 404 {
        assert!(
            std::time::Instant::now() < deadline,
            "an unreferenced blob outlived 15 collection periods"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        status(sha256(config)).await,
        200,
        "a referenced blob was collected"
    );
    let manifest = client
        .get(registry.at("/v2/gc/manifests/kept"))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap();
    assert_eq!(manifest.status(), 200);
}
