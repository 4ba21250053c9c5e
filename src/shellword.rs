//! Words for the remote user's shell: quoting that sh, bash and csh all read back byte for byte, and its strict inverse (pure functions).
//!
//! ssh joins the words after the destination with spaces and hands the
//! result to the remote user's login shell, which is `sh`, `bash` or, for
//! root on DragonFly BSD, `csh` (tcsh). So every remote word is quoted here
//! in a form all of them read back byte for byte: an allow-list of bytes
//! passes as is, anything else goes inside single quotes, with `'` written
//! `'\''` and `!` written `'\!'` (csh expands `!` even inside single quotes;
//! a backslash before it outside the quotes works in every shell). A newline
//! has no such form (csh refuses it even between quotes), so remote words
//! with one are refused before anything runs ([`check_word`]).
//! [`split_line`] is the inverse that `ssh-remote` uses on the command sshd
//! hands it: it reads what [`quote`] writes, and refuses whatever a shell
//! would expand or treat as an operator.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// Bytes that no shell gives a meaning to (`=` only inside a word: zsh
/// expands a leading `=cmd`).
fn is_plain(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"@%+=:,./_-".contains(&c)
}

/// Why a word cannot be handed to a remote shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WordError {
    #[error("a newline cannot be passed to the remote shell (csh cannot quote it)")]
    Newline,
    #[error("a NUL byte cannot be passed in a command line")]
    Nul,
}

/// Checks that `word` can be quoted for every remote shell (sh, bash, csh).
pub fn check_word(word: &OsStr) -> Result<(), WordError> {
    let b = word.as_bytes();
    if b.contains(&b'\n') {
        Err(WordError::Newline)
    } else if b.contains(&0) {
        Err(WordError::Nul)
    } else {
        Ok(())
    }
}

/// Quotes one word for sh, bash and csh alike. The word must pass
/// [`check_word`] (a newline comes out as sh reads it, which csh refuses).
pub fn quote(word: &OsStr) -> OsString {
    let b = word.as_bytes();
    if !b.is_empty() && b[0] != b'=' && b.iter().copied().all(is_plain) {
        return word.to_os_string();
    }
    let mut out = Vec::with_capacity(b.len() + 2);
    out.push(b'\'');
    for &c in b {
        match c {
            b'\'' => out.extend_from_slice(b"'\\''"),
            b'!' => out.extend_from_slice(b"'\\!'"),
            _ => out.push(c),
        }
    }
    out.push(b'\'');
    OsString::from_vec(out)
}

/// Why [`split_line`] refused a command line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("a newline at byte {0}")]
    Newline(usize),
    #[error("an unterminated quote that opens at byte {0}")]
    Unterminated(usize),
    #[error("a backslash at the end")]
    TrailingBackslash,
    #[error("unquoted '{}' at byte {at} (a shell would give it a meaning)", char::from(*.byte))]
    Special { byte: u8, at: usize },
}

/// Splits a command line into words as sh would, without expanding
/// anything: single quotes, double quotes (where `\` escapes only `$`, `` ` ``,
/// `"` and `\`) and backslash escapes are honoured; anything a shell would
/// expand or treat as an operator (`$`, `` ` ``, `;`, `|`, `&`, `<`, `>`, `(`,
/// `)`, globs, braces, `!`, a leading `~` or `#`) is refused, since the word
/// it stands for cannot be known. Reads back every line [`quote`] makes.
pub fn split_line(line: &[u8]) -> Result<Vec<OsString>, SplitError> {
    if let Some(at) = line.iter().position(|&c| c == b'\n') {
        return Err(SplitError::Newline(at));
    }
    let mut words = Vec::new();
    let mut word: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < line.len() {
        let c = line[i];
        match c {
            b' ' | b'\t' => {
                words.extend(word.take().map(OsString::from_vec));
                i += 1;
                continue;
            }
            b'\'' => {
                let end = line[i + 1..].iter().position(|&c| c == b'\'').ok_or(SplitError::Unterminated(i))?;
                word.get_or_insert_with(Vec::new).extend_from_slice(&line[i + 1..i + 1 + end]);
                i += end + 2;
                continue;
            }
            b'"' => {
                let open = i;
                let w = word.get_or_insert_with(Vec::new);
                i += 1;
                loop {
                    match line.get(i) {
                        None => return Err(SplitError::Unterminated(open)),
                        Some(b'"') => break,
                        Some(b'\\') if matches!(line.get(i + 1), Some(b'$' | b'`' | b'"' | b'\\')) => {
                            w.push(line[i + 1]);
                            i += 2;
                        }
                        Some(&byte @ (b'$' | b'`' | b'!')) => return Err(SplitError::Special { byte, at: i }),
                        Some(&other) => {
                            w.push(other);
                            i += 1;
                        }
                    }
                }
                i += 1;
                continue;
            }
            b'\\' => {
                let &next = line.get(i + 1).ok_or(SplitError::TrailingBackslash)?;
                word.get_or_insert_with(Vec::new).push(next);
                i += 2;
                continue;
            }
            b'$' | b'`' | b';' | b'|' | b'&' | b'<' | b'>' | b'(' | b')' | b'*' | b'?' | b'[' | b']' | b'{' | b'}'
            | b'!' | b'^' => return Err(SplitError::Special { byte: c, at: i }),
            b'~' | b'#' if word.is_none() => return Err(SplitError::Special { byte: c, at: i }),
            _ => word.get_or_insert_with(Vec::new).push(c),
        }
        i += 1;
    }
    words.extend(word.map(OsString::from_vec));
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_table() {
        let q = |s: &[u8]| quote(OsStr::from_bytes(s)).into_vec();
        assert_eq!(q(b"/pfs/a"), b"/pfs/a");
        assert_eq!(q(b"user@host:1,2=3+%"), b"user@host:1,2=3+%");
        assert_eq!(q(b"=ls"), b"'=ls'", "zsh expands a leading =");
        assert_eq!(q(b""), b"''");
        assert_eq!(q(b"a b"), b"'a b'");
        assert_eq!(q(b"it's"), b"'it'\\''s'");
        assert_eq!(q(b"!"), b"''\\!''");
        assert_eq!(q(b"a!b"), b"'a'\\!'b'");
        assert_eq!(q(b"~/x"), b"'~/x'");
        assert_eq!(q(b"*"), b"'*'");
        assert_eq!(q(b"$(touch x)"), b"'$(touch x)'");
        assert_eq!(q(b"`x`;y|z&"), b"'`x`;y|z&'");
        assert_eq!(q(b"\xff\xfe"), b"'\xff\xfe'");
    }

    #[test]
    fn words_a_remote_shell_cannot_take_are_refused() {
        assert_eq!(check_word(OsStr::new("/pfs/a b!'")), Ok(()));
        assert_eq!(check_word(OsStr::new("a\nb")), Err(WordError::Newline));
        assert_eq!(check_word(OsStr::from_bytes(b"a\0b")), Err(WordError::Nul));
        assert!(WordError::Newline.to_string().contains("newline"));
    }

    #[test]
    fn split_line_reads_shell_words_and_refuses_what_a_shell_would_expand() {
        let sp = |s: &[u8]| split_line(s).map(|w| w.into_iter().map(OsString::into_vec).collect::<Vec<_>>());
        assert_eq!(
            sp(b"  hammer -2  mirror-read\t/p "),
            Ok(vec![b"hammer".to_vec(), b"-2".into(), b"mirror-read".into(), b"/p".into()])
        );
        assert_eq!(sp(b"'a b'c\\ d \"e \\$ \\x\" ''"), Ok(vec![b"a bc d".to_vec(), b"e $ \\x".into(), b"".into()]));
        assert_eq!(
            sp(b"'a'\\!'b' x~y a#b =c \xff"),
            Ok(vec![b"a!b".to_vec(), b"x~y".into(), b"a#b".into(), b"=c".into(), b"\xff".into()])
        );
        assert_eq!(sp(b"a\nb"), Err(SplitError::Newline(1)));
        assert_eq!(sp(b"a 'b"), Err(SplitError::Unterminated(2)));
        assert_eq!(sp(b"a \"b"), Err(SplitError::Unterminated(2)));
        assert_eq!(sp(b"a\\"), Err(SplitError::TrailingBackslash));
        for (line, byte, at) in [
            (&b"a;b"[..], b';', 1),
            (b"$(x)", b'$', 0),
            (b"\"$x\"", b'$', 1),
            (b"`x`", b'`', 0),
            (b"a|b", b'|', 1),
            (b"a&", b'&', 1),
            (b"<x", b'<', 0),
            (b"*", b'*', 0),
            (b"a?", b'?', 1),
            (b"{a,b}", b'{', 0),
            (b"a!b", b'!', 1),
            (b"x ~/p", b'~', 2),
            (b"x #c", b'#', 2),
        ] {
            assert_eq!(sp(line), Err(SplitError::Special { byte, at }), "{}", String::from_utf8_lossy(line));
        }
        assert_eq!(
            split_line(b"a *").unwrap_err().to_string(),
            "unquoted '*' at byte 2 (a shell would give it a meaning)"
        );
    }

    proptest::proptest! {
        #[test]
        fn split_line_reads_back_every_quoted_line(words in proptest::collection::vec(proptest::collection::vec(1u8..=255, 0..40), 1..6)) {
            let words: Vec<Vec<u8>> = words.into_iter().map(|w| w.into_iter().filter(|&c| c != b'\n').collect()).collect();
            let line: Vec<u8> = words
                .iter()
                .map(|w| quote(OsStr::from_bytes(w)).into_vec())
                .collect::<Vec<_>>()
                .join(&b' ');
            let back: Vec<Vec<u8>> = split_line(&line).unwrap().into_iter().map(OsString::into_vec).collect();
            proptest::prop_assert_eq!(back, words);
        }
    }
}
