// Insurers, live: breaker, error rate, latency, checks in flight and
// pending, with the last minutes of error rate as a sparkline.
import { h, put } from '../lib/dom.js';
import { ago } from '../lib/format.js';

const NS = 'http://www.w3.org/2000/svg';
const HISTORY = 90; // samples, one every 2 s: three minutes

function sparkline(values) {
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', `0 0 ${HISTORY} 30`);
  svg.setAttribute('class', 'spark');
  svg.setAttribute('preserveAspectRatio', 'none');
  const line = document.createElementNS(NS, 'polyline');
  const off = HISTORY - values.length;
  line.setAttribute('points', values.map((v, i) => `${off + i},${(29 - v * 28).toFixed(1)}`).join(' '));
  svg.append(line);
  return svg;
}

export function insurersView(state) {
  const grid = h('div.insurers');
  const source = h('p.insurers-source', { role: 'status' });
  const el = h('section.insurers-view', h('div.toolbar', h('h2', 'Insurers'), h('span.muted', 'updated every 2 s')), source, grid);
  const history = new Map();

  function render() {
    const list = state.insurers;
    for (const i of list) {
      const hst = history.get(i.code) || [];
      hst.push(i.error_rate);
      if (hst.length > HISTORY) hst.shift();
      history.set(i.code, hst);
    }
    if (!el.isConnected) return;
    const src = state.insurersSource;
    source.dataset.source = src?.source || '';
    source.className = `insurers-source${src?.source === 'local' ? ' error' : ' muted'}`;
    source.textContent = !src ? ''
      : src.source === 'local' ? `This server's own view only: ${src.error || 'the health board is unreachable'}.`
        : src.processes.length ? `Merged from ${src.processes.length} insurance process${src.processes.length === 1 ? '' : 'es'}, last report ${ago(src.processes.reduce((a, p) => (p.reported_at > a ? p.reported_at : a), ''))} ago.`
          : 'No insurance process is reporting: no insurer is being called.';
    put(grid, list.length ? list.map((i) => h('article', { class: `insurer breaker-${i.breaker}`, dataset: { insurer: i.code } },
      h('header', h('h3', i.name || i.code), h('span', { class: `breaker breaker-${i.breaker}` }, i.breaker)),
      h('div.metrics',
        metric('error rate', `${(i.error_rate * 100).toFixed(1)}%`),
        metric('p50', `${Math.round(i.latency_p50_ms)} ms`),
        metric('p99', `${Math.round(i.latency_p99_ms)} ms`),
        metric('in flight', i.in_flight),
        metric('pending checks', i.pending_checks ?? 0, i.oldest_pending_at ? `oldest ${ago(i.oldest_pending_at)}` : ''),
        metric('calls / errors', `${i.calls} / ${i.errors}`)),
      sparkline(history.get(i.code) || []))) : h('p.empty', 'No insurer is configured (YOLDA_INSURERS_FILE).'));
  }
  const metric = (label, value, note) => h('div.metric', h('span.metric-value', String(value)), h('span.metric-label', label), note && h('small.muted', note));

  state.on('insurers', render);
  return { el, shown: render };
}
