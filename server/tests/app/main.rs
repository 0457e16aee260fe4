//! The web tier in this process on the fake sandbox host (`host::FakeHost`):
//! HTTP, accounts, lab rules, grading rules and the lab pane, without root,
//! a kernel's namespaces or the image catalog, in milliseconds. What needs
//! real nodes (terminals of a real shell, the engine, isolation) stays in
//! the `it` suite, on the real binary.
//!
//! - `harness`: [`harness::App`], a server built as `layerlab serve` builds
//!   it, answering through its router or on a loopback port.
//! - `labs`: ownership, slots, memory admission, idle and lifetime expiry
//!   on a test clock, terminal origins, the API's two names.
//! - `accounts`, `signup_code`: sign-up, login, logout, redirects, htmx.
//! - `protection`: CSRF, Origin, limits, headers, caching, API errors.
//! - `lessons`: course and lesson pages, assets, sanitizing, the API.
//! - `grading`: checks against the node, hints, scores, attempts and who
//!   reads them, a check asked for again while it runs.

mod accounts;
mod grading;
mod harness;
mod labs;
mod lessons;
mod protection;
mod signup_code;
