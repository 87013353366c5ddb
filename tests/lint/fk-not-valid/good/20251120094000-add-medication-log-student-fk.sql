-- Lint example (rule fk-not-valid, GOOD): a foreign_key step; the executor adds the constraint
-- NOT VALID in a short transaction, then runs VALIDATE CONSTRAINT in its own transaction
-- (reads and writes continue), after an orphan check.

-- pgrollout:up

-- pgrollout:step foreign_key name=fk_medication_logs_student_id table=medication_logs columns=studentId ref_table=students ref_columns=id on_update=cascade on_delete=restrict orphans=abort phi

-- pgrollout:down

-- pgrollout:step drop_foreign_key name=fk_medication_logs_student_id table=medication_logs
