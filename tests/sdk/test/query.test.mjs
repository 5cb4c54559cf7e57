// Filters, sorts, expands, fields, API rules with a users auth collection, and realtime,
// through the official SDK.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventSource } from 'eventsource';
import { client, superuser, uniq, rejects } from './helpers.mjs';

globalThis.EventSource = EventSource;

async function setup() {
  const su = await superuser();
  const users = await su.collections.create({ name: uniq('users'), type: 'auth', createRule: '', listRule: 'id = @request.auth.id', viewRule: 'id = @request.auth.id',
    fields: [{ name: 'name', type: 'text' }] });
  const tags = await su.collections.create({ name: uniq('tags'), listRule: '', viewRule: '', fields: [{ name: 'label', type: 'text' }] });
  const posts = await su.collections.create({
    name: uniq('posts'),
    // As in PocketBase, a guest's @request.auth.id is "", which equals an empty relation:
    // rules that mean "the owner" say so with @request.auth.id != "".
    listRule: 'public = true || (@request.auth.id != "" && owner = @request.auth.id)',
    viewRule: 'public = true || (@request.auth.id != "" && owner = @request.auth.id)',
    createRule: '@request.auth.id != "" && owner = @request.auth.id',
    updateRule: '@request.auth.id != "" && owner = @request.auth.id',
    deleteRule: '@request.auth.id != "" && owner = @request.auth.id',
    fields: [
      { name: 'title', type: 'text' },
      { name: 'body', type: 'editor' },
      { name: 'views', type: 'number' },
      { name: 'public', type: 'bool' },
      { name: 'owner', type: 'relation', collectionId: users.id },
      { name: 'tags', type: 'relation', collectionId: tags.id, maxSelect: 5 },
    ],
  });
  const red = await su.collection(tags.name).create({ label: 'red' });
  const blue = await su.collection(tags.name).create({ label: 'blue' });
  const alice = client();
  await alice.collection(users.name).create({ email: `a_${users.name}@example.com`, password: 'Alice-Pass-1', passwordConfirm: 'Alice-Pass-1', name: 'Alice' });
  await alice.collection(users.name).authWithPassword(`a_${users.name}@example.com`, 'Alice-Pass-1');
  const me = alice.authStore.record.id;
  const mk = (p) => su.collection(posts.name).create({ owner: me, ...p });
  const p1 = await mk({ title: 'Hello world', body: '<p>Hello <b>big</b> world</p>', views: 5, public: true, tags: [red.id, blue.id] });
  const p2 = await mk({ title: 'Second', views: 10, public: false, tags: [blue.id] });
  const p3 = await su.collection(posts.name).create({ title: 'Orphan', views: 1, public: false });
  return { su, alice, users, tags, posts, red, blue, p1, p2, p3, me };
}

test('filter, sort and getFirstListItem through pb.filter', async () => {
  const { su, posts, p1, p2 } = await setup();
  const list = await su.collection(posts.name).getList(1, 10, { filter: su.filter('views >= {:min} && title ~ {:t}', { min: 5, t: 'e' }), sort: '-views' });
  assert.deepEqual(list.items.map((r) => r.id), [p2.id, p1.id]);
  const first = await su.collection(posts.name).getFirstListItem(su.filter('title = {:t}', { t: 'Hello world' }));
  assert.equal(first.id, p1.id);
  const e = await rejects(() => su.collection(posts.name).getFirstListItem('title = "nope"'));
  assert.equal(e.status, 404);
  const anyRed = await su.collection(posts.name).getFullList({ filter: 'tags.label ?= "red"', sort: 'title' });
  assert.deepEqual(anyRed.map((r) => r.id), [p1.id]);
});

test('expand and fields with excerpt', async () => {
  const { su, posts, p1 } = await setup();
  const r = await su.collection(posts.name).getOne(p1.id, { expand: 'tags,owner', fields: 'id,body:excerpt(9,true),expand.tags.label,expand.owner.name' });
  assert.deepEqual(r, { id: p1.id, body: 'Hello big...', expand: { tags: [{ label: 'red' }, { label: 'blue' }], owner: { name: 'Alice' } } });
});

test('rules: list narrows, view 404, create 400, update only by the owner', async () => {
  const { alice, posts, p1, p2, p3, me } = await setup();
  const guest = client();
  const seen = await guest.collection(posts.name).getFullList({ sort: 'title' });
  assert.deepEqual(seen.map((r) => r.id), [p1.id]);
  const mine = await alice.collection(posts.name).getFullList({ sort: 'title' });
  assert.deepEqual(mine.map((r) => r.id), [p1.id, p2.id]);
  assert.equal((await rejects(() => guest.collection(posts.name).getOne(p2.id))).status, 404);
  assert.equal((await rejects(() => alice.collection(posts.name).getOne(p3.id))).status, 404);
  assert.equal((await rejects(() => guest.collection(posts.name).create({ title: 'x' }))).status, 400);
  const made = await alice.collection(posts.name).create({ title: 'by alice', owner: me });
  assert.equal(made.owner, me);
  assert.equal((await rejects(() => alice.collection(posts.name).update(p3.id, { title: 'hijack' }))).status, 404);
  const e = await rejects(() => guest.collection(posts.name).getList(1, 5, { filter: '@request.auth.id = ""' }));
  assert.equal(e.status, 403);
});

test('realtime: subscribe receives create/update/delete the caller may see', async () => {
  const { su, alice, posts, me } = await setup();
  const events = [];
  const unsubscribe = await alice.collection(posts.name).subscribe('*', (e) => events.push(e));
  const hidden = await su.collection(posts.name).create({ title: 'not mine', public: false });
  const seen = await su.collection(posts.name).create({ title: 'mine', owner: me });
  await su.collection(posts.name).update(seen.id, { title: 'mine 2' });
  await su.collection(posts.name).delete(seen.id);
  const deadline = Date.now() + 5000;
  while (events.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 300));
  await unsubscribe();
  assert.deepEqual(events.map((e) => [e.action, e.record.id]), [['create', seen.id], ['update', seen.id], ['delete', seen.id]]);
  assert.equal(events[1].record.title, 'mine 2');
  assert.ok(!events.some((e) => e.record.id === hidden.id));
  alice.realtime.unsubscribe();
});

test('realtime: one record with expand and fields options', async () => {
  const { su, alice, posts, p1, p2 } = await setup();
  const events = [];
  const unsubscribe = await alice.collection(posts.name).subscribe(p1.id, (e) => events.push(e), { expand: 'tags', fields: 'id,title,expand.tags.label' });
  await su.collection(posts.name).update(p2.id, { title: 'another record' });
  await su.collection(posts.name).update(p1.id, { title: 'Hello again' });
  const deadline = Date.now() + 5000;
  while (events.length < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 300));
  await unsubscribe();
  assert.deepEqual(events.map((e) => [e.action, e.record]), [
    ['update', { id: p1.id, title: 'Hello again', expand: { tags: [{ label: 'red' }, { label: 'blue' }] } }],
  ]);
  alice.realtime.unsubscribe();
});
