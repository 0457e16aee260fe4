//! `--user` (and an image's `USER`) as Docker reads it: `uid`, `uid:gid`,
//! `name`, `name:group`, looked up in the container's own `/etc/passwd`
//! and `/etc/group`.

use crate::error::{Error, Result};

/// Who a process runs as, with the home `HOME` defaults to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub home: String,
}

/// Whether `spec` names root, which needs no lookup.
pub fn is_root(spec: &str) -> bool {
    matches!(
        spec,
        "" | "0" | "root" | "0:0" | "root:root" | "root:0" | "0:root"
    )
}

/// Resolves `spec` against the container's `passwd` and `group` files (empty
/// when the image has none). A name must exist; a number need not, and then
/// has group 0 and home `/`, as on Docker.
pub fn resolve(spec: &str, passwd: &str, group: &str) -> Result<User> {
    let (user, wanted_group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let entries: Vec<Vec<&str>> = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 6)
        .collect();
    let by_number = user.parse::<u32>().ok();
    let entry = entries.iter().find(|f| match by_number {
        Some(n) => f[2].parse::<u32>().ok() == Some(n),
        None => f[0] == user,
    });
    let (uid, mut gid, name, home) = match (by_number, entry) {
        (_, Some(f)) => (
            number(f[2], spec)?,
            number(f[3], spec)?,
            Some(f[0]),
            f[5].to_owned(),
        ),
        (Some(n), None) => (n, 0, None, "/".to_owned()),
        (None, None) => {
            return Err(Error::InvalidArgument(format!(
                "unable to find user {user}: no matching entries in passwd file"
            )));
        }
    };
    let groups_file: Vec<Vec<&str>> = group
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 3)
        .collect();
    if let Some(g) = wanted_group {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => groups_file
                .iter()
                .find(|f| f[0] == g)
                .map(|f| number(f[2], spec))
                .transpose()?
                .ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "unable to find group {g}: no matching entries in group file"
                    ))
                })?,
        };
    }
    let groups = match name {
        Some(name) => groups_file
            .iter()
            .filter(|f| f.get(3).is_some_and(|m| m.split(',').any(|m| m == name)))
            .filter_map(|f| f[2].parse::<u32>().ok())
            .filter(|g| *g != gid)
            .collect(),
        None => Vec::new(),
    };
    if uid > 65535 || gid > 65535 || groups.iter().any(|g| *g > 65535) {
        return Err(Error::InvalidArgument(format!(
            "user {spec:?} has ids of 65536 or more, which a lab does not map"
        )));
    }
    Ok(User {
        uid,
        gid,
        groups,
        home,
    })
}

fn number(field: &str, spec: &str) -> Result<u32> {
    field.parse().map_err(|_| {
        Error::InvalidArgument(format!(
            "the passwd or group entry for {spec:?} has a bad id {field:?}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www:/var/www:/usr/sbin/nologin\nbob:x:1000:1000::/home/bob:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nwww-data:x:33:\nbob:x:1000:\nstaff:x:50:bob,alice\n";

    #[test]
    fn names_and_numbers_resolve_as_on_docker() {
        let bob = resolve("bob", PASSWD, GROUP).expect("bob");
        assert_eq!(
            (bob.uid, bob.gid, bob.groups, bob.home.as_str()),
            (1000, 1000, vec![50], "/home/bob")
        );
        let www = resolve("33", PASSWD, GROUP).expect("33");
        assert_eq!((www.uid, www.gid, www.home.as_str()), (33, 33, "/var/www"));
        let stranger = resolve("4242", PASSWD, GROUP).expect("a bare number");
        assert_eq!(
            (stranger.uid, stranger.gid, stranger.home.as_str()),
            (4242, 0, "/")
        );
        let staff = resolve("bob:staff", PASSWD, GROUP).expect("bob:staff");
        assert_eq!((staff.uid, staff.gid), (1000, 50));
        assert_eq!(resolve("1000:7", "", "").expect("numbers").gid, 7);
    }

    #[test]
    fn unknown_or_unmappable_users_are_refused() {
        for spec in ["nobody-here", "bob:nogroup", "70000", "1000:70000"] {
            let e = resolve(spec, PASSWD, GROUP).expect_err(spec);
            assert!(!e.to_string().is_empty());
        }
        assert!(is_root("root") && is_root("") && !is_root("bob"));
    }
}
