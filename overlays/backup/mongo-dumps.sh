#!/bin/sh
# Dumps Lowcoder's MongoDB database to /dumps, like pg-dumps.sh: at start,
# then daily at DUMP_AT; written to a temp archive and renamed.
set -eu
dump() {
  mongodump --uri "mongodb://admin:${MONGODB_ROOT_PASSWORD}@mongodb:27017/?authSource=admin" \
    --db lowcoder --archive=/dumps/lowcoder.archive.tmp --gzip --quiet
  mv /dumps/lowcoder.archive.tmp /dumps/lowcoder.archive
  date -Iseconds > /dumps/.mongodb-ok
}
dump
while true; do
  now=$(date +%s)
  next=$(date -d "$(date +%F) $DUMP_AT" +%s)
  [ "$next" -gt "$now" ] || next=$((next + 86400))
  sleep $((next - now))
  dump
done
