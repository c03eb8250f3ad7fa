// Connection status: is the gateway reachable, and is its upstream render server?
//
// Polls GET /health (and GET /readyz when health says the upstream is not connected, since
// readyz actively probes it), listens to what the frame transports report, shows a banner
// while something is down, and fires "recovered" when it comes back so the other modules
// reload without a page reload. A gateway that answers but will not serve this page (no
// token, an origin not allowed with --cors-origin, a host not allowed) is "refused", with the
// gateway's own explanation in the banner, rather than "unreachable".

import { request } from './api.js';

const POLL_UP_MS = 3000;
const POLL_DOWN_MS = 1000;
const HEALTH_TIMEOUT_MS = 2500;
/** A refusal lasts until someone acts (a token, a restart with another flag): poll gently. */
const POLL_REFUSED_MS = 5000;
/** /health answers that mean "this page may not use the gateway": 401 token, 403 origin, 421 host. */
const REFUSED_STATUSES = new Set([401, 403, 421]);

export class ConnectionStatus extends EventTarget {
  /** @param {{banner: HTMLElement, indicator: HTMLElement}} els */
  constructor({ banner, indicator }) {
    super();
    this.banner = banner;
    this.indicator = indicator;
    /** 'unknown' | 'up' | 'down' | 'refused' (it answers, but not to this page) */
    this.gateway = 'unknown';
    this.upstream = 'unknown';
    this.detail = '';
    this.timer = null;
    this.checking = null;
    this.stopped = false;
  }

  start() {
    this.stopped = false;
    this.checkSoon(0);
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** True unless the gateway is known to be unreachable or to refuse this page. */
  gatewayUp() {
    return this.gateway !== 'down' && this.gateway !== 'refused';
  }

  /** Schedules the next health check (a sooner request replaces a later one). */
  checkSoon(delayMs) {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.check(), delayMs);
  }

  /** Something failed to reach the gateway: verify now rather than at the next poll. */
  reportUnreachable() {
    if (!this.checking) this.checkSoon(0);
  }

  /** A frame transport heard from the gateway about the upstream (WebSocket "upstream" message). */
  reportUpstream(connected) {
    this.update(this.gateway === 'down' || this.gateway === 'refused' ? 'up' : this.gateway, connected ? 'up' : 'down', '');
  }

  /** A frame arrived: the gateway and the upstream are evidently working. */
  reportFrame() {
    if (this.gateway !== 'up' || this.upstream !== 'up') this.update('up', 'up', '');
  }

  async check() {
    if (this.checking) return this.checking;
    this.checking = this.probe().finally(() => {
      this.checking = null;
      const up = this.gateway === 'up' && this.upstream === 'up';
      this.checkSoon(up ? POLL_UP_MS : this.gateway === 'refused' ? POLL_REFUSED_MS : POLL_DOWN_MS);
    });
    return this.checking;
  }

  async probe() {
    let health;
    try {
      const response = await request('health', { timeoutMs: HEALTH_TIMEOUT_MS });
      health = await response.json().catch(() => null);
      if (REFUSED_STATUSES.has(response.status)) {
        const why = health?.error || health?.message || `HTTP ${response.status}`;
        this.update('refused', 'unknown', String(why).slice(0, 400));
        return;
      }
      if (!response.ok || !health) {
        this.update('down', 'unknown', `the gateway answered /health with HTTP ${response.status}`);
        return;
      }
    } catch (err) {
      // "Unreachable" says it all; a timeout is worth spelling out.
      this.update('down', 'unknown', err?.unreachable && !err.code ? '' : err?.message || String(err));
      return;
    }
    if (health.connected === true) {
      this.update('up', 'up', '');
      return;
    }
    // /health reports the last call's outcome; /readyz probes the upstream now.
    try {
      const ready = await request('readyz', { timeoutMs: HEALTH_TIMEOUT_MS });
      const answer = await ready.json().catch(() => null);
      const reason = String(answer?.reason || answer?.error || `readyz answered HTTP ${ready.status}`).slice(0, 300);
      this.update('up', ready.ok ? 'up' : 'down', ready.ok ? '' : reason);
    } catch (err) {
      this.update('down', 'unknown', err?.message || String(err));
    }
  }

  update(gateway, upstream, detail) {
    const previous = { gateway: this.gateway, upstream: this.upstream };
    this.detail = detail;
    if (previous.gateway === gateway && previous.upstream === upstream) {
      this.render();
      return;
    }
    this.gateway = gateway;
    this.upstream = upstream;
    this.render();
    this.dispatchEvent(new CustomEvent('change', { detail: { gateway, upstream, previous } }));
    const wasDown = previous.gateway === 'down' || previous.gateway === 'refused' || previous.upstream === 'down';
    if (wasDown && gateway === 'up' && upstream === 'up') {
      this.dispatchEvent(new CustomEvent('recovered', { detail: { previous } }));
    }
  }

  render() {
    const { banner, indicator } = this;
    let state = 'ok';
    let label = 'Connected';
    let message = '';
    if (this.gateway === 'refused') {
      state = 'down';
      label = 'Refused';
      message = `The octaneweb gateway refuses this page: ${this.detail}`;
    } else if (this.gateway === 'down') {
      state = 'down';
      label = 'Gateway offline';
      message = `The octaneweb gateway is unreachable${this.detail ? ` (${this.detail})` : ''}. Retrying…`;
    } else if (this.upstream === 'down') {
      state = 'warn';
      label = 'Render server offline';
      message = `The gateway is up but cannot reach the render server${this.detail ? `: ${this.detail}` : ''}. Retrying…`;
    } else if (this.gateway === 'unknown' || this.upstream === 'unknown') {
      state = 'unknown';
      label = 'Connecting…';
    }
    indicator.dataset.state = state;
    const labelEl = indicator.querySelector('.label');
    if (labelEl) labelEl.textContent = label;
    document.body.dataset.connection = state;
    if (message) {
      banner.textContent = message;
      banner.dataset.state = state;
      banner.hidden = false;
    } else {
      banner.hidden = true;
      banner.textContent = '';
    }
  }
}
