//! `LAYERLAB_SKIP_ROOT_TESTS` marks the unit tests that mount overlays,
//! which needs root, as ignored.

include!("../testkit/skip_root_tests.rs");

fn main() {
    skip_root_tests();
}
