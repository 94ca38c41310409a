-- Province filters compare names the way people type them: "Izmir",
-- "izmir" and "IZMIR" find "İzmir" (Turkish casing, Turkish letters'
-- diacritics dropped). The key is internal/fold.Key spelled in SQL; a
-- conformance test checks that the two agree.
ALTER TABLE requests ADD COLUMN province_key TEXT GENERATED ALWAYS AS (lower(
    replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(province, 'İ', 'i'), 'I', 'i'), 'ı', 'i'), 'Ş', 's'), 'ş', 's'), 'Ç', 'c'), 'ç', 'c'), 'Ğ', 'g'), 'ğ', 'g'), 'Ö', 'o'), 'ö', 'o'), 'Ü', 'u'), 'ü', 'u'), 'Â', 'a'), 'â', 'a'), 'Î', 'i'), 'î', 'i'), 'Û', 'u'), 'û', 'u'))) VIRTUAL;
CREATE INDEX requests_province_key ON requests (province_key, id DESC);
