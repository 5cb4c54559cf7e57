use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// The wire format of every date: `2006-01-02 15:04:05.000Z`, always UTC.
pub const FORMAT: &str = "%Y-%m-%d %H:%M:%S%.3fZ";

pub fn now() -> DateTime<Utc> {
    // Millisecond precision so that what is stored equals what is shown.
    let n = Utc::now();
    Utc.timestamp_millis_opt(n.timestamp_millis())
        .single()
        .unwrap_or(n)
}

pub fn format(t: &DateTime<Utc>) -> String {
    t.format(FORMAT).to_string()
}

pub fn now_string() -> String {
    format(&now())
}

/// Parses the wire format and the other common layouts PocketBase accepts (RFC 3339, with
/// or without fraction and zone, date only).
pub fn parse(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let replaced = s.replacen(' ', "T", 1);
    if let Ok(t) = DateTime::parse_from_rfc3339(&replaced) {
        return Some(t.with_timezone(&Utc));
    }
    let base = replaced.trim_end_matches('Z');
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(base, f) {
            return Some(Utc.from_utc_datetime(&n));
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|n| Utc.from_utc_datetime(&n));
    }
    None
}

/// Normalises a date string to the wire format (truncated to milliseconds).
pub fn normalize(s: &str) -> Option<String> {
    parse(s).map(|t| format(&t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_layouts() {
        assert_eq!(
            normalize("2024-01-02T03:04:05Z").as_deref(),
            Some("2024-01-02 03:04:05.000Z")
        );
        assert_eq!(
            normalize("2024-01-02 03:04:05.123Z").as_deref(),
            Some("2024-01-02 03:04:05.123Z")
        );
        assert_eq!(
            normalize("2024-01-02").as_deref(),
            Some("2024-01-02 00:00:00.000Z")
        );
        assert_eq!(
            normalize("2024-01-02T05:04:05+02:00").as_deref(),
            Some("2024-01-02 03:04:05.000Z")
        );
        assert_eq!(normalize("nope"), None);
    }
}
