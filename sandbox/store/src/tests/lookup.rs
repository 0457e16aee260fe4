use std::fs;
use std::path::PathBuf;

use super::whiteout;
use crate::archive::{OVERLAY_OPAQUE_XATTR, kind_in_layers};

/// Two layers as the store unpacks them (overlay whiteouts, an opaque
/// directory), looked up as overlayfs merges them.
#[test]
fn paths_are_found_in_layers_as_overlayfs_merges_them() {
    let bottom = tempfile::tempdir().expect("tempdir");
    let top = tempfile::tempdir().expect("tempdir");
    let b = bottom.path();
    for dir in ["srv", "a/b", "gone", "opaque", "shadowed"] {
        fs::create_dir_all(b.join(dir)).expect("mkdir");
    }
    fs::write(b.join("opaque/x"), "x").expect("write");
    fs::write(b.join("gone/x"), "x").expect("write");
    fs::write(b.join("replaced"), "file below").expect("write");
    std::os::unix::fs::symlink("/srv", b.join("link")).expect("symlink");
    let t = top.path();
    whiteout(&t.join("gone"));
    fs::create_dir(t.join("opaque")).expect("mkdir");
    rustix::fs::setxattr(
        t.join("opaque"),
        OVERLAY_OPAQUE_XATTR,
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .expect("opaque");
    fs::write(t.join("file"), "f").expect("write");
    fs::write(t.join("shadowed"), "a file over a directory").expect("write");
    fs::create_dir(t.join("replaced")).expect("mkdir");
    let layers: Vec<PathBuf> = vec![t.to_owned(), b.to_owned()];
    let kind = |path: &str| kind_in_layers(&layers, path).map_err(|e| e.kind());

    assert_eq!(kind("/"), Ok(Some(true)));
    assert_eq!(kind("/srv"), Ok(Some(true)));
    assert_eq!(kind("/a/b/"), Ok(Some(true)));
    assert_eq!(kind("/./a//b"), Ok(Some(true)));
    assert_eq!(kind("/missing"), Ok(None));
    assert_eq!(kind("/a/missing"), Ok(None));
    // Deleted in the top layer, with what was under it.
    assert_eq!(kind("/gone"), Ok(None));
    assert_eq!(kind("/gone/x"), Ok(None));
    // An opaque directory hides the lower one's entries.
    assert_eq!(kind("/opaque"), Ok(Some(true)));
    assert_eq!(kind("/opaque/x"), Ok(None));
    // The topmost wins, file over directory and directory over file.
    assert_eq!(kind("/file"), Ok(Some(false)));
    assert_eq!(kind("/shadowed"), Ok(Some(false)));
    assert_eq!(kind("/replaced"), Ok(Some(true)));
    // What needs a symlink followed, or is not a path, is not answered.
    let unsupported = Err(std::io::ErrorKind::Unsupported);
    assert_eq!(kind("/link"), unsupported);
    assert_eq!(kind("/link/x"), unsupported);
    assert_eq!(kind("/file/x"), unsupported);
    assert_eq!(kind("/srv/../etc"), unsupported);
}
