// The operations panel: sign-in, then the shell (top bar, views, alerts)
// over one state that the live channel and the polls keep current.
import { createClient, features } from '../lib/api.js';
import { h, put } from '../lib/dom.js';
import { loginScreen } from '../lib/login.js';
import { connect, every } from '../lib/live.js';
import { createState } from './state.js';
import { boardView } from './board.js';
import { mapView } from './fleetmap.js';
import { detailsDrawer } from './details.js';
import { insurersView } from './insurers.js';
import { reportsView } from './reports.js';
import { deadLettersView } from './deadletters.js';
import { alerts } from './alerts.js';

const STAFF = ['operator', 'admin'];
const client = createClient('yolda.panel');
const root = document.getElementById('app');

addEventListener('yolda:signed-out', () => location.replace('/'));

async function start() {
  let s = null;
  try {
    s = await client.adoptFromFragment();
  } catch {
    s = null;
  }
  s ??= client.session();
  if (s && STAFF.includes(s.role)) return shell(s);
  const screen = loginScreen(root, client, {
    title: 'Operations panel',
    subtitle: 'Sign in with an operator or admin account.',
    allowed: STAFF,
    onIn: shell,
  });
  if (s) screen.refuse(s);
}

const VIEWS = [
  ['board', 'Dispatch board'],
  ['map', 'Fleet map'],
  ['insurers', 'Insurers'],
  ['reports', 'Reports'],
  ['dead', 'Dead letters'],
];

async function shell(session) {
  const state = createState(client);
  const feats = await features();
  const link = h('span.link-state', { title: 'How this panel gets its updates' }, 'connecting');
  const bell = h('button.bell', { type: 'button', title: 'Alerts' }, 'Alerts', h('span.bell-count', '0'));
  const nav = h('nav.tabs');
  const main = h('main.view');
  const drawerEl = h('aside.drawer', { hidden: true });
  const toasts = h('div.toasts', { 'aria-live': 'assertive' });
  put(root,
    h('header.topbar',
      h('a.brand', { href: '/' }, h('img', { src: '/assets/img/yolda.svg', alt: '' }), 'Yolda', h('small', 'operations')),
      nav,
      h('div.topbar-right', link, bell,
        h('span.who', session.username, h('small', session.role)),
        h('button.ghost', { type: 'button', onclick: () => client.signOut() }, 'Sign out'))),
    main, drawerEl, toasts);

  const drawer = detailsDrawer(drawerEl, client, state, feats);
  const views = {
    board: boardView(state, drawer),
    map: mapView(state, drawer),
    insurers: insurersView(state),
    reports: reportsView(client, feats),
    dead: deadLettersView(client),
  };
  const al = alerts(state, toasts, bell, drawer);

  let current = null;
  function show(name) {
    if (!views[name]) name = 'board';
    if (current === name) return;
    current = name;
    for (const b of nav.children) b.classList.toggle('active', b.dataset.view === name);
    put(main, views[name].el);
    views[name].shown?.();
    if (location.hash !== `#${name}`) history.replaceState(null, '', `#${name}`);
  }
  for (const [name, label] of VIEWS) {
    nav.append(h('button.tab', { type: 'button', dataset: { view: name }, onclick: () => show(name) }, label));
  }
  show(location.hash.slice(1) || 'board');
  addEventListener('hashchange', () => show(location.hash.slice(1)));

  // Live: the socket when there is one; polls in any case, fast while
  // there is no socket, slow (a safety net) while there is.
  // Staff follow every request ('*') and get every driver's position.
  const live = connect(session.token, {
    requests: ['*'],
    onState: (st) => {
      if (st === 'live') state.refreshRequests().catch(() => {}); // whatever the socket missed
      link.textContent = st === 'live' ? 'live' : st === 'polling' ? 'live (polling)' : 'connecting';
      link.dataset.state = st;
    },
    onMessage: (m) => {
      if (m.type === 'request.status') {
        state.refreshRequest(m.request_id).catch((e) => console.warn('refresh', m.request_id, e.message));
        driversChanged(); // a driver became busy or free
      } else if (m.type === 'driver.location' && !state.moveDriver(m.driver_id, m.lat, m.lng, m.at)) driversChanged();
    },
  });
  every(() => (live.live ? 10000 : 500), () => state.refreshRequests());
  const drivers = every(() => (live.live ? 10000 : 1000), () => state.refreshDrivers());
  // A position from a driver the panel does not know yet (just online),
  // or a job that began or ended: read the list again, once a second at
  // most, a burst of changes coalesced into one read.
  let pending = null;
  function driversChanged() {
    if (pending) return;
    pending = setTimeout(() => {
      pending = null;
      drivers.now();
    }, 1000);
  }
  every(2000, () => state.refreshInsurers());
  al.start();
}

start();
