// The offline map: Leaflet (vendored, loaded as a classic script: window.L)
// over Yolda's own basemap of Turkey (provinces and major roads, from
// /assets/basemap/turkey.json), with no tile server anywhere.
const L = window.L;

let basemapOnce;
const basemap = () => (basemapOnce ??= fetch('/assets/basemap/turkey.json').then((r) => r.json()));

// Turkey, with a little sea around it.
const TURKEY = [[35.6, 25.8], [42.3, 44.9]];

export async function createMap(el, { center, zoom = 13, labels = true } = {}) {
  const map = L.map(el, {
    minZoom: 5, maxZoom: 16,
    zoomSnap: 0.25, preferCanvas: false, attributionControl: true,
    maxBounds: [[33.5, 23.5], [44.5, 47.5]],
  });
  if (center) map.setView(center, zoom);
  else map.fitBounds(TURKEY);
  map.attributionControl.setPrefix(false);
  map.attributionControl.addAttribution('Provinces: Natural Earth · Leaflet');
  const data = await basemap();
  const provinces = { type: 'FeatureCollection', features: data.features.filter((f) => f.properties.kind === 'province') };
  const roads = { type: 'FeatureCollection', features: data.features.filter((f) => f.properties.kind === 'road') };
  L.geoJSON(provinces, { style: () => ({ className: 'basemap-province', weight: 1 }), interactive: false }).addTo(map);
  L.geoJSON(roads, {
    style: (f) => ({ className: `basemap-road basemap-${f.properties.class}`, weight: f.properties.class === 'motorway' ? 3 : 1.6 }),
    interactive: false,
  }).addTo(map);
  if (labels) {
    const layer = L.layerGroup();
    for (const f of provinces.features) {
      const at = f.properties.label;
      if (!at) continue;
      L.marker([at[1], at[0]], {
        interactive: false, keyboard: false,
        icon: L.divIcon({ className: 'basemap-label', html: '', iconSize: null }),
      }).on('add', (e) => {
        const span = document.createElement('span');
        span.textContent = f.properties.name;
        e.target.getElement().replaceChildren(span);
      }).addTo(layer);
    }
    const toggle = () => (map.getZoom() >= 6.5 ? layer.addTo(map) : layer.remove());
    map.on('zoomend', toggle);
    toggle();
  }
  return map;
}

// provinceNames lists the basemap's provinces, for filters.
export async function provinceNames() {
  const data = await basemap();
  return data.features
    .filter((f) => f.properties.kind === 'province')
    .map((f) => f.properties.name)
    .sort((a, b) => a.localeCompare(b, 'tr'));
}

// markers keeps one marker per id on a map: set() adds, moves and
// restyles, and drops those not given.
export function markers(map, make) {
  const byId = new Map();
  return {
    byId,
    set(items) {
      const seen = new Set();
      for (const it of items) {
        seen.add(it.id);
        let m = byId.get(it.id);
        if (!m) {
          m = make.create(it).addTo(map);
          byId.set(it.id, m);
        } else {
          m.setLatLng(it.latlng);
        }
        make.update?.(m, it);
      }
      for (const [id, m] of byId) {
        if (!seen.has(id)) {
          m.remove();
          byId.delete(id);
        }
      }
    },
    move(id, latlng) {
      byId.get(id)?.setLatLng(latlng);
    },
  };
}
