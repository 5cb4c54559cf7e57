use crate::{Dialect, SqlValue};

/// A SQL fragment with its bound parameters. Values only ever enter SQL through
/// [`Sql::push_param`], which writes the dialect's placeholder.
#[derive(Debug, Clone)]
pub struct Sql {
    pub text: String,
    pub params: Vec<SqlValue>,
    dialect: &'static Dialect,
}

impl Sql {
    pub fn new(dialect: &'static Dialect) -> Self {
        Sql {
            text: String::new(),
            params: Vec::new(),
            dialect,
        }
    }

    pub fn dialect(&self) -> &'static Dialect {
        self.dialect
    }

    /// Appends trusted SQL text (keywords, operators, already-quoted identifiers).
    pub fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }

    /// Appends a quoted identifier.
    pub fn ident(&mut self, name: &str) -> &mut Self {
        self.dialect.quote_into(&mut self.text, name);
        self
    }

    /// Appends `"table"."column"`.
    pub fn qualified(&mut self, table: &str, column: &str) -> &mut Self {
        self.ident(table).push(".").ident(column)
    }

    /// Binds a value and appends its placeholder.
    pub fn push_param(&mut self, v: impl Into<SqlValue>) -> &mut Self {
        self.params.push(v.into());
        self.dialect
            .placeholder_into(&mut self.text, self.params.len());
        self
    }

    /// Binds a value and appends `wrap(placeholder)`, e.g. `LOWER(?1)`.
    pub fn push_param_with(
        &mut self,
        v: impl Into<SqlValue>,
        wrap: impl FnOnce(&str) -> String,
    ) -> &mut Self {
        self.params.push(v.into());
        let mut p = String::new();
        self.dialect.placeholder_into(&mut p, self.params.len());
        self.text.push_str(&wrap(&p));
        self
    }

    /// Appends another fragment, renumbering its placeholders after ours.
    pub fn append(&mut self, other: &Sql) -> &mut Self {
        if other.params.is_empty() {
            self.text.push_str(&other.text);
            return self;
        }
        let offset = self.params.len();
        self.dialect
            .renumber_into(&mut self.text, &other.text, offset);
        self.params.extend(other.params.iter().cloned());
        self
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }
}
