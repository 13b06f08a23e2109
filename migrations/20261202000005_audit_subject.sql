-- An organisation's timeline reads the audit log by subject (the
-- organisation, its contacts, networks, domains); `/audit` filters by a
-- subject's start. text_pattern_ops serves both `=` and `LIKE 'x%'`.
CREATE INDEX audit_events_subject_idx ON audit_events (subject text_pattern_ops, id);
