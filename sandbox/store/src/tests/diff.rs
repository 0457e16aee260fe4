use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::{Overlay, listing, store};
use crate::archive::{Compression, DiffOptions, Limits, WhiteoutMode, unpack};
use crate::content::Provider;

fn make_tree(root: &Path) {
    std::fs::create_dir_all(root.join("etc/conf.d")).expect("mkdir");
    std::fs::write(root.join("etc/hostname"), "node1\n").expect("write");
    std::fs::write(root.join("etc/conf.d/a"), "a").expect("write");
    std::fs::create_dir_all(root.join("usr/bin")).expect("mkdir");
    std::fs::write(root.join("usr/bin/tool"), vec![3u8; 300_000]).expect("write");
    std::fs::hard_link(root.join("usr/bin/tool"), root.join("usr/bin/tool2")).expect("link");
    std::os::unix::fs::symlink("tool", root.join("usr/bin/alias")).expect("symlink");
    std::fs::set_permissions(
        root.join("usr/bin/tool"),
        std::os::unix::fs::PermissionsExt::from_mode(0o4755),
    )
    .expect("chmod");
    rustix::fs::chown(
        root.join("etc/hostname"),
        Some(rustix::fs::Uid::from_raw(1234)),
        Some(rustix::fs::Gid::from_raw(5678)),
    )
    .expect("chown");
    rustix::fs::setxattr(
        root.join("etc/hostname"),
        "user.note",
        b"kept",
        rustix::fs::XattrFlags::empty(),
    )
    .expect("xattr");
    let long = root
        .join("deep")
        .join("d".repeat(120))
        .join("f".repeat(130));
    std::fs::create_dir_all(long.parent().expect("parent")).expect("mkdir");
    std::fs::write(&long, "long name").expect("write");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("null"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .expect("mknod");
}

#[test]
fn same_tree_same_digest_and_mtime_clamp() {
    let (_d, s) = store();
    let a = tempfile::tempdir().expect("tempdir");
    make_tree(a.path());
    let options = DiffOptions {
        compression: Compression::Gzip,
        clamp_mtime: Some(1_000),
        ..DiffOptions::default()
    };
    let l1 = s.create_layer_from_dir(a.path(), &options).expect("layer");
    let l2 = s.create_layer_from_dir(a.path(), &options).expect("layer");
    assert_eq!(l1, l2, "diff is deterministic");
    // A copy made later (fresh mtimes, other inode numbers) gives the same digest under a clamp.
    let b = tempfile::tempdir().expect("tempdir");
    make_tree(b.path());
    let l3 = s.create_layer_from_dir(b.path(), &options).expect("layer");
    assert_eq!(l1.digest, l3.digest);
    let zstd = s
        .create_layer_from_dir(
            a.path(),
            &DiffOptions {
                compression: Compression::Zstd,
                ..options.clone()
            },
        )
        .expect("zstd");
    assert_eq!(zstd.diff_id, l1.diff_id, "same tar, other compression");
    assert_ne!(zstd.digest, l1.digest);
    let plain = s
        .create_layer_from_dir(
            a.path(),
            &DiffOptions {
                compression: Compression::None,
                ..options
            },
        )
        .expect("plain");
    assert_eq!(plain.digest, plain.diff_id);
}

#[test]
fn diff_round_trip_keeps_everything() {
    let (_d, s) = store();
    let src = tempfile::tempdir().expect("tempdir");
    make_tree(src.path());
    let layer = s
        .create_layer_from_dir(src.path(), &DiffOptions::default())
        .expect("layer");
    let out = tempfile::tempdir().expect("tempdir");
    let blob = s.content().open(&layer.digest).expect("open");
    let summary =
        unpack(blob, out.path(), WhiteoutMode::Overlay, Limits::default()).expect("unpack");
    assert_eq!(summary.diff_id, layer.diff_id);
    assert_eq!(listing(src.path()), listing(out.path()));
    let m = |p: &Path| std::fs::metadata(p).expect("stat").ino();
    assert_eq!(
        m(&out.path().join("usr/bin/tool")),
        m(&out.path().join("usr/bin/tool2"))
    );
}

/// A layer made from an open tree (a container's writable layer) is
/// unpacked as it is written: its snapshot is there before any image
/// names it, the same tree an unpack of its blob gives, and an image over
/// it is ready to run without reading the blob again.
#[test]
fn a_committed_layer_is_unpacked_in_the_same_pass() {
    let (_d, s) = store();
    let base = tempfile::tempdir().expect("tempdir");
    make_tree(base.path());
    let below = s
        .create_layer_from_dir(base.path(), &DiffOptions::default())
        .expect("base layer");
    let base_image = s
        .write_image(
            &super::gc::config_for(&[&below]),
            std::slice::from_ref(&below),
        )
        .expect("base image");
    s.unpack(&base_image.manifest_digest).expect("unpack base");
    let upper = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(upper.path().join("etc/conf.d")).expect("mkdir");
    std::fs::write(upper.path().join("etc/hostname"), "changed\n").expect("write");
    std::fs::write(upper.path().join("new"), vec![7u8; 700_000]).expect("write");
    // An overlay whiteout: the committed layer deletes etc/conf.d/a.
    super::whiteout(&upper.path().join("etc/conf.d/a"));
    let root = std::fs::File::open(upper.path()).expect("open upper");
    let options = DiffOptions {
        compression: Compression::Gzip,
        fast: true,
        ..DiffOptions::default()
    };
    let layer = s
        .create_layer_at(
            &root,
            Path::new("<upper>"),
            &options,
            std::slice::from_ref(&below),
        )
        .expect("layer");

    let chain =
        crate::manifests::chain_ids(&[below.diff_id.clone(), layer.diff_id.clone()]).remove(1);
    assert!(
        s.snapshots().exists(&chain),
        "the new layer's snapshot exists at once"
    );
    let snapshot = s.snapshots().lowerdirs(&chain).expect("lowerdirs");
    let from_blob = tempfile::tempdir().expect("tempdir");
    let blob = s.content().open(&layer.digest).expect("open");
    let summary = unpack(
        blob,
        from_blob.path(),
        WhiteoutMode::Overlay,
        Limits::default(),
    )
    .expect("unpack");
    assert_eq!(summary.diff_id, layer.diff_id, "the blob is the tar hashed");
    assert_eq!(listing(&snapshot[0]), listing(from_blob.path()));

    let config = super::gc::config_for(&[&below, &layer]);
    let image = s.write_image(&config, &[below, layer]).expect("image");
    let unpacked = s.unpack(&image.manifest_digest).expect("unpack the image");
    assert_eq!(unpacked.chain_id, Some(chain));
    assert_eq!(unpacked.lowerdirs[0], snapshot[0]);
}

/// unpack → modify (as a container would, through an overlay) → diff the
/// upperdir → apply that diff on top of a copy of the base: the result is
/// the modified tree.
#[test]
#[cfg_attr(
    skip_root_tests,
    ignore = "mounts an overlay, which needs root: LAYERLAB_SKIP_ROOT_TESTS is set"
)]
fn unpack_modify_diff_apply_gives_the_same_tree() {
    let (_d, s) = store();
    let base = tempfile::tempdir().expect("tempdir");
    make_tree(base.path());
    std::fs::create_dir_all(base.path().join("var/cache")).expect("mkdir");
    std::fs::write(base.path().join("var/cache/a"), "a").expect("write");
    std::fs::write(base.path().join("var/cache/b"), "b").expect("write");
    let l1 = s
        .create_layer_from_dir(base.path(), &DiffOptions::default())
        .expect("layer");
    let config = super::gc::config_for(&[&l1]);
    let image = s
        .write_image(&config, std::slice::from_ref(&l1))
        .expect("image");
    let unpacked = s.unpack(&image.manifest_digest).expect("unpack");
    let mounts = s
        .snapshots()
        .prepare("c1", unpacked.chain_id.as_ref())
        .expect("prepare");

    let mnt = Overlay::mount(
        &mounts.overlay_options(),
        rustix::mount::MountFlags::empty(),
    );
    let modify = || -> std::io::Result<()> {
        let m = mnt.path();
        std::fs::write(m.join("etc/hostname"), "changed\n")?;
        std::fs::remove_file(m.join("etc/conf.d/a"))?;
        std::fs::remove_dir_all(m.join("var/cache"))?;
        std::fs::create_dir(m.join("var/cache"))?;
        std::fs::write(m.join("var/cache/c"), "c")?;
        std::fs::write(m.join("new"), "new")?;
        Ok(())
    };
    let result = modify();
    let expected = listing(mnt.path());
    drop(mnt);
    result.expect("modify through overlay");

    let (l2, chain) = s
        .snapshots()
        .commit("c1", &DiffOptions::default())
        .expect("commit");
    assert_eq!(
        chain,
        crate::manifests::chain_ids(&[l1.diff_id.clone(), l2.diff_id.clone()])[1]
    );
    let applied = tempfile::tempdir().expect("tempdir");
    for l in [&l1, &l2] {
        unpack(
            s.content().open(&l.digest).expect("open"),
            applied.path(),
            WhiteoutMode::Apply,
            Limits::default(),
        )
        .expect("apply");
    }
    // `listing` leaves directory mtimes out: the overlay bumps them on
    // every change, while a diff carries only the upper directory's time.
    assert_eq!(listing(applied.path()), expected);
    // The committed snapshot is the upperdir itself, in overlay form.
    assert!(s.snapshots().exists(&chain));
}
