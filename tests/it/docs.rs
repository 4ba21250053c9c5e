//! The documentation stays in step with the code: every flag, command, alias,
//! environment variable and exit status is in man/hammer-mirror.8; the page
//! renders without groff warnings; README.md's usage block is `--help`.
//!
//! The lists come from the code (clap's `Cli::command()`, the `Status` enum, the
//! variables `src/` reads), so a new flag fails here until it is documented.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::CommandFactory;
use hammer_mirror::cli::Cli;
use hammer_mirror::exit::Status;

const MAN: &str = "man/hammer-mirror.8";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

/// A roff line as the reader sees it: `\-` is `-`, font changes and
/// zero-width escapes are gone, and a font macro (`.B`, `.BR`, ...) is
/// replaced by its arguments.
fn plain(line: &str) -> String {
    let mut s = line.to_string();
    for (from, to) in [
        ("\\-", "-"),
        ("\\fB", ""),
        ("\\fI", ""),
        ("\\fR", ""),
        ("\\fP", ""),
        ("\\&", ""),
        ("\\%", ""),
        ("\\(aq", "'"),
        ("\\e", "\\"),
    ] {
        s = s.replace(from, to);
    }
    // Alternating-font macros join their arguments; .B and .I separate them by blanks.
    for (mac, sep) in
        [(".BR ", ""), (".BI ", ""), (".IR ", ""), (".RB ", ""), (".RI ", ""), (".IB ", ""), (".B ", " "), (".I ", " ")]
    {
        if let Some(rest) = s.strip_prefix(mac) {
            return macro_args(rest).join(sep);
        }
    }
    s
}

/// A macro line's arguments: split at blanks, `"..."` kept together.
fn macro_args(s: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut any) = (false, false);
    for c in s.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            ' ' | '\t' if !quoted => {
                if any {
                    args.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            _ => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        args.push(cur);
    }
    args
}

/// The page's sections: name (as in `.SH NAME` / `.SH "EXIT STATUS"`) and raw lines.
fn sections(page: &str) -> Vec<(String, Vec<&str>)> {
    let mut out: Vec<(String, Vec<&str>)> = Vec::new();
    for line in page.lines() {
        if let Some(name) = line.strip_prefix(".SH ") {
            out.push((name.trim().trim_matches('"').to_string(), Vec::new()));
        } else if let Some((_, lines)) = out.last_mut() {
            lines.push(line);
        }
    }
    out
}

fn section<'a>(page: &'a str, name: &str) -> Vec<&'a str> {
    sections(page)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, l)| l)
        .unwrap_or_else(|| panic!("{MAN} has no .SH {name} section"))
}

/// The tag lines of the `.TP` entries in `lines` (the first line after each
/// `.TP` that is neither a comment nor `.PD`), in plain text.
fn tags(lines: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let mut want = false;
    for line in lines {
        if line.starts_with(".TP") {
            want = true;
        } else if want && !line.starts_with(".\\\"") && !line.starts_with(".PD") {
            out.push(plain(line));
            want = false;
        }
    }
    out
}

/// True when `text` contains `word` with no letter, digit or `-` right
/// before or after it (so `-v` is not found in `-vv` or `--verbose`).
fn has_word(text: &str, word: &str) -> bool {
    let edge = |c: Option<char>| c.is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    text.match_indices(word)
        .any(|(i, _)| edge(text[..i].chars().next_back()) && edge(text[i + word.len()..].chars().next()))
}

/// The built command (with clap's generated --help, --version and `help`).
fn command() -> clap::Command {
    let mut cmd = Cli::command();
    cmd.build();
    cmd
}

/// Every flag spelling of `cmd` and its subcommands, with where it was found.
fn flags(cmd: &clap::Command, path: &str, out: &mut Vec<(String, String)>) {
    for arg in cmd.get_arguments() {
        if arg.is_positional() {
            continue;
        }
        if let Some(l) = arg.get_long() {
            out.push((format!("--{l}"), path.to_string()));
        }
        for l in arg.get_all_aliases().unwrap_or_default() {
            out.push((format!("--{l}"), path.to_string()));
        }
        if let Some(c) = arg.get_short() {
            out.push((format!("-{c}"), path.to_string()));
        }
        for c in arg.get_all_short_aliases().unwrap_or_default() {
            out.push((format!("-{c}"), path.to_string()));
        }
    }
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        flags(sub, &format!("{path} {}", sub.get_name()), out);
    }
}

#[test]
fn every_flag_is_in_the_options_section() {
    let page = read(MAN);
    let options = tags(&section(&page, "OPTIONS"));
    let mut found = Vec::new();
    flags(&command(), "hammer-mirror", &mut found);
    assert!(found.len() > 20, "suspiciously few flags from clap: {found:?}");
    // Global flags reappear in every subcommand: name each flag once, where it was first found.
    let mut seen = BTreeSet::new();
    let missing: Vec<String> = found
        .iter()
        .filter(|(flag, _)| seen.insert(flag.clone()) && !options.iter().any(|t| has_word(t, flag)))
        .map(|(flag, at)| format!("{flag} (of `{at}`)"))
        .collect();
    assert!(
        missing.is_empty(),
        "flags missing from the OPTIONS section of {MAN}: {}\n\
         Add a .TP entry for each, written as typed in roff (\\-x, \\-\\-long\\-name).",
        missing.join(", ")
    );
}

#[test]
fn every_command_and_alias_is_in_the_commands_section() {
    let page = read(MAN);
    let entries = tags(&section(&page, "COMMANDS"));
    let first_words: BTreeSet<&str> = entries.iter().filter_map(|t| t.split_whitespace().next()).collect();
    let mut missing = Vec::new();
    for sub in command().get_subcommands() {
        let names = std::iter::once(sub.get_name()).chain(sub.get_visible_aliases());
        for name in names {
            if !first_words.contains(name) {
                missing.push(name.to_string());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "commands missing from the COMMANDS section of {MAN}: {}\n\
         Each command and each visible alias needs a .TP entry whose tag starts with its name.",
        missing.join(", ")
    );
}

/// Environment variables the code reads: clap `env = "..."` and
/// `env::var("...")` / `env::var_os("...")` in src/.
fn env_vars_read_by_src() -> BTreeSet<String> {
    let mut vars: BTreeSet<String> =
        command().get_arguments().filter_map(|a| a.get_env()).map(|e| e.to_string_lossy().into_owned()).collect();
    let mut stack = vec![root().join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let p = entry.expect("dir entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") && p.file_name().is_some_and(|n| n != "tests.rs") {
                // `tests.rs` modules are unit tests: their knobs (such as
                // PROPTEST_CASES) are for developers, in the README.
                let text = std::fs::read_to_string(&p).expect("source file");
                for pat in ["var(\"", "var_os(\"", "env = \""] {
                    for (i, _) in text.match_indices(pat) {
                        let rest = &text[i + pat.len()..];
                        let name: String = rest
                            .chars()
                            .take_while(|c| c.is_ascii_uppercase() || *c == '_' || c.is_ascii_digit())
                            .collect();
                        if rest[name.len()..].starts_with('"') && !name.is_empty() && !name.starts_with("CARGO") {
                            vars.insert(name);
                        }
                    }
                }
            }
        }
    }
    vars
}

#[test]
fn every_environment_variable_is_in_the_environment_section() {
    let page = read(MAN);
    let entries = tags(&section(&page, "ENVIRONMENT"));
    let vars = env_vars_read_by_src();
    for must in ["HAMMER_RSH", "HAMMER_MIRROR_LOCK_WAIT", "SSH_ORIGINAL_COMMAND"] {
        assert!(vars.contains(must), "src/ no longer reads {must}? found {vars:?}; update this test and {MAN}");
    }
    let missing: Vec<&String> = vars.iter().filter(|v| !entries.iter().any(|t| t.trim() == v.as_str())).collect();
    assert!(missing.is_empty(), "environment variables missing from the ENVIRONMENT section of {MAN}: {missing:?}");
}

#[test]
fn every_exit_status_is_in_the_exit_status_section() {
    let page = read(MAN);
    let entries = tags(&section(&page, "EXIT STATUS"));
    for s in [Status::Success, Status::Failure, Status::Usage, Status::Refused, Status::Interrupted, Status::Terminated]
    {
        let code = (s as u8).to_string();
        assert!(
            entries.iter().any(|t| t.trim() == code),
            "exit status {code} ({s:?}) is missing from EXIT STATUS in {MAN}"
        );
    }
}

#[test]
fn the_page_has_the_usual_sections() {
    let page = read(MAN);
    let names: Vec<String> = sections(&page).into_iter().map(|(n, _)| n).collect();
    for want in [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "COMMANDS",
        "OPTIONS",
        "ENVIRONMENT",
        "EXIT STATUS",
        "FILES",
        "EXAMPLES",
        "SEE ALSO",
    ] {
        assert!(names.iter().any(|n| n == want), "{MAN} has no .SH {want} section (has {names:?})");
    }
}

#[test]
fn the_page_renders_without_groff_warnings() {
    let path = root().join(MAN);
    let out = match Command::new("groff").args(["-ww", "-man", "-z"]).arg(&path).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "skipped: groff is not installed (apt-get install groff-base); {MAN} was not checked for warnings"
            );
            return;
        }
        Err(e) => panic!("running groff: {e}"),
    };
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success() && text.trim().is_empty(),
        "groff -ww -man -z {MAN} ({}) complained:\n{text}",
        out.status
    );
}

/// The block between the markers, without its code fence.
fn readme_usage(readme: &str) -> String {
    let start = "<!-- usage:start -->";
    let end = "<!-- usage:end -->";
    let a = readme.find(start).unwrap_or_else(|| panic!("README.md has no {start} marker")) + start.len();
    let b = readme[a..].find(end).unwrap_or_else(|| panic!("README.md has no {end} marker after {start}")) + a;
    let mut lines: Vec<&str> = readme[a..b].trim_matches('\n').lines().collect();
    if lines.first().is_some_and(|l| l.starts_with("```")) {
        lines.remove(0);
    }
    if lines.last().is_some_and(|l| l.starts_with("```")) {
        lines.pop();
    }
    lines.join("\n")
}

fn help_output(bin: &Path) -> String {
    let mut cmd = Command::new(bin);
    // The help shows [env: HAMMER_RSH=<value>]; the block is made without it.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("HAMMER_") {
            cmd.env_remove(&k);
        }
    }
    let out = cmd.env_remove("COLUMNS").arg("--help").output().expect("run hammer-mirror --help");
    assert!(out.status.success(), "hammer-mirror --help failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8 help")
}

#[test]
fn readme_usage_block_is_the_help_output() {
    let readme = read("README.md");
    let want = help_output(Path::new(env!("CARGO_BIN_EXE_hammer-mirror")));
    let want: Vec<&str> = want.trim_end().lines().map(str::trim_end).collect();
    let have = readme_usage(&readme);
    let have: Vec<&str> = have.lines().map(str::trim_end).collect();
    if have != want {
        let at = have.iter().zip(&want).position(|(a, b)| a != b).unwrap_or(have.len().min(want.len()));
        panic!(
            "README.md's usage block differs from `hammer-mirror --help` at line {}:\n  README: {:?}\n  --help: {:?}\n\
             Run scripts/update-readme-usage.sh to regenerate it.",
            at + 1,
            have.get(at).copied().unwrap_or("<end>"),
            want.get(at).copied().unwrap_or("<end>")
        );
    }
}

#[test]
fn ci_runs_the_readme_test_command() {
    let readme = read("README.md");
    let ci = read(".ci/run");
    assert!(
        readme.contains("cargo test --locked"),
        "README.md no longer gives `cargo test --locked` as the test command"
    );
    assert!(
        ci.lines().any(|l| l.trim() == "cargo test --locked"),
        ".ci/run must run exactly README.md's test command, `cargo test --locked`"
    );
}

#[test]
fn helpers_understand_roff() {
    assert_eq!(plain(".BR \\-y \", \" \\-\\-yes"), "-y, --yes");
    assert_eq!(plain("\\fBread\\-stream\\fR \\fIpfs\\fR"), "read-stream pfs");
    assert_eq!(plain(".BI \\-\\-ssh \" command\""), "--ssh command");
    assert_eq!(plain(".B HAMMER_RSH"), "HAMMER_RSH");
    assert!(has_word("-v", "-v") && !has_word("-vv", "-v") && !has_word("--verbose", "-v"));
    assert!(has_word("-X, -C", "-C") && !has_word("--max-retry-delay", "--retry-delay"));
    assert_eq!(tags(&[".TP", ".B \\-X", ".PD 0", ".TP", ".B \\-C", ".PD", "text"]), ["-X", "-C"]);
    let readme = "x\n<!-- usage:start -->\n```text\nUsage: a\n\nb\n```\n<!-- usage:end -->\n";
    assert_eq!(readme_usage(readme), "Usage: a\n\nb");
}
