// The customer's tracking page: opened from a link (/track/{id}#t=token),
// no login. It shows where the help is, live, and lets the customer cancel.
import { ApiError } from '../lib/api.js';
import { h, put } from '../lib/dom.js';
import { every } from '../lib/live.js';
import { createMap } from '../lib/map.js';
import { STATUS, SERVICE, STEPS, duration, clock, shortId } from '../lib/format.js';

const L = window.L;
const root = document.getElementById('app');
const id = location.pathname.split('/').pop();
const token = new URLSearchParams(location.hash.slice(1)).get('t');

const HEADLINE = {
  received: 'We have your request',
  awaiting_insurance: 'Checking your cover with your insurer',
  dispatching: 'Finding the nearest driver',
  assigned: 'A driver is assigned',
  en_route: 'Your driver is on the way',
  arrived: 'Your driver has arrived',
  in_service: 'Your driver is working on it',
  completed: 'All done. Safe travels!',
  cancelled: 'This request was cancelled',
  rejected: 'Your insurer did not cover this request',
  unfulfilled: 'We are finding you a driver by hand',
};

async function call(path, init = {}) {
  const res = await fetch(path, {
    ...init, cache: 'no-store',
    headers: { Authorization: `Bearer ${token}`, ...(init.body ? { 'Content-Type': 'application/json' } : {}) },
  });
  const data = await res.json().catch(() => null);
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

function refused(e) {
  const text = e.status === 401 ? 'This link has expired or is not valid. Ask for a new one.'
    : e.status === 404 ? 'We could not find this request.' : `Something went wrong: ${e.message}`;
  put(root, h('main.track-refused', h('img', { src: '/assets/img/yolda.svg', alt: '' }), h('h1', 'Yolda'), h('p.error', { role: 'alert', dataset: { refused: String(e.status) } }, text)));
}

async function start() {
  if (!token) return refused({ status: 401 });
  let r;
  try {
    r = await call(`/v1/track/${encodeURIComponent(id)}`);
  } catch (e) {
    return refused(e);
  }
  const head = h('section.track-head');
  const steps = h('ol.steps');
  const driverBox = h('section.track-driver');
  const mapEl = h('div.track-map');
  const foot = h('section.track-foot');
  put(root, h('header.phone-bar', h('img', { src: '/assets/img/yolda.svg', alt: '' }), h('b', 'Yolda'), h('span.muted', 'roadside assistance')),
    h('main.phone-main', head, steps, driverBox, mapEl, foot));

  const map = await createMap(mapEl, { center: [r.location.lat, r.location.lng], zoom: 13, labels: false });
  L.marker([r.location.lat, r.location.lng], { icon: L.divIcon({ className: 'req-pin pin-dispatching', iconSize: [18, 18], iconAnchor: [9, 18], html: '' }), interactive: false }).addTo(map);
  const truck = L.circleMarker([r.location.lat, r.location.lng], { radius: 9, weight: 3, className: 'drv drv-busy' });
  let fitted = false;
  let confirming = false;
  let message = '';

  function render() {
    put(head, h('p.kicker', `${SERVICE[r.service_type]} · #${shortId(r.id)}`), h('h1', { dataset: { status: r.status } }, HEADLINE[r.status] || STATUS[r.status]));
    const at = STEPS.indexOf(r.status);
    put(steps, at < 0 ? null : STEPS.map((s, i) => h('li', { class: i < at ? 'done' : i === at ? 'now' : '' }, STATUS[s])));
    const d = r.driver;
    put(driverBox, d ? h('div.driver-card', { dataset: { plate: d.vehicle_plate } },
      h('div.avatar', h('span.truck')),
      h('div', h('b.driver-name', d.name), h('div', h('span.plate', d.vehicle_plate))),
      (r.status === 'assigned' || r.status === 'en_route') && h('div.eta', h('span', 'arrives in'), h('b', { dataset: { eta: String(d.eta_seconds) } }, duration(d.eta_seconds))))
      : r.status === 'awaiting_insurance' || r.status === 'dispatching' || r.status === 'received' || r.status === 'unfulfilled'
        ? h('p.muted', 'You will see your driver here as soon as one is on the job.') : null);
    if (d?.location) {
      truck.setLatLng([d.location.lat, d.location.lng]).addTo(map);
      truck.getElement()?.setAttribute('data-lat', String(d.location.lat));
      if (!fitted) {
        map.fitBounds([[d.location.lat, d.location.lng], [r.location.lat, r.location.lng]], { padding: [40, 40], maxZoom: 14 });
        fitted = true;
      }
    } else {
      truck.remove();
    }
    put(foot,
      message && h('p.msg', { role: 'status' }, message),
      r.can_cancel && (confirming
        ? h('div.row', h('span', 'Cancel this request?'),
          h('button.danger', { type: 'button', dataset: { action: 'confirm-cancel' }, onclick: cancel }, 'Yes, cancel'),
          h('button', { type: 'button', onclick: () => { confirming = false; render(); } }, 'No'))
        : h('button.ghost', { type: 'button', dataset: { action: 'cancel' }, onclick: () => { confirming = true; render(); } }, 'Cancel request')),
      h('p.muted.small', 'Updated ', clock(new Date()), ' · this link works until ', clock(r.link_expires_at)));
  }

  async function cancel() {
    try {
      r = await call(`/v1/track/${encodeURIComponent(id)}/cancel`, { method: 'POST', body: JSON.stringify({ reason: 'cancelled by the customer' }) });
      message = 'Your request is cancelled.';
    } catch (e) {
      message = e.status === 409 ? 'It is too late to cancel from here: call us.' : `Could not cancel: ${e.message}`;
    }
    confirming = false;
    render();
  }

  render();
  const poll = every(2000, async () => {
    try {
      r = await call(`/v1/track/${encodeURIComponent(id)}`);
    } catch (e) {
      if (e.status === 401 || e.status === 404) {
        poll.stop();
        refused(e);
        return;
      }
      throw e;
    }
    render();
  });
}

start();
