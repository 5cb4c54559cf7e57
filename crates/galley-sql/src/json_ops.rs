use crate::{Dialect, Engine};

impl Dialect {
    /// Boolean expression: the JSON string array `col` contains the text bound at `param`.
    pub fn json_array_contains(&self, col: &str, param: &str) -> String {
        match self.engine {
            Engine::Sqlite => format!(
                "EXISTS (SELECT 1 FROM json_each(CASE WHEN json_valid({col}) THEN {col} ELSE '[]' END) WHERE json_each.value = {param})"
            ),
            Engine::Postgres => format!("jsonb_exists({col}, {param})"),
        }
    }
}
