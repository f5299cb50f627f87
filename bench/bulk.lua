-- bench/bulk.lua - the wrk script of bench/run's module-bulk-<N>w targets:
-- POST a JSON array of DOCS ~200-byte documents, each unique per thread,
-- and record the pk the answer gives every one of them
--
--   wrk ... -s bench/bulk.lua URL -- TAG OUT [STOP_AFTER [DOCS [CODING]]]
--
-- CODING (module-bulk-{ndjson,gzip,zstd}-<N>w): the documents as NDJSON
-- instead of an array, "ndjson" as they are, "gzip" or "zstd" compressed
-- here (zlib level 6, zstd level 3: the libraries' defaults, through
-- LuaJIT's FFI) and sent with that Content-Encoding; the compressing is
-- wrk's work, not the server's.
--
-- Each document is bench/post.lua's, {"run":TAG,"t":THREAD,"n":COUNTER,
-- "kind":"bench","pad":"xx..."} padded to DOC_SIZE bytes, with n counting
-- documents, not requests: a request carries n = k+1 .. k+DOCS, so that
-- bench/bench.py checks the rows as it does post.lua's. The location has
-- `saveitem items bulk=DOCS;` (or more), which answers
-- {"pks": [pk1, ..., pkDOCS]} in the array's order.
--
-- As in post.lua, response() does not know which request it answers: each
-- thread pairs the i-th pk of a 2xx answer with the i-th document of its
-- latest request (exact with one connection per thread, an upper bound of
-- n with more, element by element, as every request carries DOCS
-- documents). A 2xx answer without exactly DOCS pks counts as bad_body.
-- The pairs of an answer are DOCS lines in a row of OUT.pks: bench.py
-- checks that their rows' n are the paired n shifted by one offset (the
-- answer's pks in element order), which holds with many connections too.
-- done() writes
--   OUT.pks      "t n pk" a line, one per document
--   OUT.summary  "key value" a line, post.lua's keys, where `sent` counts
--                documents handed to wrk and `ok` documents with a pk;
--                `requests_sent` and `docs` (per request) besides
-- wrk calls request() once more on thread 1 before the run and never sends
-- that one: sent is at most DOCS over.
-- STOP_AFTER > 0: a thread stops after that many answers.

DOC_SIZE = 200

local threads = {}

local ffi = require("ffi")

ffi.cdef[[
typedef struct {
    const unsigned char *next_in; unsigned avail_in; unsigned long total_in;
    unsigned char *next_out; unsigned avail_out; unsigned long total_out;
    const char *msg; void *state;
    void *zalloc; void *zfree; void *opaque;
    int data_type; unsigned long adler; unsigned long reserved;
} bench_z_stream;
const char *zlibVersion(void);
int deflateInit2_(bench_z_stream *strm, int level, int method,
                  int windowBits, int memLevel, int strategy,
                  const char *version, int stream_size);
int deflate(bench_z_stream *strm, int flush);
int deflateEnd(bench_z_stream *strm);
unsigned long deflateBound(bench_z_stream *strm, unsigned long sourceLen);
size_t ZSTD_compress(void *dst, size_t dstCapacity, const void *src,
                     size_t srcSize, int compressionLevel);
size_t ZSTD_compressBound(size_t srcSize);
unsigned ZSTD_isError(size_t code);
]]

local zlib, zstd


-- s as gzip (RFC 1952: zlib with windowBits 16 + 15)
local function gzip(s)
    local z = ffi.new("bench_z_stream")
    zlib = zlib or ffi.load("libz.so.1")
    assert(zlib.deflateInit2_(z, 6, 8, 31, 8, 0, zlib.zlibVersion(),
                              ffi.sizeof(z)) == 0)
    local size = tonumber(zlib.deflateBound(z, #s)) + 32
    local out = ffi.new("unsigned char[?]", size)
    z.next_in = s
    z.avail_in = #s
    z.next_out = out
    z.avail_out = size
    assert(zlib.deflate(z, 4) == 1)         -- Z_FINISH, Z_STREAM_END
    local n = size - z.avail_out
    zlib.deflateEnd(z)
    return ffi.string(out, n)
end


local function zstd_compress(s)
    zstd = zstd or ffi.load("libzstd.so.1")
    local size = tonumber(zstd.ZSTD_compressBound(#s))
    local out = ffi.new("unsigned char[?]", size)
    local n = zstd.ZSTD_compress(out, size, s, #s, 3)
    assert(zstd.ZSTD_isError(n) == 0)
    return ffi.string(out, tonumber(n))
end


function setup(thread)
    table.insert(threads, thread)
    thread:set("tid", #threads)
end


function init(args)
    tag = args[1] or "bench"
    out = args[2] or "wrk"
    stop_after = tonumber(args[3] or "0") or 0
    docs = tonumber(args[4] or "100") or 100
    coding = args[5] or ""

    sent = 0          -- documents handed to wrk
    requests_sent = 0 -- request() calls
    poisoned = 0      -- never: read_summary wants the key
    answered = 0      -- response() calls
    ok = 0            -- documents given a pk by a 2xx
    bad_body = 0      -- 2xx without DOCS pks
    npairs = 0
    pairs_ = {}       -- n1, pk1, n2, pk2, ...
    statuses = {}     -- status code -> count

    head = string.format('{"run":"%s","t":%d,"n":', tag, tid)
    pad = string.rep("x", DOC_SIZE)

    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"

    if coding ~= "" then
        wrk.headers["Content-Type"] = "application/x-ndjson"
    end

    if coding == "gzip" or coding == "zstd" then
        wrk.headers["Content-Encoding"] = coding
    end
end


function request()
    local body = {}
    local doc

    requests_sent = requests_sent + 1

    for i = 1, docs do
        sent = sent + 1
        doc = head .. sent .. ',"kind":"bench","pad":"'
        body[i] = doc .. string.sub(pad, 1, DOC_SIZE - #doc - 2) .. '"}'
    end

    if coding == "" then
        return wrk.format(nil, nil, nil,
                          "[" .. table.concat(body, ",") .. "]")
    end

    body = table.concat(body, "\n") .. "\n"

    if coding == "gzip" then
        body = gzip(body)
    elseif coding == "zstd" then
        body = zstd_compress(body)
    end

    return wrk.format(nil, nil, nil, body)
end


function response(status, headers, body)
    local list, pks, first

    answered = answered + 1
    statuses[status] = (statuses[status] or 0) + 1

    if status >= 200 and status < 300 then
        list = body and string.match(
            body, '^%s*{%s*"pks"%s*:%s*%[([%d%s,]*)%]%s*}%s*$')
        pks = {}
        if list then
            for pk in string.gmatch(list, "%d+") do
                pks[#pks + 1] = pk
            end
        end

        if #pks == docs then
            -- the latest request's documents: first + 1 .. first + docs
            first = sent - docs
            for i = 1, docs do
                npairs = npairs + 1
                pairs_[2 * npairs - 1] = first + i
                pairs_[2 * npairs] = tonumber(pks[i])
            end
            ok = ok + docs
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
                                .. " bad_body %d poisoned %d"
                                .. " requests_sent %d docs %d\n",
                                tid, thread:get("sent"),
                                thread:get("answered"), thread:get("ok"),
                                thread:get("bad_body"),
                                thread:get("poisoned"),
                                thread:get("requests_sent"),
                                thread:get("docs")))

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
