use std::time::Duration;

use super::store;
use crate::{DiffOptions, Digest, ErrorKind, GcOptions, Layer, Namespace, Reference};

const NOW: GcOptions = GcOptions {
    grace: Duration::ZERO,
};

pub(crate) fn config_for(layers: &[&Layer]) -> Vec<u8> {
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| format!("\"{}\"", l.diff_id))
        .collect();
    format!(
        r#"{{"architecture":"{}","os":"linux","config":{{"Cmd":["/bin/sh"]}},"rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
        crate::manifests::host_architecture(),
        diff_ids.join(",")
    )
    .into_bytes()
}

fn image(s: &crate::Store, content: &str) -> (crate::ImageRef, Layer) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("file"), content).expect("write");
    let layer = s
        .create_layer_from_dir(dir.path(), &DiffOptions::default())
        .expect("layer");
    let img = s
        .write_image(&config_for(&[&layer]), std::slice::from_ref(&layer))
        .expect("image");
    (img, layer)
}

#[test]
fn gc_keeps_named_and_leased_and_frees_the_rest() {
    let (_d, s) = store();
    let ns = Namespace::new("engine-1").expect("ns");
    let (named, named_layer) = image(&s, "named");
    let (leased, _) = image(&s, "leased");
    let (orphan, orphan_layer) = image(&s, "orphan");
    s.tag(
        &ns,
        &Reference::parse("named").expect("ref"),
        &named.manifest_digest,
    )
    .expect("tag");
    let unpacked_named = s.unpack(&named.manifest_digest).expect("unpack");
    drop(unpacked_named);
    let unpacked_leased = s.unpack(&leased.manifest_digest).expect("unpack");
    let orphan_unpacked = s.unpack(&orphan.manifest_digest).expect("unpack");
    let orphan_chain = orphan_unpacked.chain_id.clone().expect("chain");
    drop(orphan_unpacked);
    let stray = s.write_blob_bytes(b"stray").expect("blob").digest;

    // Young objects are spared by the default grace period.
    let report = s.gc(&GcOptions::default()).expect("gc");
    assert!(report.blobs.is_empty() && report.snapshots.is_empty());

    let report = s.gc(&NOW).expect("gc");
    let mut freed: Vec<Digest> = vec![
        orphan.manifest_digest.clone(),
        orphan.config_digest.clone(),
        orphan_layer.digest.clone(),
        stray,
    ];
    freed.sort();
    assert_eq!(report.blobs, freed);
    assert_eq!(report.snapshots, vec![orphan_chain]);
    for d in [
        &named.manifest_digest,
        &named.config_digest,
        &named_layer.digest,
        &leased.manifest_digest,
        &leased.config_digest,
    ] {
        assert!(s.blob_exists(d), "{d} was referenced");
    }
    assert!(
        unpacked_leased.lowerdirs.iter().all(|p| p.exists()),
        "leased snapshot kept"
    );
    // The named image is still whole and usable.
    let again = s.unpack(&named.manifest_digest).expect("unpack named");
    assert!(again.lowerdirs[0].join("file").exists());

    // Releasing the lease lets GC take the leased image.
    drop(unpacked_leased);
    drop(again);
    let report = s.gc(&NOW).expect("gc");
    assert!(report.blobs.contains(&leased.manifest_digest));
    assert_eq!(report.snapshots.len(), 1);
    assert!(s.blob_exists(&named.manifest_digest));
    assert_eq!(
        s.blob_info(&leased.manifest_digest)
            .expect_err("freed")
            .kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn gc_keeps_parents_of_active_snapshots_and_kept_leases() {
    let (_d, s) = store();
    let (img, _) = image(&s, "base");
    let unpacked = s.unpack(&img.manifest_digest).expect("unpack");
    let chain = unpacked.chain_id.clone().expect("chain");
    let kept_id = unpacked.lease.keep();
    let mounts = s
        .snapshots()
        .prepare("container-1", Some(&chain))
        .expect("prepare");
    s.release_lease(&kept_id).expect("release");
    let report = s.gc(&NOW).expect("gc");
    assert!(
        report.snapshots.is_empty(),
        "active snapshot's parent is a root"
    );
    assert_eq!(
        report.blobs.len(),
        3,
        "the unnamed image's blobs go, its snapshot stays"
    );
    assert!(mounts.lowerdirs[0].exists());

    let held = s.write_blob_bytes(b"held").expect("blob").digest;
    let mut lease = s.lease().expect("lease");
    lease.add_blob(held.clone()).expect("add");
    let id = lease.keep();
    s.snapshots().remove("container-1").expect("remove");
    let report = s.gc(&NOW).expect("gc");
    assert_eq!(report.snapshots, vec![chain]);
    assert!(s.blob_exists(&held), "kept lease holds the blob");
    let adopted = s.adopt_lease(&id).expect("adopt");
    drop(adopted);
    assert!(s.leases().expect("leases").is_empty());
}

#[test]
fn gc_runs_while_images_are_unpacked_concurrently() {
    let (_d, s) = store();
    let ns = Namespace::new("hub").expect("ns");
    let images: Vec<_> = (0..4).map(|i| image(&s, &format!("img{i}")).0).collect();
    for (i, img) in images.iter().enumerate() {
        s.tag(
            &ns,
            &Reference::parse(&format!("img{i}")).expect("ref"),
            &img.manifest_digest,
        )
        .expect("tag");
    }
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let s = s.clone();
            let digests: Vec<Digest> = images.iter().map(|i| i.manifest_digest.clone()).collect();
            std::thread::spawn(move || {
                for _ in 0..10 {
                    for d in &digests {
                        let u = s.unpack(d).expect("unpack during gc");
                        assert!(u.lowerdirs.iter().all(|p| p.join("file").exists()));
                    }
                }
            })
        })
        .collect();
    for _ in 0..10 {
        let report = s.gc(&NOW).expect("gc");
        assert!(
            report.blobs.is_empty(),
            "named blobs freed: {:?}",
            report.blobs
        );
    }
    for w in workers {
        w.join().expect("worker");
    }
}

#[test]
fn named_leases_persist_across_handles_until_released() {
    let (_d, s) = store();
    let held = s.write_blob_bytes(b"held by name").expect("blob").digest;
    let dropped = s.write_blob_bytes(b"dropped by name").expect("blob").digest;
    {
        let mut lease = s.named_lease("registry-1").expect("named lease");
        lease.add_blob(held.clone()).expect("add");
        lease.add_blob(dropped.clone()).expect("add");
    }
    // Dropping the handle keeps it; a second handle sees the same record.
    let mut again = s.named_lease("registry-1").expect("reopen");
    assert_eq!(again.record().blobs.len(), 2);
    // One owner at a time: a second handle would overwrite the first's record.
    let busy = s.named_lease("registry-1").expect_err("second owner");
    assert_eq!(busy.kind(), ErrorKind::Unavailable);
    assert!(busy.to_string().contains("in use"), "{busy}");
    assert!(again.remove_blob(&dropped).expect("remove"));
    assert!(!again.remove_blob(&dropped).expect("remove twice"));
    drop(again);
    let report = s.gc(&NOW).expect("gc");
    assert_eq!(report.blobs, vec![dropped]);
    assert!(s.blob_exists(&held));
    assert_eq!(
        s.named_lease("../escape").expect_err("unsafe id").kind(),
        ErrorKind::InvalidArgument
    );
    s.release_lease("registry-1").expect("release");
    assert!(s.leases().expect("leases").is_empty());
}

#[test]
fn children_of_a_named_lease_hold_blobs_and_come_back_with_it() {
    let (d, s) = store();
    let kept = s.write_blob_bytes(b"kept by a child").expect("blob").digest;
    {
        let parent = s.named_lease("registry-2").expect("named lease");
        let mut child = parent.child("repo1").expect("child");
        assert_eq!(child.id(), "registry-2.repo1");
        child.add_blob(kept.clone()).expect("add");
        assert_eq!(
            parent.child("a.b").expect_err("dotted suffix").kind(),
            ErrorKind::InvalidArgument
        );
        let unnamed = s.lease().expect("lease");
        assert_eq!(
            unnamed.child("repo1").expect_err("unnamed parent").kind(),
            ErrorKind::InvalidArgument
        );
    }
    assert!(s.gc(&NOW).expect("gc").blobs.is_empty());
    assert!(s.blob_exists(&kept));
    let parent = s.named_lease("registry-2").expect("reopen");
    let children = parent.children().expect("children");
    assert_eq!(children.len(), 1);
    assert!(children[0].record().blobs.contains(&kept));
    // Children are owned through the parent: no lock file of their own.
    assert!(d.path().join("store/leases/registry-2.json").exists());
    assert!(!d.path().join("store/leases/registry-2.repo1.lock").exists());
}

#[test]
fn release_blobs_drops_what_it_is_told_and_nothing_after_an_error() {
    let (_d, s) = store();
    let kept = s.write_blob_bytes(b"kept").expect("blob").digest;
    let released = s.write_blob_bytes(b"released").expect("blob").digest;
    let mut lease = s.named_lease("registry-3").expect("named lease");
    lease.add_blob(kept.clone()).expect("add");
    lease.add_blob(released.clone()).expect("add");
    let dropped = lease
        .release_blobs(|d| Ok(*d == released))
        .expect("release");
    assert_eq!(dropped, vec![released.clone()]);
    // A failing choice changes nothing.
    let err = lease
        .release_blobs(|_| Err(crate::content::ContentError::NotFound(kept.clone()).into()))
        .expect_err("choice failed");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    drop(lease);
    let again = s.named_lease("registry-3").expect("reopen");
    assert_eq!(again.record().blobs.iter().collect::<Vec<_>>(), vec![&kept]);
}
