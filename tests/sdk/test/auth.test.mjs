import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClientResponseError } from 'pocketbase';
import { client, superuser, rejects, SU_EMAIL, SU_PASSWORD, ID_RE } from './helpers.mjs';

test('superuser authWithPassword fills the auth store', async () => {
  const pb = client();
  const auth = await pb.collection('_superusers').authWithPassword(SU_EMAIL, SU_PASSWORD);
  assert.equal(typeof auth.token, 'string');
  assert.ok(auth.token.split('.').length === 3, 'token is a JWT');
  assert.equal(auth.record.email, SU_EMAIL);
  assert.match(auth.record.id, ID_RE);
  assert.equal(auth.record.collectionName, '_superusers');
  assert.equal(auth.record.collectionId, 'pbc_3142635823');
  assert.equal(auth.record.password, undefined, 'password hash is never returned');
  assert.equal(auth.record.tokenKey, undefined, 'tokenKey is never returned');
  assert.equal(pb.authStore.token, auth.token);
  assert.equal(pb.authStore.record.id, auth.record.id);
  assert.ok(pb.authStore.isValid, 'SDK reads exp from the JWT');
  assert.ok(pb.authStore.isSuperuser, 'SDK reads type and collectionId from the JWT');
});

test('wrong password is a 400 ClientResponseError', async () => {
  const pb = client();
  const err = await rejects(() => pb.collection('_superusers').authWithPassword(SU_EMAIL, 'wrong-password-123'));
  assert.ok(err instanceof ClientResponseError, `got ${err}`);
  assert.equal(err.status, 400);
  assert.equal(typeof err.response.message, 'string');
  assert.equal(typeof err.response.data, 'object');
  assert.equal(pb.authStore.token, '');
  assert.equal(pb.authStore.isValid, false);
});

test('authRefresh returns a new token for the same record', async () => {
  const pb = await superuser();
  const before = pb.authStore.record;
  const refreshed = await pb.collection('_superusers').authRefresh();
  assert.equal(typeof refreshed.token, 'string');
  assert.equal(refreshed.record.id, before.id);
  assert.equal(refreshed.record.email, SU_EMAIL);
  assert.equal(pb.authStore.token, refreshed.token);
  assert.ok(pb.authStore.isSuperuser);
  // The refreshed token works.
  const list = await pb.collections.getList(1, 1);
  assert.ok(list.totalItems >= 1);
});

test('authRefresh without a token is rejected', async () => {
  const pb = client();
  const err = await rejects(() => pb.collection('_superusers').authRefresh());
  assert.ok(err instanceof ClientResponseError);
  assert.equal(err.status, 401);
});

test('an invalid token is treated as a guest', async () => {
  const pb = client();
  pb.authStore.save('not-a-jwt', null);
  const err = await rejects(() => pb.collections.getList(1, 1));
  assert.ok(err instanceof ClientResponseError);
  assert.ok([401, 403].includes(err.status), `status ${err.status}`);
});
