//! The syntax tree. Every node keeps the byte span it was parsed from so that later errors
//! can point at the source.

/// A byte range `[start, end)` of the expression text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }
}

/// Comparison operators; the `Any*` forms are the `?`-prefixed "at least one" variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Neq,
    Like,
    NotLike,
    Lt,
    Lte,
    Gt,
    Gte,
    AnyEq,
    AnyNeq,
    AnyLike,
    AnyNotLike,
    AnyLt,
    AnyLte,
    AnyGt,
    AnyGte,
}

impl CmpOp {
    pub fn to_any(self) -> CmpOp {
        match self {
            CmpOp::Eq => CmpOp::AnyEq,
            CmpOp::Neq => CmpOp::AnyNeq,
            CmpOp::Like => CmpOp::AnyLike,
            CmpOp::NotLike => CmpOp::AnyNotLike,
            CmpOp::Lt => CmpOp::AnyLt,
            CmpOp::Lte => CmpOp::AnyLte,
            CmpOp::Gt => CmpOp::AnyGt,
            CmpOp::Gte => CmpOp::AnyGte,
            any => any,
        }
    }

    /// The operator without its `?`.
    pub fn base(self) -> CmpOp {
        match self {
            CmpOp::AnyEq => CmpOp::Eq,
            CmpOp::AnyNeq => CmpOp::Neq,
            CmpOp::AnyLike => CmpOp::Like,
            CmpOp::AnyNotLike => CmpOp::NotLike,
            CmpOp::AnyLt => CmpOp::Lt,
            CmpOp::AnyLte => CmpOp::Lte,
            CmpOp::AnyGt => CmpOp::Gt,
            CmpOp::AnyGte => CmpOp::Gte,
            plain => plain,
        }
    }

    pub fn is_any(self) -> bool {
        self.base() != self
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Neq => "!=",
            CmpOp::Like => "~",
            CmpOp::NotLike => "!~",
            CmpOp::Lt => "<",
            CmpOp::Lte => "<=",
            CmpOp::Gt => ">",
            CmpOp::Gte => ">=",
            CmpOp::AnyEq => "?=",
            CmpOp::AnyNeq => "?!=",
            CmpOp::AnyLike => "?~",
            CmpOp::AnyNotLike => "?!~",
            CmpOp::AnyLt => "?<",
            CmpOp::AnyLte => "?<=",
            CmpOp::AnyGt => "?>",
            CmpOp::AnyGte => "?>=",
        }
    }
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// A field path, macro, `@request.*`/`@collection.*` path, or `null`/`true`/`false`.
    Ident {
        name: String,
        span: Span,
    },
    Text {
        value: String,
        span: Span,
    },
    Number {
        value: f64,
        span: Span,
    },
    Func {
        name: String,
        args: Vec<Operand>,
        span: Span,
    },
}

impl Operand {
    pub fn span(&self) -> Span {
        match self {
            Operand::Ident { span, .. }
            | Operand::Text { span, .. }
            | Operand::Number { span, .. }
            | Operand::Func { span, .. } => *span,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub left: Operand,
    pub op: CmpOp,
    pub right: Operand,
    pub span: Span,
}

/// A boolean expression; `&&` binds tighter than `||`.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Or(Vec<Node>),
    And(Vec<Node>),
    Cmp(Comparison),
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Ast {
    pub root: Node,
    /// Number of comparisons in the expression.
    pub comparisons: usize,
}
