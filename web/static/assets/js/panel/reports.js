// Reports from the warehouse, as charts, for a date range, each with its
// CSV download.
import { h, put } from '../lib/dom.js';
import { bars, legend } from '../lib/charts.js';

const day = (d) => d.toISOString().slice(0, 10);

export function reportsView(client, feats) {
  const to = new Date(Date.now() + 86400000);
  const from = new Date(Date.now() - 6 * 86400000);
  const fromIn = h('input', { type: 'date', name: 'from', value: day(from) });
  const toIn = h('input', { type: 'date', name: 'to', value: day(to) });
  const body = h('div.reports');
  const el = h('section.reports-view',
    h('form.toolbar', { onsubmit: (e) => { e.preventDefault(); load(); } },
      h('h2', 'Reports'), h('label', 'From ', fromIn), h('label', 'to ', toIn), h('button.primary', { type: 'submit' }, 'Show')),
    body);

  const range = () => `from=${fromIn.value}&to=${toIn.value}`;

  async function download(path, name) {
    const csv = await client.call(`${path}${path.includes('?') ? '&' : '?'}${range()}`, { accept: 'text/csv' });
    const url = URL.createObjectURL(new Blob([csv], { type: 'text/csv' }));
    const a = h('a', { href: url, download: `${name}-${fromIn.value}-${toIn.value}.csv` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  function panel(title, path, name, draw) {
    const chart = h('div.chart-box', h('p.muted', 'Loading…'));
    const box = h('article.report', { dataset: { report: name } },
      h('header', h('h3', title), h('button.ghost', { type: 'button', onclick: () => download(path, name).catch((e) => put(chart, h('p.error', e.message))) }, 'CSV')),
      chart);
    client.call(`${path}${path.includes('?') ? '&' : '?'}${range()}`)
      .then((res) => put(chart, res.rows.length ? draw(res.rows) : h('p.empty', 'No requests in this range.')))
      .catch((e) => put(chart, h('p.error', e.message)));
    return box;
  }

  function load() {
    if (!feats.reports) {
      put(body, h('p.empty', 'This server has no reporting warehouse (the warehouse role): reports are not available here.'));
      return;
    }
    put(body,
      panel('Requests by hour', '/v1/reports/requests?group_by=hour', 'requests-by-hour', (rows) => {
        const labels = rows.map((r) => new Date(r.hour).toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit' }));
        const series = [{ name: 'requests', values: rows.map((r) => r.count) }];
        return [bars({ labels, series }), legend(series)];
      }),
      panel('Requests by province', '/v1/reports/requests?group_by=province', 'requests-by-province', (rows) => {
        const top = [...rows].sort((a, b) => b.count - a.count).slice(0, 15);
        const series = [{ name: 'requests', values: top.map((r) => r.count) }, { name: 'completed', values: top.map((r) => r.completed ?? null) }];
        return [bars({ labels: top.map((r) => r.province || '?'), series }), legend(series)];
      }),
      panel('SLA met per insurer', '/v1/reports/sla?group_by=insurer', 'sla-by-insurer', (rows) => {
        const series = [{ name: 'arrivals within SLA (%)', values: rows.map((r) => (r.sla_share == null ? null : r.sla_share * 100)), className: 'chart-good' }];
        return [bars({ labels: rows.map((r) => r.insurer || '?'), series, unit: '%' }), legend(series)];
      }),
      panel('Time to assign and to arrive', '/v1/reports/sla?group_by=insurer', 'times-by-insurer', (rows) => {
        const m = (v) => (v == null ? null : v / 60);
        const series = [
          { name: 'assign p50 (min)', values: rows.map((r) => m(r.assign_p50_s)) },
          { name: 'assign p90 (min)', values: rows.map((r) => m(r.assign_p90_s)) },
          { name: 'arrive p50 (min)', values: rows.map((r) => m(r.arrive_p50_s)) },
          { name: 'arrive p90 (min)', values: rows.map((r) => m(r.arrive_p90_s)) },
        ];
        return [bars({ labels: rows.map((r) => r.insurer || '?'), series, unit: ' min' }), legend(series)];
      }),
      panel('Insurers', '/v1/reports/insurers', 'insurers', (rows) => {
        const series = [
          { name: 'approved', values: rows.map((r) => r.approved ?? 0), className: 'chart-good' },
          { name: 'rejected', values: rows.map((r) => r.rejected ?? 0), className: 'chart-bad' },
          { name: 'manual review', values: rows.map((r) => r.manual_review ?? 0), className: 'chart-warn' },
        ];
        return [bars({ labels: rows.map((r) => r.insurer || '?'), series }), legend(series)];
      }));
  }

  let loaded = false;
  return { el, shown: () => { if (!loaded) { loaded = true; load(); } } };
}
