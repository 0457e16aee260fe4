//! `layerlab serve` on a store that lacks catalog images: it serves at
//! once, builds them in the background, and labs wait for their image.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;
use crate::labs::{LabGuard, lab_state, post_lab, user_token, wait_until_ready};
use crate::sandbox::catalog;

const LESSON: &str = "01-what-is-a-container";
/// The server's default, which the harness turns off.
const BUILD: [&str; 2] = ["--missing-images", "build"];

/// A store in `data_dir` holding the test catalog's blobs (hard links)
/// but not the images that carry the layerlab binary (`registry:2`,
/// `workstation`), nor that layer itself: the server must build it again.
/// The build cache and package repository are copied, so everything else
/// comes from the cache as on a second start.
fn seed_without_node_image(data_dir: &Path) {
    let source = Path::new(catalog());
    let hub: Value = serde_json::from_slice(
        &std::fs::read(source.join("store/names/hub.json")).expect("read the catalog's names"),
    )
    .expect("hub.json is JSON");
    let names = hub["names"].as_object().expect("a names map");
    let blob = |digest: &str| {
        source
            .join("store/content/blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    let workstation = names["docker.io/library/workstation:latest"]
        .as_str()
        .expect("the catalog has workstation");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(blob(workstation)).expect("read its manifest"))
            .expect("a JSON manifest");
    let binary_layer = manifest["layers"]
        .as_array()
        .and_then(|layers| layers.last())
        .and_then(|layer| layer["digest"].as_str())
        .expect("workstation has layers")
        .trim_start_matches("sha256:")
        .to_owned();

    let blobs = data_dir.join("store/content/blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    for entry in std::fs::read_dir(source.join("store/content/blobs/sha256")).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != binary_layer.as_str() {
            std::fs::hard_link(entry.path(), blobs.join(entry.file_name())).unwrap();
        }
    }
    let kept: serde_json::Map<String, Value> = names
        .iter()
        .filter(|(name, _)| !name.contains("/workstation:") && !name.contains("/registry:"))
        .map(|(name, digest)| (name.clone(), digest.clone()))
        .collect();
    std::fs::create_dir_all(data_dir.join("store/names")).unwrap();
    std::fs::write(
        data_dir.join("store/names/hub.json"),
        serde_json::to_vec(&serde_json::json!({ "names": kept })).unwrap(),
    )
    .unwrap();
    std::fs::create_dir_all(data_dir.join("cache")).unwrap();
    for (from, to) in [("cache/images", "cache/images"), ("packages", "packages")] {
        let status = std::process::Command::new("cp")
            .arg("-a")
            .arg(source.join(from))
            .arg(data_dir.join(to))
            .status()
            .expect("run cp");
        assert!(status.success(), "cp -a {from}");
    }
}

/// Posts a lab for [`LESSON`], which is starting.
async fn start_before_the_catalog(server: &Server, token: &str) -> (String, LabGuard) {
    let response = post_lab(server, token, LESSON).await;
    assert_eq!(response.status(), 201);
    let lab: Value = response.json().await.unwrap();
    assert_eq!(lab["state"], "starting", "{lab}");
    let id = lab["id"].as_str().unwrap().to_owned();
    let guard = LabGuard {
        url: server.at(&format!("/api/labs/{id}")),
        token: token.to_owned(),
    };
    (id, guard)
}

async fn catalog_status(server: &Server) -> Value {
    json(reqwest::Client::new().get(server.at("/api/catalog"))).await
}

#[tokio::test]
async fn first_start_builds_the_missing_images_while_a_lab_waits() {
    let data = temp_dir();
    seed_without_node_image(data.path());
    let token = user_token(&data, "wendy");
    let server = Server::start(data.path(), &BUILD);

    // Started before its image exists: it waits instead of failing.
    let (id, _guard) = start_before_the_catalog(&server, &token).await;

    let status = catalog_status(&server).await;
    assert_eq!(status["state"], "preparing", "{status}");
    assert_eq!(status["total"], 7, "six images and the package repository");
    let pane = text_as(&token, &server.at(&format!("/lessons/{LESSON}/lab"))).await;
    assert!(
        pane.contains("Waiting for lab images (") && pane.contains("/7)"),
        "{pane}"
    );
    let course = get_page(&browser(), &server.at("/")).await;
    assert!(course.contains("Preparing lab images: "), "{course}");

    wait_until_ready(&server, &token, &id, Duration::from_secs(300)).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while catalog_status(&server).await["state"] != "ready" {
        assert!(
            Instant::now() < deadline,
            "catalog not ready\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let banner = get_page(&browser(), &server.at("/catalog/banner")).await;
    assert!(!banner.contains("Preparing"), "{banner}");

    let log = server.log();
    assert!(
        log.contains("catalog images are missing")
            && log.contains("missing=registry:2, workstation:latest"),
        "{log}"
    );
    for (image, i) in [
        ("busybox", 1),
        ("debian", 2),
        ("registry", 4),
        ("workstation", 6),
    ] {
        let line = format!("preparing catalog image image={image} i={i} n=7");
        assert!(log.contains(&line), "no {line:?} in\n{log}");
    }
    assert!(
        log.contains("catalog image ready image=workstation i=6 n=7 rebuilt=true"),
        "{log}"
    );
    assert!(
        log.contains("preparing the labs' package repository i=7 n=7")
            && log.contains("labs' package repository ready"),
        "{log}"
    );
    assert!(log.contains("catalog ready images=6"), "{log}");
}

/// A build that fails ends the labs waiting for it with its error and
/// what to do, and the pages say so.
#[tokio::test]
async fn a_failed_build_fails_the_waiting_lab_clearly() {
    let data = temp_dir();
    // The build cache's directory cannot be made: a file is in its way.
    std::fs::create_dir_all(data.path().join("cache")).unwrap();
    std::fs::write(data.path().join("cache/images"), "in the way").unwrap();
    let token = user_token(&data, "walter");
    let server = Server::start(data.path(), &BUILD);
    let error = lab_fails_with_the_catalogs_error(&server, &token).await;
    assert!(error.contains("cache"), "{error}");
    server.log_once_it_says("building the catalog failed");
}

/// Told not to build, the server says which images are missing and why
/// it does not build them.
#[tokio::test]
async fn missing_images_fail_says_what_is_missing() {
    let data = temp_dir();
    let token = user_token(&data, "wilma");
    let server = Server::start(data.path(), &["--missing-images", "fail"]);
    let error = lab_fails_with_the_catalogs_error(&server, &token).await;
    assert!(
        error.starts_with("busybox:latest, debian:bookworm, ")
            && error.ends_with(
                "not in the store, and --missing-images fail keeps the server from building them"
            ),
        "{error}"
    );
}

/// Starts a lab while the catalog lacks its image and the build failed or
/// will; checks the lab, the API and the course page report the failure,
/// and returns the catalog's error.
async fn lab_fails_with_the_catalogs_error(server: &Server, token: &str) -> String {
    let (id, _guard) = start_before_the_catalog(server, token).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let lab = loop {
        let lab = lab_state(server, token, &id).await;
        if lab["state"] != "starting" {
            break lab;
        }
        assert!(
            Instant::now() < deadline,
            "lab still starting\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(lab["state"], "stopped", "{lab}");
    let reason = lab["end_reason"].as_str().unwrap();
    assert!(
        reason.starts_with("the lab images could not be prepared (")
            && reason.contains("restart the server to try again"),
        "{reason}"
    );
    let status = catalog_status(server).await;
    assert_eq!(status["state"], "failed", "{status}");
    let error = status["error"].as_str().unwrap().to_owned();
    assert!(reason.contains(&error), "{reason} does not carry {error}");
    let course = get_page(&browser(), &server.at("/")).await;
    assert!(
        course.contains("The lab images could not be prepared: "),
        "{course}"
    );
    error
}

/// A server stopped while it builds leaves nothing of the build running:
/// debootstrap, its output read by the server, ends with it.
#[tokio::test]
async fn stopping_the_server_mid_build_stops_the_build() {
    let data = temp_dir();
    let server = Server::start(data.path(), &BUILD);
    let dir = data.path().to_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !builders_of(&dir).iter().any(|c| c.contains("debootstrap")) {
        assert!(
            Instant::now() < deadline,
            "no debootstrap for {dir} started\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        server
            .log()
            .contains("preparing catalog image image=debian i=2 n=7")
    );
    server.stop();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = builders_of(&dir);
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "still running: {left:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The command lines of the processes working in `dir`.
fn builders_of(dir: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(dir) && !cmdline.contains(" serve ") {
            found.push(cmdline);
        }
    }
    found
}
