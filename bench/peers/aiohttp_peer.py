# bench/peers/aiohttp_peer.py - the best Python async: aiohttp + asyncpg on
# uvloop, under gunicorn's aiohttp worker (one event loop per process), an
# asyncpg pool per process
#
#   gunicorn -k aiohttp.GunicornUVLoopWebWorker -w N -b 127.0.0.1:PORT \
#       --chdir bench/peers aiohttp_peer:make_app
#
# environment: BENCH_PG_SOCKET, BENCH_PG_PORT (the database `saveitem`),
# BENCH_POOL (connections per process)

import json
import os

import asyncpg
from aiohttp import web

SQL = "INSERT INTO items (data) VALUES ($1::jsonb) RETURNING id"


def answer(status, body):
    return web.Response(status=status, text=body + "\n",
                        content_type="application/json")


async def items(request):
    if request.content_type != "application/json":
        return answer(415, '{"error": "unsupported_media_type"}')

    body = await request.text()

    try:
        json.loads(body)
    except ValueError:
        return answer(400, '{"error": "invalid_json"}')

    pk = await request.app["pool"].fetchval(SQL, body)

    return answer(200, '{"pk": %d}' % pk)


async def open_pool(app):
    n = int(os.environ.get("BENCH_POOL", "8"))

    app["pool"] = await asyncpg.create_pool(
        host=os.environ["BENCH_PG_SOCKET"], port=os.environ["BENCH_PG_PORT"],
        database="saveitem", user="postgres", min_size=n, max_size=n)


async def close_pool(app):
    await app["pool"].close()


async def make_app():
    app = web.Application()
    app.router.add_post("/items", items)
    app.on_startup.append(open_pool)
    app.on_cleanup.append(close_pool)
    return app
