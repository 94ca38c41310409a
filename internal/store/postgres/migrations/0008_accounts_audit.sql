-- Accounts can be disabled and have their tokens revoked (a token carries
-- the token version it was issued for), and the audit trail of security
-- events. Renumber at merge time if another migration took this number.

ALTER TABLE users
    ADD COLUMN disabled      boolean NOT NULL DEFAULT false,
    ADD COLUMN token_version bigint NOT NULL DEFAULT 0,
    ADD COLUMN updated_at    timestamptz;
UPDATE users SET updated_at = created_at;
ALTER TABLE users ALTER COLUMN updated_at SET NOT NULL;
CREATE INDEX users_role ON users (role, id DESC);

-- Append-only: rows are inserted, read, and deleted only once older than
-- the retention; the trigger refuses every update.
CREATE TABLE audit_log (
    id         text PRIMARY KEY,
    at         timestamptz NOT NULL,
    action     text NOT NULL,
    actor_id   text NOT NULL DEFAULT '',
    actor_role text NOT NULL DEFAULT '',
    target     text NOT NULL DEFAULT '',
    address    text NOT NULL DEFAULT '',
    request_id text NOT NULL DEFAULT '',
    details    jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_actor ON audit_log (actor_id, id DESC);
CREATE INDEX audit_log_target ON audit_log (target, id DESC);
CREATE INDEX audit_log_action ON audit_log (action, id DESC);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
