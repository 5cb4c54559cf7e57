// Files through the official SDK: FormData and File uploads, pb.files.getURL, a thumbnail's
// pixel size, protected files with pb.files.getToken(), and removal with `field-`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import { client, superuser, uniq, rejects } from './helpers.mjs';

function crc32(buf) {
  let c = ~0;
  for (const b of buf) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

/** A solid red RGB PNG of w×h pixels. */
function png(w, h) {
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  const row = Buffer.concat([Buffer.from([0]), Buffer.alloc(w * 3, Buffer.from([255, 0, 0]))]);
  const raw = Buffer.concat(Array.from({ length: h }, () => row));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

function pngSize(buf) {
  assert.deepEqual([...buf.subarray(1, 4)], [0x50, 0x4e, 0x47], 'not a PNG');
  return [buf.readUInt32BE(16), buf.readUInt32BE(20)];
}

let su;
let usersName;
let docsName;
let user;

before(async () => {
  su = await superuser();
  usersName = uniq('fusers');
  docsName = uniq('docs');
  await su.collections.create({ name: usersName, type: 'auth', createRule: '', viewRule: 'id = @request.auth.id' });
  await su.collections.create({
    name: docsName,
    type: 'base',
    listRule: '', viewRule: "@request.auth.id != ''", createRule: '', updateRule: '', deleteRule: '',
    fields: [
      { name: 'title', type: 'text' },
      { name: 'image', type: 'file', maxSelect: 1, mimeTypes: ['image/png'], thumbs: ['40x30', '0x10'] },
      { name: 'attachments', type: 'file', maxSelect: 5 },
      { name: 'secret', type: 'file', maxSelect: 1, protected: true },
    ],
  });
  user = client();
  await user.collection(usersName).create({ email: 'files@example.com', password: 'Files-Pass-123', passwordConfirm: 'Files-Pass-123' });
  await user.collection(usersName).authWithPassword('files@example.com', 'Files-Pass-123');
});

after(async () => {
  if (!su) return;
  await su.collections.delete(docsName).catch(() => {});
  await su.collections.delete(usersName).catch(() => {});
});

test('FormData upload, getURL, thumbnail size and download', async () => {
  const fd = new FormData();
  fd.append('title', 'with files');
  fd.append('image', new Blob([png(80, 40)], { type: 'image/png' }), 'Red Square.png');
  fd.append('attachments', new Blob(['hello']), 'hello.txt');
  fd.append('attachments', new Blob(['world']), 'world.txt');
  const rec = await user.collection(docsName).create(fd);
  assert.equal(rec.title, 'with files');
  assert.match(rec.image, /^red_square_[a-z0-9]{10}\.png$/);
  assert.equal(rec.attachments.length, 2);
  assert.match(rec.attachments[0], /^hello_[a-z0-9]{10}\.txt$/);

  const url = user.files.getURL(rec, rec.image);
  assert.equal(url, `${user.baseURL}/api/files/${rec.collectionId}/${rec.id}/${rec.image}`);
  const orig = await fetch(url);
  assert.equal(orig.status, 200);
  assert.equal(orig.headers.get('content-type'), 'image/png');
  assert.deepEqual(pngSize(Buffer.from(await orig.arrayBuffer())), [80, 40]);

  const thumb = await fetch(user.files.getURL(rec, rec.image, { thumb: '40x30' }));
  assert.equal(thumb.status, 200);
  assert.deepEqual(pngSize(Buffer.from(await thumb.arrayBuffer())), [40, 30]);
  const tall = await fetch(user.files.getURL(rec, rec.image, { thumb: '0x10' }));
  assert.deepEqual(pngSize(Buffer.from(await tall.arrayBuffer())), [20, 10]);

  const dl = await fetch(user.files.getURL(rec, rec.attachments[1], { download: true }));
  assert.equal(await dl.text(), 'world');
  assert.equal(dl.headers.get('content-disposition'), `attachment; filename="${rec.attachments[1]}"`);
});

test('File values in a plain object, append with field+ and remove with field-', async () => {
  const rec = await user.collection(docsName).create({ title: 'obj', attachments: [new File(['one'], 'one.txt')] });
  assert.equal(rec.attachments.length, 1);
  const more = await user.collection(docsName).update(rec.id, { 'attachments+': new File(['two'], 'two.txt') });
  assert.equal(more.attachments.length, 2);
  assert.equal(more.attachments[0], rec.attachments[0]);
  const less = await user.collection(docsName).update(rec.id, { 'attachments-': [rec.attachments[0]] });
  assert.deepEqual(less.attachments, [more.attachments[1]]);
  // The removed file is gone once the update committed.
  const gone = await fetch(user.files.getURL(rec, rec.attachments[0]));
  assert.equal(gone.status, 404);
  assert.equal((await gone.json()).message, "The requested resource wasn't found.");
});

test('a wrong type behind a right extension is refused with the field error', async () => {
  const err = await rejects(() => user.collection(docsName).create({ image: new File(['not a png'], 'fake.png') }));
  assert.equal(err.status, 400);
  assert.equal(err.response.data.image.code, 'validation_invalid_mime_type');
});

test('protected files need a file token from pb.files.getToken()', async () => {
  const rec = await user.collection(docsName).create({ secret: new File(['top secret'], 'secret.txt') });
  const plain = await fetch(user.files.getURL(rec, rec.secret));
  assert.equal(plain.status, 404);
  // An auth token is not accepted in place of a file token.
  const withAuth = await fetch(user.files.getURL(rec, rec.secret, { token: user.authStore.token }));
  assert.equal(withAuth.status, 404);
  const token = await user.files.getToken();
  const payload = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
  assert.equal(payload.type, 'file');
  const ok = await fetch(user.files.getURL(rec, rec.secret, { token }));
  assert.equal(ok.status, 200);
  assert.equal(await ok.text(), 'top secret');
  // Guests cannot get one.
  const err = await rejects(() => client().files.getToken());
  assert.equal(err.status, 401);
});
