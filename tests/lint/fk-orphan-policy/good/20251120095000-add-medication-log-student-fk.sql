-- Lint example (rule fk-orphan-policy, GOOD): orphans=abort: any orphan log row aborts the
-- step, its count is reported, and nothing changes.

-- pgrollout:up

-- pgrollout:step foreign_key name=fk_medication_logs_student_id table=medication_logs columns=studentId ref_table=students ref_columns=id on_update=cascade on_delete=restrict orphans=abort phi

-- pgrollout:down

-- pgrollout:step drop_foreign_key name=fk_medication_logs_student_id table=medication_logs
