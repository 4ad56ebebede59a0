#!/bin/sh
# A minimal stand-in for the FastAPI engine, so that the whole path (build,
# OCI layout, bundle, install) runs without the network: it answers the
# engine's health endpoint on port 8000. The real engine replaces this
# directory with its Dockerfile and code; see ../README.md.
mkdir -p /tmp/www
printf '{"status":"ok","service":"flomastr-engine","tenants":"%s"}\n' "$TENANTS" > /tmp/www/index.html
exec /bin/busybox httpd -f -p 8000 -h /tmp/www
