//! The `created_by` line each step records, which is at once its
//! `docker history` line and its cache key, written exactly as dockerd
//! 20.10 writes it: metadata steps as the shell with `#(nop)` and two
//! spaces (`/bin/sh -c #(nop)  CMD ["nginx" "-g" "daemon off;"]`, the list
//! in Go's `%q`), WORKDIR, COPY and ADD with one (COPY and ADD with a
//! trailing space), RUN as the shell and its command.

/// The `#(nop)` line of a metadata step: `text` is the instruction as it
/// records itself (`CMD ["nginx"]`, `ENV A=1`).
pub fn nop(shell: &[String], text: &str) -> String {
    format!("{} #(nop)  {text}", shell.join(" "))
}

/// WORKDIR's line: one space after `#(nop)`.
pub fn workdir(shell: &[String], dir: &str) -> String {
    format!("{} #(nop) WORKDIR {dir}", shell.join(" "))
}

/// COPY's or ADD's line: `source` is `file:<sum>`, `dir:<sum>` or
/// `multi:<sum>`, `dest` as written; one space after `#(nop)` and a
/// trailing one.
pub fn copy(shell: &[String], instruction: &str, source: &str, dest: &str) -> String {
    format!(
        "{} #(nop) {instruction} {source} in {dest} ",
        shell.join(" ")
    )
}

/// RUN's line in shell form: the shell and the command.
pub fn run(shell: &[String], command: &str) -> String {
    format!("{} {command}", shell.join(" "))
}

/// A command list as Go's `%q` prints a `[]string`: `["a" "b c"]`.
pub fn go_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| go_quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

/// One string as Go's `%q` prints it (`strconv.Quote`): `\"`, `\\`,
/// `\n`, `\t`, `\r`, and other control characters as `\x..` or `\u....`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh() -> Vec<String> {
        vec!["/bin/sh".into(), "-c".into()]
    }

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn lines_read_as_dockerds() {
        assert_eq!(
            nop(
                &sh(),
                &format!("CMD {}", go_list(&list(&["nginx", "-g", "daemon off;"])))
            ),
            r#"/bin/sh -c #(nop)  CMD ["nginx" "-g" "daemon off;"]"#
        );
        // Captured from Debian's dockerd 20.10 building the same steps here.
        assert_eq!(
            nop(
                &sh(),
                &format!("CMD {}", go_list(&list(&["sh", "-c", "echo \"x\"\ttab"])))
            ),
            r#"/bin/sh -c #(nop)  CMD ["sh" "-c" "echo \"x\"\ttab"]"#
        );
        assert_eq!(
            nop(&sh(), "ENV A=1 B=two words"),
            "/bin/sh -c #(nop)  ENV A=1 B=two words"
        );
        assert_eq!(
            run(&sh(), r#"echo "run \"q\"" > /r"#),
            r#"/bin/sh -c echo "run \"q\"" > /r"#
        );
        assert_eq!(workdir(&sh(), "/app"), "/bin/sh -c #(nop) WORKDIR /app");
        assert_eq!(
            copy(&sh(), "COPY", "file:abc", "/app"),
            "/bin/sh -c #(nop) COPY file:abc in /app "
        );
        assert_eq!(run(&sh(), "apt-get update"), "/bin/sh -c apt-get update");
        let bash = list(&["/bin/bash", "-c"]);
        assert_eq!(run(&bash, "echo hi"), "/bin/bash -c echo hi");
    }

    #[test]
    fn strings_quote_as_gos() {
        for (input, expected) in [
            ("plain", r#""plain""#),
            ("say \"hi\"", r#""say \"hi\"""#),
            ("back\\slash", r#""back\\slash""#),
            ("tab\there", r#""tab\there""#),
            ("nl\n", r#""nl\n""#),
            ("\u{1}", r#""\x01""#),
            ("é ünïcode", r#""é ünïcode""#),
        ] {
            assert_eq!(go_quote(input), expected, "{input:?}");
        }
        assert_eq!(go_list(&[]), "[]");
    }
}
