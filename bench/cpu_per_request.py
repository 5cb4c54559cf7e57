#!/usr/bin/env python3
"""Server CPU time per request, for A/B runs of one Galley build (logs on/off, metrics on/off).

Throughput on a shared 2-core machine swings by 2x between identical runs; the CPU time the
server process spends per request (utime + stime from /proc/PID/stat, whatever else runs)
is steadier. For each variant: start `galley serve` on a fresh data dir, create a superuser,
a public `posts` collection and one record, apply the variant's settings, warm up, then send
N record views over keep-alive connections from a few threads and read the server's CPU time
before and after (plus one second for the log writer to finish its batches). Variants
alternate, ROUNDS times.

    bench/cpu_per_request.py GALLEY_BINARY [N] [ROUNDS]
"""
import http.client, json, os, shutil, socket, subprocess, sys, tempfile, threading, time

BIN = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 30000
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 3
THREADS = 4
VARIANTS = [
    ("logs on", [], None),
    ("logs off (maxDays 0)", [], {"logs": {"maxDays": 0}}),
    ("logs on + metrics", ["--metrics", "127.0.0.1:0"], None),
]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cpu_seconds(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def call(port, method, path, body=None, token=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    h = {"content-type": "application/json"}
    if token:
        h["Authorization"] = token
    c.request(method, path, json.dumps(body) if body is not None else None, h)
    r = c.getresponse()
    data = r.read()
    c.close()
    assert r.status < 300, (method, path, r.status, data)
    return json.loads(data) if data else None


def load(port, path, n):
    def worker(k):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for _ in range(k):
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            assert r.status == 200, r.status
    ts = [threading.Thread(target=worker, args=(n // THREADS,)) for _ in range(THREADS)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def run(name, args, settings):
    d = tempfile.mkdtemp(prefix="galley-cpu-")
    port = free_port()
    try:
        subprocess.run([BIN, "superuser", "upsert", "cpu@example.com", "Cpu-Pass-12345", "--dir", d],
                       check=True, capture_output=True)
        p = subprocess.Popen([BIN, "serve", "--http", f"127.0.0.1:{port}", "--dir", d, *args],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(200):
                try:
                    call(port, "GET", "/api/health")
                    break
                except OSError:
                    time.sleep(0.05)
            tok = call(port, "POST", "/api/collections/_superusers/auth-with-password",
                       {"identity": "cpu@example.com", "password": "Cpu-Pass-12345"})["token"]
            call(port, "POST", "/api/collections", {"name": "posts", "viewRule": "",
                 "fields": [{"name": "title", "type": "text"}]}, tok)
            rid = call(port, "POST", "/api/collections/posts/records", {"title": "hello"}, tok)["id"]
            if settings:
                call(port, "PATCH", "/api/settings", settings, tok)
            path = f"/api/collections/posts/records/{rid}"
            load(port, path, 2000)
            time.sleep(1)
            c0, t0 = cpu_seconds(p.pid), time.time()
            load(port, path, N)
            wall = time.time() - t0
            time.sleep(1)
            c1 = cpu_seconds(p.pid)
            logs = call(port, "GET", "/api/logs?perPage=1&filter=" + "data.url~'/records/'", None, tok)["totalItems"]
            return (c1 - c0) / N * 1e6, N / wall, logs
        finally:
            p.terminate()
            p.wait(timeout=30)
    finally:
        shutil.rmtree(d, ignore_errors=True)


results = {v[0]: [] for v in VARIANTS}
for r in range(ROUNDS):
    for name, args, settings in VARIANTS:
        us, rps, logged = run(name, args, settings)
        results[name].append(us)
        print(f"round {r + 1} {name:22s} {us:7.1f} us CPU/request  {rps:7.0f} req/s  logged {logged}",
              flush=True)
print()
for name, v in results.items():
    v = sorted(v)
    print(f"{name:22s} median {v[len(v) // 2]:7.1f} us  (min {v[0]:.1f}, max {v[-1]:.1f})")
