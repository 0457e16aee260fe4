use std::io::Write;

use crate::content::{Expected, IngestManager, Ingester, Manager, Provider};
use crate::digest::DigestError;
use crate::{Algorithm, Digest, ErrorKind};

use super::store;

#[test]
fn blob_write_read_and_info() {
    let (_d, s) = store();
    let info = s
        .write_blob(&b"hello"[..], Expected::default())
        .expect("write");
    assert_eq!(info.digest, Digest::of(b"hello"));
    assert_eq!(info.size, 5);
    assert_eq!(s.read_blob(&info.digest, 100).expect("read"), b"hello");
    assert!(s.blob_exists(&info.digest));
    let path = s.blob_path(&info.digest).expect("path");
    assert_eq!(std::fs::read(&path).expect("read path"), b"hello");
    let mut seen = Vec::new();
    s.content()
        .walk(&mut |i| {
            seen.push(i.digest);
            Ok(())
        })
        .expect("walk");
    assert_eq!(seen, vec![info.digest.clone()]);
    s.delete_blob(&info.digest).expect("delete");
    assert_eq!(
        s.blob_info(&info.digest).expect_err("gone").kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn read_all_refuses_oversized_blob() {
    let (_d, s) = store();
    let info = s.write_blob_bytes(&[7u8; 1000]).expect("write");
    let err = s.read_blob(&info.digest, 999).expect_err("too large");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}

#[test]
fn wrong_digest_is_rejected_and_nothing_is_published() {
    let (_d, s) = store();
    let claimed = Digest::of(b"other");
    let err = s
        .write_blob(&b"hello"[..], Expected::digest(claimed.clone()))
        .expect_err("mismatch");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("digest mismatch"), "{err}");
    assert!(!s.blob_exists(&claimed));
    assert!(!s.blob_exists(&Digest::of(b"hello")));
    assert!(s.content().ingests().expect("ingests").is_empty());
}

#[test]
fn wrong_size_is_rejected_while_writing_and_at_commit() {
    let (_d, s) = store();
    let d = Digest::of(b"hello");
    let err = s
        .write_blob(&b"hello"[..], Expected::exact(d.clone(), 3))
        .expect_err("too long");
    assert!(err.to_string().contains("size mismatch"), "{err}");
    let err = s
        .write_blob(&b"hello"[..], Expected::exact(d.clone(), 10))
        .expect_err("too short");
    assert!(err.to_string().contains("size mismatch"), "{err}");
    assert!(!s.blob_exists(&d));
}

#[test]
fn one_writer_per_ref_and_resume() {
    let (_d, s) = store();
    let mut w = s
        .content()
        .writer("upload-1", Expected::default())
        .expect("writer");
    w.write_all(b"hel").expect("write");
    let err = s
        .content()
        .writer("upload-1", Expected::default())
        .expect_err("locked");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    drop(w);
    let statuses = s.content().ingests().expect("ingests");
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0].offset, 3);
    let mut w = s
        .content()
        .writer("upload-1", Expected::exact(Digest::of(b"hello"), 5))
        .expect("resume");
    assert_eq!(w.offset(), 3);
    w.write_all(b"lo").expect("write");
    let info = w.commit().expect("commit");
    assert_eq!(info.digest, Digest::of(b"hello"));
    assert!(s.content().ingests().expect("ingests").is_empty());
}

#[test]
fn concurrent_writers_of_the_same_blob() {
    let (_d, s) = store();
    let data: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
    let expected = Digest::of(&data);
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let s = s.clone();
            let data = data.clone();
            std::thread::spawn(move || {
                let mut w = s
                    .content()
                    .writer(&format!("same-{i}"), Expected::default())
                    .expect("writer");
                for chunk in data.chunks(65536) {
                    w.write_all(chunk).expect("write");
                }
                w.commit().expect("commit")
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().expect("thread").digest, expected);
    }
    assert_eq!(
        s.content().read_all(&expected, 1 << 30).expect("read"),
        data
    );
    assert!(s.content().ingests().expect("ingests").is_empty());
}

#[test]
fn digest_parsing() {
    let sha512 = format!("sha512:{}", "a".repeat(128));
    let d: Digest = sha512.parse().expect("sha512");
    assert_eq!(d.algorithm(), Algorithm::Sha512);
    assert_eq!(d.hex(), "a".repeat(128));
    assert_eq!(d.to_string(), sha512);
    let d = Digest::of(b"");
    assert_eq!(d.to_string().parse::<Digest>().expect("roundtrip"), d);
    assert_eq!(
        d.to_string(),
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        Algorithm::Sha512.digest(b"").to_string(),
        "sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"
    );
    // Each class of bad digest, and the error it gets.
    let unsupported = [
        format!("md5:{}", "0".repeat(32)),
        format!("sha384:{}", "0".repeat(96)),
        format!("sha512+b64u:{}", "0".repeat(86)),
    ];
    for bad in &unsupported {
        assert!(
            matches!(
                bad.parse::<Digest>(),
                Err(DigestError::UnsupportedAlgorithm(_))
            ),
            "{bad}"
        );
    }
    let invalid = [
        "sha256:abc".to_owned(),
        format!("sha256:{}", "A".repeat(64)),
        format!("sha512:{}", "A".repeat(128)),
        format!("sha512:{}", "a".repeat(64)),
        format!("sha256:{}", "a".repeat(128)),
        format!("sha512:{}", "g".repeat(128)),
        format!("SHA256:{}", "a".repeat(64)),
        format!("sha+:{}", "a".repeat(64)),
        format!(":{}", "a".repeat(64)),
        "sha512:".to_owned(),
        "nodigest".to_owned(),
        String::new(),
    ];
    for bad in &invalid {
        assert!(
            matches!(bad.parse::<Digest>(), Err(DigestError::Invalid(_))),
            "{bad}"
        );
    }
    // Bare hex names a sha256 digest (file names, image IDs) only.
    assert!(Digest::from_hex(&"a".repeat(64)).is_ok());
    assert!(Digest::from_hex(&"a".repeat(128)).is_err());
}

#[test]
fn sha512_blobs_are_written_walked_and_read_apart_from_sha256() {
    let (_d, s) = store();
    let d512 = Algorithm::Sha512.digest(b"hello");
    let info = s
        .write_blob(&b"hello"[..], Expected::exact(d512.clone(), 5))
        .expect("write sha512");
    assert_eq!(info.digest, d512);
    let d256 = s.write_blob_bytes(b"hello").expect("write sha256").digest;
    assert_ne!(d256, d512);
    assert!(
        s.blob_path(&d512)
            .expect("path")
            .ends_with(format!("sha512/{}", d512.hex()))
    );
    assert_eq!(s.read_blob(&d512, 100).expect("read"), b"hello");
    let mut seen = Vec::new();
    s.content()
        .walk(&mut |i| {
            seen.push(i.digest);
            Ok(())
        })
        .expect("walk");
    assert_eq!(seen, vec![d256.clone(), d512.clone()]);
    s.delete_blob(&d512).expect("delete");
    assert!(!s.blob_exists(&d512));
    assert!(s.blob_exists(&d256));
    // The wrong sha512 digest is refused and nothing is kept.
    let err = s
        .write_blob(
            &b"hello"[..],
            Expected::digest(Algorithm::Sha512.digest(b"other")),
        )
        .expect_err("mismatch");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(!s.blob_exists(&Algorithm::Sha512.digest(b"hello")));
}

/// An upload hashed in one algorithm and named in the other at commit
/// (what a registry sees when the client names the digest only at the
/// end), across a resume.
#[test]
fn a_write_is_committed_under_a_digest_of_another_algorithm() {
    let (_d, s) = store();
    for (hashed_in, named) in [
        (Algorithm::Sha256, Algorithm::Sha512),
        (Algorithm::Sha512, Algorithm::Sha256),
        (Algorithm::Sha512, Algorithm::Sha512),
    ] {
        let data = format!("{hashed_in} then {named}").into_bytes();
        let ingest = format!("upload-{hashed_in}-{named}");
        let mut w = s
            .content()
            .writer(&ingest, Expected::hashed_in(hashed_in))
            .expect("writer");
        w.write_all(&data[..4]).expect("write");
        assert_eq!(w.digest().algorithm(), hashed_in);
        drop(w);
        let mut w = s
            .content()
            .writer(&ingest, Expected::hashed_in(hashed_in))
            .expect("resume");
        w.write_all(&data[4..]).expect("write");
        let wrong = named.digest(b"not these bytes");
        let info = w.commit_as(named.digest(&data)).expect("commit");
        assert_eq!(info.digest, named.digest(&data));
        assert_eq!(s.read_blob(&info.digest, 100).expect("read"), data);

        let mut w = s
            .content()
            .writer("mismatch", Expected::hashed_in(hashed_in))
            .expect("writer");
        w.write_all(&data).expect("write");
        let err = w.commit_as(wrong.clone()).expect_err("mismatch");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
        assert!(!s.blob_exists(&wrong));
        assert!(s.content().ingests().expect("ingests").is_empty());
    }
}

#[test]
fn handles_can_move_to_blocking_threads() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<crate::Store>();
    send_sync::<crate::Lease>();
    send_sync::<crate::Unpacked>();
    send_sync::<crate::Error>();
}

/// Large enough that the writer syncs in the background several times,
/// once with a sync possibly still running when the writer is dropped.
#[test]
fn large_blob_written_in_pieces_resumes_and_commits_whole() {
    let (_d, s) = store();
    let data: Vec<u8> = (0..20u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let expected = Expected::exact(Digest::of(&data), data.len() as u64);
    let (first, rest) = data.split_at(9 << 20);
    let mut w = s
        .content()
        .writer("large", expected.clone())
        .expect("writer");
    for chunk in first.chunks(32 * 1024) {
        w.write_all(chunk).expect("write");
    }
    drop(w);
    let mut w = s.content().writer("large", expected).expect("resume");
    assert_eq!(w.offset(), first.len() as u64);
    for chunk in rest.chunks(32 * 1024) {
        w.write_all(chunk).expect("write");
    }
    let info = w.commit().expect("commit");
    assert_eq!(info.size, data.len() as u64);
    assert_eq!(
        s.content().read_all(&info.digest, 1 << 30).expect("read"),
        data
    );
    assert!(s.content().ingests().expect("ingests").is_empty());
}
