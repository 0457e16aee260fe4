//! The in-memory host against the suite every host passes (the embedded
//! host runs it in `host.rs`, on the real kernel), and what only the fake
//! does for tests above the seam. No root needed.

use std::time::Duration;

use host::{ErrorKind, ExecOutput, ExitStatus, FakeHost, SandboxHost, SandboxSpec};

#[test]
fn the_fake_host_conforms() {
    host::conformance(&FakeHost::new(), "workstation");
}

#[test]
fn tests_answer_commands_and_see_what_ran() {
    let host = FakeHost::new();
    host.on_exec(|id, argv| {
        (argv.last().map(String::as_str) == Some("grade")).then(|| ExecOutput {
            status: ExitStatus {
                code: Some(0),
                signal: None,
            },
            stdout: format!("graded {id}\n").into_bytes(),
            stderr: Vec::new(),
        })
    });
    host.create_sandbox(SandboxSpec::new("lab-1"))
        .expect("create");
    let run = |argv: &[&str]| {
        let argv: Vec<String> = argv.iter().map(|a| a.to_string()).collect();
        host.exec("lab-1", &argv, Duration::from_secs(1))
            .expect("exec")
    };
    assert_eq!(run(&["sh", "-c", "grade"]).stdout, b"graded lab-1\n");
    assert_eq!(run(&["cat", "/etc/motd"]).status.code, Some(1));
    host.write_file("lab-1", "/etc/motd", b"hello\n")
        .expect("write");
    assert_eq!(run(&["cat", "/etc/motd"]).stdout, b"hello\n");
    assert_eq!(host.execs().len(), 3);
    assert_eq!(host.execs()[0].1, ["sh", "-c", "grade"]);
}

#[test]
fn an_ended_node_is_exited_and_refuses_work_until_destroyed() {
    let host = FakeHost::new();
    host.create_sandbox(SandboxSpec::new("lab-2"))
        .expect("create");
    host.end("lab-2").expect("end");
    let err = host
        .touch("lab-2")
        .expect_err("an exited node takes no touch");
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err}");
    host.destroy_sandbox("lab-2")
        .expect("destroy an exited node");
}
