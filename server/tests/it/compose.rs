//! `docker-compose.yml` brought up by Debian's docker-compose on a real
//! dockerd, with the images built offline: the catalog's debian image is
//! the base of the layerlab image (this test's binary) and of a stand-in
//! for the official postgres image (Debian's PostgreSQL set up from the
//! same variables; Docker Hub is out of reach here).
//!
//! The whole class site is checked: PostgreSQL becomes healthy, layerlab
//! waits for it, prints the setup link, the link makes the admin (a row in
//! PostgreSQL), `/readyz` says ready, and a restarted layerlab still knows
//! the admin. Labs inside the container need `privileged`; where this
//! machine cannot grant it (its capability bounding set lacks some), the
//! test runs layerlab with the capabilities it has and says that labs were
//! not started.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::sandbox::catalog;

const SOCKET: &str = "/run/layerlab-it-docker.sock";
const DOCKER: &str = "/usr/bin/docker";

/// A dockerd of the tests' own (socket, state and images under the tests'
/// state directory, so built images are reused), stopped when dropped.
struct Dockerd {
    child: Option<std::process::Child>,
}

impl Dockerd {
    fn start() -> Dockerd {
        for tool in [DOCKER, "/usr/sbin/dockerd", "/usr/bin/docker-compose"] {
            assert!(
                Path::new(tool).exists(),
                "{tool} is missing: `make test` installs docker.io and docker-compose"
            );
        }
        if docker(&["version"]).status.success() {
            return Dockerd { child: None };
        }
        let state = Path::new(catalog()).parent().unwrap().join("docker");
        let child = Command::new("/usr/sbin/dockerd")
            .arg("--data-root")
            .arg(&state)
            .args(["--exec-root", "/run/layerlab-it-docker"])
            .args(["--pidfile", "/run/layerlab-it-docker.pid"])
            .args(["-H", &format!("unix://{SOCKET}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dockerd");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !docker(&["version"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "dockerd did not answer in a minute"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Dockerd { child: Some(child) }
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            // SAFETY: signals our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
    }
}

fn docker(args: &[&str]) -> Output {
    Command::new(DOCKER)
        .args(args)
        .env("DOCKER_HOST", format!("unix://{SOCKET}"))
        .output()
        .expect("run docker")
}

fn ok(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The base images, the postgres stand-in and the layerlab image.
fn build_images(work: &Path) {
    let archive = work.join("debian.oci.tar");
    ok(
        "export the catalog's debian",
        cli(
            &[
                "images",
                "export",
                "debian:bookworm",
                archive.to_str().unwrap(),
                "--data-dir",
                catalog(),
            ],
            "",
        ),
    );
    ok(
        "load it into dockerd",
        Command::new("skopeo")
            .args(["copy", "-q"])
            .arg(format!("oci-archive:{}", archive.display()))
            .arg("docker-daemon:layerlab-it/debian-catalog:bookworm")
            .args(["--dest-daemon-host", &format!("unix://{SOCKET}")])
            .output()
            .expect("run skopeo"),
    );
    // The catalog's image installs from layerlab's own package mirror,
    // which exists only inside labs: point it at Debian's archive.
    let base = work.join("base");
    std::fs::create_dir_all(&base).unwrap();
    std::fs::write(
        base.join("Dockerfile"),
        "FROM layerlab-it/debian-catalog:bookworm\n\
         RUN rm -f /etc/apt/sources.list.d/* \
         && echo 'deb http://deb.debian.org/debian bookworm main' > /etc/apt/sources.list\n",
    )
    .unwrap();
    let from = "BASE=layerlab-it/debian:bookworm";
    ok(
        "build the base",
        docker(&[
            "build",
            "-q",
            "-t",
            "layerlab-it/debian:bookworm",
            base.to_str().unwrap(),
        ]),
    );
    let postgres = repo().join("server/tests/it/postgres-image");
    ok(
        "build the postgres stand-in",
        docker(&[
            "build",
            "-q",
            "--build-arg",
            from,
            "-t",
            "layerlab-it/postgres:15",
            postgres.to_str().unwrap(),
        ]),
    );
    let context = work.join("context");
    std::fs::create_dir_all(&context).unwrap();
    std::fs::copy(BIN, context.join("layerlab")).unwrap();
    let dockerfile = repo().join("Dockerfile");
    ok(
        "build the layerlab image",
        docker(&[
            "build",
            "-q",
            "--build-arg",
            from,
            "-f",
            dockerfile.to_str().unwrap(),
            "-t",
            "layerlab-it/layerlab:test",
            context.to_str().unwrap(),
        ]),
    );
}

/// Whether this machine can start a privileged container: it needs every
/// capability in the bounding set.
fn can_run_privileged() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let bounding = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap();
    let last_cap: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let all = (1u64 << (last_cap + 1)) - 1;
    bounding & all == all
}

/// `docker-compose` on the checkout's file (plus `override_file`) as
/// project `project`, with `env`.
struct Compose {
    project: String,
    files: Vec<PathBuf>,
    env: Vec<(String, String)>,
}

impl Compose {
    fn run(&self, args: &[&str]) -> Output {
        let mut command = Command::new("/usr/bin/docker-compose");
        command.arg("-p").arg(&self.project);
        for file in &self.files {
            command.arg("-f").arg(file);
        }
        command
            .args(args)
            .env("DOCKER_HOST", format!("unix://{SOCKET}"))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("run docker-compose")
    }

    fn logs(&self, service: &str) -> String {
        text(&self.run(&["logs", "--no-color", service]).stdout)
    }
}

/// Takes a project's containers and volumes down when dropped.
struct Down<'a>(&'a Compose);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = self.0.run(&["down", "-v", "--timeout", "5"]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_compose_file_brings_up_a_class_site_on_postgresql() {
    let _dockerd = Dockerd::start();
    let work = temp_dir();
    build_images(work.path());

    let password = hex::encode(rand::random::<[u8; 12]>());
    let port = free_port();
    let env = vec![
        ("POSTGRES_PASSWORD".to_string(), password.clone()),
        (
            "POSTGRES_IMAGE".to_string(),
            "layerlab-it/postgres:15".to_string(),
        ),
        (
            "LAYERLAB_IMAGE".to_string(),
            "layerlab-it/layerlab:test".to_string(),
        ),
        ("LAYERLAB_PORT".to_string(), port.to_string()),
        ("LAYERLAB_HUB_PORT".to_string(), free_port().to_string()),
    ];
    let compose_file = repo().join("docker-compose.yml");
    let config = Compose {
        project: format!("layerlab-it-{}", std::process::id()),
        files: vec![compose_file.clone()],
        env: env.clone(),
    };
    let resolved = ok("docker-compose config", config.run(&["config"]));
    for expected in [
        "condition: service_healthy",
        &format!("LAYERLAB_DATABASE_URL: postgres://layerlab:{password}@db:5432/layerlab"),
        "pg_isready",
        "127.0.0.1",
        "layerlab-data:/var/lib/layerlab",
        "db-data:/var/lib/postgresql/data",
    ] {
        assert!(
            resolved.contains(expected),
            "no {expected:?} in\n{resolved}"
        );
    }
    let missing = Compose {
        env: env
            .iter()
            .filter(|(k, _)| k != "POSTGRES_PASSWORD")
            .cloned()
            .collect(),
        ..config
    };
    let refused = missing.run(&["config"]);
    assert!(!refused.status.success(), "a missing password is refused");
    assert!(text(&refused.stderr).contains("set POSTGRES_PASSWORD"));

    // The catalog comes from the tests' store (building it from Debian's
    // archive takes minutes and has its own test); where privileged
    // containers cannot run, the capabilities this machine has.
    let privileged = can_run_privileged();
    let store = format!("{}/store", catalog());
    let mut extra = format!(
        "services:\n  layerlab:\n    environment:\n      LAYERLAB_STORE_DIR: {store}\n    volumes:\n      - {store}:{store}\n"
    );
    if !privileged {
        extra.push_str(
            "      - /sys/fs/cgroup:/sys/fs/cgroup\n    privileged: false\n    cap_add: [SYS_ADMIN, NET_ADMIN]\n    security_opt: [seccomp=unconfined, apparmor=unconfined]\n",
        );
        eprintln!(
            "this machine's capability bounding set lacks some capabilities, so no privileged \
             container starts here: compose's layerlab runs with SYS_ADMIN and NET_ADMIN"
        );
    }
    let override_file = work.path().join("override.yml");
    std::fs::write(&override_file, extra).unwrap();
    let compose = Compose {
        project: format!("layerlab-it-{}", std::process::id()),
        files: vec![compose_file, override_file],
        env,
    };
    let _down = Down(&compose);
    ok("docker-compose up", compose.run(&["up", "-d"]));

    let deadline = Instant::now() + Duration::from_secs(120);
    let link = loop {
        let log = compose.logs("layerlab");
        if let Some(word) = log.split(['"', ' ']).find(|w| w.contains("/setup/")) {
            break word.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no setup link within two minutes; layerlab's log:\n{log}\ndb's log:\n{}",
            compose.logs("db")
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let db_log = compose.logs("db");
    assert!(
        db_log.contains("ready to accept connections"),
        "layerlab started after PostgreSQL was up:\n{db_log}"
    );
    let base = format!("http://127.0.0.1:{port}");
    let path = &link[link.find("/setup/").unwrap()..];
    let client = browser();
    let setup = submit_to(
        &client,
        &base,
        path,
        path,
        &[
            ("name", "teacher"),
            ("password", "teacher password"),
            ("confirm", "teacher password"),
        ],
    )
    .await;
    assert_eq!(setup.status(), 303, "the setup link makes the admin");
    let users = ok(
        "read the accounts in PostgreSQL",
        compose.run(&[
            "exec",
            "-T",
            "db",
            "psql",
            "-U",
            "layerlab",
            "-d",
            "layerlab",
            "-Atc",
            "SELECT name, role FROM users",
        ]),
    );
    assert_eq!(
        users.trim(),
        "teacher|admin",
        "the account lives in PostgreSQL"
    );
    let ready = reqwest::get(format!("{base}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200, "{}", ready.text().await.unwrap());

    ok("restart layerlab", compose.run(&["restart", "layerlab"]));
    let deadline = Instant::now() + Duration::from_secs(60);
    let fresh = browser();
    loop {
        let page = fresh.get(format!("{base}/login")).send().await;
        if page.is_ok_and(|p| p.status() == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "layerlab did not come back");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let login = submit_to(
        &fresh,
        &base,
        "/login",
        "/login",
        &[("name", "teacher"), ("password", "teacher password")],
    )
    .await;
    assert_eq!(login.status(), 303, "the admin survives a restart");
    let course = get_page(&fresh, &format!("{base}/")).await;
    assert!(
        course.contains("What is a container"),
        "the bundled course is served"
    );

    // Labs, with the least privilege the image needs: what README gives
    // as the `docker run` alternative to `privileged`, on the same
    // PostgreSQL and data volume.
    ok(
        "stop compose's layerlab",
        compose.run(&["stop", "layerlab"]),
    );
    let name = format!("{}-least", compose.project);
    let server_port = free_port();
    let store_volume = format!("{store}:{store}");
    let data_volume = format!("{}_layerlab-data:/var/lib/layerlab", compose.project);
    let database = format!("LAYERLAB_DATABASE_URL=postgres://layerlab:{password}@db:5432/layerlab");
    let network = format!("{}_default", compose.project);
    let publish = format!("127.0.0.1:{server_port}:8080");
    let cgroup_parent = format!("layerlab-it-{}", std::process::id());
    let least = LeastPrivileged { name: name.clone() };
    let mut args = vec![
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        &network,
        "-p",
        &publish,
    ];
    args.extend(LEAST_PRIVILEGE);
    args.extend([
        "-v",
        &data_volume,
        "-v",
        &store_volume,
        "-e",
        &database,
        "-e",
        "LAYERLAB_STORE_DIR",
        "layerlab-it/layerlab:test",
        "serve",
        "--listen",
        "0.0.0.0:8080",
        "--cgroup-parent",
        &cgroup_parent,
    ]);
    let mut command = Command::new(DOCKER);
    command
        .args(&args)
        .env("DOCKER_HOST", format!("unix://{SOCKET}"))
        .env("LAYERLAB_STORE_DIR", &store);
    ok(
        "docker run with the least privilege",
        command.output().unwrap(),
    );
    let base = format!("http://127.0.0.1:{server_port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while reqwest::get(format!("{base}/healthz")).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the least-privileged server did not start: {}",
            text(&docker(&["logs", &name]).stderr)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let token = ok(
        "create a token",
        docker(&["exec", &name, "layerlab", "token", "create", "teacher"]),
    );
    let token = token.trim();
    let api = reqwest::Client::new();
    let lab = api
        .post(format!("{base}/api/labs"))
        .bearer_auth(token)
        .json(&serde_json::json!({ "lesson": "01-what-is-a-container" }))
        .send()
        .await
        .unwrap();
    assert_eq!(lab.status(), 201);
    let lab: serde_json::Value = lab.json().await.unwrap();
    let url = format!("{base}/api/labs/{}", lab["id"].as_str().unwrap());
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let state: serde_json::Value = json(api.get(&url).bearer_auth(token)).await;
        match state["state"].as_str() {
            Some("ready") => break,
            Some("stopped") => panic!("the lab stopped: {state}"),
            _ => {}
        }
        assert!(Instant::now() < deadline, "the lab did not start: {state}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let stopped = api.delete(&url).bearer_auth(token).send().await.unwrap();
    assert!(
        stopped.status().is_success(),
        "stop the lab: {}",
        stopped.status()
    );
    drop(least);
    if !privileged {
        eprintln!(
            "compose's own layerlab ran without `privileged` here; labs ran under `docker run` with the least privilege instead"
        );
    }
}

/// What a layerlab container needs instead of `privileged` (README,
/// "Deploying with docker-compose"), in `docker run` flags.
const LEAST_PRIVILEGE: [&str; 16] = [
    "--cap-add",
    "SYS_ADMIN",
    "--cap-add",
    "NET_ADMIN",
    "--security-opt",
    "seccomp=unconfined",
    "--security-opt",
    "apparmor=unconfined",
    "--security-opt",
    "systempaths=unconfined",
    "--device",
    "/dev/loop-control",
    "--device-cgroup-rule",
    "b 7:* rmw",
    "-v",
    "/sys/fs/cgroup:/sys/fs/cgroup",
];

/// Removes the `docker run` container when dropped.
struct LeastPrivileged {
    name: String,
}

impl Drop for LeastPrivileged {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &self.name]);
    }
}
