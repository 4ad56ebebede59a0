#!/bin/sh
# Dumps every application database to /dumps (a volume Duplicati backs up):
# once at start, then daily at DUMP_AT (HH:MM, the site's time zone), before
# Duplicati's nightly run. Each dump is written to a temp file and renamed,
# so Duplicati never reads a half-written one.
set -eu
dump() {
  for db in n8n_db chatwoot_db directus_db evolution_db; do
    pg_dump -h postgresql -U postgres -Fc -f "/dumps/$db.dump.tmp" "$db"
    mv "/dumps/$db.dump.tmp" "/dumps/$db.dump"
  done
  date -Iseconds > /dumps/.postgres-ok
}
dump
while true; do
  now=$(date +%s)
  next=$(date -d "$(date +%F) $DUMP_AT" +%s 2>/dev/null || date -D '%Y-%m-%d %H:%M' -d "$(date +%F) $DUMP_AT" +%s)
  [ "$next" -gt "$now" ] || next=$((next + 86400))
  sleep $((next - now))
  dump
done
