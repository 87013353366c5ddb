-- Lint example (rule parse, BAD): the file does not follow the migration format.
-- "create_index" is not a step kind (the kinds are sql, index, drop_index, extension,
-- foreign_key, drop_foreign_key), so the parser rejects the file at that line.

-- pgrollout:up

-- pgrollout:step create_index name=idx_allergies_student_id table=allergies
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_allergies_student_id ON allergies USING btree ("studentId");

-- pgrollout:down

-- pgrollout:step drop_index name=idx_allergies_student_id table=allergies
DROP INDEX CONCURRENTLY IF EXISTS idx_allergies_student_id;
