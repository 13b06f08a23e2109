//! What every domain operation shares, whichever surface calls it (the REST
//! API, the dashboard, the advisory page, the command line): the [`Actor`]
//! on whose behalf it acts, recorded in the audit log, and the typed
//! [`DomainError`] it returns, naming the field at fault, which each surface
//! renders its own way (a problem document, a form shown again).

use std::fmt;

/// Who is acting. Its `Display` is the audit log's `actor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// An API client, by its bearer token.
    ApiClient { id: i64, name: String },
    /// Someone at the command line of the server.
    Cli,
    /// A registry import, by its channel (`csv`, `ripe`).
    Import(&'static str),
    /// Varsel itself (background work).
    System,
    /// An organisation, answering on its advisory page.
    Organisation { id: i64 },
    /// A person logged in to the dashboard.
    Operator { id: i64, email: String },
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::ApiClient { id, name } => write!(f, "api-client:{id}:{name}"),
            Actor::Cli => f.write_str("cli"),
            Actor::Import(channel) => write!(f, "import:{channel}"),
            Actor::System => f.write_str("system"),
            Actor::Organisation { id } => write!(f, "organisation:{id}"),
            Actor::Operator { id, email } => write!(f, "operator:{id}:{email}"),
        }
    }
}

impl Actor {
    /// Who it is, as people say it: an operator's address, an API
    /// client's name (the audit log keeps the whole identity).
    pub fn display_name(&self) -> String {
        match self {
            Actor::ApiClient { name, .. } => format!("API client {name}"),
            Actor::Cli => "the command line".to_owned(),
            Actor::Import(channel) => format!("the {channel} import"),
            Actor::System => "Varsel".to_owned(),
            Actor::Organisation { id } => format!("organisation {id}"),
            Actor::Operator { email, .. } => email.clone(),
        }
    }
}

/// Why a domain operation did not happen. Nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// What the operation names does not exist (`what` says which).
    #[error("{0} not found")]
    NotFound(String),
    /// An input is invalid: the field at fault and why.
    #[error("{field}: {detail}")]
    Invalid { field: String, detail: String },
    /// The input is well-formed but contradicts what is stored; `field` is
    /// the input at fault where one is.
    #[error("{detail}")]
    Conflict {
        field: Option<String>,
        detail: String,
    },
    /// The database failed (or chose this transaction as a deadlock victim).
    #[error(transparent)]
    Database(sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type DomainResult<T> = Result<T, DomainError>;

impl DomainError {
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            detail: detail.into(),
        }
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound(what.into())
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::Conflict {
            field: None,
            detail: detail.into(),
        }
    }
}

/// Named constraints (and unique indexes) a caller can run into: the field
/// at fault and what to tell them. A test checks that each one exists.
pub const CONSTRAINTS: &[(&str, Option<&str>, &str)] = &[
    (
        "organisations_ref_key",
        Some("ref"),
        "an organisation with this ref already exists",
    ),
    (
        "contacts_organisation_email_key",
        Some("email"),
        "this organisation already has a contact with this e-mail",
    ),
    (
        "networks_current_key",
        Some("cidr"),
        "this CIDR is already registered by hand; change or end that network instead",
    ),
    (
        "asns_current_key",
        Some("asn"),
        "this ASN is already registered by hand; change or end it instead",
    ),
    (
        "domains_domain_key",
        Some("domain"),
        "this domain is already registered",
    ),
    (
        "campaigns_slug_key",
        Some("slug"),
        "a campaign with this slug already exists",
    ),
    (
        "networks_organisation_id_fkey",
        None,
        "the organisation still has networks (current or historical)",
    ),
    (
        "asns_organisation_id_fkey",
        None,
        "the organisation still has ASNs (current or historical)",
    ),
    ("jobs_pending_key", None, "the same job is already pending"),
];

impl From<sqlx::Error> for DomainError {
    fn from(e: sqlx::Error) -> Self {
        let known = e
            .as_database_error()
            .and_then(|db| db.constraint())
            .and_then(|name| CONSTRAINTS.iter().find(|(n, _, _)| *n == name));
        match known {
            Some((_, field, detail)) => DomainError::Conflict {
                field: field.map(str::to_owned),
                detail: (*detail).to_owned(),
            },
            None => DomainError::Database(e),
        }
    }
}

/// Text a person typed: trimmed, not empty, at most `max` characters.
pub fn required_text(field: &str, value: &str, max: usize) -> DomainResult<String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    if v.chars().count() > max {
        return Err(DomainError::invalid(
            field,
            format!("at most {max} characters"),
        ));
    }
    Ok(v.to_owned())
}

/// A list page's cursor as a URL carries it: `id`, or `value_id` for a
/// list in another order than by id (the id is after the last `_`, so the
/// value may hold any). Its value and id; refused at `after` when it is no
/// cursor at all.
pub fn page_cursor(cursor: &str) -> DomainResult<(Option<&str>, i64)> {
    let (value, id) = match cursor.rsplit_once('_') {
        Some((value, id)) => (Some(value), id),
        None => (None, cursor),
    };
    id.parse()
        .map(|id| (value, id))
        .map_err(|_| not_a_page(cursor))
}

/// The refusal of a cursor that is none of its list's.
pub fn not_a_page(cursor: &str) -> DomainError {
    DomainError::invalid(
        "after",
        format!("{cursor:?} is not a page of this list (start from its first page)"),
    )
}

/// Optional text: trimmed, empty means none, at most `max` characters.
pub fn optional_text(field: &str, value: Option<&str>, max: usize) -> DomainResult<Option<String>> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => required_text(field, v, max).map(Some),
    }
}

/// A value for a CSV file people open in a spreadsheet: text a scanner
/// reported (a banner, a product name) that starts like a formula is
/// prefixed with `'`, so that it stays text (OWASP's advice on CSV
/// injection).
pub fn spreadsheet_safe(value: &str) -> std::borrow::Cow<'_, str> {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}").into()
    } else {
        value.into()
    }
}
