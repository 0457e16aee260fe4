//! What layerlab's tests that create real sandboxes share; a
//! dev-dependency only, never part of the product.
//!
//! - [`reserve_uid_block`]: test processes running at the same time (the
//!   runtime's, the host's, the grader's and the server's suites) each get a
//!   block of the host uid space of their own, so no two sandboxes on the
//!   machine ever share a range. A block is a file holding the owner's pid
//!   under [`UID_BLOCKS`]; a dead owner's block is taken over.
//! - [`run`]: the runner of suites built with `harness = false`, which must
//!   have their own `main` because the test executable doubles as the
//!   sandbox helper (`runtime::helper::main_if_requested()` comes first).
//!
//! - [`ensure_catalog`] (feature `catalog`): the image catalog the suites
//!   share, in [`CATALOG_STORE`].
//!
//! Invariant: a block number is claimed with `create_new`, so two
//! processes can never both own it, even while taking over a dead one.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

/// Where concurrent test processes reserve their uid blocks.
pub const UID_BLOCKS: &str = "/var/tmp/layerlab/test-uid-blocks";
/// How many blocks there are to take.
pub const UID_BLOCK_COUNT: u32 = 256;
/// Sandbox uid ranges (65536 ids each) in one block.
pub const SLOTS_PER_BLOCK: u32 = 8;

/// Reserves a uid block and returns its number and claim file; the caller
/// removes the file when done (a leftover is taken over once its owner
/// died). A suite's sandboxes then use the ranges from
/// `region + number * SLOTS_PER_BLOCK * 65536`, each suite in a region of
/// its own.
pub fn reserve_uid_block() -> (u32, PathBuf) {
    std::fs::create_dir_all(UID_BLOCKS).expect("create the uid block directory");
    let me = std::process::id().to_string();
    let claim = |path: &Path| {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .and_then(|mut f| f.write_all(me.as_bytes()))
            .is_ok()
    };
    for n in 0..UID_BLOCK_COUNT {
        let path = Path::new(UID_BLOCKS).join(n.to_string());
        if claim(&path) {
            return (n, path);
        }
        let owner = std::fs::read_to_string(&path).unwrap_or_default();
        let dead = owner
            .trim()
            .parse::<u32>()
            .is_ok_and(|p| !Path::new(&format!("/proc/{p}")).exists());
        if dead && std::fs::remove_file(&path).is_ok() && claim(&path) {
            return (n, path);
        }
    }
    panic!("all {UID_BLOCK_COUNT} test uid blocks under {UID_BLOCKS} are taken by live processes")
}

/// The store holding the catalog every suite shares.
#[cfg(feature = "catalog")]
pub const CATALOG_STORE: &str = "/var/tmp/layerlab/test-data/store";

/// Builds the shared catalog when it has no `workstation` yet. Only then:
/// the server's tests keep it current with the real layerlab binary, and
/// this suite's own executable (the stand-in put in its place) only fills
/// an empty catalog.
#[cfg(feature = "catalog")]
pub fn ensure_catalog() {
    let store = store::Store::open(Path::new(CATALOG_STORE)).expect("open the test store");
    let name = store::Reference::parse("workstation").expect("parse reference");
    if store.resolve(&images::hub(), &name).is_err() {
        let layerlab = std::env::current_exe().expect("the test's own executable");
        let cache = Path::new("/var/tmp/layerlab/test-data/cache/images");
        images::build_catalog(&store, cache, &layerlab, |_| {})
            .expect("build the image catalog into the test store");
    }
}

/// A named test of a `harness = false` suite.
pub type Test = (&'static str, fn());

/// Runs the `tests` whose names contain one of the command line's
/// non-option arguments (all without any) on `threads` threads, prints
/// cargo's summary line and exits, non-zero if any failed.
pub fn run(tests: &[Test], threads: usize) -> ! {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let selected: Vec<&Test> = tests
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();
    println!("\nrunning {} tests", selected.len());
    let queue = Mutex::new(selected.into_iter());
    let failed = Mutex::new(Vec::new());
    let passed = Mutex::new(0usize);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                loop {
                    let next = queue.lock().expect("test queue").next();
                    let Some((name, test)) = next else { break };
                    let start = Instant::now();
                    let ok = std::panic::catch_unwind(test).is_ok();
                    println!(
                        "test {name} ... {} ({:.2?})",
                        if ok { "ok" } else { "FAILED" },
                        start.elapsed()
                    );
                    if ok {
                        *passed.lock().expect("passed") += 1;
                    } else {
                        failed.lock().expect("failed").push(*name);
                    }
                }
            });
        }
    });
    let failed = failed.into_inner().expect("failed");
    let passed = passed.into_inner().expect("passed");
    if !failed.is_empty() {
        println!("\nfailures:\n    {}", failed.join("\n    "));
    }
    println!(
        "\ntest result: {}. {passed} passed; {} failed; 0 ignored; 0 measured; 0 filtered out\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        failed.len()
    );
    std::process::exit(if failed.is_empty() { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_in_one_process_get_different_blocks_claimed_with_our_pid() {
        let (first, first_claim) = reserve_uid_block();
        let (second, second_claim) = reserve_uid_block();
        assert_ne!(first, second);
        for claim in [&first_claim, &second_claim] {
            let owner = std::fs::read_to_string(claim).expect("read claim");
            assert_eq!(owner, std::process::id().to_string());
        }
        std::fs::remove_file(first_claim).expect("release");
        std::fs::remove_file(second_claim).expect("release");
    }
}
