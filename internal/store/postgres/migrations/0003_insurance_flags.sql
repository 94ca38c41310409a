-- Flags raised on a request by its insurance outcome (a service or a tow
-- distance the policy does not cover, a rejection after dispatch), as a
-- JSON array of strings.
ALTER TABLE requests ADD COLUMN insurance_flags text NOT NULL DEFAULT '[]';

-- Checks still waiting for an insurer, per insurer, for the pending gauges.
CREATE INDEX requests_insurance_pending ON requests (insurer, created_at) WHERE insurance_status = 'pending';
