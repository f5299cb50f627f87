"""util/fault/fault.py - the fault scenarios; run util/fault/run, not this

Each scenario: a fresh table and a fresh nginx (master on, 2 workers), a
paced load of POSTs from asyncio clients (each request a unique document,
keep-alive connections), a baseline, the fault, a tail after it; then the
checks of issue 5:

  - nginx still answers (GET /ping, and a POST that is stored);
  - every request got an answer: a 2xx, or a JSON error; no hang, no HTML
    5xx, no connection closed without an answer (except a keep-alive
    connection closed by nginx just as the client sent on it: counted
    apart as "closed on reuse", and bounded);
  - every pk a client received names a row holding that client's document;
  - no row exists whose client got an error, except errors that say
    "outcome": "unknown" and requests the client aborted (counted apart);
  - no row that no client sent, no document stored twice;
  - 2xx throughput is back to half the baseline within 2 s of the end of
    the fault; /ping answers within 1 s throughout;
  - the error log has no crash, alert or sanitizer report.

The scenarios (SCENARIOS below): restart (pg_ctl restart -m fast), stop
(PostgreSQL down for a few seconds: 503 at once, no hang), terminate
(pg_terminate_backend of the module's backends, by application_name, ten
times a second, each row sleeping 2 ms so that most are caught mid-query),
freeze (SIGSTOP of the postmaster and all its children, then SIGCONT:
timeouts fire, /ping keeps answering), reload (nginx -s reload several
times), clients (slow clients trickling their bodies, clients leaving
mid-body and while their statement runs), timeout (1 % of the documents
slower than saveitem_query_timeout), eagain-tcp and eagain-unix (the
LD_PRELOAD shim of util/shim on the libpq socket: EAGAIN and short
reads and writes; every request must be stored), eagain-terminate and
eagain-restart (the shim, and a fault on top), failover (a primary and its
synchronous standby made with pg_basebackup -R, the conninfo naming both
with target_session_attrs=read-write; the primary killed with SIGKILL, the
standby promoted a moment later with its inherited
synchronous_standby_names cleared, as failover tools do), switchover (the
same pair; the primary made read-only by a reload, so that the module's
open connections meet 25006, then the standby promoted).  For these two,
also: every key a client got is on the new primary; no 200 while no
server was writable, 503s then; the first 200 within 2 s of the
promotion; in a switchover, some 25006 answers, and every row of the old
primary on the new one.  failover-frozen runs only when named
(EXTRA_SCENARIOS): the primary hangs (SIGSTOP) instead of dying, and the
module's connect_timeout bounds the whole multi-host connect, so the
frozen first host uses it all and the promoted standby is never tried:
it fails until the timeout applies per host, as libpq's own does.

exactly-once (issue 11) is a run of its own: the table has `idem text
UNIQUE` and the location `saveitem ... idempotency=idem`; 16 clients each
send their own sequence of unique documents, each with an Idempotency-Key
of its own, and retry a document with the same key after any 5xx or no
answer within 1 s (then abandoned: copies of one request meet in flight),
backing off from 50 ms to 1 s with jitter and never sooner than
Retry-After, until a 200 (giving up after 30 s fails the run).  Meanwhile
PostgreSQL is restarted, the module's backends terminated (rows sleep 2 ms),
then everything frozen.  Checked: every document got a 200 and is exactly
one row, the row whose pk its client got, holding that document; no row
whose key was never answered 200, none whose key nobody sent; zero
duplicates; some retries after a lost answer or an unknown outcome.
The replays (Idempotent-Replayed: true: a lost attempt had stored the
row) are counted, usually a few.

Environment (set by util/fault/run): SAVEITEM_FAULT_SO, SAVEITEM_FAULT_SHIM,
SAVEITEM_PG_PORT, SAVEITEM_PG_DIR, and the SAVEITEM_FAULT_* knobs.
"""

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import lib  # noqa: E402  util/lib.py, what the Python tools share
from lib import say  # noqa: E402

NGINX = os.environ.get("SAVEITEM_FAULT_NGINX", lib.NGINX)

PG = lib.Cluster(lib.port("fault-pg", "SAVEITEM_PG_PORT"),
                 os.environ.get("SAVEITEM_PG_DIR", "/tmp/saveitem-fault-pg"))
PORT = lib.port("fault-nginx", "SAVEITEM_FAULT_PORT")
SO = os.environ.get("SAVEITEM_FAULT_SO", "")
SHIM = os.environ.get("SAVEITEM_FAULT_SHIM", "")
PRELOAD = os.environ.get("SAVEITEM_FAULT_PRELOAD", "")
OUT = os.environ.get("SAVEITEM_FAULT_DIR", "/tmp/saveitem-fault")
RATE = float(os.environ.get("SAVEITEM_FAULT_RATE", "300"))
CLIENTS = int(os.environ.get("SAVEITEM_FAULT_CLIENTS", "16"))
SEED = int(os.environ.get("SAVEITEM_FAULT_SEED", "1"))
HA_PORTS = (lib.port("fault-ha-primary", "SAVEITEM_FAULT_HA_PRIMARY_PORT"),
            lib.port("fault-ha-standby", "SAVEITEM_FAULT_HA_STANDBY_PORT"))
HA_DIR = os.environ.get("SAVEITEM_FAULT_HA_DIR", "/tmp/saveitem-fault-ha")

APP = "saveitem_fault"
QUERY_TIMEOUT = 1.5          # saveitem_query_timeout
QUEUE_TIMEOUT = 2.0          # saveitem_database queue_timeout=
REQUEST_TIMEOUT = 10.0       # a client waiting longer: a hang
MAX_LATENCY = 6.0            # longest acceptable answer, any scenario
RECOVERY_LIMIT = 2.0         # seconds after the fault
RECOVERY_WINDOW = 0.5        # throughput measured over this
RECOVERY_FRACTION = 0.5      # of the baseline
PING_LIMIT = 1.0
PROMOTION_LIMIT = 2.0
POOL = 4                     # saveitem_database pool=
WORKERS = 2                  # worker_processes        # seconds from promotion to the first 200
REUSE_CLOSED_MAX = 0.01      # of the requests sent, at least 3
EO_CLIENTS = 16              # exactly-once: retrying clients
EO_ATTEMPT_TIMEOUT = 1.0     # ... an attempt without an answer by then is
#                              abandoned and retried: below the module's own
#                              bound (QUEUE_TIMEOUT + QUERY_TIMEOUT), so that
#                              copies of one request meet in flight
EO_GIVE_UP = 30.0            # ... a document not stored by then: a failure
EO_BACKOFF = (0.05, 1.0)     # ... first and longest wait between attempts
EO_SLEEP = 0.002             # ... each row sleeps in the trigger: backends
#                              are terminated mid-query

# name: (fault, shim on the libpq socket: None, "tcp" or "unix")
SCENARIOS = {
    "restart": ("restart", None),
    "stop": ("stop", None),
    "terminate": ("terminate", None),
    "freeze": ("freeze", None),
    "reload": ("reload", None),
    "clients": ("clients", None),
    "timeout": ("timeout", None),
    "eagain-tcp": ("eagain", "tcp"),
    "eagain-unix": ("eagain", "unix"),
    "eagain-terminate": ("terminate", "unix"),
    "eagain-restart": ("restart", "tcp"),
    "failover": ("failover", None),
    "switchover": ("switchover", None),
    "exactly-once": ("exactly_once", None),
}

# run only when named: they fail with today's module (see the header)
EXTRA_SCENARIOS = {
    "failover-frozen": ("failover_frozen", None),
}

# what a document's "pad" is made of: escapes, multi-byte characters
ALPHABET = ("abcdefghijklmnopqrstuvwxyz0123456789 " * 3
            + "\"\\/\n\t\r\b\f'<>&%$#{}[],:" + "é€ж中𝄞😀\u2028\u00a0")


def pg_ctl(*args, cluster=PG):
    return as_postgres("pg_ctl", "-D", cluster.data, *args)


def as_postgres(prog, *args):
    """a PostgreSQL program run as the clusters' owner"""
    return subprocess.run(["runuser", "-u", "postgres", "--",
                           os.path.join(lib.PG_BIN, prog)] + list(args),
                          cwd="/", stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=120)


class Pair:
    """a primary (a util/pg.sh cluster) and its synchronous standby
    (pg_basebackup -R), on loopback ports of their own"""

    def __init__(self):
        self.primary = lib.Cluster(HA_PORTS[0],
                                   os.path.join(HA_DIR, "primary"))
        self.standby = lib.Cluster(HA_PORTS[1],
                                   os.path.join(HA_DIR, "standby"))
        self.frozen = []            # processes stopped with SIGSTOP

    def conninfo(self):
        """both servers; libpq takes the first that accepts writes"""
        return ("host=127.0.0.1,127.0.0.1 port=%d,%d dbname=saveitem "
                "user=postgres target_session_attrs=read-write"
                % HA_PORTS)

    @staticmethod
    def ctl(cluster, *args):
        """pg_ctl on a cluster; Failure when it fails"""
        r = pg_ctl(*args, cluster=cluster)
        if r.returncode != 0:
            raise lib.Failure("pg_ctl %s (%s): %s"
                              % (args[0], cluster.dir, r.stdout[-500:]))

    @staticmethod
    def alter(cluster, *settings):
        """ALTER SYSTEM statements (each alone: not in a transaction), then
        a reload"""
        for sql in settings:
            cluster.psql("ALTER SYSTEM " + sql, timeout=30)
        cluster.psql("SELECT pg_reload_conf()", timeout=30)

    def start_primary(self):
        self.stop()
        self.primary.pg_sh("start")

    def start_standby(self):
        """the standby, synchronous: a commit on the primary waits for it"""
        self.alter(self.primary, "SET synchronous_commit = on",
                   "SET synchronous_standby_names = '*'")
        sb = self.standby
        os.makedirs(sb.sock)
        open(os.path.join(sb.dir, ".saveitem-pg"), "w").close()
        lib.run(["chown", "-R", "postgres:", sb.dir], timeout=30)
        r = as_postgres("pg_basebackup", "-D", sb.data, "-h",
                        self.primary.sock, "-p", str(self.primary.port),
                        "-U", "postgres", "-R", "-X", "stream", "-c", "fast",
                        "--no-sync")
        if r.returncode != 0:
            raise lib.Failure("pg_basebackup: %s" % r.stdout[-500:])
        # the primary's port and socket, copied by the backup: the
        # standby's own
        conf = os.path.join(sb.data, "saveitem.conf")
        with open(conf) as f:
            text = f.read()
        text = (text.replace("port = %d" % self.primary.port,
                             "port = %d" % sb.port)
                .replace(self.primary.sock, sb.sock))
        with open(conf, "w") as f:
            f.write(text)
        self.ctl(sb, "start", "-w", "-t", "60", "-s", "-l",
                 os.path.join(sb.dir, "postgresql.log"))
        deadline = time.monotonic() + 30
        while self.primary.psql(
                "SELECT count(*) FROM pg_stat_replication "
                "WHERE sync_state = 'sync'").strip() != "1":
            if time.monotonic() > deadline:
                raise lib.Failure("the standby is not synchronous after 30 s")
            time.sleep(0.1)
        return sb.psql("SHOW synchronous_standby_names").strip()

    def promote(self):
        """what a failover tool does: the standby's inherited
        synchronous_standby_names cleared (promoted alone, every commit
        would wait for a standby that is not there), then promoted"""
        self.alter(self.standby, "RESET synchronous_standby_names")
        self.ctl(self.standby, "promote", "-w", "-t", "30")

    def stop(self):
        """both stopped at once (immediate), the directory removed; also
        what a killed run left"""
        # a frozen primary is fenced: killed, never thawed (it would
        # take writes again)
        for pid in self.frozen:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.frozen = []
        for c in (self.primary, self.standby):
            if os.path.exists(os.path.join(c.data, "postmaster.pid")):
                pg_ctl("stop", "-m", "immediate", "-w", cluster=c)
        shutil.rmtree(HA_DIR, ignore_errors=True)


class Record:
    __slots__ = ("seq", "kind", "doc", "t0", "t1", "status", "body",
                 "result", "pk", "reused", "detail")

    def __init__(self, seq, kind, doc):
        self.seq = seq
        self.kind = kind
        self.doc = doc
        self.t0 = time.monotonic()
        self.t1 = None
        self.status = None
        self.body = b""
        self.result = "pending"
        self.pk = None
        self.reused = False
        self.detail = ""


class Closed(Exception):
    """the server closed the connection; .got: bytes of answer read"""

    def __init__(self, got):
        super().__init__("closed after %d bytes" % got)
        self.got = got


async def read_response(reader):
    """status, headers (lowercase names), body; raises Closed"""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        raise Closed(len(e.partial))
    except (ConnectionResetError, BrokenPipeError):
        raise Closed(0)
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3})", lines[0])
    if not m:
        raise Closed(len(head))
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    try:
        body = await reader.readexactly(n) if n else b""
    except asyncio.IncompleteReadError as e:
        raise Closed(len(head) + len(e.partial))
    except (ConnectionResetError, BrokenPipeError):
        raise Closed(len(head))
    return int(m.group(1)), headers, body


def post_head(path, length, extra=b"", ctype=b"application/json"):
    return (b"POST %s HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: %s\r\n"
            b"Content-Length: %d\r\n%s\r\n" % (path.encode(), ctype, length,
                                                extra))


class Load:
    """the clients of one scenario, and what they saw"""

    def __init__(self, run_id, rng, sleep=None):
        self.run_id = run_id
        self.rng = rng
        self.sleep = sleep          # seconds the trigger sleeps per row
        self.records = []
        self.seq = 0
        self.stop = False
        self.pings = []             # (t0, latency or None)
        self.slow = 0.0             # fraction of documents that sleep
        self.slow_sleep = 0.0
        self.t_start = time.monotonic()

    def doc(self, kind, extra=None):
        self.seq += 1
        n = self.rng.random()
        size = (self.rng.randint(20000, 40000) if n < 0.02
                else self.rng.randint(0, 200))
        pad = "".join(self.rng.choice(ALPHABET) for _ in range(size))
        d = {"run": self.run_id, "seq": self.seq, "kind": kind, "pad": pad,
             "n": self.rng.randint(-2**40, 2**40), "f": 0.5, "ok": True,
             "nil": None, "list": [1, "two", {"three": [3]}]}
        if self.sleep:
            d["sleep"] = self.sleep
        if kind == "load" and self.slow and self.rng.random() < self.slow:
            d["sleep"] = self.slow_sleep
            kind = "slow"
        if extra:
            d.update(extra)
        rec = Record(self.seq, kind, d)
        self.records.append(rec)
        return rec

    @staticmethod
    def encode(doc):
        return json.dumps(doc, ensure_ascii=False).encode()

    def classify(self, rec, status, headers, body):
        rec.t1 = time.monotonic()
        rec.status = status
        rec.body = body
        if status == 200:
            try:
                pk = json.loads(body)["pk"]
                if not isinstance(pk, int):
                    raise ValueError
                rec.pk = pk
                rec.result = "ok"
            except (ValueError, KeyError, TypeError):
                rec.result = "bad_response"
                rec.detail = "200 without a numeric pk: %r" % body[:200]
            return
        try:
            err = json.loads(body)
            if not isinstance(err.get("error"), str) \
               or not isinstance(err.get("message"), str):
                raise ValueError
        except (ValueError, AttributeError):
            rec.result = "bad_response"
            rec.detail = "%d, not a JSON error: %r" % (status, body[:200])
            return
        if status < 500:
            rec.result = "bad_response"
            rec.detail = "%d for a valid document: %r" % (status, body[:200])
        elif err.get("outcome") == "unknown":
            rec.result = "unknown"
        else:
            rec.result = "error"

    async def connect(self):
        return await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", PORT), 5)

    async def worker(self, interval):
        conn = None
        nreq = 0
        t_next = time.monotonic() + self.rng.random() * interval
        while not self.stop:
            now = time.monotonic()
            if t_next > now:
                await asyncio.sleep(t_next - now)
                if self.stop:
                    break
            # no catching up after a stall: the pace, not a burst
            t_next = max(t_next + interval, time.monotonic())
            rec = self.doc("load")
            body = self.encode(rec.doc)
            if conn is not None and conn[0].at_eof():
                # closed by nginx while idle, as an HTTP client notices
                # before it reuses a connection
                conn[1].close()
                conn = None
            if conn is None:
                try:
                    conn = await self.connect()
                except (OSError, asyncio.TimeoutError) as e:
                    rec.t1 = time.monotonic()
                    rec.result = "connect_failed"
                    rec.detail = str(e)
                    continue
                nreq = 0
            reader, writer = conn
            rec.reused = nreq > 0
            nreq += 1
            try:
                writer.write(post_head("/items", len(body)) + body)
                await writer.drain()
                status, headers, rbody = await asyncio.wait_for(
                    read_response(reader), REQUEST_TIMEOUT)
                self.classify(rec, status, headers, rbody)
                if headers.get("connection", "").lower() == "close":
                    writer.close()
                    conn = None
            except asyncio.TimeoutError:
                rec.t1 = time.monotonic()
                rec.result = "timeout"
                writer.close()
                conn = None
            except (Closed, ConnectionResetError, BrokenPipeError) as e:
                rec.t1 = time.monotonic()
                got = e.got if isinstance(e, Closed) else 0
                if rec.reused and got == 0:
                    rec.result = "closed_on_reuse"
                else:
                    rec.result = "closed"
                    rec.detail = str(e)
                writer.close()
                conn = None
        if conn is not None:
            conn[1].close()

    async def pinger(self):
        while not self.stop:
            t0 = time.monotonic()
            lat = None
            try:
                r, w = await self.connect()
                w.write(b"GET /ping HTTP/1.1\r\nHost: localhost\r\n"
                        b"Connection: close\r\n\r\n")
                status, _, body = await asyncio.wait_for(read_response(r),
                                                         5)
                w.close()
                if status == 200 and body == b"pong\n":
                    lat = time.monotonic() - t0
            except (OSError, Closed, asyncio.TimeoutError):
                pass
            self.pings.append((t0, lat))
            await asyncio.sleep(0.05)

    # misbehaving clients (scenario "clients")

    async def trickler(self):
        """sends the body a few bytes at a time over about a second"""
        while not self.stop:
            rec = self.doc("trickle")
            body = self.encode(rec.doc)
            if len(body) > 4000:
                body = body[:0]
                rec.doc["pad"] = "x"
                body = self.encode(rec.doc)
            try:
                r, w = await self.connect()
                w.write(post_head("/items", len(body),
                                  b"Connection: close\r\n"))
                i = 0
                step = max(1, len(body) // 40)
                while i < len(body):
                    w.write(body[i:i + step])
                    await w.drain()
                    i += step
                    await asyncio.sleep(0.025)
                status, headers, rbody = await asyncio.wait_for(
                    read_response(r), REQUEST_TIMEOUT)
                self.classify(rec, status, headers, rbody)
                w.close()
            except asyncio.TimeoutError:
                rec.t1 = time.monotonic()
                rec.result = "timeout"
            except (OSError, Closed) as e:
                rec.t1 = time.monotonic()
                rec.result = "closed"
                rec.detail = str(e)

    async def abort_body(self):
        """sends half the body, then goes away"""
        while not self.stop:
            rec = self.doc("abort_body")
            body = self.encode(rec.doc)
            try:
                r, w = await self.connect()
                w.write(post_head("/items", len(body)) + body[:len(body) // 2])
                await w.drain()
                await asyncio.sleep(0.02 + self.rng.random() * 0.05)
                if self.rng.random() < 0.5:
                    w.transport.abort()
                else:
                    w.close()
            except OSError:
                pass
            rec.t1 = time.monotonic()
            rec.result = "aborted_body"
            await asyncio.sleep(0.05)

    async def abort_query(self):
        """sends a document that takes 100 ms to insert, then goes away"""
        while not self.stop:
            rec = self.doc("abort_query", {"sleep": 0.1})
            body = self.encode(rec.doc)
            try:
                r, w = await self.connect()
                w.write(post_head("/items", len(body)) + body)
                await w.drain()
                await asyncio.sleep(0.01 + self.rng.random() * 0.08)
                w.close()
            except OSError:
                pass
            rec.t1 = time.monotonic()
            rec.result = "aborted_query"
            await asyncio.sleep(0.05)


class Document:
    """one document of an exactly-once client, and every attempt at it"""
    __slots__ = ("client", "i", "key", "doc", "attempts", "outcomes", "pk",
                 "replayed", "result", "detail", "t0", "t1")

    def __init__(self, client, i, key, doc):
        self.client = client
        self.i = i
        self.key = key
        self.doc = doc
        self.attempts = 0
        self.outcomes = []          # what each attempt but the last got
        self.pk = None
        self.replayed = False
        self.result = "pending"     # ok, gave_up, refused, bad_response
        self.detail = ""
        self.t0 = time.monotonic()
        self.t1 = None


class Retrier:
    """the clients of scenario exactly-once: each sends its own sequence of
    unique documents, each with an Idempotency-Key of its own, and retries a
    document with the same key after any 5xx or no answer (a timeout, a
    connection closed or refused), backing off exponentially from
    EO_BACKOFF[0] to EO_BACKOFF[1] with jitter, and never sooner than
    Retry-After, until it gets a 200; after EO_GIVE_UP seconds it gives the
    document up (a failure of the run)"""

    def __init__(self, run_id, rng):
        self.run_id = run_id
        self.rng = rng
        self.docs = []
        self.stop = False

    def document(self, client, i):
        size = self.rng.randint(0, 200)
        pad = "".join(self.rng.choice(ALPHABET) for _ in range(size))
        d = {"run": self.run_id, "client": client, "i": i, "pad": pad,
             "n": self.rng.randint(-2**40, 2**40), "sleep": EO_SLEEP}
        doc = Document(client, i, "%s-c%d-%d" % (self.run_id, client, i), d)
        self.docs.append(doc)
        return doc

    async def attempt(self, conn, doc, body):
        """one POST of doc on conn (a (reader, writer) or None); returns
        (conn to use next, status or None, headers, body, what happened)"""
        if conn is not None and conn[0].at_eof():
            conn[1].close()
            conn = None
        if conn is None:
            try:
                conn = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", PORT), 5)
            except (OSError, asyncio.TimeoutError):
                return None, None, {}, b"", "connect"
        reader, writer = conn
        try:
            writer.write(post_head("/items", len(body),
                                   b"Idempotency-Key: %s\r\n"
                                   % doc.key.encode()) + body)
            await writer.drain()
            status, headers, rbody = await asyncio.wait_for(
                read_response(reader), EO_ATTEMPT_TIMEOUT)
        except asyncio.TimeoutError:
            writer.close()
            return None, None, {}, b"", "timeout"
        except (Closed, ConnectionResetError, BrokenPipeError):
            writer.close()
            return None, None, {}, b"", "closed"
        if headers.get("connection", "").lower() == "close":
            writer.close()
            conn = None
        return conn, status, headers, rbody, str(status)

    async def client(self, cid):
        conn = None
        i = 0
        while not self.stop:
            i += 1
            doc = self.document(cid, i)
            body = Load.encode(doc.doc)
            delay = EO_BACKOFF[0]
            while True:
                doc.attempts += 1
                conn, status, headers, rbody, what = await self.attempt(
                    conn, doc, body)
                if status == 200:
                    try:
                        pk = json.loads(rbody)["pk"]
                        if not isinstance(pk, int):
                            raise ValueError
                        doc.pk = pk
                        doc.result = "ok"
                    except (ValueError, KeyError, TypeError):
                        doc.result = "bad_response"
                        doc.detail = "200 without a numeric pk: %r" % rbody
                    doc.replayed = (headers.get("idempotent-replayed")
                                    == "true")
                    break
                if status is not None and status < 500:
                    doc.result = "refused"
                    doc.detail = "%d %r" % (status, rbody[:200])
                    break
                if status is not None:
                    try:
                        if json.loads(rbody).get("outcome") == "unknown":
                            what += "u"
                    except (ValueError, AttributeError):
                        doc.result = "bad_response"
                        doc.detail = "%d, not a JSON error: %r" % (
                            status, rbody[:200])
                        break
                doc.outcomes.append(what)
                left = doc.t0 + EO_GIVE_UP - time.monotonic()
                if left <= 0:
                    doc.result = "gave_up"
                    doc.detail = "after %d attempts: %s" % (
                        doc.attempts, " ".join(doc.outcomes[-5:]))
                    break
                wait = delay * (0.5 + self.rng.random())
                try:
                    wait = max(wait, float(headers.get("retry-after", 0)))
                except ValueError:
                    pass
                await asyncio.sleep(min(wait, left))
                delay = min(2 * delay, EO_BACKOFF[1])
            doc.t1 = time.monotonic()
        if conn is not None:
            conn[1].close()


class Nginx(lib.Nginx):
    """a scenario's nginx: master on, 2 workers, the scenario's table"""

    def __init__(self, name, table, batch, conninfo, shim_env=None,
                 saveitem_args=""):
        super().__init__(os.path.join(OUT, name), PORT)
        self.argv[0] = NGINX
        self.table = table
        self.saveitem_args = saveitem_args
        self.batch = batch
        self.conninfo = conninfo
        self.shim_env = shim_env

    def start(self):
        http = """
    access_log off;
    keepalive_timeout 30s;
    keepalive_requests 200;
    client_max_body_size 1m;
    client_body_timeout 5s;

    saveitem_database "%(conninfo)s" pool=%(pool)d queue=512 queue_timeout=%(qt)dms;
    saveitem_query_timeout %(qto)dms;
    saveitem_batch %(batch)s;

    server {
        listen 127.0.0.1:%(port)d;

        location = /items {
            saveitem %(table)s%(args)s;
        }

        location = /ping {
            return 200 "pong\\n";
        }
    }""" % {"conninfo": self.conninfo, "batch": self.batch,
           "table": self.table, "args": self.saveitem_args,
           "port": PORT, "qt": QUEUE_TIMEOUT * 1000,
           "qto": QUERY_TIMEOUT * 1000, "pool": POOL}
        self.write(lib.nginx_conf(self.prefix, SO, http, workers=WORKERS,
                                  main="user root;\n"
                                  "worker_shutdown_timeout 10s;"))
        # a sanitizer build: its runtime first, reports to files
        shim = dict(self.shim_env or {})
        self.env = lib.preload_env(self.logs, PRELOAD,
                                   [shim.pop("LD_PRELOAD")] if shim else [])
        self.env.update(shim)
        super().start()

    def stop(self):
        self.orphans = super().stop()


class Scenario:
    def __init__(self, name, batch, quick):
        self.name = name
        self.batch = batch
        self.quick = quick
        self.fault, self.shim = {**SCENARIOS, **EXTRA_SCENARIOS}[name]
        self.key = "%s-%s" % (name, batch)
        self.table = "fault.%s_%s" % (name.replace("-", "_"), batch)
        self.failures = []
        self.notes = []
        self.fault_start = None
        self.fault_end = None
        self.down = None            # (t0, t1) when PostgreSQL was stopped
        self.frozen = None
        self.shim_log = None
        self.recovery = None
        self.terminated = 0
        self.rng = random.Random("%d-%s" % (SEED, self.key))
        self.db = PG                # where the rows are: a Cluster
        self.pair = Pair() if self.fault in ("failover", "switchover",
                                             "failover_frozen") else None
        self.promoted = None        # (start, end) of the promotion
        self.nowrite = None         # (t0, t1): no server took writes

    def fail(self, msg):
        self.failures.append(msg)

    # phases, in seconds
    @property
    def warmup(self):
        return 1.0 if self.quick else 1.5

    @property
    def tail(self):
        return 3.0

    def setup_table(self, columns=""):
        self.db.psql("""SET client_min_messages = warning;
CREATE SCHEMA IF NOT EXISTS fault;
CREATE OR REPLACE FUNCTION fault.act() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.data ? 'sleep' THEN
        PERFORM pg_sleep((NEW.data->>'sleep')::float);
    END IF;
    RETURN NEW;
END
$$;
DROP TABLE IF EXISTS %(t)s;
CREATE TABLE %(t)s (id bigserial PRIMARY KEY, data jsonb NOT NULL%(c)s);
CREATE TRIGGER act BEFORE INSERT ON %(t)s
    FOR EACH ROW EXECUTE FUNCTION fault.act();
""" % {"t": self.table, "c": columns})

    def conninfo(self):
        if self.pair:
            return ("%s application_name=%s connect_timeout=2"
                    % (self.pair.conninfo(), APP))
        if self.shim == "tcp":
            return ("hostaddr=127.0.0.1 port=%d dbname=saveitem user=postgres"
                    " application_name=%s connect_timeout=2" % (PG.port, APP))
        return ("%s application_name=%s connect_timeout=2"
                % (PG.conninfo(), APP))

    def shim_env(self):
        if not self.shim:
            return None
        self.shim_log = os.path.join(OUT, self.key, "shim.log")
        env = {"LD_PRELOAD": SHIM, "SAVEITEM_SHIM_SEED": str(SEED),
               "SAVEITEM_SHIM_EAGAIN": "25", "SAVEITEM_SHIM_SHORT": "35",
               "SAVEITEM_SHIM_LOG": self.shim_log}
        if self.shim == "tcp":
            env["SAVEITEM_SHIM_PORT"] = str(PG.port)
        else:
            env["SAVEITEM_SHIM_SOCKDIR"] = PG.sock
        return env

    # the faults: each sets fault_start and fault_end (monotonic)

    async def pg_sh(self, what):
        """util/pg.sh what, off the event loop; a failure fails the run"""
        try:
            await asyncio.to_thread(PG.pg_sh, what)
        except lib.Failure as e:
            self.fail("pg.sh %s failed: %s" % (what, str(e)[-300:]))

    async def fault_restart(self, load, nginx):
        self.fault_start = time.monotonic()
        await self.pg_sh("restart")
        self.fault_end = time.monotonic()

    async def fault_stop(self, load, nginx):
        self.fault_start = time.monotonic()
        res = await asyncio.to_thread(pg_ctl, "stop", "-m", "fast", "-w")
        if res.returncode != 0:
            self.fail("pg_ctl stop failed: %s" % res.stdout[-300:])
        t_down = time.monotonic()
        await asyncio.sleep(1.5 if self.quick else 2.5)
        t_up = time.monotonic()
        self.down = (t_down, t_up)
        await self.pg_sh("start")
        self.fault_end = time.monotonic()

    async def fault_terminate(self, load, nginx):
        """pg_terminate_backend of the module's backends, 10 times a
        second; each row sleeps 2 ms in a trigger, so that most of them
        are caught mid-query"""
        p = await asyncio.create_subprocess_exec(
            *PG.psql_argv(), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL)
        self.fault_start = time.monotonic()
        end = self.fault_start + (1.5 if self.quick else 2.5)
        n = 0
        while time.monotonic() < end:
            p.stdin.write(("SELECT count(pg_terminate_backend(pid)) FROM "
                           "pg_stat_activity WHERE application_name = '%s';\n"
                           % APP).encode())
            await p.stdin.drain()
            line = await asyncio.wait_for(p.stdout.readline(), 10)
            n += int(line.strip() or 0)
            await asyncio.sleep(0.1)
        self.fault_end = time.monotonic()
        p.stdin.close()
        await p.wait()
        self.terminated = n
        self.notes.append("%d backends terminated" % n)
        if n == 0:
            self.fail("no backend was terminated")

    async def fault_freeze(self, load, nginx):
        pids = PG.pids()
        self.fault_start = time.monotonic()
        try:
            for pid in pids:
                os.kill(pid, signal.SIGSTOP)
            await asyncio.sleep(2.5 if self.quick else 3.5)
        finally:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
        self.fault_end = time.monotonic()
        self.frozen = (self.fault_start, self.fault_end)
        self.notes.append("%d processes frozen" % len(pids))

    async def fault_reload(self, load, nginx):
        self.fault_start = time.monotonic()
        for _ in range(3 if self.quick else 5):
            rc = await nginx.reload()
            if rc != 0:
                self.fail("nginx -s reload failed (%d)" % rc)
            await asyncio.sleep(0.5)
        self.fault_end = time.monotonic()

    async def fault_clients(self, load, nginx):
        """slow clients trickle their bodies; others leave mid-body or
        while their statement runs (a trigger makes it last 100 ms)"""
        self.fault_start = time.monotonic()
        duration = 2.0 if self.quick else 3.0
        await asyncio.gather(*[self._until(load, kind, duration)
                               for kind in ("trickle",) * 4
                               + ("abort_body",) * 2
                               + ("abort_query",) * 2])
        self.fault_end = time.monotonic()

    async def _until(self, load, kind, duration):
        """one misbehaving client of `kind`, for `duration` seconds"""
        end = time.monotonic() + duration
        proxy = _Until(load, end)
        await {"trickle": Load.trickler, "abort_body": Load.abort_body,
               "abort_query": Load.abort_query}[kind](proxy)

    async def fault_timeout(self, load, nginx):
        """1 % of the documents take longer than the query timeout: the
        server cancels them (statement_timeout) just before the module's
        timer would fire; in a batch, the others are retried alone"""
        self.fault_start = time.monotonic()
        load.slow = 0.01
        load.slow_sleep = QUERY_TIMEOUT - 0.05
        await asyncio.sleep(2.0 if self.quick else 3.0)
        load.slow = 0.0
        self.fault_end = time.monotonic()

    async def fault_failover(self, load, nginx):
        """the primary dies (SIGKILL to the postmaster and every backend,
        as a crashed machine); a moment later, the time a failover tool
        takes to decide, the standby is promoted"""
        pids = self.pair.primary.pids()
        self.fault_start = time.monotonic()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        await asyncio.sleep(1.0 if self.quick else 2.0)
        await self.promote()
        self.notes.append("%d processes of the primary killed" % len(pids))

    async def fault_failover_frozen(self, load, nginx):
        """the primary hangs (SIGSTOP: its port still completes TCP
        handshakes, nothing answers), the standby is promoted; the frozen
        primary stays frozen (fenced) to the end"""
        pids = self.pair.primary.pids()
        self.fault_start = time.monotonic()
        self.pair.frozen = pids
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        await asyncio.sleep(1.0 if self.quick else 2.0)
        await self.promote()

    async def fault_switchover(self, load, nginx):
        """the primary stays up but read-only (a reload: the module's open
        connections stay and meet 25006 on their next INSERT), then the
        standby is promoted"""
        self.fault_start = time.monotonic()
        primary = self.pair.primary
        await asyncio.to_thread(self.pair.alter, primary,
                                "SET default_transaction_read_only = on")
        # the postmaster rereads its files when signalled, then signals
        # the backends: a new session seeing the setting says it is done;
        # each open session applies it before its next command
        deadline = time.monotonic() + 10
        while (await asyncio.to_thread(
                primary.psql, "SHOW default_transaction_read_only")
               ).strip() != "on":
            if time.monotonic() > deadline:
                raise lib.Failure("the primary is not read-only after 10 s")
            await asyncio.sleep(0.05)
        readonly = time.monotonic() + 0.1
        await asyncio.sleep(1.0 if self.quick else 2.0)
        await self.promote(readonly)

    async def promote(self, nowrite=None):
        """the standby promoted; from now on, rows are read there"""
        t0 = time.monotonic()
        self.nowrite = (nowrite or self.fault_start, t0)
        self.down = self.nowrite
        await asyncio.to_thread(self.pair.promote)
        self.fault_end = time.monotonic()
        self.promoted = (t0, self.fault_end)
        self.db = self.pair.standby

    async def fault_eagain(self, load, nginx):
        # the shim works all along: the "fault" is a stretch of the run
        self.fault_start = time.monotonic()
        await asyncio.sleep(2.0 if self.quick else 3.0)
        self.fault_end = time.monotonic()

    async def run(self):
        if self.fault == "exactly_once":
            await self.run_exactly_once()
        elif self.pair:
            try:
                await self.run_pair()
            finally:
                self.pair.stop()
        else:
            await self.run_nginx()

    async def run_pair(self):
        """the table on the primary, then the standby copied from it"""
        await asyncio.to_thread(self.pair.start_primary)
        self.db = self.pair.primary
        self.setup_table()
        inherited = await asyncio.to_thread(self.pair.start_standby)
        self.notes.append("standby: synchronous_standby_names '%s' "
                          "inherited from the primary" % inherited)
        if inherited != "*":
            self.fail("the standby did not inherit synchronous_standby_names"
                      " ('%s'): the failover does not show the pitfall"
                      % inherited)
        await self.run_nginx()

    async def run_nginx(self):
        if not self.pair:
            self.setup_table()
        nginx = Nginx(self.key, self.table, self.batch, self.conninfo(),
                      self.shim_env())
        try:
            os.makedirs(os.path.join(OUT, self.key), exist_ok=True)
            nginx.start()
            if self.shim_log:
                # nginx.start() wiped the directory
                os.makedirs(os.path.dirname(self.shim_log), exist_ok=True)
            load = Load("%s-%d" % (self.key, SEED), self.rng,
                        0.002 if self.fault == "terminate" else None)
            await self.drive(load, nginx)
            self.final_probe(load)
        finally:
            nginx.stop()
        self.check(load, nginx)
        return load

    async def run_exactly_once(self):
        """EO_CLIENTS retrying clients (Retrier) while PostgreSQL is
        restarted, its backends terminated, then frozen; then every
        document must be one row, the one whose pk its client got"""
        self.setup_table(", idem text UNIQUE")
        nginx = Nginx(self.key, self.table, self.batch, self.conninfo(),
                      saveitem_args=" idempotency=idem")
        clients = Retrier("%s-%d" % (self.key, SEED), self.rng)
        try:
            os.makedirs(os.path.join(OUT, self.key), exist_ok=True)
            nginx.start()
            tasks = [asyncio.create_task(clients.client(c))
                     for c in range(EO_CLIENTS)]
            phases = []
            try:
                await asyncio.sleep(self.warmup)
                for fault in (self.fault_restart, self.fault_terminate,
                              self.fault_freeze):
                    try:
                        await fault(None, nginx)
                    except Exception as e:
                        self.fail("the fault %s failed: %r"
                                  % (fault.__name__, e))
                    phases.append("%s %.1f s" % (
                        fault.__name__[len("fault_"):],
                        (self.fault_end or time.monotonic())
                        - self.fault_start))
                    await asyncio.sleep(1.0)
                await asyncio.sleep(self.tail - 1.0)
            finally:
                # each client finishes its document (bounded by EO_GIVE_UP)
                clients.stop = True
                done, pending = await asyncio.wait(tasks,
                                                   timeout=EO_GIVE_UP + 10)
                for t in pending:
                    t.cancel()
                if pending:
                    self.fail("%d clients did not finish" % len(pending))
                for t in done:
                    if t.exception():
                        self.fail("a client crashed: %r" % t.exception())
            self.notes.append("faults: " + ", ".join(phases))
        finally:
            nginx.stop()
        self.check_exactly_once(clients)
        self.check_log(nginx)

    def check_exactly_once(self, clients):
        docs = clients.docs
        by_key = {d.key: d for d in docs}
        rows = {}                   # idem -> [(id, data)]
        invented = []
        out = self.db.psql("SELECT id, coalesce(idem, ''), data::text FROM %s"
                           % self.table)
        nrows = 0
        for line in out.split("\n"):
            if not line:
                continue
            rid, key, data = line.split("|", 2)
            nrows += 1
            rows.setdefault(key, []).append((int(rid), json.loads(data)))
            if key not in by_key:
                invented.append("row %s, key %r" % (rid, key))

        bad = {}

        def problem(kind, doc, what):
            bad.setdefault(kind, []).append("%s %s" % (doc.key, what))

        dups = 0
        pks = {}
        for d in docs:
            mine = rows.get(d.key, [])
            if len(mine) > 1:
                dups += len(mine) - 1
                problem("stored more than once", d,
                        "rows %s" % [r[0] for r in mine])
            if d.result != "ok":
                problem(d.result, d, d.detail)
                if mine:
                    problem("row without a 200", d,
                            "rows %s" % [r[0] for r in mine])
                continue
            if d.pk in pks:
                problem("pk given to two documents", d,
                        "pk %d, also %s" % (d.pk, pks[d.pk]))
            pks[d.pk] = d.key
            if not mine:
                problem("200 without a row", d, "pk %d" % d.pk)
            elif mine[0][0] != d.pk:
                problem("pk is not its row", d, "pk %d, row %d"
                        % (d.pk, mine[0][0]))
            elif mine[0][1] != d.doc:
                problem("row holds another document", d,
                        "row %d" % mine[0][0])
        # the same document under two keys (cannot happen with one key per
        # document; counted from the documents themselves)
        seen = {}
        for key, rs in rows.items():
            for rid, data in rs:
                ident = (data.get("run"), data.get("client"), data.get("i"))
                if ident in seen:
                    dups += 1
                    bad.setdefault("document under two keys", []).append(
                        "rows %d and %d" % (seen[ident], rid))
                seen[ident] = rid
        if invented:
            self.fail("%d rows whose key no client sent, e.g. %s"
                      % (len(invented), "; ".join(invented[:3])))
        for kind, items in sorted(bad.items()):
            self.fail("%s: %d, e.g. %s" % (kind, len(items),
                                          "; ".join(items[:3])))

        attempts = sum(d.attempts for d in docs)
        retried = [w for d in docs for w in d.outcomes]
        why = {}
        for w in retried:
            why[w] = why.get(w, 0) + 1
        ok = [d for d in docs if d.result == "ok"]
        replays = sum(1 for d in ok if d.replayed)
        # the proof needs retries of requests that may have been stored;
        # replays (such a request was stored) are counted, not required:
        # whether a frozen statement commits after the thaw is timing
        if not [w for w in retried if w in ("timeout", "closed")
                or w.endswith("u")]:
            self.fail("no request was retried after a lost answer or an "
                      "unknown outcome: the faults proved nothing")

        # the columns of the common line
        self.counts = {}
        for w in retried:
            if w.isdigit() or w[:3].isdigit():
                s = int(w[:3])
                self.counts[s] = self.counts.get(s, 0) + 1
        self.counts[200] = len(ok)
        self.sent = attempts
        self.pks = len(pks)
        self.nrows = nrows
        # answered "unknown", and the documents a later attempt found
        # stored (a replay) after one
        self.unknown = sum(1 for w in retried if w.endswith("u"))
        self.unknown_stored = sum(1 for d in ok if d.replayed and any(
            w.endswith("u") for w in d.outcomes))
        self.aborted = self.aborted_stored = 0
        self.reuse_closed = 0
        self.notes.append(
            "exactly-once, saveitem_batch %s: %d clients, %d documents, %d "
            "attempts, %d retries (%s), %d 200s, %d replays, %d rows, %d "
            "duplicates, %d rows without a 200, %d given up"
            % (self.batch, EO_CLIENTS, len(docs), attempts, len(retried),
               " ".join("%s:%d" % kv for kv in sorted(why.items())) or "-",
               len(ok), replays, nrows, dups,
               len(bad.get("row without a 200", [])) + len(invented),
               sum(1 for d in docs if d.result == "gave_up")))

    async def drive(self, load, nginx):
        interval = CLIENTS / RATE
        workers = [asyncio.create_task(load.worker(interval))
                   for _ in range(CLIENTS)]
        pinger = asyncio.create_task(load.pinger())
        await asyncio.sleep(self.warmup)
        fault = getattr(self, "fault_" + self.fault)
        try:
            await fault(load, nginx)
        except Exception as e:
            self.fail("the fault itself failed: %r" % e)
            if self.fault_end is None:
                self.fault_end = time.monotonic()
        await asyncio.sleep(self.tail)
        load.stop = True
        done, pending = await asyncio.wait(workers + [pinger],
                                           timeout=REQUEST_TIMEOUT + 5)
        for t in pending:
            t.cancel()
        for t in done:
            if t.exception():
                self.fail("a client crashed: %r" % t.exception())

    def final_probe(self, load):
        """nginx still answers, and still stores"""
        import http.client
        try:
            c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=10)
            c.request("GET", "/ping")
            r = c.getresponse()
            if r.status != 200:
                self.fail("GET /ping after the run: %d" % r.status)
            r.read()
            rec = load.doc("final")
            deadline = time.monotonic() + 5
            while True:
                c.request("POST", "/items", body=Load.encode(rec.doc),
                          headers={"Content-Type": "application/json"})
                r = c.getresponse()
                body = r.read()
                if r.status == 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            load.classify(rec, r.status, {}, body)
            if rec.result != "ok":
                self.fail("a POST after the run: %d %r" % (r.status, body))
        except OSError as e:
            self.fail("nginx does not answer after the run: %s" % e)

    def check(self, load, nginx):
        recs = load.records
        rows = {}
        by_seq = {}
        out = self.db.psql("SELECT id, data::text FROM %s" % self.table)
        for line in out.split("\n"):
            if not line:
                continue
            rid, data = line.split("|", 1)
            rid = int(rid)
            data = json.loads(data)
            rows[rid] = data
            seq = data.get("seq")
            if data.get("run") != load.run_id or seq is None:
                self.fail("row %d was sent by nobody: %.100s" % (rid, data))
                continue
            by_seq.setdefault(seq, []).append(rid)

        self.nrows = len(rows)
        known = {r.seq for r in recs}
        for seq, ids in by_seq.items():
            if len(ids) > 1:
                self.fail("document %d stored %d times (rows %s)"
                          % (seq, len(ids), ids))
            if seq not in known:
                self.fail("rows %s hold document %d, never sent"
                          % (ids, seq))

        def stored(rec):
            return rec.seq in by_seq

        counts = {}
        self.unknown = self.unknown_stored = 0
        self.aborted = self.aborted_stored = 0
        self.reuse_closed = 0
        seen_pk = set()
        bad = {}

        def problem(kind, rec, what):
            bad.setdefault(kind, []).append(
                "seq %d (%s) %s" % (rec.seq, rec.kind, what))

        for rec in recs:
            if rec.status is not None:
                counts[rec.status] = counts.get(rec.status, 0) + 1
            if rec.result == "ok":
                if rec.pk in seen_pk:
                    problem("pk given twice", rec, "pk %d" % rec.pk)
                seen_pk.add(rec.pk)
                row = rows.get(rec.pk)
                if row is None:
                    problem("pk without a row", rec, "pk %d" % rec.pk)
                elif row != rec.doc:
                    problem("row holds another document", rec,
                            "pk %d holds seq %s" % (rec.pk, row.get("seq")))
            elif rec.result == "error":
                if stored(rec):
                    problem("stored although the client got an error", rec,
                            "%d %s, rows %s" % (rec.status, rec.body[:120],
                                                by_seq[rec.seq]))
            elif rec.result == "unknown":
                self.unknown += 1
                self.unknown_stored += stored(rec)
            elif rec.result == "aborted_query":
                self.aborted += 1
                self.aborted_stored += stored(rec)
            elif rec.result == "aborted_body":
                self.aborted += 1
                if stored(rec):
                    problem("stored from half a body", rec,
                            "rows %s" % by_seq[rec.seq])
            elif rec.result == "closed_on_reuse":
                self.reuse_closed += 1
                if stored(rec):
                    problem("stored, but the connection closed without an"
                            " answer", rec, "rows %s" % by_seq[rec.seq])
            else:
                problem(rec.result, rec, rec.detail or "(no answer)")

            if rec.t1 is not None and rec.kind in ("load", "slow") \
               and rec.t1 - rec.t0 > MAX_LATENCY \
               and rec.result not in ("timeout",):
                problem("slow answer", rec, "%.1f s, %s" % (rec.t1 - rec.t0,
                                                            rec.status))

        for kind, items in sorted(bad.items()):
            self.fail("%s: %d, e.g. %s" % (kind, len(items),
                                          "; ".join(items[:3])))

        self.counts = counts
        self.sent = len(recs)
        self.pks = len(seen_pk)

        # a keep-alive connection closed as the client sent on it
        limit = max(3, int(REUSE_CLOSED_MAX * self.sent))
        if self.reuse_closed > limit:
            self.fail("%d requests met a keep-alive connection closed by "
                      "nginx (limit %d)" % (self.reuse_closed, limit))

        if self.fault in ("eagain", "clients"):
            others = [r for r in recs if r.kind in ("load", "trickle",
                                                    "final")
                      and r.result != "ok"]
            if others and self.fault == "eagain":
                self.fail("%d requests were not stored while only the "
                          "socket was slow, e.g. %s %s"
                          % (len(others), others[0].result,
                             others[0].body[:120]))
            trickled = [r for r in recs if r.kind == "trickle"]
            if self.fault == "clients":
                if not trickled:
                    self.fail("no slow client ran")
                bad_t = [r for r in trickled if r.result != "ok"]
                if bad_t:
                    self.fail("%d slow clients were not stored, e.g. %s %s"
                              % (len(bad_t), bad_t[0].result,
                                 bad_t[0].body[:120]))

        if self.fault == "timeout":
            slow = [r for r in recs if r.kind == "slow"]
            if not slow:
                self.fail("no slow document was sent")
            stored_slow = [r for r in slow if r.result == "ok"]
            if stored_slow:
                self.fail("%d documents slower than the query timeout got a"
                          " key" % len(stored_slow))
            not504 = [r for r in slow if r.status != 504]
            if not504:
                self.fail("%d slow documents got %s, not 504"
                          % (len(not504), sorted({r.status
                                                  for r in not504})))
            fast = [r for r in recs if r.kind == "load"]
            hit = [r for r in fast if r.result != "ok"]
            self.notes.append("%d slow documents: %s; %d of %d others not "
                              "stored: %s" % (
                                  len(slow), status_counts(slow), len(hit),
                                  len(fast), status_counts(hit)))
            if len(hit) > 0.05 * len(fast):
                self.fail("%d of %d fast documents were not stored"
                          % (len(hit), len(fast)))

        if self.down:
            t0, t1 = self.down
            during = [r for r in recs if r.kind == "load"
                      and t0 + 0.5 <= r.t0 <= t1]
            n503 = sum(1 for r in during if r.status == 503)
            if during and n503 == 0:
                self.fail("no 503 while PostgreSQL was down")
            slow = [r for r in during
                    if r.t1 is not None and r.t1 - r.t0 > QUEUE_TIMEOUT + 1]
            if slow:
                self.fail("%d requests waited more than %.1f s while "
                          "PostgreSQL was down" % (len(slow),
                                                   QUEUE_TIMEOUT + 1))

        if self.pair:
            self.check_pair(load)

        self.check_pings(load)
        self.check_recovery(load)
        self.check_log(nginx)
        if self.shim_log:
            self.check_shim()

    def check_pair(self, load):
        """a failover or switchover: the answers while no server took
        writes, the time to the first 200 after the promotion, and (the
        old primary still up) none of its rows missing on the new one"""
        recs = [r for r in load.records if r.kind == "load"]
        if self.promoted is None:
            self.fail("the standby was not promoted")
            return
        t0, t1 = self.nowrite
        during = [r for r in recs if t0 <= r.t0
                  and r.t1 is not None and r.t1 <= t1]
        stored = [r for r in during if r.result == "ok"]
        if stored:
            self.fail("%d requests got 200 while no server took writes, "
                      "e.g. pk %s" % (len(stored), stored[0].pk))
        if not during:
            self.fail("no request was answered while no server took writes")
        after = sorted(r.t1 for r in load.records
                       if r.result == "ok" and r.t1 is not None
                       and r.t1 >= self.promoted[1])
        first = after[0] - self.promoted[1] if after else None
        if first is None or first > PROMOTION_LIMIT:
            self.fail("no 200 within %.1f s of the promotion (first: %s)"
                      % (PROMOTION_LIMIT, "none" if first is None
                         else "%.2f s" % first))
        readonly = [r for r in load.records
                    if b'"sqlstate": "25006"' in (r.body or b"")]
        bad_ro = [r for r in readonly if r.status != 503
                  or r.result != "error"]
        if bad_ro:
            self.fail("%d answers to 25006 were not 503 \"not stored\", "
                      "e.g. %s %r" % (len(bad_ro), bad_ro[0].status,
                                      bad_ro[0].body[:120]))
        if self.fault == "switchover":
            if not readonly:
                self.fail("no request met the read-only server (25006)")
            self.check_old_primary()
        ok = sum(1 for r in load.records if r.result == "ok")
        late = [r for r in recs if r.t0 >= self.promoted[1]
                and r.result != "ok"]
        self.notes.append(
            "%d requests, %d 200, %d 503, %d unknown, %d rows; while no "
            "server took writes (%.2f s): %s; 25006: %d; promotion took "
            "%.2f s; first 200 %s after it; sent after it and not "
            "stored: %s" % (
                len(load.records), ok,
                sum(1 for r in load.records if r.status == 503),
                sum(1 for r in load.records if r.result == "unknown"),
                self.nrows, t1 - t0, status_counts(during), len(readonly),
                self.promoted[1] - self.promoted[0],
                "-" if first is None else "%.2f s" % first,
                status_counts(late) if late else "0"))

    def check_old_primary(self):
        """every row the read-only old primary holds is on the new one"""
        sql = "SELECT id, data::text FROM %s ORDER BY id" % self.table
        old = self.pair.primary.psql(sql).split("\n")
        new = set(self.db.psql(sql).split("\n"))
        missing = [line for line in old if line and line not in new]
        if missing:
            self.fail("%d rows of the old primary are not on the new one, "
                      "e.g. %.100s" % (len(missing), missing[0]))

    def check_pings(self, load):
        bad = [(t, lat) for t, lat in load.pings
               if lat is None or lat > PING_LIMIT]
        lats = [lat for _, lat in load.pings if lat is not None]
        self.ping_max = max(lats) if lats else None
        if bad:
            self.fail("%d of %d GET /ping failed or took more than %.1f s"
                      % (len(bad), len(load.pings), PING_LIMIT))
        if self.frozen:
            during = [lat for t, lat in load.pings
                      if self.frozen[0] <= t <= self.frozen[1]]
            if not during:
                self.fail("no ping while the database was frozen")
            else:
                self.notes.append("%d GET /ping while frozen, the slowest "
                                  "%.0f ms" % (len(during), 1000 * max(
                                      lat or PING_LIMIT for lat in during)))

    def check_recovery(self, load):
        oks = sorted(r.t1 for r in load.records
                     if r.result == "ok" and r.kind == "load")
        t0 = load.t_start + 0.5
        t1 = self.fault_start
        if t1 is None or t1 - t0 < 0.4:
            self.fail("no baseline before the fault")
            return

        def rate(a, b):
            import bisect
            return (bisect.bisect_left(oks, b)
                    - bisect.bisect_left(oks, a)) / (b - a)

        self.baseline = rate(t0, t1)
        if self.baseline <= 0:
            self.fail("no request was stored before the fault")
            return
        end = self.fault_end
        d = 0.0
        while d <= RECOVERY_LIMIT + 1e-9:
            if rate(end + d, end + d + RECOVERY_WINDOW) \
               >= RECOVERY_FRACTION * self.baseline:
                self.recovery = d
                return
            d += 0.1
        self.fail("throughput not back to %d%% of %.0f/s within %.1f s "
                  "after the fault" % (RECOVERY_FRACTION * 100,
                                       self.baseline, RECOVERY_LIMIT))

    def check_log(self, nginx):
        if getattr(nginx, "orphans", 0):
            self.fail("nginx processes outlived their master")
        for problem in nginx.log_problems(lib.CRASH_PATTERNS
                                          + (r"open socket #\d+ left",)):
            self.fail(problem)

    def check_shim(self):
        total = {}
        try:
            with open(self.shim_log) as f:
                for line in f:
                    m = re.search(r"send calls (\d+) eagain (\d+) short (\d+)"
                                  r", recv calls (\d+) eagain (\d+) short "
                                  r"(\d+)", line)
                    if m:
                        for k, v in zip(("send", "send_eagain", "send_short",
                                         "recv", "recv_eagain",
                                         "recv_short"), m.groups()):
                            total[k] = total.get(k, 0) + int(v)
        except OSError:
            pass
        self.notes.append("shim: " + ", ".join("%s %d" % kv
                                               for kv in total.items()))
        for k in ("send_eagain", "send_short", "recv_eagain", "recv_short"):
            if total.get(k, 0) == 0:
                self.fail("the shim injected no %s (log %s)"
                          % (k, self.shim_log))

    def line(self):
        answered = " ".join("%d:%d" % kv for kv in sorted(self.counts.items()))
        rec = ("%.1fs" % self.recovery) if self.recovery is not None else "-"
        return ("%-16s %-3s %6d  %-28s %6d %6d  %3d/%-3d  %3d/%-3d %4d  %6s"
                "  %s" % (self.name, self.batch, self.sent, answered,
                          self.pks, self.nrows, self.unknown_stored,
                          self.unknown, self.aborted_stored, self.aborted,
                          self.reuse_closed, rec,
                          "FAIL" if self.failures else "ok"))


def status_counts(recs):
    counts = {}
    for r in recs:
        key = "%s%s" % (r.status, "u" if r.result == "unknown" else "")
        counts[key] = counts.get(key, 0) + 1
    return " ".join("%s:%d" % kv for kv in sorted(counts.items())) or "-"


class _Until:
    """a view of a Load whose `stop` turns true at a given time"""

    def __init__(self, load, end):
        self.__dict__["_load"] = load
        self.__dict__["_end"] = end

    def __getattr__(self, name):
        if name == "stop":
            return self._load.stop or time.monotonic() >= self._end
        return getattr(self._load, name)

    def __setattr__(self, name, value):
        setattr(self._load, name, value)


HEADER = ("%-16s %-3s %6s  %-28s %6s %6s  %-7s  %-7s %4s  %6s  %s"
          % ("scenario", "bat", "sent", "answered (status:n)", "pks", "rows",
             "unknown", "aborted", "ka", "recov", "result"))
LEGEND = ("unknown: stored/answered \"outcome\": \"unknown\"; aborted: "
          "stored/aborted by the client; ka: keep-alive connections closed "
          "as the client sent; recov: seconds to half the baseline rate")


async def main_async(args):
    names = args.scenarios or list(SCENARIOS)
    for n in names:
        if n not in SCENARIOS and n not in EXTRA_SCENARIOS:
            raise SystemExit("unknown scenario %s (%s)"
                             % (n, " ".join(list(SCENARIOS)
                                            + list(EXTRA_SCENARIOS))))
    modes = args.batch.split()
    results = []
    t_all = time.monotonic()
    for name in names:
        for mode in modes:
            sc = Scenario(name, mode, args.quick)
            t0 = time.monotonic()
            say("fault: %s, saveitem_batch %s" % (name, mode))
            try:
                await sc.run()
            except Exception as e:
                import traceback
                traceback.print_exc()
                sc.fail("the scenario could not run: %r" % e)
                for attr in ("counts", "sent", "pks", "nrows", "unknown",
                             "unknown_stored", "aborted", "aborted_stored",
                             "reuse_closed"):
                    if not hasattr(sc, attr):
                        setattr(sc, attr, {} if attr == "counts" else 0)
            sc.wall = time.monotonic() - t0
            results.append(sc)
            say(sc.line())
            for f in sc.failures:
                say("    FAIL: " + f)

    print(HEADER)
    for sc in results:
        print(sc.line())
        for n in sc.notes:
            print("    note: " + n)
        for f in sc.failures:
            print("    FAIL: " + f)
    print(LEGEND)
    print("total %.0f s; logs in %s" % (time.monotonic() - t_all, OUT))
    passed = sum(1 for sc in results if not sc.failures)
    failed = len(results) - passed
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser(prog="util/fault/run")
    ap.add_argument("--quick", action="store_true",
                    help="batch on only, shorter phases (CI)")
    ap.add_argument("--batch", default=None,
                    help='"on", "off" or "on off" (default: "on off", '
                         'with --quick "on")')
    ap.add_argument("scenarios", nargs="*")
    args = ap.parse_args()
    if args.batch is None:
        args.batch = "on" if args.quick else "on off"
    if not SO or not os.path.exists(SO):
        raise SystemExit("SAVEITEM_FAULT_SO is not a module: run "
                         "util/fault/run")
    lib.interrupt_on_term()
    os.makedirs(OUT, exist_ok=True)
    try:
        sys.exit(asyncio.run(main_async(args)))
    except KeyboardInterrupt:
        say("fault: interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
