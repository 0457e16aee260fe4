//! Real-kernel tests of the runtime, run as root. This binary is also the
//! helper executable (like the product binary, it calls
//! `main_if_requested` first), hence `harness = false` and our own runner.

mod support;

use std::time::Duration;

use runtime::ExecSpec;
use support::Fixture;

fn sh(f: &Fixture, id: &str, script: &str) -> runtime::ExecOutput {
    let mut spec = ExecSpec::new(["/bin/sh", "-c", script]);
    spec.timeout = Some(Duration::from_secs(60));
    f.rt.exec(id, &spec).unwrap_or_else(|e| panic!("exec {script:?} in {id}: {e}"))
}

fn out(o: &runtime::ExecOutput) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

fn smoke() {
    let f = Fixture::new();
    let sb = f.rt.create(f.spec("smoke")).expect("create");
    let o = sh(&f, "smoke", "id -u; hostname; cat /etc/motd; ls -ln /bin/busybox");
    eprintln!("{} {}", out(&o), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success());
    let _ = sb;
    f.rt.stop("smoke", Duration::from_secs(1)).expect("stop");
}

fn main() {
    runtime::helper::main_if_requested();
    support::run(&[("smoke", smoke)]);
}
