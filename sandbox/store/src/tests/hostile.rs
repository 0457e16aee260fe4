//! One test per class of hostile layer: each must fail with a clear error
//! and leave nothing outside the target directory.

use std::path::Path;

use super::{DEFAULT, TarBuilder, gzip, unpack_into, zstd};
use crate::ErrorKind;
use crate::archive::{Limits, WhiteoutMode, unpack};

/// Unpacks into `<tmp>/root` and returns the error; `<tmp>/outside` is a
/// canary directory that must stay empty.
fn reject(layer: &[u8], expect: &str) {
    reject_with(layer, expect, Limits::default());
}

fn reject_with(layer: &[u8], expect: &str, limits: Limits) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    let outside = dir.path().join("outside");
    std::fs::create_dir(&root).expect("mkdir");
    std::fs::create_dir(&outside).expect("mkdir");
    let err =
        unpack(layer, &root, WhiteoutMode::Overlay, limits).expect_err("hostile layer accepted");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(
        err.to_string().contains(expect),
        "expected {expect:?} in {err}"
    );
    assert_empty(&outside);
}

fn assert_empty(dir: &Path) {
    let n = std::fs::read_dir(dir).expect("read_dir").count();
    assert_eq!(n, 0, "something was written outside the layer");
}

#[test]
fn dotdot_path() {
    reject(
        &TarBuilder::new()
            .file("../outside/pwned", b"x", &DEFAULT)
            .finish(),
        "'..'",
    );
    reject(
        &TarBuilder::new()
            .file("a/../../outside/pwned", b"x", &DEFAULT)
            .finish(),
        "'..'",
    );
}

#[test]
fn absolute_path() {
    reject(
        &TarBuilder::new()
            .file("/tmp/pwned", b"x", &DEFAULT)
            .finish(),
        "absolute",
    );
}

#[test]
fn write_through_symlinked_parent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let outside = dir.path().join("outside");
    let layer = TarBuilder::new()
        .symlink("evil", outside.to_str().expect("utf8"))
        .file("evil/pwned", b"x", &DEFAULT)
        .finish();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).expect("mkdir");
    std::fs::create_dir(&outside).expect("mkdir");
    let err = unpack_into(&layer, &root).expect_err("accepted");
    assert!(err.to_string().contains("through a symlink"), "{err}");
    assert_empty(&outside);
}

#[test]
fn symlink_escape_with_relative_target() {
    reject(
        &TarBuilder::new()
            .symlink("up", "../outside")
            .file("up/pwned", b"x", &DEFAULT)
            .finish(),
        "through a symlink",
    );
    reject(
        &TarBuilder::new()
            .dir("d/", &DEFAULT)
            .symlink("d/up", "../../outside")
            .dir("d/up/x/", &DEFAULT)
            .finish(),
        "through a symlink",
    );
}

#[test]
fn hardlink_escape() {
    reject(
        &TarBuilder::new()
            .hardlink("passwd", "../outside/x")
            .finish(),
        "hard link",
    );
    reject(
        &TarBuilder::new().hardlink("passwd", "/etc/passwd").finish(),
        "hard link",
    );
    reject(
        &TarBuilder::new()
            .symlink("l", "/etc")
            .hardlink("passwd", "l/passwd")
            .finish(),
        "hard link",
    );
}

#[test]
fn oversized_entry() {
    let limits = Limits {
        max_entry_size: 1000,
        ..Limits::default()
    };
    reject_with(
        &TarBuilder::new()
            .file("big", &[0u8; 2000], &DEFAULT)
            .finish(),
        "more than the 1000 bytes",
        limits,
    );
}

#[test]
fn decompression_bomb_by_ratio() {
    // 80 MiB of zeros compresses to a few KiB with zstd.
    let mut b = TarBuilder::new();
    let zeros = vec![0u8; 80 << 20];
    let layer = zstd(&b.file("zeros", &zeros, &DEFAULT).finish());
    assert!(layer.len() < 1 << 20);
    reject(&layer, "decompression bomb");
}

#[test]
fn decompression_bomb_by_total_size() {
    let mut b = TarBuilder::new();
    for i in 0..10 {
        b.file(&format!("f{i}"), &[1u8; 100_000], &DEFAULT);
    }
    let limits = Limits {
        max_expanded: 500_000,
        ..Limits::default()
    };
    reject_with(&gzip(&b.finish()), "decompression bomb", limits);
}

#[test]
fn too_many_entries() {
    let mut b = TarBuilder::new();
    for i in 0..20 {
        b.file(&format!("f{i}"), b"", &DEFAULT);
    }
    reject_with(
        &b.finish(),
        "more than 10 entries",
        Limits {
            max_entries: 10,
            ..Limits::default()
        },
    );
}

#[test]
fn garbage_and_truncated_streams() {
    reject(&gzip(b"this is not a tar archive at all, just some bytes that go on for a while ............................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................"), "not a valid tar");
    let full = gzip(
        &TarBuilder::new()
            .file("a", &[5u8; 10_000], &DEFAULT)
            .finish(),
    );
    reject(&full[..full.len() / 2], "not a valid tar");
}

#[test]
fn whiteout_naming_nothing() {
    reject(
        &TarBuilder::new().file(".wh.", b"", &DEFAULT).finish(),
        "whiteout names nothing",
    );
}

#[test]
fn directory_replaced_by_symlink_mid_layer() {
    // The unpacker reuses the last parent directory; replacing that
    // directory with a symlink must not let the next entry through it.
    reject(
        &TarBuilder::new()
            .dir("a/", &DEFAULT)
            .file("a/x", b"x", &DEFAULT)
            .symlink("a", "../outside")
            .file("a/y", b"y", &DEFAULT)
            .finish(),
        "through a symlink",
    );
}

#[test]
fn hardlink_to_itself() {
    reject(
        &TarBuilder::new()
            .file("f", b"x", &DEFAULT)
            .hardlink("f", "f")
            .finish(),
        "hard link",
    );
}
