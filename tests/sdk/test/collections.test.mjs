import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClientResponseError } from 'pocketbase';
import { superuser, client, uniq, rejects, DATE_RE } from './helpers.mjs';

test('collections.create with several field types, then getOne/getList/update/delete', async () => {
  const pb = await superuser();
  const authorsName = uniq('authors');
  const postsName = uniq('posts');

  const authors = await pb.collections.create({
    name: authorsName,
    type: 'base',
    fields: [{ name: 'name', type: 'text', required: true }],
  });
  assert.equal(authors.name, authorsName);
  assert.match(authors.id, /^pbc_\d+$/);

  const posts = await pb.collections.create({
    name: postsName,
    type: 'base',
    listRule: null,
    viewRule: null,
    createRule: null,
    updateRule: null,
    deleteRule: null,
    fields: [
      { name: 'title', type: 'text', required: true, max: 100 },
      { name: 'views', type: 'number' },
      { name: 'published', type: 'bool' },
      { name: 'tags', type: 'select', values: ['a', 'b', 'c'], maxSelect: 3 },
      { name: 'meta', type: 'json' },
      { name: 'author', type: 'relation', collectionId: authors.id, maxSelect: 1 },
    ],
  });
  assert.equal(posts.name, postsName);
  assert.equal(posts.type, 'base');
  assert.equal(posts.system, false);
  assert.match(posts.created, DATE_RE);
  assert.match(posts.updated, DATE_RE);
  assert.deepEqual(posts.indexes, []);
  for (const rule of ['listRule', 'viewRule', 'createRule', 'updateRule', 'deleteRule']) {
    assert.equal(posts[rule], null, rule);
  }
  const byName = Object.fromEntries(posts.fields.map((f) => [f.name, f]));
  assert.deepEqual(Object.keys(byName), ['id', 'title', 'views', 'published', 'tags', 'meta', 'author']);
  assert.equal(byName.id.primaryKey, true);
  assert.equal(byName.id.system, true);
  assert.equal(byName.title.type, 'text');
  assert.equal(byName.title.required, true);
  assert.equal(byName.title.max, 100);
  assert.equal(byName.views.type, 'number');
  assert.equal(byName.published.type, 'bool');
  assert.equal(byName.tags.type, 'select');
  assert.deepEqual(byName.tags.values, ['a', 'b', 'c']);
  assert.equal(byName.tags.maxSelect, 3);
  assert.equal(byName.meta.type, 'json');
  assert.equal(byName.author.type, 'relation');
  assert.equal(byName.author.collectionId, authors.id);
  for (const f of posts.fields) {
    assert.equal(typeof f.id, 'string', `field ${f.name} has an id`);
    assert.ok(f.id.length > 0);
  }

  // getOne by name and by id
  const viewed = await pb.collections.getOne(postsName);
  assert.equal(viewed.id, posts.id);
  assert.deepEqual(viewed.fields, posts.fields);
  assert.equal((await pb.collections.getOne(posts.id)).name, postsName);

  // getList: result shape, our collections in it, system ones too
  const list = await pb.collections.getList(1, 500);
  assert.equal(list.page, 1);
  assert.equal(list.perPage, 500);
  assert.equal(typeof list.totalItems, 'number');
  assert.equal(typeof list.totalPages, 'number');
  assert.ok(list.totalItems >= 3);
  const names = list.items.map((c) => c.name);
  assert.ok(names.includes(postsName));
  assert.ok(names.includes(authorsName));
  assert.ok(names.includes('_superusers'));
  const small = await pb.collections.getList(1, 1);
  assert.equal(small.items.length, 1);
  // (other test files create collections concurrently: compare within one response only)
  assert.equal(small.totalPages, small.totalItems);

  // getFullList pages through everything
  const full = await pb.collections.getFullList({ batch: 2 });
  const fullNames = full.map((c) => c.name);
  assert.ok(fullNames.includes(postsName));
  assert.ok(fullNames.includes(authorsName));
  assert.ok(fullNames.includes('_superusers'));

  // update: add a field (the submitted fields array replaces the list), change a rule
  const updated = await pb.collections.update(postsName, {
    listRule: '',
    fields: [...posts.fields, { name: 'summary', type: 'text' }],
  });
  assert.equal(updated.listRule, '');
  assert.equal(updated.viewRule, null);
  const names2 = updated.fields.map((f) => f.name);
  assert.deepEqual(names2, ['id', 'title', 'views', 'published', 'tags', 'meta', 'author', 'summary']);
  // existing fields keep their ids
  for (const f of posts.fields) {
    assert.equal(updated.fields.find((g) => g.name === f.name).id, f.id);
  }
  // the new field is usable right away
  const rec = await pb.collection(postsName).create({ title: 'with summary', summary: 'short' });
  assert.equal(rec.summary, 'short');
  assert.equal((await pb.collection(postsName).getOne(rec.id)).summary, 'short');

  // delete: the referenced collection goes last; then both are gone
  assert.equal(await pb.collections.delete(postsName), true);
  const gone = await rejects(() => pb.collections.getOne(postsName));
  assert.ok(gone instanceof ClientResponseError);
  assert.equal(gone.status, 404);
  assert.equal(await pb.collections.delete(authors.id), true);
  const names3 = (await pb.collections.getFullList()).map((c) => c.name);
  assert.ok(!names3.includes(postsName));
  assert.ok(!names3.includes(authorsName));
});

test('collections.create validation errors are ClientResponseErrors', async () => {
  const pb = await superuser();
  const name = uniq('dup');
  await pb.collections.create({ name, type: 'base', fields: [] });
  try {
    const err = await rejects(() => pb.collections.create({ name, type: 'base', fields: [] }));
    assert.ok(err instanceof ClientResponseError);
    assert.equal(err.status, 400);
    assert.equal(typeof err.response.data.name?.code, 'string');
    assert.equal(err.response.data.name.code, 'validation_collection_name_exists');

    const bad = await rejects(() => pb.collections.create({ name: 'bad name!', type: 'base', fields: [] }));
    assert.equal(bad.status, 400);
    assert.equal(typeof bad.response.data.name?.code, 'string');
  } finally {
    await pb.collections.delete(name);
  }
});

test('collections API is superuser-only', async () => {
  const err = await rejects(() => client().collections.getList(1, 10));
  assert.ok(err instanceof ClientResponseError);
  assert.ok([401, 403].includes(err.status), `status ${err.status}`);
});

test('collections.getOne of a missing collection is a 404', async () => {
  const pb = await superuser();
  const err = await rejects(() => pb.collections.getOne('no_such_collection_xyz'));
  assert.ok(err instanceof ClientResponseError);
  assert.equal(err.status, 404);
});
