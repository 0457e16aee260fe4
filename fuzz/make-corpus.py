#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target into fuzz/corpus/<target>/.

Seeds are small real inputs: layer tars (hostile ones included: `..`,
absolute paths, links out of the layer), documents the catalog stores,
headers clients send, the bundled lessons, the docker CLI's bodies and the
terminal's control messages. Deterministic: running it again rewrites the
same bytes. The corpus's image_documents/real-* files are the catalog's own
manifests and configs, copied once; this script leaves them alone.
"""

import base64
import gzip
import io
import json
import os
import struct
import tarfile
from pathlib import Path
from urllib.parse import quote

FUZZ = Path(__file__).resolve().parent
ROOT = FUZZ.parent
CORPUS = FUZZ / "corpus"


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


# --- unpack_layer: a flags byte (1: gzip it, 2: whiteout mode Apply), then the layer.

def tar(entries, fmt=tarfile.GNU_FORMAT):
    """entries: (name, kind, payload) with kind file, dir, symlink, link, fifo, chr."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for name, kind, payload in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 0
            info.mode = 0o755 if kind == "dir" else 0o644
            data = None
            if kind == "file":
                data = payload.encode()
                info.size = len(data)
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = payload
            elif kind == "link":
                info.type = tarfile.LNKTYPE
                info.linkname = payload
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
            elif kind == "chr":
                info.type = tarfile.CHRTYPE
                info.devmajor, info.devminor = payload
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    # tarfile pads to 10 KiB records; the end-of-archive marker (two zero
    # blocks) is all a reader needs, and small seeds fuzz faster.
    data = buf.getvalue().rstrip(b"\0")
    return data + b"\0" * (-len(data) % 512 + 1024)


def gz(data):
    return gzip.compress(data, compresslevel=9, mtime=0)


PLAIN = tar([
    ("etc/", "dir", None),
    ("etc/hostname", "file", "node1\n"),
    ("bin/", "dir", None),
    ("bin/sh", "file", "#!/bin/true\n"),
    ("bin/ash", "link", "bin/sh"),
    ("usr/bin/env", "symlink", "../../bin/sh"),
    ("run/fifo", "fifo", None),
])
write("unpack_layer", "plain", b"\x00" + PLAIN)
write("unpack_layer", "plain-gzipped-here", b"\x01" + PLAIN)
write("unpack_layer", "plain-gzip-stream", b"\x00" + gz(PLAIN))
write("unpack_layer", "whiteouts-overlay", b"\x00" + tar([
    ("etc/", "dir", None),
    ("etc/.wh.hostname", "file", ""),
    ("var/.wh..wh..opq", "file", ""),
    ("var/new", "file", "x"),
]))
write("unpack_layer", "whiteouts-apply", b"\x02" + tar([
    ("a/", "dir", None),
    ("a/b", "file", "b"),
    ("a/.wh.b", "file", ""),
    ("a/.wh..wh..opq", "file", ""),
    (".wh.a", "file", ""),
]))
write("unpack_layer", "pax-long-name", b"\x00" + tar([
    ("d/" + "n" * 200, "file", "long"),
    ("d/" + "l" * 120, "symlink", "t" * 150),
], fmt=tarfile.PAX_FORMAT))
write("unpack_layer", "device", b"\x00" + tar([("dev/null", "chr", (1, 3))]))
# Hostile: each tries to write beside the target directory.
write("unpack_layer", "dotdot", b"\x00" + tar([("../escape", "file", "out")]))
write("unpack_layer", "dotdot-inner", b"\x00" + tar([
    ("a/", "dir", None),
    ("a/../../escape", "file", "out"),
]))
write("unpack_layer", "absolute", b"\x00" + tar([("/escape", "file", "out")]))
write("unpack_layer", "symlink-parent", b"\x00" + tar([
    ("up", "symlink", ".."),
    ("up/escape", "file", "out"),
]))
write("unpack_layer", "symlink-root", b"\x01" + tar([
    ("root", "symlink", "/"),
    ("root/tmp/escape", "file", "out"),
]))
write("unpack_layer", "symlink-then-dir", b"\x00" + tar([
    ("d", "symlink", "../.."),
    ("d/", "dir", None),
    ("d/escape", "file", "out"),
]))
write("unpack_layer", "hardlink-out", b"\x00" + tar([
    ("passwd", "link", "../../../etc/passwd"),
    ("up", "symlink", ".."),
    ("hosts", "link", "up/dest"),
]))
write("unpack_layer", "file-over-symlink", b"\x00" + tar([
    ("f", "symlink", "../escape"),
    ("f", "file", "out"),
]))
write("unpack_layer", "whiteout-dotdot", b"\x02" + tar([(".wh...", "file", ""), ("a/.wh...", "file", "")]))


# --- image_documents: a selector byte, then the document or reference.
# selector % 4: 0 or 1 a manifest or index (selector / 4 picks the claimed
# media type: none, OCI manifest, OCI index, Docker manifest, Docker list,
# OCI manifest with a parameter), 2 an image config, 3 a reference.

Z = "sha256:" + "0" * 64
A = "sha256:" + "a" * 64
OCI_M = "application/vnd.oci.image.manifest.v1+json"
OCI_I = "application/vnd.oci.image.index.v1+json"
D_M = "application/vnd.docker.distribution.manifest.v2+json"
D_L = "application/vnd.docker.distribution.manifest.list.v2+json"


def j(value):
    return json.dumps(value, separators=(",", ":"))


docker_manifest = j({
    "schemaVersion": 2, "mediaType": D_M,
    "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": Z, "size": 1469},
    "layers": [
        {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": A, "size": 772788},
        {"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "digest": Z, "size": 1,
         "urls": ["https://example.com/layer"]},
    ],
})
write("image_documents", "docker-manifest", bytes([12]) + docker_manifest.encode())
oci_index = j({
    "schemaVersion": 2, "mediaType": OCI_I,
    "manifests": [
        {"mediaType": OCI_M, "digest": Z, "size": 406, "platform": {"architecture": "amd64", "os": "linux"}},
        {"mediaType": OCI_M, "digest": A, "size": 406,
         "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
    ],
    "annotations": {"org.opencontainers.image.ref.name": "latest"},
})
write("image_documents", "oci-index", bytes([8]) + oci_index.encode())
write("image_documents", "docker-list", bytes([16]) + j({
    "schemaVersion": 2, "mediaType": D_L,
    "manifests": [{"mediaType": D_M, "digest": Z, "size": 525,
                   "platform": {"architecture": "amd64", "os": "linux"}}],
}).encode())
write("image_documents", "index-without-media-type", bytes([0]) + j({
    "schemaVersion": 2, "manifests": [{"mediaType": OCI_M, "digest": Z, "size": 2}],
}).encode())
write("image_documents", "artifact-with-subject", bytes([20]) + j({
    "schemaVersion": 2, "mediaType": OCI_M, "artifactType": "application/vnd.example.sbom",
    "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": Z, "size": 2},
    "layers": [], "subject": {"mediaType": OCI_M, "digest": A, "size": 406},
}).encode())
write("image_documents", "sha512-layer", bytes([4]) + j({
    "schemaVersion": 2, "mediaType": OCI_M,
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": Z, "size": 2},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha512:" + "b" * 128, "size": 3}],
}).encode())
write("image_documents", "config-two-layers", bytes([2]) + j({
    "architecture": "amd64", "os": "linux",
    "rootfs": {"type": "layers", "diff_ids": [Z, A]},
}).encode())
for i, ref in enumerate([
    "busybox",
    "library/debian:bookworm",
    "localhost:5000/app:1",
    "registry.example.com:443/team/app@" + Z,
    "docker.io/library/nginx:1.25@" + A,
    "[::1]:5000/x/y_z.w-v:T_1",
    "app:" + "t" * 128,
]):
    write("image_documents", f"reference-{i}", bytes([3]) + ref.encode())


# --- registry_headers: a selector byte, a little-endian u64 (blob size or
# upload offset), then the value. selector % 5: 0 Range, 1 Content-Range
# (and Content-Length after a newline), 2 WWW-Authenticate, 3 Authorization
# Basic, 4 a /v2/ path.

def header(selector, number, value):
    return bytes([selector]) + struct.pack("<Q", number) + value.encode()


for i, v in enumerate(["bytes=0-99", "bytes=-100", "bytes=500-", "bytes=0-0", "bytes=999-2000", "bytes=5-3"]):
    write("registry_headers", f"range-{i}", header(0, 1000, v))
write("registry_headers", "range-huge", header(0x80, 2**64 - 1, "bytes=18446744073709551614-"))
for i, (offset, v) in enumerate([(0, "0-99\n100"), (100, "bytes 100-199"), (0, "0-0\n1"), (7, "7-6")]):
    write("registry_headers", f"content-range-{i}", header(1, offset, v))
write("registry_headers", "bearer-hub", header(2, 0,
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
      'scope="repository:library/busybox:pull"'))
write("registry_headers", "bearer-commas", header(2, 0, 'bearer scope="repository:a:pull,push", realm="http://t/"'))
write("registry_headers", "basic", header(3, 0, "Basic " + base64.b64encode(b"student:s3cret:x").decode()))
for i, path in enumerate([
    "_catalog", "library/busybox/tags/list", "library/busybox/manifests/latest",
    "a/b/blobs/" + Z, "a/blobs/uploads/", "a/blobs/uploads/6f2c0e2e-1", "a/referrers/" + Z,
]):
    write("registry_headers", f"route-{i}", header(4, 0, path))


# --- lesson: lesson.md files, the bundled course's and a few small ones.

for lesson in sorted((ROOT / "lessons").glob("*/lesson.md")):
    write("lesson", lesson.parent.name, lesson.read_bytes())
write("lesson", "tiny", "---\ntitle: Tiny\n---\n\nHello.\n")
write("lesson", "hostile-html", (
    "---\ntitle: <script>alert(1)</script>\n---\n\n"
    "<script>alert(1)</script>\n<img src=x onerror=alert(1)>\n"
    "[x](javascript:alert(1)) [y](../02-next/) ![d](assets/diagram.svg) [z](../../etc/passwd)\n\n"
    "```bash run\necho '<\ue000 0 \ue000>'\n```\n"
))
write("lesson", "tasks", (
    "---\ntitle: Tasks\nduration: 15m\nnode:\n  image: workstation\n  limits:\n    memory: 512Mi\n"
    "tasks:\n  - id: run-it\n    title: Run it\n    hints: [look, again]\n    checks:\n"
    "      - command: test -f /tmp/x\n      - file: /etc/hostname\n        contains: node1\n"
    "      - http: http://localhost:8080/\n        status: 200\n---\n\n# Body\n\n- [ ] item\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"
))


# --- engine_bodies: a selector byte, then the body. selector % 5: 0
# container create, 1 exec create, 2 exec start, 3 X-Registry-Auth, 4 a
# query string.

create = {
    "Hostname": "", "User": "", "AttachStdin": False, "AttachStdout": True, "AttachStderr": True,
    "ExposedPorts": {"80/tcp": {}}, "Tty": True, "OpenStdin": False, "StdinOnce": False,
    "Env": ["A=1"], "Cmd": ["nginx", "-g", "daemon off;"], "Image": "nginx", "Volumes": {"/data": {}},
    "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": {"x": "y"}, "StopSignal": "SIGQUIT",
    "HostConfig": {
        "Binds": ["/home/student/site:/usr/share/nginx/html:ro", "data:/data"],
        "NetworkMode": "default", "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}],
                                                   "53/udp": [{"HostIp": "127.0.0.1", "HostPort": ""}]},
        "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0}, "AutoRemove": True,
        "LogConfig": {"Type": "", "Config": {}}, "Memory": 0, "PidsLimit": None,
    },
    "NetworkingConfig": {"EndpointsConfig": {}},
}
write("engine_bodies", "create", b"\x00" + j(create).encode())
write("engine_bodies", "create-minimal", b"\x00" + j({"Image": "busybox", "Cmd": "echo hi"}).encode())
write("engine_bodies", "exec-create", b"\x01" + j({
    "User": "", "Privileged": False, "Tty": True, "AttachStdin": True, "AttachStderr": True,
    "AttachStdout": True, "Detach": False, "DetachKeys": "", "Env": None, "WorkingDir": "/", "Cmd": ["sh"],
}).encode())
write("engine_bodies", "exec-start", b"\x02" + j({"Detach": False, "Tty": True}).encode())
auth = j({"username": "student", "password": "s3cret", "serveraddress": "localhost:5000"}).encode()
write("engine_bodies", "registry-auth", b"\x03" + base64.urlsafe_b64encode(auth))
write("engine_bodies", "registry-auth-nopad", b"\x03" + base64.urlsafe_b64encode(auth).rstrip(b"="))
write("engine_bodies", "query-build", b"\x04" + (
    "t=app:1&t=localhost:5000/app&buildargs=" + quote(j({"V": "1", "N": None}))
    + "&labels=" + quote(j({"a": "b"})) + "&rm=1&forcerm=0&nocache=true&target=build"
).encode())
write("engine_bodies", "query-filters", b"\x04" + (
    "all=1&filters=" + quote(j({"label": {"a=b": True}, "dangling": ["true"]})) + "&h=24&w=80"
).encode())


# --- terminal_control: the browser's control messages.

for name, message in [
    ("resize", {"type": "resize", "cols": 120, "rows": 40}),
    ("pause", {"type": "pause"}),
    ("resume", {"type": "resume"}),
]:
    write("terminal_control", name, j(message))
