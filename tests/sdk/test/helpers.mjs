// Shared set-up for the SDK tests: run.sh passes the server URL and superuser credentials.
import PocketBase from 'pocketbase';

export const URL = process.env.GALLEY_URL;
export const SU_EMAIL = process.env.GALLEY_SU_EMAIL;
export const SU_PASSWORD = process.env.GALLEY_SU_PASSWORD;

if (!URL || !SU_EMAIL || !SU_PASSWORD) {
  throw new Error('GALLEY_URL, GALLEY_SU_EMAIL and GALLEY_SU_PASSWORD must be set: run the tests with tests/sdk/run.sh');
}

/** A client without auth; auto-cancellation off so parallel requests are not cancelled. */
export function client() {
  const pb = new PocketBase(URL);
  pb.autoCancellation(false);
  return pb;
}

let suAuth = null;
/** A client authenticated as the superuser. One login per test process: Galley rate-limits
 * logins per identity (10 a minute by default), as a production server should. */
export async function superuser() {
  const pb = client();
  if (!suAuth) {
    suAuth = pb.collection('_superusers').authWithPassword(SU_EMAIL, SU_PASSWORD).then(() => ({ token: pb.authStore.token, record: pb.authStore.record }));
  }
  const { token, record } = await suAuth;
  pb.authStore.save(token, record);
  return pb;
}

let seq = 0;
/** A collection name unique to this process and call (test files run in parallel). */
export function uniq(prefix) {
  seq += 1;
  return `${prefix}_${process.pid}_${seq}_${Math.random().toString(36).slice(2, 7)}`;
}

/** PocketBase ids: 15 characters of [a-z0-9]. */
export const ID_RE = /^[a-z0-9]{15}$/;
/** PocketBase datetimes: `YYYY-MM-DD HH:MM:SS.mmmZ`. */
export const DATE_RE = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z$/;

/** Runs `fn`, which must reject with a ClientResponseError, and returns that error. */
export async function rejects(fn) {
  try {
    await fn();
  } catch (e) {
    return e;
  }
  throw new Error('expected the request to fail, but it succeeded');
}
