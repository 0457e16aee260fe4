//! Bad input is refused with the right kind, and leaves nothing behind.

use runtime::{BindMount, ErrorKind, ExecSpec};

use crate::support::Fixture;

pub(super) fn bad_input_is_rejected() {
    let f = Fixture::new();
    for id in ["", "../x", "A", "a/b", "-x", &"x".repeat(65)] {
        let e = f.rt.create(f.spec(id)).expect_err(id);
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{id:?}: {e}");
    }
    let mut s = f.spec("bad");
    s.hostname = "no spaces".into();
    assert_eq!(
        f.rt.create(s).expect_err("hostname").kind(),
        ErrorKind::InvalidArgument
    );
    let mut s = f.spec("bad");
    s.lowerdirs = vec!["relative".into()];
    assert_eq!(
        f.rt.create(s).expect_err("relative").kind(),
        ErrorKind::InvalidArgument
    );
    let mut s = f.spec("bad");
    s.lowerdirs = vec!["/nonexistent/layer".into()];
    assert_eq!(
        f.rt.create(s).expect_err("missing").kind(),
        ErrorKind::InvalidArgument
    );
    let mut s = f.spec("bad");
    s.mounts = vec![BindMount {
        source: "/etc".into(),
        target: "/../etc".into(),
        readonly: true,
        in_node: false,
    }];
    assert_eq!(
        f.rt.create(s).expect_err("traversal").kind(),
        ErrorKind::InvalidArgument
    );
    let mut s = f.spec("bad");
    s.limits.memory_bytes = 1;
    assert_eq!(
        f.rt.create(s).expect_err("limits").kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        f.rt.exec("nope", &ExecSpec::new(["true"]))
            .expect_err("missing")
            .kind(),
        ErrorKind::NotFound
    );
    f.rt.create(f.spec("twice")).expect("create");
    assert_eq!(
        f.rt.create(f.spec("twice")).expect_err("twice").kind(),
        ErrorKind::AlreadyExists
    );
    let mut e = ExecSpec::new(["true"]);
    e.env.insert("A=B".into(), "x".into());
    assert_eq!(
        f.rt.exec("twice", &e).expect_err("env").kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        f.rt.exec("twice", &ExecSpec::new(Vec::<String>::new()))
            .expect_err("empty")
            .kind(),
        ErrorKind::InvalidArgument
    );
    // Failed creates leave nothing behind.
    assert_eq!(f.rt.list().expect("list").len(), 1);
    assert_eq!(f.rt.claimed_ranges().len(), 1);
}
