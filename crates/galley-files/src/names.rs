//! Stored file names: PocketBase's normalisation (snake_case ASCII stem, cleaned extension,
//! a random suffix), so names are safe as one path segment and cannot be guessed.

use rand::Rng;

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

fn random(n: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// The last path component of a client-supplied name (clients send `C:\x\y.png` or
/// `../../etc/passwd`; only the final part is a file name).
fn base_name(name: &str) -> &str {
    name.rsplit(['/', '\\']).next().unwrap_or(name)
}

/// `.tar.gz`-style: the last two dotted parts when there are two, else the last one.
fn extension(name: &str) -> &str {
    let Some(primary) = name.rfind('.') else {
        return "";
    };
    match name[..primary].rfind('.') {
        Some(secondary) => &name[secondary..],
        None => &name[primary..],
    }
}

/// PocketBase's `inflector.Snakecase`: split at ASCII non-word characters, break before
/// an uppercase letter that follows a lowercase one, lowercase everything.
fn snake_case(s: &str) -> String {
    let mut out = String::new();
    for word in s.split(|c: char| !(c.is_ascii_alphanumeric())) {
        if word.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push('_');
        }
        let mut prev_upper = true;
        for (i, c) in word.chars().enumerate() {
            if c.is_ascii_uppercase() && i > 0 && !prev_upper {
                out.push('_');
            }
            prev_upper = c.is_ascii_uppercase();
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// The name a new upload is stored under. `detected_ext` (e.g. `.png`, from the content)
/// is used when the client's name has no usable extension.
pub fn normalize(original: &str, detected_ext: &str) -> String {
    let name = base_name(original);
    let ext = extension(name);
    let mut clean_ext: String = ext
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "_.*-+=#".contains(*c))
        .collect();
    if clean_ext.is_empty() {
        clean_ext = detected_ext.to_owned();
    }
    if clean_ext.len() > 20 {
        clean_ext = format!(".{}", &clean_ext[clean_ext.len() - 20..]);
    }
    let mut stem = snake_case(&name[..name.len() - ext.len()]);
    if stem.len() < 3 {
        stem.push_str(&random(10));
    } else if stem.len() > 100 {
        stem.truncate(100);
    }
    format!("{stem}_{}{clean_ext}", random(10))
}

/// Whether `name` can be a stored file name: one path segment, not hidden, 1–150 bytes.
/// Names that come back from clients (existing files to keep) are checked with it too.
pub fn is_safe(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 150
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
        && !name.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(n: &str) -> (String, String) {
        // stem_RANDOM.ext → (stem, ext)
        let (head, ext) = match n.find('.') {
            Some(i) => (&n[..i], &n[i..]),
            None => (n, ""),
        };
        let (stem, rand) = head.rsplit_once('_').expect("suffix");
        assert_eq!(rand.len(), 10, "{n}");
        (stem.to_owned(), ext.to_owned())
    }

    #[test]
    fn matches_pocketbase() {
        assert_eq!(
            shape(&normalize("red.png", "")),
            ("red".into(), ".png".into())
        );
        assert_eq!(
            shape(&normalize("My Photo (1).PNG", "")),
            ("my_photo_1".into(), ".PNG".into())
        );
        assert_eq!(
            shape(&normalize("../../etc/passwd", ".txt")),
            ("passwd".into(), ".txt".into())
        );
        assert_eq!(
            shape(&normalize("ünï cødé.tar.gz", "")),
            ("n_c_d".into(), ".tar.gz".into())
        );
        assert_eq!(
            shape(&normalize("camelCaseName.js", "")).0,
            "camel_case_name"
        );
        // Short stems get a random part first.
        let (stem, ext) = shape(&normalize("a.txt", ""));
        assert_eq!((stem.len(), ext.as_str()), (11, ".txt"));
        let (stem, ext) = shape(&normalize(".hidden", ""));
        assert_eq!((stem.len(), ext.as_str()), (10, ".hidden"));
    }

    #[test]
    fn hostile_names_stay_one_safe_segment() {
        for n in [
            "..",
            "../..",
            "/",
            "\\..\\..\\windows",
            "a\0b.png",
            "x/../../y.png",
            "\u{202e}gnp.exe",
            "%2e%2e%2fpasswd",
            "....",
            "😀😀😀.png",
            "con.txt",
        ] {
            let out = normalize(n, "");
            assert!(is_safe(&out), "{n:?} -> {out:?}");
            assert!(out.is_ascii(), "{n:?} -> {out:?}");
        }
        let long = "x".repeat(500) + "." + &"e".repeat(50);
        let out = normalize(&long, "");
        assert!(is_safe(&out) && out.len() <= 150, "{}", out.len());
    }

    #[test]
    fn unsafe_names() {
        for n in ["", ".x", "a/b", "a\\b", "../x", "a\nb"] {
            assert!(!is_safe(n), "{n:?}");
        }
        assert!(is_safe("red_abcdefghij.png"));
    }
}
