//! `LAYERLAB_SKIP_ROOT_TESTS` (anything but empty or `0`) marks the unit
//! tests that mount overlays, which needs root, as ignored: libtest cannot
//! skip at run time.

fn main() {
    println!("cargo::rerun-if-env-changed=LAYERLAB_SKIP_ROOT_TESTS");
    println!("cargo::rustc-check-cfg=cfg(skip_root_tests)");
    let skip = std::env::var_os("LAYERLAB_SKIP_ROOT_TESTS");
    if skip.is_some_and(|v| !v.is_empty() && v != "0") {
        println!("cargo::rustc-cfg=skip_root_tests");
    }
}
