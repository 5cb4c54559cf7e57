#!/usr/bin/env python3
"""Soak: one Galley server under mixed load for a fixed time, its memory sampled throughout.

    bench/soak.py [--minutes 30] [--galley PATH] [--database-url URL] [--json FILE]

Starts `galley serve` on a free loopback port with a fresh data directory (SQLite, or the
given PostgreSQL database), creates a superuser with the CLI, a public collection `items`
(text, number, file fields) and then runs, until the time is up:
  - 4 readers: list (page of 20, with the total) and view of random records;
  - 3 writers: create, update, delete (the collection stays around 2,000 records);
  - 1 uploader: a create with a 64 KiB file, a download of it, its deletion;
  - realtime: 20 SSE subscribers on `items/*` reading every event; every 30 s five of them
    disconnect and new ones connect (connection churn); 2 subscribers that never read (the
    server must drop them, not buffer for them).
Every 15 s it samples the server's RSS (/proc/PID/status VmRSS) and counts requests and
errors. At the end it prints the samples and a verdict: memory is flat when the median RSS
of the last quarter is within 10 % (+ 8 MiB) of the median of the second quarter (the
first quarter is warm-up: caches, the SQLite page cache and allocator arenas fill).
Exit status 1 when it is not flat or when more than 0.1 % of requests failed.

Only loopback traffic; every loop stops at the deadline.
"""

import argparse
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

EMAIL = "soak@example.com"
PASSWORD = "Soak-Pass-1234"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.ok = 0
        self.errors = 0
        self.events = 0
        self.last_error = ""

    def add(self, ok, detail=""):
        with self.lock:
            if ok:
                self.ok += 1
            else:
                self.errors += 1
                self.last_error = detail


class Client:
    def __init__(self, port, token=None):
        self.port = port
        self.token = token
        self.conn = None

    def request(self, method, path, body=None, headers=None):
        h = dict(headers or {})
        if self.token:
            h["Authorization"] = self.token
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        for attempt in range(2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                self.conn.request(method, path, body=body, headers=h)
                r = self.conn.getresponse()
                data = r.read()
                return r.status, data
            except (http.client.HTTPException, OSError):
                self.conn = None
                if attempt == 1:
                    raise
        raise RuntimeError("unreachable")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def multipart(fields, files):
    boundary = uuid.uuid4().hex
    out = bytearray()
    for k, v in fields.items():
        out += f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n".encode()
    for k, (name, data) in files.items():
        out += (
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"; filename=\"{name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        out += data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def sse_subscriber(port, stop, stats, read=True, until=None):
    """Connects to /api/realtime, subscribes to items/* and reads (or not) until told."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(f"GET /api/realtime HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n\r\n".encode())
        buf = b""
        while b"PB_CONNECT" not in buf or b"\n\n" not in buf.split(b"PB_CONNECT", 1)[1]:
            chunk = s.recv(4096)
            if not chunk:
                stats.add(False, "SSE closed before PB_CONNECT")
                return
            buf += chunk
        text = buf.decode(errors="replace")
        cid = text.split("\"clientId\":\"", 1)[1].split("\"", 1)[0]
        c = Client(port)
        st, body = c.request("POST", "/api/realtime", {"clientId": cid, "subscriptions": ["items/*"]})
        stats.add(st == 204, f"subscribe {st} {body[:200]!r}")
        s.settimeout(1)
        while not stop.is_set() and (until is None or time.time() < until):
            if not read:
                time.sleep(1)
                continue
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                return
            n = chunk.count(b"\"action\":")
            if n:
                with stats.lock:
                    stats.events += n
        s.close()
    except OSError as e:
        stats.add(False, f"SSE: {e}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--galley", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "/root/.cache/galley-target"), "release", "galley"))
    ap.add_argument("--database-url", default="")
    ap.add_argument("--json", default="")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="galley-soak-")
    data = os.path.join(work, "data")
    extra = ["--dir", data] + (["--database-url", args.database_url] if args.database_url else [])
    subprocess.run([args.galley, "superuser", "upsert", EMAIL, PASSWORD] + extra, check=True,
                   stdout=subprocess.DEVNULL)
    port = free_port()
    log = open(os.path.join(work, "galley.log"), "w")
    server = subprocess.Popen([args.galley, "serve", "--http", f"127.0.0.1:{port}"] + extra,
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        return run(args, port, server, work)
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()


def run(args, port, server, work):
    c = Client(port)
    for _ in range(100):
        try:
            if c.request("GET", "/api/health")[0] == 200:
                break
        except OSError:
            pass
        time.sleep(0.1)
    st, body = c.request("POST", "/api/collections/_superusers/auth-with-password",
                         {"identity": EMAIL, "password": PASSWORD})
    assert st == 200, body
    su = Client(port, json.loads(body)["token"])
    st, body = su.request("POST", "/api/collections", {
        "name": "items", "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
        "fields": [{"name": "title", "type": "text"}, {"name": "body", "type": "text", "max": 20000},
                   {"name": "n", "type": "number"},
                   {"name": "doc", "type": "file", "maxSelect": 1, "maxSize": 1 << 20}]})
    assert st == 200, body

    stop = threading.Event()
    deadline = time.time() + args.minutes * 60
    stats = Stats()
    ids = []
    ids_lock = threading.Lock()

    def reader():
        cl = Client(port)
        while not stop.is_set():
            try:
                if random.random() < 0.5:
                    st, _ = cl.request("GET", "/api/collections/items/records?page=1&perPage=20&sort=-n")
                    stats.add(st == 200, f"list {st}")
                else:
                    with ids_lock:
                        rid = random.choice(ids) if ids else None
                    if rid:
                        st, _ = cl.request("GET", f"/api/collections/items/records/{rid}")
                        stats.add(st in (200, 404), f"view {st}")  # 404: deleted meanwhile
            except OSError as e:
                stats.add(False, f"reader: {e}")

    def writer():
        cl = Client(port)
        while not stop.is_set():
            try:
                r = random.random()
                with ids_lock:
                    many = len(ids)
                if r < 0.4 or many < 500:
                    body = {"title": f"t{random.randrange(1 << 30)}", "body": "x" * random.randrange(100, 4000),
                            "n": random.randrange(1000)}
                    st, b = cl.request("POST", "/api/collections/items/records", body)
                    stats.add(st == 200, f"create {st} {b[:200]!r}")
                    if st == 200:
                        with ids_lock:
                            ids.append(json.loads(b)["id"])
                elif r < 0.8 or many < 2000:
                    with ids_lock:
                        rid = random.choice(ids)
                    st, b = cl.request("PATCH", f"/api/collections/items/records/{rid}", {"n": random.randrange(1000)})
                    stats.add(st in (200, 404), f"update {st} {b[:200]!r}")
                else:
                    with ids_lock:
                        rid = ids.pop(random.randrange(len(ids)))
                    st, b = cl.request("DELETE", f"/api/collections/items/records/{rid}")
                    stats.add(st in (204, 404), f"delete {st} {b[:200]!r}")
            except OSError as e:
                stats.add(False, f"writer: {e}")

    def uploader():
        cl = Client(port)
        blob = os.urandom(64 << 10)
        while not stop.is_set():
            try:
                body, ctype = multipart({"title": "file"}, {"doc": ("blob.bin", blob)})
                st, b = cl.request("POST", "/api/collections/items/records", body, {"Content-Type": ctype})
                stats.add(st == 200, f"upload {st} {b[:200]!r}")
                if st != 200:
                    continue
                rec = json.loads(b)
                st, got = cl.request("GET", f"/api/files/items/{rec['id']}/{rec['doc']}")
                stats.add(st == 200 and got == blob, f"download {st} {len(got)}")
                st, b = cl.request("DELETE", f"/api/collections/items/records/{rec['id']}")
                stats.add(st == 204, f"delete upload {st}")
            except OSError as e:
                stats.add(False, f"uploader: {e}")

    threads = [threading.Thread(target=reader, daemon=True) for _ in range(4)]
    threads += [threading.Thread(target=writer, daemon=True) for _ in range(3)]
    threads += [threading.Thread(target=uploader, daemon=True)]
    subs = []

    def subscriber(read=True, life=None):
        until = time.time() + life if life else None
        t = threading.Thread(target=sse_subscriber, args=(port, stop, stats, read, until), daemon=True)
        t.start()
        subs.append(t)

    for _ in range(20):
        subscriber(life=random.uniform(20, 300))
    for _ in range(2):
        subscriber(read=False)
    for t in threads:
        t.start()

    samples = []
    start = time.time()
    next_churn = start + 30
    while time.time() < deadline:
        time.sleep(15)
        if server.poll() is not None:
            print("the server exited", file=sys.stderr)
            return 1
        with stats.lock:
            sample = {"t": round(time.time() - start), "rss_kib": rss_kib(server.pid), "ok": stats.ok,
                      "errors": stats.errors, "events": stats.events}
        samples.append(sample)
        print(json.dumps(sample), file=sys.stderr, flush=True)
        if time.time() >= next_churn:
            next_churn += 30
            alive = sum(1 for t in subs if t.is_alive())
            for _ in range(max(0, 22 - alive) + 5):
                subscriber(life=random.uniform(20, 300))
    stop.set()
    for t in threads:
        t.join(35)

    rss = [s["rss_kib"] for s in samples]
    q = max(1, len(rss) // 4)
    second, last = statistics.median(rss[q:2 * q]), statistics.median(rss[-q:])
    flat = last <= second * 1.10 + 8 * 1024
    total = stats.ok + stats.errors
    failed = stats.errors / total if total else 1.0
    result = {"minutes": args.minutes, "requests": total, "errors": stats.errors, "events": stats.events,
              "rss_kib_second_quarter_median": second, "rss_kib_last_quarter_median": last,
              "rss_kib_max": max(rss), "flat": flat, "last_error": stats.last_error, "samples": samples}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}))
    return 0 if flat and failed <= 0.001 else 1


if __name__ == "__main__":
    sys.exit(main())
