// The live channel: the contract's WebSocket (/v1/ws) when this server
// has it, with reconnects and resume; the apps poll REST meanwhile, and
// slowly as well while the socket is up, so that whatever a socket missed
// is caught up in seconds.
import { features } from './api.js';

export function connect(token, { onMessage, onState, requests = [] }) {
  const seqs = new Map(); // request id -> highest seq seen
  const subscribed = new Set(requests);
  let ws = null;
  let closed = false;
  let backoff = 500;

  const send = (m) => {
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify(m));
      return true;
    }
    return false;
  };

  function open() {
    if (closed) return;
    onState?.('connecting');
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    ws = new WebSocket(`${proto}//${location.host}/v1/ws?access_token=${encodeURIComponent(token)}`);
    ws.onopen = () => {
      backoff = 500;
      onState?.('live');
      for (const id of subscribed) {
        send({ type: 'subscribe', request_id: id });
        if (seqs.has(id)) send({ type: 'resume', request_id: id, after_seq: seqs.get(id) });
      }
    };
    ws.onmessage = (e) => {
      let m;
      try {
        m = JSON.parse(e.data);
      } catch {
        return;
      }
      if (m.request_id && typeof m.seq === 'number' && m.type === 'request.status') {
        if (m.seq <= (seqs.get(m.request_id) ?? -1)) return; // stale or repeated
        seqs.set(m.request_id, m.seq);
      }
      onMessage(m);
    };
    ws.onclose = () => {
      ws = null;
      if (closed) return;
      onState?.('polling');
      setTimeout(open, backoff);
      backoff = Math.min(backoff * 2, 15000);
    };
  }

  features().then((f) => (f.socket ? open() : onState?.('polling')));

  return {
    send,
    get live() {
      return !!ws && ws.readyState === WebSocket.OPEN;
    },
    subscribe(id) {
      if (subscribed.has(id)) return;
      subscribed.add(id);
      send({ type: 'subscribe', request_id: id });
    },
    close() {
      closed = true;
      ws?.close();
    },
  };
}

// every runs fn now and then every ms while the page is open, one run at
// a time (a slow answer delays the next instead of piling up).
export function every(ms, fn) {
  let stopped = false;
  let running = false;
  let again = false;
  let timer;
  const delay = typeof ms === 'function' ? ms : () => ms;
  async function tick() {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = true;
    clearTimeout(timer);
    try {
      await fn();
    } catch (e) {
      if (e?.status !== 401) console.warn(e);
    } finally {
      running = false;
    }
    if (stopped) return;
    if (again) {
      again = false;
      tick();
      return;
    }
    timer = setTimeout(tick, delay());
  }
  tick();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
    now: tick,
  };
}
