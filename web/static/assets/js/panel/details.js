// The request drawer: everything about one request (timeline, insurance,
// offers, the driver) and what an operator can do with it (assign by
// hand, cancel, decide the insurance question, send a tracking link).
import { h, put } from '../lib/dom.js';
import { STATUS, SERVICE, INSURANCE, shortId, duration, km, clock, ago } from '../lib/format.js';

const ASSIGNABLE = ['dispatching', 'unfulfilled'];
const FINAL = ['completed', 'cancelled', 'rejected'];

export function detailsDrawer(el, client, state, feats) {
  const changeFns = [];
  const candidateFns = [];
  const openFns = [];
  let current = null;
  let candidates = [];
  let offers = [];
  let message = null;
  // refused: the last manual assignment the server refused, and why
  // ({ driverId, text }), shown by that driver in the picker.
  let refused = null;
  let link = null;
  let token = 0; // drops answers to an older open()

  const changed = () => changeFns.forEach((f) => f());
  const drawCandidates = (r) => candidateFns.forEach((f) => f(r, candidates));

  async function open(id) {
    const my = ++token;
    if (current !== id) {
      candidates = [];
      offers = [];
      message = null;
      refused = null;
      link = null;
    }
    current = id;
    el.hidden = false;
    let r;
    try {
      r = state.requests.get(id) || (await state.refreshRequest(id));
    } catch (e) {
      if (my !== token) return;
      put(el, h('div.drawer-head', h('h2', 'Request'), closeButton()), h('p.error', e.status === 404 ? `No request ${id}.` : e.message));
      return;
    }
    if (my !== token) return;
    render(r);
    changed();
    openFns.forEach((f) => f(r));
    await loadExtras(r, my);
  }

  async function loadExtras(r, my = token) {
    const jobs = [];
    if (feats.offers) jobs.push(client.call(`/v1/requests/${r.id}/offers`).then((o) => { offers = o.items; }).catch(() => {}));
    if (feats.candidates && ASSIGNABLE.includes(r.status)) {
      jobs.push(client.call(`/v1/requests/${r.id}/candidates?limit=6`).then((c) => { candidates = c.items; }).catch(() => { candidates = []; }));
    } else {
      candidates = [];
    }
    await Promise.all(jobs);
    if (my !== token || current !== r.id) return;
    render(state.requests.get(r.id) || r);
    drawCandidates(r);
  }

  function close() {
    token++;
    current = null;
    el.hidden = true;
    candidates = [];
    drawCandidates(null);
    changed();
  }

  const closeButton = () => h('button.ghost.close', { type: 'button', title: 'Close', onclick: close }, '✕');

  async function act(label, fn, onRefused) {
    message = { kind: 'busy', text: `${label}…` };
    refused = null;
    render(state.requests.get(current));
    try {
      const r = await fn();
      if (r && r.id) state.put(r);
      message = { kind: 'ok', text: `${label}: done.` };
    } catch (e) {
      message = { kind: 'error', text: `${label}: ${e.message}` };
      if (onRefused) onRefused(e);
    }
    const r = state.requests.get(current);
    if (r) {
      render(r);
      loadExtras(r);
    }
  }

  // assign gives the request to a candidate by hand. A refusal that names
  // the driver (offline, no recent position, cannot do the service) is
  // shown by that driver; another (busy, the request moved on) above.
  function assign(r, c) {
    const who = c.name || c.driver_id;
    return act(`Assign ${who}`, () => client.call(`/v1/requests/${r.id}/assign`, { method: 'POST', body: { driver_id: c.driver_id } }), (e) => {
      const why = e.field?.('driver_id');
      if (why) {
        refused = { driverId: c.driver_id, text: `${who} ${why}` };
      } else if (e.kind === 'driver-busy') {
        refused = { driverId: c.driver_id, text: `${who} is on another job` };
      }
    });
  }

  function render(r) {
    if (!r || r.id !== current) return;
    const ins = r.insurance;
    const a = r.assignment;
    const reason = h('input', { name: 'reason', placeholder: 'Reason (required to reject)', maxLength: 500 });
    put(el,
      h('div.drawer-head',
        h('div', h('div.drawer-kicker', `#${shortId(r.id)} · ${SERVICE[r.service_type]}`),
          h('h2', { dataset: { status: r.status } }, h('span', { class: `status status-${r.status}` }, STATUS[r.status]))),
        closeButton()),
      message && h('p', { class: `msg msg-${message.kind}`, role: 'status' }, message.text),
      h('dl.facts',
        h('dt', 'Request'), h('dd.mono', r.id),
        h('dt', 'Where'), h('dd', [r.location.address, r.location.district, r.location.province].filter(Boolean).join(', ') || `${r.location.lat}, ${r.location.lng}`),
        r.destination && [h('dt', 'To'), h('dd', r.destination.address || `${r.destination.lat}, ${r.destination.lng}`)],
        h('dt', 'Vehicle'), h('dd', h('span.plate', r.vehicle.plate), ' ', [r.vehicle.make, r.vehicle.model].filter(Boolean).join(' '), ` (${r.vehicle.type})`),
        h('dt', 'Customer'), h('dd', r.contact.name, ' · ', r.contact.phone),
        r.notes && [h('dt', 'Notes'), h('dd', r.notes)],
        h('dt', 'Created'), h('dd', clock(r.created_at), h('small.muted', ` (${ago(r.created_at)} ago)`))),

      h('section.box',
        h('h3', 'Insurance'),
        h('p', h('span', { class: `badge badge-ins-${ins.status}` }, INSURANCE[ins.status]), ' ', r.policy.insurer, ' · ', h('span.mono', r.policy.policy_number)),
        ins.reason && h('p.muted', ins.reason),
        ins.reference && h('p.muted', 'Reference ', ins.reference),
        (ins.status === 'pending' || ins.status === 'manual_review') && !FINAL.includes(r.status) && h('div.row',
          reason,
          h('button', { type: 'button', dataset: { action: 'waive' }, onclick: () => act('Waive insurance', () => client.call(`/v1/requests/${r.id}/insurance`, { method: 'POST', body: { decision: 'waived', reason: reason.value || undefined } })) }, 'Waive'),
          h('button.danger', { type: 'button', dataset: { action: 'reject' }, onclick: () => act('Reject', () => client.call(`/v1/requests/${r.id}/insurance`, { method: 'POST', body: { decision: 'rejected', reason: reason.value } })) }, 'Reject'))),

      h('section.box',
        h('h3', 'Driver'),
        a ? h('div.driver-card', { dataset: { driverId: a.driver_id } },
          h('b', a.driver_name || a.driver_id), ' ', h('span.plate', a.vehicle_plate),
          h('p.muted', `assigned ${clock(a.assigned_at)} · ETA at assignment ${duration(a.eta_seconds)}`))
          : h('p.muted', r.status === 'unfulfilled' ? 'No driver took it: assign one by hand.' : 'No driver yet.'),
        ASSIGNABLE.includes(r.status) && h('div.candidates',
          h('h4', 'Nearest free drivers'),
          // By the picker, and kept when the refused driver has left the
          // list (the reload after a refusal drops an offline driver).
          refused && h('p.field-error', { role: 'alert', dataset: { driverId: refused.driverId } }, refused.text),
          candidates.length ? h('ol.candidate-list', candidates.map((c) => h('li', { dataset: { driverId: c.driver_id } },
            h('span.cand-name', c.name || c.driver_id, ' ', h('span.plate', c.vehicle_plate)),
            h('span.cand-eta', `${duration(c.eta_seconds)} · ${km(c.distance_m)}`),
            h('button.primary', { type: 'button', dataset: { action: 'assign' }, onclick: () => assign(r, c) }, 'Assign'))))
            : h('p.muted', feats.candidates ? 'No free driver able to do this within 50 km.' : 'This server cannot list candidates.'))),

      offers.length > 0 && h('section.box',
        h('h3', `Offers made (${offers.length})`),
        h('table.offers', h('thead', h('tr', h('th', 'Round'), h('th', 'Driver'), h('th', 'ETA'), h('th', 'Outcome'))),
          h('tbody', offers.map((o) => h('tr', h('td', String(o.round + 1)), h('td', o.driver_name || o.driver_id, ' ', h('span.plate', o.vehicle_plate)),
            h('td', duration(o.eta_seconds)), h('td', h('span', { class: `offer offer-${o.status}` }, o.status))))))),

      h('section.box',
        h('h3', 'Timeline'),
        h('ol.timeline', r.timeline.map((t) => h('li', { class: `tl-${t.status}` }, h('span.tl-status', STATUS[t.status]), h('span.tl-at', clock(t.at)), t.reason && h('span.tl-reason', t.reason))))),

      h('section.box.actions',
        h('button', { type: 'button', dataset: { action: 'tracking-link' }, onclick: async () => {
          try {
            const l = await client.call(`/v1/requests/${r.id}/tracking-link`, { method: 'POST' });
            link = new URL(l.url, location.origin).href;
          } catch (e) {
            message = { kind: 'error', text: `Tracking link: ${e.message}` };
          }
          render(state.requests.get(r.id));
        } }, 'Tracking link'),
        !FINAL.includes(r.status) && h('button.danger', { type: 'button', dataset: { action: 'cancel' }, onclick: () => act('Cancel', () => client.call(`/v1/requests/${r.id}/cancel`, { method: 'POST', body: { reason: 'cancelled by operator' } })) }, 'Cancel request'),
        link && h('p.link', h('a', { href: link, target: '_blank', rel: 'noopener' }, 'Customer tracking page'), h('small.muted', ' (send this link to the customer)'))));
  }

  // Keep the open request current.
  state.on('request', ({ id, request, previous }) => {
    if (id !== current) return;
    render(request);
    if (!previous || previous.status !== request.status) loadExtras(request);
  });
  addEventListener('keydown', (e) => { if (e.key === 'Escape' && current) close(); });

  return {
    open,
    close,
    get current() {
      return current;
    },
    onChange: (f) => changeFns.push(f),
    onCandidates: (f) => candidateFns.push(f),
    onOpen: (f) => openFns.push(f),
  };
}
