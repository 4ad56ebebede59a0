-- Run once by PostgreSQL's entrypoint on an empty data directory.
-- pgvector: the knowledge store of the engine's RAG chains.
CREATE EXTENSION IF NOT EXISTS vector;

-- The WhatsApp Engine's job queue (the design document's "Job Queue System").
CREATE TABLE IF NOT EXISTS jobs (
    id UUID PRIMARY KEY,
    payload JSONB NOT NULL,
    status VARCHAR(20) NOT NULL DEFAULT 'queued',
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS jobs_queued ON jobs (created_at) WHERE status = 'queued';
