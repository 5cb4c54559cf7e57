//! Collection index definitions. PocketBase stores them as SQL strings; Galley parses them
//! into a small structure (columns must be fields, the WHERE clause is limited to
//! comparisons of fields with literals) and writes the SQL again through the dialect, so a
//! superuser-supplied string never reaches the database as written.

use galley_sql::Dialect;

#[derive(Debug, Clone, PartialEq)]
pub struct IndexColumn {
    pub name: String,
    pub nocase: bool,
    pub desc: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(String),
    Word(String),
    Op(String),
    LParen,
    RParen,
    Comma,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IndexDef {
    pub unique: bool,
    pub name: String,
    pub columns: Vec<IndexColumn>,
    where_clause: Vec<Tok>,
}

const MAX_LEN: usize = 2000;

fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let cs: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < cs.len() {
        let c = cs[i];
        match c {
            _ if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1
            }
            ';' if cs[i + 1..].iter().all(|c| c.is_whitespace()) => i = cs.len(),
            '`' | '"' | '[' => {
                let close = if c == '[' { ']' } else { c };
                let end = cs[i + 1..]
                    .iter()
                    .position(|&x| x == close)
                    .ok_or("unterminated identifier")?;
                let name: String = cs[i + 1..i + 1 + end].iter().collect();
                out.push(Tok::Ident(name));
                i += end + 2;
            }
            '\'' => {
                let mut v = String::new();
                i += 1;
                loop {
                    match cs.get(i) {
                        None => return Err("unterminated string".into()),
                        Some('\'') if cs.get(i + 1) == Some(&'\'') => {
                            v.push('\'');
                            i += 2
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(&ch) => {
                            v.push(ch);
                            i += 1
                        }
                    }
                }
                out.push(Tok::Str(v));
            }
            '0'..='9' | '-' if c != '-' || cs.get(i + 1).is_some_and(char::is_ascii_digit) => {
                let start = i;
                i += 1;
                while i < cs.len() && (cs[i].is_ascii_digit() || cs[i] == '.') {
                    i += 1;
                }
                out.push(Tok::Num(cs[start..i].iter().collect()));
            }
            '=' | '!' | '<' | '>' => {
                let two: String = cs[i..(i + 2).min(cs.len())].iter().collect();
                let op = if ["!=", "<>", "<=", ">="].contains(&two.as_str()) {
                    two
                } else {
                    c.to_string()
                };
                if op == "!" {
                    return Err("unexpected '!'".into());
                }
                i += op.len();
                out.push(Tok::Op(op));
            }
            _ if c.is_alphanumeric() || c == '_' => {
                let start = i;
                while i < cs.len() && (cs[i].is_alphanumeric() || cs[i] == '_') {
                    i += 1;
                }
                out.push(Tok::Word(cs[start..i].iter().collect()));
            }
            _ => return Err(format!("unexpected character {c:?}")),
        }
    }
    Ok(out)
}

fn is_kw(t: Option<&Tok>, kw: &str) -> bool {
    matches!(t, Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
}

fn name_of(t: Option<&Tok>) -> Option<String> {
    match t {
        Some(Tok::Ident(s)) | Some(Tok::Word(s)) => Some(s.clone()),
        _ => None,
    }
}

pub fn valid_identifier(s: &str) -> bool {
    !s.is_empty() && s.len() <= 255 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl IndexDef {
    pub fn parse(s: &str) -> Result<IndexDef, String> {
        if s.len() > MAX_LEN {
            return Err("index definition is too long".into());
        }
        let toks = tokenize(s)?;
        let mut p = 0;
        if !is_kw(toks.get(p), "CREATE") {
            return Err("must start with CREATE INDEX".into());
        }
        p += 1;
        let unique = is_kw(toks.get(p), "UNIQUE");
        if unique {
            p += 1;
        }
        if !is_kw(toks.get(p), "INDEX") {
            return Err("expected INDEX".into());
        }
        p += 1;
        if is_kw(toks.get(p), "IF") {
            if !(is_kw(toks.get(p + 1), "NOT") && is_kw(toks.get(p + 2), "EXISTS")) {
                return Err("expected IF NOT EXISTS".into());
            }
            p += 3;
        }
        let name = name_of(toks.get(p)).ok_or("expected the index name")?;
        if !valid_identifier(&name) {
            return Err("index names may only contain letters, digits and _".into());
        }
        p += 1;
        if !is_kw(toks.get(p), "ON") {
            return Err("expected ON".into());
        }
        p += 1;
        name_of(toks.get(p)).ok_or("expected the table name")?;
        p += 1;
        if toks.get(p) != Some(&Tok::LParen) {
            return Err("expected ( and the indexed columns".into());
        }
        p += 1;
        let mut columns = Vec::new();
        loop {
            let col = name_of(toks.get(p)).ok_or("expected a column name")?;
            p += 1;
            let mut c = IndexColumn {
                name: col,
                nocase: false,
                desc: false,
            };
            loop {
                if is_kw(toks.get(p), "COLLATE") {
                    match name_of(toks.get(p + 1)) {
                        Some(n) if n.eq_ignore_ascii_case("NOCASE") => c.nocase = true,
                        Some(n) if n.eq_ignore_ascii_case("BINARY") => {}
                        _ => return Err("only COLLATE NOCASE is supported".into()),
                    }
                    p += 2;
                } else if is_kw(toks.get(p), "DESC") {
                    c.desc = true;
                    p += 1;
                } else if is_kw(toks.get(p), "ASC") {
                    p += 1;
                } else {
                    break;
                }
            }
            columns.push(c);
            match toks.get(p) {
                Some(Tok::Comma) => p += 1,
                Some(Tok::RParen) => {
                    p += 1;
                    break;
                }
                _ => return Err("expected , or )".into()),
            }
        }
        let mut where_clause = Vec::new();
        if is_kw(toks.get(p), "WHERE") {
            where_clause = toks[p + 1..].to_vec();
            if where_clause.is_empty() {
                return Err("empty WHERE clause".into());
            }
            let mut depth = 0i32;
            for t in &where_clause {
                match t {
                    Tok::LParen => depth += 1,
                    Tok::RParen => depth -= 1,
                    Tok::Comma => return Err("unexpected , in WHERE".into()),
                    Tok::Word(w) => {
                        let up = w.to_ascii_uppercase();
                        if !["AND", "OR", "NOT", "IS", "NULL", "TRUE", "FALSE"]
                            .contains(&up.as_str())
                        {
                            // A bare word is a column name.
                            if !valid_identifier(w) {
                                return Err(format!("unexpected {w:?} in WHERE"));
                            }
                        }
                    }
                    _ => {}
                }
                if !(0..=8).contains(&depth) {
                    return Err("unbalanced parentheses in WHERE".into());
                }
            }
            if depth != 0 {
                return Err("unbalanced parentheses in WHERE".into());
            }
        } else if p < toks.len() {
            return Err("unexpected text after the column list".into());
        }
        Ok(IndexDef {
            unique,
            name,
            columns,
            where_clause,
        })
    }

    /// Names of the columns the WHERE clause mentions.
    pub fn where_columns(&self) -> Vec<String> {
        self.where_clause
            .iter()
            .filter_map(|t| match t {
                Tok::Ident(s) => Some(s.clone()),
                Tok::Word(w)
                    if !["AND", "OR", "NOT", "IS", "NULL", "TRUE", "FALSE"]
                        .contains(&w.to_ascii_uppercase().as_str()) =>
                {
                    Some(w.clone())
                }
                _ => None,
            })
            .collect()
    }

    fn render(
        &self,
        table: &str,
        quote: &dyn Fn(&str) -> String,
        nocase: &dyn Fn(&str) -> String,
    ) -> String {
        let cols: Vec<String> = self
            .columns
            .iter()
            .map(|c| {
                let mut s = if c.nocase {
                    nocase(&quote(&c.name))
                } else {
                    quote(&c.name)
                };
                if c.desc {
                    s.push_str(" DESC");
                }
                s
            })
            .collect();
        let mut out = format!(
            "CREATE {}INDEX {} ON {} ({})",
            if self.unique { "UNIQUE " } else { "" },
            quote(&self.name),
            quote(table),
            cols.join(", ")
        );
        if !self.where_clause.is_empty() {
            out.push_str(" WHERE");
            for t in &self.where_clause {
                out.push(' ');
                match t {
                    Tok::Ident(s) => out.push_str(&quote(s)),
                    Tok::Word(w) => {
                        let up = w.to_ascii_uppercase();
                        if ["AND", "OR", "NOT", "IS", "NULL", "TRUE", "FALSE"]
                            .contains(&up.as_str())
                        {
                            out.push_str(&up)
                        } else {
                            out.push_str(&quote(w))
                        }
                    }
                    // DDL takes no bound parameters: literals are written with quotes doubled.
                    Tok::Str(s) => {
                        out.push('\'');
                        out.push_str(&s.replace('\'', "''"));
                        out.push('\'');
                    }
                    Tok::Num(n) => out.push_str(n),
                    Tok::Op(o) => out.push_str(o),
                    Tok::LParen => out.push('('),
                    Tok::RParen => out.push(')'),
                    Tok::Comma => out.push(','),
                }
            }
        }
        out
    }

    /// The statement for `d`, on `table`.
    pub fn to_sql(&self, d: &Dialect, table: &str) -> String {
        self.render(table, &|s| d.quote(s), &|q| d.nocase_index_key(q))
    }

    /// The canonical text stored and shown, in PocketBase's backtick style.
    pub fn display(&self, table: &str) -> String {
        self.render(table, &|s| format!("`{s}`"), &|q| {
            format!("{q} COLLATE NOCASE")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use galley_sql::{POSTGRES, SQLITE};

    #[test]
    fn parses_and_renders() {
        let i = IndexDef::parse("CREATE UNIQUE INDEX `idx_email` ON `users` (`email` COLLATE NOCASE) WHERE `email` != ''")
            .expect("parse");
        assert!(i.unique);
        assert_eq!(i.display("users"), "CREATE UNIQUE INDEX `idx_email` ON `users` (`email` COLLATE NOCASE) WHERE `email` != ''");
        assert_eq!(
            i.to_sql(&POSTGRES, "users"),
            "CREATE UNIQUE INDEX \"idx_email\" ON \"users\" ((LOWER(\"email\"))) WHERE \"email\" != ''"
        );
        assert_eq!(
            IndexDef::parse("create index idx_t on posts (title, views desc)")
                .expect("p")
                .to_sql(&SQLITE, "posts"),
            "CREATE INDEX \"idx_t\" ON \"posts\" (\"title\", \"views\" DESC)"
        );
    }

    #[test]
    fn rejects_injection() {
        for bad in [
            "CREATE INDEX i ON t (a); DROP TABLE t",
            "CREATE INDEX i ON t (a) WHERE a = (SELECT 1)",
            "CREATE INDEX `i\"x` ON t (a)",
            "DROP TABLE t",
            "CREATE INDEX i ON t (a) WHERE a = 'x",
            "CREATE INDEX i ON t (a) garbage",
        ] {
            let r = IndexDef::parse(bad);
            if let Ok(i) = &r {
                // Anything accepted must re-render with only quoted identifiers and literals.
                let sql = i.to_sql(&SQLITE, "t");
                assert!(!sql.contains(';'), "{bad} -> {sql}");
                // Bare words are column names, which the service checks against the fields.
                assert!(
                    i.where_columns().iter().all(|c| c == "a" || c == "SELECT"),
                    "{bad}"
                );
            }
        }
        assert!(IndexDef::parse("CREATE INDEX i ON t (a); DROP TABLE t").is_err());
        assert!(IndexDef::parse("CREATE INDEX i ON t (a) WHERE a = 'it''s'").is_ok());
    }
}
