// What the panel knows: open and recently finished requests, online
// drivers, insurers' health. Views listen for 'requests', 'drivers',
// 'insurers' and 'request' (one request changed: detail.id) events.
import { OPEN, FINAL } from '../lib/format.js';

export function createState(client) {
  const events = new EventTarget();
  const requests = new Map();
  const drivers = new Map();
  let insurers = [];
  // Where GET /v1/insurers had the health from: every live insurance
  // process (the board), or the answering process alone, and why.
  let insurersSource = null;
  const emit = (type, detail) => events.dispatchEvent(new CustomEvent(type, { detail }));

  function upsert(r) {
    const old = requests.get(r.id);
    requests.set(r.id, r);
    if (!old || old.updated_at !== r.updated_at) {
      emit('request', { id: r.id, request: r, previous: old });
      return true;
    }
    return false;
  }

  return {
    events,
    requests,
    drivers,
    get insurersSource() {
      return insurersSource;
    },
    get insurers() {
      return insurers;
    },
    on(type, fn) {
      events.addEventListener(type, (e) => fn(e.detail));
    },

    async refreshRequests() {
      const [open, done] = await Promise.all([
        client.call(`/v1/requests?status=${OPEN.join(',')}&limit=500`),
        client.call(`/v1/requests?status=${FINAL.join(',')}&limit=30`),
      ]);
      const seen = new Set();
      let changed = false;
      for (const r of [...open.items, ...done.items]) {
        seen.add(r.id);
        changed = upsert(r) || changed;
      }
      for (const id of requests.keys()) {
        if (!seen.has(id)) {
          requests.delete(id);
          changed = true;
        }
      }
      if (changed) emit('requests');
    },

    async refreshRequest(id) {
      const r = await client.call(`/v1/requests/${encodeURIComponent(id)}`);
      if (upsert(r)) emit('requests');
      return r;
    },

    // put stores a request an action answered with.
    put(r) {
      if (upsert(r)) emit('requests');
    },

    async refreshDrivers() {
      const page = await client.call('/v1/drivers?availability=online&limit=500');
      const seen = new Set();
      for (const d of page.items) {
        seen.add(d.id);
        drivers.set(d.id, d);
      }
      for (const id of drivers.keys()) if (!seen.has(id)) drivers.delete(id);
      emit('drivers');
    },

    // moveDriver moves a known driver and reports whether it knew it.
    moveDriver(id, lat, lng, at) {
      const d = drivers.get(id);
      if (!d) return false;
      d.position = { lat, lng, at };
      d.fresh = true;
      emit('drivers');
      return true;
    },

    async refreshInsurers() {
      const page = await client.call('/v1/insurers');
      insurers = page.items;
      insurersSource = { source: page.source, error: page.source_error, processes: page.processes || [] };
      emit('insurers');
    },
  };
}

// driverState is how the map colours a driver.
export function driverState(d) {
  if (!d.fresh) return 'stale';
  return d.current_request_id ? 'busy' : 'free';
}
