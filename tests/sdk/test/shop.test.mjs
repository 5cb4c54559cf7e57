// JavaScript hooks (tests/sdk/hooks/shop.pb.js) through the official SDK: errors arrive as
// ClientResponseError with PocketBase's shape, routes through pb.send, crons through pb.crons.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { client, superuser, rejects } from './helpers.mjs';

async function paymentStub() {
  const calls = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      calls.push(JSON.parse(body));
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ ok: true }));
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}/pay`, calls, close: () => server.close() };
}

test('the shop: stock in the same transaction, payment after the commit, cron clean-up', async () => {
  const su = await superuser();
  for (const name of ['sdk_orders', 'sdk_products']) {
    try { await su.collections.delete(name); } catch (_) { /* not there */ }
  }
  const products = await su.collections.create({
    name: 'sdk_products', listRule: '', viewRule: '',
    fields: [{ name: 'name', type: 'text' }, { name: 'price', type: 'number' }, { name: 'stock', type: 'number' }],
  });
  await su.collections.create({
    name: 'sdk_orders', listRule: '', viewRule: '', createRule: '',
    fields: [
      { name: 'product', type: 'relation', collectionId: products.id, maxSelect: 1 },
      { name: 'qty', type: 'number' }, { name: 'total', type: 'number' },
      { name: 'status', type: 'text' }, { name: 'payWith', type: 'text' },
    ],
  });
  const shoe = await su.collection('sdk_products').create({ name: 'Shoe', price: 50, stock: 3 });
  const pb = client();
  const stub = await paymentStub();
  try {
    const order = await pb.collection('sdk_orders').create({ product: shoe.id, qty: 2, payWith: stub.url });
    assert.equal(order.total, 100);
    assert.deepEqual(stub.calls, [{ order: order.id, total: 100 }], 'paid before the answer');
    assert.equal((await pb.collection('sdk_orders').getOne(order.id)).status, 'paid');
    assert.deepEqual(await pb.send(`/api/shop/stock/${shoe.id}`, {}), { id: shoe.id, stock: 1 });

    const err = await rejects(() => pb.collection('sdk_orders').create({ product: shoe.id, qty: 5 }));
    assert.equal(err.status, 400);
    assert.equal(err.response.message, 'Not enough stock.');
    assert.deepEqual(err.response.data, { qty: { code: 'out_of_stock', message: 'Only 1 left.' } });
    assert.equal((await pb.send(`/api/shop/stock/${shoe.id}`, {})).stock, 1, 'the stock change rolled back');

    const bad = await rejects(() => pb.collection('sdk_orders').create({ product: shoe.id, qty: 0 }));
    assert.deepEqual(bad.response.data, { qty: { code: 'invalid_qty', message: 'Must be positive.' } });

    const pending = await pb.collection('sdk_orders').create({ product: shoe.id, qty: 1 });
    assert.equal(pending.status, 'pending');
    const crons = await su.crons.getFullList();
    assert.ok(crons.some((c) => c.id === 'sdkCancelUnpaid' && c.expression === '0 3 * * *'), JSON.stringify(crons));
    await su.crons.run('sdkCancelUnpaid');
    let status = '';
    for (let i = 0; i < 50 && status !== 'cancelled'; i++) {
      status = (await pb.collection('sdk_orders').getOne(pending.id)).status;
      if (status !== 'cancelled') await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(status, 'cancelled');
    assert.equal((await pb.collection('sdk_orders').getOne(order.id)).status, 'paid');
  } finally {
    stub.close();
  }
});
