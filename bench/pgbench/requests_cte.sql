-- The same rows as requests_tx.sql, in ONE statement (so one round trip and
-- an implicit transaction), the way internal/store/postgres CreateRequests
-- sends a group-commit batch. -D n=1 or -D n=10.
\set owner random(1, :owners)
\set r random(1, 2000000000)
WITH r AS (
  INSERT INTO requests (id, owner_id, status, service_type, lat, lng, address, province, district,
    dest_lat, dest_lng, dest_address, dest_province, dest_district,
    vehicle_plate, vehicle_make, vehicle_model, vehicle_type, insurer, policy_number,
    contact_name, contact_phone, notes,
    insurance_status, insurance_checked_at, insurance_reason, insurance_coverage, insurance_reference,
    driver_id, driver_name, driver_plate, assigned_at, eta_seconds,
    created_at, updated_at, version)
  SELECT 'req_' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISSMS') || lpad(:client_id::text, 3, '0') || lpad(to_hex(:r::int), 8, '0') || lpad(g::text, 3, '0'), 'usr_bench_' || ((:owner::int + g) % :owners::int + 1), 'received', 'tow', 41.0082 + g / 1000.0, 28.9784, 'Fatih, İstanbul', 'İstanbul', 'Fatih',
    41.05, 29.01, 'Servis, Şişli', '', '',
    '34ABC' || lpad(g::text, 3, '0'), 'Fiat', 'Egea', 'car', 'anadolu', 'POL-' || :r,
    'Ayşe Yılmaz', '+905551112233', 'Left lane, hazard lights on',
    'pending', NULL, NULL, NULL, NULL,
    NULL, NULL, NULL, NULL, NULL,
    now(), now(), 1
  FROM generate_series(1, :n::int) g
  RETURNING id, owner_id
), t AS (
  INSERT INTO request_timeline (request_id, seq, status, at, actor_id, reason)
  SELECT r.id, 1, 'received', now(), r.owner_id, '' FROM r
)
INSERT INTO outbox (id, subject, payload, created_at)
SELECT 'msg_' || r.id || '_' || m.k, m.subject, convert_to(m.pre || r.id || m.post, 'UTF8'), now()
FROM r CROSS JOIN (VALUES
    (1, 'jobs.insurance.verify',
     '{"id":"msg_01JDQ3M6Y9B1X4G0ZC5V7N2K8P","type":"insurance.verify","version":1,"occurred_at":"2026-11-26T10:00:00.123456Z","request_id":"',
     '","actor":{"id":"usr_01JDQ3M6Y9B1X4G0ZC5V7N2K8P","role":"customer"},"data":{"insurer":"anadolu","policy_number":"POL-123456","plate":"34ABC123","service_type":"tow","incident_at":"2026-11-26T10:00:00.123456Z"}}'),
    (2, 'jobs.dispatch.request',
     '{"id":"msg_01JDQ3M6Y9B1X4G0ZC5V7N2K8Q","type":"dispatch.request","version":1,"occurred_at":"2026-11-26T10:00:00.123456Z","request_id":"',
     '","actor":{"id":"usr_01JDQ3M6Y9B1X4G0ZC5V7N2K8P","role":"customer"},"data":{"service_type":"tow","location":{"lat":41.0082,"lng":28.9784,"address":"Fatih, İstanbul","province":"İstanbul","district":"Fatih"}}}'),
    (3, 'events.request.created',
     '{"id":"msg_01JDQ3M6Y9B1X4G0ZC5V7N2K8R","type":"request.created","version":1,"occurred_at":"2026-11-26T10:00:00.123456Z","request_id":"',
     '","actor":{"id":"usr_01JDQ3M6Y9B1X4G0ZC5V7N2K8P","role":"customer"},"data":{"status":"received","service_type":"tow","location":{"lat":41.0082,"lng":28.9784,"address":"Fatih, İstanbul","province":"İstanbul","district":"Fatih"},"destination":{"lat":41.05,"lng":29.01,"address":"Servis, Şişli"},"vehicle":{"plate":"34ABC123","make":"Fiat","model":"Egea","type":"car"},"policy":{"insurer":"anadolu","policy_number":"POL-123456"},"contact":{"name":"Ayşe Yılmaz","phone":"+905551112233"},"notes":"Left lane, hazard lights on"}}')
  ) AS m(k, subject, pre, post)
ORDER BY r.id, m.k;
