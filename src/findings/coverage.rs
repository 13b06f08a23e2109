//! Which finished scan runs covered a finding key: runs with a scope whose
//! checks include the key's check and whose scope holds its address. A run
//! that covered a key and stored no observation of it is an absence, one of
//! the inputs a finding is folded from (`fold::Input::Absence`).
//!
//! Read once per batch (finishing a run needs every batch of it to have
//! committed, and holds the findings writer lock, so no run finishes while
//! a batch folds): runs are few next to observations, and their scopes are
//! kept aggregated and sorted so a lookup is a binary search.

use std::collections::HashMap;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use sqlx::PgConnection;

struct Run {
    id: i64,
    finished_at: DateTime<Utc>,
    /// Disjoint networks, sorted by address.
    scope: Vec<IpNet>,
}

impl Run {
    fn covers(&self, ip: IpAddr) -> bool {
        let after = self.scope.partition_point(|n| n.network() <= ip);
        after
            .checked_sub(1)
            .is_some_and(|i| self.scope[i].contains(&ip))
    }
}

/// Finished runs with a scope, by check, newest first.
#[derive(Default)]
pub struct Coverage {
    by_check: HashMap<String, Vec<Run>>,
}

impl Coverage {
    pub async fn load(conn: &mut PgConnection) -> Result<Self, sqlx::Error> {
        type RunRow = (i64, DateTime<Utc>, Vec<String>, Vec<IpNet>);
        let rows: Vec<RunRow> = sqlx::query_as(
            "SELECT id, finished_at, checks, scope FROM scan_runs
              WHERE finished_at IS NOT NULL AND cardinality(scope) > 0 AND cardinality(checks) > 0
              ORDER BY finished_at DESC, id DESC",
        )
        .fetch_all(conn)
        .await?;
        let mut by_check: HashMap<String, Vec<Run>> = HashMap::new();
        for (id, finished_at, checks, scope) in rows {
            let mut scope = IpNet::aggregate(&scope);
            scope.sort_by_key(IpNet::network);
            for check in checks {
                by_check.entry(check).or_default().push(Run {
                    id,
                    finished_at,
                    scope: scope.clone(),
                });
            }
        }
        Ok(Self { by_check })
    }

    /// The finished runs that covered (`ip`, `check`): (run id, finished at),
    /// newest first.
    pub fn runs<'a>(
        &'a self,
        ip: IpAddr,
        check: &str,
    ) -> impl Iterator<Item = (i64, DateTime<Utc>)> + 'a {
        self.by_check
            .get(check)
            .into_iter()
            .flatten()
            .filter(move |r| r.covers(ip))
            .map(|r| (r.id, r.finished_at))
    }

    /// When the latest covering run finished, if that was after `after`.
    pub fn latest_after(
        &self,
        ip: IpAddr,
        check: &str,
        after: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        self.by_check
            .get(check)?
            .iter()
            .take_while(|r| r.finished_at > after)
            .find(|r| r.covers(ip))
            .map(|r| r.finished_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn covers_by_check_and_scope_newest_first() {
        let nets = |list: &[&str]| {
            let mut scope = IpNet::aggregate(
                &list
                    .iter()
                    .map(|n| n.parse().unwrap())
                    .collect::<Vec<IpNet>>(),
            );
            scope.sort_by_key(IpNet::network);
            scope
        };
        let mut coverage = Coverage::default();
        coverage.by_check.insert(
            "exchange".to_owned(),
            vec![
                Run {
                    id: 2,
                    finished_at: at("2021-03-10T00:00:00Z"),
                    scope: nets(&["198.51.100.0/24", "192.0.2.0/25", "192.0.2.128/25"]),
                },
                Run {
                    id: 1,
                    finished_at: at("2021-03-08T00:00:00Z"),
                    scope: nets(&["2001:db8::/32", "192.0.2.0/24"]),
                },
            ],
        );
        let ip: IpAddr = "192.0.2.200".parse().unwrap();
        let runs: Vec<i64> = coverage.runs(ip, "exchange").map(|(id, _)| id).collect();
        assert_eq!(runs, [2, 1]);
        assert_eq!(coverage.runs(ip, "rdp").count(), 0);
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(coverage.runs(v6, "exchange").count(), 1);
        let outside: IpAddr = "203.0.113.1".parse().unwrap();
        assert_eq!(coverage.runs(outside, "exchange").count(), 0);
        assert_eq!(
            coverage.latest_after(v6, "exchange", at("2021-03-01T00:00:00Z")),
            Some(at("2021-03-08T00:00:00Z"))
        );
        assert_eq!(
            coverage.latest_after(v6, "exchange", at("2021-03-09T00:00:00Z")),
            None
        );
    }
}
