//! A shop extended in Rust instead of JavaScript: the same events, routes and checks as the
//! `pb_hooks` example of the README, in a binary of your own.
//!
//! ```sh
//! cargo run --example shop -- ./shop_data 127.0.0.1:8090
//! ```
//!
//! Collections it expects (create them in the dashboard): `products` (name, price, stock)
//! and `orders` (product: relation to products, qty, status).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use galley::extend::{Builder, RecordEvent};
use galley_core::records::system::{self, Find};
use galley_core::{App, AppConfig, CoreError};
use serde_json::{json, Value};
use std::sync::Arc;

/// An order takes its quantity from the product's stock in the same transaction: when the
/// stock is short, the order and the stock change roll back together.
fn take_stock(e: &mut RecordEvent<'_, '_>) -> Result<(), CoreError> {
    let qty = e.record.get("qty").and_then(Value::as_i64).unwrap_or(0);
    if qty <= 0 {
        return Err(CoreError::bad_request("Quantity must be positive."));
    }
    let schema = e.ctx.schema.clone();
    let products = schema
        .find("products")
        .cloned()
        .ok_or_else(|| CoreError::bad_request("There is no products collection."))?;
    let id = e
        .record
        .get("product")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let product = system::find_by_id(e.conn, &products, &id)?;
    let stock = product.get("stock").and_then(Value::as_i64).unwrap_or(0);
    if stock < qty {
        return Err(CoreError::bad_request(format!("Only {stock} left.")));
    }
    let sys = e.ctx.acting_as(system::caller(&schema));
    let mut changed = serde_json::Map::new();
    changed.insert("stock".into(), json!(stock - qty));
    system::save(e.conn, &sys, &products, Some(&id), changed)?;
    e.record.insert("status".into(), json!("pending"));
    e.next()
}

async fn stats(State(app): State<Arc<App>>) -> Result<Json<Value>, String> {
    let schema = app.schema();
    let Some(orders) = schema.find("orders").cloned() else {
        return Ok(Json(json!({"orders": 0})));
    };
    let n = app
        .read(move |c| system::count(c, &schema, &orders, &Find::default()))
        .await
        .map_err(|e| e.to_string())?;
    Ok(Json(json!({ "orders": n })))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| "./shop_data".into());
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8090".into());
    let server = Builder::new(AppConfig::new(dir))
        .on_record_create(&["orders"], take_stock)
        .routes(Router::new().route("/api/shop/stats", get(stats)))
        .open()
        .await?;
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("shop on http://{addr}/api/shop/stats");
    galley::serve(listener, server, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
