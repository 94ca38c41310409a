// Small SVG bar charts: enough for the reports, no chart library. Each
// bar has a <title>, so its number shows on hover.
const NS = 'http://www.w3.org/2000/svg';

function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text != null) el.textContent = text;
  return el;
}

// bars draws groups of bars: labels along the bottom, one bar per series
// in each group. series: [{name, values: [...], className}].
export function bars({ labels, series, unit = '', height = 220, maxLabels = 24 }) {
  const width = Math.max(320, labels.length * (series.length * 10 + 8) + 60);
  const pad = { top: 12, right: 8, bottom: 44, left: 44 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const max = Math.max(1, ...series.flatMap((s) => s.values.filter((v) => v != null)));
  const nice = niceMax(max);
  const root = svg('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img' });
  for (let i = 0; i <= 4; i++) {
    const y = pad.top + plotH - (plotH * i) / 4;
    root.append(svg('line', { x1: pad.left, x2: width - pad.right, y1: y, y2: y, class: 'chart-grid' }));
    root.append(svg('text', { x: pad.left - 6, y: y + 4, class: 'chart-axis', 'text-anchor': 'end' }, fmt((nice * i) / 4)));
  }
  const groupW = plotW / Math.max(1, labels.length);
  const barW = Math.max(2, Math.min(28, (groupW - 4) / series.length));
  const every = Math.ceil(labels.length / maxLabels);
  labels.forEach((label, i) => {
    const x0 = pad.left + i * groupW + (groupW - barW * series.length) / 2;
    series.forEach((s, j) => {
      const v = s.values[i];
      if (v == null) return;
      const hgt = (plotH * v) / nice;
      const rect = svg('rect', {
        x: x0 + j * barW, y: pad.top + plotH - hgt, width: barW - 1, height: Math.max(0, hgt),
        class: `chart-bar ${s.className || `chart-s${j}`}`,
      });
      rect.append(svg('title', {}, `${label} · ${s.name}: ${fmt(v)}${unit}`));
      root.append(rect);
    });
    if (i % every === 0) {
      root.append(svg('text', {
        x: pad.left + i * groupW + groupW / 2, y: height - pad.bottom + 14, class: 'chart-axis', 'text-anchor': 'middle',
      }, label.length > 12 ? `${label.slice(0, 11)}…` : label));
    }
  });
  return root;
}

export function legend(series) {
  const div = document.createElement('div');
  div.className = 'chart-legend';
  series.forEach((s, j) => {
    const item = document.createElement('span');
    const swatch = document.createElement('i');
    swatch.className = `chart-swatch ${s.className || `chart-s${j}`}`;
    item.append(swatch, s.name);
    div.append(item);
  });
  return div;
}

function niceMax(v) {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

const fmt = (v) => (Math.abs(v) >= 100 || Number.isInteger(v) ? Math.round(v).toString() : v.toFixed(1));
