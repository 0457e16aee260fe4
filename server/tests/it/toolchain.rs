//! `scripts/ensure-rust.sh`, which `make` runs before building: quiet
//! with a new enough cargo, and a clear way out when it cannot install.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use crate::harness::*;

fn ensure_rust(path: &str, home: &Path) -> Output {
    Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/ensure-rust.sh"))
        .env("PATH", path)
        .env("HOME", home)
        .env_remove("CARGO_HOME")
        // Nothing listens on port 9: the installer cannot be downloaded.
        .env("RUSTUP_INSTALLER_URL", "https://127.0.0.1:9/rustup-init.sh")
        .output()
        .expect("run scripts/ensure-rust.sh")
}

#[test]
fn a_new_enough_cargo_is_kept() {
    let home = temp_dir();
    let out = ensure_rust(&std::env::var("PATH").unwrap(), home.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "");
}

#[test]
fn an_old_or_missing_cargo_without_the_installer_says_what_to_install() {
    let home = temp_dir();
    let fake = home.path().join("bin");
    std::fs::create_dir(&fake).unwrap();
    let cargo = fake.join("cargo");
    std::fs::write(
        &cargo,
        "#!/bin/sh\necho 'cargo 1.70.0 (90c541806 2023-05-31)'\n",
    )
    .unwrap();
    std::fs::set_permissions(&cargo, std::fs::Permissions::from_mode(0o755)).unwrap();

    let old = ensure_rust(&format!("{}:/usr/bin:/bin", fake.display()), home.path());
    let missing = ensure_rust("/usr/bin:/bin", home.path());
    for (out, why) in [
        (old, "cargo 1.70.0; this workspace needs Rust 1.85 or newer"),
        (
            missing,
            "cargo is not installed; this workspace needs Rust 1.85 or newer",
        ),
    ] {
        assert!(!out.status.success());
        let said = text(&out.stdout);
        assert!(said.contains(why), "{said}");
        let err = text(&out.stderr);
        assert!(
            err.contains("cannot download the Rust installer from https://127.0.0.1:9/")
                && err.contains("Install Rust 1.85 or newer by hand"),
            "{err}"
        );
    }
}
