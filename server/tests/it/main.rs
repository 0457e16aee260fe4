//! Integration tests: each starts the real `layerlab` binary on an
//! ephemeral port with a temporary data directory and drives it over HTTP
//! and its command line, as a browser, a script or an operator would.
//! These need root and real nodes, or the process itself (its log, its
//! signals, its command line); what HTTP alone shows runs in process on
//! the fake host, in the `app` suite.
//!
//! - `abuse`: what one hostile client can do to everyone else (floods,
//!   piles of sockets and accounts), tried on loopback.
//! - `harness`: starting and stopping servers, running the CLI, reading forms.
//! - `compose`: `docker-compose.yml` on a real dockerd with PostgreSQL.
//! - `database`: SQLite by default, or PostgreSQL with
//!   `LAYERLAB_TEST_DATABASE=postgres`; `db copy` from one to the other.
//! - `accounts`: sign-up, login, logout, setup link, roles, tokens.
//! - `protection`: CSRF, Origin, rate limits, body limits, headers.
//! - `lessons`: pages, Markdown, run buttons, assets, the JSON API, bad courses.
//! - `durability`: what survives a restart and a crash.
//! - `first_start`: a store lacking catalog images; they are built while
//!   the server runs and labs wait for them.
//! - `labs`: lab sessions and their terminal websockets, on real nodes.
//! - `grading`: checks, hints, scores and gradebooks, on real nodes.
//! - `course`: every bundled lesson's solution, typed into a real lab,
//!   earns full points after every task failed on the fresh lab.
//! - `sandbox`: the catalog and `layerlab sandbox run`, on real namespaces.
//! - `toolchain`: `scripts/ensure-rust.sh`, which `make` runs first.
//! - `operations`: `/metrics` (its own address, or a bearer token),
//!   `/healthz`, `/readyz` and the admin's labs page, on a real lab.
//! - `registry`: `layerlab registry serve` with skopeo and `kill -9`, in a
//!   lab node, and the hub of `layerlab serve --hub-listen`.

#[cfg(not(skip_root_tests))]
mod abuse;
#[cfg(not(skip_root_tests))]
mod accounts;
#[cfg(not(skip_root_tests))]
mod compose;
#[cfg(not(skip_root_tests))]
mod course;
#[cfg(not(skip_root_tests))]
mod database;
#[cfg(not(skip_root_tests))]
mod durability;
#[cfg(not(skip_root_tests))]
mod first_start;
#[cfg(not(skip_root_tests))]
mod grading;
#[cfg(not(skip_root_tests))]
mod harness;
#[cfg(not(skip_root_tests))]
mod labs;
#[cfg(not(skip_root_tests))]
mod lessons;
#[cfg(not(skip_root_tests))]
mod operations;
#[cfg(not(skip_root_tests))]
mod preview;
#[cfg(not(skip_root_tests))]
mod protection;
#[cfg(not(skip_root_tests))]
mod registry;
#[cfg(not(skip_root_tests))]
mod sandbox;
#[cfg(not(skip_root_tests))]
mod toolchain;

/// What the suite says when `LAYERLAB_SKIP_ROOT_TESTS` left it out.
#[cfg(skip_root_tests)]
#[test]
#[ignore = "LAYERLAB_SKIP_ROOT_TESTS is set: this suite drives the real binary, most of it as root on real labs"]
fn skipped_tests_that_need_root() {}
