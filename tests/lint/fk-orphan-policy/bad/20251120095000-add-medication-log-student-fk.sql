-- Lint example (rule fk-orphan-policy, BAD): the foreign_key step does not say what to do with
-- medication_logs rows whose "studentId" has no student (orphans=abort|quarantine missing).

-- pgrollout:up

-- pgrollout:step foreign_key name=fk_medication_logs_student_id table=medication_logs columns=studentId ref_table=students ref_columns=id on_update=cascade on_delete=restrict phi

-- pgrollout:down

-- pgrollout:step drop_foreign_key name=fk_medication_logs_student_id table=medication_logs
