//! The overview: the situation at a glance — open findings and who has
//! them (as the last [`super::stats`] refresh counted them), and live from
//! the tables the API serves: the notifications by status, what waits for
//! an analyst (escalations, the no-contact queue) and what is failing
//! (deliveries).

use sqlx::PgConnection;

/// Notified → opened → acknowledged → resolved: how far notifications got.
#[derive(Debug, Default, sqlx::FromRow)]
pub struct Funnel {
    pub notified: i64,
    pub opened: i64,
    pub acknowledged: i64,
    pub resolved: i64,
}

/// [`Funnel`]'s counts over the `notifications` rows a query reads.
const FUNNEL_COUNTS: &str = "count(*) FILTER (WHERE mailed_at IS NOT NULL) AS notified,
        count(*) FILTER (WHERE first_opened_at IS NOT NULL) AS opened,
        count(*) FILTER (WHERE acknowledged_at IS NOT NULL) AS acknowledged,
        count(*) FILTER (WHERE status = 'resolved') AS resolved";

impl Funnel {
    /// The steps as bars, each after the first with its share of those
    /// notified.
    pub fn bars(&self) -> super::stats::Bars {
        let of = |n: i64| {
            if self.notified == 0 {
                String::new()
            } else {
                format!("{} %", n * 100 / self.notified)
            }
        };
        super::stats::Bars::new(vec![
            ("Notified".to_owned(), self.notified, String::new()),
            ("Opened".to_owned(), self.opened, of(self.opened)),
            (
                "Acknowledged".to_owned(),
                self.acknowledged,
                of(self.acknowledged),
            ),
            ("Resolved".to_owned(), self.resolved, of(self.resolved)),
        ])
    }
}

/// One campaign's funnel (an index range of its notifications).
pub async fn campaign_funnel(
    conn: &mut PgConnection,
    campaign_id: i64,
) -> Result<Funnel, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {FUNNEL_COUNTS} FROM notifications WHERE campaign_id = $1"
    ))
    .bind(campaign_id)
    .fetch_one(conn)
    .await
}

#[derive(Debug, Default, sqlx::FromRow)]
pub struct Overview {
    pub open_findings: i64,
    pub affected_organisations: i64,
    /// Open findings no organisation owns (the triage queue).
    pub triage: i64,
    #[sqlx(flatten)]
    pub funnel: Funnel,
    pub no_contact: i64,
    pub open_escalations: i64,
    pub failed_deliveries: i64,
}

pub async fn read(conn: &mut PgConnection) -> Result<Overview, sqlx::Error> {
    sqlx::query_as(&format!(
        // The notifications in one scan, not one per figure.
        "SELECT
            coalesce(r.open_findings, 0) AS open_findings,
            coalesce(r.affected_organisations, 0) AS affected_organisations,
            coalesce(r.triage, 0) AS triage,
            n.notified, n.opened, n.acknowledged, n.resolved, n.no_contact,
            (SELECT count(*) FROM escalations WHERE status <> 'closed') AS open_escalations,
            (SELECT count(*) FROM deliveries WHERE status = 'failed') AS failed_deliveries
           FROM (SELECT {FUNNEL_COUNTS},
                        count(*) FILTER (WHERE status = 'no_contact') AS no_contact
                   FROM notifications) n
           LEFT JOIN dashboard_refreshed r ON true"
    ))
    .fetch_one(conn)
    .await
}
