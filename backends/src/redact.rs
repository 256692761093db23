//! Credentials in repository URLs (`https://user:token@mirror/...`, common
//! with Artifactory or Satellite mirrors) never reach a log line, a status
//! report, a dry run or an error message: everything the backends show
//! about a source, a command or a tool's output goes through [`redact`].

/// What the user information of a URL is replaced with.
pub const MASK: &str = "***";

/// `text` with the user information (`user:password@`, or `token@`) of
/// every `scheme://` URL in it replaced by `***@`. Everything else is kept
/// byte for byte, so a message still names the host and path.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        // A password may hold raw characters that end an authority
        // elsewhere (`; , ? ' ] > "`, a space): the user information is
        // everything up to the last '@' before the path's first '/' on
        // this line. Masking too much is harmless; too little is not.
        let line_end = tail.find(['\n', '\r']).unwrap_or(tail.len());
        let path_start = tail[..line_end].find('/').unwrap_or(line_end);
        if let Some(i) = tail[..path_start].rfind('@') {
            out.push_str(MASK);
            rest = &tail[i..];
            continue;
        }
        // The authority ends at the first of these; a '@' before it
        // separates user information from the host.
        let end = tail
            .find(|c: char| {
                matches!(
                    c,
                    '/' | '?' | '#' | '"' | '\'' | '<' | '>' | '[' | ']' | ',' | ';'
                ) || c.is_whitespace()
            })
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(i) => {
                out.push_str(MASK);
                out.push_str(&authority[i..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Whether `text` holds a URL with user information.
pub fn has_credentials(text: &str) -> bool {
    redact(text) != text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_information_is_masked() {
        assert_eq!(
            redact("deb [signed-by=/k] https://bob:s3cr3t@mirror.example.com/debian bookworm"),
            "deb [signed-by=/k] https://***@mirror.example.com/debian bookworm"
        );
        assert_eq!(
            redact("baseurl=https://tok3n@repo.example.com:8443/rpm?x=1"),
            "baseurl=https://***@repo.example.com:8443/rpm?x=1"
        );
        assert_eq!(
            redact("a http://u:p@h/x and 'ftp://v:q@i' end"),
            "a http://***@h/x and 'ftp://***@i' end"
        );
        // A password holding '@' is masked whole.
        assert_eq!(redact("https://u:p@ss@h/"), "https://***@h/");
    }

    #[test]
    fn passwords_with_special_characters_are_masked_whole() {
        for pw in [
            "a;b", "a,b", "a?b", "a'b", "a]b", "a>b", "a\"b", "a b", "a#b", "a[b", "a<b", "a@b",
            "a:b", "a%40b", "a&b", "a=b", "a+b", "a$b", "a!b", "a\tb",
        ] {
            for form in [
                format!("deb [signed-by=/k] https://user:{pw}@mirror.example.com/debian bookworm"),
                format!("baseurl=https://user:{pw}@mirror.example.com:8443/rpm"),
                format!("'https://{pw}@h' failed"),
                format!("E: Failed to fetch https://user:{pw}@h/dists/x/InRelease"),
            ] {
                let r = redact(&form);
                assert!(!r.contains(pw), "{pw:?} shown in {r:?}");
                assert!(r.contains("***@"), "{r:?}");
            }
        }
    }

    #[test]
    fn text_without_credentials_is_unchanged() {
        for t in [
            "https://apt.releases.teleport.dev/debian stable/v15",
            "mail me: a@b.c",
            "no url at all",
            "file:///usr/share/keyrings/k.asc",
            "trailing ://",
        ] {
            assert_eq!(redact(t), t);
            assert!(!has_credentials(t));
        }
        assert!(has_credentials("http://u:p@h/"));
    }
}
