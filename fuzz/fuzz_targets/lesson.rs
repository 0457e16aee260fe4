//! One lesson.md as the course loader reads it: front matter (YAML, tasks,
//! checks) and the Markdown body rendered to sanitized HTML. No input may
//! panic, and no author text may put a script element into the page.

#![no_main]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

/// A lesson folder with one asset, so asset links resolve both ways.
fn lesson_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = layerlab_fuzz::process_dir(&std::env::temp_dir(), "lesson");
        std::fs::create_dir_all(dir.join("assets")).expect("create the lesson folder");
        std::fs::write(dir.join("assets/diagram.svg"), "<svg/>").expect("write an asset");
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let slugs: BTreeSet<String> = ["01-intro", "02-next"].map(String::from).into();
    let (lesson, _) = course::fuzzing::lesson(text, lesson_dir(), "01-intro", &slugs);
    if let Some(lesson) = lesson {
        let html = lesson.html.to_ascii_lowercase();
        assert!(
            !html.contains("<script"),
            "script in the page: {}",
            lesson.html
        );
        let _ = lesson.outline();
    }
});
