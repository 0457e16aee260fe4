//! Real clients against real servers: skopeo copies the catalog's nginx
//! into the registry and back; a real Docker engine (Debian's dockerd on
//! its own socket and data root) pushes and pulls; the hub serves the
//! catalog read-only; basic auth answers the way `docker login` expects.
//!
//! The catalog is the shared test store in /var/tmp/layerlab/test-data
//! that `cargo test -p images` (or the server's tests) build.

use std::path::{Path, PathBuf};

use reqwest::StatusCode;
use store::{Reference, Store};
use tokio::process::Command;

use crate::harness::*;

const CATALOG_STORE: &str = "/var/tmp/layerlab/test-data/store";

fn catalog() -> Store {
    let root = Path::new(CATALOG_STORE);
    assert!(
        root.join("names/hub.json").exists(),
        "the shared test catalog is missing at {CATALOG_STORE}: build it with `cargo test -p images` or `layerlab images build --data-dir /var/tmp/layerlab/test-data`"
    );
    Store::open(root).expect("open the shared test catalog")
}

fn hub_digest(store: &Store, name: &str) -> String {
    store
        .resolve(
            &store::Namespace::new("hub").expect("hub"),
            &Reference::parse(name).expect("name"),
        )
        .unwrap_or_else(|e| panic!("{name} is not in the catalog: {e}"))
        .to_string()
}

/// The digest of the only manifest an OCI layout's index lists.
fn layout_digest(dir: &Path) -> String {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).expect("index.json"))
            .expect("index json");
    index["manifests"][0]["digest"]
        .as_str()
        .expect("digest")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn skopeo_copies_nginx_in_and_out_with_identical_digests() {
    let catalog = catalog();
    let original = hub_digest(&catalog, "nginx");
    let work = tempfile::tempdir().expect("temp dir");
    let exported: PathBuf = work.path().join("nginx-in");
    catalog
        .export_oci_layout(
            &store::Namespace::new("hub").expect("hub"),
            &[Reference::parse("nginx").expect("nginx")],
            &exported,
        )
        .expect("export nginx");
    assert_eq!(layout_digest(&exported), original);

    let s = Server::start().await;
    let host = s.addr.to_string();
    let dest = format!("docker://{host}/library/nginx:1.22");
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}", exported.display()),
        &dest,
    ])
    .await;
    let raw = skopeo(&["inspect", "--tls-verify=false", "--raw", &dest]).await;
    assert_eq!(
        digest_of(raw.as_bytes()),
        original,
        "the manifest's bytes are kept exactly"
    );

    let back = work.path().join("nginx-out");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &dest,
        &format!("oci:{}:1.22", back.display()),
    ])
    .await;
    assert_eq!(layout_digest(&back), original);
    // Every blob came back byte for byte.
    for entry in std::fs::read_dir(back.join("blobs/sha256")).expect("blobs") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let bytes = std::fs::read(&path).expect("blob");
        assert_eq!(digest_of(&bytes), format!("sha256:{name}"));
    }
    let r = s.get("/v2/library/nginx/tags/list").await;
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["tags"], serde_json::json!(["1.22"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hub_serves_the_catalog_read_only() {
    let catalog = catalog();
    let busybox = hub_digest(&catalog, "busybox");
    let hub = registry::hub(catalog.clone(), None).expect("hub");
    let registry = registry::Registry::open(registry::Config {
        naming: registry::Naming::Hub,
        read_only: true,
        ..registry::Config::new(catalog.clone(), store::Namespace::new("hub").expect("hub"))
    })
    .expect("registry");
    let s = Server::serve(catalog.clone(), registry, hub).await;
    let host = s.addr.to_string();
    let inspected = skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{host}/busybox:latest"),
    ])
    .await;
    let inspected: serde_json::Value = serde_json::from_str(&inspected).expect("inspect json");
    assert_eq!(inspected["Digest"], busybox.as_str());

    for name in ["busybox", "library/busybox"] {
        let r = s.head(&format!("/v2/{name}/manifests/latest")).await;
        assert_eq!(r.status(), StatusCode::OK, "{name}");
        assert_eq!(r.headers()["Docker-Content-Digest"], busybox.as_str());
    }
    let r = s.get(&format!("/v2/busybox/manifests/{busybox}")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = s.get("/v2/_catalog").await;
    let body: serde_json::Value = r.json().await.expect("json");
    let repos = body["repositories"].as_array().expect("repositories");
    for name in ["busybox", "debian", "nginx", "registry"] {
        assert!(repos.iter().any(|r| r == name), "{name} not in {body}");
    }
    // A blob nobody in the hub references is not served.
    let private = catalog
        .write_blob_bytes(b"not part of the catalog")
        .expect("write");
    let r = s
        .get(&format!("/v2/busybox/blobs/{}", private.digest))
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Read-only.
    let r = s.post("/v2/busybox/blobs/uploads/").await;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let r = s.delete("/v2/busybox/manifests/latest").await;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn basic_auth_from_htpasswd() {
    let hash = bcrypt::hash("s3cret-pass", 4).expect("hash");
    let htpasswd = registry::Htpasswd::parse(&format!("student:{hash}\n")).expect("htpasswd");
    let s = Server::start_with(|c| registry::Config {
        htpasswd: Some(htpasswd),
        ..c
    })
    .await;
    let r = s.get("/v2/").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.headers()["WWW-Authenticate"],
        "Basic realm=\"layerlab registry\""
    );
    assert_eq!(
        r.headers()["Docker-Distribution-API-Version"],
        "registry/2.0"
    );
    assert_eq!(error_code(r).await, "UNAUTHORIZED");
    for (user, password) in [("student", "wrong"), ("nobody", "s3cret-pass")] {
        let r = s
            .client
            .get(s.at("/v2/"))
            .basic_auth(user, Some(password))
            .send()
            .await
            .expect("ping");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{user}");
    }
    let r = s
        .client
        .get(s.at("/v2/"))
        .basic_auth("student", Some("s3cret-pass"))
        .send()
        .await
        .expect("ping");
    assert_eq!(r.status(), StatusCode::OK);
    let r = s.post("/v2/app/blobs/uploads/").await;
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "every endpoint needs the login"
    );
}

/// Debian's Docker engine, on its own socket, data root and no network
/// setup of its own; stopped (SIGTERM, then waited for) when dropped.
struct Dockerd {
    child: std::process::Child,
    socket: String,
    dir: tempfile::TempDir,
}

impl Dockerd {
    async fn start() -> Dockerd {
        let dir = tempfile::tempdir_in("/var/tmp").expect("dockerd dir");
        let socket = format!("unix://{}", dir.path().join("docker.sock").display());
        let log = std::fs::File::create(dir.path().join("dockerd.log")).expect("log");
        let child = std::process::Command::new("/usr/sbin/dockerd")
            .arg("--data-root")
            .arg(dir.path().join("data"))
            .arg("--exec-root")
            .arg(dir.path().join("exec"))
            .arg("--pidfile")
            .arg(dir.path().join("dockerd.pid"))
            .args(["--host", &socket, "--bridge=none", "--iptables=false"])
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("dockerd (apt-get install -y docker.io)");
        let dockerd = Dockerd { child, socket, dir };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let out = dockerd
                .docker(&["version", "--format", "{{.Server.Version}}"])
                .await;
            if out.status.success() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "dockerd did not answer in 60 s: {}",
                std::fs::read_to_string(dockerd.dir.path().join("dockerd.log")).unwrap_or_default()
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        dockerd
    }

    async fn docker(&self, args: &[&str]) -> std::process::Output {
        self.docker_with_input(args, "").await
    }

    /// The CLI keeps its logins in this engine's directory, not in ~/.docker.
    async fn docker_with_input(&self, args: &[&str], input: &str) -> std::process::Output {
        use tokio::io::AsyncWriteExt;
        let mut child = Command::new("/usr/bin/docker")
            .env("DOCKER_CONFIG", self.dir.path().join("cli"))
            .args(["--host", &self.socket])
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("docker CLI");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(input.as_bytes()).await.expect("stdin");
        drop(stdin);
        child.wait_with_output().await.expect("docker CLI")
    }

    async fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args).await;
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_pushes_and_pulls_through_the_registry() {
    let catalog = catalog();
    let work = tempfile::tempdir().expect("temp dir");
    let archive = work.path().join("busybox.tar");
    catalog
        .export_docker_save(
            &store::Namespace::new("hub").expect("hub"),
            &[Reference::parse("busybox").expect("busybox")],
            std::fs::File::create(&archive).expect("archive"),
        )
        .expect("export busybox");
    let s = Server::start().await;
    let dockerd = Dockerd::start().await;
    dockerd
        .ok(&["load", "-i", archive.to_str().expect("utf-8")])
        .await;
    let image = format!("{}/lab/busybox:1.0", s.addr);
    dockerd.ok(&["tag", "busybox:latest", &image]).await;
    let pushed = dockerd.ok(&["push", &image]).await;
    let digest = pushed
        .split("digest: ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no digest in docker push output: {pushed}"))
        .to_owned();
    let r = s
        .client
        .head(s.at("/v2/lab/busybox/manifests/1.0"))
        .header("Accept", DOCKER_MANIFEST)
        .send()
        .await
        .expect("head");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["Docker-Content-Digest"], digest.as_str());

    dockerd.ok(&["rmi", &image, "busybox:latest"]).await;
    let pulled = dockerd.ok(&["pull", &image]).await;
    assert!(pulled.contains(&digest), "{pulled}");
    let repo_digests = dockerd
        .ok(&[
            "image",
            "inspect",
            "--format",
            "{{json .RepoDigests}}",
            &image,
        ])
        .await;
    assert!(repo_digests.contains(&digest), "{repo_digests}");

    // `docker login` against a registry with an htpasswd file, then a push.
    let hash = bcrypt::hash("lab-pass", 4).expect("hash");
    let guarded = Server::start_with(|c| registry::Config {
        htpasswd: Some(registry::Htpasswd::parse(&format!("student:{hash}\n")).expect("htpasswd")),
        ..c
    })
    .await;
    let host = guarded.addr.to_string();
    let guarded_image = format!("{host}/lab/busybox:1.0");
    dockerd.ok(&["tag", &image, &guarded_image]).await;
    let denied = dockerd.docker(&["push", &guarded_image]).await;
    assert!(!denied.status.success(), "a push without login is refused");
    let wrong = dockerd
        .docker_with_input(
            &["login", "-u", "student", "--password-stdin", &host],
            "nope\n",
        )
        .await;
    assert!(!wrong.status.success(), "a wrong password is refused");
    let login = dockerd
        .docker_with_input(
            &["login", "-u", "student", "--password-stdin", &host],
            "lab-pass\n",
        )
        .await;
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );
    let pushed = dockerd.ok(&["push", &guarded_image]).await;
    assert!(pushed.contains(&digest), "{pushed}");
}
