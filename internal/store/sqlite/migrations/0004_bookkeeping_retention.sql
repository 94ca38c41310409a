-- Receipts and idempotency keys are kept for a while, not for ever: these
-- indexes let the relay's housekeeping find the old ones.
CREATE INDEX processed_messages_at ON processed_messages (processed_at);
CREATE INDEX idempotency_keys_at ON idempotency_keys (created_at);
