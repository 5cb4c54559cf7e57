//! Content types from a file's first bytes (never from the client's claim), and how a
//! type is served.

/// Bytes of a file's head that sniffing looks at.
pub const SNIFF_LEN: usize = 3072;

/// A sniffed type: the MIME type (with parameters, as served) and an extension for names
/// that have none.
#[derive(Debug, Clone, PartialEq)]
pub struct Sniffed {
    pub mime: String,
    pub ext: String,
}

fn text_kind(head: &[u8]) -> Option<&'static str> {
    if head.contains(&0) {
        return None;
    }
    let text = match std::str::from_utf8(head) {
        Ok(t) => t,
        // A multi-byte character cut at the end of the head is still text.
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&head[..e.valid_up_to()]).ok()?,
        Err(_) => return None,
    };
    let t = text.trim_start_matches('\u{feff}').trim_start();
    let lower: String = t.chars().take(256).collect::<String>().to_ascii_lowercase();
    if lower.starts_with("<svg") || (lower.starts_with("<?xml") && lower.contains("<svg")) {
        return Some("svg");
    }
    if lower.starts_with("<!doctype html") || lower.starts_with("<html") {
        return Some("html");
    }
    Some("text")
}

/// Sniffs the type of a file from its head.
pub fn sniff(head: &[u8]) -> Sniffed {
    if let Some(t) = infer::get(head) {
        return Sniffed {
            mime: t.mime_type().to_owned(),
            ext: format!(".{}", t.extension()),
        };
    }
    let (mime, ext) = match text_kind(head) {
        Some("svg") => ("image/svg+xml", ".svg"),
        Some("html") => ("text/html; charset=utf-8", ".html"),
        Some(_) => ("text/plain; charset=utf-8", ".txt"),
        None => ("application/octet-stream", ""),
    };
    Sniffed {
        mime: mime.to_owned(),
        ext: ext.to_owned(),
    }
}

/// The type without parameters (`text/plain; charset=utf-8` → `text/plain`).
pub fn essence(mime: &str) -> &str {
    mime.split(';').next().unwrap_or(mime).trim()
}

/// Whether a sniffed type matches one of a field's allowed types (`image/*` wildcards
/// allowed, parameters ignored, `image/jpg` as an alias of `image/jpeg`).
pub fn allowed(mime: &str, list: &[String]) -> bool {
    let m = essence(mime).to_ascii_lowercase();
    let canon = |s: &str| {
        if s == "image/jpg" {
            "image/jpeg".to_owned()
        } else {
            s.to_owned()
        }
    };
    let m = canon(&m);
    list.iter().any(|a| {
        let a = canon(&essence(a).to_ascii_lowercase());
        match a.strip_suffix("/*") {
            Some(prefix) => m.split('/').next() == Some(prefix),
            None => a == m,
        }
    })
}

/// Types a page could load as a script or a stylesheet: uploads are never served as
/// these, but as [`PLAIN_TEXT`] (downloads are `nosniff`), so that an uploaded file cannot
/// run as a script of this origin, which a `script-src 'self'` would admit.
const ACTIVE: [&str; 7] = [
    "text/javascript",
    "application/javascript",
    "application/x-javascript",
    "text/ecmascript",
    "application/ecmascript",
    "text/jscript",
    "text/css",
];

/// What scripts and stylesheets are served as.
pub const PLAIN_TEXT: &str = "text/plain; charset=utf-8";

/// The type a download is served with: some extensions force theirs, scripts and
/// stylesheets are plain text (unlike PocketBase), otherwise the sniffed type.
pub fn served_type(filename: &str, sniffed: &str) -> String {
    let lower = filename.to_ascii_lowercase();
    let forced = [
        (".svg", "image/svg+xml"),
        (".css", PLAIN_TEXT),
        (".js", PLAIN_TEXT),
        (".mjs", PLAIN_TEXT),
        (".cjs", PLAIN_TEXT),
        (
            ".xlsx",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ),
    ];
    for (ext, t) in forced {
        if lower.ends_with(ext) {
            return t.to_owned();
        }
    }
    if ACTIVE.contains(&essence(sniffed).to_ascii_lowercase().as_str()) {
        return PLAIN_TEXT.to_owned();
    }
    sniffed.to_owned()
}

/// Types shown in the browser rather than downloaded (PocketBase's list); everything else,
/// SVG and HTML included, is served as an attachment.
pub fn is_inline(mime: &str) -> bool {
    matches!(
        essence(mime),
        "image/png"
            | "image/jpg"
            | "image/jpeg"
            | "image/gif"
            | "image/webp"
            | "image/x-icon"
            | "image/bmp"
            | "video/webm"
            | "video/mp4"
            | "video/3gpp"
            | "video/quicktime"
            | "video/x-ms-wmv"
            | "audio/basic"
            | "audio/aiff"
            | "audio/mpeg"
            | "audio/midi"
            | "audio/mp3"
            | "audio/wave"
            | "audio/wav"
            | "audio/x-wav"
            | "audio/x-mpeg"
            | "audio/x-m4a"
            | "audio/aac"
            | "application/pdf"
            | "application/x-pdf"
    )
}

/// Originals that thumbnails are made from.
pub fn is_thumbable(mime: &str) -> bool {
    matches!(
        essence(mime),
        "image/png" | "image/jpg" | "image/jpeg" | "image/gif" | "image/webp"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

    #[test]
    fn sniffs_content_not_names() {
        assert_eq!(sniff(PNG).mime, "image/png");
        assert_eq!(sniff(b"hello world").mime, "text/plain; charset=utf-8");
        assert_eq!(sniff(b"<svg xmlns='x'></svg>").ext, ".svg");
        assert_eq!(sniff(b"\x00\x01\x02\x03").mime, "application/octet-stream");
        // A UTF-8 character cut by the head's end.
        assert_eq!(sniff("aé".as_bytes().split_at(2).0).ext, ".txt");
        assert_eq!(sniff(b"%PDF-1.7\n").mime, "application/pdf");
    }

    #[test]
    fn allowed_types() {
        let l = vec!["image/png".to_owned(), "text/*".to_owned()];
        assert!(allowed("image/png", &l));
        assert!(allowed("text/plain; charset=utf-8", &l));
        assert!(!allowed("image/jpeg", &l));
        assert!(allowed("image/jpeg", &["image/jpg".to_owned()]));
    }

    #[test]
    fn served() {
        assert_eq!(served_type("x.SVG", "text/plain"), "image/svg+xml");
        assert!(is_inline("image/png"));
        assert!(!is_inline("image/svg+xml"));
        assert!(!is_inline("text/html; charset=utf-8"));
    }
}
