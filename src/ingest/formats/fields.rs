//! Field-level validation and normalisation shared by the format parsers:
//! addresses, times, CVE ids, check ids, protocols, ASNs, and the size-capped
//! evidence object. Every check returns a human reason naming the offending
//! value, so a rejected record tells the sender exactly what to fix.
//!
//! Also owns [`Loose`], a JSON value that never fails to deserialize: parsers
//! use it for fields whose type scanners get wrong, so a wrong type becomes a
//! precise per-field rejection instead of a generic serde error.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::net::IpAddr;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::ingest::observation::{MAX_EVIDENCE_BYTES, Severity};

/// Longest check id.
pub(crate) const MAX_CHECK_CHARS: usize = 128;
/// Longest hostname, product, version.
pub(crate) const MAX_TEXT_CHARS: usize = 255;
/// Longest single string kept in evidence built from scanner output, so that
/// one huge banner or response cannot crowd out everything else.
pub(crate) const MAX_EVIDENCE_STRING_BYTES: usize = 1024;

// ---------------------------------------------------------------------------
// Loose JSON values

/// Any JSON value, borrowed where possible, with containers skipped (their
/// contents are not needed where `Loose` is used, only their kind).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Loose<'a> {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(Cow<'a, str>),
    Array,
    Object,
}

impl Loose<'_> {
    /// "a string", "an integer", … for error messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Loose::Null => "null",
            Loose::Bool(_) => "a boolean",
            Loose::U64(_) | Loose::I64(_) => "an integer",
            Loose::F64(_) => "a number",
            Loose::Str(_) => "a string",
            Loose::Array => "an array",
            Loose::Object => "an object",
        }
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Loose::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as text, for scalars only (numbers are formatted).
    pub(crate) fn scalar_text(&self) -> Option<Cow<'_, str>> {
        match self {
            Loose::Str(s) => Some(Cow::Borrowed(s)),
            Loose::U64(n) => Some(Cow::Owned(n.to_string())),
            Loose::I64(n) => Some(Cow::Owned(n.to_string())),
            Loose::F64(n) => Some(Cow::Owned(n.to_string())),
            Loose::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
            Loose::Null | Loose::Array | Loose::Object => None,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Loose<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LooseVisitor)
    }
}

struct LooseVisitor;

impl<'de> Visitor<'de> for LooseVisitor {
    type Value = Loose<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Loose::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Loose::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Loose::Bool(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Loose::U64(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Loose::I64(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Loose::F64(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Loose::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        // Only strings with escapes get here: serde_json must unescape them.
        Ok(Loose::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Loose::Str(Cow::Owned(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Loose::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Loose::Object)
    }
}

/// A list of strings as scanners write it: a JSON array, one string (maybe
/// with separators), or null.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) enum StrList<'a> {
    #[default]
    Absent,
    /// Elements of a JSON array, any type (checked by the user).
    Items(Vec<Loose<'a>>),
    /// One string; split with [`split_list`].
    Text(Cow<'a, str>),
    /// Some other JSON type; `kind` as in [`Loose::kind`].
    Invalid(&'static str),
}

impl<'de: 'a, 'a> Deserialize<'de> for StrList<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = StrList<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(2).min(64));
                while let Some(item) = seq.next_element::<Loose<'de>>()? {
                    items.push(item);
                }
                Ok(StrList::Items(items))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(StrList::Absent)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(StrList::Absent)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_any(self)
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(StrList::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(StrList::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(StrList::Invalid("a boolean"))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(StrList::Invalid("an integer"))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(StrList::Invalid("an integer"))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(StrList::Invalid("a number"))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(StrList::Invalid("an object"))
            }
        }
        deserializer.deserialize_any(ListVisitor)
    }
}

/// Splits a list written as text: `;`, `,` or whitespace separate items.
pub(crate) fn split_list(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| c == ';' || c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
}

// ---------------------------------------------------------------------------
// Scalars

/// Quotes a value for an error message, shortening very long ones so an
/// error never echoes a whole record back.
pub(crate) fn quoted(s: &str) -> String {
    const SHOWN: usize = 80;
    if s.len() <= SHOWN {
        format!("{s:?}")
    } else {
        format!("{:?}…", truncate_on_char(s, SHOWN))
    }
}

pub(crate) fn parse_ip(s: &str) -> Result<IpAddr, String> {
    s.trim()
        .parse::<IpAddr>()
        .map_err(|_| format!("{} is not an IPv4 or IPv6 address", quoted(s)))
}

/// RFC 3339 with a zone, normalised to UTC. A time without zone gets its own
/// message, because guessing the zone would shift every observation.
pub(crate) fn parse_rfc3339_utc(s: &str) -> Result<DateTime<Utc>, String> {
    let t = s.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Ok(dt.with_timezone(&Utc));
    }
    let naive = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .any(|f| NaiveDateTime::parse_from_str(t, f).is_ok());
    if naive {
        Err(format!(
            "time {} has no time zone (use RFC 3339, e.g. 2021-03-05T10:00:00Z)",
            quoted(s)
        ))
    } else {
        Err(format!(
            "time {} is not an RFC 3339 time (e.g. 2021-03-05T10:00:00Z)",
            quoted(s)
        ))
    }
}

/// Unix seconds (as scanners write them: integer or decimal string).
pub(crate) fn parse_epoch(s: &str) -> Result<DateTime<Utc>, String> {
    let t = s.trim();
    let secs: Option<i64> = t.parse::<i64>().ok().or_else(|| {
        t.parse::<f64>()
            .ok()
            .filter(|f| f.is_finite() && f.abs() < 1e15)
            .map(|f| f.trunc() as i64)
    });
    secs.and_then(|s| DateTime::from_timestamp(s, 0))
        .ok_or_else(|| format!("time {} is not a Unix timestamp in seconds", quoted(s)))
}

/// A port: an integer 0–65535, or a string of digits (scanners write both).
pub(crate) fn parse_port(v: &Loose<'_>) -> Result<u16, String> {
    let n = match v {
        Loose::U64(n) => Some(*n),
        Loose::Str(s) if !s.trim().is_empty() && s.trim().bytes().all(|b| b.is_ascii_digit()) => {
            s.trim().parse::<u64>().ok()
        }
        _ => None,
    };
    match n {
        Some(n) if n <= u64::from(u16::MAX) => Ok(n as u16),
        Some(n) => Err(format!("port {n} is out of range (0–65535)")),
        None => Err(match v.scalar_text() {
            Some(t) => format!("port {} is not an integer 0–65535", quoted(&t)),
            None => format!("port must be an integer 0–65535, not {}", v.kind()),
        }),
    }
}

pub(crate) fn parse_port_text(s: &str) -> Result<u16, String> {
    parse_port(&Loose::Str(Cow::Borrowed(s)))
}

/// A protocol token: lower case `[a-z0-9]{1,16}` (tcp, udp, sctp, icmp, …).
pub(crate) fn normalise_protocol(s: &str) -> Result<String, String> {
    let t = s.trim();
    if (1..=16).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(t.to_ascii_lowercase())
    } else {
        Err(format!(
            "protocol {} is not a short token like tcp or udp ([a-z0-9], at most 16)",
            quoted(s)
        ))
    }
}

/// A check id: non-empty, at most 128 characters, no whitespace or control
/// characters (it is used as a key and shown in URLs and e-mails).
pub(crate) fn validate_check(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("check is empty".to_owned());
    }
    // Byte length bounds the character count; count only when it could matter.
    let chars = if s.len() <= MAX_CHECK_CHARS {
        s.len()
    } else {
        s.chars().count()
    };
    if chars > MAX_CHECK_CHARS {
        return Err(format!(
            "check is {chars} characters; at most {MAX_CHECK_CHARS} allowed"
        ));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "check {} contains whitespace or control characters",
            quoted(s)
        ));
    }
    Ok(())
}

/// An optional free-text field (hostname, product, version): empty means
/// absent; at most [`MAX_TEXT_CHARS`].
pub(crate) fn optional_text(field: &str, s: &str) -> Result<Option<String>, String> {
    if s.is_empty() {
        return Ok(None);
    }
    let chars = s.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(format!(
            "{field} is {chars} characters; at most {MAX_TEXT_CHARS} allowed"
        ));
    }
    Ok(Some(s.to_owned()))
}

/// Scanner-provided text for hostname/product/version: never rejects the
/// record, it is trimmed and cut to [`MAX_TEXT_CHARS`] instead.
pub(crate) fn clip_text(s: &str) -> Option<String> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    Some(match t.char_indices().nth(MAX_TEXT_CHARS) {
        Some((cut, _)) => t[..cut].to_owned(),
        None => t.to_owned(),
    })
}

/// ASNs that say nothing about who runs a network: 0, AS_TRANS, private
/// use, reserved. Shadowserver writes 64512 as a placeholder.
pub(crate) fn is_placeholder_asn(asn: u32) -> bool {
    matches!(asn, 0 | 23456 | 65535 | 4_294_967_295)
        || (64512..=65534).contains(&asn)
        || (4_200_000_000..=4_294_967_294).contains(&asn)
}

/// An ASN written as a number or text, optionally with an `AS` prefix.
pub(crate) fn parse_asn(v: &Loose<'_>) -> Result<u32, String> {
    let n = match v {
        Loose::U64(n) => u32::try_from(*n).ok(),
        Loose::Str(s) => {
            let t = s.trim();
            let digits = t
                .strip_prefix("AS")
                .or_else(|| t.strip_prefix("as"))
                .unwrap_or(t);
            digits.parse::<u32>().ok()
        }
        _ => None,
    };
    n.ok_or_else(|| match v.scalar_text() {
        Some(t) => format!("asn {} is not an AS number (0–4294967295)", quoted(&t)),
        None => format!("asn must be an integer, not {}", v.kind()),
    })
}

/// [`Severity::parse`] without its allocation for the common lower-case
/// spellings (this runs once per canonical line).
pub(crate) fn parse_severity(s: &str) -> Option<Severity> {
    match s {
        "critical" => Some(Severity::Critical),
        "high" => Some(Severity::High),
        "medium" => Some(Severity::Medium),
        "low" => Some(Severity::Low),
        "info" => Some(Severity::Info),
        _ => Severity::parse(s.trim()),
    }
}

/// Truthy flags as Shadowserver and friends write them.
pub(crate) fn is_truthy(s: &str) -> bool {
    matches!(
        s.trim().to_ascii_lowercase().as_str(),
        "y" | "yes" | "true" | "t" | "1" | "vulnerable"
    )
}

// ---------------------------------------------------------------------------
// CVE ids

/// `CVE-YYYY-NNNN…` in any case → upper case; `None` if not a CVE id.
pub(crate) fn normalise_cve(s: &str) -> Option<String> {
    let t = s.trim();
    let b = t.as_bytes();
    let ok = b.len() >= 13
        && b[..4].eq_ignore_ascii_case(b"CVE-")
        && b[4..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'-'
        && b[9..].iter().all(u8::is_ascii_digit);
    ok.then(|| t.to_ascii_uppercase())
}

/// Adds a CVE id unless already present (order of first sight is kept).
pub(crate) fn push_cve(cves: &mut Vec<String>, cve: String) {
    if !cves.contains(&cve) {
        cves.push(cve);
    }
}

/// Every CVE id embedded in free text (`IDs: CVE:CVE-2021-26855`, URLs, …).
pub(crate) fn cves_in_text(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i + 13 <= b.len() {
        if b[i..i + 4].eq_ignore_ascii_case(b"CVE-")
            && (i == 0 || !b[i - 1].is_ascii_alphanumeric())
        {
            let mut end = i + 4;
            while end < b.len() && (b[end].is_ascii_digit() || b[end] == b'-') {
                end += 1;
            }
            // Trailing `-` (e.g. "CVE-2021-1234-foo") is not part of the id.
            let mut id_end = end;
            while id_end > i && b[id_end - 1] == b'-' {
                id_end -= 1;
            }
            if let Some(cve) = normalise_cve(&text[i..id_end]) {
                push_cve(&mut out, cve);
            }
            i = end.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Evidence

/// Cuts `s` to at most `max` bytes on a character boundary.
pub(crate) fn truncate_on_char(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    &s[..cut]
}

/// Cuts a scanner string for evidence, marking that it was cut.
pub(crate) fn evidence_string(s: &str) -> Cow<'_, str> {
    if s.len() <= MAX_EVIDENCE_STRING_BYTES {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(format!(
            "{}…",
            truncate_on_char(s, MAX_EVIDENCE_STRING_BYTES)
        ))
    }
}

pub(crate) fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_json_string(&mut out, s);
    out
}

/// Appends `s` as a JSON string literal.
pub(crate) fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Removes insignificant whitespace from valid JSON text, so evidence is
/// stored (and size-checked) compactly whatever the sender's layout.
pub(crate) fn compact_json(raw: &str) -> Cow<'_, str> {
    let bytes = raw.as_bytes();
    let needs = {
        let mut in_string = false;
        let mut escaped = false;
        bytes.iter().any(|&b| {
            if in_string {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_string = false;
                }
                false
            } else if b == b'"' {
                in_string = true;
                false
            } else {
                b.is_ascii_whitespace()
            }
        })
    };
    if !needs {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in raw.chars() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            out.push(c);
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_ascii_whitespace() {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Builds the evidence object for scanner formats: string values are cut to
/// [`MAX_EVIDENCE_STRING_BYTES`], and fields that would push the object past
/// [`MAX_EVIDENCE_BYTES`] are dropped (earlier fields win) rather than the
/// record being rejected: evidence is a courtesy, the observation matters.
#[derive(Debug, Default)]
pub(crate) struct EvidenceBuilder {
    /// The object so far, without its closing `}`.
    out: String,
    dropped: bool,
}

impl EvidenceBuilder {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Adds a string field (empty strings are skipped).
    pub(crate) fn str(&mut self, key: &str, value: &str) -> &mut Self {
        if !value.is_empty() {
            let v = json_string(&evidence_string(value));
            self.raw(key, &v);
        }
        self
    }

    pub(crate) fn opt_str(&mut self, key: &str, value: Option<&str>) -> &mut Self {
        if let Some(v) = value {
            self.str(key, v);
        }
        self
    }

    /// Adds a list of strings, each cut, as many as fit.
    pub(crate) fn str_list<'s>(
        &mut self,
        key: &str,
        values: impl IntoIterator<Item = &'s str>,
    ) -> &mut Self {
        let items: Vec<String> = values
            .into_iter()
            .map(|v| json_string(&evidence_string(v)))
            .collect();
        self.list(key, &items)
    }

    /// Adds a list of ready-made JSON values, as many as fit.
    pub(crate) fn list(&mut self, key: &str, items: &[String]) -> &mut Self {
        if items.is_empty() {
            return self;
        }
        let budget = self.room_for(key);
        let mut v = String::from("[");
        for item in items {
            // +2 for the comma and the closing bracket.
            if v.len() + item.len() + 2 > budget {
                self.dropped = true;
                break;
            }
            if v.len() > 1 {
                v.push(',');
            }
            v.push_str(item);
        }
        v.push(']');
        if v.len() > 2 {
            self.raw(key, &v);
        }
        self
    }

    /// Adds a field whose value is already JSON text.
    pub(crate) fn raw(&mut self, key: &str, json_value: &str) -> &mut Self {
        let key_json = json_string(key);
        // `{` or `,` + key + `:` + value, and the closing `}`.
        let needed = 1 + key_json.len() + 1 + json_value.len() + 1;
        if self.out.len() + needed > Self::FIELD_BUDGET {
            self.dropped = true;
            return self;
        }
        self.out.push(if self.out.is_empty() { '{' } else { ',' });
        self.out.push_str(&key_json);
        self.out.push(':');
        self.out.push_str(json_value);
        self
    }

    /// Room kept free so the `"truncated":true` marker always fits.
    const TRUNCATED_MARK: &'static str = ",\"truncated\":true";
    const FIELD_BUDGET: usize = MAX_EVIDENCE_BYTES - Self::TRUNCATED_MARK.len();

    /// Bytes left for the value of `key`.
    fn room_for(&self, key: &str) -> usize {
        let used = self.out.len().max(1) + json_string(key).len() + 2 + 1;
        Self::FIELD_BUDGET.saturating_sub(used)
    }

    /// The object, or `None` when nothing was added. Adds `"truncated":true`
    /// when something was dropped.
    pub(crate) fn finish(mut self) -> Option<String> {
        if self.dropped {
            if self.out.is_empty() {
                self.out.push_str("{\"truncated\":true");
            } else {
                self.out.push_str(Self::TRUNCATED_MARK);
            }
        }
        if self.out.is_empty() {
            None
        } else {
            self.out.push('}');
            Some(self.out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cves_normalise_and_find() {
        assert_eq!(
            normalise_cve("cve-2021-26855").as_deref(),
            Some("CVE-2021-26855")
        );
        assert_eq!(normalise_cve("CVE-2021-123"), None);
        assert_eq!(normalise_cve("CVE-21-12345"), None);
        assert_eq!(
            cves_in_text("IDs:  CVE:CVE-2017-0143  BID:1\nsee cve-2017-0144-foo, xCVE-2000-1111"),
            vec!["CVE-2017-0143".to_owned(), "CVE-2017-0144".to_owned()]
        );
    }

    #[test]
    fn times() {
        assert_eq!(
            parse_rfc3339_utc("2021-05-20T11:11:01.667748+03:00")
                .unwrap()
                .to_rfc3339(),
            "2021-05-20T08:11:01.667748+00:00"
        );
        assert_eq!(
            parse_rfc3339_utc("2021-03-05T10:00:00").unwrap_err(),
            "time \"2021-03-05T10:00:00\" has no time zone (use RFC 3339, e.g. 2021-03-05T10:00:00Z)"
        );
        assert!(
            parse_rfc3339_utc("yesterday")
                .unwrap_err()
                .contains("not an RFC 3339")
        );
        assert_eq!(parse_epoch("1629960470").unwrap().timestamp(), 1629960470);
        assert!(parse_epoch("soon").is_err());
    }

    #[test]
    fn ports_and_protocols() {
        assert_eq!(parse_port(&Loose::U64(443)), Ok(443));
        assert_eq!(parse_port_text("8080"), Ok(8080));
        assert_eq!(
            parse_port(&Loose::U64(70000)).unwrap_err(),
            "port 70000 is out of range (0–65535)"
        );
        assert!(parse_port(&Loose::I64(-1)).is_err());
        assert!(parse_port(&Loose::Array).unwrap_err().contains("an array"));
        assert_eq!(normalise_protocol("UDP").unwrap(), "udp");
        assert!(normalise_protocol("t c p").is_err());
    }

    #[test]
    fn evidence_builder_caps_strings_and_total() {
        let mut ev = EvidenceBuilder::new();
        ev.str("a", &"x".repeat(5000));
        let s = ev.finish().unwrap();
        assert!(s.len() < 1100, "{}", s.len());
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert!(v["a"].as_str().unwrap().ends_with('…'));

        let mut ev = EvidenceBuilder::new();
        for i in 0..40 {
            ev.str(&format!("k{i}"), &"y".repeat(1000));
        }
        let items: Vec<String> = (0..2000).map(|i| format!("{i}")).collect();
        ev.list("many", &items);
        let s = ev.finish().unwrap();
        assert!(s.len() <= MAX_EVIDENCE_BYTES);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["truncated"], true);
    }

    #[test]
    fn compaction_keeps_string_whitespace() {
        assert_eq!(
            compact_json("{ \"a b\" : [ 1, 2 ] ,\n\"c\":\"\\\" x\" }"),
            "{\"a b\":[1,2],\"c\":\"\\\" x\"}"
        );
        assert!(matches!(compact_json("{\"a\":1}"), Cow::Borrowed(_)));
    }

    #[test]
    fn placeholder_asns() {
        assert!(is_placeholder_asn(64512));
        assert!(is_placeholder_asn(0));
        assert!(!is_placeholder_asn(7018));
    }
}
