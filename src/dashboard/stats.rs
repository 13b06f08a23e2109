//! The overview's charts: the figures behind them, aggregated ahead by a
//! periodic job ([`refresh`], every few minutes and once at start), and
//! their drawing as server-rendered SVG ([`Curve`], [`Bars`]).
//!
//! Counting a campaign's findings per day means reading every finding it
//! covers, which on a million observations takes a second; the overview
//! reads the few hundred rows the refresh leaves instead, and says how old
//! they are. So do the overview's finding totals and each campaign's
//! figures (a count over every current finding each); the counts of
//! notifications, escalations and deliveries stay live.
//!
//! The curve counts a finding open from the day it was first seen to the
//! day it was resolved; a finding resolved and seen again counts from its
//! first sighting, which is what an analyst asks ("how many are left?").

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Europe::Oslo;
use sqlx::{Acquire, PgConnection};

use crate::campaigns::matching::{COVERS_SQL, MATCH_SQL};

/// Days a curve goes back at most.
pub const CURVE_DAYS: i32 = 90;

/// Recomputes every chart's figures, in one transaction (the overview sees
/// the old figures or the new, never half of each).
pub async fn refresh(conn: &mut PgConnection, now: DateTime<Utc>) -> Result<(), sqlx::Error> {
    let today = now.with_timezone(&Oslo).date_naive();
    let mut tx = conn.begin().await?;
    sqlx::query("DELETE FROM dashboard_curve")
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!(
        "WITH covered AS (
             SELECT c.id AS campaign_id,
                    (f.first_seen AT TIME ZONE 'Europe/Oslo')::date AS opened,
                    CASE WHEN f.status = 'resolved'
                         THEN (f.resolved_at AT TIME ZONE 'Europe/Oslo')::date END AS closed
               FROM campaigns c JOIN findings f ON {COVERS_SQL}
              WHERE c.status = 'active' AND f.current
         ),
         daily AS (
             SELECT campaign_id, day, sum(delta) AS delta FROM (
                 SELECT campaign_id, opened AS day, 1 AS delta FROM covered
                 UNION ALL
                 SELECT campaign_id, closed, -1 FROM covered WHERE closed IS NOT NULL
             ) d GROUP BY 1, 2
         ),
         span AS (
             SELECT campaign_id, greatest(min(day), $1::date - $2) AS first
               FROM daily GROUP BY 1
         )
         INSERT INTO dashboard_curve (campaign_id, day, open_findings)
         SELECT s.campaign_id, d::date,
                (SELECT coalesce(sum(x.delta), 0) FROM daily x
                  WHERE x.campaign_id = s.campaign_id AND x.day <= d::date)
           FROM span s, generate_series(s.first, $1::date, interval '1 day') d"
    ))
    .bind(today)
    .bind(CURVE_DAYS - 1)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM dashboard_sectors")
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO dashboard_sectors (sector, open_findings, organisations)
         SELECT coalesce(o.sector, ''), count(*), count(DISTINCT f.organisation_id)
           FROM findings f JOIN organisations o ON o.id = f.organisation_id
          WHERE f.status = 'open' AND f.current
          GROUP BY 1",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM dashboard_campaigns")
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!(
        "INSERT INTO dashboard_campaigns (campaign_id, open_findings, organisations)
         SELECT c.id, count(f.id), count(DISTINCT f.organisation_id)
           FROM campaigns c LEFT JOIN findings f ON {MATCH_SQL} AND f.current
          WHERE c.status <> 'closed'
          GROUP BY c.id"
    ))
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO dashboard_refreshed (only_row, at, open_findings, affected_organisations, triage)
         SELECT true, $1, count(*), count(DISTINCT organisation_id),
                count(*) FILTER (WHERE organisation_id IS NULL)
           FROM findings WHERE status = 'open' AND current
         ON CONFLICT (only_row) DO UPDATE SET at = EXCLUDED.at,
                open_findings = EXCLUDED.open_findings,
                affected_organisations = EXCLUDED.affected_organisations,
                triage = EXCLUDED.triage",
    )
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// A campaign's matching open findings and their organisations, as of the
/// last refresh; `None` for a campaign the refresh has not seen yet.
pub async fn campaign_figures(
    conn: &mut PgConnection,
    campaign_id: i64,
) -> Result<Option<(i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT open_findings, organisations FROM dashboard_campaigns WHERE campaign_id = $1",
    )
    .bind(campaign_id)
    .fetch_optional(conn)
    .await
}

/// One campaign's curve, as read for the overview.
pub struct CampaignCurve {
    pub campaign_id: i64,
    pub title: String,
    pub curve: Curve,
}

/// What the overview's charts draw.
pub struct Charts {
    /// When the figures were taken; `None` before the first refresh.
    pub refreshed_at: Option<DateTime<Utc>>,
    pub curves: Vec<CampaignCurve>,
    pub sectors: Bars,
}

/// The remediation curves as last gathered: every campaign's, or one's.
async fn curves(
    conn: &mut PgConnection,
    campaign_id: Option<i64>,
) -> Result<Vec<CampaignCurve>, sqlx::Error> {
    let rows: Vec<(i64, String, NaiveDate, i64)> = sqlx::query_as(
        "SELECT d.campaign_id, c.title_en, d.day, d.open_findings
           FROM dashboard_curve d JOIN campaigns c ON c.id = d.campaign_id
          WHERE $1::bigint IS NULL OR d.campaign_id = $1
          ORDER BY d.campaign_id, d.day",
    )
    .bind(campaign_id)
    .fetch_all(conn)
    .await?;
    let mut curves: Vec<CampaignCurve> = Vec::new();
    let mut points = Vec::new();
    for (i, (campaign_id, title, day, open)) in rows.iter().enumerate() {
        points.push((*day, *open));
        if rows.get(i + 1).is_none_or(|next| next.0 != *campaign_id) {
            curves.push(CampaignCurve {
                campaign_id: *campaign_id,
                title: title.clone(),
                curve: Curve::new(std::mem::take(&mut points)),
            });
        }
    }
    Ok(curves)
}

/// One campaign's remediation curve, once the stats job has gathered it.
pub async fn campaign_curve(
    conn: &mut PgConnection,
    campaign_id: i64,
) -> Result<Option<CampaignCurve>, sqlx::Error> {
    Ok(curves(conn, Some(campaign_id)).await?.pop())
}

/// The overview's charts, as last gathered.
pub async fn read(conn: &mut PgConnection) -> Result<Charts, sqlx::Error> {
    let refreshed_at = sqlx::query_scalar("SELECT at FROM dashboard_refreshed")
        .fetch_optional(&mut *conn)
        .await?;
    let curves = curves(&mut *conn, None).await?;
    let sectors: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT sector, open_findings, organisations FROM dashboard_sectors
          ORDER BY open_findings DESC, sector LIMIT 20",
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(Charts {
        refreshed_at,
        curves,
        sectors: Bars::new(
            sectors
                .into_iter()
                .map(|(sector, open, orgs)| {
                    let label = if sector.is_empty() {
                        "(no sector)".to_owned()
                    } else {
                        sector
                    };
                    (label, open, format!("{orgs} organisations"))
                })
                .collect(),
        ),
    })
}

/// The drawing area of a curve, in SVG user units.
const CURVE_WIDTH: f64 = 600.0;
const CURVE_HEIGHT: f64 = 160.0;

/// A line chart of one value per day, laid out for the template: the
/// points of the polyline, and the labels of its axes. The same figures
/// are in a table beside it, for screen readers and for copying.
pub struct Curve {
    pub days: Vec<(NaiveDate, i64)>,
    pub max: i64,
}

impl Curve {
    pub fn new(days: Vec<(NaiveDate, i64)>) -> Self {
        let max = days.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1);
        Self { days, max }
    }

    pub fn width(&self) -> f64 {
        CURVE_WIDTH
    }

    pub fn height(&self) -> f64 {
        CURVE_HEIGHT
    }

    /// `x,y x,y …` for `<polyline points>`.
    pub fn points(&self) -> String {
        let steps = (self.days.len().max(2) - 1) as f64;
        self.days
            .iter()
            .enumerate()
            .map(|(i, (_, v))| {
                let x = i as f64 / steps * CURVE_WIDTH;
                let y = CURVE_HEIGHT - (*v as f64 / self.max as f64) * CURVE_HEIGHT;
                format!("{x:.1},{y:.1}")
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub fn first_day(&self) -> String {
        self.days.first().map(|(d, _)| day(*d)).unwrap_or_default()
    }

    pub fn last_day(&self) -> String {
        self.days.last().map(|(d, _)| day(*d)).unwrap_or_default()
    }

    pub fn last_value(&self) -> i64 {
        self.days.last().map_or(0, |(_, v)| *v)
    }

    pub fn peak(&self) -> i64 {
        self.days.iter().map(|(_, v)| *v).max().unwrap_or(0)
    }

    /// The table beside the chart: the last two weeks, newest first.
    pub fn recent(&self) -> Vec<(String, i64)> {
        self.days
            .iter()
            .rev()
            .take(14)
            .map(|(d, v)| (day(*d), *v))
            .collect()
    }
}

fn day(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// The width of a bar chart's bars area, in SVG user units.
const BARS_WIDTH: f64 = 400.0;
/// One bar's row height.
const BAR_ROW: f64 = 22.0;

/// A horizontal bar chart: a label, a value and a note per bar.
pub struct Bars {
    pub bars: Vec<Bar>,
}

pub struct Bar {
    pub label: String,
    pub value: i64,
    pub note: String,
    /// The bar's length and its row's top, in SVG user units.
    pub length: f64,
    pub y: f64,
}

impl Bars {
    pub fn new(rows: Vec<(String, i64, String)>) -> Self {
        let max = rows.iter().map(|(_, v, _)| *v).max().unwrap_or(0).max(1);
        Self {
            bars: rows
                .into_iter()
                .enumerate()
                .map(|(i, (label, value, note))| Bar {
                    length: (value as f64 / max as f64 * BARS_WIDTH).max(1.0),
                    y: i as f64 * BAR_ROW,
                    label,
                    value,
                    note,
                })
                .collect(),
        }
    }

    pub fn width(&self) -> f64 {
        BARS_WIDTH
    }

    pub fn height(&self) -> f64 {
        self.bars.len() as f64 * BAR_ROW
    }

    pub fn bar_height(&self) -> f64 {
        BAR_ROW - 6.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_curve_spans_the_width_and_its_peak_touches_the_top() {
        let d = |n| NaiveDate::from_ymd_opt(2021, 3, n).unwrap();
        let curve = Curve::new(vec![(d(2), 10), (d(3), 40), (d(4), 20)]);
        assert_eq!(curve.points(), "0.0,120.0 300.0,0.0 600.0,80.0");
        assert_eq!(curve.first_day(), "2021-03-02");
        assert_eq!(curve.last_value(), 20);
        assert_eq!(curve.recent()[0], ("2021-03-04".to_owned(), 20));
        let flat = Curve::new(vec![(d(2), 0)]);
        assert_eq!(flat.points(), "0.0,160.0", "no division by zero");
    }

    #[test]
    fn bars_are_scaled_to_the_longest() {
        let bars = Bars::new(vec![
            ("energy".into(), 50, String::new()),
            ("health".into(), 5, String::new()),
            ("none".into(), 0, String::new()),
        ]);
        assert_eq!(bars.bars[0].length, 400.0);
        assert_eq!(bars.bars[1].length, 40.0);
        assert_eq!(bars.bars[2].length, 1.0, "a zero still shows");
        assert_eq!(bars.bars[1].y, 22.0);
        assert_eq!(bars.height(), 66.0);
    }
}
