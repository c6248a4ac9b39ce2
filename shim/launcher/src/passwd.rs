//! /etc/passwd and /etc/group for the container: the image's files with the running identity made
//! to exist, so `id`, `whoami`, ssh and MPI launchers can name the user. Written into the launch
//! directory and bound read-only over the image's (which is never modified).

/// The image's passwd (or none) with a line for `uid`. uid 0 keeps the image's root line when it
/// has one; any other uid replaces lines with the same uid or name by the caller's.
pub fn passwd(
    image: Option<&str>,
    uid: u32,
    gid: u32,
    name: &str,
    gecos: &str,
    home: &str,
) -> String {
    let lines: Vec<&str> = image.unwrap_or("").lines().collect();
    let field = |l: &str, i: usize| l.split(':').nth(i).map(str::to_string);
    let has_uid = |l: &&str| field(l, 2).as_deref() == Some(&uid.to_string());
    let mut out: Vec<String> = if uid == 0 {
        lines.iter().map(|l| l.to_string()).collect()
    } else {
        lines
            .iter()
            .filter(|l| !has_uid(l) && field(l, 0).as_deref() != Some(name))
            .map(|l| l.to_string())
            .collect()
    };
    if uid == 0 {
        if !lines.iter().any(has_uid) {
            out.push("root:x:0:0:root:/root:/bin/sh".into());
        }
    } else {
        let gecos = gecos.replace([':', '\n'], " ");
        out.push(format!("{name}:x:{uid}:{gid}:{gecos}:{home}:/bin/sh"));
    }
    out.join("\n") + "\n"
}

/// The image's group file (or none) with a group for `gid` (named `name`, or `root` for 0).
pub fn group(image: Option<&str>, gid: u32, name: &str) -> String {
    let lines: Vec<&str> = image.unwrap_or("").lines().collect();
    let field = |l: &str, i: usize| l.split(':').nth(i).map(str::to_string);
    let gid_s = gid.to_string();
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    if !lines.iter().any(|l| field(l, 2).as_deref() == Some(&gid_s)) {
        let name = if gid == 0 { "root" } else { name };
        out.retain(|l| field(l, 0).as_deref() != Some(name));
        out.push(format!("{name}:x:{gid}:"));
    }
    out.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMG: &str = "root:x:0:0:root:/root:/bin/sh\nalice:x:1001:1001::/home/alice:/bin/bash\n";

    #[test]
    fn caller_replaces_same_uid() {
        let p = passwd(Some(IMG), 1001, 1001, "bob", "Bob: B", "/home/bob");
        assert_eq!(
            p,
            "root:x:0:0:root:/root:/bin/sh\nbob:x:1001:1001:Bob  B:/home/bob:/bin/sh\n"
        );
    }

    #[test]
    fn root_keeps_image_root_or_gets_one() {
        assert_eq!(passwd(Some(IMG), 0, 0, "root", "", "/root"), IMG);
        assert_eq!(
            passwd(None, 0, 0, "root", "", "/root"),
            "root:x:0:0:root:/root:/bin/sh\n"
        );
    }

    #[test]
    fn groups() {
        let img = "root:x:0:\nusers:x:100:\n";
        assert_eq!(group(Some(img), 100, "bob"), img);
        assert_eq!(group(Some(img), 1001, "bob"), format!("{img}bob:x:1001:\n"));
        assert_eq!(group(None, 0, "x"), "root:x:0:\n");
    }
}
