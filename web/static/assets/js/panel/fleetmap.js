// The live fleet map: online drivers (free, busy, stale in colours) and
// open requests as markers; a click on a request opens it, and the
// selected request's candidates are drawn to it.
import { h } from '../lib/dom.js';
import { createMap, markers } from '../lib/map.js';
import { STATUS, SERVICE, shortId } from '../lib/format.js';
import { driverState } from './state.js';

const L = window.L;

function requestGroup(r) {
  if (r.status === 'unfulfilled' || r.insurance.status === 'manual_review') return 'attention';
  if (r.status === 'received' || r.status === 'awaiting_insurance') return 'waiting';
  if (r.status === 'dispatching') return 'dispatching';
  return 'active';
}

export function mapView(state, drawer) {
  const mapEl = h('div.map');
  const stats = h('div.map-stats');
  const legend = h('div.map-legend',
    h('span', h('i.dot.dot-free'), 'free'), h('span', h('i.dot.dot-busy'), 'busy'), h('span', h('i.dot.dot-stale'), 'no recent fix'),
    h('span', h('i.pin.pin-dispatching'), 'dispatching'), h('span', h('i.pin.pin-waiting'), 'waiting for insurer'),
    h('span', h('i.pin.pin-active'), 'on the job'), h('span', h('i.pin.pin-attention'), 'needs attention'));
  const el = h('section.map-view', mapEl, h('div.map-overlay', stats, legend));

  let map = null;
  let driverMarks;
  let requestMarks;
  let lines = null;

  // The map is made the first time the view is shown: Leaflet needs its
  // container laid out (a detached one has no size, and maxBounds then
  // leaves the view nowhere).
  let ready = null;
  const make = () => createMap(mapEl).then((m) => {
    map = m;
    // Whether the map is moving, for whoever waits for it to settle.
    map.on('movestart', () => { mapEl.dataset.moving = 'true'; });
    map.on('moveend', () => { mapEl.dataset.moving = 'false'; });
    driverMarks = markers(map, {
      create: (it) => L.circleMarker(it.latlng, { radius: 7, weight: 2, className: 'drv' })
        .bindTooltip('', { direction: 'top', offset: [0, -6] }),
      update: (m, it) => {
        const d = it.driver;
        const st = driverState(d);
        const path = m.getElement();
        if (path) {
          path.classList.remove('drv-free', 'drv-busy', 'drv-stale');
          path.classList.add(`drv-${st}`);
          path.dataset.driverId = d.id;
          const at = m.getLatLng();
          path.dataset.lat = at.lat;
          path.dataset.lng = at.lng;
        }
        m.setTooltipContent(`${d.name || d.username} · ${d.vehicle_plate}${d.current_request_id ? ` · on #${shortId(d.current_request_id)}` : ''}`);
      },
    });
    requestMarks = markers(map, {
      create: (it) => L.marker(it.latlng, {
        icon: L.divIcon({ className: 'req-pin', iconSize: [18, 18], iconAnchor: [9, 18], html: '' }),
        riseOnHover: true,
      }).on('click', () => drawer.open(it.id)).bindTooltip('', { direction: 'top', offset: [0, -16] }),
      update: (m, it) => {
        const r = it.request;
        const icon = m.getElement();
        if (icon) {
          icon.classList.remove(...[...icon.classList].filter((c) => c.startsWith('pin-')));
          icon.classList.add(`pin-${requestGroup(r)}`);
          icon.classList.toggle('pin-selected', drawer.current === r.id);
          icon.dataset.requestId = r.id;
        }
        m.setTooltipContent(`#${shortId(r.id)} · ${SERVICE[r.service_type]} · ${STATUS[r.status]}`);
      },
    });
    drawDrivers();
    drawRequests();
  });

  function drawDrivers() {
    if (!map) return;
    const ds = [...state.drivers.values()].filter((d) => d.position);
    driverMarks.set(ds.map((d) => ({ id: d.id, latlng: [d.position.lat, d.position.lng], driver: d })));
    const free = ds.filter((d) => driverState(d) === 'free').length;
    const busy = ds.filter((d) => driverState(d) === 'busy').length;
    const open = [...state.requests.values()].filter((r) => !['completed', 'cancelled', 'rejected'].includes(r.status));
    stats.replaceChildren(
      h('b', String(free)), ' free · ', h('b', String(busy)), ' busy · ', h('b', String(open.length)), ' open requests');
  }

  function drawRequests() {
    if (!map) return;
    const open = [...state.requests.values()].filter((r) => !['completed', 'cancelled', 'rejected'].includes(r.status));
    requestMarks.set(open.map((r) => ({ id: r.id, latlng: [r.location.lat, r.location.lng], request: r })));
  }

  // The selected request's candidates, drawn to it.
  drawer.onCandidates((req, list) => {
    if (!map) return;
    lines?.remove();
    lines = null;
    if (!req || !list?.length) return;
    lines = L.layerGroup(list.map((c) => L.polyline([[c.position.lat, c.position.lng], [req.location.lat, req.location.lng]], {
      className: 'candidate-line', weight: 2, dashArray: '6 6', interactive: false,
    }))).addTo(map);
  });

  state.on('drivers', drawDrivers);
  state.on('requests', () => {
    drawRequests();
    drawDrivers();
  });
  drawer.onChange(drawRequests);
  // Focus the map on a request opened elsewhere (board, alert).
  drawer.onOpen((r) => {
    if (map && el.isConnected) map.flyTo([r.location.lat, r.location.lng], Math.max(map.getZoom(), 10), { duration: 0.6 });
  });

  return {
    el,
    shown: () => (ready ??= make()).then(() => {
      map.invalidateSize();
      drawDrivers();
      drawRequests();
    }),
  };
}
