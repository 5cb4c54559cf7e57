import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ClientResponseError } from 'pocketbase';
import { superuser, uniq, rejects, ID_RE, DATE_RE } from './helpers.mjs';

let pb;
let authorsName;
let postsName;
let posts;
const authorIds = [];

before(async () => {
  pb = await superuser();
  authorsName = uniq('authors');
  postsName = uniq('posts');
  const authors = await pb.collections.create({
    name: authorsName,
    type: 'base',
    fields: [{ name: 'name', type: 'text', required: true }],
  });
  posts = await pb.collections.create({
    name: postsName,
    type: 'base',
    fields: [
      { name: 'title', type: 'text', required: true },
      { name: 'views', type: 'number' },
      { name: 'published', type: 'bool' },
      { name: 'tags', type: 'select', values: ['a', 'b', 'c'], maxSelect: 3 },
      { name: 'meta', type: 'json' },
      { name: 'author', type: 'relation', collectionId: authors.id, maxSelect: 1 },
      { name: 'created', type: 'autodate', onCreate: true, onUpdate: false },
      { name: 'updated', type: 'autodate', onCreate: true, onUpdate: true },
    ],
  });
  for (const name of ['Ada', 'Brian']) {
    authorIds.push((await pb.collection(authorsName).create({ name })).id);
  }
});

after(async () => {
  if (!pb) return;
  await pb.collections.delete(postsName).catch(() => {});
  await pb.collections.delete(authorsName).catch(() => {});
});

test('create returns the full record with zero values for unset fields', async () => {
  const r = await pb.collection(postsName).create({ title: 'bare' });
  assert.match(r.id, ID_RE);
  assert.equal(r.collectionId, posts.id);
  assert.equal(r.collectionName, postsName);
  assert.equal(r.title, 'bare');
  assert.equal(r.views, 0);
  assert.equal(r.published, false);
  assert.deepEqual(r.tags, []);
  assert.equal(r.meta, null);
  assert.equal(r.author, '');
  assert.match(r.created, DATE_RE);
  assert.match(r.updated, DATE_RE);
  await pb.collection(postsName).delete(r.id);
});

test('create/getOne/update/delete with every field type', async () => {
  const c = pb.collection(postsName);
  const meta = { nested: { list: [1, 2, 3], ok: true }, s: 'x' };
  const created = await c.create({
    title: 'hello',
    views: 5,
    published: true,
    tags: ['a', 'c'],
    meta,
    author: authorIds[0],
  });
  assert.equal(created.title, 'hello');
  assert.equal(created.views, 5);
  assert.equal(created.published, true);
  assert.deepEqual(created.tags, ['a', 'c']);
  assert.deepEqual(created.meta, meta);
  assert.equal(created.author, authorIds[0]);

  const got = await c.getOne(created.id);
  assert.deepEqual(got, created);

  // plain update and the number modifier `views+`
  const u1 = await c.update(created.id, { title: 'hello again', 'views+': 1 });
  assert.equal(u1.title, 'hello again');
  assert.equal(u1.views, 6);
  assert.equal(u1.created, created.created);
  assert.ok(u1.updated >= created.updated);
  const u2 = await c.update(created.id, { 'views+': 10, 'tags+': 'b', published: false });
  assert.equal(u2.views, 16);
  assert.deepEqual(u2.tags, ['a', 'c', 'b']);
  assert.equal(u2.published, false);
  const u3 = await c.update(created.id, { 'views-': 6, 'tags-': ['a'], author: authorIds[1] });
  assert.equal(u3.views, 10);
  assert.deepEqual(u3.tags, ['c', 'b']);
  assert.equal(u3.author, authorIds[1]);
  assert.deepEqual((await c.getOne(created.id)).views, 10);

  assert.equal(await c.delete(created.id), true);
  const err = await rejects(() => c.getOne(created.id));
  assert.ok(err instanceof ClientResponseError);
  assert.equal(err.status, 404);
});

test('getList pages and sorts by -views; getFullList returns everything', async () => {
  const name = uniq('list');
  await pb.collections.create({
    name,
    type: 'base',
    fields: [
      { name: 'title', type: 'text', required: true },
      { name: 'views', type: 'number' },
    ],
  });
  try {
    const c = pb.collection(name);
    const views = [3, 17, 0, 42, 8, 25, 11];
    for (const [i, v] of views.entries()) {
      await c.create({ title: `p${i}`, views: v });
    }
    const sorted = [...views].sort((a, b) => b - a);

    const page1 = await c.getList(1, 3, { sort: '-views' });
    assert.equal(page1.page, 1);
    assert.equal(page1.perPage, 3);
    assert.equal(page1.totalItems, views.length);
    assert.equal(page1.totalPages, 3);
    assert.deepEqual(page1.items.map((r) => r.views), sorted.slice(0, 3));

    const page2 = await c.getList(2, 3, { sort: '-views' });
    assert.deepEqual(page2.items.map((r) => r.views), sorted.slice(3, 6));
    const page3 = await c.getList(3, 3, { sort: '-views' });
    assert.deepEqual(page3.items.map((r) => r.views), sorted.slice(6));
    const page4 = await c.getList(4, 3, { sort: '-views' });
    assert.deepEqual(page4.items, []);

    const asc = await c.getList(1, 100, { sort: 'views' });
    assert.deepEqual(asc.items.map((r) => r.views), [...sorted].reverse());

    const skip = await c.getList(1, 2, { sort: '-views', skipTotal: true });
    assert.equal(skip.totalItems, -1);
    assert.equal(skip.totalPages, -1);
    assert.equal(skip.items.length, 2);

    // getFullList pages with skipTotal until a short page
    const all = await c.getFullList({ sort: '-views', batch: 2 });
    assert.deepEqual(all.map((r) => r.views), sorted);
    const all2 = await c.getFullList();
    assert.equal(all2.length, views.length);
    assert.deepEqual(new Set(all2.map((r) => r.title)), new Set(views.map((_, i) => `p${i}`)));

    // a missing sort field is a 400
    const bad = await rejects(() => c.getList(1, 10, { sort: 'nope' }));
    assert.equal(bad.status, 400);
  } finally {
    await pb.collections.delete(name);
  }
});

test('FormData create goes through multipart with @jsonPayload', async () => {
  const fd = new FormData();
  fd.append('title', 'from form');
  fd.append('views', '12');
  fd.append('published', 'true');
  fd.append('author', authorIds[0]);
  // Non-file object/array values: the SDK moves these into @jsonPayload only for plain
  // objects, so put them there explicitly like the SDK does.
  fd.append('@jsonPayload', JSON.stringify({ tags: ['b'], meta: { from: 'form' } }));
  const r = await pb.collection(postsName).create(fd);
  assert.equal(r.title, 'from form');
  assert.equal(r.views, 12);
  assert.equal(r.published, true);
  assert.equal(r.author, authorIds[0]);
  assert.deepEqual(r.tags, ['b']);
  assert.deepEqual(r.meta, { from: 'form' });

  // Repeated keys become arrays.
  const fd2 = new FormData();
  fd2.append('title', 'repeated');
  fd2.append('tags', 'a');
  fd2.append('tags', 'c');
  const r2 = await pb.collection(postsName).create(fd2);
  assert.deepEqual(r2.tags, ['a', 'c']);

  // A plain object containing a Blob makes the SDK build multipart itself and put the
  // remaining values in @jsonPayload.
  const r3 = await pb.collection(postsName).create({
    title: 'sdk multipart',
    views: 7,
    meta: { deep: [1, { two: 2 }] },
    tags: ['a', 'b'],
    unknownFile: new Blob(['ignored'], { type: 'text/plain' }),
  });
  assert.equal(r3.title, 'sdk multipart');
  assert.equal(r3.views, 7);
  assert.deepEqual(r3.meta, { deep: [1, { two: 2 }] });
  assert.deepEqual(r3.tags, ['a', 'b']);

  for (const id of [r.id, r2.id, r3.id]) {
    await pb.collection(postsName).delete(id);
  }
});

test('validation errors: 400 with data.title.code = validation_required', async () => {
  const err = await rejects(() => pb.collection(postsName).create({ views: 1 }));
  assert.ok(err instanceof ClientResponseError, `got ${err}`);
  assert.equal(err.status, 400);
  assert.equal(err.response.status, 400);
  assert.equal(err.response.message, 'Failed to create record.');
  assert.equal(err.response.data.title.code, 'validation_required');
  assert.equal(typeof err.response.data.title.message, 'string');
  assert.equal(err.data.data.title.code, 'validation_required', 'err.data is the response body too');

  const bad = await rejects(() => pb.collection(postsName).create({ title: 'x', tags: ['zzz'] }));
  assert.equal(bad.status, 400);
  assert.equal(bad.response.data.tags.code, 'validation_invalid_value');

  const rel = await rejects(() => pb.collection(postsName).create({ title: 'x', author: 'missingid123456' }));
  assert.equal(rel.status, 400);
  assert.equal(rel.response.data.author.code, 'validation_missing_rel_records');

  const created = await pb.collection(postsName).create({ title: 'to blank' });
  const upd = await rejects(() => pb.collection(postsName).update(created.id, { title: '' }));
  assert.equal(upd.status, 400);
  assert.equal(upd.response.message, 'Failed to update record.');
  assert.equal(upd.response.data.title.code, 'validation_required');
  await pb.collection(postsName).delete(created.id);
});

test('missing records and collections are 404s', async () => {
  const c = pb.collection(postsName);
  for (const fn of [
    () => c.getOne('missingid123456'),
    () => c.update('missingid123456', { title: 'x' }),
    () => c.delete('missingid123456'),
  ]) {
    const err = await rejects(fn);
    assert.ok(err instanceof ClientResponseError);
    assert.equal(err.status, 404);
    assert.equal(typeof err.response.message, 'string');
    assert.deepEqual(err.response.data, {});
  }
  const col = await rejects(() => pb.collection('no_such_collection_xyz').getList(1, 1));
  assert.equal(col.status, 404);
  assert.equal(col.response.message, 'Missing collection context.');
});

test('concurrent creates all land', async () => {
  const c = pb.collection(postsName);
  const made = await Promise.all(Array.from({ length: 20 }, (_, i) => c.create({ title: `c${i}`, views: i })));
  const ids = new Set(made.map((r) => r.id));
  assert.equal(ids.size, 20);
  for (const r of made) {
    assert.equal((await c.getOne(r.id)).id, r.id);
    await c.delete(r.id);
  }
});
