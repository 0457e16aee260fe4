//! Integration tests: each starts a real registry on 127.0.0.1:0 over a
//! store in a temporary directory and drives it with real HTTP clients.
//!
//! - `harness`: starting servers, pushing blobs, manifests and images.
//! - `pull`, `push`, `discovery`, `management`: the four workflows of the
//!   OCI distribution-spec conformance suite, each request checked for
//!   its status, headers and error code.
//! - `hostile`: wrong digests, truncated uploads, huge manifests, path
//!   tricks in names, chunks out of order: clear errors, nothing stored.
//! - `durability`: uploads survive a restart and a `kill -9` of the
//!   serving process; GC frees only what nothing references.
//! - `clients`: skopeo copies the catalog's nginx in and out; Debian's
//!   dockerd pushes and pulls busybox; the hub serves the catalog
//!   read-only; basic auth.
//! - `upstream`: the hub pulling what the catalog lacks through from an
//!   upstream registry, and serving it once the upstream is gone.
//! - `sha512`: every blob and manifest operation with sha512 digests.
//! - `keep_alive`: answers sent before a request's body arrived leave a
//!   keep-alive client a usable connection.

mod clients;
mod discovery;
mod durability;
mod harness;
mod hostile;
mod keep_alive;
mod management;
mod pull;
mod push;
mod sha512;
mod upstream;
