// User auth flows through the official SDK: password login and refresh, password reset
// confirmed with the mailed token (Galley's dev outbox), OTP, impersonation, and OAuth2
// (code flow and the realtime popup flow) against a fake OIDC provider run here.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import crypto from 'node:crypto';
import { EventSource } from 'eventsource';
import { ClientResponseError } from 'pocketbase';
import { client, superuser, uniq, rejects, ID_RE } from './helpers.mjs';

globalThis.EventSource = EventSource;

const PASS = 'User-Pass-123';
const CLIENT_ID = 'sdk-client';
const CLIENT_SECRET = 'sdk-secret';

// ---- a fake OIDC provider --------------------------------------------------------------
const codes = new Map(); // code -> { challenge, user }
const tokens = new Map(); // access token -> user
let nextUser = null; // who "consents" at /authorize
let provider;
let providerURL;

function s256(v) {
  return crypto.createHash('sha256').update(v).digest('base64url');
}

function issueCode(challenge, user) {
  const code = 'code-' + crypto.randomBytes(8).toString('hex');
  codes.set(code, { challenge, user });
  return code;
}

function readBody(req) {
  return new Promise((resolve) => {
    let data = '';
    req.on('data', (c) => (data += c));
    req.on('end', () => resolve(data));
  });
}

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

before(async () => {
  provider = http.createServer(async (req, res) => {
    const url = new URL(req.url, providerURL);
    if (url.pathname === '/.well-known/openid-configuration') {
      return json(res, 200, {
        issuer: providerURL,
        authorization_endpoint: `${providerURL}/authorize`,
        token_endpoint: `${providerURL}/token`,
        userinfo_endpoint: `${providerURL}/userinfo`,
      });
    }
    if (url.pathname === '/authorize') {
      // The user consents at once: back to the app with a code and the state.
      const code = issueCode(url.searchParams.get('code_challenge') || '', nextUser);
      const back = new URL(url.searchParams.get('redirect_uri'));
      back.searchParams.set('code', code);
      back.searchParams.set('state', url.searchParams.get('state'));
      res.writeHead(302, { location: back.toString() });
      return res.end();
    }
    if (url.pathname === '/token' && req.method === 'POST') {
      const f = new URLSearchParams(await readBody(req));
      const grant = codes.get(f.get('code'));
      codes.delete(f.get('code'));
      if (f.get('client_id') !== CLIENT_ID || f.get('client_secret') !== CLIENT_SECRET || !grant) {
        return json(res, 400, { error: 'invalid_grant' });
      }
      if (grant.challenge && s256(f.get('code_verifier') || '') !== grant.challenge) {
        return json(res, 400, { error: 'invalid_grant' });
      }
      const at = 'at-' + crypto.randomBytes(8).toString('hex');
      tokens.set(at, grant.user);
      return json(res, 200, { access_token: at, token_type: 'Bearer', expires_in: 3600 });
    }
    if (url.pathname === '/userinfo') {
      const at = (req.headers.authorization || '').replace(/^Bearer /, '');
      const user = tokens.get(at);
      return user ? json(res, 200, user) : json(res, 401, { error: 'invalid_token' });
    }
    json(res, 404, {});
  });
  await new Promise((r) => provider.listen(0, '127.0.0.1', r));
  providerURL = `http://127.0.0.1:${provider.address().port}`;
});

after(() => provider?.close());

// ---- helpers ---------------------------------------------------------------------------

/** An auth collection with OTP and the fake provider enabled, and one user in it. */
async function usersWithOne() {
  const su = await superuser();
  const name = uniq('people');
  await su.collections.create({
    name,
    type: 'auth',
    createRule: '',
    viewRule: 'id = @request.auth.id',
    fields: [{ name: 'name', type: 'text' }],
    otp: { enabled: true },
    oauth2: {
      enabled: true,
      mappedFields: { name: 'name' },
      providers: [{ name: 'oidc', displayName: 'Fake', clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, extra: { issuer: providerURL } }],
    },
  });
  const email = `${name}@example.com`.toLowerCase();
  const user = await client().collection(name).create({ email, password: PASS, passwordConfirm: PASS, name: 'First' });
  return { su, name, email, user };
}

/** The newest dev-outbox mail to `to` whose HTML matches `re`; returns the first group. */
async function mailed(su, to, re) {
  for (let i = 0; i < 200; i++) {
    const box = await su.send('/api/galley/outbox', { method: 'GET' });
    const hit = box.items.filter((m) => m.to === to && re.test(m.html)).pop();
    if (hit) return hit.html.match(re)[1];
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`no mail to ${to} matching ${re}`);
}

// ---- tests -----------------------------------------------------------------------------

test('authWithPassword and authRefresh for a user', async () => {
  const { name, email, user } = await usersWithOne();
  const pb = client();
  const auth = await pb.collection(name).authWithPassword(email, PASS);
  assert.equal(auth.record.id, user.id);
  assert.equal(auth.record.email, email, 'the owner sees the email');
  assert.equal(auth.record.password, undefined);
  assert.equal(pb.authStore.record.id, user.id);
  assert.ok(pb.authStore.isValid);
  assert.equal(pb.authStore.isSuperuser, false);
  const refreshed = await pb.collection(name).authRefresh();
  assert.equal(refreshed.record.id, user.id);
  assert.equal(pb.authStore.token, refreshed.token);
  const err = await rejects(() => client().collection(name).authWithPassword(email, 'Wrong-Pass-1'));
  assert.ok(err instanceof ClientResponseError);
  assert.equal(err.status, 400);
  assert.equal(err.response.message, 'Failed to authenticate.');
});

test('requestPasswordReset, then confirmPasswordReset with the mailed token', async () => {
  const { su, name, email } = await usersWithOne();
  const pb = client();
  const old = await pb.collection(name).authWithPassword(email, PASS);
  assert.equal(await client().collection(name).requestPasswordReset(email), true);
  assert.equal(await client().collection(name).requestPasswordReset('nobody@example.com'), true, 'no enumeration');
  const token = await mailed(su, email, /confirm-password-reset\/([^"]+)"/);
  const NEW = 'New-User-Pass-456';
  assert.equal(await client().collection(name).confirmPasswordReset(token, NEW, NEW), true);
  const auth = await client().collection(name).authWithPassword(email, NEW);
  assert.equal(auth.record.email, email);
  assert.equal(auth.record.verified, true, 'the reset proved the mailbox');
  // The reset token is single-use, and old sessions are over.
  const reuse = await rejects(() => client().collection(name).confirmPasswordReset(token, NEW, NEW));
  assert.equal(reuse.status, 400);
  assert.equal(reuse.response.data.token.code, 'validation_invalid_token');
  const stale = await rejects(() => pb.collection(name).authRefresh());
  assert.equal(stale.status, 401);
});

test('requestOTP and authWithOTP with the mailed code', async () => {
  const { su, name, email, user } = await usersWithOne();
  const { otpId } = await client().collection(name).requestOTP(email);
  assert.match(otpId, ID_RE);
  const code = await mailed(su, email, /<strong>(\d+)<\/strong>/);
  assert.equal(code.length, 8);
  const bad = await rejects(() => client().collection(name).authWithOTP(otpId, '00000000'));
  assert.equal(bad.status, 400);
  const pb = client();
  const auth = await pb.collection(name).authWithOTP(otpId, code);
  assert.equal(auth.record.id, user.id);
  assert.equal(pb.authStore.record.id, user.id);
  const again = await rejects(() => client().collection(name).authWithOTP(otpId, code));
  assert.equal(again.status, 400, 'an OTP works once');
});

test('impersonate gives a non-refreshable token of the user', async () => {
  const { su, name, user } = await usersWithOne();
  const as = await su.collection(name).impersonate(user.id, 3600);
  assert.equal(as.authStore.record.id, user.id);
  assert.ok(as.authStore.isValid);
  assert.equal(as.authStore.isSuperuser, false);
  const payload = JSON.parse(Buffer.from(as.authStore.token.split('.')[1], 'base64url'));
  assert.equal(payload.refreshable, false);
  assert.ok(Math.abs(payload.exp - (Date.now() / 1000 + 3600)) < 60, 'duration honoured');
  const refreshed = await as.collection(name).authRefresh();
  assert.equal(refreshed.token, as.authStore.token, 'echoed back, not renewed');
  const view = await as.collection(name).getOne(user.id);
  assert.equal(view.id, user.id);
  const guest = await rejects(() => client().collection(name).impersonate(user.id, 0));
  assert.equal(guest.status, 401);
});

test('authWithOAuth2Code signs up, then logs in again through the link', async () => {
  const { name } = await usersWithOne();
  const methods = await client().collection(name).listAuthMethods();
  assert.equal(methods.oauth2.enabled, true);
  const p = methods.oauth2.providers.find((x) => x.name === 'oidc');
  assert.equal(p.displayName, 'Fake');
  assert.equal(p.codeChallenge, s256(p.codeVerifier));
  assert.ok(p.authURL.startsWith(`${providerURL}/authorize?`) && p.authURL.endsWith('&redirect_uri='));
  const email = `oauth-${name}@example.com`.toLowerCase();
  const who = { sub: 'sdk-sub-1', name: 'Olive', email, email_verified: true };
  const pb = client();
  const first = await pb.collection(name).authWithOAuth2Code('oidc', issueCode(p.codeChallenge, who), p.codeVerifier, 'http://app.test/cb');
  assert.equal(first.meta.isNew, true);
  assert.equal(first.meta.email, email);
  assert.equal(first.record.email, email);
  assert.equal(first.record.name, 'Olive');
  assert.equal(first.record.verified, true);
  assert.equal(pb.authStore.record.id, first.record.id);
  const p2 = (await client().collection(name).listAuthMethods()).oauth2.providers[0];
  const second = await client().collection(name).authWithOAuth2Code('oidc', issueCode(p2.codeChallenge, who), p2.codeVerifier, 'http://app.test/cb');
  assert.equal(second.meta.isNew, false);
  assert.equal(second.record.id, first.record.id);
  // A wrong PKCE verifier is refused by the provider: a 400 from Galley.
  const p3 = (await client().collection(name).listAuthMethods()).oauth2.providers[0];
  const err = await rejects(() => client().collection(name).authWithOAuth2Code('oidc', issueCode(p3.codeChallenge, who), p2.codeVerifier, 'http://app.test/cb'));
  assert.equal(err.status, 400);
  assert.equal(err.response.message, 'Failed to fetch OAuth2 token.');
  // The link is an _externalAuths record its owner can list and remove.
  const links = await pb.collection(name).listExternalAuths(first.record.id);
  assert.equal(links.length, 1);
  assert.equal(links[0].provider, 'oidc');
  assert.equal(links[0].providerId, 'sdk-sub-1');
  assert.equal(links[0].recordRef, first.record.id);
  assert.equal(await pb.collection(name).unlinkExternalAuth(first.record.id, 'oidc'), true);
  assert.deepEqual(await pb.collection(name).listExternalAuths(first.record.id), []);
});

test('authWithOAuth2 popup flow through the @oauth2 realtime redirect', async () => {
  const { name } = await usersWithOne();
  const email = `popup-${name}@example.com`.toLowerCase();
  nextUser = { sub: 'sdk-popup', name: 'Pop', email, email_verified: true };
  const pb = client();
  const auth = await pb.collection(name).authWithOAuth2({
    provider: 'oidc',
    // Instead of a browser window: follow the provider's redirect back to Galley.
    urlCallback: async (url) => {
      const r = await fetch(url, { redirect: 'manual' });
      const back = r.headers.get('location');
      assert.ok(back.includes('/api/oauth2-redirect?'), back);
      const done = await fetch(back);
      assert.equal(await done.text(), 'Auth completed. You can close this window and go back to the app.');
    },
  });
  assert.equal(auth.meta.isNew, true);
  assert.equal(auth.record.email, email);
  assert.equal(pb.authStore.record.email, email);
  assert.ok(pb.authStore.isValid);
});
