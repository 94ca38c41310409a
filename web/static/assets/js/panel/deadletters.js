// Dead letters: what a worker gave up on, and a button to send it again.
import { h, put } from '../lib/dom.js';
import { clock, ago } from '../lib/format.js';

export function deadLettersView(client) {
  const list = h('div.dead');
  const el = h('section.dead-view',
    h('div.toolbar', h('h2', 'Dead letters'), h('button.ghost', { type: 'button', onclick: () => load() }, 'Refresh')), list);

  async function load() {
    let page;
    try {
      page = await client.call('/v1/admin/dead-letters?limit=100');
    } catch (e) {
      put(list, h('p.error', e.message));
      return;
    }
    put(list, page.items.length ? h('table.letters',
      h('thead', h('tr', h('th', 'When'), h('th', 'Consumer'), h('th', 'Subject'), h('th', 'Error'), h('th', 'Tries'), h('th', ''))),
      h('tbody', page.items.map((l) => {
        const cell = h('td');
        const retry = h('button', { type: 'button', dataset: { action: 'redrive' }, onclick: async () => {
          retry.disabled = true;
          try {
            await client.call(`/v1/admin/dead-letters/${l.id}/retry`, { method: 'POST' });
            put(cell, h('span.ok', 'sent again'));
          } catch (e) {
            retry.disabled = false;
            put(cell, retry, h('span.error', ` ${e.message}`));
          }
        } }, l.redriven_at ? 'Send again' : 'Re-drive');
        put(cell, retry, l.redriven_at && h('small.muted', ` last ${ago(l.redriven_at)} ago`));
        return h('tr', { dataset: { letter: l.id } },
          h('td', clock(l.created_at)), h('td', l.consumer), h('td.mono', l.subject), h('td.err', l.error), h('td', String(l.deliveries)), cell);
      }))) : h('p.empty', 'No dead letters: every message was handled.'));
  }
  return { el, shown: load };
}
