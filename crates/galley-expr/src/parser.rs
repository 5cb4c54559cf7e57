//! Tokens → [`Ast`]: `expr := and ("||" and)*`, `and := primary ("&&" primary)*`,
//! `primary := "(" expr ")" | operand OP operand`, `operand := ident | number | text |
//! ident "(" operand ("," operand)* ")"`.

use crate::ast::{Ast, CmpOp, Comparison, Node, Operand, Span};
use crate::error::ExprError;
use crate::lexer::{tokenize, Tok, Token};

/// Longest accepted expression, in characters.
pub const MAX_LEN: usize = 3500;
/// Most comparisons in one expression.
pub const MAX_EXPRESSIONS: usize = 200;
/// Deepest parenthesis nesting.
pub const MAX_DEPTH: usize = 32;
/// Deepest function-call nesting.
pub const MAX_FUNC_DEPTH: usize = 2;
/// Most arguments of a function call.
pub const MAX_FUNC_ARGS: usize = 10;

/// Parses an expression, enforcing the length, nesting and expression-count limits.
pub fn parse(src: &str) -> Result<Ast, ExprError> {
    let len = src.chars().count();
    if len > MAX_LEN {
        return Err(ExprError::TooLong { len, max: MAX_LEN });
    }
    let tokens = tokenize(src)?;
    if tokens.is_empty() {
        return Err(ExprError::Empty);
    }
    let mut p = Parser {
        tokens,
        pos: 0,
        end: src.len(),
        comparisons: 0,
    };
    let root = p.expr(0)?;
    if let Some(t) = p.peek() {
        let msg = match t.tok {
            Tok::RParen => "unexpected \")\"",
            _ => "expected \"&&\" or \"||\"",
        };
        return Err(ExprError::syntax(t.span.start, msg));
    }
    Ok(Ast {
        root,
        comparisons: p.comparisons,
    })
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    end: usize,
    comparisons: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn here(&self) -> usize {
        self.peek().map_or(self.end, |t| t.span.start)
    }

    fn expr(&mut self, depth: usize) -> Result<Node, ExprError> {
        let mut items = vec![self.and(depth)?];
        while matches!(self.peek().map(|t| &t.tok), Some(Tok::Or)) {
            self.next();
            items.push(self.and(depth)?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Node::Or(items)
        })
    }

    fn and(&mut self, depth: usize) -> Result<Node, ExprError> {
        let mut items = vec![self.primary(depth)?];
        while matches!(self.peek().map(|t| &t.tok), Some(Tok::And)) {
            self.next();
            items.push(self.primary(depth)?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Node::And(items)
        })
    }

    fn primary(&mut self, depth: usize) -> Result<Node, ExprError> {
        let pos = self.here();
        if matches!(self.peek().map(|t| &t.tok), Some(Tok::LParen)) {
            if depth >= MAX_DEPTH {
                return Err(ExprError::TooDeep {
                    pos,
                    max: MAX_DEPTH,
                });
            }
            self.next();
            if matches!(self.peek().map(|t| &t.tok), Some(Tok::RParen)) {
                return Err(ExprError::syntax(pos, "empty group"));
            }
            let inner = self.expr(depth + 1)?;
            match self.next() {
                Some(Token {
                    tok: Tok::RParen, ..
                }) => Ok(inner),
                Some(t) => Err(ExprError::syntax(
                    t.span.start,
                    "expected \")\", \"&&\" or \"||\"",
                )),
                None => Err(ExprError::syntax(pos, "unclosed \"(\"")),
            }
        } else {
            self.comparison()
        }
    }

    fn comparison(&mut self) -> Result<Node, ExprError> {
        let left = self.operand(0)?;
        let (op, op_span) = match self.next() {
            Some(Token {
                tok: Tok::Op(op),
                span,
            }) => (op, span),
            Some(t) => return Err(ExprError::syntax(t.span.start, "expected an operator")),
            None => return Err(ExprError::syntax(self.end, "expected an operator")),
        };
        let _ = op_span;
        let right = self.operand(0)?;
        self.comparisons += 1;
        if self.comparisons > MAX_EXPRESSIONS {
            return Err(ExprError::TooManyExpressions {
                max: MAX_EXPRESSIONS,
            });
        }
        let span = Span::new(left.span().start, right.span().end);
        Ok(Node::Cmp(Comparison {
            left,
            op,
            right,
            span,
        }))
    }

    fn operand(&mut self, fdepth: usize) -> Result<Operand, ExprError> {
        let Some(t) = self.next() else {
            return Err(ExprError::syntax(self.end, "expected an operand"));
        };
        match t.tok {
            Tok::Text(value) => Ok(Operand::Text {
                value,
                span: t.span,
            }),
            Tok::Number(raw) => {
                let value: f64 = raw
                    .parse()
                    .map_err(|_| ExprError::syntax(t.span.start, "invalid number"))?;
                if !value.is_finite() {
                    return Err(ExprError::syntax(t.span.start, "number out of range"));
                }
                Ok(Operand::Number {
                    value,
                    span: t.span,
                })
            }
            Tok::Ident(name) => {
                let call = matches!(self.peek(), Some(Token { tok: Tok::LParen, span }) if span.start == t.span.end);
                if !call {
                    return Ok(Operand::Ident { name, span: t.span });
                }
                if fdepth >= MAX_FUNC_DEPTH {
                    return Err(ExprError::TooDeep {
                        pos: t.span.start,
                        max: MAX_FUNC_DEPTH,
                    });
                }
                if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(ExprError::syntax(t.span.start, "invalid function name"));
                }
                self.next();
                let mut args = Vec::new();
                if matches!(self.peek().map(|t| &t.tok), Some(Tok::RParen)) {
                    let close = self.next().map_or(self.end, |t| t.span.end);
                    return Ok(Operand::Func {
                        name,
                        args,
                        span: Span::new(t.span.start, close),
                    });
                }
                loop {
                    args.push(self.operand(fdepth + 1)?);
                    if args.len() > MAX_FUNC_ARGS {
                        return Err(ExprError::syntax(
                            t.span.start,
                            "too many function arguments",
                        ));
                    }
                    match self.next() {
                        Some(Token {
                            tok: Tok::Comma, ..
                        }) => continue,
                        Some(Token {
                            tok: Tok::RParen,
                            span,
                        }) => {
                            return Ok(Operand::Func {
                                name,
                                args,
                                span: Span::new(t.span.start, span.end),
                            })
                        }
                        Some(o) => {
                            return Err(ExprError::syntax(o.span.start, "expected \",\" or \")\""))
                        }
                        None => {
                            return Err(ExprError::syntax(t.span.start, "unclosed function call"))
                        }
                    }
                }
            }
            _ => Err(ExprError::syntax(t.span.start, "expected an operand")),
        }
    }
}

impl CmpOp {
    /// Whether the operator is a LIKE form.
    pub fn is_like(self) -> bool {
        matches!(self.base(), CmpOp::Like | CmpOp::NotLike)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(src: &str) -> ExprError {
        parse(src).expect_err(src)
    }

    #[test]
    fn precedence_and_over_or() {
        let ast = parse("a = 1 || b = 2 && c = 3").expect("parse");
        let Node::Or(items) = ast.root else {
            panic!("expected or")
        };
        assert!(matches!(items[0], Node::Cmp(_)));
        assert!(matches!(&items[1], Node::And(v) if v.len() == 2));
        assert_eq!(ast.comparisons, 3);
    }

    #[test]
    fn tokens_and_spans() {
        let toks = tokenize("tags.title ?!= 'a\\'b' // c\n&& -1.5>=x").expect("lex");
        let kinds: Vec<Tok> = toks.iter().map(|t| t.tok.clone()).collect();
        assert_eq!(
            kinds,
            vec![
                Tok::Ident("tags.title".into()),
                Tok::Op(CmpOp::AnyNeq),
                Tok::Text("a'b".into()),
                Tok::And,
                Tok::Number("-1.5".into()),
                Tok::Op(CmpOp::Gte),
                Tok::Ident("x".into()),
            ]
        );
        assert_eq!(toks[1].span, Span::new(11, 14));
        assert_eq!(toks[2].span, Span::new(15, 21));
    }

    #[test]
    fn functions() {
        let ast = parse("geoDistance(loc.lon, loc.lat, 1, 2.5) < 3").expect("parse");
        let Node::Cmp(c) = ast.root else {
            panic!("cmp")
        };
        assert!(
            matches!(&c.left, Operand::Func { name, args, .. } if name == "geoDistance" && args.len() == 4)
        );
        assert!(matches!(
            err("f(f(f(1))) = 1"),
            ExprError::TooDeep { pos: 4, .. }
        ));
    }

    #[test]
    fn errors_have_positions() {
        assert_eq!(err(""), ExprError::Empty);
        assert_eq!(err("  // just a comment"), ExprError::Empty);
        assert_eq!(err("a = 'x"), ExprError::syntax(4, "unterminated text"));
        assert_eq!(err("a = 1 &"), ExprError::syntax(6, "expected \"&&\""));
        assert_eq!(err("a 1"), ExprError::syntax(2, "expected an operator"));
        assert_eq!(err("a ="), ExprError::syntax(3, "expected an operand"));
        assert_eq!(err("(a = 1"), ExprError::syntax(0, "unclosed \"(\""));
        assert_eq!(err("a = 1)"), ExprError::syntax(5, "unexpected \")\""));
        assert_eq!(
            err("a = 1 b = 2"),
            ExprError::syntax(6, "expected \"&&\" or \"||\"")
        );
        assert_eq!(err("a ! b"), ExprError::syntax(2, "invalid operator"));
        assert_eq!(err("a = 12abc"), ExprError::syntax(6, "invalid number"));
        assert_eq!(
            err("a = $"),
            ExprError::syntax(4, "unexpected character '$'")
        );
        assert_eq!(err("()"), ExprError::syntax(0, "empty group"));
        assert!(err("a = 1 ||").to_string().contains("position 8"));
    }

    #[test]
    fn comments_and_whitespace() {
        let ast = parse("// first\n a=1 // trailing\n\t&&\r\nb!=\"x\"").expect("parse");
        assert_eq!(ast.comparisons, 2);
    }
}
