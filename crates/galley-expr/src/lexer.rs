//! Text → tokens. Every token carries its byte span; comments (`// …` to end of line) and
//! whitespace are dropped.

use crate::ast::{CmpOp, Span};
use crate::error::ExprError;

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// Identifier: starts with a letter, `_`, `@` or `#`; continues with letters, digits,
    /// `_`, `.`, `:`.
    Ident(String),
    /// Number literal (`12`, `-1.5`), kept as written.
    Number(String),
    /// Quoted text with `\<quote>` and `\\` unescaped.
    Text(String),
    Op(CmpOp),
    And,
    Or,
    LParen,
    RParen,
    Comma,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub tok: Tok,
    pub span: Span,
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || c == '@' || c == '#'
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '.' || c == ':'
}

/// Splits `src` into tokens.
pub fn tokenize(src: &str) -> Result<Vec<Token>, ExprError> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut chars = src.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let next_is = |off: usize, b: u8| bytes.get(start + off) == Some(&b);
        // comment
        if c == '/' && next_is(1, b'/') {
            while let Some(&(_, c)) = chars.peek() {
                if c == '\n' {
                    break;
                }
                chars.next();
            }
            continue;
        }
        let single = |tok: Tok| Token {
            tok,
            span: Span::new(start, start + 1),
        };
        match c {
            '(' => {
                chars.next();
                out.push(single(Tok::LParen));
            }
            ')' => {
                chars.next();
                out.push(single(Tok::RParen));
            }
            ',' => {
                chars.next();
                out.push(single(Tok::Comma));
            }
            '&' | '|' => {
                if !next_is(1, c as u8) {
                    return Err(ExprError::syntax(start, format!("expected \"{c}{c}\"")));
                }
                chars.next();
                chars.next();
                out.push(Token {
                    tok: if c == '&' { Tok::And } else { Tok::Or },
                    span: Span::new(start, start + 2),
                });
            }
            '=' | '!' | '>' | '<' | '~' | '?' => {
                let mut end = start;
                let any = c == '?';
                if any {
                    end += 1;
                }
                let rest = &src[end..];
                let (op, len) = if rest.starts_with("!=") {
                    (CmpOp::Neq, 2)
                } else if rest.starts_with("!~") {
                    (CmpOp::NotLike, 2)
                } else if rest.starts_with(">=") {
                    (CmpOp::Gte, 2)
                } else if rest.starts_with("<=") {
                    (CmpOp::Lte, 2)
                } else if rest.starts_with('=') {
                    (CmpOp::Eq, 1)
                } else if rest.starts_with('>') {
                    (CmpOp::Gt, 1)
                } else if rest.starts_with('<') {
                    (CmpOp::Lt, 1)
                } else if rest.starts_with('~') {
                    (CmpOp::Like, 1)
                } else {
                    return Err(ExprError::syntax(start, "invalid operator"));
                };
                end += len;
                while chars.peek().is_some_and(|&(i, _)| i < end) {
                    chars.next();
                }
                out.push(Token {
                    tok: Tok::Op(if any { op.to_any() } else { op }),
                    span: Span::new(start, end),
                });
            }
            '\'' | '"' => {
                chars.next();
                let mut value = String::new();
                let mut closed = false;
                while let Some((_, ch)) = chars.next() {
                    if ch == '\\' {
                        // `\<quote>` and `\\` are escapes (as in fexpr); any other backslash stays.
                        if let Some(&(_, q)) = chars.peek() {
                            if q == c || q == '\\' {
                                chars.next();
                                value.push(q);
                                continue;
                            }
                        }
                        value.push('\\');
                        continue;
                    }
                    if ch == '\0' {
                        // fexpr reads NUL as the end of input: the text is unterminated.
                        break;
                    }
                    if ch == c {
                        closed = true;
                        break;
                    }
                    value.push(ch);
                }
                if !closed {
                    return Err(ExprError::syntax(start, "unterminated text"));
                }
                let end = chars.peek().map_or(src.len(), |&(i, _)| i);
                out.push(Token {
                    tok: Tok::Text(value),
                    span: Span::new(start, end),
                });
            }
            c if c.is_ascii_digit()
                || (c == '-' && bytes.get(start + 1).is_some_and(u8::is_ascii_digit)) =>
            {
                chars.next();
                let mut end = start + 1;
                let mut seen_dot = false;
                while let Some(&(i, d)) = chars.peek() {
                    if d.is_ascii_digit() {
                        chars.next();
                        end = i + 1;
                    } else if d == '.'
                        && !seen_dot
                        && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)
                    {
                        seen_dot = true;
                        chars.next();
                        end = i + 1;
                    } else {
                        break;
                    }
                }
                if chars.peek().is_some_and(|&(_, d)| is_ident_char(d)) {
                    return Err(ExprError::syntax(end, "invalid number"));
                }
                out.push(Token {
                    tok: Tok::Number(src[start..end].to_owned()),
                    span: Span::new(start, end),
                });
            }
            c if is_ident_start(c) => {
                let mut end = start;
                while let Some(&(i, d)) = chars.peek() {
                    if i == start || is_ident_char(d) {
                        chars.next();
                        end = i + d.len_utf8();
                    } else {
                        break;
                    }
                }
                out.push(Token {
                    tok: Tok::Ident(src[start..end].to_owned()),
                    span: Span::new(start, end),
                });
            }
            other => {
                return Err(ExprError::syntax(
                    start,
                    format!("unexpected character {other:?}"),
                ))
            }
        }
    }
    Ok(out)
}
