"""util/lib.py - what the Python tools share (imported, not run): bench/bench.py,
util/fault/fault.py and util/fuzz/http_fuzz.py

The port table (util/ports, which util/lib.sh reads too), psql into a
throwaway cluster of util/pg.sh, an nginx conf of our own, and a server
started in a process group of its own and stopped with all it forked.
"""

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

UTIL = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(UTIL)
NGINX = "/usr/sbin/nginx"
PG_BIN = "/usr/lib/postgresql/15/bin"
ASAN_SUPP = os.path.join(UTIL, "fault", "asan.supp")

# what in an error log tells of a crash or a bug
CRASH_PATTERNS = (r"exited on signal", r"\[alert\]", r"\[emerg\]",
                  r"\[crit\]", r"AddressSanitizer", r"runtime error:")


class Failure(RuntimeError):
    """a command or a server failed; the message says how"""


def interrupt_on_term():
    """a SIGTERM (a CI timeout) unwinds like ^C, by KeyboardInterrupt: what
    was started is stopped on the way out, a frozen PostgreSQL thawed"""
    def interrupt(signo, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def say(*args):
    print(*args, file=sys.stderr, flush=True)


def port(name, knob=None):
    """the port the environment variable `knob` names, else `name`'s in
    util/ports"""
    if knob and os.environ.get(knob):
        return int(os.environ[knob])
    with open(os.path.join(UTIL, "ports")) as f:
        for line in f:
            w = line.split()
            if len(w) > 1 and w[0] == name and w[1].isdigit():
                return int(w[1])
    raise Failure("no port '%s' in util/ports" % name)


def port_open(port, timeout=0.5):
    """something accepts TCP connections on 127.0.0.1:port"""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout):
            return True
    except OSError:
        return False


def run(argv, timeout, **kw):
    """runs a command to its end (bounded); its stdout, or Failure"""
    try:
        r = subprocess.run(argv, timeout=timeout, encoding="utf-8",
                           errors="replace", capture_output=True, **kw)
    except subprocess.TimeoutExpired:
        raise Failure("%s: still running after %ds" % (argv[0], timeout))

    if r.returncode != 0:
        raise Failure("%s exited with %d: %s" % (
            " ".join(argv[:3]), r.returncode, (r.stderr or r.stdout)[-800:]))

    return r.stdout


def proc_stat(pid):
    """(state, ppid, process group, cpu ticks incl. reaped children) of a
    process, or None"""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None

    f = s[s.rindex(")") + 2:].split()
    return f[0], int(f[1]), int(f[2]), sum(int(x) for x in f[11:15])


def processes():
    """(pid, proc_stat) of every process"""
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = proc_stat(int(d))
            if st:
                yield int(d), st


def group_pids(pgid):
    """live processes (zombies aside) of a process group"""
    return [pid for pid, st in processes() if st[2] == pgid and st[0] != "Z"]


def reap_group(pgid):
    """processes left in a process group once its leader has gone (workers
    of an nginx master that crashed): stopped, and their number returned"""
    left = group_pids(pgid)
    for sig, wait in ((signal.SIGQUIT, 5), (signal.SIGKILL, 2)):
        pids = group_pids(pgid)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and group_pids(pgid):
            time.sleep(0.1)
    return len(left)


class Cluster:
    """a throwaway PostgreSQL cluster of util/pg.sh, database saveitem, user
    postgres, reached over its unix socket"""

    def __init__(self, port, directory, **env):
        self.port = port
        self.dir = directory
        self.sock = os.path.join(directory, "sock")
        self.data = os.path.join(directory, "data")
        self.env = dict(os.environ, SAVEITEM_PG_PORT=str(port),
                        SAVEITEM_PG_DIR=directory, **env)

    def pg_sh(self, *args):
        """util/pg.sh ARGS for this cluster"""
        return run(["bash", os.path.join(UTIL, "pg.sh")] + list(args),
                   timeout=180, env=self.env)

    def conninfo(self):
        return "host=%s port=%d dbname=saveitem user=postgres" % (
            self.sock, self.port)

    def psql_argv(self, *args):
        """psql, unaligned and tuples only, stopping at the first error"""
        return [os.path.join(PG_BIN, "psql"), "-X", "-q", "-A", "-t",
                "-v", "ON_ERROR_STOP=1", "-h", self.sock,
                "-p", str(self.port), "-U", "postgres", "-d", "saveitem"
                ] + list(args)

    def psql(self, sql=None, args=(), stdin=None, timeout=300):
        """runs sql (or psql's stdin) in the database; its output"""
        argv = self.psql_argv(*args) + (["-c", sql] if sql else [])
        return run(argv, timeout=timeout, input=stdin)

    def pids(self):
        """the postmaster and its children"""
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            master = int(f.readline())
        return [master] + [pid for pid, st in processes() if st[1] == master]


class Server:
    """a server on a loopback port, started in a process group of its own:
    the group is its tree"""

    def __init__(self, name, argv, port, log, env=None, cwd=None):
        self.name = name
        self.argv = argv
        self.port = port
        self.log = log
        self.env = env
        self.cwd = cwd
        self.proc = None

    def start(self, probe=None, timeout=15):
        """starts it and waits until it accepts connections and probe(),
        when given, is true"""
        if port_open(self.port):
            raise Failure("port %d is taken: another server?" % self.port)

        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
                env=self.env, cwd=self.cwd)

        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise Failure("%s exited with %d at start; %s:\n%s" % (
                    self.name, self.proc.returncode, self.log, self.tail()))
            if port_open(self.port, 0.2) and (probe is None or probe()):
                return
            if time.monotonic() > deadline:
                self.stop()
                raise Failure("%s does not answer on port %d after %ds;"
                              " %s:\n%s" % (self.name, self.port, timeout,
                                             self.log, self.tail()))
            time.sleep(0.05)

    def tail(self, n=15):
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def pids(self):
        """the group's processes, the leader first"""
        return sorted(group_pids(self.proc.pid),
                      key=lambda p: p != self.proc.pid)

    def workers(self):
        p = self.pids()
        return p[1:] if len(p) > 1 else p

    def stop(self, steps=((signal.SIGQUIT, 15), (signal.SIGTERM, 5)),
             group=False):
        """each (signal, seconds) of steps in turn to the leader (group:
        to the whole group) until the leader exits, then SIGKILL to the
        group; returns how many processes outlived the leader"""
        if self.proc is None:
            return 0
        for n, (sig, wait) in enumerate(steps):
            if self.proc.poll() is not None:
                break
            if n:
                say("%s did not stop in %g s; %s" % (
                    self.name, steps[n - 1][1], sig.name))
            try:
                if group:
                    os.killpg(self.proc.pid, sig)
                else:
                    self.proc.send_signal(sig)
                self.proc.wait(wait)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        if self.proc.poll() is None:
            say("%s did not stop: SIGKILL to its process group" % self.name)
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        return reap_group(self.proc.pid)


def nginx_conf(prefix, so, http, workers=2, main="", connections=1024,
               level="info"):
    """an nginx conf of our own: the module loaded, master on, in the
    foreground, pid, logs and temporary files in prefix/logs; main and http
    are the rest of the main context and of http{}"""
    return """# written by %(prog)s
load_module %(so)s;
daemon off;
master_process on;
worker_processes %(workers)d;
pid %(p)s/logs/nginx.pid;
error_log %(p)s/logs/error.log %(level)s;
%(main)s

events {
    worker_connections %(connections)d;
}

http {
    client_body_temp_path %(p)s/logs/client_body;
    proxy_temp_path %(p)s/logs/proxy;
    fastcgi_temp_path %(p)s/logs/fastcgi;
    uwsgi_temp_path %(p)s/logs/uwsgi;
    scgi_temp_path %(p)s/logs/scgi;
%(http)s
}
""" % {"prog": os.path.relpath(sys.argv[0], ROOT), "so": so,
       "workers": workers, "p": prefix, "level": level, "main": main,
       "connections": connections, "http": http}


def preload_env(logs, runtime, more=()):
    """nginx's environment: a sanitizer build's runtime (or "" for none)
    preloaded, its reports written to files in logs, then the libraries of
    more"""
    env = dict(os.environ)
    libs = list(more)
    if runtime:
        libs.insert(0, runtime)
        env["ASAN_OPTIONS"] = ("detect_leaks=0:log_path=%s/asan:"
                               "suppressions=%s" % (logs, ASAN_SUPP))
        env["UBSAN_OPTIONS"] = "print_stacktrace=1:log_path=%s/ubsan" % logs
    if libs:
        env["LD_PRELOAD"] = ":".join(libs)
    return env


class Nginx(Server):
    """Debian's nginx with the prefix `prefix`/, its conf in
    prefix/conf/nginx.conf, its logs in prefix/logs/"""

    def __init__(self, prefix, port, env=None):
        self.prefix = prefix
        self.conf = os.path.join(prefix, "conf", "nginx.conf")
        self.logs = os.path.join(prefix, "logs")
        self.error_log = os.path.join(self.logs, "error.log")
        super().__init__("nginx", [NGINX, "-p", prefix + "/", "-c",
                                   self.conf, "-e", self.error_log],
                         port, os.path.join(self.logs, "stderr.log"), env)

    def write(self, conf, fresh=True):
        """writes the conf; fresh: in an emptied prefix"""
        if fresh:
            shutil.rmtree(self.prefix, ignore_errors=True)
        os.makedirs(os.path.dirname(self.conf), exist_ok=True)
        os.makedirs(self.logs, exist_ok=True)
        with open(self.conf, "w") as f:
            f.write(conf)

    def test(self):
        """nginx -t; Failure when nginx rejects the conf"""
        run(self.argv + ["-t", "-q"], timeout=30, env=self.env)

    async def reload(self):
        p = await asyncio.create_subprocess_exec(
            *self.argv, "-s", "reload", env=self.env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL)
        return await p.wait()

    def read_log(self):
        try:
            with open(self.error_log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_problems(self, patterns=CRASH_PATTERNS):
        """the sanitizers' reports, and the error log's lines matching
        patterns: one line a kind"""
        found = []
        for name in sorted(os.listdir(self.logs)):
            if name.startswith(("asan.", "ubsan.")):
                with open(os.path.join(self.logs, name),
                          errors="replace") as f:
                    text = f.read()
                first = [l for l in text.split("\n")
                         if "ERROR" in l or "runtime error" in l] or [text]
                found.append("sanitizer report %s/%s: %s"
                             % (self.logs, name, first[0][:300]))
        log = self.read_log().splitlines()
        for pat in patterns:
            lines = [l for l in log if re.search(pat, l)]
            if lines:
                found.append("error log: %d lines like %r, e.g. %s"
                             % (len(lines), pat, lines[0][:300]))
        return found
