// The driver app: go online, share the position (the device's GPS, or a
// simulated drive for demos), take or turn down offers against their
// countdown, and walk the job: en route, arrived, in service, completed.
import { createClient } from '../lib/api.js';
import { h, put } from '../lib/dom.js';
import { loginScreen } from '../lib/login.js';
import { connect, every } from '../lib/live.js';
import { createMap } from '../lib/map.js';
import { STATUS, SERVICE, duration, km, shortId } from '../lib/format.js';

const L = window.L;
const client = createClient('yolda.driver');
const root = document.getElementById('app');
const NEXT = { assigned: 'en_route', en_route: 'arrived', arrived: 'in_service', in_service: 'completed' };
const STEP_LABEL = { en_route: 'On my way', arrived: 'I have arrived', in_service: 'Start the service', completed: 'Job done' };
const OPEN_JOB = ['assigned', 'en_route', 'arrived', 'in_service'];

addEventListener('yolda:signed-out', () => location.replace('/driver'));

function start() {
  const s = client.session();
  if (s && s.role === 'driver') return app(s);
  const screen = loginScreen(root, client, { title: 'Driver', subtitle: 'Sign in with your driver account.', allowed: ['driver'], onIn: app });
  if (s) screen.refuse(s);
}

// simulated moves a pretend truck: toward the job while there is one to
// drive to, otherwise in a slow circle around where it started. Ten times
// real speed, so that a demo shows movement.
function simulated(startAt) {
  let pos = { ...startAt };
  let angle = 0;
  return {
    step(target, seconds) {
      const speedKmh = 60 * 10;
      if (target) {
        const dLat = target.lat - pos.lat;
        const dLng = target.lng - pos.lng;
        const distKm = Math.hypot(dLat * 111, dLng * 111 * Math.cos((pos.lat * Math.PI) / 180));
        const stepKm = (speedKmh * seconds) / 3600;
        const heading = (Math.atan2(dLng * Math.cos((pos.lat * Math.PI) / 180), dLat) * 180) / Math.PI;
        if (distKm <= stepKm || distKm < 0.02) pos = { lat: target.lat, lng: target.lng };
        else pos = { lat: pos.lat + (dLat * stepKm) / distKm, lng: pos.lng + (dLng * stepKm) / distKm };
        return { ...pos, heading: (heading + 360) % 360, speed: distKm < 0.02 ? 0 : 60 };
      }
      angle += 0.15;
      const p = { lat: startAt.lat + 0.003 * Math.sin(angle), lng: startAt.lng + 0.004 * Math.cos(angle) };
      pos = p;
      return { ...p, heading: ((angle * 180) / Math.PI + 90) % 360, speed: 15 };
    },
  };
}

function startPoint() {
  const q = new URLSearchParams(location.search).get('at');
  if (q) {
    const [lat, lng] = q.split(',').map(Number);
    if (Number.isFinite(lat) && Number.isFinite(lng)) return { lat, lng };
  }
  return { lat: 41.015 + (Math.random() - 0.5) * 0.04, lng: 28.955 + (Math.random() - 0.5) * 0.06 };
}

async function app(session) {
  const prefs = JSON.parse(sessionStorage.getItem('yolda.driver.prefs') || '{}');
  const savePrefs = () => sessionStorage.setItem('yolda.driver.prefs', JSON.stringify(prefs));
  let online = prefs.online === true;
  let source = prefs.source || (new URLSearchParams(location.search).has('sim') || !navigator.geolocation ? 'sim' : 'gps');
  let job = null;
  let offer = null;
  let position = null;
  let note = null;
  let gpsWatch = null;
  const sim = simulated(startPoint());
  let live = { send: () => false, subscribe: () => {}, live: false };

  const statusLine = h('div.driver-status');
  const offerBox = h('section.offer-box');
  const jobBox = h('section.job-box');
  const noteBox = h('p.driver-note', { role: 'status' });
  const mapEl = h('div.driver-map');
  const toggle = h('button.big', { type: 'button', dataset: { action: 'toggle-online' }, onclick: () => setOnline(!online) });
  const sourceSel = h('select', { name: 'source', onchange: () => { source = sourceSel.value; prefs.source = source; savePrefs(); usePosition(); } },
    h('option', { value: 'gps' }, 'This device’s GPS'), h('option', { value: 'sim' }, 'Simulated route (demo)'));
  sourceSel.value = source;

  put(root,
    h('header.phone-bar', h('img', { src: '/assets/img/yolda.svg', alt: '' }), h('b', 'Yolda'), h('span.muted', 'driver'),
      h('span.spacer'), h('span.who', session.username), h('button.ghost', { type: 'button', onclick: () => { setOnline(false).finally(() => client.signOut()); } }, 'Sign out')),
    h('main.phone-main', statusLine, toggle, h('label.source', 'Position ', sourceSel), noteBox, offerBox, jobBox, mapEl));

  const me = L.circleMarker([0, 0], { radius: 8, className: 'drv drv-self', weight: 3 });
  const target = L.marker([0, 0], { icon: L.divIcon({ className: 'req-pin pin-active', iconSize: [18, 18], iconAnchor: [9, 18], html: '' }) });
  render(); // the screen's layout settles before the map loads
  const map = await createMap(mapEl, { center: [41.01, 28.97], zoom: 11, labels: false });

  function say(text, kind = 'info') {
    note = text;
    noteBox.textContent = text || '';
    noteBox.dataset.kind = kind;
  }

  // refusal says what the server refused and why, in the driver's words
  // for the refusals a driver meets, the server's own (title and detail)
  // for any other. A driver the server has offline is shown offline.
  function refusal(what, e) {
    switch (e.kind) {
      case 'driver-offline':
        online = false;
        prefs.online = false;
        savePrefs();
        offer = null;
        return 'You are offline, so the offer was withdrawn. Go online to take offers.';
      case 'offer-expired':
        return 'Too late: the offer expired.';
      case 'offer-taken':
        return `The offer is no longer open: ${e.problem?.detail || 'it went elsewhere or was withdrawn'}.`;
      case 'driver-busy':
        return 'You are on another job: finish it first.';
    }
    const p = e.problem;
    const why = p && p.title && p.detail && !p.errors ? `${p.title}: ${p.detail}` : e.message;
    return `${what}: ${why}`;
  }

  function render() {
    statusLine.replaceChildren(h('span', { class: `pill ${online ? 'pill-on' : 'pill-off'}`, dataset: { online: String(online) } }, online ? 'Online' : 'Offline'),
      position ? h('span.muted', ` ${position.lat.toFixed(4)}, ${position.lng.toFixed(4)}`) : h('span.muted', ' no position yet'));
    toggle.textContent = online ? 'Go offline' : 'Go online';
    toggle.classList.toggle('primary', !online);
    toggle.disabled = !!job;
    renderOffer();
    renderJob();
  }

  function renderOffer() {
    if (!offer || job) {
      put(offerBox);
      offerBox.hidden = true;
      return;
    }
    offerBox.hidden = false;
    const left = Math.max(0, Math.round((new Date(offer.expires_at) - Date.now()) / 1000));
    put(offerBox,
      h('div.offer-card', { dataset: { offerId: offer.offer_id, requestId: offer.request_id } },
        h('div.offer-head', h('b', 'New job offer'), h('span.countdown', { dataset: { left: String(left) } }, `${left} s`)),
        h('div.offer-service', SERVICE[offer.service_type] || offer.service_type),
        h('p', [offer.location.address, offer.location.district, offer.location.province].filter(Boolean).join(', ')),
        h('p.muted', `${km(offer.distance_m)} away · about ${duration(offer.eta_seconds)}`),
        h('div.row',
          h('button.big.primary', { type: 'button', dataset: { action: 'accept' }, onclick: accept }, 'Accept'),
          h('button.big', { type: 'button', dataset: { action: 'decline' }, onclick: decline }, 'Decline'))));
  }

  function renderJob() {
    if (job) live.subscribe(job.id);
    if (!job) {
      put(jobBox, online && !offer ? h('p.waiting', 'Waiting for a job…') : null);
      target.remove();
      return;
    }
    const next = NEXT[job.status];
    put(jobBox,
      h('div.job-card', { dataset: { requestId: job.id, status: job.status } },
        h('div.job-head', h('b', `Job #${shortId(job.id)}`), h('span', { class: `status status-${job.status}` }, STATUS[job.status])),
        h('div.offer-service', SERVICE[job.service_type]),
        h('p', [job.location.address, job.location.district, job.location.province].filter(Boolean).join(', ')),
        job.contact && h('p', job.contact.name, ' · ', h('a', { href: `tel:${job.contact.phone}` }, job.contact.phone)),
        h('p', h('span.plate', job.vehicle.plate), ' ', [job.vehicle.make, job.vehicle.model].filter(Boolean).join(' ')),
        job.notes && h('p.muted', job.notes),
        next && h('button.big.primary', { type: 'button', dataset: { action: 'progress', next }, onclick: () => progress(next) }, STEP_LABEL[next])));
    target.setLatLng([job.location.lat, job.location.lng]).addTo(map);
  }

  async function setOnline(on) {
    try {
      const r = await client.call('/v1/drivers/me/availability', { method: 'PUT', body: { availability: on ? 'online' : 'offline' } });
      online = r.availability === 'online';
      prefs.online = online;
      savePrefs();
      say(online ? 'You are online: offers will come here.' : 'You are offline.');
      if (online) {
        await report();
        offers.now();
      } else {
        offer = null;
      }
    } catch (e) {
      say(refusal(on ? 'Could not go online' : 'Could not go offline', e), 'error');
    }
    render();
  }

  async function accept() {
    const o = offer;
    try {
      job = await client.call(`/v1/offers/${o.offer_id}/accept`, { method: 'POST' });
      offer = null;
      say('Job accepted: drive to the customer.');
    } catch (e) {
      offer = null;
      say(refusal('Could not accept', e), 'error');
    }
    render();
  }

  async function decline() {
    const o = offer;
    offer = null;
    try {
      await client.call(`/v1/offers/${o.offer_id}/decline`, { method: 'POST' });
      say('Offer declined.');
    } catch (e) {
      say(e.kind === 'offer-taken' || e.kind === 'offer-expired' ? 'That offer had already closed.' : refusal('Could not decline', e), 'error');
    }
    render();
  }

  async function progress(to) {
    try {
      const r = await client.call(`/v1/requests/${job.id}/progress`, { method: 'POST', body: { status: to } });
      job = r.status === 'completed' ? null : r;
      say(r.status === 'completed' ? 'Job completed. Thank you!' : `${STATUS[r.status]}.`);
    } catch (e) {
      say(refusal('Could not update the job', e), 'error');
      await refreshJob();
    }
    render();
  }

  async function refreshJob() {
    const current = job;
    if (current) {
      const r = await client.call(`/v1/requests/${current.id}`).catch((e) => (e.status === 404 ? null : current));
      if (job !== current) return; // a step or another refresh moved on meanwhile
      if (!r || !OPEN_JOB.includes(r.status)) {
        if (r?.status !== 'completed') say(r ? `Job #${shortId(current.id)} is ${STATUS[r.status].toLowerCase()}.` : 'The job was taken off you.');
        job = null;
      } else {
        job = r;
      }
      return;
    }
    const page = await client.call(`/v1/requests?status=${OPEN_JOB.join(',')}&limit=1`);
    job = page.items[0] || null;
    if (job) {
      online = true;
    }
  }

  // Position: the device's, or the simulated drive.
  async function report(p = position) {
    if (!online || !p) return;
    const body = {
      lat: p.lat, lng: p.lng, heading: p.heading ?? 0, speed_kmh: p.speed ?? 0, accuracy_m: p.accuracy ?? 10,
      recorded_at: new Date().toISOString(),
    };
    if (!live.send({ type: 'location', ...body })) await client.call('/v1/drivers/me/location', { method: 'POST', body });
  }

  function moved(p) {
    position = p;
    me.setLatLng([p.lat, p.lng]);
    if (!map.hasLayer(me)) {
      me.addTo(map);
      map.setView([p.lat, p.lng], 12);
    }
    me.getElement()?.setAttribute('data-lat', String(p.lat));
  }

  function usePosition() {
    if (gpsWatch != null) navigator.geolocation.clearWatch(gpsWatch);
    gpsWatch = null;
    if (source === 'gps' && navigator.geolocation) {
      gpsWatch = navigator.geolocation.watchPosition(
        (g) => moved({ lat: g.coords.latitude, lng: g.coords.longitude, heading: g.coords.heading ?? 0, speed: (g.coords.speed ?? 0) * 3.6, accuracy: g.coords.accuracy }),
        () => {
          say('This device does not share its position: using a simulated route.');
          source = 'sim';
          sourceSel.value = 'sim';
        },
        { enableHighAccuracy: true, maximumAge: 5000 });
    }
  }

  live = connect(session.token, {
    onMessage: (m) => {
      if ((m.type === 'offer' || m.type === 'offer.closed') && !job) offers.now();
      if (m.type === 'request.status' && job && m.request_id === job.id) refreshJob().then(render);
    },
  });

  await refreshJob().catch(() => {});
  moved(sim.step(null, 0));
  usePosition();
  every(2000, async () => {
    if (source === 'sim') {
      const to = job && (job.status === 'assigned' || job.status === 'en_route') ? job.location : null;
      moved(sim.step(to, 2));
    }
    await report().catch((e) => {
      // A refused position is said, not dropped: the driver is not on the
      // operators' map meanwhile.
      if (e.status) say(refusal('Position not shared', e), 'error');
    });
    render();
  });
  const offers = every(() => (live.live ? 5000 : 1000), async () => {
    if (!online || job) return;
    const page = await client.call('/v1/drivers/me/offers');
    const next = page.items.find((o) => new Date(o.expires_at) > Date.now()) || null;
    if (next?.offer_id !== offer?.offer_id) {
      offer = next;
      render();
    }
  });
  every(3000, async () => {
    if (job) {
      await refreshJob();
      render();
    }
  });
  // The countdown.
  setInterval(() => {
    if (offer && new Date(offer.expires_at) <= Date.now()) {
      offer = null;
      say('The offer expired.');
      render();
    } else if (offer) renderOffer();
  }, 1000);
  if (online) setOnline(true);
  render();
}

start();
