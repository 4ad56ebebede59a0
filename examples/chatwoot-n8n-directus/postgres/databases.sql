-- Run by the db-init job as the postgres superuser: one database and one
-- owner per application (the design document's n8n, directus and chatwoot databases).
-- Idempotent: a re-run after a failure, or an upgrade, changes nothing.
SELECT 'CREATE ROLE chatwoot LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'chatwoot')\gexec
SELECT 'CREATE ROLE n8n LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'n8n')\gexec
SELECT 'CREATE ROLE directus LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'directus')\gexec
ALTER ROLE chatwoot PASSWORD '{{ CHATWOOT_DB_PASSWORD }}';
ALTER ROLE n8n PASSWORD '{{ N8N_DB_PASSWORD }}';
ALTER ROLE directus PASSWORD '{{ DIRECTUS_DB_PASSWORD }}';
-- Chatwoot's migrations create extensions (pg_trgm, pgcrypto): its owner may.
ALTER ROLE chatwoot SUPERUSER;
SELECT 'CREATE DATABASE chatwoot OWNER chatwoot' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'chatwoot')\gexec
SELECT 'CREATE DATABASE n8n OWNER n8n' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'n8n')\gexec
SELECT 'CREATE DATABASE directus OWNER directus' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'directus')\gexec
