# bench/peers/tornado_peer.py - the talk's own stack: tornado + aiopg, one
# process per core (tornado.process.fork_processes), an aiopg pool per
# process
#
#   python3 bench/peers/tornado_peer.py
#
# environment: BENCH_PORT, BENCH_PROCS (processes), BENCH_PG_SOCKET,
# BENCH_PG_PORT (the database `saveitem`), BENCH_POOL (connections per
# process)

import asyncio
import json
import os

import aiopg
import tornado.httpserver
import tornado.netutil
import tornado.process
import tornado.web

SQL = "INSERT INTO items (data) VALUES (%s) RETURNING id"


class Items(tornado.web.RequestHandler):

    def answer(self, status, body):
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(body + "\n")

    async def post(self):
        ctype = self.request.headers.get("Content-Type", "")

        if ctype.split(";")[0].strip().lower() != "application/json":
            return self.answer(415, '{"error": "unsupported_media_type"}')

        try:
            body = self.request.body.decode()
            json.loads(body)
        except ValueError:
            return self.answer(400, '{"error": "invalid_json"}')

        async with self.application.pool.acquire() as conn:
            async with conn.cursor() as cur:
                await cur.execute(SQL, (body,))
                pk = (await cur.fetchone())[0]

        self.answer(200, '{"pk": %d}' % pk)


async def serve(sockets):
    n = int(os.environ.get("BENCH_POOL", "8"))
    dsn = "host=%s port=%s dbname=saveitem user=postgres" % (
        os.environ["BENCH_PG_SOCKET"], os.environ["BENCH_PG_PORT"])

    app = tornado.web.Application([("/items", Items)])
    app.pool = await aiopg.create_pool(dsn, minsize=n, maxsize=n)

    server = tornado.httpserver.HTTPServer(app)
    server.add_sockets(sockets)

    await asyncio.Event().wait()


def main():
    sockets = tornado.netutil.bind_sockets(int(os.environ["BENCH_PORT"]),
                                           "127.0.0.1", backlog=4096)
    tornado.process.fork_processes(int(os.environ.get("BENCH_PROCS", "2")))
    asyncio.run(serve(sockets))


if __name__ == "__main__":
    main()
