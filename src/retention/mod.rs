//! Retention rules: the `--keep` grammar (`24h:all,48h:1h,30d:1d,1y:30d`) and which TIDs a rule set keeps; pure.
//!
//! A rule set is a comma-separated list of `AGE:EVERY` rules, ages strictly
//! increasing. A duration is a positive integer and a unit: `s` seconds,
//! `m` minutes, `h` hours, `d` days, `w` weeks, `y` years of 365 days.
//! `EVERY` is a duration or `all`. A TID whose time is younger than the
//! first rule's AGE falls under the first rule, one younger than the second
//! (and not the first) under the second, and so on; one older than the last
//! AGE is kept by no rule.
//!
//! * `AGE:all` keeps every TID of its window;
//! * `AGE:EVERY` keeps, of the TIDs of its window, the newest of each
//!   EVERY-long period counted from the Unix epoch (periods do not move as
//!   time passes, so a later prune with the same rules picks the same TIDs
//!   again, and a TID it picks as it ages into a coarser rule was already
//!   kept by the finer one when the periods nest).
//!
//! Only candidates, TIDs whose state is still whole, are ever picked (the
//! store says which: see `store::prune`). Snapshots, the current state, the
//! targets' acknowledged TIDs and `prune-min` are kept besides the rules.

pub mod cmd;

use std::collections::HashMap;
use std::fmt;

/// One `AGE:EVERY` rule (seconds; `every` None is `all`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    pub age: u64,
    pub every: Option<u64>,
}

/// A parsed `--keep` value.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Rules(pub Vec<Rule>);

/// The most rules one `--keep` takes.
pub const MAX_RULES: usize = 64;

/// The grammar, as `--help` and the error messages state it.
pub const GRAMMAR: &str = "AGE:EVERY[,AGE:EVERY...], ages increasing; a duration is a number and s, m, h, d, w or y \
                           (365 d); EVERY is a duration or 'all' (e.g. 24h:all,48h:1h,30d:1d,1y:30d)";

const UNITS: [(char, u64); 6] =
    [('s', 1), ('m', 60), ('h', 3600), ('d', 86_400), ('w', 7 * 86_400), ('y', 365 * 86_400)];

/// Parses one duration token (`30d`); the error names the token.
pub fn parse_duration(tok: &str) -> Result<u64, String> {
    let bad = |why: &str| format!("'{tok}': {why}");
    let unit = tok.chars().last().ok_or_else(|| "an empty duration".to_string())?;
    let Some(&(_, mul)) = UNITS.iter().find(|(u, _)| *u == unit) else {
        return Err(bad("a duration ends in s, m, h, d, w or y"));
    };
    let digits = &tok[..tok.len() - unit.len_utf8()];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("a duration is a number followed by its unit"));
    }
    let n: u64 = digits.parse().map_err(|_| bad("the number is too large"))?;
    if n == 0 {
        return Err(bad("a duration must be at least 1"));
    }
    n.checked_mul(mul).filter(|&s| s <= 1000 * 365 * 86_400).ok_or_else(|| bad("longer than 1000 years"))
}

/// Formats seconds in the largest unit that divides them.
pub fn format_duration(secs: u64) -> String {
    for &(u, mul) in UNITS.iter().rev() {
        if secs.is_multiple_of(mul) {
            return format!("{}{u}", secs / mul);
        }
    }
    format!("{secs}s")
}

impl Rules {
    /// Parses a `--keep` value. The error names the token at fault and says
    /// what was expected.
    pub fn parse(s: &str) -> Result<Rules, String> {
        if s.trim().is_empty() {
            return Err(format!("an empty rule list (expected {GRAMMAR})"));
        }
        let mut rules: Vec<Rule> = Vec::new();
        for tok in s.split(',') {
            let in_rule = |e: String| format!("rule '{tok}': {e} (expected {GRAMMAR})");
            let (age, every) = tok.split_once(':').ok_or_else(|| in_rule("no ':' between AGE and EVERY".into()))?;
            let age = parse_duration(age).map_err(in_rule)?;
            let every = match every {
                "all" => None,
                e => Some(parse_duration(e).map_err(in_rule)?),
            };
            if let Some(prev) = rules.last()
                && age <= prev.age
            {
                return Err(in_rule(format!(
                    "its age is not greater than the previous rule's {}",
                    format_duration(prev.age)
                )));
            }
            if rules.len() == MAX_RULES {
                return Err(in_rule(format!("more than {MAX_RULES} rules")));
            }
            rules.push(Rule { age, every });
        }
        Ok(Rules(rules))
    }

    /// Which of `candidates` ((TID, time in seconds), any order) the rules
    /// keep as of `now`: a flag per candidate. A time in the future (a clock
    /// that went back) is kept.
    pub fn pick(&self, now: u64, candidates: &[(u64, u64)]) -> Vec<bool> {
        let mut keep = vec![false; candidates.len()];
        // (rule, period) → the index of the newest candidate in it.
        let mut newest: HashMap<(usize, u64), usize> = HashMap::new();
        for (i, &(tid, time)) in candidates.iter().enumerate() {
            if time > now {
                keep[i] = true;
                continue;
            }
            let age = now - time;
            let Some(r) = self.0.iter().position(|r| age < r.age) else { continue };
            match self.0[r].every {
                None => keep[i] = true,
                Some(every) => {
                    let slot = newest.entry((r, time / every)).or_insert(i);
                    if candidates[*slot].0 < tid {
                        *slot = i;
                    }
                }
            }
        }
        for i in newest.into_values() {
            keep[i] = true;
        }
        keep
    }
}

impl fmt::Display for Rules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            let every = r.every.map_or_else(|| "all".to_string(), format_duration);
            write!(f, "{}{}:{every}", if i > 0 { "," } else { "" }, format_duration(r.age))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const H: u64 = 3600;
    const D: u64 = 86_400;

    #[test]
    fn the_example_parses() {
        let r = Rules::parse("24h:all,48h:1h,30d:1d,1y:30d").unwrap();
        assert_eq!(
            r.0,
            [
                Rule { age: 24 * H, every: None },
                Rule { age: 48 * H, every: Some(H) },
                Rule { age: 30 * D, every: Some(D) },
                Rule { age: 365 * D, every: Some(30 * D) },
            ]
        );
        assert_eq!(r.to_string(), "1d:all,2d:1h,30d:1d,1y:30d");
        assert_eq!(Rules::parse("90m:10s,2w:1d").unwrap().0[1], Rule { age: 14 * D, every: Some(D) });
    }

    #[test]
    fn a_malformed_rule_names_its_token() {
        let err = |s: &str| Rules::parse(s).unwrap_err();
        assert!(err("24h:all,48h").starts_with("rule '48h': no ':' between AGE and EVERY"), "{}", err("24h:all,48h"));
        assert!(err("24x:all").starts_with("rule '24x:all': '24x': a duration ends in s, m, h, d, w or y"));
        assert!(err("24h:al").contains("'al': a duration ends in"), "{}", err("24h:al"));
        assert!(err("h:all").contains("'h': a duration is a number"));
        assert!(err("0h:all").contains("'0h': a duration must be at least 1"));
        assert!(err("-1h:all").contains("'-1h'"));
        assert!(
            err("48h:1h,24h:all").starts_with("rule '24h:all': its age is not greater than the previous rule's 2d")
        );
        assert!(err("1d:all,24h:1h").contains("not greater"), "equal ages are refused");
        assert!(err("99999999999999999999y:all").contains("too large"));
        assert!(err("2000y:all").contains("longer than 1000 years"));
        assert!(err("").starts_with("an empty rule list"));
        assert!(err("1d:all,").starts_with("rule '': "), "{}", err("1d:all,"));
        assert!(err("1d:x").ends_with(&format!("(expected {GRAMMAR})")));
    }

    #[test]
    fn windows_keep_all_or_the_newest_of_each_period() {
        let now = 100 * D;
        let r = Rules::parse("1h:all,1d:1h,3d:1d").unwrap();
        // (tid, time): tids grow with time.
        let c: Vec<(u64, u64)> = [
            now - 10,          // 0: all
            now - 3000,        // 1: all
            now - 2 * H - 100, // 2: hourly, same hour as 3, older
            now - 2 * H - 50,  // 3: hourly, newest of its hour
            now - 5 * H,       // 4: hourly, alone in its hour
            now - 2 * D,       // 5: daily
            now - 2 * D + 10,  // 6: daily, newest of that day
            now - 10 * D,      // 7: older than every rule
            now + 60,          // 8: the future
        ]
        .iter()
        .map(|&t| (t * 10, t))
        .collect();
        assert_eq!(r.pick(now, &c), [true, true, false, true, true, false, true, false, true]);
        assert_eq!(Rules::default().pick(now, &c), [false, false, false, false, false, false, false, false, true]);
    }

    fn rules() -> impl Strategy<Value = Rules> {
        prop::collection::vec((1u64..50, prop::option::of(1u64..5000)), 1..6).prop_map(|v| {
            let mut age = 0;
            Rules(
                v.into_iter()
                    .map(|(step, every)| {
                        age += step * 600;
                        Rule { age, every }
                    })
                    .collect(),
            )
        })
    }

    proptest! {
        #[test]
        fn rules_round_trip_through_their_text(r in rules()) {
            prop_assert_eq!(Rules::parse(&r.to_string()).unwrap(), r);
        }

        #[test]
        fn garbage_is_an_error_not_a_panic(s in "[0-9a-z:,]{0,20}") {
            let _ = Rules::parse(&s);
        }

        #[test]
        fn each_period_keeps_exactly_its_newest(r in rules(), times in prop::collection::vec(0u64..200_000, 0..60)) {
            let now = 200_000;
            let mut times = times;
            times.sort();
            // Distinct increasing TIDs.
            let c: Vec<(u64, u64)> = times.iter().enumerate().map(|(i, &t)| (t * 100 + i as u64, t)).collect();
            let keep = r.pick(now, &c);
            for (i, &(tid, time)) in c.iter().enumerate() {
                let age = now - time;
                match r.0.iter().position(|x| age < x.age) {
                    None => prop_assert!(!keep[i]),
                    Some(k) => match r.0[k].every {
                        None => prop_assert!(keep[i]),
                        Some(e) => {
                            let newest = c.iter().filter(|&&(_, t)| {
                                r.0.iter().position(|x| now - t < x.age) == Some(k) && t / e == time / e
                            }).map(|&(id, _)| id).max().unwrap();
                            prop_assert_eq!(keep[i], newest == tid);
                        }
                    },
                }
            }
            // Picking again from what was kept keeps all of it.
            let kept: Vec<(u64, u64)> = c.iter().zip(&keep).filter(|(_, k)| **k).map(|(x, _)| *x).collect();
            prop_assert!(r.pick(now, &kept).iter().all(|&k| k));
        }
    }
}
