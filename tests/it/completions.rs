//! Shell completion and help as a user meets them: the generated scripts completing in real shells
//! (bash; zsh and fish where installed), `completions --help`, `help --help`, and every command's help
//! saying what its PFS operands are.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use clap::CommandFactory;

use crate::util::{Env, fails, ok, show, stdout};

/// The script for `shell`, written into the test dir.
fn script(e: &Env, shell: &str) -> std::path::PathBuf {
    let o = e.run(["completions", shell]);
    ok(&o);
    let p = e.path(&format!("completion.{shell}"));
    std::fs::write(&p, &o.stdout).unwrap();
    p
}

fn installed(shell: &str) -> bool {
    let there = Command::new(shell).args(["-c", "exit 0"]).stdin(Stdio::null()).status().is_ok_and(|s| s.success());
    if !there {
        eprintln!("skipped for {shell}: {shell} is not installed (.ci/run installs it)");
    }
    there
}

/// What bash offers for the command line `words` (the last one being
/// completed), by the function the script registers with `complete -F`.
fn bash_complete(e: &Env, words: &[&str]) -> BTreeSet<String> {
    let words_q: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let cword = words.len() - 1;
    let prev = if cword > 0 { words[cword - 1] } else { "" };
    let program = format!(
        r#"source {script}
spec=$(complete -p hammer-mirror) || exit 3
fn=$(printf '%s\n' "$spec" | sed -n 's/.*-F \([^ ]*\).*/\1/p')
[ -n "$fn" ] || {{ echo "no -F function in: $spec" >&2; exit 4; }}
COMP_WORDS=({words})
COMP_CWORD={cword}
COMP_LINE="${{COMP_WORDS[*]}}"
COMP_POINT=${{#COMP_LINE}}
"$fn" hammer-mirror '{cur}' '{prev}'
printf '%s\n' "${{COMPREPLY[@]}}""#,
        script = script(e, "bash").display(),
        words = words_q.join(" "),
        cur = words[cword],
    );
    let o = Command::new("bash").args(["--norc", "--noprofile", "-c", &program]).output().unwrap();
    ok(&o);
    stdout(&o).lines().filter(|l| !l.is_empty()).map(String::from).collect()
}

#[test]
fn bash_completes_options_after_a_command_and_command_names() {
    let e = Env::new();
    for cmd in ["copy", "mirror-copy", "stream", "pfs-status"] {
        let got = bash_complete(&e, &["hammer-mirror", cmd, "--"]);
        for want in ["--yes", "--ssh", "--remote-cmd", "--json", "--help"] {
            assert!(got.contains(want), "hammer-mirror {cmd} --<TAB> offers {got:?}, not {want}");
        }
        assert!(got.iter().all(|w| w.starts_with("--")), "{cmd}: {got:?}");
    }
    let got = bash_complete(&e, &["hammer-mirror", "copy", "-"]);
    assert!(got.contains("-y") && got.contains("-o") && got.contains("--yes"), "copy -<TAB>: {got:?}");
    let got = bash_complete(&e, &["hammer-mirror", "export", "--"]);
    assert!(got.contains("--as-of"), "export --<TAB>: {got:?}");
    assert_eq!(
        bash_complete(&e, &["hammer-mirror", "co"]),
        BTreeSet::from(["compact".into(), "completions".into(), "config".into(), "copy".into()])
    );
    let got = bash_complete(&e, &["hammer-mirror", "pfs-"]);
    let want: BTreeSet<String> =
        ["pfs-destroy", "pfs-downgrade", "pfs-master", "pfs-slave", "pfs-status", "pfs-update", "pfs-upgrade"]
            .map(String::from)
            .into();
    assert_eq!(got, want);
    let got = bash_complete(&e, &["hammer-mirror", "completions", ""]);
    let shells: BTreeSet<String> = ["bash", "elvish", "fish", "powershell", "zsh"].map(String::from).into();
    assert!(got.is_superset(&shells), "completions <TAB>: {got:?}");
    assert_eq!(bash_complete(&e, &["hammer-mirror", "completions", "b"]), ["bash".to_string()].into());
    assert_eq!(
        bash_complete(&e, &["hammer-mirror", "help", "pfs-u"]),
        ["pfs-update", "pfs-upgrade"].map(String::from).into()
    );
    assert_eq!(
        bash_complete(&e, &["hammer-mirror", "--progress", ""]),
        ["always", "auto", "never"].map(String::from).into()
    );
}

#[test]
fn the_zsh_script_loads_and_registers_its_function() {
    let e = Env::new();
    if !installed("zsh") {
        return;
    }
    let program = format!(
        "autoload -U compinit && compinit -u -d {dump}; source {script} && print -r -- $_comps[hammer-mirror]",
        dump = e.path("zcompdump").display(),
        script = script(&e, "zsh").display()
    );
    let o = Command::new("zsh").args(["-f", "-c", &program]).env("HOME", e.dir.path()).output().unwrap();
    ok(&o);
    assert!(o.stderr.is_empty(), "zsh complained:\n{}", show(&o));
    assert_eq!(stdout(&o).trim(), "_hammer-mirror", "{}", show(&o));
}

#[test]
fn the_fish_script_loads_and_completes() {
    let e = Env::new();
    if !installed("fish") {
        return;
    }
    let program = format!(
        "source {} && complete -C 'hammer-mirror copy --' && complete -C 'hammer-mirror co'",
        script(&e, "fish").display()
    );
    let o = Command::new("fish").args(["--no-config", "-c", &program]).env("HOME", e.dir.path()).output().unwrap();
    ok(&o);
    assert!(o.stderr.is_empty(), "fish complained:\n{}", show(&o));
    let out = stdout(&o);
    let got: BTreeSet<&str> = out.lines().map(|l| l.split('\t').next().unwrap()).collect();
    for want in ["--yes", "--ssh", "--help", "copy", "completions"] {
        assert!(got.contains(want), "fish offers {got:?}, not {want}");
    }
}

#[test]
fn completions_help_lists_the_five_shells() {
    let e = Env::new();
    for flag in ["-h", "--help"] {
        let o = e.run(["completions", flag]);
        ok(&o);
        let h = stdout(&o);
        assert!(h.contains("(bash, zsh, fish, elvish or powershell)"), "completions {flag}:\n{h}");
        assert!(h.contains("[possible values: bash, elvish, fish, powershell, zsh]"), "completions {flag}:\n{h}");
    }
}

#[test]
fn a_closed_reader_ends_completions_quietly() {
    let e = Env::new();
    let (read_end, write_end) = nix::unistd::pipe().unwrap();
    drop(read_end);
    let o = e.cmd().args(["completions", "bash"]).stdout(std::fs::File::from(write_end)).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(o.stderr.is_empty(), "{}", show(&o));
}

#[test]
fn help_describes_itself_and_every_command() {
    let e = Env::new();
    let o = e.run(["help", "--help"]);
    ok(&o);
    assert!(stdout(&o).starts_with("Print this message or the help of the given command"), "{}", show(&o));
    assert!(stdout(&o).contains("Usage: hammer-mirror help [OPTIONS] [COMMAND]"), "{}", show(&o));
    assert_eq!(stdout(&e.run(["help"])), stdout(&e.run(["--help"])));
    for cmd in ["copy", "mirror-read", "help", "completions"] {
        let o = e.run(["help", cmd]);
        ok(&o);
        assert_eq!(stdout(&o), stdout(&e.run([cmd, "--help"])), "help {cmd}");
    }
    fails(&e.run(["help", "frobnicate"]), 2, "invalid value 'frobnicate' for '[COMMAND]'");
}

/// The lines `--help` shows under `<NAME>` in its Arguments section.
fn argument_help(help: &str, value_name: &str) -> Option<String> {
    let head = format!("  <{value_name}>");
    let head_dots = format!("  <{value_name}>...");
    let mut lines = help.lines().skip_while(|l| l.trim_end() != head && l.trim_end() != head_dots);
    lines.next()?;
    Some(lines.take_while(|l| l.starts_with("          ") || l.trim().is_empty()).collect::<Vec<_>>().join("\n"))
}

#[test]
fn every_help_says_what_its_pfs_operands_are() {
    let e = Env::new();
    let cli = hammer_mirror::cli::Cli::command();
    let remote_ok = ["copy", "stream", "verify"];
    let mut seen = 0;
    for sub in cli.get_subcommands() {
        for arg in sub.get_positionals() {
            let id = arg.get_id().as_str();
            if !["pfs", "source", "target", "targets", "a", "b"].contains(&id) {
                continue;
            }
            seen += 1;
            let name = arg.get_value_names().map_or(id.to_uppercase(), |v| v[0].to_string());
            let o = e.run([sub.get_name(), "--help"]);
            ok(&o);
            let text = argument_help(&stdout(&o), &name)
                .unwrap_or_else(|| panic!("{} --help has no <{name}>:\n{}", sub.get_name(), stdout(&o)));
            assert!(
                text.contains("hammer-mirror store file"),
                "{} <{name}> does not say what a PFS is:\n{text}",
                sub.get_name()
            );
            assert!(text.contains("HAMMER PFS"), "{} <{name}> says nothing of HAMMER PFSs:\n{text}", sub.get_name());
            if remote_ok.contains(&sub.get_name()) {
                for form in ["[user@]host:path", "ssh://[user@]host[:port]/path", "host:~/pfs"] {
                    assert!(text.contains(form), "{} <{name}> lacks the remote form {form}:\n{text}", sub.get_name());
                }
            }
        }
    }
    assert!(seen >= 17, "only {seen} PFS operands found; the test no longer sees them");
}
