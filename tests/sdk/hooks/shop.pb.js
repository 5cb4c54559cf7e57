// The shop of the hooks issue, driven through the official SDK (tests/sdk/test/shop.test.mjs):
// an order takes its quantity from the product's stock in the same transaction, a payment
// stub is called after the commit, and a cron entry cancels unpaid orders.

onRecordCreate((e) => {
    const qty = e.record.getInt("qty")
    if (qty <= 0) throw new BadRequestError("Quantity must be positive.", { qty: new ValidationError("invalid_qty", "Must be positive.") })
    const product = $app.findRecordById("sdk_products", e.record.getString("product"))
    const stock = product.getInt("stock")
    product.set("stock", stock - qty)
    $app.save(product)
    e.record.set("status", "pending")
    e.record.set("total", qty * product.getFloat("price"))
    e.next()
    if (stock < qty) throw new BadRequestError("Not enough stock.", { qty: new ValidationError("out_of_stock", "Only " + stock + " left.") })
}, "sdk_orders")

onRecordAfterCreateSuccess((e) => {
    if (!e.record.getString("payWith")) return e.next()
    const res = $http.send({ url: e.record.getString("payWith"), method: "POST", body: JSON.stringify({ order: e.record.id, total: e.record.getFloat("total") }), headers: { "content-type": "application/json" }, timeout: 5 })
    const order = $app.findRecordById("sdk_orders", e.record.id)
    order.set("status", res.statusCode === 200 && res.json && res.json.ok ? "paid" : "failed")
    $app.save(order)
    e.next()
}, "sdk_orders")

cronAdd("sdkCancelUnpaid", "0 3 * * *", () => {
    for (const o of $app.findRecordsByFilter("sdk_orders", "status = {:s}", "", 0, 0, { s: "pending" })) {
        o.set("status", "cancelled")
        $app.save(o)
    }
})

routerAdd("GET", "/api/shop/stock/{id}", (e) => {
    const p = $app.findRecordById("sdk_products", e.request.pathValue("id"))
    return e.json(200, { id: p.id, stock: p.getInt("stock") })
})
