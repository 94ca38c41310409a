// Alerts an operator must not miss, without a reload: a request became
// unfulfilled or went to manual review, an insurer's breaker opened.
import { h } from '../lib/dom.js';
import { shortId } from '../lib/format.js';

export function alerts(state, toasts, bell, drawer) {
  const log = [];
  let started = false;
  const breakers = new Map();
  const count = bell.querySelector('.bell-count');
  const list = h('div.alert-list', { hidden: true });
  bell.after(list);
  bell.addEventListener('click', () => {
    list.hidden = !list.hidden;
    bell.classList.remove('ringing');
  });

  function raise(kind, text, requestId) {
    log.unshift({ kind, text, requestId, at: new Date() });
    count.textContent = String(log.length);
    bell.classList.add('ringing');
    const open = () => requestId && drawer.open(requestId);
    const toast = h('div', { class: `toast toast-${kind}`, role: 'alert', dataset: { kind, requestId: requestId || '' } },
      h('b', kind === 'breaker' ? 'Insurer down' : 'Needs attention'), h('span', text),
      requestId && h('button.ghost', { type: 'button', onclick: () => { open(); toast.remove(); } }, 'Open'),
      h('button.ghost', { type: 'button', title: 'Dismiss', onclick: () => toast.remove() }, '✕'));
    toasts.prepend(toast);
    setTimeout(() => toast.remove(), 20000);
    list.replaceChildren(...log.slice(0, 30).map((a) => h('button.alert-item', { type: 'button', onclick: () => a.requestId && drawer.open(a.requestId) },
      h('small', a.at.toLocaleTimeString()), ' ', a.text)));
  }

  state.on('request', ({ request: r, previous }) => {
    if (!started) return;
    if (r.status === 'unfulfilled' && previous?.status !== 'unfulfilled') {
      raise('unfulfilled', `#${shortId(r.id)} is unfulfilled: no driver took it (${r.location.province || 'unknown province'})`, r.id);
    } else if (r.insurance.status === 'manual_review' && previous?.insurance.status !== 'manual_review' && !['completed', 'cancelled', 'rejected'].includes(r.status)) {
      raise('review', `#${shortId(r.id)} needs an insurance decision: ${r.policy.insurer} did not answer in time`, r.id);
    }
  });
  state.on('insurers', () => {
    for (const i of state.insurers) {
      const before = breakers.get(i.code);
      breakers.set(i.code, i.breaker);
      if (before && before !== 'open' && i.breaker === 'open') raise('breaker', `${i.name || i.code}: circuit breaker opened (error rate ${(i.error_rate * 100).toFixed(0)}%)`);
    }
  });

  return {
    // start after the first load: what was already so is not news.
    start() {
      const once = () => {
        started = true;
      };
      state.events.addEventListener('requests', once, { once: true });
    },
  };
}
