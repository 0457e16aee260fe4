// Included by the build scripts of crates whose unit tests need root
// (`include!`): libtest cannot skip a test at run time, so
// `LAYERLAB_SKIP_ROOT_TESTS` (anything but empty or `0`) becomes the cfg
// `skip_root_tests`, under which those tests are marked ignored.

fn skip_root_tests() {
    println!("cargo::rerun-if-env-changed=LAYERLAB_SKIP_ROOT_TESTS");
    println!("cargo::rustc-check-cfg=cfg(skip_root_tests)");
    let skip = std::env::var_os("LAYERLAB_SKIP_ROOT_TESTS");
    if skip.is_some_and(|v| !v.is_empty() && v != "0") {
        println!("cargo::rustc-cfg=skip_root_tests");
    }
}
