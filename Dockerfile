# ngx_http_saveitem_module in Debian's nginx: POST JSON to /items, get
# {"pk": N} back. See the README ("Container") for build, run and settings.
#
#   docker build -t saveitem .
#   docker run -p 8080:8080 -e PGHOST=db -e PGUSER=... -e PGPASSWORD=... \
#              -e PGDATABASE=... saveitem

# build: the Debian package, as debian/ builds it anywhere (dh-sequence-nginx
# against nginx-dev: Debian's nginx flags, its ABI in the package's Depends)
FROM debian:bookworm-slim AS build

WORKDIR /build/saveitem

COPY debian/control debian/control

# the Build-Depends of debian/control, and build-essential
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive \
       apt-get build-dep -y --no-install-recommends ./ \
    && rm -rf /var/lib/apt/lists/*

COPY config ngx_http_saveitem_module.c README.md ./
COPY src/ src/
COPY debian/ debian/

RUN DEB_BUILD_OPTIONS=noautodbgsym dpkg-buildpackage -us -uc -b \
    && dpkg-deb --info ../libnginx-mod-http-saveitem_*.deb \
    && dpkg-deb --contents ../libnginx-mod-http-saveitem_*.deb


# run: Debian's nginx (the package providing the nginx ABI the module was
# built against), the module package with its libpq5, libjansson4, zlib1g
# and libzstd1 (its shlibs Depends), the conf template; no compiler, no
# curl
FROM debian:bookworm-slim

COPY --from=build /build/libnginx-mod-http-saveitem_*.deb /tmp/

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive \
       apt-get install -y --no-install-recommends \
           nginx /tmp/libnginx-mod-http-saveitem_*.deb \
    && rm -rf /var/lib/apt/lists/* /tmp/*.deb \
    && rm -f /etc/nginx/nginx.conf /etc/nginx/sites-enabled/default \
    && ln -sf /dev/stdout /var/log/nginx/access.log \
    && ln -sf /dev/stderr /var/log/nginx/error.log \
    && groupadd --gid 10001 saveitem \
    && useradd --uid 10001 --gid saveitem --no-create-home \
               --home-dir /nonexistent --shell /usr/sbin/nologin saveitem \
    && chown -R saveitem:saveitem /var/lib/nginx

COPY conf/docker/nginx.conf.template /etc/nginx/saveitem/
COPY conf/docker/entrypoint.sh /usr/local/bin/saveitem-entrypoint
COPY conf/docker/healthcheck.sh /usr/local/bin/saveitem-healthcheck

ENV SAVEITEM_PORT=8080 \
    SAVEITEM_TABLE=items \
    SAVEITEM_POOL=8 \
    SAVEITEM_QUEUE=256 \
    SAVEITEM_QUEUE_TIMEOUT=5s \
    SAVEITEM_QUERY_TIMEOUT=30s \
    SAVEITEM_WORKERS=auto \
    SAVEITEM_MAX_BODY=1m

USER 10001:10001
EXPOSE 8080
STOPSIGNAL SIGQUIT

# healthy: GET /ready (saveitem_ready) says the database can take a write
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/saveitem-healthcheck"]

ENTRYPOINT ["/usr/local/bin/saveitem-entrypoint"]
