// The API client of the web apps: one per app, each with its own session
// in sessionStorage (the tab's, gone with it; never a cookie, so that no
// request is ever authenticated by the browser alone).

// ApiError is a refusal: its message is what the server said (the
// fields it named, or the problem's detail or title), fit to show.
export class ApiError extends Error {
  constructor(status, problem) {
    super(describe(status, problem));
    this.status = status;
    this.problem = problem;
    // The problem's name (https://yolda.dev/problems/<name>), '' if none.
    this.kind = (problem && typeof problem.type === 'string' && problem.type.split('/').pop()) || '';
  }

  // field returns what the server said of one field of the body, or ''.
  field(name) {
    const f = (this.problem?.errors || []).find((e) => e.field === name);
    return f ? f.message : '';
  }
}

function describe(status, problem) {
  if (!problem) return `HTTP ${status}`;
  const fields = Array.isArray(problem.errors) ? problem.errors.filter((e) => e && e.field) : [];
  if (fields.length) return fields.map((e) => `${e.field} ${e.message}`).join('; ');
  return problem.detail || problem.title || `HTTP ${status}`;
}

export function createClient(storageKey) {
  const read = () => {
    try {
      const s = JSON.parse(sessionStorage.getItem(storageKey));
      return s && s.expires > Date.now() ? s : null;
    } catch {
      return null;
    }
  };
  const save = (s) => sessionStorage.setItem(storageKey, JSON.stringify(s));
  const clear = () => sessionStorage.removeItem(storageKey);

  async function call(path, { method = 'GET', body, token = read()?.token, accept } = {}) {
    const headers = {};
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (accept) headers.Accept = accept;
    const res = await fetch(path, {
      method, headers, cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (res.status === 204) return null;
    const type = res.headers.get('Content-Type') || '';
    const data = type.includes('json') ? await res.json() : await res.text();
    if (!res.ok) {
      if (res.status === 401 && token && token === read()?.token) {
        clear();
        dispatchEvent(new CustomEvent('yolda:signed-out'));
      }
      throw new ApiError(res.status, typeof data === 'object' ? data : null);
    }
    return data;
  }

  async function adopt(token, expiresIn) {
    const me = await call('/v1/me', { token });
    const s = { token, role: me.role, username: me.username, userId: me.user_id, expires: Date.now() + expiresIn * 1000 };
    save(s);
    return s;
  }

  return {
    session: read,
    call,
    async login(username, password) {
      const r = await call('/v1/auth/login', { method: 'POST', body: { username, password }, token: null });
      return adopt(r.access_token, r.expires_in);
    },
    // The one-click link that `yolda demo` prints: /#access_token=...;
    // the token leaves the address bar at once.
    async adoptFromFragment() {
      const m = location.hash.match(/access_token=([^&]+)/);
      if (!m) return null;
      const rest = location.hash.slice(1).split('&').filter((p) => !p.startsWith('access_token=')).join('&');
      history.replaceState(null, '', location.pathname + location.search + (rest ? `#${rest}` : ''));
      return adopt(decodeURIComponent(m[1]), 3600);
    },
    signOut() {
      clear();
      dispatchEvent(new CustomEvent('yolda:signed-out'));
    },
    // forget drops the session without telling the app (a sign-in that
    // the app refuses stays on the sign-in screen).
    forget: clear,
  };
}

// features tells which optional parts of the API this server has, from
// its OpenAPI document, so that the apps ask only for what exists.
let featuresOnce;
export function features() {
  featuresOnce ??= fetch('/openapi.json', { cache: 'no-store' })
    .then((r) => r.json())
    .then((doc) => {
      const paths = Object.keys(doc.paths || {});
      return {
        socket: paths.includes('/v1/ws'),
        reports: paths.some((p) => p.startsWith('/v1/reports/')),
        candidates: paths.includes('/v1/requests/{id}/candidates'),
        offers: paths.includes('/v1/requests/{id}/offers'),
      };
    })
    .catch(() => ({ socket: false, reports: false, candidates: false, offers: false }));
  return featuresOnce;
}
