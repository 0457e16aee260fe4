//! Embeds the browser files of the npm packages in `web/package.json`
//! (htmx, xterm.js and its addons) straight from `web/node_modules`, so a
//! binary never exists without its page scripts. Without them the build
//! stops and says what to run.

use std::fmt::Write as _;
use std::path::Path;

/// Each file: where npm puts it, and the name it is served under
/// (`/static/{version}/vendor/{name}`).
const VENDOR: &[(&str, &str)] = &[
    ("htmx.org/dist/htmx.min.js", "htmx.min.js"),
    ("@xterm/xterm/lib/xterm.js", "xterm.js"),
    ("@xterm/xterm/css/xterm.css", "xterm.css"),
    ("@xterm/addon-fit/lib/addon-fit.js", "addon-fit.js"),
    (
        "@xterm/addon-web-links/lib/addon-web-links.js",
        "addon-web-links.js",
    ),
];

// Compiles the suite on the real binary, which needs root, to one
// ignored test that says so.
include!("../sandbox/testkit/skip_root_tests.rs");

fn main() {
    skip_root_tests();
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    bundled_course(Path::new(&manifest));
    let web = Path::new(&manifest).join("../web");
    let modules = web.join("node_modules");
    println!(
        "cargo::rerun-if-changed={}",
        web.join("package-lock.json").display()
    );
    let mut table = String::from(
        "/// The npm packages' browser files, by served name (written by build.rs).\n\
         pub const VENDOR: &[(&str, &[u8])] = &[\n",
    );
    let mut missing = Vec::new();
    for (from, name) in VENDOR {
        let path = modules.join(from);
        println!("cargo::rerun-if-changed={}", path.display());
        match path.canonicalize() {
            Ok(path) => {
                writeln!(
                    table,
                    "    ({name:?}, include_bytes!({:?})),",
                    path.display()
                )
                .expect("writing to a String");
            }
            Err(_) => missing.push(*from),
        }
    }
    table.push_str("];\n");
    if !missing.is_empty() {
        // `cargo::error` fails the build with this message on top.
        println!(
            "cargo::error=web/node_modules lacks the page scripts ({}): run `make web` (npm ci in web/) and build again",
            missing.join(", ")
        );
        return;
    }
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    std::fs::write(Path::new(&out).join("vendor.rs"), table).expect("OUT_DIR is writable");
}

/// The binary carries `lessons/` (`src/bundled.rs`); a build without a
/// single lesson there would serve an empty course, so it stops instead.
fn bundled_course(manifest: &Path) {
    let lessons = manifest.join("../lessons");
    println!("cargo::rerun-if-changed={}", lessons.display());
    let found = std::fs::read_dir(&lessons)
        .map(|entries| {
            entries
                .flatten()
                .any(|e| e.path().join("lesson.md").is_file())
        })
        .unwrap_or(false);
    if !found {
        println!(
            "cargo::error=the bundled course is missing: {} holds no lesson folder with a lesson.md",
            lessons.display()
        );
    }
}
