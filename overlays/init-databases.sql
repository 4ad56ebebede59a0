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

-- pgvector where the architecture names it (n8n_db, directus_db) and in
-- chatwoot_db, whose migrations (Captain AI embeddings) need it but whose
-- owner may not create extensions. Created by the superuser, then the
-- schema is handed to the owner.
\connect n8n_db
CREATE EXTENSION IF NOT EXISTS vector;
ALTER SCHEMA public OWNER TO n8n_user;

\connect chatwoot_db
CREATE EXTENSION IF NOT EXISTS vector;
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
ALTER SCHEMA public OWNER TO chatwoot_user;

\connect directus_db
CREATE EXTENSION IF NOT EXISTS vector;
ALTER SCHEMA public OWNER TO directus_user;

\connect evolution_db
ALTER SCHEMA public OWNER TO evolution_user;
