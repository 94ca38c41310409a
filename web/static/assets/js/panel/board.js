// The dispatch board: one column per stage of a request, the ones that
// need a person first; filters and a search by request id or plate.
import { h, put } from '../lib/dom.js';
import { STATUS, SERVICE, INSURANCE, shortId, ago } from '../lib/format.js';
import { provinceNames } from '../lib/map.js';

const COLUMNS = [
  { key: 'attention', title: 'Needs attention', match: (r) => r.status === 'unfulfilled' || (r.insurance.status === 'manual_review' && !final(r)) },
  { key: 'insurer', title: 'Waiting for insurer', match: (r) => r.status === 'received' || r.status === 'awaiting_insurance' },
  { key: 'dispatching', title: 'Dispatching', match: (r) => r.status === 'dispatching' },
  { key: 'assigned', title: 'Assigned', match: (r) => r.status === 'assigned' },
  { key: 'en_route', title: 'En route', match: (r) => r.status === 'en_route' },
  { key: 'arrived', title: 'Arrived', match: (r) => r.status === 'arrived' },
  { key: 'in_service', title: 'In service', match: (r) => r.status === 'in_service' },
  { key: 'done', title: 'Recently closed', match: (r) => final(r) },
];

// PER_COLUMN caps the cards drawn per column: on a bayram morning a column
// holds hundreds, and the newest are the ones to see.
const PER_COLUMN = 60;

const final = (r) => ['completed', 'cancelled', 'rejected'].includes(r.status);
const plateKey = (p) => (p || '').replace(/[\s-]/g, '').toLocaleUpperCase('tr');

export function boardView(state, drawer) {
  const filters = { province: '', insurer: '', service: '', q: '' };
  const province = h('select', { name: 'province', onchange: () => { filters.province = province.value; render(); } }, h('option', { value: '' }, 'All provinces'));
  const insurer = h('select', { name: 'insurer', onchange: () => { filters.insurer = insurer.value; render(); } }, h('option', { value: '' }, 'All insurers'));
  const service = h('select', { name: 'service', onchange: () => { filters.service = service.value; render(); } },
    h('option', { value: '' }, 'All services'), Object.entries(SERVICE).map(([v, l]) => h('option', { value: v }, l)));
  const search = h('input.search', {
    type: 'search', name: 'q', placeholder: 'Request id or plate', autocomplete: 'off',
    oninput: () => { filters.q = search.value.trim(); render(); },
    onkeydown: (e) => { if (e.key === 'Enter') openSearched(); },
  });
  const counts = h('span.board-counts');
  const columns = h('div.board');
  const el = h('section.board-view',
    h('div.toolbar', search, province, insurer, service, counts), columns);

  provinceNames().then((names) => province.append(...names.map((n) => h('option', { value: n }, n))));
  const insurerCodes = new Set();
  state.on('insurers', () => {
    for (const i of state.insurers) {
      if (!insurerCodes.has(i.code)) {
        insurerCodes.add(i.code);
        insurer.append(h('option', { value: i.code }, i.name || i.code));
      }
    }
  });

  const fresh = new Map(); // id -> when it appeared, for the highlight
  let firstLoad = true;
  state.on('request', ({ id, previous }) => {
    if (!previous && !firstLoad) fresh.set(id, Date.now());
  });

  function visible(r) {
    if (filters.province && r.location.province !== filters.province) return false;
    if (filters.insurer && r.policy.insurer !== filters.insurer) return false;
    if (filters.service && r.service_type !== filters.service) return false;
    if (filters.q) {
      const q = filters.q;
      if (/^req_/i.test(q)) return r.id.toLowerCase().startsWith(q.toLowerCase());
      return plateKey(r.vehicle.plate).includes(plateKey(q)) || r.id.toLowerCase().includes(q.toLowerCase());
    }
    return true;
  }

  // A full request id that the board does not hold (an old one): open it.
  async function openSearched() {
    const q = filters.q;
    if (/^req_[0-9A-Za-z]+$/.test(q)) drawer.open(q);
  }

  function card(r) {
    const attention = r.status === 'unfulfilled' ? 'unfulfilled' : r.insurance.status === 'manual_review' && !final(r) ? 'review' : '';
    const isNew = fresh.has(r.id) && Date.now() - fresh.get(r.id) < 4000;
    return h('button.card', {
      type: 'button', class: [attention && `card-${attention}`, isNew && 'card-new', drawer.current === r.id && 'card-selected'].filter(Boolean).join(' '),
      dataset: { requestId: r.id, status: r.status }, onclick: () => drawer.open(r.id),
    },
    h('div.card-top', h('span.card-id', `#${shortId(r.id)}`), h('span.card-age', ago(r.created_at))),
    h('div.card-service', h('span', { class: `svc svc-${r.service_type}` }), SERVICE[r.service_type] || r.service_type),
    h('div.card-place', [r.location.district, r.location.province].filter(Boolean).join(', ') || `${r.location.lat.toFixed(3)}, ${r.location.lng.toFixed(3)}`),
    h('div.card-meta', h('span.plate', r.vehicle.plate), h('span.card-insurer', r.policy.insurer)),
    r.assignment && h('div.card-driver', h('span.truck'), r.assignment.driver_name || r.assignment.vehicle_plate),
    (r.insurance.status !== 'approved' || attention) && h('div.card-badges',
      r.status === 'unfulfilled' && h('span.badge.badge-red', 'Unfulfilled'),
      r.insurance.status !== 'approved' && h('span', { class: `badge badge-ins-${r.insurance.status}` }, INSURANCE[r.insurance.status]),
      final(r) && h('span.badge', STATUS[r.status])));
  }

  function render() {
    const all = [...state.requests.values()].filter(visible).sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
    put(columns, COLUMNS.map((c) => {
      const items = all.filter(c.match);
      return h('section.column', { dataset: { column: c.key }, class: c.key === 'attention' && items.length ? 'column-alert' : '' },
        h('header', h('h2', c.title), h('span.count', items.length)),
        h('div.cards', items.length ? [items.slice(0, PER_COLUMN).map(card),
          items.length > PER_COLUMN && h('p.more', `+${items.length - PER_COLUMN} more: filter or search to narrow`)] : h('p.empty', '—')));
    }));
    const open = [...state.requests.values()].filter((r) => !final(r)).length;
    counts.textContent = `${open} open · ${state.drivers.size} drivers online`;
  }

  state.on('requests', () => {
    render();
    firstLoad = false;
  });
  state.on('drivers', () => {
    const open = [...state.requests.values()].filter((r) => !final(r)).length;
    counts.textContent = `${open} open · ${state.drivers.size} drivers online`;
  });
  drawer.onChange(render);
  // The "new" highlight fades by itself.
  setInterval(() => {
    for (const [id, at] of fresh) if (Date.now() - at > 4000) fresh.delete(id);
  }, 2000);
  render();
  return { el, shown: render };
}
