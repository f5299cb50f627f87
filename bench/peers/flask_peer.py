# bench/peers/flask_peer.py - the "before": Flask + psycopg2 under gunicorn
# sync workers, one connection per worker process
#
#   gunicorn -k sync -w N -b 127.0.0.1:PORT --chdir bench/peers flask_peer:app
#
# environment: BENCH_PG_SOCKET, BENCH_PG_PORT (the database `saveitem`)

import json
import os

import psycopg2
from flask import Flask, Response, request

SQL = "INSERT INTO items (data) VALUES (%s) RETURNING id"

app = Flask(__name__)
conn = None


def db():
    global conn

    if conn is None or conn.closed:
        conn = psycopg2.connect(host=os.environ["BENCH_PG_SOCKET"],
                                port=os.environ["BENCH_PG_PORT"],
                                dbname="saveitem", user="postgres")
        conn.autocommit = True

    return conn


def answer(status, body):
    return Response(body + "\n", status=status, mimetype="application/json")


@app.post("/items")
def items():
    if request.mimetype != "application/json":
        return answer(415, '{"error": "unsupported_media_type"}')

    body = request.get_data(as_text=True)

    try:
        json.loads(body)
    except ValueError:
        return answer(400, '{"error": "invalid_json"}')

    with db().cursor() as cur:
        cur.execute(SQL, (body,))
        pk = cur.fetchone()[0]

    return answer(200, '{"pk": %d}' % pk)
