use std::path::Path;
use std::process::Command;

use super::{listing, store};
use crate::archive::{Compression, DiffOptions};
use crate::{Digest, ErrorKind, ImageRef, Namespace, Reference, Store};

fn ns(id: &str) -> Namespace {
    Namespace::new(id).expect("namespace")
}

/// A two-layer image built from small trees (busybox's binary when the
/// host has it, so skopeo sees a real executable).
fn build_image(s: &Store, compression: Compression) -> (ImageRef, Vec<crate::Layer>) {
    let base = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(base.path().join("bin")).expect("mkdir");
    std::fs::create_dir_all(base.path().join("etc")).expect("mkdir");
    match std::fs::read("/bin/busybox") {
        Ok(bytes) => std::fs::write(base.path().join("bin/busybox"), bytes).expect("write"),
        Err(_) => std::fs::write(base.path().join("bin/busybox"), b"stand-in").expect("write"),
    }
    std::os::unix::fs::symlink("busybox", base.path().join("bin/sh")).expect("symlink");
    std::fs::write(base.path().join("etc/hostname"), "node1\n").expect("write");
    let top = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(top.path().join("etc")).expect("mkdir");
    std::fs::write(top.path().join("etc/motd"), "welcome\n").expect("write");
    let options = DiffOptions {
        compression,
        clamp_mtime: Some(1_700_000_000),
        ..DiffOptions::default()
    };
    let l1 = s
        .create_layer_from_dir(base.path(), &options)
        .expect("layer");
    let l2 = s
        .create_layer_from_dir(top.path(), &options)
        .expect("layer");
    let config = super::gc::config_for(&[&l1, &l2]);
    let layers = vec![l1, l2];
    (s.write_image(&config, &layers).expect("image"), layers)
}

fn flattened(s: &Store, manifest: &Digest) -> Vec<String> {
    let u = s.unpack(manifest).expect("unpack");
    u.lowerdirs.iter().rev().flat_map(|d| listing(d)).collect()
}

#[test]
fn oci_layout_dir_and_archive_round_trip() {
    let (_d, a) = store();
    let (image, _) = build_image(&a, Compression::Gzip);
    let name = Reference::parse("localhost:5000/lab/app:1.0").expect("ref");
    a.tag(&ns("engine-a"), &name, &image.manifest_digest)
        .expect("tag");

    let out = tempfile::tempdir().expect("tempdir");
    let layout = out.path().join("layout");
    a.export_oci_layout(&ns("engine-a"), std::slice::from_ref(&name), &layout)
        .expect("export dir");
    let (_d2, b) = store();
    let imported = b
        .import_oci_layout(&ns("hub"), &layout, None)
        .expect("import dir");
    assert_eq!(imported.len(), 1);
    assert_eq!(
        imported[0].manifest_digest, image.manifest_digest,
        "exact manifest bytes kept"
    );
    assert_eq!(imported[0].reference.as_ref(), Some(&name));
    assert_eq!(
        b.resolve(&ns("hub"), &name).expect("resolve"),
        image.manifest_digest
    );
    assert_eq!(
        b.image(&image.manifest_digest)
            .expect("image")
            .config_digest,
        image.config_digest
    );

    let archive = out.path().join("image.tar");
    a.export_oci_archive(
        &ns("engine-a"),
        std::slice::from_ref(&name),
        std::fs::File::create(&archive).expect("create"),
    )
    .expect("export tar");
    let (_d3, c) = store();
    let imported = c
        .import_oci_archive(
            &ns("hub"),
            std::fs::File::open(&archive).expect("open"),
            None,
        )
        .expect("import tar");
    assert_eq!(imported[0].manifest_digest, image.manifest_digest);
    assert_eq!(
        flattened(&a, &image.manifest_digest),
        flattened(&c, &image.manifest_digest)
    );
}

#[test]
fn docker_save_round_trip() {
    let (_d, a) = store();
    let (image, layers) = build_image(&a, Compression::Zstd);
    let names = [
        Reference::parse("busybox").expect("ref"),
        Reference::parse("busybox:stable").expect("ref"),
    ];
    for n in &names {
        a.tag(&ns("engine-a"), n, &image.manifest_digest)
            .expect("tag");
    }
    let mut archive = Vec::new();
    a.export_docker_save(&ns("engine-a"), &names, &mut archive)
        .expect("export");
    let (_d2, b) = store();
    let imported = b
        .import_docker_save(&ns("engine-b"), archive.as_slice())
        .expect("import");
    assert_eq!(imported.len(), 2);
    let digest = b
        .resolve(
            &ns("engine-b"),
            &Reference::parse("busybox:stable").expect("ref"),
        )
        .expect("resolve");
    let img = b.image(&digest).expect("image");
    assert_eq!(
        img.config_digest, image.config_digest,
        "image ID survives docker save/load"
    );
    let diff_ids: Vec<_> = img.layers.iter().map(|l| l.diff_id.clone()).collect();
    assert_eq!(
        diff_ids,
        layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>()
    );
    assert_eq!(
        flattened(&a, &image.manifest_digest),
        flattened(&b, &digest)
    );
    // The archive lists each image once, with both tags.
    let mut tar = tar::Archive::new(archive.as_slice());
    let manifest = tar
        .entries()
        .expect("entries")
        .map(|e| e.expect("entry"))
        .find(|e| e.path().expect("path").to_str() == Some("manifest.json"))
        .map(|mut e| {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut e, &mut s).expect("read");
            s
        })
        .expect("manifest.json");
    let v: serde_json::Value = serde_json::from_str(&manifest).expect("json");
    assert_eq!(v.as_array().map(Vec::len), Some(1));
    assert_eq!(
        v[0]["RepoTags"],
        serde_json::json!(["busybox:latest", "busybox:stable"])
    );
}

fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, *data).expect("append");
    }
    b.into_inner().expect("finish")
}

#[test]
fn hostile_archives_are_rejected() {
    let (_d, s) = store();
    let hub = ns("hub");
    // A blob whose bytes do not match its name.
    let fake = Digest::of(b"claimed");
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    let bad = tar_of(&[
        ("oci-layout", layout),
        (&format!("blobs/sha256/{}", fake.hex()), b"actual"),
        ("index.json", b"{}"),
    ]);
    let err = s
        .import_oci_archive(&hub, bad.as_slice(), None)
        .expect_err("digest mismatch");
    assert!(err.to_string().contains("digest mismatch"), "{err}");
    // An index that points at a blob the archive lacks.
    let missing = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":5}}]}}"#,
        Digest::of(b"nope")
    );
    let bad = tar_of(&[("oci-layout", layout), ("index.json", missing.as_bytes())]);
    let err = s
        .import_oci_archive(&hub, bad.as_slice(), None)
        .expect_err("missing");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(err.to_string().contains("does not contain"), "{err}");
    // A size that lies.
    let real = s.write_blob_bytes(b"{}").expect("blob").digest;
    let lying = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{real}","size":1}}]}}"#
    );
    let bad = tar_of(&[("oci-layout", layout), ("index.json", lying.as_bytes())]);
    let err = s
        .import_oci_archive(&hub, bad.as_slice(), None)
        .expect_err("size");
    assert!(err.to_string().contains("size mismatch"), "{err}");
    // An oversized document.
    let huge = vec![b' '; 5 << 20];
    let bad = tar_of(&[("oci-layout", layout), ("index.json", &huge)]);
    assert!(
        s.import_oci_archive(&hub, bad.as_slice(), None)
            .expect_err("huge")
            .to_string()
            .contains("larger than")
    );
    // docker save: a layer that is not what the config says.
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
        Digest::of(b"expected layer")
    );
    let manifest = br#"[{"Config":"c.json","RepoTags":["x:1"],"Layers":["l/layer.tar"]}]"#;
    let bad = tar_of(&[
        ("c.json", config.as_bytes()),
        ("l/layer.tar", b"another layer"),
        ("manifest.json", manifest),
    ]);
    let err = s
        .import_docker_save(&hub, bad.as_slice())
        .expect_err("diff id");
    assert!(err.to_string().contains("diff id mismatch"), "{err}");
    let manifest = br#"[{"Config":"../../etc/passwd","RepoTags":["x:1"],"Layers":[]}]"#;
    let bad = tar_of(&[("manifest.json", manifest)]);
    assert!(
        s.import_docker_save(&hub, bad.as_slice())
            .expect_err("path")
            .to_string()
            .contains("does not contain")
    );
    assert!(s.list(&hub).expect("list").is_empty(), "nothing was named");
}

#[test]
fn layout_dir_import_does_not_follow_planted_symlinks() {
    let (_d, a) = store();
    let (image, layers) = build_image(&a, Compression::Gzip);
    let name = Reference::parse("app:1").expect("ref");
    a.tag(&ns("hub"), &name, &image.manifest_digest)
        .expect("tag");
    let out = tempfile::tempdir().expect("tempdir");
    let layout = out.path().join("layout");
    a.export_oci_layout(&ns("hub"), std::slice::from_ref(&name), &layout)
        .expect("export");
    // Replace a layer blob with a symlink to a copy of itself elsewhere.
    let blob = layout.join("blobs/sha256").join(layers[0].digest.hex());
    let elsewhere = out.path().join("elsewhere");
    std::fs::rename(&blob, &elsewhere).expect("move");
    std::os::unix::fs::symlink(&elsewhere, &blob).expect("symlink");
    let (_d2, b) = store();
    let err = b
        .import_oci_layout(&ns("hub"), &layout, None)
        .expect_err("symlink followed");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
}

fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("skopeo is required for this test (apt-get install -y skopeo): {e}")
        });
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn skopeo_reads_our_exports_and_we_read_its() {
    let (_d, a) = store();
    let (image, layers) = build_image(&a, Compression::Gzip);
    let name = Reference::parse("lab/app:2").expect("ref");
    a.tag(&ns("hub"), &name, &image.manifest_digest)
        .expect("tag");
    let out = tempfile::tempdir().expect("tempdir");
    let archive = out.path().join("app.tar");
    a.export_oci_archive(
        &ns("hub"),
        std::slice::from_ref(&name),
        std::fs::File::create(&archive).expect("create"),
    )
    .expect("export");
    let inspect = skopeo(&[
        "inspect",
        "--raw",
        &format!("oci-archive:{}", archive.display()),
    ]);
    assert_eq!(
        Digest::of(inspect.as_bytes()),
        image.manifest_digest,
        "skopeo sees our manifest bytes"
    );
    let inspect = skopeo(&["inspect", &format!("oci-archive:{}", archive.display())]);
    let v: serde_json::Value = serde_json::from_str(&inspect).expect("json");
    assert_eq!(v["Layers"].as_array().map(Vec::len), Some(2), "{inspect}");

    // OCI layout -> skopeo -> docker-archive -> our importer.
    let layout = out.path().join("layout");
    a.export_oci_layout(&ns("hub"), std::slice::from_ref(&name), &layout)
        .expect("export layout");
    let docker = out.path().join("docker.tar");
    skopeo(&[
        "copy",
        "--insecure-policy",
        &format!("oci:{}:2", layout.display()),
        &format!("docker-archive:{}:lab/app:2", docker.display()),
    ]);
    let (_d2, b) = store();
    let imported = b
        .import_docker_save(&ns("engine-x"), std::fs::File::open(&docker).expect("open"))
        .expect("import skopeo archive");
    assert_eq!(imported.len(), 1);
    let img = b.image(&imported[0].manifest_digest).expect("image");
    assert_eq!(img.config_digest, image.config_digest, "same image ID");
    let diff_ids: Vec<_> = img.layers.iter().map(|l| l.diff_id.clone()).collect();
    assert_eq!(
        diff_ids,
        layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>(),
        "same diff ids"
    );
    assert_eq!(
        b.resolve(&ns("engine-x"), &name).expect("named"),
        imported[0].manifest_digest
    );
    assert!(
        Path::new(
            &b.unpack(&imported[0].manifest_digest)
                .expect("unpack")
                .lowerdirs[1]
        )
        .join("bin/busybox")
        .exists()
    );
}
