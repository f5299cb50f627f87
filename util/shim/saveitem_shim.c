
/*
 * Copyright (C) The ngx_http_saveitem_module authors
 */


/*
 * util/shim/saveitem_shim.c - an LD_PRELOAD shim that makes I/O on the
 * sockets connected to one PostgreSQL server fail with EAGAIN or move
 * fewer bytes than asked, at random, so that libpq's partial-write and
 * would-block paths (PQflush returning 1, PQconsumeInput reading nothing)
 * run for real under nginx.
 *
 * Only sockets whose peer is the server under test are touched, decided
 * by getpeername() on each call: a TCP peer on SAVEITEM_SHIM_PORT, or a
 * unix socket whose path contains SAVEITEM_SHIM_SOCKDIR.  nginx's client
 * sockets are never touched: nginx waits for them edge-triggered, and a
 * fake EAGAIN there would stall a request for good.  The module waits for
 * PostgreSQL sockets level-triggered, so a fake EAGAIN there only costs
 * one more event loop iteration.  A recv() with MSG_PEEK (the module's
 * liveness check of an idle connection) is left alone: the kernel never
 * says EAGAIN there with data queued, and faking it would hide a real
 * goodbye from the server.
 *
 * libpq 15 calls send() and recv() on non-SSL sockets; read(), write(),
 * sendto() and recvfrom() are wrapped as well, with the same rule, in
 * case a build uses them.
 *
 * Environment, read once when the shim loads (nginx clears its workers'
 * environment; they fork from the master and keep what was read):
 *
 *   SAVEITEM_SHIM_PORT      TCP port of the server under test
 *   SAVEITEM_SHIM_SOCKDIR   part of its unix socket path
 *   SAVEITEM_SHIM_SEED      seed of the random choices (default 1); each
 *                           process mixes in its pid, so workers differ
 *   SAVEITEM_SHIM_EAGAIN    percent of calls failing with EAGAIN (def. 20)
 *   SAVEITEM_SHIM_SHORT     percent of calls moving 1..n-1 bytes (def. 30)
 *   SAVEITEM_SHIM_LOG       a file to which each process appends its counts
 *                           at exit (default: stderr)
 *
 * With neither SAVEITEM_SHIM_PORT nor SAVEITEM_SHIM_SOCKDIR set the shim
 * does nothing.  Build:
 *
 *   cc -O2 -shared -fPIC -o libsaveitem_shim.so saveitem_shim.c -ldl
 */


#define _GNU_SOURCE

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>


typedef ssize_t (*shim_send_pt)(int fd, const void *buf, size_t len,
    int flags);
typedef ssize_t (*shim_recv_pt)(int fd, void *buf, size_t len, int flags);
typedef ssize_t (*shim_sendto_pt)(int fd, const void *buf, size_t len,
    int flags, const struct sockaddr *addr, socklen_t alen);
typedef ssize_t (*shim_recvfrom_pt)(int fd, void *buf, size_t len,
    int flags, struct sockaddr *addr, socklen_t *alen);
typedef ssize_t (*shim_read_pt)(int fd, void *buf, size_t len);
typedef ssize_t (*shim_write_pt)(int fd, const void *buf, size_t len);


enum {
    SHIM_SEND = 0,
    SHIM_RECV,
    SHIM_NOPS
};

enum {
    SHIM_CALLS = 0,     /* calls on a server socket */
    SHIM_EAGAIN,
    SHIM_SHORT,
    SHIM_NKINDS
};


static shim_send_pt      real_send;
static shim_recv_pt      real_recv;
static shim_sendto_pt    real_sendto;
static shim_recvfrom_pt  real_recvfrom;
static shim_read_pt      real_read;
static shim_write_pt     real_write;

static int               shim_on;
static int               shim_port;
static char              shim_sockdir[108];
static unsigned          shim_eagain = 20;
static unsigned          shim_short = 30;
static uint64_t          shim_seed = 1;
static uint64_t          shim_state;
static pid_t             shim_pid;
static char              shim_log[512];

static unsigned long     shim_count[SHIM_NOPS][SHIM_NKINDS];


static void shim_init(void) __attribute__((constructor));
static void shim_done(void) __attribute__((destructor));


static unsigned
shim_env_percent(const char *name, unsigned dflt)
{
    long         n;
    char        *end;
    const char  *v;

    v = getenv(name);

    if (v == NULL || *v == '\0') {
        return dflt;
    }

    n = strtol(v, &end, 10);

    if (*end != '\0' || n < 0 || n > 100) {
        fprintf(stderr, "saveitem shim: %s must be 0..100, not \"%s\"\n",
                name, v);
        return dflt;
    }

    return (unsigned) n;
}


static void
shim_init(void)
{
    const char  *v;

    real_send = (shim_send_pt) dlsym(RTLD_NEXT, "send");
    real_recv = (shim_recv_pt) dlsym(RTLD_NEXT, "recv");
    real_sendto = (shim_sendto_pt) dlsym(RTLD_NEXT, "sendto");
    real_recvfrom = (shim_recvfrom_pt) dlsym(RTLD_NEXT, "recvfrom");
    real_read = (shim_read_pt) dlsym(RTLD_NEXT, "read");
    real_write = (shim_write_pt) dlsym(RTLD_NEXT, "write");

    v = getenv("SAVEITEM_SHIM_PORT");
    if (v != NULL && *v != '\0') {
        shim_port = atoi(v);
    }

    v = getenv("SAVEITEM_SHIM_SOCKDIR");
    if (v != NULL && *v != '\0') {
        snprintf(shim_sockdir, sizeof(shim_sockdir), "%s", v);
    }

    v = getenv("SAVEITEM_SHIM_SEED");
    if (v != NULL && *v != '\0') {
        shim_seed = strtoull(v, NULL, 10);
    }

    v = getenv("SAVEITEM_SHIM_LOG");
    if (v != NULL && *v != '\0') {
        snprintf(shim_log, sizeof(shim_log), "%s", v);
    }

    shim_eagain = shim_env_percent("SAVEITEM_SHIM_EAGAIN", shim_eagain);
    shim_short = shim_env_percent("SAVEITEM_SHIM_SHORT", shim_short);

    if (shim_eagain + shim_short > 100) {
        shim_short = 100 - shim_eagain;
    }

    shim_on = (shim_port > 0 || shim_sockdir[0] != '\0');
}


/* splitmix64, seeded per process: reproducible for a given seed and pid */

static uint64_t
shim_random(void)
{
    uint64_t  z;
    pid_t     pid;

    pid = getpid();

    if (pid != shim_pid) {
        /* a forked worker: its own sequence and its own counts */
        shim_pid = pid;
        shim_state = shim_seed * 0x9e3779b97f4a7c15ULL + (uint64_t) pid;
        memset(shim_count, 0, sizeof(shim_count));
    }

    z = (shim_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;

    return z ^ (z >> 31);
}


static int
shim_is_server(int fd)
{
    int                      saved;
    socklen_t                len;
    struct sockaddr_storage  sa;
    struct sockaddr_un      *un;
    struct sockaddr_in      *sin;
    struct sockaddr_in6     *sin6;

    if (!shim_on) {
        return 0;
    }

    saved = errno;
    len = sizeof(sa);

    if (getpeername(fd, (struct sockaddr *) &sa, &len) == -1) {
        errno = saved;
        return 0;
    }

    errno = saved;

    switch (sa.ss_family) {

    case AF_INET:
        sin = (struct sockaddr_in *) &sa;
        return shim_port > 0 && ntohs(sin->sin_port) == shim_port;

    case AF_INET6:
        sin6 = (struct sockaddr_in6 *) &sa;
        return shim_port > 0 && ntohs(sin6->sin6_port) == shim_port;

    case AF_UNIX:
        un = (struct sockaddr_un *) &sa;

        if (shim_sockdir[0] == '\0'
            || len <= offsetof(struct sockaddr_un, sun_path)
            || un->sun_path[0] == '\0')
        {
            return 0;
        }

        /* sun_path need not be terminated when it is full */
        ((char *) &sa)[len < sizeof(sa) ? len : sizeof(sa) - 1] = '\0';

        return strstr(un->sun_path, shim_sockdir) != NULL;

    default:
        return 0;
    }
}


/*
 * What to do with a call of len bytes on a server socket: -1 fails it
 * with EAGAIN, otherwise the number of bytes to pass to the real call
 */

static ssize_t
shim_decide(int op, size_t len)
{
    uint64_t  r;
    unsigned  pct;

    r = shim_random();
    pct = (unsigned) (r % 100);

    shim_count[op][SHIM_CALLS]++;

    if (len == 0) {
        return 0;
    }

    if (pct < shim_eagain) {
        shim_count[op][SHIM_EAGAIN]++;
        return -1;
    }

    if (pct < shim_eagain + shim_short && len > 1) {
        shim_count[op][SHIM_SHORT]++;
        return (ssize_t) (1 + (r >> 32) % (len - 1));
    }

    return (ssize_t) len;
}


ssize_t
send(int fd, const void *buf, size_t len, int flags)
{
    ssize_t  n;

    if (real_send == NULL) {
        shim_init();
    }

    if (shim_is_server(fd)) {
        n = shim_decide(SHIM_SEND, len);

        if (n == -1) {
            errno = EAGAIN;
            return -1;
        }

        len = (size_t) n;
    }

    return real_send(fd, buf, len, flags);
}


ssize_t
recv(int fd, void *buf, size_t len, int flags)
{
    ssize_t  n;

    if (real_recv == NULL) {
        shim_init();
    }

    if (!(flags & MSG_PEEK) && shim_is_server(fd)) {
        n = shim_decide(SHIM_RECV, len);

        if (n == -1) {
            errno = EAGAIN;
            return -1;
        }

        len = (size_t) n;
    }

    return real_recv(fd, buf, len, flags);
}


ssize_t
sendto(int fd, const void *buf, size_t len, int flags,
    const struct sockaddr *addr, socklen_t alen)
{
    ssize_t  n;

    if (real_sendto == NULL) {
        shim_init();
    }

    if (addr == NULL && shim_is_server(fd)) {
        n = shim_decide(SHIM_SEND, len);

        if (n == -1) {
            errno = EAGAIN;
            return -1;
        }

        len = (size_t) n;
    }

    return real_sendto(fd, buf, len, flags, addr, alen);
}


ssize_t
recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *addr,
    socklen_t *alen)
{
    ssize_t  n;

    if (real_recvfrom == NULL) {
        shim_init();
    }

    if (!(flags & MSG_PEEK) && shim_is_server(fd)) {
        n = shim_decide(SHIM_RECV, len);

        if (n == -1) {
            errno = EAGAIN;
            return -1;
        }

        len = (size_t) n;
    }

    return real_recvfrom(fd, buf, len, flags, addr, alen);
}


/*
 * read() and write() on a blocking descriptor must not fail with EAGAIN:
 * only non-blocking sockets (libpq's, once connected or connecting) get it
 */

static int
shim_nonblocking(int fd)
{
    int  fl, saved;

    saved = errno;
    fl = fcntl(fd, F_GETFL);
    errno = saved;

    return fl != -1 && (fl & O_NONBLOCK);
}


ssize_t
read(int fd, void *buf, size_t len)
{
    ssize_t  n;

    if (real_read == NULL) {
        shim_init();
    }

    if (shim_on && shim_is_server(fd) && shim_nonblocking(fd)) {
        n = shim_decide(SHIM_RECV, len);

        if (n == -1) {
            errno = EAGAIN;
            return -1;
        }

        len = (size_t) n;
    }

    return real_read(fd, buf, len);
}


ssize_t
write(int fd, const void *buf, size_t len)
{
    ssize_t  n;

    if (real_write == NULL) {
        shim_init();
    }

    if (shim_on && shim_is_server(fd) && shim_nonblocking(fd)) {
        n = shim_decide(SHIM_SEND, len);

        if (n == -1) {
            errno = EAGAIN;
            return -1;
        }

        len = (size_t) n;
    }

    return real_write(fd, buf, len);
}


static void
shim_done(void)
{
    int     fd;
    char    line[256];
    size_t  n;

    if (!shim_on || shim_pid != getpid()) {
        /* this process never touched a server socket */
        return;
    }

    n = (size_t) snprintf(line, sizeof(line),
                          "saveitem shim: pid %d seed %llu: "
                          "send calls %lu eagain %lu short %lu, "
                          "recv calls %lu eagain %lu short %lu\n",
                          (int) getpid(), (unsigned long long) shim_seed,
                          shim_count[SHIM_SEND][SHIM_CALLS],
                          shim_count[SHIM_SEND][SHIM_EAGAIN],
                          shim_count[SHIM_SEND][SHIM_SHORT],
                          shim_count[SHIM_RECV][SHIM_CALLS],
                          shim_count[SHIM_RECV][SHIM_EAGAIN],
                          shim_count[SHIM_RECV][SHIM_SHORT]);

    if (n >= sizeof(line)) {
        n = sizeof(line) - 1;
    }

    fd = 2;

    if (shim_log[0] != '\0') {
        fd = open(shim_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd == -1) {
            fd = 2;
        }
    }

    (void) real_write(fd, line, n);

    if (fd != 2) {
        close(fd);
    }
}
