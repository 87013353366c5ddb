-- Lint example (rule fk-not-valid, BAD): a validating ADD CONSTRAINT ... FOREIGN KEY in an "sql"
-- step holds SHARE ROW EXCLUSIVE on medication_logs and students while it scans every log row,
-- blocking writes to both tables. (An FK in an sql step also has no orphan check, so
-- fk-orphan-policy fires on the same step: the only fix for both is a foreign_key step.)

-- pgrollout:up

-- pgrollout:step sql lock=SHARE_ROW_EXCLUSIVE phi
ALTER TABLE medication_logs ADD CONSTRAINT fk_medication_logs_student_id FOREIGN KEY ("studentId") REFERENCES students (id) ON UPDATE CASCADE ON DELETE RESTRICT;

-- pgrollout:down

-- pgrollout:step drop_foreign_key name=fk_medication_logs_student_id table=medication_logs
