"""util/fault/campaign.py - the randomized fault campaign of issue 17; run
util/fault/campaign, not this

Each round draws from its seed (drawn from the master seed):

  - a configuration (typed columns beside the document in four rounds of
    ten: saveitem_field and saveitem_value): saveitem_batch on (rows= 2 to 64, mostly below 32) or
    off; pool=, queue=, queue_timeout=, lifetime= (1 s, the shortest
    taken, forces reconnects); saveitem_query_timeout (now and then 25d,
    more than statement_timeout takes: refused at start); prepared
    statements, prepare=off, or prepare=off through PgBouncer (transaction
    mode); idempotency= on a text or a bigint key column (numeric keys,
    some with leading zeros); bulk=;
  - client behaviours, weighted: unique documents, Idempotency-Keys and
    replays of a key with its document, guilty documents (refused by the
    CHECK, or by the trigger), bulk arrays and NDJSON (some with a guilty
    element), slow documents (the trigger sleeps), clients leaving mid-body
    or while their statement runs, slow bodies;
  - database faults, one after the other at random moments: backends
    terminated (by application_name), a restart (pg_ctl restart -m fast), a
    freeze (SIGSTOP of the postmaster, with or without its children), SET
    failing on new connections (the module's role gets idle_session_timeout
    = 1ms: a new backend dies before its SET; with prepare=off,
    set_config() raises: the role's search_path finds campaign.set_config
    first), PREPARE failing (the document column renamed, then back).

More than half the rounds aim at a risky combination (Draw.focus) rather
than uniform picks.  The load runs for a few seconds against the module
built with ASan and UBSan (nginx: master on, 2 workers); then the
invariants are checked:

  - no sanitizer report, no worker crash ("exited on signal"), no alert;
  - every answer is JSON: {"pk": N}, {"pks": [...]} or an error object;
  - every 200 names a committed row holding its document (a bulk body's
    pks its documents in element order); a key's 200s all name one row,
    the row holding that key;
  - no row without a 200, except where an answer said "outcome": "unknown"
    or no answer came (the client left, the connection was reset);
  - at most one row per key, per document; never a guilty document;
  - a refused bulk body that names an "index" names its guilty element;
  - every request answered within ANSWER_LIMIT seconds; after the faults,
    a plain document stored again within PROBE_LIMIT seconds.

A failing round prints its seed and the command that reruns it (the same
draws; which request meets which fault is the machine's timing), and keeps
its directory (nginx's error log, the sanitizers' reports, round.txt: what
was drawn and what failed) under SAVEITEM_CAMPAIGN_DIR/<seed>/.

Environment (set by util/fault/campaign): SAVEITEM_FAULT_SO,
SAVEITEM_FAULT_PRELOAD, SAVEITEM_PG_PORT, SAVEITEM_PG_DIR,
SAVEITEM_CAMPAIGN_PORT, SAVEITEM_CAMPAIGN_DIR, SAVEITEM_PGBOUNCER_PORT.
"""

import argparse
import asyncio
import itertools
import json
import os
import random
import re
import shutil
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
import lib  # noqa: E402  util/lib.py
from lib import say  # noqa: E402
import fault  # noqa: E402  util/fault/fault.py: its HTTP client, cluster
from fault import PG, Closed, post_head, read_response  # noqa: E402

PORT = lib.port("campaign-nginx", "SAVEITEM_CAMPAIGN_PORT")
BOUNCER = lib.port("campaign-pgbouncer", "SAVEITEM_PGBOUNCER_PORT")
OUT = os.environ.get("SAVEITEM_CAMPAIGN_DIR", "/tmp/saveitem-campaign")
SO = os.environ.get("SAVEITEM_FAULT_SO", "")
PRELOAD = os.environ.get("SAVEITEM_FAULT_PRELOAD", "")

APP = "saveitem_campaign"    # the module's application_name ...
ROLE = "saveitem_campaign"   # ... and role (PgBouncer's too)
TABLE = "campaign.items"
QUICK_MASTER = 17            # --quick: this master seed ...
QUICK_ROUNDS = 26            # ... this many rounds
ANSWER_LIMIT = 20.0          # seconds: a request unanswered by then hangs
DRAIN_LIMIT = ANSWER_LIMIT + 5
PROBE_LIMIT = 20.0           # seconds after the round: a POST stored by then
#                              (PgBouncer waits server_login_retry, 15 s,
#                              after a failed login during a restart)

SETUP_SQL = """SET client_min_messages = warning;
DO $$ BEGIN
    CREATE ROLE %(role)s LOGIN SUPERUSER;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
CREATE SCHEMA IF NOT EXISTS campaign;
CREATE TABLE IF NOT EXISTS campaign.switch (set_fails boolean NOT NULL);
TRUNCATE campaign.switch;
INSERT INTO campaign.switch VALUES (false);
-- found before pg_catalog's by the module's role (its search_path): the
-- fault "set" makes it raise, as a SET that fails
CREATE OR REPLACE FUNCTION campaign.set_config(text, text, boolean)
RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT set_fails FROM campaign.switch) THEN
        RAISE EXCEPTION 'campaign: set_config fails';
    END IF;
    RETURN pg_catalog.set_config($1, $2, $3);
END
$$;
ALTER ROLE %(role)s SET search_path = campaign, pg_catalog, public;
ALTER ROLE %(role)s RESET idle_session_timeout;
-- no server connection of PgBouncer's from the round before
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
    WHERE usename = '%(role)s';
CREATE OR REPLACE FUNCTION campaign.act() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.data ? 'sleep' THEN
        PERFORM pg_sleep((NEW.data->>'sleep')::float);
    END IF;
    IF NEW.data ? 'refuse' THEN
        RAISE EXCEPTION 'campaign: refused by the trigger';
    END IF;
    RETURN NEW;
END
$$;
DROP TABLE IF EXISTS %(t)s;
CREATE TABLE %(t)s (id bigserial PRIMARY KEY,
                    data jsonb NOT NULL CHECK (NOT data ? 'guilty')%(key)s%(mapped)s);
CREATE TRIGGER act BEFORE INSERT ON %(t)s
    FOR EACH ROW EXECUTE FUNCTION campaign.act();
"""

BEHAVIOURS = ("unique", "keyed", "replay", "guilty", "bulk", "slow", "leave",
              "slow_body")
FAULTS = ("terminate", "restart", "freeze", "set", "prepare")


class Draw:
    """what a round is made of, drawn from its seed alone"""

    def __init__(self, seed):
        r = random.Random(seed)
        self.seed = seed
        self.batch = r.random() < 0.75
        self.rows = (r.choice((2, 3, 4, 8, 16, 24, 31)) if r.random() < 0.7
                     else r.choice((32, 48, 64)))
        self.pool = r.choice((1, 2, 3, 4, 6))
        self.queue = r.choice((16, 64, 512))
        self.queue_timeout = r.choice((300, 1000, 3000))          # ms
        self.lifetime = r.choice((None, None, 1000, 1000, 2000))  # ms
        self.query_timeout = ("25d" if r.random() < 0.04
                              else "%dms" % r.choice((500, 1500, 4000)))
        self.route = r.choices(("prepared", "unnamed", "pgbouncer"),
                               (0.55, 0.15, 0.30))[0]
        self.key = r.choices((None, "text", "bigint"), (0.35, 0.5, 0.15))[0]
        self.bulk = r.choice((None, None, 4, 40))
        self.clients = r.choice((6, 12, 24))
        self.seconds = r.uniform(3.0, 6.0)

        self.faults = [f for f, p in zip(FAULTS, (0.6, 0.25, 0.25, 0.3, 0.2))
                       if r.random() < p]
        w = {b: 1.0 * r.choice((0, 1, 1, 3)) for b in BEHAVIOURS}
        w["unique"] += 1
        self.weights = w
        self.keyed_share = 0.5      # of slow, leaving, guilty documents
        self.refuse_share = 0.3     # of guilty documents: by the trigger
        self.freeze_postmaster = 0.3  # of freezes: the postmaster alone
        self.freezes = (1, 3)       # how many times a freeze fault freezes
        self.terminate = (0.5, 2.0)  # seconds the fault lasts, from .. to

        # risky combinations, more often than uniform picks would draw them
        self.focus = r.choices((None, "isolation", "leave", "set"),
                               (0.4, 0.25, 0.15, 0.2))[0]
        if self.focus == "isolation":
            # keyed batches that fail (a document the trigger refuses:
            # frequent guilty ones of class 23 send rows straight into
            # savepoints) and wait together while their connections go
            # away: more than 16 keyed rows in one isolation overflowed its
            # parameters
            self.key, self.batch, self.route = "text", True, "prepared"
            self.rows = r.choice((12, 16))
            self.pool = r.choice((2, 3))
            self.clients, self.queue, self.queue_timeout = 48, 512, 3000
            self.lifetime = 1000
            w.update(unique=0, keyed=4, guilty=1, replay=0, slow=1, bulk=0,
                     leave=0, slow_body=0)
            self.keyed_share = self.refuse_share = 1.0
            # a frozen postmaster, often: failed batches wait for a
            # connection
            self.freeze_postmaster, self.freezes = 0.8, (4, 6)
            self.faults = ["freeze"] + (["terminate"] if r.random() < 0.3
                                        else [])
        elif self.focus == "leave":
            # keyed clients leaving while their statement sleeps
            self.key = self.key or "text"
            w["leave"] += 3
        elif self.focus == "set":
            # new connections all the time, their first SET failing
            self.lifetime = 1000
            self.terminate = (1.0, 2.5)
            self.faults += ["terminate", "set"]
            if r.random() < 0.2:
                self.query_timeout = "25d"
        if not self.key:
            w["keyed"] = w["replay"] = 0
        if not self.bulk:
            w["bulk"] = 0
        self.faults = sorted(set(self.faults), key=FAULTS.index)
        r.shuffle(self.faults)
        self.rng = r                # the rest of the round draws from it

        # typed columns beside the document (saveitem_field, saveitem_value:
        # issue 18), drawn apart so that the draws above stay the seed's
        self.mapped = random.Random(seed ^ 0x5eed).random() < 0.4

    def conninfo(self):
        if self.route == "pgbouncer":
            return ("host=127.0.0.1 port=%d dbname=saveitem user=postgres "
                    "application_name=%s connect_timeout=2" % (BOUNCER, APP))
        return ("host=%s port=%d dbname=saveitem user=%s application_name=%s "
                "connect_timeout=2" % (PG.sock, PG.port, ROLE, APP))

    def summary(self):
        return " ".join(filter(None, (
            "batch=" + ("on rows=%d" % self.rows if self.batch else "off"),
            "pool=%d queue=%d qt=%dms" % (self.pool, self.queue,
                                          self.queue_timeout),
            self.lifetime and "lifetime=%dms" % self.lifetime,
            "query_timeout=" + self.query_timeout,
            self.route,
            self.key and "key=" + self.key,
            self.mapped and "mapped",
            self.focus and "focus=" + self.focus,
            self.bulk and "bulk=%d" % self.bulk,
            "clients=%d %.1fs" % (self.clients, self.seconds),
            "mix=" + ",".join("%s:%g" % (b, w) for b, w in self.weights.items()
                              if w),
            "faults=" + (",".join(self.faults) or "none"))))


class Request:
    """one POST and what its client saw"""

    def __init__(self, rid, behaviour, docs, key=None, bulk=False,
                 guilty=None):
        self.rid = rid
        self.behaviour = behaviour
        self.docs = docs            # the documents, in body order
        self.key = key
        self.bulk = bulk
        self.guilty = guilty        # index of the guilty document, or None
        self.status = None
        self.answer = None          # the parsed JSON answer
        self.result = "pending"     # answered, unknown, no_answer, sent_half,
        #                             not_sent, hang
        self.pks = None


class Nginx(lib.Nginx):
    """a round's nginx: master on, 2 workers, the drawn configuration"""

    def __init__(self, draw):
        super().__init__(os.path.join(OUT, str(draw.seed)), PORT)
        d = draw
        db = 'saveitem_database "%s" pool=%d queue=%d queue_timeout=%dms' % (
            d.conninfo(), d.pool, d.queue, d.queue_timeout)
        if d.lifetime:
            db += " lifetime=%dms" % d.lifetime
        if d.route != "prepared":
            db += " prepare=off"
        loc = TABLE + (" idempotency=idem" if d.key else "") + (
            " bulk=%d" % d.bulk if d.bulk else "")
        if d.mapped:
            loc += (";\n            saveitem_field c; saveitem_field r;"
                    " saveitem_field i; saveitem_field pad;"
                    " saveitem_field at;"
                    "\n            saveitem_value ip $remote_addr")
        http = """
    access_log off;
    keepalive_timeout 0;
    client_max_body_size 1m;
    client_body_timeout 5s;

    %s;
    saveitem_query_timeout %s;
    saveitem_batch %s;

    server {
        listen 127.0.0.1:%d;

        location = /items {
            saveitem %s;
        }
    }""" % (db, d.query_timeout,
            "on rows=%d" % d.rows if d.batch else "off", PORT, loc)
        self.write(lib.nginx_conf(self.prefix, SO, http, workers=2,
                                  main="user root;\n"
                                  "worker_shutdown_timeout 5s;"))
        self.env = lib.preload_env(self.logs, PRELOAD)


class Round:
    def __init__(self, seed):
        self.draw = Draw(seed)
        self.rng = self.draw.rng
        self.seed = seed
        self.requests = []
        self.keys = []              # (key, docs) sent so far, for replays
        self.failures = []
        self.notes = []
        self.sanitizer = {}         # the reports: sanitizer_reports()
        self.stop = False

    def fail(self, msg):
        self.failures.append(msg)

    # the documents

    def document(self, rid, i, sleep=None, guilty=False):
        """a document; a guilty one is refused by the CHECK (SQLSTATE
        23514), or by the trigger (P0001: not counted as a guilty document
        by the module, so that it keeps sending such rows in batches)"""
        d = {"c": self.seed, "r": rid, "i": i,
             "pad": "".join(self.rng.choice(fault.ALPHABET)
                            for _ in range(self.rng.randint(0, 60)))}
        if sleep:
            d["sleep"] = sleep
        if guilty:
            d["refuse" if self.rng.random() < self.draw.refuse_share
              else "guilty"] = True
        return d

    def new_key(self, rid):
        if self.draw.key == "bigint":
            zeros = "0" * self.rng.choice((0, 0, 1, 2))
            return "%s%d" % (zeros, self.seed % 100000 * 10000 + rid)
        return "k-%d-%d" % (self.seed, rid)

    def request(self):
        """the next request, of a behaviour drawn by the weights"""
        d = self.draw
        rid = len(self.requests)
        b = self.rng.choices(list(d.weights), list(d.weights.values()))[0]
        keyed = d.key and (b == "keyed" or b in ("leave", "slow", "guilty")
                           and self.rng.random() < d.keyed_share)
        if b == "replay" and self.keys:
            key, docs = self.rng.choice(self.keys)
            req = Request(rid, b, docs, key)
        elif b == "bulk":
            n = self.rng.randint(1, min(d.bulk, 8) if self.rng.random() < 0.8
                                 else d.bulk)
            g = self.rng.randrange(n) if self.rng.random() < 0.3 else None
            req = Request(rid, b, [self.document(rid, i, guilty=(i == g))
                                   for i in range(n)], bulk=True, guilty=g)
        else:
            sleep = (round(self.rng.uniform(0.2, 1.0), 2) if b == "leave"
                     else round(self.rng.uniform(0.05, 0.3), 2) if b == "slow"
                     else None)
            docs = [self.document(rid, 0, sleep, guilty=(b == "guilty"))]
            key = self.new_key(rid) if keyed else None
            req = Request(rid, b, docs, key,
                          guilty=0 if b == "guilty" else None)
            if key and b != "guilty":
                self.keys.append((key, docs))
        self.requests.append(req)
        return req

    # the clients

    async def send(self, req):
        if req.bulk and self.rng.random() < 0.5:
            body = b"".join(json.dumps(doc).encode() + b"\n"
                            for doc in req.docs)
            ctype = b"application/x-ndjson"
        else:
            body = json.dumps(req.docs if req.bulk else req.docs[0]).encode()
            ctype = b"application/json"
        extra = (b"Idempotency-Key: %s\r\n" % req.key.encode()
                 if req.key else b"")
        head = post_head("/items", len(body), extra, ctype)
        try:
            r, w = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", PORT), 5)
        except (OSError, asyncio.TimeoutError):
            req.result = "not_sent"
            return
        try:
            if req.behaviour == "leave":
                await self.leave(req, w, head, body)
                return
            if req.behaviour == "slow_body":
                w.write(head)
                for i in range(0, len(body), 8):
                    w.write(body[i:i + 8])
                    await w.drain()
                    await asyncio.sleep(0.02)
            else:
                w.write(head + body)
                await w.drain()
            status, _, rbody = await asyncio.wait_for(read_response(r),
                                                      ANSWER_LIMIT)
            self.classify(req, status, rbody)
        except asyncio.TimeoutError:
            req.result = "hang"
        except (Closed, OSError):
            req.result = "no_answer"
        finally:
            w.close()

    async def leave(self, req, w, head, body):
        """the client goes away: mid-body (nothing may be stored), or after
        the body, at a random moment (keyed: while its statement sleeps)"""
        if self.rng.random() < 0.2:
            w.write(head + body[:len(body) // 2])
            req.result = "sent_half"
        else:
            w.write(head + body)
            req.result = "no_answer"
        await w.drain()
        await asyncio.sleep(0.3 if req.key and self.rng.random() < 0.5
                            else self.rng.uniform(0.0, 0.6))
        if self.rng.random() < 0.5:
            w.transport.abort()

    def classify(self, req, status, body):
        req.status = status
        try:
            a = json.loads(body)
            if not isinstance(a, dict):
                raise ValueError
        except ValueError:
            req.result = "answered"
            self.fail("request %d: %d, not JSON: %r" % (req.rid, status,
                                                        body[:200]))
            return
        req.answer = a
        req.result = ("unknown" if a.get("outcome") == "unknown"
                      else "answered")
        if status == 200:
            pks = a.get("pks") if req.bulk else [a.get("pk")]
            if not (isinstance(pks, list) and len(pks) == len(req.docs)
                    and all(isinstance(p, int) for p in pks)):
                self.fail("request %d: 200 without its pks: %r"
                          % (req.rid, body[:200]))
                return
            req.pks = pks
        elif not isinstance(a.get("error"), str):
            self.fail("request %d: %d without an error: %r"
                      % (req.rid, status, body[:200]))

    async def client(self, end):
        while time.monotonic() < end and not self.stop:
            await self.send(self.request())

    # the faults

    async def faults(self, end):
        """the drawn faults one after the other, each at a random moment"""
        for f in self.draw.faults:
            left = end - time.monotonic()
            if left <= 0.5:
                self.notes.append("no time left for " + f)
                continue
            await asyncio.sleep(self.rng.uniform(0.2, min(1.5, left / 2)))
            t0 = time.monotonic()
            try:
                what = await getattr(self, "fault_" + f)()
            except lib.Failure as e:
                # e.g. the rename waited for its lock past lock_timeout:
                # not the module's fault; a table left broken fails the
                # final probe
                self.notes.append("the fault %s could not run: %.200s"
                                  % (f, e))
                continue
            self.notes.append("%s at %.1f s for %.1f s%s" % (
                f, t0 - self.t_start, time.monotonic() - t0,
                ": " + what if what else ""))

    async def psql(self, sql):
        return await asyncio.to_thread(PG.psql, sql, timeout=30)

    async def fault_terminate(self):
        n = 0
        end = time.monotonic() + self.rng.uniform(*self.draw.terminate)
        pause = self.rng.choice((0.01, 0.03, 0.1))
        while time.monotonic() < end:
            out = await self.psql(
                "SELECT count(pg_terminate_backend(pid)) FROM "
                "pg_stat_activity WHERE application_name = '%s' "
                "OR usename = '%s'" % (APP, ROLE))
            n += int(out.strip() or 0)
            await asyncio.sleep(pause)
        return "%d backends terminated" % n

    async def fault_restart(self):
        await asyncio.to_thread(PG.pg_sh, "restart")

    async def fault_freeze(self):
        """SIGSTOP, a moment, SIGCONT, a few times: of the postmaster
        and its children, or of the postmaster alone (the statements
        running go on, new connections wait)"""
        times = self.rng.randint(*self.draw.freezes)
        alone = self.rng.random() < self.draw.freeze_postmaster
        for n in range(times):
            pids = PG.pids()[:1] if alone else PG.pids()
            try:
                for pid in pids:
                    os.kill(pid, signal.SIGSTOP)
                await asyncio.sleep(self.rng.uniform(0.2, 0.8))
            finally:
                thaw(pids)
            await asyncio.sleep(self.rng.uniform(0.1, 0.4))
        return "%d times%s" % (times, ", the postmaster alone" if alone
                               else "")

    async def fault_set(self):
        """new connections' SET fails: with prepare=off, set_config()
        raises; else the new backends die when idle for 1 ms, before their
        SET, as when terminated then"""
        seconds = self.rng.uniform(0.5, 1.5)
        if self.draw.route != "prepared" and self.rng.random() < 0.7:
            await self.psql("UPDATE campaign.switch SET set_fails = true")
            try:
                await asyncio.sleep(seconds)
            finally:
                await self.psql("UPDATE campaign.switch SET set_fails = false")
            return "set_config() raising"
        await self.psql("ALTER ROLE %s SET idle_session_timeout = '1ms'"
                        % ROLE)
        try:
            await asyncio.sleep(seconds)
        finally:
            await self.psql("ALTER ROLE %s RESET idle_session_timeout"
                            % ROLE)
        return "idle_session_timeout 1ms"

    async def fault_prepare(self):
        """the document column renamed for a moment: PREPARE (and the
        INSERTs) fail with 42703"""
        await self.psql("SET lock_timeout = '3s'; ALTER TABLE %s RENAME "
                        "COLUMN data TO data_gone" % TABLE)
        try:
            await asyncio.sleep(self.rng.uniform(0.2, 1.0))
        finally:
            await self.psql("SET lock_timeout = '10s'; ALTER TABLE %s RENAME "
                            "COLUMN data_gone TO data" % TABLE)

    # a round

    async def run(self):
        d = self.draw
        key = {None: "", "text": ", idem text UNIQUE",
               "bigint": ", idem bigint UNIQUE"}[d.key]
        mapped = (", c bigint NOT NULL, r int, i int, pad text,"
                  " ip inet, at timestamptz DEFAULT clock_timestamp()"
                  if d.mapped else "")
        PG.psql(SETUP_SQL % {"role": ROLE, "t": TABLE, "key": key,
                             "mapped": mapped})
        nginx = Nginx(d)
        if d.query_timeout == "25d":
            # more than statement_timeout takes: refused at start is right
            try:
                nginx.test()
            except lib.Failure as e:
                self.notes.append("nginx -t refuses 25d: %s" % str(e)[-200:])
                return
        try:
            nginx.start()
            self.t_start = time.monotonic()
            end = self.t_start + d.seconds
            clients = [asyncio.create_task(self.client(end))
                       for _ in range(d.clients)]
            try:
                await self.faults(end)
            finally:
                done, pending = await asyncio.wait(clients,
                                                   timeout=DRAIN_LIMIT)
                self.stop = True
                for t in pending:
                    t.cancel()
                if pending:
                    self.fail("%d clients still waiting after %d s"
                              % (len(pending), DRAIN_LIMIT))
                for t in done:
                    if t.exception():
                        self.fail("a client crashed: %r" % t.exception())
            await self.probe()
        finally:
            await asyncio.to_thread(nginx.stop)
        self.check(nginx)

    async def probe(self):
        """after the faults, a plain document is stored again (within
        PROBE_LIMIT seconds)"""
        deadline = time.monotonic() + PROBE_LIMIT
        while True:
            rid = len(self.requests)
            req = Request(rid, "probe", [self.document(rid, 0)])
            self.requests.append(req)
            await self.send(req)
            if req.status == 200 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        if req.status != 200:
            self.fail("no document stored after the faults: the last try got"
                      " %s %s" % (req.status or req.result,
                                  json.dumps(req.answer)[:200]))

    # the invariants

    def check(self, nginx):
        rows = self.read_rows()
        self.nrows = len(rows)
        bad = {}

        def problem(kind, what):
            bad.setdefault(kind, []).append(what)

        self.check_answers(rows, problem)
        self.check_rows(rows, problem)
        if self.draw.mapped:
            self.check_mapped(problem)
        for kind, items in sorted(bad.items()):
            self.fail("%s: %d, e.g. %s" % (kind, len(items),
                                          "; ".join(items[:2])))
        # the reports, one line a kind and first frame
        self.sanitizer = sanitizer_reports(nginx.logs)
        for report, n in self.sanitizer.items():
            self.fail("sanitizer: %s (%d reports)" % (report, n))
        for line in nginx.log_problems(lib.CRASH_PATTERNS):
            if not line.startswith("sanitizer report"):
                self.fail(line)

    def read_rows(self):
        """{id: (key or "", document)}"""
        rows = {}
        out = PG.psql("SELECT id, %s, data::text FROM %s" % (
            "coalesce(idem::text, '')" if self.draw.key else "''", TABLE))
        for line in filter(None, out.split("\n")):
            rid, key, data = line.split("|", 2)
            rows[int(rid)] = (key, json.loads(data))
        return rows

    def check_mapped(self, problem):
        """typed columns: each holds its key of the row's document"""
        out = PG.psql(
            "SELECT id FROM %s WHERE c IS DISTINCT FROM (data->>'c')::bigint"
            " OR r IS DISTINCT FROM (data->>'r')::int"
            " OR i IS DISTINCT FROM (data->>'i')::int"
            " OR pad IS DISTINCT FROM data->>'pad'"
            " OR ip IS DISTINCT FROM '127.0.0.1' OR at IS NULL" % TABLE)
        for rid in filter(None, out.split("\n")):
            problem("typed columns not the document's", "row %s" % rid)

    def check_answers(self, rows, problem):
        """each answer against the rows"""
        key_pk = {}
        for req in self.requests:
            what = "request %d (%s)" % (req.rid, req.behaviour)
            if req.result == "hang":
                problem("no answer within %d s" % ANSWER_LIMIT, what)
            index = (req.answer or {}).get("index")
            if req.bulk and req.guilty is not None \
               and isinstance(index, int) and index != req.guilty:
                problem("a refused bulk body blamed another document",
                        "%s: index %d, the guilty one %d"
                        % (what, index, req.guilty))
            if req.pks is None:
                continue
            for doc, pk in zip(req.docs, req.pks):
                key, data = rows.get(pk, (None, None))
                if data is None:
                    problem("200 without a row", "%s: pk %d" % (what, pk))
                elif data != doc:
                    problem("row holds another document",
                            "%s: pk %d holds r=%s i=%s"
                            % (what, pk, data.get("r"), data.get("i")))
                elif req.key and key.lstrip("0") != req.key.lstrip("0"):
                    problem("row holds another key", "%s: key %s, row %d %s"
                            % (what, req.key, pk, key))
            if req.key and key_pk.setdefault(req.key, req.pks[0]) \
               != req.pks[0]:
                problem("one key, two pks", "key %s: %d and %d"
                        % (req.key, key_pk[req.key], req.pks[0]))

    def check_rows(self, rows, problem):
        """each row against the answers of the requests that sent its
        document (a replay sends the document of the key's first request)"""
        senders, by_doc, by_key = {}, {}, {}
        for req in self.requests:
            for doc in req.docs:
                senders.setdefault((doc["r"], doc["i"]), []).append(req)
        for pk, (key, data) in rows.items():
            by_doc.setdefault((data.get("r"), data.get("i")), []).append(pk)
            if key:
                by_key.setdefault(key, []).append(pk)
            if "guilty" in data or "refuse" in data:
                problem("guilty document stored", "row %d" % pk)

        for doc, pks in by_doc.items():
            if len(pks) > 1:
                problem("document stored twice", "r=%s i=%s rows %s"
                        % (doc + (pks,)))
            reqs = senders.get(doc)
            if not reqs:
                problem("row nobody sent", "rows %s" % pks)
                continue
            given = {pk for q in reqs for pk in q.pks or ()}
            lost = any(q.result in ("unknown", "no_answer", "hang")
                       for q in reqs)
            for pk in pks:
                if pk not in given and not lost:
                    problem("row without a 200", "row %d: %s" % (
                        pk, "; ".join("request %d (%s) %s %s %.100s" % (
                            q.rid, q.behaviour, q.key or "", q.status
                            or q.result, json.dumps(q.answer))
                            for q in reqs[:2])))
        for key, pks in by_key.items():
            if len(pks) > 1:
                problem("key stored twice", "key %s: rows %s" % (key, pks))

    def line(self):
        counts = {}
        for req in self.requests:
            k = str(req.status) if req.status else req.result
            if req.result == "unknown":
                k += "u"
            counts[k] = counts.get(k, 0) + 1
        return "%d requests (%s), %d rows" % (
            len(self.requests),
            " ".join("%s:%d" % kv for kv in sorted(counts.items())),
            getattr(self, "nrows", 0))


def thaw(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


def sanitizer_reports(logs):
    """{"heap-use-after-free in f file:line": how many reports}: each
    report's kind and first frame"""
    found = {}
    for name in sorted(os.listdir(logs)):
        if not name.startswith(("asan.", "ubsan.")):
            continue
        with open(os.path.join(logs, name), errors="replace") as f:
            text = f.read()
        kind = re.search(r"ERROR: AddressSanitizer: ([\w-]+)|"
                         r"(runtime error: [^\n]{0,80})", text)
        frame = re.search(r"#0 0x[0-9a-f]+ in (\S+) (\S+)", text)
        report = "%s in %s %s" % (
            (kind.group(1) or kind.group(2)) if kind else "report",
            frame.group(1) if frame else "?",
            os.path.basename(frame.group(2)) if frame else "")
        found[report] = found.get(report, 0) + 1
    return found


async def one_round(seed, n, total, keep):
    rnd = Round(seed)
    d = rnd.draw
    t0 = time.monotonic()
    say("round %d/%s seed %d: %s" % (n, total, seed, d.summary()))
    try:
        await rnd.run()
    except Exception as e:
        rnd.fail("the round could not run: %r" % e)
    verdict = "FAIL" if rnd.failures else "ok"
    print("round %d seed %d %-4s %.0fs: %s; %s" % (
        n, seed, verdict, time.monotonic() - t0, d.summary(), rnd.line()),
        flush=True)
    for note in rnd.notes:
        print("    note: " + note)
    for f in rnd.failures:
        print("    FAIL: " + f)
    directory = os.path.join(OUT, str(seed))
    if rnd.failures:
        print("    rerun: util/fault/campaign --seed %d   (logs: %s)"
              % (seed, directory), flush=True)
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "round.txt"), "w") as f:
            f.write("seed %d\n%s\n%s\n" % (seed, d.summary(), rnd.line()))
            f.writelines("note: %s\n" % x for x in rnd.notes)
            f.writelines("FAIL: %s\n" % x for x in rnd.failures)
    elif not keep:
        shutil.rmtree(directory, ignore_errors=True)
    return rnd


async def main_async(args):
    if args.seed is not None:
        # the same draws each time; what meets what is the machine's timing
        seeds = iter([args.seed] * (args.rounds or 1))
        total = str(args.rounds or 1)
    else:
        master = (args.master if args.master is not None
                  else random.SystemRandom().randrange(1, 2**31))
        print("master seed %d (util/fault/campaign --master %d reruns the "
              "campaign)" % (master, master), flush=True)
        draw = random.Random(master)
        seeds = (draw.randrange(1, 2**31) for _ in itertools.count())
        total = str(args.rounds) if args.rounds else "?"
    deadline = time.monotonic() + (args.minutes or 0) * 60
    passed, failed = 0, []
    for n, seed in enumerate(seeds, 1):
        if args.rounds and n > args.rounds \
           or args.minutes and n > 1 and time.monotonic() > deadline:
            break
        rnd = await one_round(seed, n, total, args.keep)
        if rnd.failures:
            failed.append((n, rnd))
        else:
            passed += 1
    for n, rnd in failed:
        print("failed: round %d seed %d: %s" % (
            n, rnd.seed, "; ".join(list(rnd.sanitizer)
                                   or [f[:160] for f in rnd.failures[:2]])))
    print("%d passed, %d failed" % (passed, len(failed)))
    return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser(prog="util/fault/campaign")
    ap.add_argument("--quick", action="store_true",
                    help="master seed %d, %d rounds (make test)"
                    % (QUICK_MASTER, QUICK_ROUNDS))
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--minutes", type=float)
    ap.add_argument("--master", type=int)
    ap.add_argument("--seed", type=int,
                    help="rerun this round (--rounds times, default once)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the logs of passing rounds too")
    args = ap.parse_args()
    if args.quick:
        args.master = QUICK_MASTER if args.master is None else args.master
        args.rounds = args.rounds or QUICK_ROUNDS
    elif not args.rounds and not args.minutes and args.seed is None:
        args.rounds = 10
    if not SO or not os.path.exists(SO):
        raise SystemExit("SAVEITEM_FAULT_SO is not a module: run "
                         "util/fault/campaign")
    lib.interrupt_on_term()
    os.makedirs(OUT, exist_ok=True)
    try:
        sys.exit(asyncio.run(main_async(args)))
    except KeyboardInterrupt:
        say("campaign: interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
