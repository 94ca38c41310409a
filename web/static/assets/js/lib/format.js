// Words and numbers as people read them.

export const STATUS = {
  received: 'Received',
  awaiting_insurance: 'Waiting for insurer',
  dispatching: 'Dispatching',
  assigned: 'Assigned',
  en_route: 'En route',
  arrived: 'Arrived',
  in_service: 'In service',
  completed: 'Completed',
  cancelled: 'Cancelled',
  rejected: 'Rejected',
  unfulfilled: 'Unfulfilled',
};

export const SERVICE = {
  tow: 'Tow',
  jump_start: 'Jump start',
  flat_tire: 'Flat tyre',
  fuel_delivery: 'Fuel delivery',
  lockout: 'Lockout',
  winch: 'Winch',
};

export const INSURANCE = {
  pending: 'Insurance pending',
  approved: 'Covered',
  rejected: 'Not covered',
  manual_review: 'Manual review',
  waived: 'Waived',
};

export const OPEN = ['received', 'awaiting_insurance', 'dispatching', 'assigned', 'en_route', 'arrived', 'in_service', 'unfulfilled'];
export const FINAL = ['completed', 'cancelled', 'rejected'];
// The job steps a driver walks, in order.
export const STEPS = ['assigned', 'en_route', 'arrived', 'in_service', 'completed'];

export const shortId = (id) => (id || '').replace(/^req_/, '').slice(-6).toUpperCase();

export function duration(seconds) {
  if (seconds == null || Number.isNaN(seconds)) return '–';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function ago(at, now = Date.now()) {
  if (!at) return '';
  return duration((now - new Date(at).getTime()) / 1000);
}

export const km = (m) => (m == null ? '–' : m < 1000 ? `${Math.round(m)} m` : `${(m / 1000).toFixed(1)} km`);

export const clock = (at) => (at ? new Date(at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' }) : '');
