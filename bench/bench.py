"""bench/bench.py - the benchmark behind bench/run (run that, not this)

    bench/run [--quick] [--soak] [--sync-commit on|off] [--targets LIST]
              [--clients LIST] [--duration S] [--warmup S]

For every target and client count: truncate `items`, warm up, measure with
wrk (bench/post.lua; bench/bulk.lua for module-bulk-<N>w) or pgbench
(bench/pgbench-insert.sql), then check in the database that every pk a
client received is a distinct row holding a document that client sent, and
that no more rows exist than documents were sent. Prints one table,
writes it as CSV and markdown with a gnuplot PNG into bench/out/<stamp>/
(bench/out/latest points there). Exit status: 0 when every check passed, 1
when a check failed or a target could not run, 2 when the soak's RSS was
not flat.

Targets: pgbench (the ceiling: one single-row INSERT a transaction),
pgbench-multi (the database's limit when requests are combined: one
16-row INSERT a transaction, bench/pgbench-insert-16.sql, reported in
rows/s), nginx-static (the HTTP limit: nginx reads the same POSTs and
answers a fixed {"pk": 1}, no database), module-<N>w (the module in Debian's nginx
with N workers, one request per statement: `saveitem_batch off;` and
`pool=32`, as one commit per request needs many backends committing at
once), module-batch-<N>w (group commit, the default configuration:
`saveitem_batch on;`, pool 8),
module-mapped-<N>w (group commit, the document's keys also in five typed
columns of `items`: saveitem_field run, t, n, kind and saveitem_value ip
$remote_addr, beside the jsonb column the other targets fill alone; the
columns exist for every target of a run that has this one),
module-bulk-<N>w (bulk bodies: group commit's configuration, the location
`saveitem items bulk=100;`, each POST a JSON array of 100 documents,
bench/bulk.lua, answered {"pks": [...]}; reported in documents/s, each pk
checked against its document), module-bulk-ndjson-<N>w,
module-bulk-gzip-<N>w and module-bulk-zstd-<N>w (the same 100 documents
as NDJSON: plain, gzip, zstd; compressed by wrk, decompressed by the
module), module-pgbouncer (group commit, 1 worker,
`prepare=off`, through Debian's PgBouncer in transaction mode,
util/pgbouncer.sh, default_pool_size BENCH_PGBOUNCER_POOL), aiohttp,
tornado, flask (bench/peers/). A module built before saveitem_batch (or
bulk=) existed gets no such directive, and its batch (bulk) targets are
skipped.

--poison N (default 10; 0: none) measures the points of a module target at
the client counts of --poison-clients (default 64; all: every count) twice,
clean and then with one document in N that PostgreSQL refuses
(--poison-kind check: a CHECK constraint on items, 23514; numeric:
1e200000, 22003): the poisoned row reports the innocent documents' 2xx/s
and its ratio to the clean point, and checks that only poisoned documents
were refused (4xx) and none stored; not for the bulk targets, where one
refused document refuses its whole body.

Knobs (environment; the options win): see bench/run --help.
"""

import argparse
import copy
import datetime
import http.client
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, os.path.join(ROOT, "util"))
import lib  # noqa: E402  util/lib.py, what the Python tools share
from lib import Failure, run  # noqa: E402

PY = "/usr/bin/python3"            # Debian's, where python3-* packages live
NGINX = lib.NGINX
PG_BIN = lib.PG_BIN
PORT_BASE = lib.port("bench-base")
PG_PORT = lib.port("bench-pg")
PGBOUNCER_PORT = lib.port("bench-pgbouncer")
CLK_TCK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1

DEFAULT_TARGETS = ("pgbench,pgbench-multi,nginx-static,module-bulk-1w,"
                   "module-bulk-2w,module-bulk-ndjson-1w,"
                   "module-bulk-gzip-1w,module-bulk-zstd-1w,"
                   "module-1w,module-2w,"
                   "module-batch-1w,module-mapped-1w,module-batch-2w,"
                   "module-pgbouncer,"
                   "aiohttp,tornado,flask")

# documents in each POST of the module-bulk-<N>w targets (bench/bulk.lua),
# at a location with `saveitem items bulk=BULK_DOCS;`
BULK_DOCS = 100

# pgbench targets: script, rows per transaction
PGBENCH = {
    "pgbench": ("pgbench-insert.sql", 1),
    "pgbench-multi": ("pgbench-insert-16.sql", 16),
}

# what --poison-kind sends one document in N: a key that the table's CHECK
# constraint refuses (23514: only PostgreSQL can tell), or a number beyond
# jsonb's numeric (22003, which the module may refuse itself first)
POISON_KINDS = ("check", "numeric")

# peer name -> (python modules it imports, Debian packages, port offset)
PEERS = {
    "flask": (["flask", "psycopg2"], ["python3-flask", "python3-psycopg2",
                                      "gunicorn"], 1),
    "aiohttp": (["aiohttp", "asyncpg", "uvloop"],
                ["python3-aiohttp", "python3-asyncpg", "python3-uvloop",
                 "gunicorn"], 2),
    "tornado": (["tornado", "aiopg"], ["python3-tornado", "python3-aiopg"],
                3),
}


def say(*args):
    print("bench:", *args, file=sys.stderr, flush=True)


def env(name, default):
    v = os.environ.get(name)
    return default if v is None or v == "" else v


# ---------------------------------------------------------------- options

def parse_args():
    p = argparse.ArgumentParser(
        prog="bench/run",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Benchmark the module against Python peers and the"
        " pgbench ceiling (see bench/bench.py's header).",
        epilog="""knobs (environment; options win):
  BENCH_TARGETS        targets, comma-separated (default %s)
  BENCH_CLIENTS        client counts (default 1,16,64,256)
  BENCH_DURATION       seconds measured per point (default 12; --quick 2)
  BENCH_WARMUP         seconds of warm-up per point (default 4; --quick 1)
  BENCH_THREADS        wrk threads and pgbench -j (default 1; never more
                       than the clients)
  BENCH_WRK_TIMEOUT    wrk --timeout in seconds (default 10)
  BENCH_SYNC_COMMIT    on|off (default on)
  BENCH_DATABASE_OPTS  appended to saveitem_database for every module
                       target (default: none, the pool defaults), e.g.
                       "pool=16 queue=512"
  BENCH_NOBATCH_DATABASE_OPTS  the same for the saveitem_batch off targets
                       when BENCH_DATABASE_OPTS is not set (default
                       "pool=32": one commit per request needs as many
                       backends committing at once as pgbench has)
  BENCH_NGINX_EXTRA    directives added to the module's location, for every
                       module target (e.g. "saveitem_batch on rows=16;")
  BENCH_NGINX_HTTP_EXTRA  directives added to the module's http{} block
  BENCH_PEER_PROCS     processes of aiohttp and tornado (default: cores)
  BENCH_FLASK_WORKERS  gunicorn sync workers (default 2*cores+1)
  BENCH_PEER_POOL      database connections per peer process (default 8)
  BENCH_PORT_BASE      first of the ports used (default %d; +0 module,
                       +1 flask, +2 aiohttp, +3 tornado, +4 nginx status)
  BENCH_PG_PORT        the throwaway PostgreSQL's port (default %d)
  BENCH_PGBOUNCER_PORT PgBouncer's port, module-pgbouncer (default %d)
  BENCH_PGBOUNCER_POOL its default_pool_size (default 8)
  BENCH_POISON         --poison (default 10; 0: none)
  BENCH_POISON_CLIENTS --poison-clients (default 64)
  BENCH_PG_DIR         its directory (default /tmp/saveitem-bench-pg-PORT)
  BENCH_OUT            output directory (default bench/out)
  BENCH_SO             the module .so to load (bench/run builds it when
                       unset)
  BENCH_SO_B           --so-b: another .so, for TARGET@b (an A/B in one
                       run, e.g. worker CPU per 10k before and after)
  BENCH_SOAK_REQUESTS  requests of --soak (default 1000000)
  BENCH_SOAK_CLIENTS   its connections (default 64)
  BENCH_SOAK_WORKERS   its nginx workers (default 1)
  BENCH_SOAK_BATCH     its saveitem_batch, on|off (default on)
  BENCH_SOAK_INTERVAL  seconds between RSS samples (default 1)
  BENCH_SOAK_MAX_SECONDS  its time bound (default 1800)
""" % (DEFAULT_TARGETS, PORT_BASE, PG_PORT, PGBOUNCER_PORT))

    p.add_argument("--quick", action="store_true",
                   help="short points (~5 minutes in all), for development")
    p.add_argument("--soak", action="store_true",
                   help="only the soak: module worker RSS over"
                   " BENCH_SOAK_REQUESTS requests")
    p.add_argument("--sync-commit", choices=["on", "off"],
                   default=env("BENCH_SYNC_COMMIT", "on"))
    p.add_argument("--targets", default=None)
    p.add_argument("--clients", default=None)
    p.add_argument("--duration", type=float, default=None)
    p.add_argument("--warmup", type=float, default=None)
    p.add_argument("--so", default=env("BENCH_SO", None),
                   help="the module .so (bench/run passes the one it built)")
    p.add_argument("--so-b", default=env("BENCH_SO_B", None),
                   metavar="SO",
                   help="another build of the module, for an A/B in one"
                   " run: a module target TARGET@b (e.g. --targets"
                   " module-batch-1w,module-batch-1w@b) runs with it")
    p.add_argument("--keep-pg", action="store_true",
                   help="leave the PostgreSQL cluster running")
    p.add_argument("--poison", type=int,
                   default=int(env("BENCH_POISON", "10")), metavar="N",
                   help="after a point of a module target (at the client"
                   " counts of --poison-clients), the same point again with"
                   " one document in N hostile for PostgreSQL: the row"
                   " (TARGET+poisonN) reports the innocent 2xx/s and its"
                   " ratio to the clean point (x clean), and counts the"
                   " poisoned 4xx (default 10; 0: none)")
    p.add_argument("--poison-clients", default=None, metavar="LIST",
                   help="the client counts with a poisoned point (default"
                   " 64; all: every count)")
    p.add_argument("--poison-kind", choices=POISON_KINDS, default="check",
                   help="check: {\"poison\": true}, refused by a CHECK"
                   " constraint added to items (23514, 422); numeric:"
                   " {\"x\": 1e200000}, beyond jsonb's numeric (22003,"
                   " 400) (default check)")

    a = p.parse_args()

    a.targets = [t.strip() for t in
                 (a.targets or env("BENCH_TARGETS", DEFAULT_TARGETS))
                 .split(",") if t.strip()]
    a.clients = [int(c) for c in
                 (a.clients or env("BENCH_CLIENTS", "1,16,64,256"))
                 .split(",") if c.strip()]
    if a.duration is None:
        a.duration = float(env("BENCH_DURATION", "2" if a.quick else "12"))
    if a.warmup is None:
        a.warmup = float(env("BENCH_WARMUP", "1" if a.quick else "4"))

    a.threads = int(env("BENCH_THREADS", "1"))
    a.wrk_timeout = int(env("BENCH_WRK_TIMEOUT", "10"))
    a.db_opts = env("BENCH_DATABASE_OPTS", "")
    a.nobatch_db_opts = env("BENCH_NOBATCH_DATABASE_OPTS", "pool=32")
    a.nginx_extra = env("BENCH_NGINX_EXTRA", "")
    a.nginx_http_extra = env("BENCH_NGINX_HTTP_EXTRA", "")
    a.peer_procs = int(env("BENCH_PEER_PROCS", str(NCPU)))
    a.flask_workers = int(env("BENCH_FLASK_WORKERS", str(2 * NCPU + 1)))
    a.peer_pool = int(env("BENCH_PEER_POOL", "8"))
    a.port_base = int(env("BENCH_PORT_BASE", str(PORT_BASE)))
    a.pg_port = int(env("BENCH_PG_PORT", str(PG_PORT)))
    a.pg_dir = env("BENCH_PG_DIR", "/tmp/saveitem-bench-pg-%d" % a.pg_port)
    a.pgbouncer_port = int(env("BENCH_PGBOUNCER_PORT", str(PGBOUNCER_PORT)))
    a.pgbouncer_pool = int(env("BENCH_PGBOUNCER_POOL", "8"))
    a.out = os.path.abspath(env("BENCH_OUT", os.path.join(BENCH, "out")))
    a.soak_requests = int(env("BENCH_SOAK_REQUESTS", "1000000"))
    a.soak_clients = int(env("BENCH_SOAK_CLIENTS", "64"))
    a.soak_workers = int(env("BENCH_SOAK_WORKERS", "1"))
    a.soak_batch = env("BENCH_SOAK_BATCH", "on") == "on"
    a.soak_interval = float(env("BENCH_SOAK_INTERVAL", "1"))
    a.soak_max = int(env("BENCH_SOAK_MAX_SECONDS", "1800"))

    if a.poison < 0 or a.poison == 1:
        p.error("--poison N: N >= 2 (0: none)")
    pc = a.poison_clients or env("BENCH_POISON_CLIENTS", "64")
    try:
        a.poison_clients = (set(a.clients) if pc.strip() == "all" else
                            {int(c) for c in pc.split(",") if c.strip()})
    except ValueError:
        p.error("--poison-clients: a list of client counts, or all")
    if a.soak or not a.poison_clients & set(a.clients):
        a.poison = 0
    for port in (a.pg_port, a.pgbouncer_port) + tuple(
            range(a.port_base, a.port_base + 5)):
        if port in (lib.port("run-pg"), lib.port("test-nginx"),
                    lib.port("testnginx-default")):
            p.error("port %d belongs to the test suite" % port)

    if a.so is None:
        p.error("no module .so: run bench/run, or set BENCH_SO")
    a.so = os.path.abspath(a.so)
    vars(a).update(so_features(a.so))
    if a.so_b:
        a.so_b = os.path.abspath(a.so_b)
        so_features(a.so_b)

    for t in a.targets:
        if t.endswith("@b") and not (a.so_b and module_workers(t)):
            p.error("target '%s': @b is for module targets, with --so-b" % t)
        if t not in tuple(PGBENCH) + tuple(PEERS) + HTTP_EXTRA \
           and not module_workers(t):
            p.error("unknown target '%s'" % t)

    return a


# HTTP targets besides module-<N>w, module-batch-<N>w, module-bulk-<N>w
# and the peers
HTTP_EXTRA = ("nginx-static", "module-pgbouncer")


def module_workers(target):
    """nginx workers of a target served by the module, 0 for the others"""
    target = base_target(target)
    if target == "module-pgbouncer":
        return 1
    m = re.fullmatch(r"module(-batch|-mapped|-bulk(?:-ndjson|-gzip|-zstd)?)?"
                     r"-(\d+)w", target)
    return int(m.group(2)) if m else 0


def bulk_coding(target):
    """module-bulk-{ndjson,gzip,zstd}-<N>w: NDJSON bodies, as they are or
    in that Content-Encoding (bench/bulk.lua); "" for the others"""
    m = re.fullmatch(r"module-bulk-(ndjson|gzip|zstd)-\d+w", target)
    return m.group(1) if m else ""


def bulk_docs(target):
    """documents per POST of a target: BULK_DOCS for module-bulk-<N>w"""
    return BULK_DOCS if target.startswith("module-bulk-") else 1


def base_target(target):
    """a target without its "@b" (the same, with --so-b's module)"""
    return target[:-2] if target.endswith("@b") else target


def so_features(path):
    """what a build of the module has, told by the strings in its .so"""
    with open(path, "rb") as f:
        so = f.read()
    return {"has_batch": b"saveitem_batch" in so, "has_bulk": b"bulk=" in so,
            "has_waits": b"saveitem_request_wait_seconds" in so,
            "has_decompress": b"saveitem_decompress" in so}


def for_target(a, target):
    """the options of a target: TARGET@b's have --so-b's module"""
    if not target.endswith("@b"):
        return a
    b = copy.copy(a)
    b.so = a.so_b
    vars(b).update(so_features(a.so_b))
    return b


# ------------------------------------------------------------- processes

def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def host_cpu():
    """(busy, total) jiffies of the whole machine"""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:8]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def children_ticks():
    """CPU ticks of our children waited for (wrk, pgbench, psql)"""
    r = os.times()
    return round((r.children_user + r.children_system) * CLK_TCK)


class Sample:
    """CPU of the server, PostgreSQL, the client and the whole machine,
    to tell what a point cost and how busy the rest of the machine was"""

    def __init__(self, db, srv=None):
        self.srv = srv.cpu_ticks() if srv else 0
        self.has_srv = srv is not None
        self.rss = srv.rss_kb() if srv else None
        self.db = db.cpu_ticks()
        self.client = children_ticks()
        self.host = host_cpu()
        self.t = time.monotonic()

    def delta(self, before):
        """seconds: server, database, client, others; the others' share of
        the machine"""
        srv = (self.srv - before.srv) / CLK_TCK
        db = (self.db - before.db) / CLK_TCK
        client = (self.client - before.client) / CLK_TCK
        busy = (self.host[0] - before.host[0]) / CLK_TCK
        wall = (self.host[1] - before.host[1]) / CLK_TCK
        other = max(0.0, busy - srv - db - client)
        return srv, db, client, other, other / wall if wall else 0.0

    def shares(self, before):
        """shares of the machine (all its cores) over the point: idle, and
        the CPU of the server, the database, the client (wrk, pgbench) and
        the other processes"""
        srv, db, client, other, _ = self.delta(before)
        busy = (self.host[0] - before.host[0]) / CLK_TCK
        wall = (self.host[1] - before.host[1]) / CLK_TCK
        if not wall:
            return {}
        return {"idle": (wall - busy) / wall,
                "srv_share": srv / wall if self.has_srv else None,
                "db_share": db / wall, "client_share": client / wall,
                "other_load": other / wall}


class Bench:
    """what the benchmark asks of a server, mixed into lib.Server and
    lib.Nginx (a server in a process group of its own: the group is its
    tree)"""

    def start(self):
        super().start(probe=self.smoke, timeout=30)
        # workers of pre-forking servers come up one after another
        time.sleep(1)

    def smoke(self):
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.port,
                                           timeout=5)
            c.request("POST", "/items", body='{"smoke": true}',
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            body = r.read()
            c.close()
        except OSError:
            return False

        if r.status != 200 or not re.fullmatch(rb'\{"pk": \d+\}\n', body):
            raise Failure("%s answers a valid document with %d %r" % (
                self.name, r.status, body[:200]))
        return True

    def cpu_ticks(self):
        return sum((lib.proc_stat(p) or (0, 0, 0, 0))[3]
                   for p in self.pids())

    def rss_kb(self):
        return sum(rss_kb(p) for p in self.workers())

    def stop(self):
        super().stop(steps=((signal.SIGTERM, 15),), group=True)


class Peer(Bench, lib.Server):
    """a Python peer"""


class Module(Bench, lib.Nginx):
    """the module in Debian's nginx"""


class BehindPgBouncer(Module):
    """the module talking to Debian's PgBouncer (util/pgbouncer.sh, pool
    mode transaction) in front of the bench cluster: started before
    nginx, stopped after it"""

    bouncer_env = None

    def test(self):
        # nginx -t checks the table through it: started first
        self.start_bouncer()
        try:
            super().test()
        except BaseException:
            self.stop_bouncer()
            raise

    def start(self):
        self.start_bouncer()
        try:
            super().start()
        except BaseException:
            self.stop_bouncer()
            raise

    def start_bouncer(self):
        """util/pgbouncer.sh start: a no-op when it runs already"""
        run(["bash", os.path.join(ROOT, "util", "pgbouncer.sh"), "start"],
            timeout=60, env=self.bouncer_env)

    def stop(self):
        try:
            super().stop()
        finally:
            self.stop_bouncer()

    def stop_bouncer(self):
        try:
            run(["bash", os.path.join(ROOT, "util", "pgbouncer.sh"), "stop"],
                timeout=60, env=self.bouncer_env)
        except Failure as e:
            say("stopping PgBouncer: %s" % e)



# -------------------------------------------------------------- database

class Database:

    def __init__(self, a):
        self.a = a
        self.pg = lib.Cluster(a.pg_port, a.pg_dir, SAVEITEM_PG_FSYNC="on")
        self.sock = self.pg.sock
        self.started = False

    def start(self):
        self.pg.pg_sh("start")
        self.started = True
        if self.a.sync_commit == "off":
            self.sql("ALTER DATABASE saveitem SET synchronous_commit = off")
        else:
            self.sql("ALTER DATABASE saveitem RESET synchronous_commit")
        self.version = self.sql("SHOW server_version").strip()
        self.settings = self.sql(
            "SELECT string_agg(name || '=' || setting, ' ' ORDER BY name)"
            " FROM pg_settings WHERE name IN ('synchronous_commit', 'fsync',"
            " 'full_page_writes', 'shared_buffers', 'max_connections')"
        ).strip()

    def stop(self):
        if self.started and not self.a.keep_pg:
            try:
                self.pg.pg_sh("stop")
            except Failure as e:
                say("stopping PostgreSQL: %s" % e)

    def cpu_ticks(self):
        """the postmaster and its children, the reaped ones included"""
        try:
            pids = self.pg.pids()
        except (OSError, ValueError):
            return 0
        return sum((lib.proc_stat(p) or (0, 0, 0, 0))[3] for p in pids)

    def conninfo(self):
        return self.pg.conninfo()

    def psql(self, args, stdin=None, timeout=300):
        return self.pg.psql(args=args, stdin=stdin, timeout=timeout)

    def sql(self, q):
        return self.pg.psql(q)

    def truncate(self):
        self.sql("TRUNCATE items")

    def count(self):
        return int(self.sql("SELECT count(*) FROM items").strip())

    def poison_constraint(self, on):
        """the CHECK constraint that refuses --poison-kind check's
        documents, added or removed"""
        self.sql("ALTER TABLE items DROP CONSTRAINT IF EXISTS"
                 " items_no_poison")
        if on:
            self.sql("ALTER TABLE items ADD CONSTRAINT items_no_poison"
                     " CHECK (NOT data ? 'poison')")

    def mapped_columns(self, on):
        """the typed columns of module-mapped-<N>w, for every target of
        the run (nullable: the others leave them NULL), or none"""
        if on:
            self.sql("ALTER TABLE items ADD COLUMN IF NOT EXISTS run text,"
                     " ADD COLUMN IF NOT EXISTS t int,"
                     " ADD COLUMN IF NOT EXISTS n bigint,"
                     " ADD COLUMN IF NOT EXISTS kind text,"
                     " ADD COLUMN IF NOT EXISTS ip inet")
        else:
            self.sql("ALTER TABLE items DROP COLUMN IF EXISTS run,"
                     " DROP COLUMN IF EXISTS t, DROP COLUMN IF EXISTS n,"
                     " DROP COLUMN IF EXISTS kind, DROP COLUMN IF EXISTS ip")

    def settle(self, limit=30):
        """wait until no statement runs and the row count stays put: a
        server may still work on requests whose clients left"""
        last = None
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            v = self.sql(
                "SELECT (SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = 'saveitem' AND state = 'active'"
                " AND pid <> pg_backend_pid()) || ' ' ||"
                " (SELECT count(*) FROM items)").split()
            if v[0] == "0" and v[1] == last:
                return
            last = v[1]
            time.sleep(0.3)
        say("the database did not settle in %ds" % limit)


# ------------------------------------------------------------ wrk, check

def read_summary(path):
    s = {"threads_": [], "status": {}}
    with open(path) as f:
        for line in f:
            w = line.split()
            if w[0] == "thread":
                s["threads_"].append({w[i]: int(w[i + 1])
                                      for i in range(0, len(w), 2)})
            elif w[0] == "status":
                code = int(w[1])
                s["status"][code] = s["status"].get(code, 0) + int(w[2])
            else:
                s[w[0]] = float(w[1])
    s["sent"] = sum(t["sent"] for t in s["threads_"])
    s["ok"] = sum(t["ok"] for t in s["threads_"])
    s["bad_body"] = sum(t["bad_body"] for t in s["threads_"])
    s["poisoned"] = sum(t.get("poisoned", 0) for t in s["threads_"])
    # bench/bulk.lua: sent and ok count documents, `docs` a request
    s["per_request"] = max([t.get("docs", 1) for t in s["threads_"]] or [1])
    return s


def wrk_argv(a, port, clients, seconds, tag, prefix, stop_after=0,
             poison=0, docs=1, coding=""):
    """docs > 1: bench/bulk.lua, arrays of that many documents (no
    poison)"""
    threads = max(1, min(a.threads, clients))

    for ext in (".pks", ".summary"):
        if os.path.exists(prefix + ext):
            os.unlink(prefix + ext)

    if docs > 1:
        script, args = "bulk.lua", [str(stop_after), str(docs)] + (
            [coding] if coding else [])
    else:
        script, args = "post.lua", [str(stop_after), str(poison),
                                    a.poison_kind]

    return ["wrk", "-t", str(threads), "-c", str(clients),
            "-d", "%ds" % math.ceil(seconds),
            "--timeout", "%ds" % a.wrk_timeout, "--latency",
            "-s", os.path.join(BENCH, script),
            "http://127.0.0.1:%d/items" % port,
            "--", tag, prefix] + args


def wrk_result(argv, out, prefix):
    with open(prefix + ".out", "w") as f:
        f.write(" ".join(argv) + "\n" + out)

    if not os.path.exists(prefix + ".summary"):
        raise Failure("wrk wrote no summary (%s.out)" % prefix)

    s = read_summary(prefix + ".summary")
    s["conns_per_thread"] = int(argv[4]) / int(argv[2])
    return s


def run_wrk(a, port, clients, seconds, tag, prefix, poison=0, docs=1,
            coding=""):
    argv = wrk_argv(a, port, clients, seconds, tag, prefix, poison=poison,
                    docs=docs, coding=coding)
    out = run(argv, timeout=seconds + a.wrk_timeout + 60)
    return wrk_result(argv, out, prefix)


CHECK_SQL = r"""
CREATE TEMP TABLE got (t int, n bigint, pk bigint, line bigserial);
CREATE TEMP TABLE sent (t int, sent bigint);
\copy got (t, n, pk) FROM '%(pks)s' (DELIMITER ' ')
\copy sent FROM '%(sent)s' (DELIMITER ' ')
CREATE TEMP TABLE mine AS
    SELECT id, data, (data->>'t')::int AS t, (data->>'n')::bigint AS n
    FROM items WHERE data->>'run' = :'tag';
SELECT json_build_object(
  'received', (SELECT count(*) FROM got),
  'distinct_pks', (SELECT count(DISTINCT pk) FROM got),
  'missing', (SELECT count(*) FROM got g
              WHERE NOT EXISTS (SELECT 1 FROM items i WHERE i.id = g.pk)),
  'not_theirs', (SELECT count(*) FROM got g JOIN items i ON i.id = g.pk
                 LEFT JOIN mine m ON m.id = g.pk
                 WHERE m.id IS NULL OR m.t <> g.t OR m.n > g.n),
  'not_exact', (SELECT count(*) FROM got g JOIN mine m ON m.id = g.pk
                WHERE m.n <> g.n),
  'out_of_order', (SELECT count(*) FROM (
                     SELECT 1 FROM got g JOIN mine m ON m.id = g.pk
                     GROUP BY (g.line - 1) / :docs
                     HAVING count(DISTINCT g.n - m.n) > 1) o),
  'rows', (SELECT count(*) FROM mine),
  'rows_total', (SELECT count(*) FROM items),
  'bad_doc', (SELECT count(*) FROM (
                SELECT data, '{"run":"' || :'tag' || '","t":' || t
                       || ',"n":' || n || ',"kind":"bench","pad":"' AS h
                FROM mine) d
              WHERE data <> (h || repeat('x', 200 - length(h) - 2)
                             || '"}')::jsonb),
  'dup_docs', (SELECT count(*) FROM (SELECT 1 FROM mine GROUP BY t, n
                                     HAVING count(*) > 1) d),
  'over_sent', (SELECT count(*) FROM (SELECT t, count(*) AS c FROM mine
                                      GROUP BY t) r
                LEFT JOIN sent s USING (t)
                WHERE s.sent IS NULL OR r.c > s.sent)
);
"""


def check(db, tag, prefix, s, sent_before, connections):
    """nothing lost, nothing invented, and with bulk.lua every answer's pks
    in its documents' order; returns (ok, facts, problems). s["sent"] and
    s["ok"] count documents: requests with post.lua, s["per_request"] a
    request with bulk.lua"""
    with open(prefix + ".sent", "w") as f:
        for t in s["threads_"]:
            f.write("%d %d\n" % (t["thread"], t["sent"]))

    out = db.psql(["-v", "tag=" + tag, "-v", "docs=%d" % s["per_request"]],
                  stdin=CHECK_SQL % {"pks": prefix + ".pks",
                                     "sent": prefix + ".sent"})
    r = json.loads(out.strip().splitlines()[-1])
    p = []

    if r["received"] != s["ok"]:
        p.append("%d pks in the file, %d 2xx answers with a pk" % (
            r["received"], s["ok"]))
    if s["bad_body"]:
        p.append("%d 2xx answers without a pk (%d documents: as many pks)"
                 % (s["bad_body"], s["per_request"]))
    if r["distinct_pks"] != r["received"]:
        p.append("%d pks received twice" % (
            r["received"] - r["distinct_pks"]))
    if r["missing"]:
        p.append("%d pks received have no row" % r["missing"])
    if r["not_theirs"]:
        p.append("%d pks received are rows of another client's document"
                 % r["not_theirs"])
    if s["conns_per_thread"] == 1 and r["not_exact"]:
        p.append("%d pks received are rows of another request of the"
                 " same connection" % r["not_exact"])
    # bulk: the file holds an answer's pks as per_request lines in a row,
    # paired with the documents of one request, in order; whichever
    # request it answered, its rows' n must be theirs shifted by one offset
    if r["out_of_order"]:
        p.append("%d answers' pks are not their documents' in element order"
                 % r["out_of_order"])
    if r["bad_doc"]:
        p.append("%d rows do not hold the document sent" % r["bad_doc"])
    if r["dup_docs"]:
        p.append("%d documents stored twice" % r["dup_docs"])
    if r["over_sent"] or r["rows"] > s["sent"]:
        p.append("%d rows, %d documents sent (%d threads over)" % (
            r["rows"], s["sent"], r["over_sent"]))
    # a row nobody got a pk for: a request in flight when wrk stopped (one
    # per connection at most), or one whose answer was an error that may
    # have stored (5xx) or was lost (a socket error); each of its
    # per_request documents
    maybe = s["per_request"] * (connections + sum(
        int(s["errors_" + k]) for k in ("read", "write", "timeout")) + sum(
        n for code, n in s["status"].items() if code >= 500))
    if r["rows"] - r["received"] > maybe:
        p.append("%d rows without a pk received, at most %d can be"
                 " explained (in flight at the end, 5xx, socket errors)"
                 % (r["rows"] - r["received"], maybe))
    if r["rows_total"] > s["sent"] + sent_before:
        p.append("%d rows in the table, %d documents sent since it was"
                 " truncated" % (r["rows_total"], s["sent"] + sent_before))

    return not p, r, p


# --------------------------------------------------------------- targets

def worker_user(workdir):
    """as root, workers run as nobody unless nobody cannot enter workdir"""
    if os.geteuid() != 0:
        return ""
    r = subprocess.run(["runuser", "-u", "nobody", "--", "test", "-x",
                        workdir], capture_output=True)
    return "" if r.returncode == 0 else "user  root;"


# the module's saveitem_status, in each module target's server
STATUS_URI = "/saveitem-status"

# the sums and counts read from it: (key, metric, labels after database=)
STATUS_SERIES = [
    ("queued", "saveitem_request_wait_seconds", ',stage="queued"'),
    ("held", "saveitem_request_wait_seconds", ',stage="held"'),
    ("in_flight", "saveitem_request_wait_seconds", ',stage="in_flight"'),
    ("answering", "saveitem_request_wait_seconds", ',stage="answering"'),
    ("request", "saveitem_request_seconds", ""),
    ("rows", "saveitem_statement_rows", ""),
]


def module_status(port):
    """{key: (sum, count)} of STATUS_SERIES, summed over databases, from
    the module's status page; None when unreadable"""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", STATUS_URI)
        r = c.getresponse()
        body = r.read().decode()
        c.close()
    except OSError:
        return None
    if r.status != 200:
        return None
    got = {}
    for key, name, labels in STATUS_SERIES:
        v = []
        for part in ("sum", "count"):
            pat = r'^%s_%s\{database="(?:[^"\\]|\\.)*"%s\} (\S+)$' % (
                name, part, re.escape(labels))
            v.append(sum(float(x) for x in re.findall(pat, body, re.M)))
        got[key] = tuple(v)
    return got


def waits(before, after):
    """the means of a point from two readings of module_status: each
    stage's and the whole wait in ms, rows per statement"""
    if not before or not after:
        return {}
    r = {}
    for key, _, _ in STATUS_SERIES:
        total = after[key][0] - before[key][0]
        n = after[key][1] - before[key][1]
        if n > 0:
            r["wait_" + key if key != "rows" else "rows_per_statement"] = (
                total / n * (1 if key == "rows" else 1000.0))
    return r


def module_server(a, db, workdir, workers, batch, status_port=None,
                  db_opts=None, conninfo=None, location=None, cls=None,
                  test=True, bulk=0):
    """the module's nginx, its conf written into workdir and tested;
    location: the body of location = /items instead of the module's;
    bulk: `saveitem items bulk=N;`, and a body buffer that holds N
    documents (nginx's default, 16k, would write each to a temp file)"""
    extra = a.nginx_extra
    if a.has_batch:
        extra = "saveitem_batch %s; %s" % ("on" if batch else "off", extra)
    if bulk:
        extra = "client_body_buffer_size  %dk;\n            %s" % (
            (bulk * 256 + 1023) // 1024, extra)
    waits = ""
    if location is None or location.startswith("saveitem "):
        if location is None:
            location = "saveitem  items%s;\n            %s" % (
                " bulk=%d" % bulk if bulk else "", extra)
        if a.has_waits:
            waits = """

        location = %s {
            saveitem_status;
        }""" % STATUS_URI
    status = ""
    if status_port:
        status = """
    server {
        listen 127.0.0.1:%d;
        location = /status { stub_status; }
    }""" % status_port

    http = """
    access_log  off;

    saveitem_database  "%(conninfo)s" %(db_opts)s;
    %(http_extra)s

    server {
        listen  127.0.0.1:%(port)d;

        location = /items {
            %(location)s
        }%(waits)s
    }%(status)s""" % dict(conninfo=conninfo or db.conninfo(),
                          db_opts=a.db_opts if db_opts is None else db_opts,
                          http_extra=a.nginx_http_extra, port=a.port_base,
                          location=location, waits=waits, status=status)

    srv = (cls or Module)(workdir, a.port_base)
    srv.write(lib.nginx_conf(workdir, a.so, http, workers=workers,
                             main="worker_rlimit_nofile  8192;\n"
                             + worker_user(workdir),
                             connections=4096, level="notice"),
              fresh=False)
    if test:
        srv.test()
    return srv


def make_server(a, db, target, workdir):
    target = base_target(target)
    os.makedirs(workdir, exist_ok=True)
    peers = os.path.join(BENCH, "peers")
    penv = dict(os.environ, BENCH_PG_SOCKET=db.sock,
                BENCH_PG_PORT=str(a.pg_port), BENCH_POOL=str(a.peer_pool),
                BENCH_PROCS=str(a.peer_procs))

    if target == "nginx-static":
        # the HTTP limit: the same POSTs, the body read, a fixed answer
        return module_server(
            a, db, workdir, 1, False, db_opts="",
            location="default_type  application/json;\n"
            "            client_body_buffer_size  16k;\n"
            "            return  200 '{\"pk\": 1}\\n';")

    if target == "module-pgbouncer":
        srv = module_server(
            a, db, workdir, 1, True, db_opts=a.db_opts + " prepare=off",
            conninfo="host=127.0.0.1 port=%d dbname=saveitem user=postgres"
            % a.pgbouncer_port, cls=BehindPgBouncer, test=False)
        srv.bouncer_env = dict(
            os.environ, SAVEITEM_PGBOUNCER_PORT=str(a.pgbouncer_port),
            SAVEITEM_PGBOUNCER_DIR="/tmp/saveitem-bench-pgbouncer-%d"
            % a.pgbouncer_port,
            SAVEITEM_PGBOUNCER_POOL=str(a.pgbouncer_pool),
            SAVEITEM_PG_PORT=str(a.pg_port), SAVEITEM_PG_DIR=a.pg_dir)
        srv.test()
        return srv

    w = module_workers(target)
    if w:
        # module-bulk-<N>w: group commit's configuration (a bulk body is a
        # statement of its own), the location with bulk=
        batch = target.startswith(("module-batch-", "module-bulk-",
                                   "module-mapped-"))
        docs = bulk_docs(target)
        if target.startswith("module-mapped-"):
            return module_server(
                a, db, workdir, w, True, db_opts=a.db_opts,
                location="saveitem  items;\n"
                "            saveitem_field  run;\n"
                "            saveitem_field  t;\n"
                "            saveitem_field  n;\n"
                "            saveitem_field  kind;\n"
                "            saveitem_value  ip  $remote_addr;\n"
                "            " + ("saveitem_batch on; " if a.has_batch else "")
                + a.nginx_extra)
        return module_server(a, db, workdir, w, batch,
                             db_opts=a.db_opts or ("" if batch
                                                   else a.nobatch_db_opts),
                             bulk=docs if docs > 1 else 0)

    port = a.port_base + PEERS[target][2]
    bind = "127.0.0.1:%d" % port

    if target == "flask":
        argv = ["/usr/bin/gunicorn", "-k", "sync",
                "-w", str(a.flask_workers), "-b", bind, "--backlog", "4096",
                "--chdir", peers, "flask_peer:app"]
    elif target == "aiohttp":
        argv = ["/usr/bin/gunicorn", "-k", "aiohttp.GunicornUVLoopWebWorker",
                "-w", str(a.peer_procs), "-b", bind, "--backlog", "4096",
                "--chdir", peers, "aiohttp_peer:make_app"]
    else:
        penv["BENCH_PORT"] = str(port)
        argv = [PY, os.path.join(peers, "tornado_peer.py")]

    return Peer(target, argv, port, os.path.join(workdir, target + ".log"),
                env=penv, cwd=peers)


def peer_missing(target):
    """the Debian packages a peer lacks, [] when it can run"""
    mods, pkgs, _ = PEERS[target]
    lacking = [p for p in pkgs if subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", p], capture_output=True,
        text=True).stdout != "install ok installed"]
    if lacking:
        return lacking
    r = subprocess.run([PY, "-c", "import " + ", ".join(mods)],
                       capture_output=True, text=True)
    return [] if r.returncode == 0 else ["(import: %s)" % r.stderr.strip()
                                         .splitlines()[-1]]


def pct(values, q):
    if not values:
        return 0.0
    values.sort()
    return values[min(len(values) - 1, int(len(values) * q / 100.0))]


def warm_pgbench(a, db, clients, workdir, target):
    """the warm-up; returns the seconds pgbench took to connect (doubling
    the warm-up, at most 6 times, while no transaction ended in it: on a
    busy machine a connection took 45 ms here, 256 of them 12 s)"""
    seconds = max(a.warmup, 1)
    for _ in range(6):
        connect = run_pgbench(a, db, clients, seconds, workdir,
                              target=target)["connect"]
        if connect is not None:
            return connect
        seconds *= 2
    raise Failure("pgbench: no transaction in %gs of warm-up at %d clients"
                  % (seconds, clients))


def run_pgbench(a, db, clients, seconds, workdir, log=False,
                target="pgbench", connect=0.0):
    """a pgbench point; rps: rows per second (transactions x rows).
    pgbench's -T counts from before its clients connect (45 ms each on a
    busy machine here), and each new backend's first transactions are
    slow (cold caches, the statement prepared): unlike the servers, whose
    connections outlive the warm-up, pgbench's do not.  So the measured run
    is one pgbench of connect (seconds, measured by the warm-up) + warm-up
    + seconds, and its rate and latencies are taken from its per
    transaction log over the last `seconds` before -T expired (after it,
    the clients that still wait end slowly, one by one: 40 tps at 256
    clients, a tail that is not the database's rate)."""
    script, nrows = PGBENCH[target]
    prefix = os.path.join(workdir, "pgb-c%d" % clients)
    for f in os.listdir(workdir):
        if f.startswith("pgb-c%d." % clients):
            os.unlink(os.path.join(workdir, f))

    total = seconds + (1.5 * connect + a.warmup if log else 0)
    argv = [os.path.join(PG_BIN, "pgbench"), "-n", "-M", "prepared",
            "-c", str(clients), "-j", str(max(1, min(a.threads, clients))),
            "-T", str(math.ceil(total)),
            "-f", os.path.join(BENCH, script),
            "-h", db.sock, "-p", str(a.pg_port), "-U", "postgres"]
    if log:
        argv += ["-l", "--log-prefix", prefix]
    t_launch = time.time()
    out = run(argv + ["saveitem"], timeout=total + 120)

    # not printed when no transaction ended in -T
    conn = re.search(r"initial connection time = ([\d.]+) ms", out)
    conn = float(conn.group(1)) / 1000.0 if conn else None
    if not log:
        return {"connect": conn}        # a warm-up
    failed = re.search(r"number of failed transactions: (\d+)", out)
    done = re.search(r"actually processed: (\d+)", out)

    # "client tx latency_us script epoch_s epoch_us" per transaction
    ends = []
    for f in os.listdir(workdir):
        if f.startswith("pgb-c%d." % clients):
            with open(os.path.join(workdir, f)) as fh:
                for line in fh:
                    w = line.split()
                    ends.append((int(w[4]) + int(w[5]) / 1e6, int(w[2])))
            os.unlink(os.path.join(workdir, f))
    with open(prefix + ".out", "w") as f:
        f.write(" ".join(argv) + "\n" + out)
    if not ends:
        raise Failure("pgbench ended no transaction:\n%s" % out[-800:])
    ends.sort()
    last = t_launch + math.ceil(total)      # -T expired (about)
    if ends[0][0] > last - seconds:
        raise Failure("pgbench ran transactions for %.1fs only, %gs wanted"
                      % (last - ends[0][0], seconds))
    lat = [l for t, l in ends if last - seconds < t <= last]

    return {"rps": len(lat) * nrows / seconds, "p50": pct(lat, 50) / 1000.0,
            "p99": pct(lat, 99) / 1000.0,
            "non2xx": int(failed.group(1)) if failed else 0,
            "requests": len(lat),
            "processed": int(done.group(1)) if done else 0,
            "rows_expected": nrows * int(done.group(1)) if done else None}


def check_static(db, tag, s):
    """nginx-static: every answer the fixed pk, and no row"""
    p = []
    if s["bad_body"]:
        p.append("%d 2xx answers without a pk" % s["bad_body"])
    rows = int(db.sql("SELECT count(*) FROM items WHERE data->>'run' = '%s'"
                      % tag).strip())
    if rows:
        p.append("%d rows stored without a database in the path" % rows)
    return not p, {"rows": rows, "received": s["ok"]}, p


def check_poison(s, clients):
    """a poisoned point: the poisoned documents, and only they, were
    refused with a 4xx (422 for the CHECK constraint, 400 for a number
    beyond jsonb's)"""
    p = []
    refused = sum(n for code, n in s["status"].items() if 400 <= code < 500)
    other = {code: n for code, n in s["status"].items()
             if not (200 <= code < 300 or 400 <= code < 500)}
    if other:
        p.append("statuses other than 2xx and 4xx: %s" % other)
    if refused > s["poisoned"]:
        p.append("%d answers 4xx, %d documents poisoned: innocent ones"
                 " refused" % (refused, s["poisoned"]))
    # the poisoned requests in flight at the end get no answer
    if s["poisoned"] - refused > clients + 1:
        p.append("%d documents poisoned, %d refused" % (s["poisoned"],
                                                         refused))
    return p, refused


def measure_point(a, db, srv, target, clients, workdir, run_id, poison=0):
    """one (target, clients) point of an HTTP server; poison: one document
    in `poison` is refused by PostgreSQL. A bulk target's rps and CPU per
    10k count documents, not answers."""
    docs = bulk_docs(target)
    coding = bulk_coding(target)
    suffix = "-poison%d" % poison if poison else ""
    base = "%s-%s-c%d%s" % (run_id, target, clients, suffix)
    prefix = os.path.join(workdir, "c%d%s" % (clients, suffix))

    db.truncate()
    sent_before = 0
    if a.warmup > 0:
        w = run_wrk(a, srv.port, clients, a.warmup, base + "-w",
                    prefix + "-warmup", poison=poison, docs=docs,
                    coding=coding)
        sent_before = w["sent"]
        db.settle()

    reading = a.has_waits and module_workers(target)
    st0 = module_status(srv.port) if reading else None
    s0 = Sample(db, srv)
    s = run_wrk(a, srv.port, clients, a.duration, base + "-m", prefix,
                poison=poison, docs=docs, coding=coding)
    s1 = Sample(db, srv)
    st1 = module_status(srv.port) if reading else None
    cpu, dbcpu, client, other, share = s1.delta(s0)

    db.settle()
    if target == "nginx-static":
        ok, facts, problems = check_static(db, base + "-m", s)
    else:
        ok, facts, problems = check(db, base + "-m", prefix, s, sent_before,
                                    clients)
    if target.startswith("module-mapped-"):
        # the typed columns hold what the document says, and the address
        bad = int(db.sql(
            "SELECT count(*) FROM items WHERE data->>'run' = '%s-m' AND"
            " (run IS DISTINCT FROM data->>'run'"
            " OR t IS DISTINCT FROM (data->>'t')::int"
            " OR n IS DISTINCT FROM (data->>'n')::bigint"
            " OR kind IS DISTINCT FROM data->>'kind'"
            " OR ip IS DISTINCT FROM '127.0.0.1')" % base).strip())
        if bad:
            problems.append("%d rows whose typed columns do not hold their"
                            " document's values" % bad)
            ok = False
    refused = None
    if poison:
        more, refused = check_poison(s, clients)
        problems += more
        ok = not problems

    secs = s["duration_us"] / 1e6
    # answers, or for a bulk target the documents they answered for
    answered = max(1, int(s["requests"]) * s["per_request"])
    non2xx = sum(n for code, n in s["status"].items()
                 if not 200 <= code < 300)
    sock = sum(int(s["errors_" + k]) for k in
               ("connect", "read", "write", "timeout"))

    return dict({
        "target": target + ("+poison%d" % poison if poison else ""),
        "clients": clients, "poisoned": s["poisoned"] if poison else None,
        "refused": refused,
        "rps": s["ok"] / secs if secs else 0.0,
        "p50": s["latency_p50_us"] / 1000.0,
        "p99": s["latency_p99_us"] / 1000.0,
        "non2xx": non2xx, "socket_errors": sock,
        "cpu_per_10k": cpu * 10000.0 / answered,
        "db_cpu_per_10k": dbcpu * 10000.0 / answered,
        "client_cpu_per_10k": client * 10000.0 / answered,
        "rss_before_mb": s0.rss / 1024.0, "rss_after_mb": s1.rss / 1024.0,
        "other_load": share,
        "requests": int(s["requests"]), "sent": s["sent"],
        "rows": facts["rows"], "received": facts["received"],
        "statuses": {str(k): v for k, v in sorted(s["status"].items())},
        "check": "ok" if ok else "FAILED", "problems": problems,
    }, **s1.shares(s0), **waits(st0, st1))


def error_log_summary(path, limit=8):
    """counts per level and the first distinct lines of an nginx log, and
    the module's notices of rows per statement (at worker exit)"""
    counts, first, stats = {}, [], []
    seen = set()
    try:
        with open(path, errors="replace") as f:
            for line in f:
                m = re.search(r"\[(\w+)\] \d+#\d+: (?:\*\d+ )?(.*)", line)
                if m and re.match(r"saveitem: \d+ rows in", m.group(2)):
                    stats.append(m.group(2))
                if not m or m.group(1) in ("notice", "info", "debug"):
                    continue
                counts[m.group(1)] = counts.get(m.group(1), 0) + 1
                key = re.sub(r"\d+", "N", m.group(2))[:120]
                if key not in seen and len(first) < limit:
                    seen.add(key)
                    first.append(line.rstrip())
    except OSError:
        pass
    return counts, first, stats


# ---------------------------------------------------------------- report

COLS = [("target", "target", "%s"), ("clients", "clients", "%d"),
        ("req/s", "rps", "%.0f"), ("p50 ms", "p50", "%.2f"),
        ("p99 ms", "p99", "%.2f"), ("non-2xx", "non2xx", "%d"),
        ("sock err", "socket_errors", "%d"),
        ("x ceiling", "ratio", "%.2f"), ("x clean", "x_clean", "%.2f"),
        ("x http", "x_http", "%.2f"),
        ("CPU s/10k", "cpu_per_10k", "%.2f"),
        ("RSS MB before", "rss_before_mb", "%.1f"),
        ("RSS MB after", "rss_after_mb", "%.1f"),
        ("db CPU s/10k", "db_cpu_per_10k", "%.2f"),
        ("others", "other_load", "%.0f%%"), ("idle", "idle", "%.0f%%"),
        ("check", "check", "%s")]

# where the time went: the machine's CPU by process, and for the module
# the mean of each stage of a request's wait (saveitem_status)
COLS_TIME = [("target", "target", "%s"), ("clients", "clients", "%d"),
             ("idle", "idle", "%.0f%%"), ("server", "srv_share", "%.0f%%"),
             ("db", "db_share", "%.0f%%"), ("load", "client_share", "%.0f%%"),
             ("others", "other_load", "%.0f%%"),
             ("CPU s/10k", "cpu_per_10k", "%.2f"),
             ("queued ms", "wait_queued", "%.3f"),
             ("held ms", "wait_held", "%.3f"),
             ("in flight ms", "wait_in_flight", "%.3f"),
             ("answering ms", "wait_answering", "%.3f"),
             ("request ms", "wait_request", "%.3f"),
             ("rows/stmt", "rows_per_statement", "%.1f")]

SHARES = ("other_load", "idle", "srv_share", "db_share", "client_share")


def cell(row, key, fmt):
    v = row.get(key)
    if v is None or v == "":
        return "-"
    if key in SHARES:
        return fmt % (100 * v)
    return fmt % v


LEGEND = """\
req/s: 2xx answers per second (pgbench: rows, one a transaction;
pgbench-multi: rows, 16 a transaction; module-bulk-Nw: documents, %(bulk)d a
request, so documents/s (-ndjson, -gzip, -zstd: as NDJSON, plain or
compressed by wrk); TARGET+poisonN: the innocent documents' 2xx, one
document in N refused); p50/p99: latency (module-bulk: of a whole request);
non-2xx: answers with another status (pgbench: failed transactions); sock
err: wrk's connect+read+write+timeout errors; x ceiling: req/s over
pgbench's at the same client count; x clean: a poisoned point's req/s over
the clean point just before it; x http: req/s over nginx-static's at the
same client count (the HTTP limit: nginx answering without a database,
measured earlier in the run; put nginx-static before the module targets);
CPU s/10k: CPU seconds of the server's
processes per 10,000 answers (module-bulk: documents); RSS: the server's
workers, summed, before and after the measured run; db CPU s/10k:
PostgreSQL's processes; others: CPU used by processes outside the benchmark,
share of the machine; idle: the machine's idle share (all its cores) over
the point; check: every pk received is a distinct row holding a
document the same wrk thread sent, no more rows than documents sent, and no
more rows without a pk than documents in flight at the end, 5xx and socket
errors (pgbench: its transactions' rows, exactly; nginx-static: the fixed
pk, no row; poisoned: 4xx only for the poisoned documents, none of them
stored)."""


LEGEND = LEGEND % {"bulk": BULK_DOCS}


LEGEND_TIME = """\
Where the time went, each point: idle, server, db, load, others: shares of
the machine (all its cores, /proc/stat) over the measured run: idle, the
server's processes (nginx's master and workers, or a peer's), PostgreSQL's,
the load generator's (wrk; pgbench), everything else (/proc/PID/stat); CPU
s/10k: the server's CPU seconds per 10,000 answers (module-bulk:
documents); queued, held, in flight, answering, request: the module's mean
wait per request answered in the run (saveitem_status before and after it:
_sum / _count of saveitem_request_wait_seconds by stage, and of
saveitem_request_seconds): from the body read to the statement handed to
libpq, queued (no connection free) or held (by the hold rule, for a fuller
batch), in flight to its result read, answering to its answer written (the
requests of the same result answered first); rows/stmt: rows per INSERT statement
(saveitem_statement_rows)."""


def table_text(rows, cols=COLS):
    cells = [[h for h, _, _ in cols]]
    cells += [[cell(r, k, f) for _, k, f in cols] for r in rows]
    width = [max(len(c[i]) for c in cells) for i in range(len(cols))]
    lines = []
    for n, c in enumerate(cells):
        lines.append("  ".join(
            c[i].ljust(width[i]) if i == 0 else c[i].rjust(width[i])
            for i in range(len(c))))
        if n == 0:
            lines.append("  ".join("-" * w for w in width))
    return "\n".join(lines)


def table_md(rows, cols=COLS):
    lines = ["| " + " | ".join(h for h, _, _ in cols) + " |",
             "|" + "|".join(" --- " if i == 0 else " ---: "
                            for i in range(len(cols))) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(cell(r, k, f) for _, k, f in cols)
                     + " |")
    return "\n".join(lines)


def write_csv(path, rows):
    keys = ["target", "clients", "rps", "p50", "p99", "non2xx",
            "socket_errors", "ratio", "x_clean", "x_http", "poisoned", "refused",
            "cpu_per_10k", "rss_before_mb",
            "rss_after_mb", "db_cpu_per_10k", "client_cpu_per_10k",
            "other_load", "idle", "srv_share", "db_share", "client_share",
            "wait_queued", "wait_held", "wait_in_flight", "wait_answering",
            "wait_request", "rows_per_statement", "requests", "sent", "rows",
            "received", "check", "statuses", "problems"]
    with open(path, "w") as f:
        f.write(",".join(keys) + "\n")
        for r in rows:
            vals = []
            for k in keys:
                v = r.get(k)
                if v is None:
                    v = ""
                elif isinstance(v, float):
                    v = "%.4g" % v if k == "ratio" else "%.3f" % v
                elif isinstance(v, (dict, list)):
                    v = json.dumps(v)
                v = str(v)
                if any(ch in v for ch in ',"\n'):
                    v = '"' + v.replace('"', '""') + '"'
                vals.append(v)
            f.write(",".join(vals) + "\n")


def plot(outdir, rows, title):
    targets = []
    for r in rows:
        if r.get("rps") is not None and r["target"] not in targets:
            targets.append(r["target"])
    if not targets or not shutil.which("gnuplot"):
        return None

    plots = []
    for t in targets:
        data = os.path.join(outdir, "plot-%s.dat" % t)
        with open(data, "w") as f:
            for r in rows:
                if r["target"] == t and r.get("rps") is not None:
                    f.write("%d %.1f\n" % (r["clients"], r["rps"]))
        dash = " dt 2" if t == "pgbench" else ""
        plots.append("'%s' using 1:2 with linespoints lw 2%s title '%s'"
                     % (data, dash, t))

    png = os.path.join(outdir, "reqs.png")
    gp = os.path.join(outdir, "plot.gp")
    clients = sorted({r["clients"] for r in rows})
    with open(gp, "w") as f:
        f.write("""set terminal pngcairo size 960,600 noenhanced
set output '%s'
set title '%s'
set xlabel 'clients (connections)'
set ylabel 'requests per second (2xx)'
set logscale x 2
set xrange [%g:%g]
set xtics (%s)
set yrange [0:*]
set grid
set key outside right
plot %s
""" % (png, title.replace("'", ""), clients[0] / 1.5,
       clients[-1] * 1.5,
       ", ".join('"%d" %d' % (c, c) for c in clients),
       ", \\\n     ".join(plots)))
    r = subprocess.run(["gnuplot", gp], capture_output=True, text=True,
                       timeout=60)
    if r.returncode != 0:
        say("gnuplot failed: %s" % r.stderr.strip())
        return None
    return png


# ------------------------------------------------------------------ main

def header(a, db, mode):
    lines = [
        "saveitem benchmark (%s), %s" % (
            mode, datetime.datetime.now().strftime("%Y-%m-%d %H:%M")),
        "machine: %d cores, load average %s at start" % (
            NCPU, open("/proc/loadavg").read().split()[0]),
        "nginx: %s; module: %s%s" % (
            subprocess.run([NGINX, "-v"], capture_output=True, text=True)
            .stderr.strip().split("/")[-1], a.so,
            "; TARGET@b: %s" % a.so_b if a.so_b else ""),
        "PostgreSQL %s over a unix socket: %s" % (db.version, db.settings),
    ]

    if a.soak:
        lines.append("soak: %d requests over %d connections, wrk threads %d,"
                     " %d nginx worker(s), saveitem_batch %s, RSS sampled"
                     " every %gs" % (
                         a.soak_requests, a.soak_clients, a.threads,
                         a.soak_workers,
                         ("on" if a.soak_batch else "off") if a.has_batch
                         else "(none)", a.soak_interval))
    else:
        lines.append("points: %gs warm-up + %gs measured; wrk/pgbench"
                     " threads %d; wrk --timeout %ds" % (
                         a.warmup, a.duration, a.threads, a.wrk_timeout))

    if a.poison and not a.soak:
        lines.append("poison: each module point at %s clients again with"
                     " one document in %d refused by PostgreSQL (%s)%s" % (
                         ", ".join(str(c) for c in sorted(a.poison_clients
                                                          & set(a.clients))),
                         a.poison, a.poison_kind,
                         "; items has CHECK (NOT data ? 'poison') for every"
                         " target" if a.poison_kind == "check" else ""))
    if "module-pgbouncer" in a.targets and not a.soak:
        lines.append("module-pgbouncer: PgBouncer %s on port %d, pool_mode"
                     " transaction, default_pool_size %d; prepare=off" % (
                         pgbouncer_version(), a.pgbouncer_port,
                         a.pgbouncer_pool))
    lines.append("module: saveitem_database \"...\" %s; location extra: %s;"
                 " http extra: %s" % (a.db_opts or "(pool defaults)",
                                      a.nginx_extra or "-",
                                      a.nginx_http_extra or "-"))

    if not a.soak:
        lines.append("peers: %d aiohttp/tornado processes, %d gunicorn sync"
                     " workers, %d database connections per process" % (
                         a.peer_procs, a.flask_workers, a.peer_pool))

    return "\n".join(lines)


def pgbouncer_version():
    try:
        return run(["/usr/sbin/pgbouncer", "--version"],
                   timeout=10).split()[1]
    except (Failure, OSError, IndexError):
        return "(not installed)"


def bench(a, db, outdir, run_id):
    rows, notes, failed = [], [], False
    ceiling, http = {}, {}

    for target in a.targets:
        workdir = os.path.join(outdir, target)
        os.makedirs(workdir, exist_ok=True)

        if target in PGBENCH:
            say("%s: clients %s" % (target, a.clients))
            try:
                for c in a.clients:
                    db.truncate()
                    connect = warm_pgbench(a, db, c, workdir, target)
                    before = db.count()
                    s0 = Sample(db)
                    p = run_pgbench(a, db, c, a.duration, workdir, log=True,
                                    target=target, connect=connect)
                    s1 = Sample(db)
                    _, dbcpu, client, _, share = s1.delta(s0)
                    # CPU over the whole run: per transaction of the run
                    n = p["processed"] or 1
                    # every transaction pgbench counted is its rows
                    stored = db.count() - before
                    problems = [] if stored == p["rows_expected"] else [
                        "%d rows stored, pgbench counted %d transactions"
                        " of %d rows" % (stored, p["processed"],
                                         PGBENCH[target][1])]
                    if target == "pgbench":
                        ceiling[c] = p["rps"]
                    rows.append({"target": target, "clients": c,
                                 "rps": p["rps"], "p50": p["p50"],
                                 "p99": p["p99"], "non2xx": p["non2xx"],
                                 "socket_errors": None,
                                 "ratio": (p["rps"] / ceiling[c]
                                           if ceiling.get(c) else None),
                                 "db_cpu_per_10k": dbcpu * 10000.0 / n,
                                 "client_cpu_per_10k": client * 10000.0 / n,
                                 "other_load": share,
                                 "requests": p["requests"], "rows": stored,
                                 "check": "FAILED" if problems else "ok",
                                 "problems": problems})
                    rows[-1].update(s1.shares(s0))
                    say("  %s" % table_text(rows[-1:]).splitlines()[-1])
                    if problems:
                        failed = True
                        notes.append("CHECK FAILED: %s at %d clients: %s"
                                     % (target, c, "; ".join(problems)))
            except Failure as e:
                failed = True
                notes.append("pgbench FAILED: %s" % e)
                say(notes[-1])
            continue

        ta = for_target(a, target)

        if target.startswith("module-batch-") and not ta.has_batch:
            notes.append("%s skipped: this module has no saveitem_batch"
                         % target)
            say(notes[-1])
            continue

        if target.startswith("module-bulk-") and not ta.has_bulk:
            notes.append("%s skipped: this module has no bulk=" % target)
            say(notes[-1])
            continue

        if bulk_coding(target) in ("gzip", "zstd") \
           and not a.has_decompress:
            notes.append("%s skipped: this module does not decompress"
                         % target)
            say(notes[-1])
            continue

        if target in PEERS:
            lacking = peer_missing(target)
            if lacking:
                msg = "%s skipped: not installed: %s (not in Debian's" \
                      " archive?)" % (target, " ".join(lacking))
                say(msg)
                notes.append(msg)
                continue

        say("%s: clients %s" % (target, a.clients))
        srv = None
        try:
            srv = make_server(ta, db, target, workdir)
            srv.start()
            # --poison: each point of the module again, poisoned (not a
            # bulk target: one refused document refuses its whole body)
            poisons = [0] + ([a.poison] if a.poison and target != "nginx-static"
                             and module_workers(target)
                             and bulk_docs(target) == 1 else [])
            for c in a.clients:
                clean = None
                for poison in poisons:
                    if poison and c not in a.poison_clients:
                        continue
                    r = measure_point(ta, db, srv, target, c, workdir,
                                      run_id, poison)
                    if c in ceiling and ceiling[c]:
                        r["ratio"] = r["rps"] / ceiling[c]
                    if target == "nginx-static" and not poison:
                        http[c] = r["rps"]
                    elif http.get(c):
                        r["x_http"] = r["rps"] / http[c]
                    if poison and clean:
                        r["x_clean"] = r["rps"] / clean
                        notes.append(poison_note(a, r, clean))
                    clean = clean or r["rps"]
                    rows.append(r)
                    say("  %s" % table_text([r]).splitlines()[-1])
                    say("  %s" % table_text([r], COLS_TIME).splitlines()[-1])
                    if r["check"] != "ok":
                        failed = True
                        msg = "CHECK FAILED: %s at %d clients: %s" % (
                            r["target"], c, "; ".join(r["problems"]))
                        say(msg)
                        notes.append(msg)
                    if (r["non2xx"] and not poison) or r["socket_errors"]:
                        notes.append("%s at %d clients: statuses %s, socket"
                                     " errors %d" % (r["target"], c,
                                                     r["statuses"],
                                                     r["socket_errors"]))
        except Failure as e:
            failed = True
            msg = "%s FAILED: %s" % (target, e)
            say(msg)
            notes.append(msg)
        finally:
            if srv:
                srv.stop()

        if module_workers(target):
            counts, first, stats = error_log_summary(
                os.path.join(workdir, "logs", "error.log"))
            for line in stats:
                notes.append("%s worker exit: %s" % (target, line))
            if counts:
                notes.append("%s error.log: %s; first lines:\n    %s" % (
                    target, ", ".join("%s %d" % kv for kv in
                                      sorted(counts.items())),
                    "\n    ".join(first)))
        elif target in PEERS and os.path.exists(os.path.join(
                workdir, target + ".log")):
            tb = sum(1 for line in open(os.path.join(
                workdir, target + ".log"), errors="replace")
                if "Traceback" in line)
            if tb:
                notes.append("%s log: %d tracebacks (%s)" % (
                    target, tb, os.path.join(workdir, target + ".log")))

    return rows, notes, failed


# the target of issue 12: one document in 10 poisoned at 64 clients, the
# innocent keep this share of the clean throughput
POISON_TARGET = 0.85


def poison_note(a, r, clean):
    kind = {"check": "CHECK constraint, 23514",
            "numeric": "1e200000, 22003"}[a.poison_kind]
    text = ("%s at %d clients, one document in %d poisoned (%s): innocent"
            " %.0f 2xx/s against %.0f clean, x%.2f; %d poisoned, %d refused"
            " (%s)" % (r["target"], r["clients"], a.poison, kind, r["rps"],
                       clean, r["x_clean"], r["poisoned"], r["refused"],
                       " ".join("%s:%d" % kv for kv in r["statuses"].items())))
    if a.poison == 10 and r["clients"] == 64:
        text += "; target x%.2f: %s" % (
            POISON_TARGET, "met" if r["x_clean"] >= POISON_TARGET
            else "NOT MET")
    return text


def stub_requests(port):
    """the requests counter of nginx's stub_status, None when unreadable"""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        c.request("GET", "/status")
        body = c.getresponse().read().decode()
        c.close()
        return int(body.splitlines()[2].split()[2])
    except (OSError, ValueError, IndexError):
        return None


def soak_wrk(a, srv, status_port, tag, prefix, samples):
    """wrk until each thread had its share of BENCH_SOAK_REQUESTS answers,
    sampling the workers' RSS meanwhile. wrk's main thread sleeps for the
    whole -d even when every thread stopped: once the server has seen no
    request but ours to stub_status for 3s, SIGINT ends wrk (it then
    reports as usual)."""
    threads = max(1, min(a.threads, a.soak_clients))
    per_thread = math.ceil(a.soak_requests / threads)
    argv = wrk_argv(a, srv.port, a.soak_clients, a.soak_max, tag, prefix,
                    stop_after=per_thread)
    out_path = prefix + ".stdout"

    say("soak: %d requests, %d clients, worker RSS sampled every %gs"
        % (per_thread * threads, a.soak_clients, a.soak_interval))

    t0 = time.monotonic()
    last, last_change, end, polls = None, t0, None, 0
    with open(out_path, "w") as out:
        wrk = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL)
        try:
            while wrk.poll() is None:
                now = time.monotonic()
                n = stub_requests(status_port)
                polls += 1
                if n is not None:
                    n -= polls          # our own status requests
                samples.append((now - t0, n,
                                [rss_kb(p) for p in srv.workers()]))
                if n != last:
                    last, last_change = n, now
                elif now - last_change >= 3 and end is None:
                    end = last_change
                    wrk.send_signal(signal.SIGINT)
                if now - t0 > a.soak_max + 60:
                    wrk.kill()
                    raise Failure("wrk still running after %ds"
                                  % (a.soak_max + 60))
                try:
                    wrk.wait(a.soak_interval)
                except subprocess.TimeoutExpired:
                    pass
        finally:
            if wrk.poll() is None:
                wrk.kill()
                wrk.wait()

    n = stub_requests(status_port)
    samples.append((time.monotonic() - t0,
                    None if n is None else n - polls - 1,
                    [rss_kb(p) for p in srv.workers()]))
    with open(out_path) as f:
        s = wrk_result(argv, f.read(), prefix)
    s["seconds"] = (end or time.monotonic()) - t0
    return s


def soak(a, db, outdir, run_id):
    workdir = os.path.join(outdir, "soak")
    os.makedirs(workdir, exist_ok=True)
    status_port = a.port_base + 4
    srv = module_server(a, db, workdir, a.soak_workers, a.soak_batch,
                        status_port)
    samples, notes = [], []
    prefix = os.path.join(workdir, "soak")
    tag = "%s-soak" % run_id

    try:
        srv.start()
        db.truncate()
        warm = max(a.warmup, 5)
        say("soak: warm-up %gs" % warm)
        w = run_wrk(a, srv.port, a.soak_clients, warm, tag + "-w",
                    prefix + "-warmup")
        db.settle()
        s = soak_wrk(a, srv, status_port, tag, prefix, samples)
        db.settle()
        ok, facts, problems = check(db, tag, prefix, s, w["sent"],
                                    a.soak_clients)
    finally:
        srv.stop()

    if not ok:
        notes.append("CHECK FAILED: soak: " + "; ".join(problems))

    nworkers = min(len(x[2]) for x in samples)
    with open(os.path.join(workdir, "rss.csv"), "w") as f:
        f.write("seconds,requests_handled,%s\n" % ",".join(
            "worker%d_rss_kb" % i for i in range(nworkers)))
        for t, h, r in samples:
            f.write("%.1f,%s,%s\n" % (t, "" if h is None else h,
                                      ",".join(str(x) for x in r[:nworkers])))

    lines, flat = [], True
    for i in range(nworkers):
        v = [x[2][i] for x in samples]
        grew = max(v) - v[0]
        flat = flat and grew <= 1024 and v[-1] - v[0] <= 1024
        lines.append("worker %d RSS: first %.1f MB, last %.1f MB, max %.1f"
                     " MB (max - first %+d kB, last - first %+d kB, %d"
                     " samples)" % (i, v[0] / 1024.0, v[-1] / 1024.0,
                                    max(v) / 1024.0, grew, v[-1] - v[0],
                                    len(v)))

    non2xx = sum(n for code, n in s["status"].items()
                 if not 200 <= code < 300)
    sock = sum(int(s["errors_" + k]) for k in
               ("connect", "read", "write", "timeout"))
    text = "\n".join([
        "soak: %d requests answered in %.0fs (%.0f req/s 2xx), non-2xx %d"
        " %s, socket errors %d, %d rows; check %s" % (
            s["requests"], s["seconds"], s["ok"] / s["seconds"], non2xx,
            {str(k): v for k, v in sorted(s["status"].items())}, sock,
            facts["rows"], "ok" if ok else "FAILED"),
    ] + lines + ["target (worker RSS flat within 1 MB): %s" % (
        "met" if flat else "NOT MET")])

    png = os.path.join(workdir, "rss.png")
    gp = os.path.join(workdir, "rss.gp")
    with open(gp, "w") as f:
        f.write("""set terminal pngcairo size 960,600 noenhanced
set output '%s'
set title 'module worker RSS over the soak'
set xlabel 'requests handled (stub_status)'
set ylabel 'RSS (MB)'
set datafile separator ','
set key autotitle columnhead
set grid
plot %s
""" % (png, ", ".join("'%s' using 2:($%d/1024) with lines lw 2" % (
            os.path.join(workdir, "rss.csv"), 3 + i)
            for i in range(nworkers))))
    if subprocess.run(["gnuplot", gp], capture_output=True,
                      timeout=60).returncode == 0:
        notes.append("plot: %s" % png)

    counts, first, stats = error_log_summary(os.path.join(workdir, "logs",
                                                          "error.log"))
    for line in stats:
        notes.append("soak worker exit: %s" % line)
    if counts:
        notes.append("soak error.log: %s; first lines:\n    %s" % (
            ", ".join("%s %d" % kv for kv in sorted(counts.items())),
            "\n    ".join(first)))

    return text, notes, not ok, flat


def main():
    a = parse_args()
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_id = "r" + stamp[2:].replace("-", "")
    outdir = os.path.join(a.out, stamp + ("-soak" if a.soak else ""))
    os.makedirs(outdir, exist_ok=True)
    latest = os.path.join(a.out, "latest-soak" if a.soak else "latest")
    if os.path.islink(latest) or not os.path.exists(latest):
        if os.path.islink(latest):
            os.unlink(latest)
        os.symlink(os.path.basename(outdir), latest)

    lib.interrupt_on_term()

    db = Database(a)
    t0 = time.monotonic()
    try:
        db.start()
        db.poison_constraint(a.poison and a.poison_kind == "check")
        db.mapped_columns(any(t.startswith("module-mapped-")
                              for t in a.targets))
        mode = "soak" if a.soak else ("quick" if a.quick else "full")
        if not a.soak and (a.duration, a.warmup) != ((2, 1) if a.quick
                                                     else (12, 4)):
            mode += ", durations changed"
        head = header(a, db, mode)

        if a.soak:
            text, notes, failed, flat = soak(a, db, outdir, run_id)
            report = head + "\n\n" + text
        else:
            rows, notes, failed = bench(a, db, outdir, run_id)
            report = (head + "\n\n" + table_text(rows) + "\n\n" + LEGEND
                      + "\n\n" + table_text(rows, COLS_TIME) + "\n\n"
                      + LEGEND_TIME)
            with open(os.path.join(outdir, "results.md"), "w") as f:
                f.write(head.replace("\n", "  \n") + "\n\n" + table_md(rows)
                        + "\n\n" + LEGEND.replace("\n", " ") + "\n\n"
                        + table_md(rows, COLS_TIME) + "\n\n"
                        + LEGEND_TIME.replace("\n", " ") + "\n")
            write_csv(os.path.join(outdir, "results.csv"), rows)
            png = plot(outdir, rows, "saveitem: req/s vs clients (%s)"
                       % datetime.datetime.now().strftime("%Y-%m-%d %H:%M"))
            if png:
                notes.append("plot: %s" % png)
            flat = True
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    except Failure as e:
        say("error: %s" % e)
        return 1
    finally:
        db.stop()

    notes.append("raw output: %s (%.0fs)" % (outdir, time.monotonic() - t0))
    report += "\n\n" + "\n".join(notes) + "\n"
    with open(os.path.join(outdir, "report.txt"), "w") as f:
        f.write(report)
    print(report)

    if failed:
        say("FAILED: see above")
        return 1
    if not flat:
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
