use thiserror::Error;

/// Everything that can go wrong between the text of an expression and its SQL. Every
/// variant is a client error (400) except [`ExprError::Forbidden`] (403). Positions are
/// byte offsets into the expression.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ExprError {
    #[error("empty expression")]
    Empty,
    #[error("syntax error at position {pos}: {msg}")]
    Syntax { pos: usize, msg: String },
    #[error("unknown field {name:?} at position {pos}")]
    UnknownField { name: String, pos: usize },
    #[error("non-filterable field {name:?} at position {pos}")]
    HiddenField { name: String, pos: usize },
    #[error("only superusers can use @request.* and @collection.* in filter and sort")]
    Forbidden,
    #[error("the expression is too long ({len} characters, at most {max})")]
    TooLong { len: usize, max: usize },
    #[error("too deeply nested at position {pos} (at most {max} levels of parentheses)")]
    TooDeep { pos: usize, max: usize },
    #[error("too many expressions (at most {max})")]
    TooManyExpressions { max: usize },
    #[error("too many joined collections (at most {max})")]
    TooManyJoins { max: usize },
    #[error("max nested relations reached at position {pos} (at most {max})")]
    TooManyRelations { pos: usize, max: usize },
    #[error("invalid expression at position {pos}: {msg}")]
    Invalid { pos: usize, msg: String },
    #[error("invalid sort: {msg}")]
    InvalidSort { msg: String },
}

impl ExprError {
    pub(crate) fn syntax(pos: usize, msg: impl Into<String>) -> Self {
        ExprError::Syntax {
            pos,
            msg: msg.into(),
        }
    }

    pub(crate) fn invalid(pos: usize, msg: impl Into<String>) -> Self {
        ExprError::Invalid {
            pos,
            msg: msg.into(),
        }
    }

    /// Whether the API should answer 403 rather than 400.
    pub fn is_forbidden(&self) -> bool {
        matches!(self, ExprError::Forbidden)
    }
}
