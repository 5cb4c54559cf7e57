use rand::Rng;

const ALNUM_LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A random string of `len` characters from `alphabet`, from the OS-seeded thread RNG.
pub fn random_from(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char)
        .collect()
}

/// A 15-character `[a-z0-9]` record id, as PocketBase generates.
pub fn record_id() -> String {
    random_from(ALNUM_LOWER, 15)
}

/// A random `[A-Za-z0-9]` secret (token keys, collection token secrets).
pub fn secret(len: usize) -> String {
    random_from(ALNUM, len)
}

/// `pbc_` + decimal crc32 of type + name: PocketBase's default collection id.
pub fn collection_id(kind: &str, name: &str) -> String {
    format!(
        "pbc_{}",
        crc32fast::hash(format!("{kind}{name}").as_bytes())
    )
}

/// `type` + decimal crc32 of the name: PocketBase's default field id.
pub fn field_id(kind: &str, name: &str) -> String {
    format!("{kind}{}", crc32fast::hash(name.as_bytes()))
}

/// Generates a string for the small regex subset PocketBase uses in `autogeneratePattern`:
/// a sequence of literals and character classes with `{n}` repetition, e.g. `[a-z0-9]{15}`.
/// Returns `None` for a pattern outside that subset.
pub fn generate_from_pattern(pattern: &str) -> Option<String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    let mut out = String::new();
    let mut rng = rand::thread_rng();
    while i < chars.len() {
        let class: Vec<char> = if chars[i] == '[' {
            let end = chars[i..].iter().position(|&c| c == ']')? + i;
            let body = &chars[i + 1..end];
            let mut set = Vec::new();
            let mut j = 0;
            while j < body.len() {
                if j + 2 < body.len() && body[j + 1] == '-' {
                    let (a, b) = (body[j] as u32, body[j + 2] as u32);
                    if a > b {
                        return None;
                    }
                    set.extend((a..=b).filter_map(char::from_u32));
                    j += 3;
                } else {
                    set.push(body[j]);
                    j += 1;
                }
            }
            i = end + 1;
            set
        } else if chars[i] == '\\' && i + 1 < chars.len() {
            i += 2;
            vec![chars[i - 1]]
        } else if "(){}*+?|^$.".contains(chars[i]) {
            return None;
        } else {
            i += 1;
            vec![chars[i - 1]]
        };
        if class.is_empty() {
            return None;
        }
        let mut count = 1usize;
        if i < chars.len() && chars[i] == '{' {
            let end = chars[i..].iter().position(|&c| c == '}')? + i;
            let n: String = chars[i + 1..end].iter().collect();
            count = n.parse().ok().filter(|&n: &usize| n <= 1000)?;
            i = end + 1;
        }
        for _ in 0..count {
            out.push(class[rng.gen_range(0..class.len())]);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_collection_ids() {
        assert_eq!(collection_id("auth", "_superusers"), "pbc_3142635823");
        assert_eq!(field_id("text", "id"), "text3208210256");
        assert_eq!(field_id("autodate", "created"), "autodate2990389176");
    }

    #[test]
    fn pattern_generation() {
        let id = generate_from_pattern("[a-z0-9]{15}").expect("pattern");
        assert_eq!(id.len(), 15);
        assert!(id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
        assert_eq!(generate_from_pattern("ab").as_deref(), Some("ab"));
        assert!(generate_from_pattern("(a|b)").is_none());
    }
}
