"""util/fuzz/http_fuzz.py - the HTTP fuzz run; run util/fuzz/http, not this

    http_fuzz.py COUNT

Environment (set by util/fuzz/http): SAVEITEM_FUZZ_SO, SAVEITEM_PG_PORT,
SAVEITEM_PG_DIR; SAVEITEM_FUZZ_SEED, SAVEITEM_FUZZ_HTTP_PORT.
"""

import asyncio
import json
import os
import random
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import lib  # noqa: E402  util/lib.py, what the Python tools share
from lib import say  # noqa: E402

SO = os.environ.get("SAVEITEM_FUZZ_SO", "")
PRELOAD = os.environ.get("SAVEITEM_FAULT_PRELOAD", "")
PG = lib.Cluster(lib.port("fault-pg", "SAVEITEM_PG_PORT"),
                 os.environ.get("SAVEITEM_PG_DIR", "/tmp/saveitem-fault-pg"))
PORT = lib.port("fuzz-http-nginx", "SAVEITEM_FUZZ_HTTP_PORT")
SEED = int(os.environ.get("SAVEITEM_FUZZ_SEED", "1"))
PREFIX = "/tmp/saveitem-fuzz-http"
TABLE = "fuzz.items"
CONCURRENCY = 8
BODY_TIMEOUT = 1.0           # client_body_timeout
MAX_BODY = 1024 * 1024       # client_max_body_size

# nginx's own (HTML) answers to malformed HTTP: not the module's
NGINX_OWN = {400, 411, 413, 414, 494, 501}

CONTENT_TYPES = [
    None, "application/json", "application/json; charset=utf-8",
    "APPLICATION/JSON", " application/json ", "application/json;",
    "application/vnd.api+json", "application/problem+json; q=1",
    "text/plain", "text/json", "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x", "", "application/", "/json",
    "+json", "a/+json", "a/b+json", "/a/b+json", "application/jsonx",
    "application/json\t; x=y", "*/*",
]
METHODS = ["GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE",
           "FOO", "post"]
TOKENS = [b"{", b"}", b"[", b"]", b":", b",", b'"', b"true", b"false",
          b"null", b"-", b"0", b"1e400", b"-1e400", b"1e-400",
          b"123456789012345678901234567890", b"\\u0000", b"\\ud800",
          b"\\udc00", b"\\ud83d\\ude00", b"\\", b"\\x", b"\\u12",
          "é".encode(), "𝄞".encode(), b"\xed\xa0\x80", b"\xc0\xaf",
          b"\xff", b"\xfe", b"\x00", b"\r\n", b"\t", b" ", b"\xef\xbb\xbf",
          b"/*", b"*/", b"NaN", b"Infinity", b"'", b"\\\"", b"\x7f"]
ALPHABET = ("abcxyz 019\"\\/\n\t\r\b\f'é€ж中𝄞😀"
            "\u2028\u0001\u001f\u007f\ufeff\ufffd")


class Gen:
    """request generator: seeded, so a run is reproducible"""

    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.seeds = []
        cdir = os.path.join(HERE, "corpus")
        for name in sorted(os.listdir(cdir)):
            with open(os.path.join(cdir, name), "rb") as f:
                self.seeds.append(f.read())

    def value(self, depth=0):
        r = self.rng
        k = r.random()
        if depth > 4 or k < 0.4:
            return r.choice([
                lambda: r.randint(-2**63, 2**63 - 1),
                lambda: r.random() * 10 ** r.randint(-300, 300),
                lambda: "".join(r.choice(ALPHABET)
                                for _ in range(r.randint(0, 40))),
                lambda: True, lambda: False, lambda: None,
                lambda: r.randint(0, 9)])()
        if k < 0.7:
            return [self.value(depth + 1) for _ in range(r.randint(0, 5))]
        return {"".join(r.choice(ALPHABET) for _ in range(r.randint(0, 8))):
                self.value(depth + 1) for _ in range(r.randint(0, 5))}

    def valid(self):
        return json.dumps(self.value(), ensure_ascii=self.rng.random() < 0.3
                          ).encode()

    def mutate(self, b):
        r = self.rng
        b = bytearray(b)
        for _ in range(r.randint(1, 4)):
            op = r.randint(0, 6)
            pos = r.randint(0, len(b))
            if op == 0 and b:
                b[min(pos, len(b) - 1)] ^= 1 << r.randint(0, 7)
            elif op == 1:
                b[pos:pos] = r.choice(TOKENS)
            elif op == 2 and b:
                del b[pos:pos + r.randint(1, 8)]
            elif op == 3:
                del b[pos:]
            elif op == 4 and b:
                b[pos:pos] = bytes(b[pos:pos + r.randint(1, 16)])
            elif op == 5:
                b[pos:pos] = bytes(r.randint(0, 255)
                                   for _ in range(r.randint(1, 4)))
            else:
                b[min(pos, len(b)):min(pos, len(b))] = b" " * r.randint(1, 3)
        return bytes(b)

    def body(self):
        r = self.rng
        k = r.random()
        if k < 0.25:
            return self.valid()
        if k < 0.55:
            return self.mutate(self.valid())
        if k < 0.75:
            return self.mutate(r.choice(self.seeds))
        if k < 0.80:
            return r.choice(self.seeds)
        if k < 0.85:
            return bytes(r.randint(0, 255) for _ in range(r.randint(0, 64)))
        if k < 0.90:
            d = r.randint(1, 3000)
            o, c = r.choice([(b"[", b"]"), (b'{"a":', b"}")])
            return o * d + b"1" + c * (d if r.random() < 0.8 else d - 1)
        if k < 0.93:
            # large: in a temporary file, or past client_max_body_size
            n = r.choice([20000, 200000, MAX_BODY - 20, MAX_BODY + 10])
            return b'{"big": "' + b"x" * n + b'"}'
        if k < 0.96:
            return b"".join(r.choice(TOKENS) for _ in range(r.randint(1, 30)))
        return r.choice([b"", b" ", b"\n", b"null", b"0", b'""', b"{}",
                         b"[]", b"\xef\xbb\xbf{}", b"{}\x00", b"1e99999",
                         b'{"a":1e400}', b'"\\u0000"'])

    def request(self, i):
        """(raw bytes, meta); meta says what the answer may be"""
        r = self.rng
        body = self.body()
        meta = {"i": i, "body": body, "complete": True, "framing": "cl",
                "method": "POST"}
        method = "POST" if r.random() < 0.9 else r.choice(METHODS)
        meta["method"] = method
        uri = r.choice(["/items", "/items", "/items-nobatch", "/items?x=1"])
        h = ["%s %s HTTP/1.1" % (method, uri), "Host: localhost",
             "Connection: close"]
        ct = r.choice(CONTENT_TYPES) if r.random() < 0.4 \
            else "application/json"
        meta["ctype"] = ct
        if ct is not None:
            h.append("Content-Type: " + ct)
        if r.random() < 0.05:
            h.append("Expect: 100-continue")
        k = r.random()
        tail = b""
        if k < 0.75:
            h.append("Content-Length: %d" % len(body))
            payload = body
        elif k < 0.87:
            meta["framing"] = "chunked"
            h.append("Transfer-Encoding: chunked")
            payload = self.chunked(body, meta)
        elif k < 0.91:
            # announces more than it sends, then closes its side
            meta["framing"] = "short"
            meta["complete"] = False
            h.append("Content-Length: %d" % (len(body) + r.randint(1, 100)))
            payload = body
        elif k < 0.94:
            # announces less: the rest is a second (bad) request
            meta["framing"] = "long"
            cut = r.randint(0, len(body))
            h.append("Content-Length: %d" % cut)
            meta["body"] = body[:cut]
            payload = body
        elif k < 0.96:
            meta["framing"] = "none"
            meta["body"] = b""
            payload = body
        elif k < 0.98:
            meta["framing"] = "both"
            h.append("Content-Length: %d" % len(body))
            h.append("Transfer-Encoding: chunked")
            payload = self.chunked(body, meta)
        else:
            meta["framing"] = "bad-cl"
            h.append("Content-Length: " + r.choice(
                ["-1", "abc", "1 2", "99999999999999999999", "0x10",
                 "%d, %d" % (len(body), len(body))]))
            payload = body
        raw = ("\r\n".join(h) + "\r\n\r\n").encode() + payload + tail
        return raw, meta

    def chunked(self, body, meta):
        r = self.rng
        out = []
        i = 0
        while i < len(body):
            n = r.randint(1, max(1, min(len(body) - i, 5000)))
            size = b"%x" % n
            if r.random() < 0.1:
                size += b";ext=1"
            out.append(size + b"\r\n" + body[i:i + n] + b"\r\n")
            i += n
        if r.random() < 0.1:
            # malformed or cut short
            meta["complete"] = False
            if out and r.random() < 0.5:
                out[-1] = out[-1][:r.randint(0, len(out[-1]))]
            else:
                out.append(r.choice([b"zz\r\n", b"-1\r\n", b"1\r\nab\r\n"]))
            return b"".join(out)
        out.append(b"0\r\n\r\n")
        return b"".join(out)


async def send(raw, meta):
    """(status, headers, body) or None for no answer"""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", PORT), 5)
    except (OSError, asyncio.TimeoutError) as e:
        return ("connect", str(e))
    try:
        writer.write(raw)
        await writer.drain()
        if not meta["complete"]:
            writer.write_eof()
        data = await asyncio.wait_for(reader.read(), BODY_TIMEOUT + 10)
    except asyncio.TimeoutError:
        writer.close()
        return ("timeout", "")
    except (ConnectionResetError, BrokenPipeError) as e:
        data = b""
        try:
            data = reader._buffer and bytes(reader._buffer) or b""
        except Exception:
            pass
        if not data:
            writer.close()
            return None
    writer.close()
    if not data:
        return None
    head, _, rest = data.partition(b"\r\n\r\n")
    while re.match(rb"HTTP/1\.1 1\d\d ", head):
        # an interim answer (100 Continue): the real one follows
        head, _, rest = rest.partition(b"\r\n\r\n")
    if not head:
        return None
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.1 (\d{3})", lines[0])
    if not m:
        return ("garbage", data[:200])
    hdr = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            hdr[k.strip().lower()] = v.strip()
    if "content-length" in hdr:
        rest = rest[:int(hdr["content-length"])]
    return (int(m.group(1)), hdr, rest)


def ctype_is_json(ct):
    """the rule of the README: application/json, or type/subtype+json,
    parameters after ";" aside, case-insensitive"""
    t = ct.split(";", 1)[0].strip(" \t").lower()
    if t == "application/json":
        return True
    if t.count("/") != 1:
        return False
    typ, sub = t.split("/")
    return typ != "" and len(sub) > 5 and sub.endswith("+json")


def judge(meta, res, failures, stored, stats):
    def fail(kind, what):
        failures.append((kind, "request %d (%s %s, %d bytes%s): %s"
                         % (meta["i"], meta["method"], meta["framing"],
                            len(meta["body"]),
                            "" if meta["complete"] else ", incomplete",
                            what)))

    if res is None:
        stats["no answer"] = stats.get("no answer", 0) + 1
        if meta["complete"] and meta["framing"] not in ("bad-cl",):
            fail("no answer", "no answer")
        return
    if isinstance(res[0], str):
        stats[res[0]] = stats.get(res[0], 0) + 1
        if res[0] == "timeout" and not meta["complete"]:
            return
        fail("client: " + res[0], "%s: %r" % res)
        return
    status, hdr, body = res
    key = str(status)
    ctype = hdr.get("content-type", "")
    if ctype != "application/json":
        key += " nginx"
    stats[key] = stats.get(key, 0) + 1
    if status >= 500 and status != 501:
        fail("5xx", "%d: %r" % (status, body[:300]))
        return
    if ctype != "application/json":
        if status not in NGINX_OWN \
           and not (status == 405 and meta["method"] == "TRACE"):
            fail("nginx answered %d" % status,
                 "%d from nginx (%s): %r" % (status, ctype, body[:200]))
        return
    if meta["method"] == "HEAD":
        if body:
            fail("body for HEAD", "%d with a body for HEAD" % status)
        return
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        fail("answer not JSON",
             "%d, the answer is not JSON (%s): %r" % (status, e, body[:300]))
        return
    ct = meta.get("ctype")
    if meta["method"] == "POST" and ct is not None and status != 413:
        if status == 415 and ctype_is_json(ct):
            fail("415 for a JSON content type",
                 "415 for the JSON content type %r" % ct)
        elif status != 415 and not ctype_is_json(ct):
            fail("not 415 for a content type that is not JSON",
                 "%d, not 415, for the content type %r" % (status, ct))
    if status == 200:
        if not isinstance(doc, dict) or list(doc) != ["pk"] \
           or not isinstance(doc["pk"], int):
            fail("200 without a key", "200 without a key: %r" % body)
            return
        if meta["method"] != "POST":
            fail("200 for another method", "200 for %s" % meta["method"])
        stored.append((doc["pk"], meta["body"], meta["i"]))
        return
    if not isinstance(doc, dict) or not isinstance(doc.get("error"), str) \
       or not isinstance(doc.get("message"), str):
        fail("not an error object",
             "%d, not an error object: %r" % (status, body[:300]))
    if status >= 500:
        fail("5xx", "%d: %r" % (status, body[:300]))


def check_rows(stored, failures):
    """every key names a row equal (as jsonb) to the body sent"""
    if not stored:
        return 0
    lines = []
    for pk, body, i in stored:
        text = body.decode("utf-8")
        lines.append('%d,%d,"%s"' % (pk, i, text.replace('"', '""')))
    psql = PG.psql
    psql("CREATE TABLE IF NOT EXISTS fuzz.sent (pk bigint, i int, body text)")
    psql("TRUNCATE fuzz.sent")
    psql("COPY fuzz.sent FROM STDIN WITH (FORMAT csv)",
         stdin="\n".join(lines) + "\n")
    bad = psql("SELECT s.i, s.pk, i.id IS NULL FROM fuzz.sent s "
               "LEFT JOIN %s i ON i.id = s.pk "
               "WHERE i.id IS NULL OR i.data <> s.body::jsonb "
               "ORDER BY s.i LIMIT 20" % TABLE)
    for line in bad.split("\n"):
        if line:
            i, pk, missing = line.split("|")
            failures.append(("key", "request %s: key %s %s" % (
                i, pk, "names no row" if missing == "t"
                else "holds another document")))
    dup = psql("SELECT count(*) - count(DISTINCT pk) FROM fuzz.sent").strip()
    if dup != "0":
        failures.append(("key", "%s keys were given twice" % dup))
    n = psql("SELECT count(*) FROM %s" % TABLE).strip()
    if int(n) != len(stored):
        failures.append(("rows", "%s rows, %d keys given" % (n, len(stored))))
    return int(n)


def nginx():
    """master on, 2 workers; /items-nobatch without group commit"""
    http = """
    access_log %(p)s/logs/access.log;
    client_max_body_size %(max)d;
    client_body_timeout %(bt)dms;

    saveitem_database "%(conninfo)s application_name=saveitem_fuzz";

    server {
        listen 127.0.0.1:%(port)d;

        location = /items {
            saveitem %(table)s;
        }

        location = /items-nobatch {
            saveitem %(table)s;
            saveitem_batch off;
        }
    }""" % {"p": PREFIX, "conninfo": PG.conninfo(), "port": PORT,
           "table": TABLE, "max": MAX_BODY, "bt": BODY_TIMEOUT * 1000}
    n = lib.Nginx(PREFIX, PORT)
    n.write(lib.nginx_conf(PREFIX, SO, http, main="user root;"))
    # a sanitizer build: its runtime preloaded, reports to files
    n.env = lib.preload_env(n.logs, PRELOAD)
    return n


def workers(proc):
    out = subprocess.run(["pgrep", "-P", str(proc.pid)],
                         stdout=subprocess.PIPE, text=True).stdout
    return sorted(int(x) for x in out.split())


async def run(count, gen, failures, stored, stats):
    queue = [gen.request(i) for i in range(count)]
    it = iter(queue)

    async def client():
        for raw, meta in it:
            res = await send(raw, meta)
            judge(meta, res, failures, stored, stats)

    await asyncio.gather(*[client() for _ in range(CONCURRENCY)])


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    if not SO or not os.path.exists(SO):
        raise SystemExit("SAVEITEM_FUZZ_SO is not a module: run "
                         "util/fuzz/http")
    lib.interrupt_on_term()
    t0 = time.monotonic()
    PG.psql("SET client_min_messages = warning; "
         "CREATE SCHEMA IF NOT EXISTS fuzz; DROP TABLE IF EXISTS %s; "
         "CREATE TABLE %s (id bigserial PRIMARY KEY, data jsonb NOT NULL)"
         % (TABLE, TABLE))
    server = nginx()
    try:
        server.start()
    except lib.Failure as e:
        raise SystemExit(str(e))
    proc = server.proc
    failures, stored, stats = [], [], {}
    try:
        before = workers(proc)
        try:
            asyncio.run(run(count, Gen(SEED), failures, stored, stats))
        except KeyboardInterrupt:
            say("http fuzz: interrupted")
            sys.exit(130)
        after = workers(proc)
        if before != after:
            failures.append(("crash", "workers changed: %s -> %s (a crash?)"
                             % (before, after)))
    finally:
        if server.stop():
            failures.append(("crash", "nginx processes outlived their "
                             "master"))
    for problem in server.log_problems(
            lib.CRASH_PATTERNS + (r"\bsignal \d+ \((SIGSEGV|SIGABRT|"
                                  r"SIGBUS|SIGFPE|SIGILL)",)):
        failures.append(("error log", problem))
    rows = check_rows(stored, failures)

    print("http fuzz: %d requests, seed %d, %.0f s" % (
        count, SEED, time.monotonic() - t0))
    print("answers: " + ", ".join("%s: %d" % kv for kv in sorted(
        stats.items())))
    print("stored: %d keys, %d rows" % (len(stored), rows))
    kinds = {}
    for kind, text in failures:
        kinds.setdefault(kind, []).append(text)
    for kind, texts in sorted(kinds.items()):
        print("FAIL %dx: %s" % (len(texts), kind))
        for t in texts[:3]:
            print("    e.g. " + t)
    print("%d failures; logs in %s" % (len(failures), PREFIX))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
