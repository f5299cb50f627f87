"""bench/bomb.py - what a decompression bomb costs the module, measured

    /usr/bin/python3 bench/bomb.py [--so SO] [--limits 1m,64m]
                                   [--port P] [--pg-port P]

For each limit (saveitem_decompressed_max_size) and each coding: a body of
10 GiB of zeros, made here from a stream of zeros as t/019-compressed.t
makes it (gzip: 1024 members of 10 MiB, gzip -9, ~10 MB; zstd: 10 frames
of 1 GiB, ~330 KB), POSTed to one worker; prints the answer's status, the
time from the body's last byte sent to the answer (time to refuse), and
the worker's RSS before, at its peak during the request (VmHWM, reset
first through /proc/PID/clear_refs) and after.

Then the pause: while a body of 100 MiB of zeros in gzip and in zstd is
decoded (limit 128m; the decoded body is then refused as not JSON, at its
first byte), a second client sends GET /ping (nginx's `return`, same
worker) one after the other on a keep-alive connection; prints the longest
answer it waited for during the decoding, and the longest in as long a
time before it (the machine's own noise).

Starts its own PostgreSQL (util/pg.sh) and nginx (master, one worker),
stops both at the end.  Figures vary with the machine's load: run it on a
quiet one.
"""

import argparse
import os
import socket
import subprocess
import sys
import threading
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, os.path.join(ROOT, "util"))
import lib  # noqa: E402
from lib import Failure, say  # noqa: E402


def bomb(coding, size="10G"):
    """size of zeros in coding, as a stream: gzip members of 10 MiB, zstd
    frames of 1 GiB (or the whole, if smaller)"""
    if coding == "gzip":
        one, times = "head -c 10M /dev/zero | gzip -9 -n -c", 1
    else:
        one, times = "head -c 1G /dev/zero | zstd -q -c", 1
    n = {"10G": 10 * 1024, "100M": 100}[size]     # MiB
    if coding == "gzip":
        times = n // 10
    else:
        times = max(1, n // 1024)
        if n < 1024:
            one = "head -c %dM /dev/zero | zstd -q -c" % n
    part = subprocess.run(one, shell=True, check=True,
                          capture_output=True).stdout
    return part * times


def status(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def post(port, path, coding, body):
    """POSTs body; (status, seconds from the last byte sent to the answer,
    seconds in all)"""
    s = socket.create_connection(("127.0.0.1", port))
    head = ("POST %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
            "Content-Type: application/json\r\nContent-Encoding: %s\r\n"
            "Content-Length: %d\r\n\r\n" % (path, coding, len(body)))
    start = time.monotonic()
    s.sendall(head.encode() + body)
    sent = time.monotonic()
    res = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        res += chunk
    done = time.monotonic()
    s.close()
    code = res.split(b" ", 2)[1].decode() if res else "-"
    return code, done - sent, done - start, res.split(b"\r\n\r\n", 1)[-1]


class Pinger(threading.Thread):
    """GET /ping, one after the other, on one keep-alive connection: the
    (start, seconds waited) of each"""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.stop = False
        self.times = []

    def run(self):
        req = b"GET /ping HTTP/1.1\r\nHost: localhost\r\n\r\n"
        s = None
        while not self.stop:
            if s is None:
                s = socket.create_connection(("127.0.0.1", self.port))
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            t = time.monotonic()
            s.sendall(req)
            got = b""
            while not got.endswith(b"pong\n"):
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
            if not got.endswith(b"pong\n"):
                s.close()
                s = None
                continue
            self.times.append((t, time.monotonic() - t))
            time.sleep(0.0005)
        if s is not None:
            s.close()

    def longest(self, start, end):
        w = [d for t, d in self.times if start <= t <= end]
        return (max(w) if w else 0.0), len(w)


def conf(a, limit):
    http = """
    access_log off;
    client_max_body_size 64m;
    keepalive_requests 1000000;
    saveitem_database "%s";

    server {
        listen 127.0.0.1:%d;

        location = /items {
            saveitem items bulk=1000;
            saveitem_decompressed_max_size %s;
        }

        location = /ping {
            return 200 "pong\\n";
        }
    }""" % (a.cluster.conninfo(), a.port, limit)
    return lib.nginx_conf(a.prefix, a.so, http, workers=1,
                          main="user root;" if os.getuid() == 0 else "",
                          level="notice")


def start(a, limit):
    srv = lib.Nginx(a.prefix, a.port)
    srv.write(conf(a, limit))
    srv.test()
    srv.start()
    return srv


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--so", default=os.path.join(ROOT, "build",
                                                 "ngx_http_saveitem_module.so"))
    p.add_argument("--limits", default="1m,64m")
    p.add_argument("--port", type=int, default=int(
        os.environ.get("BOMB_PORT", "18095")))
    p.add_argument("--pg-port", type=int, default=int(
        os.environ.get("BOMB_PG_PORT", "15535")))
    a = p.parse_args()

    if not os.path.exists(a.so):
        a.so = subprocess.run(["bash", os.path.join(ROOT, "util",
                                                    "build.sh")],
                              check=True, capture_output=True,
                              text=True).stdout.strip()

    a.prefix = "/tmp/saveitem-bomb-%d" % a.port
    a.cluster = lib.Cluster(a.pg_port, "/tmp/saveitem-bomb-pg-%d" % a.pg_port)
    a.cluster.pg_sh("start")
    srv = None

    try:
        a.cluster.psql("DROP TABLE IF EXISTS items; CREATE TABLE items "
                       "(id bigserial PRIMARY KEY, data jsonb NOT NULL)")
        bombs = {c: bomb(c) for c in ("gzip", "zstd")}

        sys.stdout.reconfigure(line_buffering=True)
        print("10 GiB of zeros: gzip %d bytes, zstd %d bytes"
              % (len(bombs["gzip"]), len(bombs["zstd"])))
        print("%-6s %-6s %6s %10s %10s %9s %9s %9s" % (
            "coding", "limit", "status", "refuse ms", "total ms",
            "RSS kB", "peak +kB", "after +kB"))

        for limit in a.limits.split(","):
            srv = start(a, limit)
            pid = srv.workers()[0]

            for coding in ("gzip", "zstd"):
                small = subprocess.run(
                    ["gzip" if coding == "gzip" else "zstd", "-q", "-c"],
                    input=b'{"warm": 1}', capture_output=True).stdout
                post(a.port, "/items", coding, small)

                rss0 = status(pid, "VmRSS")
                with open("/proc/%d/clear_refs" % pid, "w") as f:
                    f.write("5")

                code, refuse, total, _ = post(a.port, "/items", coding,
                                              bombs[coding])
                peak = status(pid, "VmHWM")
                time.sleep(0.2)
                rss1 = status(pid, "VmRSS")

                print("%-6s %-6s %6s %10.1f %10.1f %9d %9d %9d" % (
                    coding, limit, code, 1000 * refuse, 1000 * total, rss0,
                    peak - rss0, rss1 - rss0))

            srv.stop()
            srv = None

        # the pause a small request sees while 100 MiB are decoded

        srv = start(a, "128m")
        print("\nGET /ping while 100 MiB of zeros are decoded (limit 128m):")
        print("%-6s %6s %10s %12s %8s %12s" % (
            "coding", "status", "decode ms", "longest ms", "pings",
            "before ms"))

        for coding in ("gzip", "zstd"):
            body = bomb(coding, "100M")
            pinger = Pinger(a.port)
            pinger.start()
            time.sleep(0.5)
            t0 = time.monotonic()
            code, refuse, total, _ = post(a.port, "/items", coding, body)
            t1 = time.monotonic()
            time.sleep(0.1)
            pinger.stop = True
            pinger.join()
            during, n = pinger.longest(t1 - refuse, t1)
            before, _ = pinger.longest(t0 - 0.45, t0 - 0.45 + refuse)
            print("%-6s %6s %10.1f %12.2f %8d %12.2f" % (
                coding, code, 1000 * refuse, 1000 * during, n,
                1000 * before))

        log = srv.read_log()
        for line in log.splitlines():
            if "[alert]" in line or "[crit]" in line or "[emerg]" in line:
                say("nginx: " + line)

    finally:
        if srv is not None:
            srv.stop()
        a.cluster.pg_sh("stop")


if __name__ == "__main__":
    try:
        main()
    except Failure as e:
        say("bomb.py: %s" % e)
        sys.exit(1)
