use crate::reference::Reference;

/// (input, registry, repository, tag, digest suffix, familiar form)
type Case = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    bool,
    &'static str,
);

const VALID: &[Case] = &[
    (
        "busybox",
        "docker.io",
        "library/busybox",
        Some("latest"),
        false,
        "busybox:latest",
    ),
    (
        "busybox:1.36",
        "docker.io",
        "library/busybox",
        Some("1.36"),
        false,
        "busybox:1.36",
    ),
    (
        "library/busybox",
        "docker.io",
        "library/busybox",
        Some("latest"),
        false,
        "busybox:latest",
    ),
    (
        "docker.io/busybox",
        "docker.io",
        "library/busybox",
        Some("latest"),
        false,
        "busybox:latest",
    ),
    (
        "index.docker.io/busybox",
        "docker.io",
        "library/busybox",
        Some("latest"),
        false,
        "busybox:latest",
    ),
    (
        "user/app",
        "docker.io",
        "user/app",
        Some("latest"),
        false,
        "user/app:latest",
    ),
    (
        "localhost:5000/x:1",
        "localhost:5000",
        "x",
        Some("1"),
        false,
        "localhost:5000/x:1",
    ),
    (
        "localhost/x",
        "localhost",
        "x",
        Some("latest"),
        false,
        "localhost/x:latest",
    ),
    (
        "registry.example.com/a/b/c:v1.2-rc_3",
        "registry.example.com",
        "a/b/c",
        Some("v1.2-rc_3"),
        false,
        "registry.example.com/a/b/c:v1.2-rc_3",
    ),
    (
        "127.0.0.1:5000/my-app_x.y",
        "127.0.0.1:5000",
        "my-app_x.y",
        Some("latest"),
        false,
        "127.0.0.1:5000/my-app_x.y:latest",
    ),
    (
        "[::1]:5000/x",
        "[::1]:5000",
        "x",
        Some("latest"),
        false,
        "[::1]:5000/x:latest",
    ),
    (
        "a__b---c/d",
        "docker.io",
        "a__b---c/d",
        Some("latest"),
        false,
        "a__b---c/d:latest",
    ),
    (
        "busybox@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "docker.io",
        "library/busybox",
        None,
        true,
        "busybox@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ),
    (
        "busybox:1@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "docker.io",
        "library/busybox",
        Some("1"),
        true,
        "busybox:1@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ),
    (
        "localhost/team/app@sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e",
        "localhost",
        "team/app",
        None,
        true,
        "localhost/team/app@sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e",
    ),
];

const INVALID: &[&str] = &[
    "",
    "Busybox",
    "busybox:",
    "busybox:-bad",
    "busybox::1",
    "busybox@sha256:abc",
    "busybox@sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "busybox@md5:d41d8cd98f00b204e9800998ecf8427e",
    "/busybox",
    "busybox/",
    "a//b",
    "-a/b",
    "a_/b",
    "a.-b",
    "bad host:5000/x",
    "localhost:port/x",
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "a b",
    "x/../y",
];

/// Found by fuzzing (`fuzz/fuzz_targets/image_documents.rs`): the familiar
/// form of `library/deb.io/library/x` was `deb.io/library/x`, an image on
/// the registry `deb.io`, so a `docker push` of it looked up another image.
#[test]
fn familiar_forms_parse_back_to_the_same_reference() {
    for (input, familiar) in [
        (
            "library/deb.io/library/ngiiaooosd",
            "library/deb.io/library/ngiiaooosd:latest",
        ),
        ("docker.io/deb.io/x", "docker.io/deb.io/x:latest"),
        ("docker.io/localhost/x:1", "docker.io/localhost/x:1"),
        ("library/team/app", "library/team/app:latest"),
        ("docker.io/library/deb.io", "deb.io:latest"),
        ("team/deb.io", "team/deb.io:latest"),
    ] {
        let r = Reference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(r.familiar(), familiar, "{input}");
        assert_eq!(
            Reference::parse(&r.familiar()).expect("reparse"),
            r,
            "{input}"
        );
    }
}

#[test]
fn docker_normalization_table() {
    for (input, registry, repository, tag, has_digest, familiar) in VALID {
        let r = Reference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(r.registry(), *registry, "{input}");
        assert_eq!(r.repository(), *repository, "{input}");
        assert_eq!(r.tag(), *tag, "{input}");
        assert_eq!(r.digest().is_some(), *has_digest, "{input}");
        assert_eq!(r.familiar(), *familiar, "{input}");
        // The full form parses back to the same reference.
        assert_eq!(
            Reference::parse(&r.to_string()).expect("reparse"),
            r,
            "{input}"
        );
    }
    assert_eq!(
        Reference::parse("busybox").expect("parse").to_string(),
        "docker.io/library/busybox:latest"
    );
}

#[test]
fn invalid_references_are_rejected_with_a_message() {
    for input in INVALID {
        let err = Reference::parse(input).expect_err(input);
        assert!(
            err.to_string().starts_with("invalid reference"),
            "{input}: {err}"
        );
    }
    let long = format!("{}/x", "a".repeat(300));
    assert!(Reference::parse(&long).is_err());
    assert!(Reference::parse(&format!("x:{}", "t".repeat(129))).is_err());
}
