-- pgrollout:up
-- pgrollout:step index name= table=allergies
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx ON allergies (id);
