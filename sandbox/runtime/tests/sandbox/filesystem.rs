//! The root filesystem and its mounts: shared layers never written,
//! hostile symlinks contained, bind mounts, no host path in sight.

use std::io::{Read, Write};

use runtime::{BindMount, ExecSpec};

use super::{err, out, probe_spec, sh};
use crate::support::{self, Fixture};

/// The engine's unix socket, bind-mounted at /var/run/docker.sock, answers
/// from inside.
pub(super) fn unix_socket_bind_mount_reaches_the_host() {
    let f = Fixture::new();
    let dir = tempfile::Builder::new()
        .prefix("layerlab-sock-")
        .tempdir_in("/dev/shm")
        .expect("dir");
    let path = dir.path().join("engine.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
    // Root inside maps to an unprivileged host uid: the socket must let it write.
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .expect("chmod");
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).expect("read");
        s.write_all(b"pong").expect("write");
        buf
    });
    let mut spec = probe_spec(&f, "sock");
    spec.mounts.push(BindMount {
        source: path.clone(),
        target: "/var/run/docker.sock".into(),
        readonly: false,
        in_node: false,
    });
    f.rt.create(spec).expect("create");
    let o =
        f.rt.exec(
            "sock",
            &ExecSpec::new(["/probe", "__probe", "unix", "/var/run/docker.sock"]),
        )
        .expect("exec");
    assert_eq!(out(&o), "reply pong", "{}", err(&o));
    assert_eq!(&server.join().expect("server thread"), b"ping");
}

pub(super) fn writes_never_reach_the_shared_layers() {
    let f = Fixture::new();
    let before = support::layers_digest();
    f.rt.create(f.spec("writer")).expect("create");
    let o = sh(
        &f,
        "writer",
        "echo evil > /bin/busybox.new && echo evil >> /etc/motd && rm /etc/layer-top && chmod 777 /etc/passwd \
         && chown 5:5 /etc/group && mv /bin/ls /bin/ls2 && rm -rf /root && cat /etc/motd",
    );
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), "top\nevil");
    assert_eq!(
        before,
        support::layers_digest(),
        "a shared layer changed on the host"
    );
    let proc_sys = sh(
        &f,
        "writer",
        "echo 1 > /proc/sys/kernel/panic; echo x > /sys/kernel/uevent_helper; cat /proc/kcore | wc -c",
    );
    assert!(
        err(&proc_sys).matches("Read-only file system").count() >= 2,
        "{}",
        err(&proc_sys)
    );
    assert_eq!(out(&proc_sys), "0", "/proc/kcore is not masked");
}

/// A hostile image's symlinks must resolve inside the sandbox while we
/// populate it (bind targets, /etc files), never on the host.
pub(super) fn image_symlinks_cannot_redirect_setup_to_the_host() {
    let f = Fixture::new();
    let escape = tempfile::Builder::new()
        .prefix("layerlab-escape-")
        .tempdir_in("/tmp")
        .expect("escape dir");
    std::fs::set_permissions(
        escape.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .expect("chmod");
    let layer = tempfile::Builder::new()
        .prefix("layerlab-hostile-")
        .tempdir_in("/var/tmp")
        .expect("layer");
    let up = "../".repeat(12);
    std::fs::create_dir_all(layer.path().join("var")).expect("mkdir");
    std::fs::create_dir_all(layer.path().join("realetc")).expect("mkdir");
    std::os::unix::fs::symlink(
        format!("/{up}{}", escape.path().display()),
        layer.path().join("var/run"),
    )
    .expect("symlink");
    std::os::unix::fs::symlink("/realetc", layer.path().join("etc")).expect("symlink");
    let hostile = |id: &str| {
        let mut spec = f.spec(id);
        spec.lowerdirs.insert(0, layer.path().to_owned());
        spec
    };
    // /etc is a symlink: our /etc files land where it points, inside.
    f.rt.create(hostile("hostile-etc"))
        .expect("create with a symlinked /etc");
    let o = sh(&f, "hostile-etc", "cat /realetc/hostname");
    assert_eq!(out(&o), "node1", "{}", err(&o));
    // A bind target behind a symlink to a host path: refused or contained.
    let mut spec = hostile("hostile-run");
    spec.mounts = vec![BindMount {
        source: "/etc/hostname".into(),
        target: "/var/run/engine.sock".into(),
        readonly: true,
        in_node: false,
    }];
    let created = f.rt.create(spec);
    let host_entries: Vec<_> = std::fs::read_dir(escape.path())
        .expect("read escape dir")
        .flatten()
        .collect();
    assert!(
        host_entries.is_empty(),
        "sandbox setup wrote into a host directory: {host_entries:?}"
    );
    if let Err(e) = created {
        assert!(
            e.to_string().contains("/var/run"),
            "unexpected failure: {e}"
        );
    }
}

/// The node's mount table names no host path of the data directory: not
/// the state directory, not the writable layers' directory, not the
/// image layers.
pub(super) fn mountinfo_shows_no_host_paths() {
    let f = Fixture::new();
    f.rt.create(f.spec("mounts")).expect("create");
    let o = sh(&f, "mounts", "cat /proc/self/mountinfo");
    let table = out(&o);
    assert!(table.contains(" / "), "{table} {}", err(&o));
    let state = f.rt.layout().root().display().to_string();
    let disk = f.disk.path().display().to_string();
    for host in [state.as_str(), disk.as_str(), support::ROOTFS] {
        assert!(!table.contains(host), "{host} shows inside:\n{table}");
    }
}
