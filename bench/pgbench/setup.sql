-- The schema of internal/store/postgres/migrations is applied first (run.sh
-- does it); this adds the accounts the benchmark's requests belong to.
INSERT INTO users (id, username, role, name, phone, password_hash, created_at)
SELECT 'usr_bench_' || i, 'bench' || i, 'customer', 'Bench ' || i, '+905551112233',
       '$argon2id$v=19$m=65536,t=1,p=2$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA', now()
FROM generate_series(1, :owners) i;
ANALYZE;
