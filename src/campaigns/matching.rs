//! Which findings a campaign covers. One rule, in two spellings that must
//! agree: [`MATCH_SQL`] for queries (counts now, notification drafting
//! later) and [`MatchRule::matches`] for code and its unit tests.
//!
//! A finding matches a campaign when
//! 1. it is open (a resolved finding needs no advisory),
//! 2. its state is one of the campaign's `states` (by default `vulnerable`
//!    and `compromised`; `unknown` adds mere exposure), and
//! 3. its check is one of the campaign's `checks`, or it shares a CVE with
//!    the campaign's `cves` (a scanner that names the CVE but uses its own
//!    check id is still covered), or it is a compromise found by a check
//!    the check catalogue ties to one of the campaign's CVEs (a web shell
//!    on Exchange names no CVE, yet it is what ProxyLogon led to:
//!    `compromise_checks`, kept with the campaign).

use super::model::MatchState;

/// Points 2 and 3 of the rule, shared by both SQL spellings below.
macro_rules! covers {
    () => {
        "f.state = ANY (c.states) AND (f.check_id = ANY (c.checks) OR f.cves && c.cves \
         OR (f.state = 'compromised' AND f.check_id = ANY (c.compromise_checks)))"
    };
}

/// The rule as a SQL condition over a campaign row aliased `c` and a
/// finding row aliased `f`, e.g.
///
/// ```sql
/// SELECT f.id FROM campaigns c JOIN findings f ON <MATCH_SQL> WHERE c.id = $1
/// ```
///
/// Findings have no index for it: a campaign's findings are read by a
/// scan of the open ones, which is what drafting does once per campaign
/// anyway, and an index on `findings` would slow down every ingest batch.
pub const MATCH_SQL: &str = concat!("(f.status = 'open' AND ", covers!(), ")");

/// The rule but its first point: the findings a campaign covers whether
/// open or resolved (what its remediation curve counts down).
pub const COVERS_SQL: &str = concat!("(", covers!(), ")");

/// The rule in Rust, over a campaign's matching fields.
#[derive(Debug, Clone, Copy)]
pub struct MatchRule<'a> {
    pub checks: &'a [String],
    /// Upper case, as stored.
    pub cves: &'a [String],
    pub states: &'a [MatchState],
    /// `crate::checks::compromise_checks` of `cves`.
    pub compromise_checks: &'a [String],
}

impl MatchRule<'_> {
    /// `status` and `state` as the findings table spells them (`open`,
    /// `vulnerable`, …); `cves` upper case, as ingest stores them.
    pub fn matches(&self, status: &str, state: &str, check: &str, cves: &[String]) -> bool {
        status == "open"
            && self.states.iter().any(|s| s.as_str() == state)
            && (self.checks.iter().any(|c| c == check)
                || cves.iter().any(|cve| self.cves.contains(cve))
                || (state == "compromised" && self.compromise_checks.iter().any(|c| c == check)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn rule<'a>(
        checks: &'a [String],
        cves: &'a [String],
        states: &'a [MatchState],
    ) -> MatchRule<'a> {
        MatchRule {
            checks,
            cves,
            states,
            compromise_checks: &[],
        }
    }

    #[test]
    fn a_listed_check_matches_in_a_covered_state() {
        let checks = strings(&["scan_exchange"]);
        let states = [MatchState::Vulnerable, MatchState::Compromised];
        let r = rule(&checks, &[], &states);
        assert!(r.matches("open", "vulnerable", "scan_exchange", &[]));
        assert!(r.matches("open", "compromised", "scan_exchange", &[]));
        assert!(!r.matches("open", "vulnerable", "scan_http", &[]));
    }

    #[test]
    fn a_shared_cve_matches_whatever_the_check() {
        let cves = strings(&["CVE-2021-26855", "CVE-2021-27065"]);
        let states = [MatchState::Vulnerable];
        let r = rule(&[], &cves, &states);
        assert!(r.matches(
            "open",
            "vulnerable",
            "my-scanner",
            &strings(&["CVE-2021-27065"])
        ));
        assert!(!r.matches(
            "open",
            "vulnerable",
            "my-scanner",
            &strings(&["CVE-2020-0796"])
        ));
        assert!(!r.matches("open", "vulnerable", "my-scanner", &[]));
    }

    #[test]
    fn a_campaign_on_the_cves_reaches_the_compromises_they_led_to() {
        let cves = strings(&["CVE-2021-26855"]);
        let states = [MatchState::Vulnerable, MatchState::Compromised];
        let shells = crate::checks::compromise_checks(&cves);
        let r = MatchRule {
            checks: &[],
            cves: &cves,
            states: &states,
            compromise_checks: &shells,
        };
        assert!(r.matches("open", "compromised", "scan_exchange", &[]));
        // Not a vulnerability of another CVE found by the same check.
        assert!(!r.matches(
            "open",
            "vulnerable",
            "scan_exchange",
            &strings(&["CVE-2021-34473"])
        ));
    }

    #[test]
    fn only_open_findings_in_covered_states_match() {
        let checks = strings(&["exchange-proxylogon"]);
        let states = [MatchState::Vulnerable, MatchState::Compromised];
        let r = rule(&checks, &[], &states);
        assert!(!r.matches("resolved", "vulnerable", "exchange-proxylogon", &[]));
        assert!(!r.matches("open", "unknown", "exchange-proxylogon", &[]));
        assert!(!r.matches("open", "not_vulnerable", "exchange-proxylogon", &[]));
        let exposure = [MatchState::Unknown];
        let r = rule(&checks, &[], &exposure);
        assert!(r.matches("open", "unknown", "exchange-proxylogon", &[]));
    }
}
