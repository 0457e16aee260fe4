//! `layerlab images …` and `layerlab sandbox run` against the real catalog.
//! The catalog is shared with the images crate's tests (same directory,
//! built once under a file lock, verified on every later use).

use std::sync::OnceLock;

use crate::harness::*;

pub const CATALOG: &str = "/var/tmp/layerlab/test-data";

pub fn catalog() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = cli(&["images", "build", "--data-dir", CATALOG], "");
        assert!(
            out.status.success(),
            "catalog build failed (needs root and Debian's archive):\n{}",
            text(&out.stderr)
        );
    });
    CATALOG
}

fn sandbox_run(image: &str, command: &[&str]) -> std::process::Output {
    let mut args = vec![
        "sandbox",
        "run",
        "--data-dir",
        catalog(),
        "--image",
        image,
        "--",
    ];
    args.extend_from_slice(command);
    cli(&args, "")
}

#[test]
fn sandbox_run_is_root_in_node1_and_passes_the_exit_code_through() {
    let out = sandbox_run(
        "busybox",
        &[
            "sh",
            "-c",
            "hostname; id -u; cat /proc/self/uid_map; exit 7",
        ],
    );
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "node1");
    assert_eq!(lines[1], "0", "root inside");
    let map: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(map[0], "0");
    assert_ne!(map[1], "0", "root inside is not root outside: {}", lines[2]);
}

#[test]
fn the_workstation_node_has_the_docker_cli_and_the_image_environment() {
    let out = sandbox_run(
        "workstation",
        &[
            "bash",
            "-c",
            "docker --version && echo \"PATH=$PATH\" && pwd",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("Docker version"), "{stdout}");
    assert!(
        stdout.contains("PATH=/usr/local/sbin:"),
        "the image's Env reaches the command: {stdout}"
    );
}

#[test]
fn a_signal_ends_the_command_with_128_plus_its_number() {
    let killed = sandbox_run("busybox", &["sh", "-c", "kill -9 $$"]);
    assert_eq!(killed.status.code(), Some(137), "{}", text(&killed.stderr));
}

#[test]
fn bad_images_and_sizes_get_clear_errors() {
    let out = sandbox_run("no-such-image", &["true"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("layerlab images build"),
        "{}",
        text(&out.stderr)
    );
    let out = sandbox_run("Bad//Name", &["true"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not an image name"),
        "{}",
        text(&out.stderr)
    );
    let out = cli(&["sandbox", "run", "--memory", "lots", "--", "true"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("not a size"));
}

#[test]
fn images_list_shows_the_catalog() {
    let out = cli(&["images", "list", "--data-dir", catalog()], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listing = text(&out.stdout);
    for name in [
        "busybox",
        "debian:bookworm",
        "nginx",
        "hello-world",
        "workstation",
    ] {
        assert!(listing.contains(name), "{name} missing from:\n{listing}");
    }
    assert!(
        listing
            .lines()
            .any(|l| l.contains("workstation") && l.contains("(internal)"))
    );
}
