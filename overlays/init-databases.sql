-- BorgStack: one database and one owner role per application.
-- Run once by the postgres image's entrypoint (docker-entrypoint-initdb.d)
-- through psql, which reads each password from the container's environment
-- with \getenv: no secret is written in this file.

\set ON_ERROR_STOP on

\getenv n8n_password N8N_DB_PASSWORD
\getenv chatwoot_password CHATWOOT_DB_PASSWORD
\getenv directus_password DIRECTUS_DB_PASSWORD
\getenv evolution_password EVOLUTION_DB_PASSWORD

CREATE ROLE n8n_user LOGIN PASSWORD :'n8n_password';
CREATE ROLE chatwoot_user LOGIN PASSWORD :'chatwoot_password';
CREATE ROLE directus_user LOGIN PASSWORD :'directus_password';
CREATE ROLE evolution_user LOGIN PASSWORD :'evolution_password';

CREATE DATABASE n8n_db OWNER n8n_user;
CREATE DATABASE chatwoot_db OWNER chatwoot_user;
CREATE DATABASE directus_db OWNER directus_user;
CREATE DATABASE evolution_db OWNER evolution_user;

-- Nobody but the owner connects to an application's database.
REVOKE ALL ON DATABASE n8n_db FROM PUBLIC;
REVOKE ALL ON DATABASE chatwoot_db FROM PUBLIC;
REVOKE ALL ON DATABASE directus_db FROM PUBLIC;
REVOKE ALL ON DATABASE evolution_db FROM PUBLIC;

-- The monitoring section's slow-query view, in the database an operator's
-- `psql -U postgres` opens (the library is preloaded by postgresql.conf).
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;

-- pgvector where the architecture names it (n8n_db, directus_db) and in
-- chatwoot_db, whose migrations (Captain AI embeddings) need it but whose
-- owner may not create extensions. Created by the superuser, then the
-- schema is handed to the owner.
\connect n8n_db
CREATE EXTENSION IF NOT EXISTS vector;
ALTER SCHEMA public OWNER TO n8n_user;
-- Workflow 1's error handling: messages that failed after their retries
-- (for an admin to replay) and WhatsApp sends held back by rate limits.
SET ROLE n8n_user;
CREATE TABLE IF NOT EXISTS error_queue (
    id bigserial PRIMARY KEY,
    workflow text NOT NULL,
    payload jsonb NOT NULL,
    error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    replayed_at timestamptz
);
CREATE TABLE IF NOT EXISTS failed_messages (
    id bigserial PRIMARY KEY,
    instance text NOT NULL,
    phone text NOT NULL,
    payload jsonb NOT NULL,
    status text NOT NULL DEFAULT 'rate_limited',
    attempts integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    retry_after timestamptz
);
CREATE INDEX IF NOT EXISTS failed_messages_status ON failed_messages (status, retry_after);
RESET ROLE;

\connect chatwoot_db
CREATE EXTENSION IF NOT EXISTS vector;
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
ALTER SCHEMA public OWNER TO chatwoot_user;

\connect directus_db
CREATE EXTENSION IF NOT EXISTS vector;
ALTER SCHEMA public OWNER TO directus_user;

\connect evolution_db
ALTER SCHEMA public OWNER TO evolution_user;
