import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClientResponseError } from 'pocketbase';
import { superuser, uniq, rejects, ID_RE } from './helpers.mjs';

test('batch API: disabled by default, then transactional create/update/upsert/delete', async () => {
  const pb = await superuser();
  const name = uniq('batch');
  await pb.collections.create({
    name,
    type: 'base',
    fields: [
      { name: 'title', type: 'text', required: true },
      { name: 'views', type: 'number' },
    ],
  });
  try {
    const off = await pb.settings.update({ batch: { enabled: false } });
    assert.equal(off.batch.enabled, false);
    const disabled = pb.createBatch();
    disabled.collection(name).create({ title: 'nope' });
    const err = await rejects(() => disabled.send());
    assert.ok(err instanceof ClientResponseError);
    assert.equal(err.status, 403);

    const on = await pb.settings.update({ batch: { enabled: true } });
    assert.equal(on.batch.enabled, true);
    assert.equal(typeof on.batch.maxRequests, 'number');
    assert.equal((await pb.settings.getAll()).batch.enabled, true);

    const existing = await pb.collection(name).create({ title: 'existing', views: 1 });

    const b = pb.createBatch();
    b.collection(name).create({ title: 'b1', views: 10 });
    b.collection(name).create({ title: 'b2' });
    b.collection(name).update(existing.id, { 'views+': 4 });
    b.collection(name).upsert({ id: 'upsertid0000001', title: 'upserted' });
    const res = await b.send();
    assert.equal(res.length, 4);
    assert.deepEqual(res.map((r) => r.status), [200, 200, 200, 200]);
    assert.match(res[0].body.id, ID_RE);
    assert.equal(res[0].body.title, 'b1');
    assert.equal(res[0].body.views, 10);
    assert.equal(res[0].body.collectionName, name);
    assert.equal(res[1].body.title, 'b2');
    assert.equal(res[2].body.views, 5);
    assert.equal(res[3].body.id, 'upsertid0000001');

    // upsert of an existing id updates it
    const b2 = pb.createBatch();
    b2.collection(name).upsert({ id: 'upsertid0000001', title: 'upserted twice' });
    b2.collection(name).delete(res[1].body.id);
    const res2 = await b2.send();
    assert.deepEqual(res2.map((r) => r.status), [200, 204]);
    assert.equal(res2[0].body.title, 'upserted twice');

    const all = await pb.collection(name).getFullList({ sort: 'title' });
    assert.deepEqual(all.map((r) => r.title), ['b1', 'existing', 'upserted twice']);

    // any failure rolls back the whole batch
    const b3 = pb.createBatch();
    b3.collection(name).create({ title: 'rolled back' });
    b3.collection(name).create({ views: 3 }); // title is required
    const fail = await rejects(() => b3.send());
    assert.ok(fail instanceof ClientResponseError);
    assert.equal(fail.status, 400);
    const failed = fail.response.data.requests['1'];
    assert.equal(failed.code, 'batch_request_failed');
    assert.equal(failed.response.status, 400);
    assert.equal(failed.response.data.title.code, 'validation_required');
    const after = await pb.collection(name).getFullList();
    assert.equal(after.length, 3);
    assert.ok(!after.some((r) => r.title === 'rolled back'));

    // files/multipart form of the batch: FormData body for one request
    const fd = new FormData();
    fd.append('title', 'form in batch');
    fd.append('views', '2');
    const b4 = pb.createBatch();
    b4.collection(name).create(fd);
    const res4 = await b4.send();
    assert.equal(res4[0].status, 200);
    assert.equal(res4[0].body.title, 'form in batch');
  } finally {
    await pb.collections.delete(name).catch(() => {});
  }
});
