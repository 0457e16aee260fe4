//! The command each step records, which is at once its cache key (as the
//! step's `container_config.Cmd`) and its `docker history` line (that list
//! joined with spaces), made exactly as dockerd 20.10 makes it: metadata
//! steps as the shell, `#(nop) ` and their text as two words, so the line
//! reads `/bin/sh -c #(nop)  CMD ["nginx" "-g" "daemon off;"]` (a list in
//! Go's `%q`); WORKDIR, COPY and ADD as the shell and one word, so they
//! have one space (COPY and ADD a trailing one too); RUN as the shell and
//! its command.

/// The Cmd of a metadata step: `text` is the instruction as it records
/// itself (`CMD ["nginx"]`, `ENV A=1`).
pub fn nop(shell: &[String], text: &str) -> Vec<String> {
    let mut cmd = shell.to_vec();
    cmd.push("#(nop) ".into());
    cmd.push(text.into());
    cmd
}

/// The Cmd of WORKDIR, COPY and ADD: one word after the shell.
pub fn nop_word(shell: &[String], text: &str) -> Vec<String> {
    let mut cmd = shell.to_vec();
    cmd.push(format!("#(nop) {text}"));
    cmd
}

/// COPY's or ADD's text: `source` is `file:<sum>`, `dir:<sum>` or
/// `multi:<sum>`, `dest` as written, with a trailing space; `--chown`
/// runs into the source with no space between, as dockerd writes it.
pub fn copy(instruction: &str, chown: Option<&str>, source: &str, dest: &str) -> String {
    let chown = chown.map(|c| format!("--chown={c}")).unwrap_or_default();
    format!("{instruction} {chown}{source} in {dest} ")
}

/// The `docker history` line of a step whose Cmd is `cmd`.
pub fn created_by(cmd: &[String]) -> String {
    cmd.join(" ")
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
        // Each line as Debian's dockerd 20.10 wrote it for the same step here.
        let line = |cmd: Vec<String>| created_by(&cmd);
        assert_eq!(
            line(nop(
                &sh(),
                &format!("CMD {}", go_list(&list(&["nginx", "-g", "daemon off;"])))
            )),
            r#"/bin/sh -c #(nop)  CMD ["nginx" "-g" "daemon off;"]"#
        );
        assert_eq!(
            line(nop(
                &sh(),
                &format!("CMD {}", go_list(&list(&["sh", "-c", "echo \"x\"\ttab"])))
            )),
            r#"/bin/sh -c #(nop)  CMD ["sh" "-c" "echo \"x\"\ttab"]"#
        );
        assert_eq!(
            line(nop(&sh(), "ENV A=1 B=two words")),
            "/bin/sh -c #(nop)  ENV A=1 B=two words"
        );
        assert_eq!(
            line(nop_word(&sh(), "WORKDIR /app")),
            "/bin/sh -c #(nop) WORKDIR /app"
        );
        assert_eq!(
            line(nop_word(&sh(), &copy("COPY", None, "file:abc", "."))),
            "/bin/sh -c #(nop) COPY file:abc in . "
        );
        assert_eq!(
            line(nop_word(
                &sh(),
                &copy("COPY", Some("app:app"), "file:abc", "/f")
            )),
            "/bin/sh -c #(nop) COPY --chown=app:appfile:abc in /f "
        );
        let bash = list(&["/bin/bash", "-c"]);
        assert_eq!(
            line([bash.clone(), list(&["echo hi"])].concat()),
            "/bin/bash -c echo hi"
        );
        // The cache key keeps the words apart.
        assert_eq!(
            nop(&sh(), "USER app"),
            list(&["/bin/sh", "-c", "#(nop) ", "USER app"])
        );
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
