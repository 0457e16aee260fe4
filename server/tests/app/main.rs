//! The web tier in this process on the fake sandbox host (`host::FakeHost`):
//! HTTP, accounts, lab rules, grading rules and the lab pane, without root,
//! a kernel's namespaces or the image catalog, in milliseconds. What needs
//! real nodes (terminals of a real shell, the engine, isolation) stays in
//! the `it` suite, on the real binary.
//!
//! - `harness`: [`harness::App`], a server built as `layerlab serve` builds
//!   it, answering through its router or on a loopback port.
//! - `labs`: ownership, slots, memory admission, idle and lifetime expiry
//!   on a paused clock, the API's two names.

mod harness;
mod labs;
