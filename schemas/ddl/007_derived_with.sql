-- Reports (issue 10): which agreements derived each fact. `derived_with` is the fingerprint of
-- the agreements' derivation inputs (schemas/agreements.py: derivation_inputs): calendars, time
-- zone, service-level and short-abandon thresholds, mail targets and keywords. A report run with
-- other agreements compares the inputs and names the measures that would change. '' for facts
-- derived before this migration (unknown).
ALTER TABLE call_contacts ADD COLUMN IF NOT EXISTS derived_with LowCardinality(String) DEFAULT '';
ALTER TABLE mail_cases ADD COLUMN IF NOT EXISTS derived_with LowCardinality(String) DEFAULT '';

-- Each set of derivation inputs once, by fingerprint (the JSON of derivation_inputs).
CREATE TABLE IF NOT EXISTS agreements_seen
(
    fingerprint String,
    inputs      String,
    recorded_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(recorded_at)
ORDER BY fingerprint;
