// The login screen of the panel and the driver app. allowed lists the
// roles the app serves; anyone else is told so and signed out at once.
import { h, put } from './dom.js';

export function loginScreen(root, client, { title, subtitle, allowed, onIn }) {
  const error = h('p.login-error', { role: 'alert' });
  const user = h('input', { name: 'username', autocomplete: 'username', required: true, placeholder: 'Username' });
  const pass = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true, placeholder: 'Password' });
  const button = h('button.primary', { type: 'submit' }, 'Sign in');
  // method post: should the script ever not run, the browser posts the
  // form (refused) instead of putting the password in a URL.
  const form = h('form.login-card', {
    method: 'post',
    onsubmit: async (e) => {
      e.preventDefault();
      button.disabled = true;
      error.textContent = '';
      try {
        const s = await client.login(user.value.trim(), pass.value);
        if (!refuse(s)) onIn(s);
      } catch (err) {
        error.textContent = err.status === 401 ? 'Wrong username or password.' : err.status === 429 ? 'Too many attempts: wait a little.' : `Sign-in failed: ${err.message}`;
      } finally {
        button.disabled = false;
      }
    },
  },
  h('div.brand-mark', 'yolda'),
  h('h1', title), h('p.muted', subtitle),
  h('label', 'Username', user), h('label', 'Password', pass), button, error);

  // refuse signs out a session whose role this app does not serve.
  function refuse(s) {
    if (allowed.includes(s.role)) return false;
    client.forget();
    error.textContent = `A ${s.role} account cannot use this app.`;
    return true;
  }

  put(root, h('main.login', form));
  setTimeout(() => user.focus(), 0);
  return { refuse, error };
}
