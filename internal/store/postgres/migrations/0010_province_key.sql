-- Province filters compare names the way people type them: "Izmir",
-- "izmir" and "IZMIR" find "İzmir" (Turkish casing, Turkish letters'
-- diacritics dropped). The key is internal/fold.Key spelled in SQL
-- (translate maps the Turkish letters, lower then only meets ASCII ones);
-- a conformance test checks that the two agree.
ALTER TABLE requests ADD COLUMN province_key text
    GENERATED ALWAYS AS (lower(translate(province, 'İIıŞşÇçĞğÖöÜüÂâÎîÛû', 'iiissccggoouuaaiiuu'))) STORED;
CREATE INDEX requests_province_key ON requests (province_key, id DESC);
