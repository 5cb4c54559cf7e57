//! SQL values, parameterised fragments and the [`Dialect`]: the one place where SQLite and
//! PostgreSQL SQL differ. Both the expression engine and the store build SQL through this
//! crate, so a value is always a bound parameter and an identifier is always quoted here.

mod dialect;
mod fragment;
mod value;

pub use dialect::{Dialect, POSTGRES, SQLITE};
pub use fragment::Sql;
pub use value::{ColumnType, SqlValue};
