-- bench/post.lua - the wrk script of bench/run: POST a ~200-byte JSON
-- document, unique per thread and request, and record every pk received
--
--   wrk ... -s bench/post.lua URL -- TAG OUT [STOP_AFTER [POISON [KIND]]]
--
-- The document is {"run":TAG,"t":THREAD,"n":COUNTER,"kind":"bench",
-- "pad":"xx..."}, padded to DOC_SIZE bytes: bench/bench.py rebuilds it
-- from (TAG, t, n) to check the row.
-- POISON > 0: every POISON-th request of a thread carries instead a
-- document that PostgreSQL refuses, of KIND "check" ({..."kind":"poison",
-- "poison":true}: the table's CHECK constraint, 23514) or "numeric"
-- ({..."kind":"poison","x":1e200000}: beyond jsonb's numeric, 22003); its
-- answer is not a pk, and no row may hold it.
--
-- wrk runs one Lua state per thread and does not tell response() which
-- connection (so which request) it answers. Each thread keeps, for every 2xx
-- answer, the pair (n of its latest request, pk): with one connection per
-- thread that n is the request answered; with more it is an upper bound.
-- done() runs in the main state after the threads stopped (it does not see
-- the script's arguments, init() does); it pulls each thread's counters and
-- pairs with thread:get() and writes
--   OUT.pks      "t n pk" a line
--   OUT.summary  "key value" a line
-- `sent` counts request() calls: wrk calls it once more on thread 1 before
-- the run, to inspect the request, and never sends that one, so sent is at
-- most 1 over.
-- STOP_AFTER > 0: a thread stops after that many answers (the soak mode);
-- wrk itself still sleeps out -d, so bench.py ends it with SIGINT.

DOC_SIZE = 200

local threads = {}


function setup(thread)
    table.insert(threads, thread)
    thread:set("tid", #threads)
end


function init(args)
    tag = args[1] or "bench"
    out = args[2] or "wrk"
    stop_after = tonumber(args[3] or "0") or 0
    poison = tonumber(args[4] or "0") or 0
    poison_kind = args[5] or "check"

    sent = 0          -- request() calls: documents handed to wrk
    poisoned = 0      -- of which poisoned
    answered = 0      -- response() calls
    ok = 0            -- 2xx with a pk
    bad_body = 0      -- 2xx without a pk
    pairs_ = {}       -- n1, pk1, n2, pk2, ...
    statuses = {}     -- status code -> count

    head = string.format('{"run":"%s","t":%d,"n":', tag, tid)
    pad = string.rep("x", DOC_SIZE)

    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"
end


function request()
    local doc

    sent = sent + 1

    if poison > 0 and sent % poison == 0 then
        poisoned = poisoned + 1
        if poison_kind == "numeric" then
            doc = head .. sent .. ',"kind":"poison","x":1e200000}'
        else
            doc = head .. sent .. ',"kind":"poison","poison":true}'
        end
        return wrk.format(nil, nil, nil, doc)
    end

    doc = head .. sent .. ',"kind":"bench","pad":"'
    doc = doc .. string.sub(pad, 1, DOC_SIZE - #doc - 2) .. '"}'

    return wrk.format(nil, nil, nil, doc)
end


function response(status, headers, body)
    local pk

    answered = answered + 1
    statuses[status] = (statuses[status] or 0) + 1

    if status >= 200 and status < 300 then
        pk = body and string.match(body, '^%s*{%s*"pk"%s*:%s*(%d+)%s*}')
        if pk then
            ok = ok + 1
            pairs_[2 * ok - 1] = sent
            pairs_[2 * ok] = tonumber(pk)
        else
            bad_body = bad_body + 1
        end
    end

    if stop_after > 0 and answered >= stop_after then
        wrk.thread:stop()
    end
end


function done(summary, latency, requests)
    local out, pks, sum, tid, p

    if #threads == 0 then
        return
    end

    out = threads[1]:get("out")

    pks = assert(io.open(out .. ".pks", "w"))
    sum = assert(io.open(out .. ".summary", "w"))

    for _, thread in ipairs(threads) do
        tid = thread:get("tid")
        p = thread:get("pairs_")

        for i = 1, #p, 2 do
            pks:write(string.format("%d %d %d\n", tid, p[i], p[i + 1]))
        end

        sum:write(string.format("thread %d sent %d answered %d ok %d"
                                .. " bad_body %d poisoned %d\n",
                                tid, thread:get("sent"),
                                thread:get("answered"), thread:get("ok"),
                                thread:get("bad_body"),
                                thread:get("poisoned")))

        for code, n in pairs(thread:get("statuses")) do
            sum:write(string.format("status %d %d\n", code, n))
        end
    end

    sum:write(string.format("threads %d\n", #threads))
    sum:write(string.format("duration_us %d\n", summary.duration))
    sum:write(string.format("requests %d\n", summary.requests))
    sum:write(string.format("bytes %d\n", summary.bytes))
    for _, k in ipairs({"connect", "read", "write", "status", "timeout"}) do
        sum:write(string.format("errors_%s %d\n", k, summary.errors[k]))
    end
    for _, q in ipairs({50, 90, 99, 99.9}) do
        sum:write(string.format("latency_p%s_us %d\n", q,
                                latency:percentile(q)))
    end
    sum:write(string.format("latency_max_us %d\n", latency.max))
    sum:write(string.format("latency_mean_us %.1f\n", latency.mean))

    pks:close()
    sum:close()
end
