//! The overview: the situation at a glance — open findings and who has
//! them (as the last [`super::stats`] refresh counted them), and live from
//! the tables the API serves: the notifications by status, what waits for
//! an analyst (escalations, the no-contact queue) and what is failing
//! (deliveries).

use sqlx::PgConnection;

#[derive(Debug, Default, sqlx::FromRow)]
pub struct Overview {
    pub open_findings: i64,
    pub affected_organisations: i64,
    /// Open findings no organisation owns (the triage queue).
    pub triage: i64,
    pub notified: i64,
    pub opened: i64,
    pub acknowledged: i64,
    pub resolved: i64,
    pub no_contact: i64,
    pub open_escalations: i64,
    pub failed_deliveries: i64,
}

impl Overview {
    /// Notified → opened → acknowledged → resolved, as bars.
    pub fn funnel(&self) -> super::stats::Bars {
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

pub async fn read(conn: &mut PgConnection) -> Result<Overview, sqlx::Error> {
    sqlx::query_as(
        "SELECT
            coalesce((SELECT open_findings FROM dashboard_refreshed), 0) AS open_findings,
            coalesce((SELECT affected_organisations FROM dashboard_refreshed), 0)
                AS affected_organisations,
            coalesce((SELECT triage FROM dashboard_refreshed), 0) AS triage,
            (SELECT count(*) FROM notifications WHERE mailed_at IS NOT NULL) AS notified,
            (SELECT count(*) FROM notifications WHERE first_opened_at IS NOT NULL) AS opened,
            (SELECT count(*) FROM notifications WHERE acknowledged_at IS NOT NULL) AS acknowledged,
            (SELECT count(*) FROM notifications WHERE status = 'resolved') AS resolved,
            (SELECT count(*) FROM notifications WHERE status = 'no_contact') AS no_contact,
            (SELECT count(*) FROM escalations WHERE status <> 'closed') AS open_escalations,
            (SELECT count(*) FROM deliveries WHERE status = 'failed') AS failed_deliveries",
    )
    .fetch_one(conn)
    .await
}
