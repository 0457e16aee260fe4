//! The pure parts: parsing what the node prints and deciding from it.

use std::time::Duration;

use course::FileCheck;

use crate::Verdict;
use crate::file::{Seen, judge, parse};

fn file_check(path: &str) -> FileCheck {
    FileCheck {
        path: path.into(),
        exists: true,
        mode: None,
        owner: None,
        contains: None,
        regex: None,
    }
}

fn present(kind: &str, mode: u32, content: Option<&str>) -> Seen {
    Seen::Present {
        kind: kind.into(),
        mode,
        owner: "root".into(),
        uid: "0".into(),
        content: content.map(|c| c.as_bytes().to_vec()),
    }
}

#[test]
fn file_script_output_parses_and_hostile_output_does_not() {
    assert_eq!(parse(b"missing\n"), Some(Seen::Missing));
    assert_eq!(
        parse(b"regular file|644|root|0\nhi\n"),
        Some(present("regular file", 0o644, Some("hi\n")))
    );
    assert_eq!(
        parse(b"directory|4755|root|0\n"),
        Some(present("directory", 0o4755, None))
    );
    for bad in [
        &b""[..],
        b"no newline",
        b"regular file|9x9|root|0\n",
        b"regular file|644\n",
        b"\xff\xfe|644|root|0\n",
    ] {
        assert_eq!(parse(bad), None, "{bad:?}");
    }
}

#[test]
fn file_properties_are_each_compared() {
    let mut check = file_check("/root/a");
    check.mode = Some(0o600);
    check.owner = Some("0".into());
    check.contains = Some("hi".into());
    assert_eq!(
        judge(&check, present("regular file", 0o600, Some("oh hi"))),
        Verdict::Pass(
            "/root/a is a regular file, with mode 0600, owned by root, containing \"hi\"".into()
        )
    );
    assert!(matches!(
        judge(&check, present("regular file", 0o644, Some("oh hi"))),
        Verdict::Fail(m) if m == "/root/a has mode 0644, expected 0600"
    ));
    assert!(matches!(
        judge(&check, present("regular file", 0o600, Some("empty"))),
        Verdict::Fail(m) if m.contains("does not contain \"hi\"")
    ));
    assert!(matches!(
        judge(&check, present("directory", 0o600, None)),
        Verdict::Fail(m) if m.contains("is a directory, not a regular file")
    ));
    assert!(matches!(judge(&check, Seen::Missing), Verdict::Fail(_)));
    let mut absent = file_check("/root/a");
    absent.exists = false;
    assert!(matches!(judge(&absent, Seen::Missing), Verdict::Pass(_)));
    assert!(matches!(
        judge(&absent, present("regular file", 0o644, Some(""))),
        Verdict::Fail(_)
    ));
}

#[test]
fn urls_split_into_host_port_and_path() {
    use crate::http::split_url;
    assert_eq!(
        split_url("http://localhost:8080/a?b=1"),
        Ok(("localhost".into(), 8080, "/a?b=1".into()))
    );
    assert_eq!(split_url("http://web"), Ok(("web".into(), 80, "/".into())));
    assert!(split_url("https://web/").unwrap_err().contains("https"));
    assert!(split_url("ftp://web/").is_err());
    assert!(split_url("http://").is_err());
    assert_eq!(
        crate::registry::split_host("localhost:5000"),
        Some(("localhost".into(), 5000))
    );
    assert_eq!(crate::registry::split_host("localhost"), None);
    assert_eq!(crate::registry::split_host("localhost:99999"), None);
}

#[test]
fn messages_quote_hostile_text_on_one_short_line() {
    assert_eq!(
        crate::timed_out(Duration::from_secs(5)),
        "timed out after 5 s"
    );
    assert_eq!(
        crate::timed_out(Duration::from_millis(1500)),
        "timed out after 1.5 s"
    );
    assert_eq!(crate::quote("a\nb\x1b[31m", 80), "\"a b [31m\"");
    assert_eq!(crate::quote(&"é".repeat(10), 3), "\"ééé…\"");
}
