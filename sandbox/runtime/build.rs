//! `LAYERLAB_SKIP_ROOT_TESTS` marks the unit tests that attach loop
//! devices, which needs root, as ignored.

include!("../testkit/skip_root_tests.rs");

fn main() {
    skip_root_tests();
}
