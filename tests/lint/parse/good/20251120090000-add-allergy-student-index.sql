-- Lint example (rule parse, GOOD): the same migration with a valid step kind ("index").

-- pgrollout:up

-- pgrollout:step index name=idx_allergies_student_id table=allergies
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_allergies_student_id ON allergies USING btree ("studentId");

-- pgrollout:down

-- pgrollout:step drop_index name=idx_allergies_student_id table=allergies
DROP INDEX CONCURRENTLY IF EXISTS idx_allergies_student_id;
