#!/bin/sh
# The architecture's "BorgStack Full Backup" job (workflow 3), run with
# Duplicati's own command-line client so that no one has to create it in the
# web UI: daily at BACKUP_AT (after the dumps at BACKUP_DUMP_AT), incremental,
# AES-256 with the site's passphrase, retention 7 daily, 4 weekly,
# 12 monthly, 5 yearly; a failed run is retried once an hour later.
# /source holds every volume the workflow names, live database files
# included as it asks; the dumps under /source/dumps are the consistent copy
# to restore the databases from. Without a destination it only says so and waits, so that a site can set
# one later by re-installing with --set BACKUP_DESTINATION=….
set -eu
cli=${DUPLICATI_CLI:-/opt/duplicati/duplicati-cli}
state=${BACKUP_STATE_DIR:-/data}
retention="7D:1D,4W:1W,12M:1M,5Y:1Y"

backup() {
  "$cli" backup "$BACKUP_DESTINATION" /source/ \
    --backup-name="BorgStack Full Backup" \
    --dbpath="$state/borgstack-full-backup.sqlite" \
    --passphrase="$BACKUP_PASSPHRASE" \
    --encryption-module=aes \
    --retention-policy="$retention"
}

# .backup-failed in the state volume makes the service unhealthy (its healthcheck), so
# that `bale audit` and `docker ps` show a failed night without any mail.
ok() { date -Iseconds > "$state/.backup-ok"; rm -f "$state/.backup-failed"; }
run() {
  if backup; then
    ok
  else
    echo "backup failed; retrying in one hour" >&2
    sleep "${RETRY_AFTER:-3600}"
    if backup; then
      ok
    else
      date -Iseconds > "$state/.backup-failed"
      echo "backup failed again; next try at $BACKUP_AT" >&2
    fi
  fi
}

echo "${BACKUP_DESTINATION:+scheduled}" > "$state/.backup-state"
if [ -z "$BACKUP_DESTINATION" ]; then
  echo "no BACKUP_DESTINATION set: no backup runs (re-install with --set BACKUP_DESTINATION=...)" >&2
  exec sleep infinity
fi
if [ -z "$BACKUP_PASSPHRASE" ]; then
  echo "BACKUP_DESTINATION is set but BACKUP_PASSPHRASE is empty: refusing to write unencrypted backups" >&2
  exit 1
fi
[ "${BACKUP_ONCE:-}" = 1 ] && { run; exit 0; }
while true; do
  now=$(date +%s)
  next=$(date -d "$(date +%F) $BACKUP_AT" +%s)
  [ "$next" -gt "$now" ] || next=$((next + 86400))
  sleep $((next - now))
  run
done
