//! The audit log: who changed what, when. Written in the same transaction as
//! the change it records.

use sqlx::PgConnection;

use crate::domain::Actor;

pub async fn record(
    conn: &mut PgConnection,
    actor: &Actor,
    action: &str,
    subject: &str,
    detail: serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_events (actor, action, subject, detail) VALUES ($1, $2, $3, $4)",
    )
    .bind(actor.to_string())
    .bind(action)
    .bind(subject)
    .bind(detail)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records the event in `tx` and commits: the change and its audit record
/// land together or not at all.
pub async fn commit(
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    actor: &Actor,
    action: &str,
    subject: &str,
    detail: serde_json::Value,
) -> Result<(), sqlx::Error> {
    record(&mut tx, actor, action, subject, detail).await?;
    tx.commit().await
}

/// A row as JSON, locked for the change about to be made, for
/// [`changes`]. `table` is one of this crate's table names, never input.
pub async fn snapshot(
    conn: &mut PgConnection,
    table: &'static str,
    id: i64,
) -> Result<Option<serde_json::Value>, sqlx::Error> {
    sqlx::query_scalar(&format!(
        "SELECT to_jsonb(t) FROM {table} t WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// What a change did to a row, as `{"before": {…}, "after": {…}}` with
/// only the fields that differ. Either side may be absent (a row created
/// or deleted). Credentials (`*_hash`, `*secret*`) are never recorded.
pub fn changes(
    before: Option<&serde_json::Value>,
    after: Option<&serde_json::Value>,
) -> serde_json::Value {
    use serde_json::{Map, Value};
    let empty = Map::new();
    let fields = |v: Option<&Value>| v.and_then(Value::as_object).unwrap_or(&empty).clone();
    let (old, new) = (fields(before), fields(after));
    let secret = |k: &str| k.ends_with("_hash") || k.contains("secret");
    let mut was = Map::new();
    let mut is = Map::new();
    for key in old
        .keys()
        .chain(new.keys().filter(|k| !old.contains_key(*k)))
    {
        let (o, n) = (old.get(key), new.get(key));
        if o == n || secret(key) {
            continue;
        }
        if let Some(o) = o.filter(|_| before.is_some()) {
            was.insert(key.clone(), o.clone());
        }
        if let Some(n) = n.filter(|_| after.is_some()) {
            is.insert(key.clone(), n.clone());
        }
    }
    let mut out = Map::new();
    if before.is_some() {
        out.insert("before".into(), Value::Object(was));
    }
    if after.is_some() {
        out.insert("after".into(), Value::Object(is));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changes_keep_only_what_differs_and_never_credentials() {
        let before = json!({ "id": 1, "name": "A", "sector": null, "password_hash": "x" });
        let after = json!({ "id": 1, "name": "B", "sector": "energy", "password_hash": "y" });
        assert_eq!(
            changes(Some(&before), Some(&after)),
            json!({ "before": { "name": "A", "sector": null }, "after": { "name": "B", "sector": "energy" } })
        );
        assert_eq!(
            changes(None, Some(&json!({ "id": 2, "totp_secret": "s" }))),
            json!({ "after": { "id": 2 } })
        );
        assert_eq!(
            changes(Some(&json!({ "id": 3 })), None),
            json!({ "before": { "id": 3 } })
        );
    }
}
