-- One row per mailbox case (stream_jobs/core/mail.py). `opened_clock` is the calendar's business
-- clock at opening, so a case's business age at any time T is clock(T) - opened_clock.
CREATE TABLE IF NOT EXISTS mail_cases
(
    mailbox        LowCardinality(String),
    thread_id      String,
    seq            UInt32,
    opened_at      DateTime64(3, 'UTC'),
    opened_clock   Float64,
    ended_at       Nullable(DateTime64(3, 'UTC')),
    end            LowCardinality(String),       -- replied | closed | '' (open)
    close_reason   LowCardinality(String),
    lead_seconds   Nullable(Float64),            -- business seconds to the reply
    priority       Bool,
    target_seconds Float64,
    messages       UInt32,
    sender_ref     String,
    derived_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (mailbox, thread_id, seq);
