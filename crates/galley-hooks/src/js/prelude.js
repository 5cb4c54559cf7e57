// PocketBase's JavaScript API (the part apps use) over Galley's native operations.
//
// Evaluated once in every engine before anything else. Rust reaches JS only through
// `__galley.load`, `__galley.invoke` and `__galley.dispatch`; JS reaches Rust only through
// `__native(op, json)`, which answers JSON: {"ok": value} or {"err": {status, message, data}}.
(function (g) {
  "use strict";
  const native = g.__native;
  delete g.__native;

  function call(op, args) {
    const out = JSON.parse(native(op, JSON.stringify(args === undefined ? null : args)));
    if (out.err) {
      const e = new ApiError(out.err.status, out.err.message, out.err.data, true);
      // Galley's own errors (validation of a save, ...) keep their data as they are.
      e.__native = true;
      throw e;
    }
    return out.ok;
  }

  // ---- errors -------------------------------------------------------------------------
  // PocketBase turns the message into a sentence (capital first letter, final period).
  function sentence(s) {
    s = String(s == null ? "" : s).trim();
    if (!s) return s;
    s = s[0].toUpperCase() + s.slice(1);
    return /[.!?]$/.test(s) ? s : s + ".";
  }
  class ApiError extends Error {
    constructor(status, message, data, raw) {
      super(raw ? String(message) : sentence(message));
      this.status = status || 400;
      this.data = data && typeof data === "object" ? data : {};
      this.name = "ApiError";
    }
  }
  class BadRequestError extends ApiError {
    constructor(message, data) {
      super(400, message || "Something went wrong while processing your request.", data);
    }
  }
  class NotFoundError extends ApiError {
    constructor(message, data) {
      super(404, message || "The requested resource wasn't found.", data);
    }
  }
  class ForbiddenError extends ApiError {
    constructor(message, data) {
      super(403, message || "You are not allowed to perform this request.", data);
    }
  }
  class UnauthorizedError extends ApiError {
    constructor(message, data) {
      super(401, message || "Missing or invalid authentication.", data);
    }
  }
  class TooManyRequestsError extends ApiError {
    constructor(message, data) {
      super(429, message || "Too Many Requests.", data);
    }
  }
  class InternalServerError extends ApiError {
    constructor(message, data) {
      super(500, message || "Something went wrong while processing your request.", data);
    }
  }
  // A field error for an ApiError's data: `{ title: new ValidationError("code", "Message") }`.
  class ValidationError {
    constructor(code, message) { this.code = String(code || "validation_invalid_value"); this.message = String(message || "Invalid value."); }
  }
  // PocketBase keeps only validation errors in `data`: any other leaf becomes "Invalid value.".
  function safeData(d) {
    const out = {};
    for (const k of Object.keys(d || {})) {
      const v = d[k];
      if (v instanceof ValidationError) out[k] = { code: v.code, message: sentence(v.message) };
      else if (v && typeof v === "object" && !Array.isArray(v)) out[k] = safeData(v);
      else out[k] = { code: "validation_invalid_value", message: "Invalid value." };
    }
    return out;
  }
  Object.assign(g, {
    ValidationError, ApiError, BadRequestError, NotFoundError, ForbiddenError, UnauthorizedError,
    TooManyRequestsError, InternalServerError,
  });

  // What a thrown value becomes for Rust: an ApiError keeps its status; anything else
  // (an Error, a string, an object) is a 500 whose text goes to the log only.
  function failure(err) {
    if (err instanceof ApiError) {
      return { status: err.status, message: err.message, data: err.__native ? err.data : safeData(err.data) };
    }
    let text;
    try {
      text = err instanceof Error ? String(err.stack ? err.message + "\n" + err.stack : err.message) : JSON.stringify(err);
    } catch (_) {
      text = String(err);
    }
    // A limit of the engine (memory, stack) is the server's 500, as a time-out is. Out of
    // memory, QuickJS may throw null (no memory left for an error object).
    const msg = err instanceof Error ? String(err.message) : "";
    if (err === null || err === undefined || (err instanceof RangeError && /stack/i.test(msg)) || /out of memory/i.test(msg)) {
      return { status: 500, message: "Something went wrong while processing your request.", data: {}, log: "hook limit: " + text };
    }
    // As PocketBase: anything thrown that is not an ApiError is a 400 with the generic
    // message; its text goes to the log only.
    return { status: 400, message: "Something went wrong while processing your request.", data: {}, log: text };
  }

  // ---- console ------------------------------------------------------------------------
  function fmt(args) {
    return args.map((a) => {
      if (typeof a === "string") return a;
      try { return JSON.stringify(a); } catch (_) { return String(a); }
    }).join(" ");
  }
  g.console = {
    log: (...a) => native("log", JSON.stringify(["info", fmt(a)])),
    info: (...a) => native("log", JSON.stringify(["info", fmt(a)])),
    debug: (...a) => native("log", JSON.stringify(["debug", fmt(a)])),
    warn: (...a) => native("log", JSON.stringify(["warn", fmt(a)])),
    error: (...a) => native("log", JSON.stringify(["error", fmt(a)])),
  };

  // ---- values -------------------------------------------------------------------------
  function toJSONValue(v) {
    if (v instanceof Record) return v.id;
    if (v instanceof DateTime) return v.toString();
    if (Array.isArray(v)) return v.map(toJSONValue);
    return v;
  }

  class DateTime {
    constructor(s) {
      this.__s = s === undefined ? call("now") : String(s || "");
    }
    string() { return this.__s; }
    toString() { return this.__s; }
    isZero() { return this.__s === ""; }
    unix() { return this.__s ? Math.floor(Date.parse(this.__s.replace(" ", "T")) / 1000) : 0; }
    time() { return new Date(this.__s.replace(" ", "T")); }
    add(ms) { return new DateTime(new Date(this.time().getTime() + ms).toISOString().replace("T", " ")); }
    toJSON() { return this.__s; }
  }
  g.DateTime = DateTime;

  // ---- records ------------------------------------------------------------------------
  function collectionOf(c) {
    if (c instanceof Collection) return c;
    if (typeof c === "string") return $app.findCollectionByNameOrId(c);
    if (c && typeof c === "object") return new Collection(c);
    throw new BadRequestError("Missing collection.");
  }

  class Record {
    constructor(collection, data) {
      Object.defineProperty(this, "__col", { value: collectionOf(collection), writable: true });
      Object.defineProperty(this, "__data", { value: {}, writable: true });
      Object.defineProperty(this, "__new", { value: true, writable: true });
      Object.defineProperty(this, "__original", { value: null, writable: true });
      Object.defineProperty(this, "__hidden", { value: {}, writable: true });
      Object.defineProperty(this, "__custom", { value: false, writable: true });
      Object.defineProperty(this, "__dirty", { value: {}, writable: true });
      Object.defineProperty(this, "__presented", { value: false, writable: true });
      if (data) this.load(data);
    }
    static __stored(col, data) {
      const r = new Record(col);
      r.__data = Object.assign({}, data);
      r.__new = false;
      r.__original = Object.assign({}, data);
      return r;
    }
    get id() { return this.__data.id || ""; }
    set id(v) { this.__data.id = String(v); }
    collection() { return this.__col; }
    tableName() { return this.__col.name; }
    isNew() { return this.__new; }
    markAsNew() { this.__new = true; }
    markAsNotNew() { this.__new = false; }
    original() {
      const o = new Record(this.__col);
      o.__data = Object.assign({}, this.__original || {});
      o.__new = this.__new;
      return o;
    }
    fresh() { return Record.__stored(this.__col, this.__data); }
    clone() { const c = Record.__stored(this.__col, this.__data); c.__new = this.__new; return c; }
    load(data) { for (const k of Object.keys(data || {})) this.set(k, data[k]); }
    get(k) {
      const v = this.__data[k];
      return v === undefined ? null : v;
    }
    set(k, v) {
      if (/:autogenerate$/.test(k)) throw new Error("the :autogenerate modifier of record.set is part of PocketBase's JavaScript API but Galley does not offer it (a text field's autogeneratePattern fills an empty value on save)");
      v = toJSONValue(v);
      this.__dirty[String(k).replace(/^\+|[+-]$/g, "")] = true;
      const m = /^(\+)?([^+-]+)([+-])?$/.exec(k);
      if (m && (m[1] || m[3]) && this.__col.fields.getByName(m[2])) {
        const name = m[2];
        const cur = this.__data[name];
        const field = this.__col.fields.getByName(name);
        const list = Array.isArray(cur) ? cur.slice() : (cur === null || cur === undefined || cur === "" ? [] : [cur]);
        const items = Array.isArray(v) ? v : [v];
        if (field.type === "number") {
          this.__data[name] = (Number(cur) || 0) + (m[3] === "-" ? -Number(v) : Number(v));
        } else if (m[3] === "-") {
          this.__data[name] = list.filter((x) => !items.includes(x));
        } else if (m[1]) {
          this.__data[name] = items.concat(list);
        } else {
          this.__data[name] = list.concat(items);
        }
        return;
      }
      this.__data[k] = v;
    }
    getString(k) { const v = this.get(k); return v === null ? "" : (typeof v === "object" ? JSON.stringify(v) : String(v)); }
    getInt(k) { const v = Number(this.get(k)); return Number.isFinite(v) ? Math.trunc(v) : 0; }
    getFloat(k) { const v = Number(this.get(k)); return Number.isFinite(v) ? v : 0; }
    getBool(k) { const v = this.get(k); return v === true || v === "true" || v === 1 || v === "1"; }
    getStringSlice(k) { const v = this.get(k); return Array.isArray(v) ? v.map(String) : (v === null || v === "" ? [] : [String(v)]); }
    getDateTime(k) { return new DateTime(this.getString(k)); }
    getRaw(k) { return this.get(k); }
    email() { return this.getString("email"); }
    setEmail(v) { this.set("email", v); }
    verified() { return this.getBool("verified"); }
    setVerified(v) { this.set("verified", !!v); }
    emailVisibility() { return this.getBool("emailVisibility"); }
    setEmailVisibility(v) { this.set("emailVisibility", !!v); }
    tokenKey() { return this.getString("tokenKey"); }
    setPassword(p) { this.__data.password = call("hashPassword", String(p)); }
    setRandomPassword() { const p = $security.randomString(30); this.setPassword(p); return p; }
    validatePassword(p) { return call("verifyPassword", [this.getString("password"), String(p)]); }
    isSuperuser() { return this.__col.name === "_superusers"; }
    hide(...names) { for (const n of names.flat()) this.__hidden[n] = true; return this; }
    unhide(...names) { for (const n of names.flat()) this.__hidden[n] = false; return this; }
    withCustomData(v) { this.__custom = !!v; return this; }
    expandedOne(k) { const e = (this.__data.expand || {})[k]; return e && !Array.isArray(e) ? Record.__stored(this.__col, e) : null; }
    expandedAll(k) { const e = (this.__data.expand || {})[k]; return Array.isArray(e) ? e.map((x) => Record.__stored(this.__col, x)) : (e ? [Record.__stored(this.__col, e)] : []); }
    publicExport() {
      if (this.__presented) {
        // A record as an answer already shows it: only what hooks hid goes.
        const out = {};
        for (const k of Object.keys(this.__data)) if (this.__hidden[k] !== true) out[k] = this.__data[k];
        return out;
      }
      const out = { collectionId: this.__col.id, collectionName: this.__col.name };
      const fields = this.__col.fields;
      for (const f of fields) {
        const n = f.name;
        if (this.__hidden[n] === true) continue;
        if ((f.hidden || f.type === "password") && this.__hidden[n] !== false) continue;
        if (n === "tokenKey") continue;
        if (n === "email" && this.__col.type === "auth" && !this.emailVisibility() && this.__hidden[n] !== false) continue;
        out[n] = this.__data[n] === undefined ? null : this.__data[n];
      }
      if (this.__data.expand) out.expand = this.__data.expand;
      if (this.__custom) {
        for (const k of Object.keys(this.__data)) if (!(k in out) && this.__hidden[k] !== true && !fields.getByName(k)) out[k] = this.__data[k];
      }
      return out;
    }
    toJSON() { return this.publicExport(); }
  }
  g.Record = Record;

  // ---- collections and fields ---------------------------------------------------------
  class FieldsList extends Array {
    getByName(n) { return this.find((f) => f.name === n) || null; }
    getById(id) { return this.find((f) => f.id === id) || null; }
    add(...fs) { for (const f of fs) this.__put(-1, f); }
    addAt(pos, ...fs) {
      const total = this.length;
      fs.forEach((f, i) => this.__put(pos < 0 ? -1 : pos > total ? total + i : pos + i, f));
    }
    // PocketBase's FieldsList.add: a field of the same id (or, without an id, of the same
    // name, whose id it takes) is replaced, in place for `add`, moved to `pos` for `addAt`
    // (what generated migrations' "update field" relies on).
    __put(pos, f) {
      let inPlace = false;
      if (pos < 0) { inPlace = true; pos = this.length; } else if (pos > this.length) pos = this.length;
      const byName = !f.id;
      const i = this.findIndex((x) => byName ? (!!f.name && x.name === f.name) : x.id === f.id);
      if (i >= 0) {
        if (byName) f.id = this[i].id;
        if (inPlace) { this[i] = f; return; }
        this.splice(i, 1);
        if (pos > this.length) pos = this.length;
      }
      this.splice(pos, 0, f);
    }
    removeById(id) { const i = this.findIndex((f) => f.id === id); if (i >= 0) this.splice(i, 1); }
    removeByName(n) { const i = this.findIndex((f) => f.name === n); if (i >= 0) this.splice(i, 1); }
    fieldNames() { return this.map((f) => f.name); }
  }
  function fieldsFrom(list) {
    const out = new FieldsList();
    for (const f of list || []) out.push(Object.assign({}, f));
    return out;
  }

  class Collection {
    constructor(data) {
      data = data || {};
      Object.assign(this, {
        id: "", name: "", type: "base", system: false,
        listRule: null, viewRule: null, createRule: null, updateRule: null, deleteRule: null,
        indexes: [],
      }, data);
      this.fields = fieldsFrom(data.fields);
      this.indexes = (data.indexes || []).slice();
    }
    isAuth() { return this.type === "auth"; }
    isBase() { return this.type === "base"; }
    isView() { return this.type === "view"; }
    toJSON() { return Object.assign({}, this, { fields: Array.from(this.fields) }); }
  }
  g.Collection = Collection;
  function fieldClass(type) {
    return class {
      constructor(data) { Object.assign(this, { id: "", name: "", type: type, system: false, hidden: false, presentable: false }, data || {}); this.type = type; }
    };
  }
  for (const [cls, type] of [["TextField", "text"], ["NumberField", "number"], ["BoolField", "bool"],
    ["EmailField", "email"], ["URLField", "url"], ["EditorField", "editor"], ["DateField", "date"],
    ["AutodateField", "autodate"], ["SelectField", "select"], ["FileField", "file"],
    ["RelationField", "relation"], ["JSONField", "json"], ["PasswordField", "password"],
    ["GeoPointField", "geoPoint"]]) {
    g[cls] = fieldClass(type);
  }

  g.Field = class Field {
    constructor(data) { Object.assign(this, data || {}); }
  };

  // `unmarshal(data, target)`: PocketBase's helper to load plain data into an object.
  g.unmarshal = function (data, target) {
    for (const k of Object.keys(data || {})) {
      if (k === "fields" && target instanceof Collection) target.fields = fieldsFrom(data.fields);
      else target[k] = data[k];
    }
    return target;
  };

  class DynamicModel {
    constructor(shape) { Object.assign(this, shape || {}); Object.defineProperty(this, "__shape", { value: Object.assign({}, shape || {}) }); }
  }
  g.DynamicModel = DynamicModel;
  g.arrayOf = function (model) { const a = []; Object.defineProperty(a, "__model", { value: model }); return a; };
  function shaped(model, row) {
    const out = new DynamicModel(model.__shape || model);
    for (const k of Object.keys(model.__shape || model)) {
      const proto = (model.__shape || model)[k];
      let v = row[k];
      if (v === undefined) continue;
      if (typeof proto === "number") v = Number(v) || 0;
      else if (typeof proto === "boolean") v = v === true || v === 1 || v === "1" || v === "true";
      else if (typeof proto === "string") v = v === null ? "" : String(v);
      else if (Array.isArray(proto) || (proto && typeof proto === "object")) {
        if (typeof v === "string") { try { v = JSON.parse(v); } catch (_) { /* kept */ } }
      }
      out[k] = v;
    }
    return out;
  }

  class Query {
    constructor(sql) { this.__sql = String(sql); this.__params = {}; }
    bind(params) { Object.assign(this.__params, params || {}); return this; }
    execute() { return call("query", { sql: this.__sql, params: this.__params, mode: "execute" }); }
    all(result) {
      const rows = call("query", { sql: this.__sql, params: this.__params, mode: "all" });
      if (Array.isArray(result)) {
        result.length = 0;
        const model = result.__model;
        for (const r of rows) result.push(model ? shaped(model, r) : r);
        return result;
      }
      return rows;
    }
    one(result) {
      const rows = call("query", { sql: this.__sql, params: this.__params, mode: "one" });
      if (!rows.length) throw new NotFoundError();
      if (result && typeof result === "object") { Object.assign(result, shaped(result, rows[0])); return result; }
      return rows[0];
    }
  }

  // ---- $app ---------------------------------------------------------------------------
  function records(col, rows) { return rows.map((d) => Record.__stored(col, d)); }
  function colName(c) { return c instanceof Collection ? c.id || c.name : String(c); }
  const app = {
    findCollectionByNameOrId(n) { return new Collection(call("collection", colName(n))); },
    findAllCollections(...types) { return call("collections", types.flat()).map((c) => new Collection(c)); },
    findRecordById(c, id) {
      const col = c instanceof Collection ? c : app.findCollectionByNameOrId(c);
      return Record.__stored(col, call("findById", [col.id, String(id)]));
    },
    findRecordsByIds(c, ids) {
      const col = c instanceof Collection ? c : app.findCollectionByNameOrId(c);
      return records(col, call("find", { c: col.id, ids: ids.map(String) }));
    },
    findFirstRecordByData(c, field, value) {
      const col = c instanceof Collection ? c : app.findCollectionByNameOrId(c);
      const rows = call("find", { c: col.id, field: String(field), value: toJSONValue(value), limit: 1 });
      if (!rows.length) throw new NotFoundError();
      return Record.__stored(col, rows[0]);
    },
    findFirstRecordByFilter(c, filter, params) {
      const col = c instanceof Collection ? c : app.findCollectionByNameOrId(c);
      const rows = call("find", { c: col.id, filter: String(filter || ""), params: params || {}, limit: 1 });
      if (!rows.length) throw new NotFoundError();
      return Record.__stored(col, rows[0]);
    },
    findRecordsByFilter(c, filter, sort, limit, offset, params) {
      const col = c instanceof Collection ? c : app.findCollectionByNameOrId(c);
      return records(col, call("find", {
        c: col.id, filter: String(filter || ""), sort: String(sort || ""),
        limit: limit || 0, offset: offset || 0, params: params || {},
      }));
    },
    findAllRecords(c) {
      const col = c instanceof Collection ? c : app.findCollectionByNameOrId(c);
      return records(col, call("find", { c: col.id }));
    },
    findAuthRecordByEmail(c, email) {
      const col = c instanceof Collection ? c : app.findCollectionByNameOrId(c);
      if (!col.isAuth()) throw new BadRequestError(`"${col.name}" is not an auth collection`);
      const rows = call("find", { c: col.id, field: "email", value: String(email), limit: 1, nocase: true });
      if (!rows.length) throw new NotFoundError();
      return Record.__stored(col, rows[0]);
    },
    findAuthRecordByToken(token, type) { return app.findRecordById(...call("authByToken", [String(token), String(type || "auth")])); },
    countRecords(c, filter, params) {
      const col = c instanceof Collection ? c : app.findCollectionByNameOrId(c);
      return call("count", { c: col.id, filter: String(filter || ""), params: params || {} });
    },
    save(model) {
      if (model instanceof Record) {
        const stored = call("save", { c: model.__col.id, id: model.__new ? null : model.id, data: model.__data });
        model.__data = stored;
        model.__original = Object.assign({}, stored);
        model.__new = false;
        return;
      }
      if (model instanceof Collection) {
        const saved = call("saveCollection", model.toJSON());
        Object.assign(model, new Collection(saved));
        return;
      }
      if (model && model.__settings) { call("saveSettings", model); return; }
      throw new BadRequestError("$app.save: unsupported model");
    },
    saveNoValidate(model) { return app.save(model); },
    validate(model) {
      if (model instanceof Record) call("validate", { c: model.__col.id, id: model.__new ? null : model.id, data: model.__data });
    },
    delete(model) {
      if (model instanceof Record) { call("delete", [model.__col.id, model.id]); return; }
      if (model instanceof Collection) { call("deleteCollection", model.id || model.name); return; }
      throw new BadRequestError("$app.delete: unsupported model");
    },
    runInTransaction(fn) {
      const token = call("txBegin");
      let ok = false;
      try {
        fn(app);
        ok = true;
      } finally {
        call("txEnd", [token, ok]);
      }
    },
    db() { return { newQuery: (sql) => new Query(sql) }; },
    dao() { return app; },
    settings() { const s = call("settings"); Object.defineProperty(s, "__settings", { value: true }); return s; },
    isDev() { return false; },
    dataDir() { return call("dataDir"); },
    newMailClient() { return { send: (m) => call("mail", m) }; },
    logger() { return loggerObj; },
    hasTable(name) { return call("hasTable", String(name)); },
  };
  const loggerObj = {
    debug: (msg, ...kv) => native("log", JSON.stringify(["debug", fmt([msg, ...kv])])),
    info: (msg, ...kv) => native("log", JSON.stringify(["info", fmt([msg, ...kv])])),
    warn: (msg, ...kv) => native("log", JSON.stringify(["warn", fmt([msg, ...kv])])),
    error: (msg, ...kv) => native("log", JSON.stringify(["error", fmt([msg, ...kv])])),
  };
  g.$app = app;

  g.MailerMessage = class MailerMessage {
    constructor(d) { Object.assign(this, { from: {}, to: [], bcc: [], cc: [], subject: "", html: "", text: "", headers: {} }, d || {}); }
  };

  // ---- $security, $os, $http, utilities ----------------------------------------------
  g.$security = {
    randomString: (n) => call("randomString", [Number(n) || 0, ""]),
    randomStringWithAlphabet: (n, a) => call("randomString", [Number(n) || 0, String(a)]),
    pseudorandomString: (n) => call("randomString", [Number(n) || 0, ""]),
    pseudorandomStringWithAlphabet: (n, a) => call("randomString", [Number(n) || 0, String(a)]),
    createJWT: (payload, secret, duration) => call("jwtCreate", [payload || {}, String(secret), Number(duration) || 0]),
    parseJWT: (token, secret) => call("jwtParse", [String(token), String(secret)]),
    parseUnverifiedJWT: (token) => call("jwtParse", [String(token), null]),
    equal: (a, b) => call("equal", [String(a), String(b)]),
    sha256: (s) => call("sha256", String(s)),
    sha512: (s) => call("sha512", String(s)),
    hs256: (s, k) => call("hmac", ["sha256", String(s), String(k)]),
    hs512: (s, k) => call("hmac", ["sha512", String(s), String(k)]),
  };
  g.$os = {
    getenv: (k) => call("getenv", String(k)),
  };
  g.$http = {
    send(cfg) {
      cfg = cfg || {};
      let body = cfg.body === undefined ? "" : cfg.body;
      if (typeof body !== "string") body = JSON.stringify(body);
      const r = call("http", {
        url: String(cfg.url || ""), method: String(cfg.method || "GET").toUpperCase(),
        headers: cfg.headers || {}, body: body, timeout: Number(cfg.timeout) || 120,
      });
      let json = null;
      try { json = JSON.parse(r.raw); } catch (_) { /* not JSON */ }
      return { statusCode: r.statusCode, headers: r.headers, cookies: {}, raw: r.raw, body: r.raw, json: json };
    },
  };
  g.sleep = (ms) => call("sleep", Number(ms) || 0);
  g.readerToString = (r) => (typeof r === "string" ? r : r && r.__text !== undefined ? r.__text : String(r));
  g.toString = (v) => (typeof v === "string" ? v : JSON.stringify(v));

  // ---- middlewares --------------------------------------------------------------------
  g.$apis = {
    requireAuth(...cols) {
      cols = cols.flat();
      return function (e) {
        if (!e.auth) throw new UnauthorizedError("The request requires valid record authorization token.");
        if (cols.length && !cols.includes(e.auth.collection().name) && !cols.includes(e.auth.collection().id)) {
          throw new ForbiddenError("The authorized record is not allowed to perform this action.");
        }
        return e.next();
      };
    },
    requireSuperuserAuth() {
      return function (e) {
        if (!e.auth) throw new UnauthorizedError("The request requires valid record authorization token.");
        if (!e.auth.isSuperuser()) throw new ForbiddenError("The authorized record is not allowed to perform this action.");
        return e.next();
      };
    },
    requireSuperuserOrOwnerAuth(param) {
      param = param || "id";
      return function (e) {
        if (!e.auth) throw new UnauthorizedError("The request requires superuser or record authorization token.");
        if (!e.auth.isSuperuser() && e.auth.id !== e.request.pathValue(param)) throw new ForbiddenError("You are not allowed to perform this request.");
        return e.next();
      };
    },
    requireGuestOnly() {
      return function (e) {
        if (e.auth) throw new BadRequestError("The request can be accessed only by guests.");
        return e.next();
      };
    },
    bodyLimit(n) {
      n = Number(n) || 0;
      return function (e) {
        if (n > 0 && e.__bodySize > n) throw new ApiError(413, "Request entity too large");
        return e.next();
      };
    },
    skipSuccessActivityLog() { return function (e) { return e.next(); }; },
  };

  // ---- request events -----------------------------------------------------------------
  class Headers {
    constructor(h) { this.__h = h || {}; }
    get(k) { return this.__h[String(k).toLowerCase()] || ""; }
    has(k) { return String(k).toLowerCase() in this.__h; }
  }

  // The request event's parts are classes with their methods on prototypes, so that a
  // request allocates a few objects, not a closure per method.
  class URLView {
    constructor(req) { this.__r = req; this.path = req.path; this.rawQuery = req.query; }
    query() { return new URLSearchParamsLite(this.__r.query); }
    string() { return this.__r.path + (this.__r.query ? "?" + this.__r.query : ""); }
  }
  class RequestView {
    constructor(req) {
      this.__r = req;
      this.method = req.method;
      this.remoteAddr = req.ip;
      this.__url = null;
      this.__header = null;
    }
    get url() { return this.__url || (this.__url = new URLView(this.__r)); }
    get header() { return this.__header || (this.__header = new Headers(this.__r.headers)); }
    pathValue(n) { const v = this.__r.pathParams[n]; return v === undefined ? "" : v; }
  }
  class ResponseHeaders {
    constructor(out) { this.__o = out; }
    set(k, v) { this.__o[String(k)] = String(v); }
    get(k) { return this.__o[String(k)] || ""; }
  }
  class RequestEvent {
    constructor(req, reply, headersOut) {
      this.app = app;
      this.auth = req.auth ? Record.__stored(collectionFrom(req.authCollection), req.auth) : null;
      this.request = new RequestView(req);
      this.__req = req;
      this.__reply = reply;
      this.__headersOut = headersOut;
      this.__bodySize = req.body.length;
      this.__bodyCache = undefined;
    }
    get response() { const h = new ResponseHeaders(this.__headersOut); return { header: () => h }; }
    realIP() { return this.__req.ip; }
    remoteIP() { return this.__req.ip; }
    hasSuperuserAuth() { return !!(this.auth && this.auth.isSuperuser()); }
    isTLS() { return false; }
    // Values kept for the rest of the request (middlewares to handler).
    set(k, v) { (this.__store || (this.__store = {}))[String(k)] = v; }
    get(k) { const s = this.__store || {}; return k in s ? s[k] : null; }
    requestInfo() {
      const req = this.__req, auth = this.auth;
      return {
        auth: auth, method: req.method, context: "default",
        query: Object.fromEntries(new URLSearchParamsLite(req.query).entries()),
        headers: Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k.replace(/-/g, "_"), v])),
        body: this.__body(),
        hasSuperuserAuth: () => !!(auth && auth.isSuperuser()),
      };
    }
    __body() {
      if (this.__bodyCache !== undefined) return this.__bodyCache;
      const req = this.__req;
      const ct = (req.headers["content-type"] || "").toLowerCase();
      if (!req.body) this.__bodyCache = {};
      else if (ct.startsWith("application/x-www-form-urlencoded")) this.__bodyCache = Object.fromEntries(new URLSearchParamsLite(req.body).entries());
      else {
        try { this.__bodyCache = JSON.parse(req.body); } catch (_) { throw new BadRequestError("An error occurred while loading the submitted data."); }
      }
      return this.__bodyCache;
    }
    bindBody(target) {
      const b = this.__body();
      if (b && typeof b === "object") Object.assign(target, b);
      return target;
    }
    __answer(status, type, body) {
      const r = this.__reply;
      r.set = true; r.status = status; r.type = type; r.body = body;
    }
    json(status, data) { this.__answer(status, "application/json", data === undefined ? "null" : JSON.stringify(data)); }
    string(status, s) { this.__answer(status, "text/plain; charset=utf-8", String(s)); }
    html(status, s) { this.__answer(status, "text/html; charset=utf-8", String(s)); }
    blob(status, type, s) { this.__answer(status, String(type), String(s)); }
    noContent(status) { this.__answer(status || 204, "", ""); }
    redirect(status, url) { this.__headersOut["Location"] = String(url); this.__answer(status || 302, "", ""); }
    error(status, message, data) { return new ApiError(status, message, data); }
    badRequestError(m, d) { return new BadRequestError(m, d); }
    notFoundError(m, d) { return new NotFoundError(m, d); }
    forbiddenError(m, d) { return new ForbiddenError(m, d); }
    unauthorizedError(m, d) { return new UnauthorizedError(m, d); }
    tooManyRequestsError(m, d) { return new TooManyRequestsError(m, d); }
    internalServerError(m, d) { return new InternalServerError(m, d); }
  }

  function requestEvent(req) {
    const reply = { set: false };
    const headersOut = {};
    return { e: new RequestEvent(req, reply, headersOut), reply, headersOut };
  }

  // Collections by their JSON text: the same collection (same version) is parsed once per
  // engine, not once per event.
  const collectionCache = new Map();
  function collectionFrom(json) {
    if (typeof json !== "string") return new Collection(json);
    let c = collectionCache.get(json);
    if (!c) {
      if (collectionCache.size > 256) collectionCache.clear();
      c = new Collection(JSON.parse(json));
      collectionCache.set(json, c);
    }
    return c;
  }

  class URLSearchParamsLite {
    constructor(q) {
      this.__p = [];
      for (const part of String(q || "").split("&")) {
        if (!part) continue;
        const i = part.indexOf("=");
        const dec = (s) => { try { return decodeURIComponent(s.replace(/\+/g, " ")); } catch (_) { return s; } };
        this.__p.push(i < 0 ? [dec(part), ""] : [dec(part.slice(0, i)), dec(part.slice(i + 1))]);
      }
    }
    get(k) { const p = this.__p.find((x) => x[0] === k); return p ? p[1] : ""; }
    has(k) { return this.__p.some((x) => x[0] === k); }
    entries() { return this.__p[Symbol.iterator](); }
  }

  function presented(col, data) {
    const r = Record.__stored(col, data);
    r.__presented = true;
    return r;
  }
  function changes(r) {
    const out = {};
    for (const k of Object.keys(r.__dirty)) out[k] = r.__data[k] === undefined ? null : r.__data[k];
    return out;
  }

  // Runs `fns` as one chain: each gets `e` with `e.next()` calling the next one, the last
  // one's `next` is `last`.
  function chain(fns, e, last) {
    let i = 0;
    const run = () => {
      if (i < fns.length) {
        const f = fns[i++];
        const saved = e.next;
        e.next = run;
        try { return f(e); } finally { e.next = saved; }
      }
      return last();
    };
    return run();
  }

  // ---- registration (load time) and dispatch (request time) --------------------------
  const compiled = new Map();
  function handler(id) {
    let f = compiled.get(id);
    if (!f) {
      const src = call("source", id);
      f = (0, eval)("(" + src + ")");
      if (typeof f !== "function") throw new Error("handler " + id + " is not a function");
      compiled.set(id, f);
    }
    return f;
  }
  function middleware(m) {
    if (m.kind === "fn") return handler(m.id);
    return g.$apis[m.name](...(m.args || []));
  }

  const registrations = [];
  let loading = false;
  function reg(kind, fields) {
    if (!loading) throw new Error(kind + " can only be called while the hook files load");
    registrations.push(Object.assign({ kind }, fields));
  }
  function fnRef(f, what) {
    if (typeof f !== "function") throw new TypeError(what + " must be a function");
    return String(f);
  }
  function mwRef(m) {
    if (m && m.__galleyMiddleware) return m.__galleyMiddleware;
    if (typeof m === "function") return { kind: "fn", src: String(m) };
    if (m && typeof m === "object" && typeof m.func === "function") return { kind: "fn", src: String(m.func) };
    throw new TypeError("a middleware must be a function or one of $apis' middlewares");
  }

  g.routerAdd = (method, path, fn, ...mws) =>
    reg("route", { method: String(method).toUpperCase(), path: String(path), src: fnRef(fn, "routerAdd's handler"), mws: mws.flat().map(mwRef) });
  g.routerUse = (...mws) => reg("use", { mws: mws.flat().map(mwRef) });

  g.cronAdd = (id, expr, fn) => reg("cron", { id: String(id), expr: String(expr), src: fnRef(fn, "cronAdd's handler") });
  g.cronRemove = (id) => reg("cronRemove", { id: String(id) });
  // Galley's own: the handler of a job kind of the durable queue (`$jobs.enqueue`).
  g.jobAdd = (kind, fn) => reg("job", { jobKind: String(kind), src: fnRef(fn, "jobAdd's handler") });
  g.$jobs = {
    // { kind, payload, runAt (a date or "YYYY-MM-DD HH:MM:SS.sssZ"), priority, uniqueKey,
    //   maxAttempts, queue }; inside a transaction the job exists only if it commits.
    enqueue(job) {
      job = job || {};
      const runAt = job.runAt instanceof Date ? job.runAt.toISOString() : (job.runAt ? String(job.runAt) : null);
      return call("enqueue", {
        kind: String(job.kind || ""), payload: job.payload === undefined ? null : job.payload,
        runAt: runAt, priority: job.priority || 0, uniqueKey: job.uniqueKey || null,
        maxAttempts: job.maxAttempts || 0, queue: job.queue || "",
      });
    },
  };
  g.migrate = (up, down) => reg("migration", { up: up ? fnRef(up, "migrate's up") : null, down: down ? fnRef(down, "migrate's down") : null });

  const EVENTS = [
    "onBootstrap", "onServe", "onTerminate",
    "onRecordCreate", "onRecordUpdate", "onRecordDelete",
    "onRecordValidate",
    "onRecordCreateExecute", "onRecordUpdateExecute", "onRecordDeleteExecute",
    "onRecordAfterCreateSuccess", "onRecordAfterUpdateSuccess", "onRecordAfterDeleteSuccess",
    "onRecordCreateRequest", "onRecordUpdateRequest", "onRecordDeleteRequest",
    "onRecordsListRequest", "onRecordViewRequest", "onRecordAuthRequest",
    "onRecordEnrich", "onMailerSend",
  ];
  for (const name of EVENTS) {
    g[name] = (fn, ...tags) => reg("event", { event: name, src: fnRef(fn, name + "'s handler"), tags: tags.flat().map(String) });
  }
  // $apis' middlewares keep a serialisable description for the registry.
  for (const name of Object.keys(g.$apis)) {
    const make = g.$apis[name];
    g.$apis[name] = function (...args) {
      const f = make(...args);
      if (loading) return { __galleyMiddleware: { kind: "api", name, args } };
      return f;
    };
  }

  // Names of PocketBase's JavaScript API that Galley does not offer: using one fails the
  // load with its name, never a silent no-op.
  const unsupported = new Set(g.__unsupported || []);
  for (const name of unsupported) {
    const fail = () => { throw new Error(name + " is part of PocketBase's JavaScript API but Galley does not offer it"); };
    if (name.startsWith("$")) {
      g[name] = new Proxy({}, { get: (_, p) => (typeof p === "symbol" ? undefined : fail()) });
    } else {
      g[name] = fail;
    }
  }
  delete g.__unsupported;

  // ---- require() of CommonJS files in the hooks folder ---------------------------------
  const modules = new Map();
  g.require = function (path) {
    const resolved = call("resolveModule", String(path));
    if (modules.has(resolved.path)) return modules.get(resolved.path).exports;
    const module = { exports: {} };
    modules.set(resolved.path, module);
    const fn = (0, eval)("(function (module, exports, require, __filename) {" + resolved.source + "\n})");
    fn(module, module.exports, g.require, resolved.path);
    return module.exports;
  };

  // ---- the load-time check of names ---------------------------------------------------
  // Handlers run as source text later, so a name they use that Galley does not offer would
  // only fail when called; the check finds them in the file's text at load: names of
  // PocketBase's globals that are not defined here, members of the `$` objects that they do
  // not have, and PocketBase's methods on events and records that are not offered.
  const PB_GLOBALS = ["$apis", "$app", "$dbx", "$filepath", "$filesystem", "$http", "$mails", "$os",
    "$security", "$template", "ApiError", "AppleClientSecretCreateForm", "AutodateField",
    "BadRequestError", "BoolField", "Collection", "Command", "Context", "Cookie", "DateField",
    "DateTime", "DynamicModel", "EditorField", "EmailField", "Field", "FieldsList", "FileField",
    "ForbiddenError", "GeoPointField", "InternalServerError", "JSONField", "MailerMessage",
    "Middleware", "NotFoundError", "NumberField", "PasswordField", "Record", "RecordUpsertForm",
    "RelationField", "RequestInfo", "SelectField", "SubscriptionMessage", "TestEmailSendForm",
    "TestS3FilesystemForm", "TextField", "Timezone", "TooManyRequestsError", "URLField",
    "UnauthorizedError", "ValidationError", "arrayOf", "cronAdd", "cronRemove", "migrate",
    "nullArray", "nullBool", "nullFloat", "nullInt", "nullObject", "nullString", "readerToString",
    "routerAdd", "routerUse", "sleep", "toBytes", "toString", "unmarshal"];
  const PB_METHODS = ["findUploadedFiles", "formFile", "fileFS", "stream", "getUnsavedFiles",
    "unmarshalJSONField", "newAuthToken", "newVerificationToken", "newPasswordResetToken",
    "newEmailChangeToken", "newFileToken", "newStaticAuthToken", "refreshTokenKey", "setTokenKey",
    "canAccessRecord", "expandRecord", "expandRecords", "recordQuery", "collectionQuery",
    "modelQuery", "importCollections", "isCollectionNameUnique", "truncateCollection",
    "findAllExternalAuthsByRecord", "findAuthRecordByFilter", "newBackup", "restoreBackup",
    "newFilesystem", "newBackupsFilesystem", "saveNoValidateWithContext", "unsafeWithoutHooks",
    "findCachedCollectionByNameOrId", "syncRecordTableSchema", "auxDB", "nonconcurrentDB",
    "concurrentDB", "cron", "store", "subscriptionsBroker"];
  // Comments, strings and regular expressions become spaces (lines kept), so that only code
  // is looked at; template literals' `${...}` parts stay code.
  function codeOf(src) {
    const blank = (t) => t.replace(/[^\n]/g, " ");
    const n = src.length;
    let out = "", i = 0, prev = "";
    while (i < n) {
      const c = src[i], d = src[i + 1];
      if (c === "/" && (d === "/" || d === "*")) {
        const j = d === "/" ? src.indexOf("\n", i) : src.indexOf("*/", i + 2);
        const e = j < 0 ? n : d === "/" ? j : j + 2;
        out += blank(src.slice(i, e));
        i = e;
        continue;
      }
      const regex = c === "/" && !/[\w$)\]]/.test(prev);
      if (c === "'" || c === '"' || c === "`" || regex) {
        let j = i + 1;
        while (j < n && src[j] !== c) {
          if (src[j] === "\\") { j += 2; continue; }
          if (src[j] === "\n" && c !== "`") break;
          if (c === "`" && src[j] === "$" && src[j + 1] === "{") {
            out += blank(src.slice(i, j + 2));
            let k = j + 2, depth = 1;
            while (k < n && depth > 0) { if (src[k] === "{") depth++; else if (src[k] === "}") depth--; k++; }
            out += src.slice(j + 2, k - 1) + " ";
            i = j = k;
            continue;
          }
          j++;
        }
        out += blank(src.slice(i, j + 1));
        i = j + 1;
        prev = c;
        continue;
      }
      out += c;
      if (!/\s/.test(c)) prev = c;
      i++;
    }
    return out;
  }
  function lineAt(text, index) { return text.slice(0, index).split("\n").length; }
  function checkNames(src) {
    const code = codeOf(String(src));
    const notOffered = (name, index) => ({ name, line: lineAt(code, index) });
    let m;
    const ident = /(^|[^\w$.])([A-Za-z_$][\w$]*)/g;
    while ((m = ident.exec(code))) {
      const name = m[2], at = m.index + m[1].length;
      if (unsupported.has(name)) return notOffered(name, at);
      if (PB_GLOBALS.includes(name) && typeof g[name] === "undefined") return notOffered(name, at);
    }
    const member = /(\$[A-Za-z_]\w*|(?<![\w$.])e\.app)\s*\.\s*([A-Za-z_$][\w$]*)/g;
    while ((m = member.exec(code))) {
      const ns = m[1] === "e.app" ? "$app" : m[1];
      const obj = g[ns];
      if (unsupported.has(ns) || !obj || typeof obj !== "object") continue;
      if (!(m[2] in obj)) return notOffered(ns + "." + m[2], m.index);
    }
    const query = /\.db\(\s*\)\s*\.\s*([A-Za-z_$][\w$]*)/g;
    while ((m = query.exec(code))) if (m[1] !== "newQuery") return notOffered("$app.db()." + m[1], m.index);
    const method = new RegExp("\\.\\s*(" + PB_METHODS.join("|") + ")\\s*\\(", "g");
    if ((m = method.exec(code))) return notOffered(m[1], m.index);
    return null;
  }

  g.__galley = {
    // The first name of `source` that Galley does not offer, as "line:name", or "".
    check(source) {
      const r = checkNames(source);
      return r ? r.line + ":" + r.name : "";
    },
    // Loading one hook file: Rust evaluates it (with its file name, for error lines)
    // between these two; `end` answers the registrations it made, as JSON.
    begin() {
      loading = true;
      registrations.length = 0;
    },
    end() {
      loading = false;
      return JSON.stringify(registrations.splice(0));
    },
    // A route: middlewares (routerUse's, then the route's) then the handler.
    // The request's headers come as their own JSON text, parsed only when read; the answer
    // is "status\ncontent type\nheaders JSON\nbody" (the body as written, not re-encoded
    // in JSON), or "!" and the error's JSON.
    route(reqJson, headersJson, handlerId, mws) {
      const req = JSON.parse(reqJson);
      let headers = null;
      Object.defineProperty(req, "headers", { get: () => headers || (headers = JSON.parse(headersJson)) });
      const { e, reply, headersOut } = requestEvent(req);
      try {
        const f = handler(Number(handlerId));
        if (mws === "[]") f(e);
        else chain(JSON.parse(mws).map(middleware), e, () => f(e));
      } catch (err) {
        return "!" + JSON.stringify(failure(err));
      }
      if (!reply.set) return "";
      let h = "";
      for (const k in headersOut) { h = JSON.stringify(headersOut); break; }
      return reply.status + "\n" + reply.type + "\n" + h + "\n" + reply.body;
    },
    // A record event: the handlers in order, the last one's next() being Rust's next.
    record(event, handlerIds, colJson, recordJson, extraJson) {
      const col = collectionFrom(colJson);
      const record = Record.__stored(col, JSON.parse(recordJson));
      const extra = JSON.parse(extraJson || "{}");
      if (event.endsWith("Create") || extra.isNew) record.__new = true;
      delete extra.isNew;
      if (extra.original) {
        record.__original = extra.original;
        delete extra.original;
      }
      const e = Object.assign({ app: app, record: record, collection: col }, extra);
      let called = false;
      try {
        chain(JSON.parse(handlerIds).map(handler), e, () => {
          called = true;
          const out = call("next", e.record.__data);
          if (out) {
            e.record.__data = out;
            e.record.__new = false;
          }
        });
      } catch (err) {
        return JSON.stringify({ error: failure(err) });
      }
      return JSON.stringify({ called, record: e.record.__data });
    },
    // A record API request: `e.next()` runs the rest of it (Rust's nextRequest).
    request(event, handlerIds, reqJson, payloadJson, colJson) {
      const req = JSON.parse(reqJson);
      const p = JSON.parse(payloadJson);
      const col = collectionFrom(colJson);
      const { e, reply, headersOut } = requestEvent(req);
      e.collection = col;
      const write = event === "onRecordCreateRequest" || event === "onRecordUpdateRequest";
      if (event === "onRecordCreateRequest") {
        e.record = new Record(col);
        e.record.__data = Object.assign({}, p.record || {});
      } else if (event === "onRecordsListRequest") {
        e.result = p.answer;
        e.records = (p.answer.items || []).map((d) => presented(col, d));
      } else if (event === "onRecordAuthRequest") {
        e.record = presented(col, p.answer.record);
        e.token = p.answer.token;
        e.meta = p.answer.meta;
        e.authMethod = p.answer.authMethod || "password";
      } else {
        e.record = write ? Record.__stored(col, p.record) : presented(col, p.record);
      }
      let called = false;
      try {
        chain(JSON.parse(handlerIds).map(handler), e, () => {
          called = true;
          let arg = null;
          if (write) arg = changes(e.record);
          else if (event === "onRecordsListRequest") arg = Object.assign({}, e.result, { items: e.records.map((r) => r.publicExport()) });
          else if (event === "onRecordAuthRequest") arg = { token: e.token, record: e.record.publicExport(), meta: e.meta };
          else if (event === "onRecordViewRequest") arg = e.record.publicExport();
          call("nextRequest", arg);
          if (write) {
            // As PocketBase's e.record after e.next(): the saved record, with the values
            // the answer does not show (an auth record's email) readable but still hidden.
            // Rust keeps the answer; it comes here only when a handler reads e.record.
            const before = e.record;
            let after = null;
            Object.defineProperty(e, "record", {
              configurable: true, enumerable: true,
              get() {
                if (after) return after;
                const answer = call("nextAnswer");
                if (!answer) return (after = before);
                after = presented(col, answer);
                for (const k of Object.keys(before.__data)) {
                  if (!(k in answer)) { after.__data[k] = before.__data[k]; after.__hidden[k] = true; }
                }
                return after;
              },
              set(v) { after = v; },
            });
          }
        });
      } catch (err) {
        return JSON.stringify({ error: failure(err) });
      }
      return JSON.stringify({ reply, headers: headersOut, called });
    },
    // onRecordEnrich: each record of an answer through the handlers.
    enrich(handlerIds, reqJson, colJson, recordsJson) {
      const req = JSON.parse(reqJson);
      const col = collectionFrom(colJson);
      const fns = JSON.parse(handlerIds).map(handler);
      const out = [];
      let info = null;
      try {
        for (const data of JSON.parse(recordsJson)) {
          const { e } = requestEvent(req);
          // PocketBase's enrich event has `e.requestInfo` as a value; a request event's is a
          // method: both forms work.
          info = info || e.requestInfo();
          const ri = Object.assign(() => info, info);
          Object.defineProperty(e, "requestInfo", { value: ri });
          e.collection = col;
          e.record = presented(col, data);
          chain(fns, e, () => {});
          out.push(e.record.publicExport());
        }
      } catch (err) {
        return JSON.stringify({ error: failure(err) });
      }
      return JSON.stringify({ records: out });
    },
    // A job of a `jobAdd` kind: e.job is the job; a throw retries it (with backoff).
    job(handlerId, jobJson) {
      const e = { app: app, job: JSON.parse(jobJson) };
      try {
        chain([handler(Number(handlerId))], e, () => {});
      } catch (err) {
        return JSON.stringify({ error: failure(err) });
      }
      return "{}";
    },
    // onMailerSend: e.message as PocketBase's mailer message; e.next() lets it go out.
    mailer(handlerIds, mailJson) {
      const m = JSON.parse(mailJson);
      const e = { app: app, message: new g.MailerMessage({ to: [{ address: m.to, name: "" }], subject: m.subject, html: m.html }) };
      let sent = null;
      try {
        chain(JSON.parse(handlerIds).map(handler), e, () => {
          const to = e.message.to;
          const first = Array.isArray(to) ? to[0] : to;
          sent = {
            to: typeof first === "string" ? first : (first && first.address) || "",
            subject: String(e.message.subject || ""),
            html: String(e.message.html || e.message.text || ""),
          };
        });
      } catch (err) {
        return JSON.stringify({ error: failure(err) });
      }
      return JSON.stringify({ mail: sent });
    },
    // onServe: once the server starts serving.
    // A migration function, called with $app.
    migration(src) {
      try {
        const f = (0, eval)("(" + src + ")");
        f(app);
      } catch (err) {
        return JSON.stringify({ error: failure(err) });
      }
      return "{}";
    },
    // A handler with a plain event object (after-success hooks, cron, bootstrap).
    plain(handlerIds, eventJson) {
      const ev = JSON.parse(eventJson);
      const col = ev.collection ? collectionFrom(ev.collection) : null;
      const e = { app: app };
      if (ev.isRestart !== undefined) e.isRestart = ev.isRestart;
      if (col) e.collection = col;
      if (ev.record) e.record = Record.__stored(col, ev.record);
      try {
        chain(JSON.parse(handlerIds).map(handler), e, () => {});
      } catch (err) {
        return JSON.stringify({ error: failure(err) });
      }
      return "{}";
    },
  };
})(globalThis);
