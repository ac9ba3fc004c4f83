// @ts-check
// The aivideo web console: plain DOM, a hash router, and only the public API (api.js).
import * as apiModule from './api.js';

/**
 * tsc resolves './api.js' to the generated api.d.ts beside it (a declaration file wins over a .js
 * of the same name), so the client's own types are named through `#client`, which tsconfig.json
 * maps to api.js. Browsers load ./api.js itself.
 * @type {typeof import('#client')}
 */
const api = /** @type {any} */ (apiModule);
const { Client, ApiError, NetworkError, cursorOf, defaultBaseUrl, normalizeBaseUrl } = api;

/**
 * @typedef {import('#client').Client} ApiClient
 * @typedef {import('./api').components['schemas']['Story']} Story
 * @typedef {import('./api').components['schemas']['StoryCreate']} StoryCreate
 * @typedef {import('./api').components['schemas']['Scene']} Scene
 * @typedef {import('./api').components['schemas']['ScenePatch']} ScenePatch
 * @typedef {import('./api').components['schemas']['Prompt']} Prompt
 * @typedef {import('./api').components['schemas']['Job']} Job
 * @typedef {import('./api').components['schemas']['Transition']} Transition
 * @typedef {import('./api').components['schemas']['CostEstimate']} CostEstimate
 * @typedef {import('./api').components['schemas']['Provider']} Provider
 * @typedef {import('./api').components['schemas']['Media']} Media
 * @typedef {import('./api').components['schemas']['PreviewOptions']} PreviewOptions
 * @typedef {import('./api').components['schemas']['FinalOptions']} FinalOptions
 * @typedef {Story['status']} StoryStatus
 * @typedef {Story['ai_provider']} ProviderName
 * @typedef {Job['status']} JobStatus
 * @typedef {Job['kind']} JobKind
 * @typedef {Prompt['prompt_type']} PromptType
 * @typedef {Scene['kind']} SceneKind
 * @typedef {NonNullable<PreviewOptions['quality']>} Quality
 * @typedef {NonNullable<FinalOptions['output_format']>} OutputFormat
 */

// ---- the API's vocabularies (Records keyed by the OpenAPI enums, so tsc checks they are complete)

/** @satisfies {Record<StoryStatus, string>} */
const STORY_STATUSES = {
  DRAFT: 'Draft',
  PLANNING: 'Planning',
  PLANNED: 'Planned',
  PREVIEWING: 'Rendering preview',
  PREVIEW_READY: 'Preview ready',
  FINALIZING: 'Rendering final',
  COMPLETED: 'Completed',
  FAILED: 'Failed',
  ARCHIVED: 'Archived',
};

/**
 * The moves a person may ask for (SPEC §4); PREVIEWING and FINALIZING start with a render, the
 * worker makes the others.
 * @type {Record<StoryStatus, StoryStatus[]>}
 */
const USER_MOVES = {
  DRAFT: ['PLANNING', 'ARCHIVED'],
  PLANNING: ['PLANNED', 'FAILED'],
  PLANNED: ['PLANNING', 'FAILED', 'ARCHIVED'],
  PREVIEWING: ['FAILED'],
  PREVIEW_READY: ['PLANNING', 'FAILED', 'ARCHIVED'],
  FINALIZING: ['FAILED'],
  COMPLETED: ['ARCHIVED'],
  FAILED: ['PLANNING', 'ARCHIVED'],
  ARCHIVED: [],
};

/** Where lock/unlock are allowed. @type {StoryStatus[]} */
const LOCKABLE = ['PLANNING', 'PLANNED', 'PREVIEW_READY'];

/** @satisfies {Record<ProviderName, string>} */
const PROVIDERS = {
  local: 'local (built-in, offline)',
  runway: 'Runway',
  luma: 'Luma',
  veo: 'Veo',
  replicate: 'Replicate',
  fal: 'fal.ai',
  stability_ai: 'Stability AI',
};

/** @satisfies {Record<JobStatus, string>} */
const JOB_STATUSES = {
  queued: 'queued',
  running: 'running',
  waiting_provider: 'waiting for provider',
  succeeded: 'succeeded',
  failed: 'failed',
  cancelled: 'cancelled',
};

/** @satisfies {Record<JobKind, string>} */
const JOB_KINDS = {
  generate_prompts: 'prompts',
  scene_preview: 'scene preview',
  preview_compose: 'preview compose',
  scene_final: 'scene final',
  final_compose: 'final compose',
  scene_generate: 'scene render',
  prompt_test: 'prompt test',
};

/** @satisfies {Record<PromptType, string>} */
const PROMPT_TYPES = { video: 'video', image: 'image', negative: 'negative', narration: 'narration' };

/** @satisfies {Record<SceneKind, string>} */
const SCENE_KINDS = { intro: 'intro', main: 'main', outro: 'outro' };

/** @satisfies {Record<Quality, string>} */
const QUALITIES = { low: 'low', medium: 'medium', high: 'high' };

/** @satisfies {Record<OutputFormat, string>} */
const FORMATS = { mp4: 'mp4', webm: 'webm', gif: 'gif' };

/** @type {JobStatus[]} */
const UNFINISHED = ['queued', 'running', 'waiting_provider'];

/**
 * @template {string} K
 * @param {Record<K, string>} record
 * @returns {K[]}
 */
function keys(record) {
  return /** @type {K[]} */ (Object.keys(record));
}

// ---- a small DOM builder -----------------------------------------------------------------------

/** @typedef {Node | string | number | null | undefined | false} Child */

/**
 * An element with attributes, properties (`value`, `checked`, …), `on…` listeners and children.
 * Text is always text: nothing from the API becomes markup.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, any> | null} [attrs]
 * @param {...(Child | Child[])} children
 * @returns {HTMLElementTagNameMap[K]}
 */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      el.addEventListener(name.slice(2), value);
    } else if (name === 'class') {
      el.className = String(value);
    } else if (name === 'value' || name === 'checked' || name === 'selected' || name === 'disabled') {
      /** @type {any} */ (el)[name] = value;
    } else if (name === 'style') {
      for (const [prop, v] of Object.entries(/** @type {Record<string, string>} */ (value))) el.style.setProperty(prop, v);
    } else {
      el.setAttribute(name, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

/**
 * @param {Element} el
 * @param {(Child | Child[])[]} children
 */
function append(el, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(typeof child === 'number' ? String(child) : child);
  }
}

/**
 * Replaces an element's children (null, undefined and false are left out).
 * @param {Element} el
 * @param {...(Child | Child[])} children
 */
function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

let uid = 0;
/** @param {string} prefix */
function nextId(prefix) {
  uid += 1;
  return `${prefix}-${uid}`;
}

/**
 * A labelled form field with a place for the API's field errors (`data-error-for`).
 * @param {string} label
 * @param {HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement} control (with a `name`)
 * @param {string} [hint]
 */
function field(label, control, hint) {
  const id = control.id || nextId(`f-${control.name}`);
  control.id = id;
  const errorId = `${id}-error`;
  const hintId = hint ? `${id}-hint` : null;
  control.setAttribute('aria-describedby', [hintId, errorId].filter(Boolean).join(' '));
  return h(
    'div',
    { class: control instanceof HTMLInputElement && control.type === 'checkbox' ? 'field field-check' : 'field' },
    control instanceof HTMLInputElement && control.type === 'checkbox' ? [control, h('label', { for: id }, label)] : [h('label', { for: id }, label), control],
    hint ? h('p', { class: 'hint', id: hintId }, hint) : null,
    h('p', { class: 'field-error', id: errorId, 'data-error-for': control.name, hidden: true }),
  );
}

/**
 * A `<select>` of `options` ([value, label]).
 * @param {string} name
 * @param {[string, string][]} options
 * @param {string} [selected]
 */
function select(name, options, selected) {
  return h(
    'select',
    { name },
    options.map(([value, label]) => h('option', { value, selected: value === selected }, label)),
  );
}

/**
 * @param {HTMLFormElement} form
 * @param {string} name
 * @returns {string}
 */
function formValue(form, name) {
  const el = form.elements.namedItem(name);
  if (el instanceof HTMLInputElement && el.type === 'checkbox') return el.checked ? 'true' : '';
  if (el instanceof HTMLInputElement || el instanceof HTMLSelectElement || el instanceof HTMLTextAreaElement) return el.value;
  return '';
}

/**
 * @param {HTMLFormElement} form
 * @param {string} name
 */
function formChecked(form, name) {
  return formValue(form, name) === 'true';
}

/**
 * A number from a form field: the number typed, `undefined` when empty, or the text as it is
 * (so that the API's field error, not the browser, tells what is wrong).
 * @param {HTMLFormElement} form
 * @param {string} name
 * @returns {any}
 */
function formNumber(form, name) {
  const raw = formValue(form, name).trim();
  if (raw === '') return undefined;
  const n = Number(raw);
  return Number.isFinite(n) ? n : raw;
}

// ---- formatting --------------------------------------------------------------------------------

/** @param {number} seconds */
function fmtSeconds(seconds) {
  const rounded = Math.round(seconds * 100) / 100;
  return `${rounded} s`;
}

/** @param {number} bytes */
function fmtBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** @param {number} usd */
function fmtUsd(usd) {
  return `$${usd.toFixed(usd > 0 && usd < 0.01 ? 4 : 2)}`;
}

/** @param {string | null | undefined} iso */
function fmtTime(iso) {
  if (!iso) return '—';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

/** @param {StoryStatus} status */
function statusBadge(status) {
  return h('span', { class: `badge status-${status}` }, STORY_STATUSES[status] ?? status);
}

/** @param {JobStatus} status */
function jobBadge(status) {
  return h('span', { class: `badge job-${status}` }, JOB_STATUSES[status] ?? status);
}

/** The part of a media link that names the file (its signature changes on every read). @param {string} url */
function mediaPath(url) {
  try {
    const u = new URL(url);
    return u.origin + u.pathname;
  } catch {
    return url;
  }
}

// ---- settings, token, client -------------------------------------------------------------------

const KEY_BASE = 'aivideo.console.apiBase';
const KEY_TOKEN = 'aivideo.console.token';
/** The API base the stored token was given to: it is never sent to any other (a link with
 * `?api=` naming another host must not receive it). */
const KEY_TOKEN_BASE = 'aivideo.console.tokenBase';

/** The stored token, if it was stored for `base`. @param {string} base */
function tokenFor(base) {
  return readStorage(sessionStorage, KEY_TOKEN_BASE) === base ? readStorage(sessionStorage, KEY_TOKEN) : null;
}

/**
 * @param {Storage} storage
 * @param {string} key
 */
function readStorage(storage, key) {
  try {
    return storage.getItem(key);
  } catch {
    return null;
  }
}

/**
 * @param {Storage} storage
 * @param {string} key
 * @param {string | null} value
 */
function writeStorage(storage, key, value) {
  try {
    if (value === null) storage.removeItem(key);
    else storage.setItem(key, value);
  } catch {
    // storage unavailable (private mode): the value lasts as long as the page
  }
}

/** @returns {{base: string, source: 'query' | 'saved' | 'default'}} */
function chooseBase() {
  const fromQuery = new URLSearchParams(location.search).get('api');
  if (fromQuery) {
    try {
      return { base: normalizeBaseUrl(fromQuery), source: 'query' };
    } catch {
      // an unusable ?api= falls through to the saved or default base
    }
  }
  const saved = readStorage(localStorage, KEY_BASE);
  if (saved) {
    try {
      return { base: normalizeBaseUrl(saved), source: 'saved' };
    } catch {
      // ignore a broken saved value
    }
  }
  return { base: defaultBaseUrl(location), source: 'default' };
}

const initial = chooseBase();
const state = {
  base: initial.base,
  baseSource: initial.source,
  /** @type {ApiClient} */
  client: new Client(initial.base, tokenFor(initial.base)),
  /** Where to go after signing in. */
  afterSignIn: '#/stories',
};

/** @param {string | null} token */
function setToken(token) {
  state.client.token = token;
  writeStorage(sessionStorage, KEY_TOKEN, token);
  writeStorage(sessionStorage, KEY_TOKEN_BASE, token === null ? null : state.base);
  renderWho();
}

/** The token's `sub` (shown, never trusted: the API checks the token). @param {string} token */
function tokenUser(token) {
  try {
    const part = token.split('.')[1] ?? '';
    const json = atob(part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '='));
    const claims = JSON.parse(json);
    return typeof claims.sub === 'string' ? claims.sub : null;
  } catch {
    return null;
  }
}

// ---- page frame: banner, status line, header ---------------------------------------------------

/** @param {string} id */
function byId(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing from index.html`);
  return el;
}

const main = byId('main');
const banner = byId('banner');
const statusLine = byId('status');

function clearBanner() {
  fill(banner);
  banner.hidden = true;
}

/** The navigation during which the status line was last written. */
let statusGeneration = -1;

/**
 * A short confirmation in the status line (role=status): it stays through the navigation that
 * usually follows an action, and is cleared by the next one.
 * @param {string} message
 */
function notify(message) {
  statusLine.textContent = message;
  statusGeneration = generation;
}

/** @param {number} status */
function statusText(status) {
  /** @type {Record<number, string>} */
  const names = {
    400: 'Bad request',
    401: 'Not signed in',
    403: 'Not allowed',
    404: 'Not found',
    405: 'Method not allowed',
    409: 'Conflict',
    412: 'Changed meanwhile',
    413: 'Too large',
    415: 'Unsupported media type',
    422: 'Unprocessable',
    428: 'Precondition required',
    429: 'Too many requests',
    500: 'Server error',
    503: 'Unavailable',
  };
  return names[status] ?? 'Error';
}

/**
 * Shows an error in the alert banner: the API's `detail`, its `code` and the remaining field
 * errors; for a network error a "Try again" that repeats the same request (same Idempotency-Key).
 * @param {unknown} error
 * @param {{retry?: () => void, leftover?: Record<string, string[]>}} [options]
 */
function showError(error, options = {}) {
  const parts = [];
  if (error instanceof ApiError) {
    const title = h('p', { class: 'banner-title' }, h('strong', null, `${statusText(error.status)} (${error.status})`));
    if (error.code) title.append(' ', h('code', { class: 'error-code' }, error.code));
    parts.push(title);
    if (error.detail) parts.push(h('p', { class: 'banner-detail' }, error.detail));
    const current = error.body.current_status;
    if (typeof current === 'string') parts.push(h('p', null, `The story is ${current}.`));
    if (typeof error.body.alternative === 'string') parts.push(h('p', null, `Alternative: ${error.body.alternative}`));
    const { limit, estimate_usd: estimate, remaining_usd: remaining } = error.body;
    if (typeof estimate === 'number' && typeof remaining === 'number') {
      parts.push(h('p', null, `${limit === 'monthly' ? 'Monthly cap' : 'Story budget'}: this would cost about ${fmtUsd(estimate)}; ${fmtUsd(remaining)} remain.`));
    }
    if (error.status === 412) parts.push(h('p', null, 'Someone changed it since it was loaded: it has been reloaded, try again.'));
    const fields = options.leftover ?? error.fieldErrors;
    const entries = Object.entries(fields);
    if (entries.length) {
      parts.push(h('ul', { class: 'banner-fields' }, entries.map(([k, msgs]) => h('li', null, k === 'non_field_errors' ? msgs.join(' ') : `${k}: ${msgs.join(' ')}`))));
    }
  } else if (error instanceof NetworkError) {
    parts.push(h('p', { class: 'banner-title' }, h('strong', null, 'Network error'), ' ', h('code', { class: 'error-code' }, 'network_error')));
    parts.push(h('p', { class: 'banner-detail' }, error.message));
  } else {
    parts.push(h('p', { class: 'banner-title' }, h('strong', null, 'Error')));
    parts.push(h('p', { class: 'banner-detail' }, error instanceof Error ? error.message : String(error)));
  }
  const buttons = h('p', { class: 'banner-actions' });
  if (options.retry && (error instanceof NetworkError || (error instanceof ApiError && error.status >= 500))) {
    const retry = options.retry;
    buttons.append(h('button', { type: 'button', class: 'secondary', onclick: () => { clearBanner(); retry(); } }, 'Try again'));
  }
  buttons.append(h('button', { type: 'button', class: 'secondary', onclick: clearBanner }, 'Dismiss'));
  parts.push(buttons);
  fill(banner, h('div', { class: 'banner-box' }, parts));
  banner.hidden = false;
}

/**
 * Puts the API's field errors next to the form's fields; returns those that have no field there.
 * @param {HTMLFormElement} form
 * @param {Record<string, string[]>} errors
 */
function showFieldErrors(form, errors) {
  clearFieldErrors(form);
  /** @type {Record<string, string[]>} */
  const leftover = {};
  let first = /** @type {HTMLElement | null} */ (null);
  for (const [name, messages] of Object.entries(errors)) {
    const slot = form.querySelector(`[data-error-for="${CSS.escape(name)}"]`);
    const control = form.elements.namedItem(name);
    if (slot instanceof HTMLElement) {
      slot.textContent = messages.join(' ');
      slot.hidden = false;
      if (control instanceof HTMLElement) {
        control.setAttribute('aria-invalid', 'true');
        first ??= control;
      }
    } else {
      leftover[name] = messages;
    }
  }
  first?.focus();
  return leftover;
}

/** @param {HTMLFormElement} form */
function clearFieldErrors(form) {
  for (const slot of form.querySelectorAll('[data-error-for]')) {
    if (slot instanceof HTMLElement) {
      slot.textContent = '';
      slot.hidden = true;
    }
  }
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
}

/**
 * Handles what an action's request threw: a refused token signs out, field errors go next to
 * their fields, the rest to the banner.
 * @param {unknown} error
 * @param {{form?: HTMLFormElement, retry?: () => void}} [options]
 */
function handleError(error, options = {}) {
  if (error instanceof DOMException && error.name === 'AbortError') return;
  if (error instanceof ApiError && error.status === 401) {
    setToken(null);
    state.afterSignIn = location.hash && !location.hash.startsWith('#/signin') ? location.hash : '#/stories';
    pendingError = error;
    navigate('#/signin');
    return;
  }
  if (error instanceof ApiError && options.form) {
    const leftover = showFieldErrors(options.form, error.fieldErrors);
    showError(error, { retry: options.retry, leftover });
    return;
  }
  showError(error, { retry: options.retry });
}

/** An error to show on the next screen (after a redirect to sign-in). @type {unknown} */
let pendingError = null;

/**
 * Runs one user action: the button is busy meanwhile; errors are shown where they belong. A
 * network error offers "Try again", which repeats the same request with the same Idempotency-Key.
 * @template T
 * @param {HTMLButtonElement | null} button
 * @param {() => Promise<T>} work
 * @param {HTMLFormElement} [form]
 * @returns {Promise<T | undefined>}
 */
async function act(button, work, form) {
  clearBanner();
  if (form) clearFieldErrors(form);
  if (button) {
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
  }
  try {
    return await work();
  } catch (error) {
    handleError(error, { form, retry: () => void act(button, work, form) });
    return undefined;
  } finally {
    if (button) {
      button.disabled = false;
      button.removeAttribute('aria-busy');
    }
  }
}

/**
 * A form whose submit runs `work` as one action (no navigation: everything goes through fetch).
 * @param {HTMLFormElement} form
 * @param {(form: HTMLFormElement) => Promise<unknown>} work
 */
function onSubmit(form, work) {
  form.noValidate = true;
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const button = /** @type {HTMLButtonElement | null} */ (form.querySelector('button[type="submit"]'));
    void act(button, () => work(form), form);
  });
  return form;
}

function renderWho() {
  const who = byId('who');
  const signout = /** @type {HTMLButtonElement} */ (byId('signout'));
  const token = state.client.token;
  if (token) {
    const user = tokenUser(token);
    who.textContent = user ? `Signed in as ${user}` : 'Signed in';
    signout.hidden = false;
  } else {
    who.textContent = 'Not signed in';
    signout.hidden = true;
  }
  byId('api-base').textContent = state.base;
}

// ---- router --------------------------------------------------------------------------------------

/** Bumped on every navigation; async work of an older screen checks it and stops. */
let generation = 0;
/** @type {number[]} */
let timers = [];

/** @param {string} hash */
function navigate(hash) {
  if (location.hash === hash) void route();
  else location.hash = hash;
}

/** @returns {{path: string, params: URLSearchParams}} */
function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path = '', query = ''] = raw.split('?');
  return { path: path.replace(/\/+$/, ''), params: new URLSearchParams(query) };
}

/**
 * @param {string} path
 * @param {Record<string, string | undefined>} params
 */
function hashFor(path, params) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) query.set(k, v);
  const text = query.toString();
  return `#/${path}${text ? `?${text}` : ''}`;
}

/**
 * Starts a screen: a heading that takes the focus (so keyboard and screen reader users land on
 * the new content), and the generation number its async work checks.
 * @param {string} title
 * @param {boolean} focus
 */
function screen(title, focus) {
  const heading = h('h2', { tabindex: '-1', id: 'screen-title' }, title);
  fill(main, heading);
  document.title = `${title} · aivideo console`;
  if (focus) heading.focus();
  return heading;
}

/** @param {number} gen */
function current(gen) {
  return gen === generation;
}

/**
 * @param {number} gen
 * @param {() => void} fn
 * @param {number} ms
 */
function later(gen, fn, ms) {
  const id = window.setTimeout(() => {
    timers = timers.filter((t) => t !== id);
    if (current(gen)) fn();
  }, ms);
  timers.push(id);
}

let firstRoute = true;

async function route() {
  generation += 1;
  const gen = generation;
  for (const t of timers) window.clearTimeout(t);
  timers = [];
  const focus = !firstRoute;
  firstRoute = false;
  clearBanner();
  if (statusGeneration < generation - 1) statusLine.textContent = '';
  if (pendingError) {
    showError(pendingError);
    pendingError = null;
  }
  const { path, params } = parseHash();
  const open = path === 'signin' || path === 'settings';
  if (!state.client.token && !open) {
    state.afterSignIn = location.hash || '#/stories';
    navigate('#/signin');
    return;
  }
  for (const link of document.querySelectorAll('nav a')) {
    const target = link.getAttribute('href')?.replace(/^#\/?/, '') ?? '';
    const active = target === path || (target === 'stories' && (path === '' || path.startsWith('stories/')));
    if (active) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  const storyMatch = /^stories\/([^/]+)$/.exec(path);
  try {
    if (path === 'signin') signInScreen(focus);
    else if (path === 'settings') settingsScreen(focus);
    else if (path === '' || path === 'stories') await storiesScreen(gen, params, focus);
    else if (path === 'new') newStoryScreen(focus);
    else if (storyMatch) await storyScreen(gen, decodeURIComponent(storyMatch[1] ?? ''), focus);
    else if (path === 'jobs') await jobsScreen(gen, params, focus);
    else if (path === 'providers') await providersScreen(gen, focus);
    else {
      screen('Not found', focus);
      main.append(h('p', null, 'No such page. ', h('a', { href: '#/stories' }, 'Back to the stories')));
    }
  } catch (error) {
    if (!current(gen)) return;
    for (const el of main.querySelectorAll('.loading')) el.textContent = 'This page could not be loaded.';
    handleError(error, { retry: () => void route() });
  }
}

// ---- sign in and settings ----------------------------------------------------------------------

/** The API base URL setting (also on the sign-in screen). */
function baseForm() {
  const input = h('input', { name: 'api', type: 'url', value: state.base, autocomplete: 'url', spellcheck: 'false', required: true });
  const source = {
    query: 'from this page\u2019s ?api= parameter',
    saved: 'saved in this browser',
    default: 'the default: this page\u2019s origin',
  }[state.baseSource];
  const form = h(
    'form',
    { class: 'card stack', 'aria-labelledby': 'api-settings-title' },
    h('h3', { id: 'api-settings-title' }, 'API'),
    field('API base URL', input, `Now ${state.base} (${source}). Saved in this browser; ?api=<url> overrides it for one page.`),
    h('div', { class: 'row' }, h('button', { type: 'submit' }, 'Save API base URL'), h('button', { type: 'button', class: 'secondary', onclick: () => saveBase(null) }, 'Use the default')),
  );
  return onSubmit(form, async (f) => {
    let base;
    try {
      base = normalizeBaseUrl(formValue(f, 'api'));
    } catch {
      showFieldErrors(f, { api: ['Enter an absolute http(s) URL, e.g. http://127.0.0.1:3000/api/ai-video'] });
      return;
    }
    saveBase(base);
  });
}

/** @param {string | null} base a new base, or null for the default */
function saveBase(base) {
  writeStorage(localStorage, KEY_BASE, base);
  const url = new URL(location.href);
  if (url.searchParams.has('api')) {
    url.searchParams.delete('api');
    history.replaceState(null, '', url.href);
  }
  const chosen = chooseBase();
  state.base = chosen.base;
  state.baseSource = chosen.source;
  // A token goes only to the API it was given for: another base means signing in there.
  state.client = new Client(chosen.base, tokenFor(chosen.base));
  renderWho();
  notify(`API base URL: ${state.base}`);
  void route();
}

/** @param {boolean} focus */
function signInScreen(focus) {
  screen('Sign in', focus);
  const tokenInput = h('textarea', { name: 'token', rows: '3', autocomplete: 'off', spellcheck: 'false', required: true });
  const tokenForm = onSubmit(
    h(
      'form',
      { class: 'card stack', 'aria-labelledby': 'token-title' },
      h('h3', { id: 'token-title' }, 'Sign in with a token'),
      field('Bearer token', tokenInput, 'A JWT the API accepts, e.g. from “aivideo token --user alice”. Kept in this tab only (sessionStorage).'),
      h('div', { class: 'row' }, h('button', { type: 'submit' }, 'Sign in')),
    ),
    async (f) => {
      const token = formValue(f, 'token').trim().replace(/^Bearer\s+/i, '');
      if (!token) {
        showFieldErrors(f, { token: ['Paste a token.'] });
        return;
      }
      await signIn(token);
    },
  );
  const userInput = h('input', { name: 'user', type: 'text', autocomplete: 'username', spellcheck: 'false', required: true });
  const localForm = onSubmit(
    h(
      'form',
      { class: 'card stack', 'aria-labelledby': 'local-title' },
      h('h3', { id: 'local-title' }, 'Get a local token'),
      h('p', { class: 'hint' }, 'Only a local ', h('code', null, 'aivideo serve'), ' (embedded backend, loopback address) offers this.'),
      field('User name', userInput),
      h('div', { class: 'row' }, h('button', { type: 'submit' }, 'Get a local token')),
    ),
    async (f) => {
      const user = formValue(f, 'user').trim();
      let token;
      try {
        token = await state.client.localToken(user);
      } catch (error) {
        if (error instanceof ApiError && [404, 405, 501].includes(error.status)) {
          throw new Error(`Local tokens are not available at ${state.client.origin}: only a local “aivideo serve” on its embedded backend offers them. Paste a token instead.`);
        }
        throw error;
      }
      await signIn(token);
    },
  );
  main.append(h('div', { class: 'grid-2' }, tokenForm, localForm), baseForm());
}

/**
 * Keeps the token once the API accepted it (one list call).
 * @param {string} token
 */
async function signIn(token) {
  const probe = new Client(state.base, token);
  await probe.listStories({ page_size: '1' });
  setToken(token);
  notify('Signed in.');
  const target = state.afterSignIn && !state.afterSignIn.startsWith('#/signin') ? state.afterSignIn : '#/stories';
  state.afterSignIn = '#/stories';
  navigate(target);
}

/** @param {boolean} focus */
function settingsScreen(focus) {
  screen('Settings', focus);
  main.append(baseForm());
}

// ---- story list --------------------------------------------------------------------------------

/**
 * @param {number} gen
 * @param {URLSearchParams} params
 * @param {boolean} focus
 */
async function storiesScreen(gen, params, focus) {
  screen('Stories', focus);
  const status = params.get('status') ?? '';
  const provider = params.get('ai_provider') ?? '';
  const project = params.get('project') ?? '';
  const ordering = params.get('ordering') ?? '';
  const pageSize = params.get('page_size') ?? '20';
  const filters = h(
    'form',
    { class: 'card filters', role: 'search', 'aria-label': 'Filter stories' },
    field('Status', select('status', [['', 'Any status'], ...keys(STORY_STATUSES).map((s) => /** @type {[string, string]} */ ([s, STORY_STATUSES[s]]))], status)),
    field('Provider', select('ai_provider', [['', 'Any provider'], ...keys(PROVIDERS).map((p) => /** @type {[string, string]} */ ([p, p]))], provider)),
    field('Project', h('input', { name: 'project', type: 'number', min: '1', step: '1', value: project, inputmode: 'numeric' })),
    field('Order', select('ordering', [['', 'Newest first'], ['created_at', 'Oldest first']], ordering)),
    field('Per page', select('page_size', ['5', '10', '20', '50', '100'].map((n) => /** @type {[string, string]} */ ([n, n])), pageSize)),
    h('div', { class: 'row filters-actions' }, h('button', { type: 'submit' }, 'Apply filters'), h('a', { href: '#/stories', class: 'button secondary' }, 'Clear')),
  );
  filters.addEventListener('submit', (event) => {
    event.preventDefault();
    navigate(
      hashFor('stories', {
        status: formValue(filters, 'status'),
        ai_provider: formValue(filters, 'ai_provider'),
        project: formValue(filters, 'project').trim(),
        ordering: formValue(filters, 'ordering'),
        page_size: formValue(filters, 'page_size') === '20' ? '' : formValue(filters, 'page_size'),
      }),
    );
  });
  const list = h('div', { class: 'results', 'aria-live': 'polite', 'aria-busy': 'true' }, h('p', { class: 'muted' }, 'Loading…'));
  main.append(h('p', { class: 'row' }, h('a', { href: '#/new', class: 'button' }, 'New story')), filters, list);

  /** @type {Record<string, string | undefined>} */
  const query = { status, ai_provider: provider, project, ordering, page_size: pageSize, cursor: params.get('cursor') ?? undefined };
  let answer;
  try {
    answer = await state.client.listStories(/** @type {any} */ (query));
  } catch (error) {
    if (!current(gen)) return;
    fill(list, h('p', { class: 'muted' }, 'No stories to show.'));
    list.removeAttribute('aria-busy');
    throw error;
  }
  if (!current(gen)) return;
  const { results, next, previous } = answer.data;
  list.removeAttribute('aria-busy');
  if (!results.length) {
    const filtered = status || provider || project;
    fill(list, h('p', { class: 'empty' }, filtered ? 'No stories match these filters.' : 'No stories yet. ', filtered ? null : h('a', { href: '#/new' }, 'Create the first one')));
  } else {
    fill(list, 
      h(
        'ul',
        { class: 'story-list', 'aria-label': 'Stories' },
        results.map((story) =>
          h(
            'li',
            { class: 'card story-item', 'data-story': story.id },
            h('h3', null, h('a', { href: `#/stories/${encodeURIComponent(story.id)}` }, story.title)),
            h(
              'p',
              { class: 'meta' },
              statusBadge(story.status),
              story.is_locked ? h('span', { class: 'badge locked' }, 'locked') : null,
              h('span', null, `${story.duration_seconds} s · ${story.fps} fps · ${story.resolution}`),
              h('span', null, story.ai_provider),
              story.project !== null ? h('span', null, `project ${story.project}`) : null,
              h('span', { class: 'muted' }, `created ${fmtTime(story.created_at)}`),
            ),
          ),
        ),
      ),
    );
  }
  const base = { status, ai_provider: provider, project, ordering, page_size: params.get('page_size') ?? undefined };
  const prevCursor = cursorOf(previous);
  const nextCursor = cursorOf(next);
  if (prevCursor || nextCursor) {
    list.append(
      h(
        'nav',
        { class: 'pager', 'aria-label': 'Story pages' },
        prevCursor ? h('a', { href: hashFor('stories', { ...base, cursor: prevCursor }), rel: 'prev' }, '← Previous page') : h('span'),
        nextCursor ? h('a', { href: hashFor('stories', { ...base, cursor: nextCursor }), rel: 'next' }, 'Next page →') : h('span'),
      ),
    );
  }
}

// ---- create a story ----------------------------------------------------------------------------

/** @param {boolean} focus */
function newStoryScreen(focus) {
  screen('New story', focus);
  const form = h(
    'form',
    { class: 'card stack', 'aria-labelledby': 'screen-title' },
    field('Title', h('input', { name: 'title', type: 'text', maxlength: '200', required: true, autocomplete: 'off' })),
    field('Description', h('textarea', { name: 'description', rows: '4' }), 'What happens, for the prompts of every scene.'),
    h(
      'div',
      { class: 'grid-3' },
      field('Duration (seconds)', h('input', { name: 'duration_seconds', type: 'number', min: '5', max: '600', step: '1', value: '30', inputmode: 'numeric' }), '5–600'),
      field('Frames per second', h('input', { name: 'fps', type: 'number', min: '1', max: '60', step: '1', value: '24', inputmode: 'numeric' }), '1–60'),
      field('Resolution', h('input', { name: 'resolution', type: 'text', value: '1280x720', spellcheck: 'false' }), 'WIDTHxHEIGHT, even, 128–3840'),
    ),
    h(
      'div',
      { class: 'grid-3' },
      field('Provider', select('ai_provider', keys(PROVIDERS).map((p) => /** @type {[string, string]} */ ([p, PROVIDERS[p]])), 'local')),
      field('Style preset', h('input', { name: 'style_preset', type: 'text', value: 'cinematic', list: 'style-presets', maxlength: '50' })),
      field('Project (optional)', h('input', { name: 'project', type: 'number', min: '1', step: '1', inputmode: 'numeric' })),
    ),
    h('div', { class: 'grid-3' }, field('Budget in USD (optional)', h('input', { name: 'budget_usd', type: 'number', min: '0', step: 'any', inputmode: 'decimal' }), 'Renders that would cost more are refused.')),
    h('datalist', { id: 'style-presets' }, ['cinematic', 'anime', 'documentary', 'commercial', 'watercolor', 'noir'].map((s) => h('option', { value: s }))),
    h('div', { class: 'row' }, h('button', { type: 'submit' }, 'Create story'), h('a', { href: '#/stories', class: 'button secondary' }, 'Cancel')),
  );
  onSubmit(form, async (f) => {
    /** @type {StoryCreate} */
    const body = {
      title: formValue(f, 'title'),
      description: formValue(f, 'description'),
      duration_seconds: formNumber(f, 'duration_seconds'),
      fps: formNumber(f, 'fps'),
      resolution: formValue(f, 'resolution'),
      ai_provider: /** @type {ProviderName} */ (formValue(f, 'ai_provider')),
      style_preset: formValue(f, 'style_preset'),
    };
    const project = formNumber(f, 'project');
    if (project !== undefined) body.project = project;
    const budget = formNumber(f, 'budget_usd');
    if (budget !== undefined) body.budget_usd = budget;
    for (const key of /** @type {(keyof StoryCreate)[]} */ (Object.keys(body))) if (body[key] === undefined) delete body[key];
    const { data } = await state.client.createStory(body);
    notify(`Story “${data.title}” created.`);
    navigate(`#/stories/${encodeURIComponent(data.id)}`);
  });
  main.append(form);
}

// ---- one story -----------------------------------------------------------------------------------

/**
 * Everything the story screen shows, and the elements it draws into.
 * @typedef {object} StoryPage
 * @property {number} gen
 * @property {Story} story
 * @property {Scene[]} scenes
 * @property {Prompt[]} prompts
 * @property {Job[]} jobs
 * @property {Transition[]} transitions
 * @property {CostEstimate | null} cost
 * @property {unknown} costError
 * @property {string | null} editing the scene being edited
 * @property {boolean} polling
 * @property {Record<string, HTMLElement>} parts
 */

/**
 * @param {number} gen
 * @param {string} id
 * @param {boolean} focus
 */
async function storyScreen(gen, id, focus) {
  const heading = screen('Story', focus);
  const loading = h('p', { class: 'muted loading' }, 'Loading…');
  main.append(loading);
  const client = state.client;
  const [story, scenes, prompts, jobs, transitions] = await Promise.all([
    client.getStory(id).then((a) => a.data),
    loadScenes(id),
    loadPrompts(id),
    loadJobs(id),
    client.transitions(id).then((a) => a.data.results),
  ]);
  if (!current(gen)) return;
  loading.remove();
  heading.textContent = story.title;
  document.title = `${story.title} · aivideo console`;

  /** @type {StoryPage} */
  const page = {
    gen,
    story,
    scenes,
    prompts,
    jobs,
    transitions,
    cost: null,
    costError: null,
    editing: null,
    polling: false,
    parts: {
      head: h('section', { class: 'card story-head', 'aria-label': 'Story' }),
      actions: h('section', { class: 'card', 'aria-labelledby': 'actions-title' }),
      media: h('section', { class: 'media', 'aria-label': 'Videos' }),
      timeline: h('section', { class: 'card', 'aria-labelledby': 'scenes-title' }),
      editor: h('section', { class: 'card editor', 'aria-labelledby': 'editor-title', hidden: true }),
      jobs: h('section', { class: 'card', 'aria-labelledby': 'jobs-title' }),
      cost: h('section', { class: 'card', 'aria-labelledby': 'cost-title' }),
      history: h('section', { class: 'card', 'aria-labelledby': 'history-title' }),
    },
  };
  const p = page.parts;
  main.append(
    h('p', { class: 'crumbs' }, h('a', { href: '#/stories' }, '← All stories')),
    p.head,
    p.media,
    p.actions,
    p.timeline,
    p.editor,
    p.jobs,
    h('div', { class: 'grid-2' }, p.cost, p.history),
  );
  renderHead(page);
  renderMedia(page);
  renderActions(page);
  renderTimeline(page);
  renderJobs(page);
  renderHistory(page);
  renderCost(page);
  void loadCost(page);
  maybePoll(page);
}

/** @param {string} storyId */
async function loadScenes(storyId) {
  return state.client.all((cursor) => state.client.listScenes({ story: storyId, ordering: 'order', page_size: '100', cursor }));
}

/** @param {string} storyId */
async function loadPrompts(storyId) {
  return state.client.all((cursor) => state.client.listPrompts({ story: storyId, ordering: 'created_at', page_size: '100', cursor }));
}

/** The story's jobs, newest render first. @param {string} storyId */
async function loadJobs(storyId) {
  const { data } = await state.client.storyJobs(storyId, { ordering: '-created_at', page_size: '100' });
  return data.results;
}

/** @param {StoryPage} page */
async function loadCost(page) {
  try {
    page.cost = (await state.client.costEstimate(page.story.id)).data;
    page.costError = null;
  } catch (error) {
    page.cost = null;
    page.costError = error;
  }
  if (current(page.gen)) renderCost(page);
}

/**
 * Reloads the story and whatever an action may have changed, and redraws.
 * @param {StoryPage} page
 * @param {{scenes?: boolean, jobs?: boolean}} [what]
 */
async function reloadStory(page, what = {}) {
  const id = page.story.id;
  const [story, scenes, prompts, jobs, transitions] = await Promise.all([
    state.client.getStory(id).then((a) => a.data),
    what.scenes === false ? Promise.resolve(page.scenes) : loadScenes(id),
    what.scenes === false ? Promise.resolve(page.prompts) : loadPrompts(id),
    what.jobs === false ? Promise.resolve(page.jobs) : loadJobs(id),
    state.client.transitions(id).then((a) => a.data.results),
  ]);
  if (!current(page.gen)) return;
  Object.assign(page, { story, scenes, prompts, jobs, transitions });
  redraw(page);
  void loadCost(page);
  maybePoll(page);
}

/** @param {StoryPage} page */
function redraw(page) {
  keepFocus(() => {
    renderHead(page);
    renderMedia(page);
    renderActions(page);
    renderTimeline(page);
    renderEditor(page);
    renderJobs(page);
    renderHistory(page);
  });
}

/**
 * Redraws without losing the keyboard focus: the focused control (by its `data-focus` key) is
 * focused again in the new drawing.
 * @param {() => void} draw
 */
function keepFocus(draw) {
  const active = document.activeElement;
  const key = active instanceof HTMLElement ? active.dataset.focus : undefined;
  draw();
  if (key && document.activeElement !== active) {
    const again = main.querySelector(`[data-focus="${CSS.escape(key)}"]`);
    if (again instanceof HTMLElement && !(again instanceof HTMLButtonElement && again.disabled)) again.focus();
  }
}

/** @param {StoryPage} page */
function renderHead(page) {
  const s = page.story;
  const head = page.parts.head;
  const lockable = LOCKABLE.includes(s.status);
  const lockButton = h(
    'button',
    { type: 'button', class: 'secondary', 'data-focus': 'lock', disabled: !lockable, title: lockable ? undefined : 'Lock and unlock are allowed in PLANNING, PLANNED and PREVIEW_READY' },
    s.is_locked ? 'Unlock' : 'Lock',
  );
  lockButton.addEventListener('click', () =>
    void act(lockButton, async () => {
      try {
        await state.client.setLocked(page.story, !page.story.is_locked);
        notify(page.story.is_locked ? 'Unlocked.' : 'Locked.');
      } finally {
        await reloadStory(page, { scenes: false });
      }
    }),
  );
  fill(head, 
    h(
      'div',
      { class: 'head-row' },
      h('p', { class: 'meta', id: 'story-status' }, 'Status ', statusBadge(s.status), ' ', s.is_locked ? h('span', { class: 'badge locked' }, `locked ${fmtTime(s.locked_at)}`) : h('span', { class: 'badge' }, 'unlocked')),
      lockButton,
    ),
    s.failure_reason ? h('p', { class: 'failure' }, `Failed: ${s.failure_reason}`) : null,
    h(
      'dl',
      { class: 'facts' },
      fact('Duration', `${s.duration_seconds} s`),
      fact('Frame rate', `${s.fps} fps`),
      fact('Resolution', s.resolution),
      fact('Provider', s.ai_provider),
      fact('Style', s.style_preset),
      fact('Project', s.project === null ? '—' : String(s.project)),
      fact('Budget', s.budget_usd === null || s.budget_usd === undefined ? 'none' : fmtUsd(s.budget_usd)),
      fact('Version', String(s.version)),
      fact('Updated', fmtTime(s.updated_at)),
    ),
    s.description ? h('p', { class: 'description' }, s.description) : null,
  );
}

/**
 * @param {string} term
 * @param {string} value
 */
function fact(term, value) {
  return h('div', null, h('dt', null, term), h('dd', null, value));
}

/** @param {StoryPage} page */
function renderMedia(page) {
  const box = page.parts.media;
  /** @type {[string, string, Media | null][]} */
  const items = [
    ['final', 'Final video', page.story.final],
    ['preview', 'Preview', page.story.preview],
  ];
  for (const [key, label, media] of items) {
    const existing = box.querySelector(`figure[data-media="${key}"]`);
    if (!media || !media.url) {
      existing?.remove();
      continue;
    }
    // Media links are signed anew on every read: keep the player (and its playback) while the file is the same.
    if (existing instanceof HTMLElement && existing.dataset.path === mediaPath(media.url)) continue;
    const player =
      media.format === 'gif'
        ? h('img', { src: media.url, alt: `${label} of ${page.story.title}`, class: 'player' })
        : h('video', { src: media.url, controls: true, preload: 'metadata', playsinline: true, class: 'player', id: `${key}-video`, 'aria-label': `${label} of ${page.story.title}` });
    const figure = h(
      'figure',
      { class: 'card', 'data-media': key, 'data-path': mediaPath(media.url) },
      h('h3', null, label),
      player,
      h(
        'figcaption',
        { class: 'muted' },
        `${fmtSeconds(media.duration_seconds)} · ${media.width}×${media.height} · ${media.fps} fps · ${media.format} · ${fmtBytes(media.size_bytes)} · `,
        h('a', { href: media.url, download: '' }, `Download ${label.toLowerCase()}`),
        media.expires_at ? ` (link valid until ${fmtTime(media.expires_at)})` : null,
      ),
    );
    if (existing) existing.replaceWith(figure);
    else if (key === 'final') box.prepend(figure);
    else box.append(figure);
  }
  box.hidden = !box.children.length;
}

/** @param {StoryPage} page */
function renderActions(page) {
  const s = page.story;
  const box = page.parts.actions;
  /** @type {Child[]} */
  const parts = [h('h3', { id: 'actions-title' }, 'Next steps')];

  const hasScenes = page.scenes.length > 0;
  if (s.status === 'DRAFT' || s.status === 'PLANNING') {
    parts.push(planForm(page, hasScenes));
  }
  if (s.status === 'PLANNING' && hasScenes) {
    const generate = h('button', { type: 'button', class: 'secondary', 'data-focus': 'generate-prompts' }, 'Regenerate every scene\u2019s prompt');
    generate.addEventListener('click', () =>
      void act(generate, async () => {
        const { data } = await state.client.generatePrompts(s.id, {});
        notify(`${data.prompts.length} new prompts (${data.writer}) are now selected.${data.llm_error ? ` LLM: ${data.llm_error}` : ''}`);
        await reloadStory(page, { jobs: false });
      }),
    );
    parts.push(h('div', { class: 'action' }, h('p', { class: 'hint' }, 'New prompts from the story\u2019s title, description and style; old ones are kept.'), generate));
  }
  if (s.status === 'PLANNED') parts.push(renderForm(page, 'preview'));
  if (s.status === 'PREVIEW_READY') parts.push(renderForm(page, 'final'));
  if (s.status === 'PREVIEWING' || s.status === 'FINALIZING') {
    parts.push(h('p', { class: 'hint' }, s.status === 'PREVIEWING' ? 'The preview is rendering: the jobs below show each scene\u2019s progress.' : 'The final video is rendering: the jobs below show each scene\u2019s progress.'));
  }
  const moves = USER_MOVES[s.status];
  if (moves.length) parts.push(transitionForm(page, moves));
  else parts.push(h('p', { class: 'hint' }, 'No further moves from here.'));
  fill(box, ...parts);
}

/**
 * @param {StoryPage} page
 * @param {boolean} replace
 */
function planForm(page, replace) {
  const form = h(
    'form',
    { class: 'action', 'aria-label': 'Plan scenes' },
    h('p', { class: 'hint' }, replace ? 'Plan again: replaces every scene and its prompts.' : 'Split the story into timed scenes (1 intro, the main scenes, 1 outro), each with a selected video prompt. DRAFT moves to PLANNING.'),
    h(
      'div',
      { class: 'row' },
      field('Scenes', h('input', { name: 'scene_count', type: 'number', min: '3', max: '24', step: '1', value: '12', inputmode: 'numeric' }), '3–24'),
      replace ? field('Replace the current scenes', h('input', { name: 'replace', type: 'checkbox' })) : null,
      h('button', { type: 'submit', 'data-focus': 'plan' }, replace ? 'Plan again' : 'Plan scenes'),
    ),
  );
  return onSubmit(form, async (f) => {
    /** @type {import('./api').components['schemas']['ScenesBulk']} */
    const body = { scene_count: formNumber(f, 'scene_count') };
    if (replace && formChecked(f, 'replace')) body.replace = true;
    if (body.scene_count === undefined) delete body.scene_count;
    const { data } = await state.client.planScenes(page.story.id, body);
    notify(`${data.scenes.length} scenes planned.`);
    await reloadStory(page, { jobs: false });
  });
}

/**
 * @param {StoryPage} page
 * @param {'preview' | 'final'} stage
 */
function renderForm(page, stage) {
  const preview = stage === 'preview';
  const form = h(
    'form',
    { class: 'action', 'aria-label': preview ? 'Start the preview' : 'Render the final video' },
    h('p', { class: 'hint' }, preview ? 'Render every scene and join them into a preview (locks the story).' : 'Render the final video from the same plan (locks the story).'),
    h(
      'div',
      { class: 'row' },
      field('Quality', select('quality', keys(QUALITIES).map((q) => /** @type {[string, string]} */ ([q, q])), preview ? 'low' : 'high')),
      preview ? null : field('Format', select('output_format', keys(FORMATS).map((q) => /** @type {[string, string]} */ ([q, q])), 'mp4')),
      preview ? field('Watermark', h('input', { name: 'watermark', type: 'checkbox', checked: true })) : field('Subtitles (narration prompts)', h('input', { name: 'include_subtitles', type: 'checkbox' })),
      h('button', { type: 'submit', 'data-focus': stage }, preview ? 'Start preview' : 'Render final video'),
    ),
  );
  return onSubmit(form, async (f) => {
    const quality = /** @type {Quality} */ (formValue(f, 'quality'));
    try {
      const answer = preview
        ? await state.client.generatePreview(page.story, { quality, watermark: formChecked(f, 'watermark') })
        : await state.client.renderFinal(page.story, {
            quality,
            output_format: /** @type {OutputFormat} */ (formValue(f, 'output_format')),
            include_subtitles: formChecked(f, 'include_subtitles'),
          });
      notify(`${answer.data.jobs.length} jobs queued${answer.replayed ? ' (replayed)' : ''}.`);
    } finally {
      await reloadStory(page, { scenes: false }).catch(() => undefined);
    }
  });
}

/**
 * @param {StoryPage} page
 * @param {StoryStatus[]} moves
 */
function transitionForm(page, moves) {
  const form = h(
    'form',
    { class: 'action', 'aria-label': 'Change the status' },
    h(
      'div',
      { class: 'row' },
      field('Move to', select('to', moves.map((m) => /** @type {[string, string]} */ ([m, `${m} — ${STORY_STATUSES[m]}`])), moves[0])),
      field('Reason', h('input', { name: 'reason', type: 'text', maxlength: '1000' }), 'Required for FAILED'),
      h('button', { type: 'submit', class: 'secondary', 'data-focus': 'move' }, 'Move'),
    ),
  );
  return onSubmit(form, async (f) => {
    const to = /** @type {StoryStatus} */ (formValue(f, 'to'));
    const reason = formValue(f, 'reason').trim();
    try {
      await state.client.transition(page.story, reason ? { to, reason } : { to });
      notify(`Moved to ${to}.`);
    } finally {
      await reloadStory(page, { scenes: false }).catch(() => undefined);
    }
  });
}

/** @param {StoryPage} page */
function renderTimeline(page) {
  const box = page.parts.timeline;
  const scenes = [...page.scenes].sort((a, b) => a.order - b.order);
  const total = scenes.reduce((sum, s) => sum + s.duration_seconds, 0);
  /** @type {Child[]} */
  const parts = [h('h3', { id: 'scenes-title' }, 'Scenes')];
  if (!scenes.length) {
    parts.push(h('p', { class: 'empty' }, 'No scenes yet: plan the story to get 12 timed scenes.'));
    fill(box, ...parts);
    return;
  }
  const mismatch = Math.abs(total - page.story.duration_seconds) > 1e-6;
  parts.push(
    h(
      'p',
      { class: mismatch ? 'warning' : 'muted', id: 'timeline-summary' },
      `${scenes.length} scenes, ${fmtSeconds(total)} in all`,
      mismatch ? ` — the story lasts ${page.story.duration_seconds} s: PLANNED needs the durations to add up to it.` : '.',
    ),
  );
  const selectedVideo = selectedPrompts(page, 'video');
  parts.push(
    h(
      'ol',
      { class: 'timeline', 'aria-label': 'Timeline: scene widths are proportional to their durations' },
      scenes.map((scene) => {
        const label = `Scene ${scene.order + 1}: ${scene.kind}, ${fmtSeconds(scene.duration_seconds)}, ${scene.status}`;
        return h(
          'li',
          { class: `segment kind-${scene.kind} scene-${scene.status}`, style: { width: `${(scene.duration_seconds / (total || 1)) * 100}%` } },
          h(
            'button',
            {
              type: 'button',
              'aria-label': label,
              title: `${label}${scene.title ? ` — ${scene.title}` : ''}`,
              'aria-pressed': page.editing === scene.id ? 'true' : 'false',
              'data-focus': `seg-${scene.id}`,
              'data-scene': scene.id,
              onclick: () => openEditor(page, scene.id),
            },
            String(scene.order + 1),
          ),
        );
      }),
    ),
    h('div', { class: 'ruler', 'aria-hidden': 'true' }, h('span', null, '0 s'), h('span', null, fmtSeconds(total / 2)), h('span', null, fmtSeconds(total))),
  );
  parts.push(
    h(
      'ol',
      { class: 'scene-list' },
      scenes.map((scene) => {
        const prompt = selectedVideo.get(scene.id);
        return h(
          'li',
          { class: `scene-item${page.editing === scene.id ? ' editing' : ''}`, 'data-scene': scene.id },
          h(
            'div',
            { class: 'scene-line' },
            h('strong', null, `${scene.order + 1}. ${scene.kind}`),
            scene.title ? h('span', null, scene.title) : null,
            h('span', { class: 'muted' }, `${fmtSeconds(scene.start_seconds)}–${fmtSeconds(scene.start_seconds + scene.duration_seconds)} (${fmtSeconds(scene.duration_seconds)})`),
            h('span', { class: `badge scene-${scene.status}` }, scene.status),
          ),
          h('p', { class: prompt ? 'prompt-excerpt' : 'warning' }, prompt ? prompt.text : 'No selected video prompt.'),
          h('button', { type: 'button', class: 'secondary small', 'data-focus': `edit-${scene.id}`, onclick: () => openEditor(page, scene.id) }, `Edit scene ${scene.order + 1}`),
        );
      }),
    ),
  );
  fill(box, ...parts);
}

/**
 * The selected prompt of `type` of each scene.
 * @param {StoryPage} page
 * @param {PromptType} type
 */
function selectedPrompts(page, type) {
  /** @type {Map<string, Prompt>} */
  const out = new Map();
  for (const prompt of page.prompts) if (prompt.is_selected && prompt.prompt_type === type) out.set(prompt.scene, prompt);
  return out;
}

/**
 * @param {StoryPage} page
 * @param {string} sceneId
 */
function openEditor(page, sceneId) {
  page.editing = sceneId;
  keepFocus(() => renderTimeline(page));
  renderEditor(page);
  const title = page.parts.editor.querySelector('h3');
  if (title instanceof HTMLElement) {
    title.focus();
    title.scrollIntoView({ block: 'nearest' });
  }
}

/** @param {StoryPage} page */
function renderEditor(page) {
  const box = page.parts.editor;
  const scene = page.scenes.find((s) => s.id === page.editing);
  if (!scene) {
    box.hidden = true;
    fill(box);
    return;
  }
  box.hidden = false;
  const close = h('button', { type: 'button', class: 'secondary small', 'data-focus': 'close-editor' }, 'Close');
  close.addEventListener('click', () => {
    const id = page.editing;
    page.editing = null;
    renderEditor(page);
    renderTimeline(page);
    const back = main.querySelector(`[data-focus="edit-${id}"]`);
    if (back instanceof HTMLElement) back.focus();
  });
  const sceneForm = h(
    'form',
    { class: 'stack', 'aria-label': `Scene ${scene.order + 1}` },
    h(
      'div',
      { class: 'grid-3' },
      field('Scene title', h('input', { name: 'title', type: 'text', value: scene.title, maxlength: '200' })),
      field('Kind', select('kind', keys(SCENE_KINDS).map((k) => /** @type {[string, string]} */ ([k, k])), scene.kind)),
      field('Duration (seconds)', h('input', { name: 'duration_seconds', type: 'number', min: '0', step: 'any', value: String(scene.duration_seconds), inputmode: 'decimal' })),
    ),
    field('Scene description', h('textarea', { name: 'description', rows: '2', value: scene.description })),
    h('div', { class: 'row' }, h('button', { type: 'submit', 'data-focus': 'save-scene' }, 'Save scene')),
  );
  onSubmit(sceneForm, async (f) => {
    /** @type {ScenePatch} */
    const body = {
      title: formValue(f, 'title'),
      kind: /** @type {SceneKind} */ (formValue(f, 'kind')),
      duration_seconds: formNumber(f, 'duration_seconds'),
      description: formValue(f, 'description'),
    };
    try {
      await state.client.patchScene(scene, body);
      notify(`Scene ${scene.order + 1} saved.`);
    } finally {
      await reloadStory(page, { jobs: false }).catch(() => undefined);
    }
  });

  const prompts = page.prompts
    .filter((p) => p.scene === scene.id)
    .sort((a, b) => (a.prompt_type === b.prompt_type ? a.created_at.localeCompare(b.created_at) : keys(PROMPT_TYPES).indexOf(a.prompt_type) - keys(PROMPT_TYPES).indexOf(b.prompt_type)));
  const promptItems = prompts.map((prompt, i) => {
    const form = h(
      'form',
      { class: `prompt card${prompt.is_selected ? ' selected' : ''}`, 'aria-label': `${prompt.prompt_type} prompt ${i + 1}`, 'data-prompt': prompt.id },
      h('p', { class: 'meta' }, h('span', { class: 'badge' }, prompt.prompt_type), prompt.is_selected ? h('span', { class: 'badge selected' }, 'selected') : h('span', { class: 'muted' }, 'not selected'), h('span', { class: 'muted' }, `v${prompt.version}`)),
      field(`Prompt text (${prompt.prompt_type} ${i + 1})`, h('textarea', { name: 'text', rows: '3', value: prompt.text })),
      Object.keys(prompt.parameters).length ? h('details', null, h('summary', null, 'Parameters'), h('pre', null, JSON.stringify(prompt.parameters, null, 2))) : null,
      h(
        'div',
        { class: 'row' },
        h('button', { type: 'submit', class: 'secondary small', 'data-focus': `save-${prompt.id}` }, 'Save text'),
        prompt.is_selected
          ? null
          : h(
              'button',
              {
                type: 'button',
                class: 'small',
                'data-focus': `select-${prompt.id}`,
                'data-action': 'select-prompt',
                onclick: (/** @type {MouseEvent} */ event) =>
                  void act(/** @type {HTMLButtonElement} */ (event.currentTarget), async () => {
                    try {
                      await state.client.selectPrompt(prompt);
                      notify(`Selected the ${prompt.prompt_type} prompt of scene ${scene.order + 1}.`);
                    } finally {
                      await reloadStory(page, { jobs: false }).catch(() => undefined);
                    }
                  }),
              },
              `Select this ${prompt.prompt_type} prompt`,
            ),
      ),
    );
    return h(
      'li',
      null,
      onSubmit(form, async (f) => {
        try {
          await state.client.patchPrompt(prompt, { text: formValue(f, 'text') });
          notify('Prompt saved.');
        } finally {
          await reloadStory(page, { jobs: false }).catch(() => undefined);
        }
      }),
    );
  });

  const newPrompt = h(
    'form',
    { class: 'stack card', 'aria-label': 'New prompt' },
    h('h4', null, 'New prompt'),
    h('div', { class: 'grid-3' }, field('Prompt type', select('prompt_type', keys(PROMPT_TYPES).map((t) => /** @type {[string, string]} */ ([t, t])), 'video'))),
    field('Prompt text', h('textarea', { name: 'text', rows: '3' })),
    field('Parameters (JSON, optional)', h('textarea', { name: 'parameters', rows: '2', spellcheck: 'false', placeholder: '{"seed": 7}' }), 'The local provider also reads "simulate": "fail" | "flaky" | "slow" | "hang".'),
    h('div', { class: 'row' }, h('button', { type: 'submit', 'data-focus': 'add-prompt' }, 'Add prompt')),
  );
  onSubmit(newPrompt, async (f) => {
    /** @type {import('./api').components['schemas']['PromptCreate']} */
    const body = { scene: scene.id, prompt_type: /** @type {PromptType} */ (formValue(f, 'prompt_type')), text: formValue(f, 'text') };
    const rawParameters = formValue(f, 'parameters').trim();
    if (rawParameters) {
      try {
        body.parameters = JSON.parse(rawParameters);
      } catch {
        showFieldErrors(f, { parameters: ['Not JSON: write an object such as {"seed": 7}.'] });
        return;
      }
    }
    try {
      await state.client.createPrompt(body);
      notify('Prompt added.');
    } finally {
      await reloadStory(page, { jobs: false }).catch(() => undefined);
    }
  });

  fill(box, 
    h('div', { class: 'head-row' }, h('h3', { id: 'editor-title', tabindex: '-1' }, `Edit scene ${scene.order + 1} (${scene.kind})`), close),
    page.story.is_locked ? h('p', { class: 'warning' }, 'The story is locked: unlock it (or move it back to PLANNING) to change scenes and prompts.') : null,
    sceneForm,
    h('h4', null, 'Prompts'),
    prompts.length ? h('ul', { class: 'prompt-list' }, promptItems) : h('p', { class: 'empty' }, 'No prompts.'),
    newPrompt,
  );
}

/**
 * The label of a job: which scene, which stage.
 * @param {StoryPage | null} page
 * @param {Job} job
 */
function jobLabel(page, job) {
  const scene = page && job.scene ? page.scenes.find((s) => s.id === job.scene) : null;
  const kind = JOB_KINDS[job.kind] ?? job.kind;
  return scene ? `Scene ${scene.order + 1} · ${kind}` : kind;
}

/**
 * One job with its progress, failure and retry/cancel buttons.
 * @param {Job} job
 * @param {string} label
 * @param {() => Promise<void>} after what to reload once a button did its work
 */
function jobItem(job, label, after) {
  const unfinished = UNFINISHED.includes(job.status);
  const retryable = job.status === 'failed' || job.status === 'cancelled';
  /** @type {HTMLButtonElement | null} */
  let button = null;
  if (retryable || unfinished) {
    const b = h('button', { type: 'button', class: 'secondary small', 'data-focus': `${retryable ? 'retry' : 'cancel'}-${job.id}`, 'aria-label': `${retryable ? 'Retry' : 'Cancel'} ${label}` }, retryable ? 'Retry' : 'Cancel');
    b.addEventListener('click', () =>
      void act(b, async () => {
        try {
          if (retryable) {
            await state.client.retryJob(job.id);
            notify(`${label}: queued again.`);
          } else {
            await state.client.cancelJob(job.id);
            notify(`${label}: cancelled.`);
          }
        } finally {
          await after().catch(() => undefined);
        }
      }),
    );
    button = b;
  }
  return h(
    'li',
    { class: `job job-row-${job.status}`, 'data-job': job.id, 'data-status': job.status },
    h('span', { class: 'job-label' }, label),
    jobBadge(job.status),
    h('span', { class: 'job-progress' }, h('progress', { max: '100', value: String(job.progress), 'aria-label': `${label} progress` }), h('span', { class: 'pct' }, `${job.progress}%`)),
    h('span', { class: 'muted job-facts' }, `attempt ${job.attempts}/${job.max_attempts}${job.cost_usd ? ` · ${fmtUsd(job.cost_usd)}` : ''}`),
    job.error || job.failure_code
      ? h('span', { class: 'job-error' }, job.failure_code ? h('code', null, job.failure_code) : null, job.failure_code && job.error ? ' ' : null, job.error ?? '')
      : null,
    button ?? h('span'),
  );
}

/** @param {StoryPage} page */
function renderJobs(page) {
  const box = page.parts.jobs;
  const jobs = page.jobs;
  /** @type {Child[]} */
  const parts = [h('h3', { id: 'jobs-title' }, 'Jobs')];
  if (!jobs.length) {
    parts.push(h('p', { class: 'empty' }, 'No jobs yet: start a preview when the story is PLANNED.'));
    fill(box, ...parts);
    return;
  }
  /** @type {Partial<Record<JobStatus, number>>} */
  const counts = {};
  for (const job of jobs) counts[job.status] = (counts[job.status] ?? 0) + 1;
  const finished = jobs.filter((j) => !UNFINISHED.includes(j.status)).length;
  parts.push(
    h(
      'p',
      { class: 'muted', id: 'jobs-summary', 'data-polling': page.polling ? 'true' : undefined },
      `${finished} of ${jobs.length} finished — `,
      keys(JOB_STATUSES).filter((s) => counts[s]).map((s) => `${counts[s]} ${JOB_STATUSES[s]}`).join(', '),
      page.polling ? ' · updating every second' : '',
    ),
  );
  // Newest render first (a render's jobs are made in one write: their ULIDs share the time part,
  // which a retry keeps); within one render, scenes in order and the compose job last.
  const order = (/** @type {Job} */ j) => {
    const scene = j.scene ? page.scenes.find((s) => s.id === j.scene) : null;
    return scene ? scene.order : 1e6;
  };
  const made = (/** @type {Job} */ j) => j.id.slice(0, 10);
  const sorted = [...jobs].sort((a, b) => made(b).localeCompare(made(a)) || order(a) - order(b) || a.id.localeCompare(b.id));
  parts.push(h('ul', { class: 'job-list', 'aria-label': 'Jobs of this story' }, sorted.map((job) => jobItem(job, jobLabel(page, job), () => reloadStory(page, { scenes: false })))));
  fill(box, ...parts);
}

/** @param {StoryPage} page */
function renderHistory(page) {
  const list = [...page.transitions].sort((a, b) => a.sequence - b.sequence);
  fill(page.parts.history, 
    h('h3', { id: 'history-title' }, 'History'),
    list.length
      ? h(
          'ol',
          { class: 'history' },
          list.map((t) => h('li', null, h('strong', null, `${t.from} → ${t.to}`), ` by ${t.actor}`, h('span', { class: 'muted' }, ` · ${fmtTime(t.at)}`), t.reason ? h('span', { class: 'reason' }, ` — ${t.reason}`) : null)),
        )
      : h('p', { class: 'empty' }, 'No moves yet.'),
  );
}

/** @param {StoryPage} page */
function renderCost(page) {
  const box = page.parts.cost;
  const c = page.cost;
  /** @type {Child[]} */
  const parts = [h('h3', { id: 'cost-title' }, 'Cost estimate')];
  if (!c) {
    parts.push(h('p', { class: 'muted' }, page.costError instanceof ApiError ? `Not available: ${page.costError.message}` : 'Loading…'));
  } else {
    const byQuality = (/** @type {{quality: Quality, cost_usd: number}[]} */ rows, /** @type {Quality} */ q) => {
      const row = rows.find((r) => r.quality === q);
      return row ? fmtUsd(row.cost_usd) : '—';
    };
    parts.push(
      h(
        'table',
        { class: 'cost' },
        h('caption', { class: 'muted' }, `${c.provider} (${c.model}), ${c.seconds} s of video`),
        h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Quality'), h('th', { scope: 'col' }, 'Preview'), h('th', { scope: 'col' }, 'Final'))),
        h('tbody', null, keys(QUALITIES).map((q) => h('tr', null, h('th', { scope: 'row' }, q), h('td', null, byQuality(c.preview, q)), h('td', null, byQuality(c.final, q))))),
      ),
      h('p', { class: 'muted' }, `Estimated render time ${fmtSeconds(c.estimated_render_seconds)}; total ${fmtUsd(c.total_usd)}.`),
    );
  }
  fill(box, ...parts);
}

/**
 * Polls the story and its jobs every second while a job is unfinished or a render is under way.
 * @param {StoryPage} page
 */
function maybePoll(page) {
  if (page.polling) return; // a poll is already scheduled
  const busy = page.jobs.some((j) => UNFINISHED.includes(j.status)) || page.story.status === 'PREVIEWING' || page.story.status === 'FINALIZING';
  if (!busy) {
    // Say that the updates stopped (the summary said "updating every second").
    if (page.parts.jobs.querySelector('[data-polling]')) keepFocus(() => renderJobs(page));
    return;
  }
  page.polling = true;
  renderJobs(page);
  later(page.gen, () => void pollOnce(page), 1000);
}

/** @param {StoryPage} page */
async function pollOnce(page) {
  try {
    const id = page.story.id;
    const [story, jobs] = await Promise.all([state.client.getStory(id).then((a) => a.data), loadJobs(id)]);
    if (!current(page.gen)) return;
    const moved = story.status !== page.story.status;
    const scenesMayChange = jobs.some((j, i) => j.status !== page.jobs[i]?.status) || moved;
    page.story = story;
    page.jobs = jobs;
    if (scenesMayChange) page.scenes = await loadScenes(id);
    if (moved) page.transitions = (await state.client.transitions(id)).data.results;
    if (!current(page.gen)) return;
    keepFocus(() => {
      renderHead(page);
      renderMedia(page);
      if (moved) {
        renderActions(page);
        renderHistory(page);
      }
      if (scenesMayChange) renderTimeline(page);
      renderJobs(page);
    });
    if (moved) notify(`The story is now ${story.status}.`);
  } catch (error) {
    if (!current(page.gen)) return;
    page.polling = false;
    handleError(error, { retry: () => maybePoll(page) });
    return;
  }
  page.polling = false;
  maybePoll(page);
}

// ---- all jobs ------------------------------------------------------------------------------------

/**
 * @param {number} gen
 * @param {URLSearchParams} params
 * @param {boolean} focus
 */
async function jobsScreen(gen, params, focus) {
  screen('Jobs', focus);
  const status = params.get('status') ?? '';
  const kind = params.get('kind') ?? '';
  const story = params.get('story') ?? '';
  const filters = h(
    'form',
    { class: 'card filters', role: 'search', 'aria-label': 'Filter jobs' },
    field('Status', select('status', [['', 'Any status'], ...keys(JOB_STATUSES).map((s) => /** @type {[string, string]} */ ([s, JOB_STATUSES[s]]))], status)),
    field('Kind', select('kind', [['', 'Any kind'], ...keys(JOB_KINDS).map((k) => /** @type {[string, string]} */ ([k, JOB_KINDS[k]]))], kind)),
    field('Story id', h('input', { name: 'story', type: 'text', value: story, spellcheck: 'false' })),
    h('div', { class: 'row filters-actions' }, h('button', { type: 'submit' }, 'Apply filters'), h('a', { href: '#/jobs', class: 'button secondary' }, 'Clear')),
  );
  filters.addEventListener('submit', (event) => {
    event.preventDefault();
    navigate(hashFor('jobs', { status: formValue(filters, 'status'), kind: formValue(filters, 'kind'), story: formValue(filters, 'story').trim() }));
  });
  const list = h('div', { class: 'card' }, h('p', { class: 'muted' }, 'Loading…'));
  main.append(filters, list);
  const query = { status, kind, story, page_size: '50', cursor: params.get('cursor') ?? undefined };
  const draw = async () => {
    const { data } = await state.client.listJobs(/** @type {any} */ (query));
    if (!current(gen)) return;
    keepFocus(() => {
      const items = data.results.map((job) =>
        jobItem(job, `${JOB_KINDS[job.kind] ?? job.kind}${job.scene ? ` · scene ${job.scene.slice(-6)}` : ''}`, draw),
      );
      fill(list, 
        data.results.length ? h('ul', { class: 'job-list', 'aria-label': 'Jobs' }, data.results.map((job, i) => {
          const item = /** @type {HTMLElement} */ (items[i]);
          item.prepend(h('a', { class: 'job-story', href: `#/stories/${encodeURIComponent(job.story)}` }, `story …${job.story.slice(-6)}`));
          return item;
        })) : h('p', { class: 'empty' }, 'No jobs match.'),
      );
      const prev = cursorOf(data.previous);
      const next = cursorOf(data.next);
      if (prev || next) {
        list.append(
          h(
            'nav',
            { class: 'pager', 'aria-label': 'Job pages' },
            prev ? h('a', { href: hashFor('jobs', { status, kind, story, cursor: prev }), rel: 'prev' }, '← Previous page') : h('span'),
            next ? h('a', { href: hashFor('jobs', { status, kind, story, cursor: next }), rel: 'next' }, 'Next page →') : h('span'),
          ),
        );
      }
    });
    if (data.results.some((j) => UNFINISHED.includes(j.status))) later(gen, () => void draw().catch((e) => handleError(e)), 1000);
  };
  await draw();
}

// ---- providers -----------------------------------------------------------------------------------

/**
 * @param {number} gen
 * @param {boolean} focus
 */
async function providersScreen(gen, focus) {
  screen('Providers', focus);
  const [{ data }, usage] = await Promise.all([
    state.client.providers(),
    // Older servers have no usage/: the card is left out then.
    state.client.usage().then((a) => a.data, () => null),
  ]);
  if (!current(gen)) return;
  if (usage) {
    main.append(
      h(
        'section',
        { class: 'card', 'aria-labelledby': 'usage-title' },
        h('h3', { id: 'usage-title' }, `Your spend in ${usage.month}`),
        h(
          'dl',
          { class: 'facts' },
          fact('Spent', fmtUsd(usage.spent_usd)),
          fact('Reserved by renders under way', fmtUsd(usage.reserved_usd)),
          fact('Monthly cap', usage.cap_usd === null ? 'none' : fmtUsd(usage.cap_usd)),
          fact('Remaining', usage.remaining_usd === null ? 'no cap' : fmtUsd(usage.remaining_usd)),
        ),
      ),
    );
  }
  /** @param {Provider} p */
  const row = (p) =>
    h(
      'tr',
      null,
      h('th', { scope: 'row' }, p.provider),
      h('td', { 'data-label': 'Enabled' }, p.enabled ? 'yes' : 'no'),
      h('td', { 'data-label': 'Model' }, p.model),
      h('td', { 'data-label': 'Price per second' }, `${fmtUsd(p.price_per_second_usd.low)} / ${fmtUsd(p.price_per_second_usd.medium)} / ${fmtUsd(p.price_per_second_usd.high)}`),
      h('td', { 'data-label': 'Longest clip' }, `${p.max_clip_seconds} s`),
      h('td', { 'data-label': 'Per minute' }, String(p.rate_limit_per_minute)),
    );
  main.append(
    h(
      'div',
      { class: 'card table-wrap' },
      h(
        'table',
        { class: 'providers' },
        h('caption', { class: 'muted' }, 'Price per second of video at low / medium / high quality'),
        h('thead', null, h('tr', null, ['Provider', 'Enabled', 'Model', 'Price per second', 'Longest clip', 'Per minute'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', null, data.results.map(row)),
      ),
    ),
  );
}

// ---- start -------------------------------------------------------------------------------------

byId('signout').addEventListener('click', () => {
  setToken(null);
  notify('Signed out.');
  navigate('#/signin');
});
window.addEventListener('hashchange', () => void route());
renderWho();
void route();
