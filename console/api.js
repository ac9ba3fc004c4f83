// @ts-check
// A small typed client for the aivideo API (/api/ai-video/), built only on its public HTTP API.
//
// Types come from the OpenAPI document: api.d.ts is generated from it by
// `scripts/console-check --write` (openapi-typescript); `scripts/console-check` fails when it is
// stale and type-checks this folder with tsc.

/**
 * @typedef {import('./api').components['schemas']} Schemas
 * @typedef {Schemas['Story']} Story
 * @typedef {Schemas['StoryCreate']} StoryCreate
 * @typedef {Schemas['StoryPatch']} StoryPatch
 * @typedef {Schemas['StoryList']} StoryList
 * @typedef {Schemas['Scene']} Scene
 * @typedef {Schemas['SceneList']} SceneList
 * @typedef {Schemas['ScenePatch']} ScenePatch
 * @typedef {Schemas['ScenePlan']} ScenePlan
 * @typedef {Schemas['ScenesBulk']} ScenesBulk
 * @typedef {Schemas['Prompt']} Prompt
 * @typedef {Schemas['PromptList']} PromptList
 * @typedef {Schemas['PromptCreate']} PromptCreate
 * @typedef {Schemas['PromptPatch']} PromptPatch
 * @typedef {Schemas['GeneratePrompts']} GeneratePrompts
 * @typedef {Schemas['GeneratedPrompts']} GeneratedPrompts
 * @typedef {Schemas['Job']} Job
 * @typedef {Schemas['JobList']} JobList
 * @typedef {Schemas['Accepted']} Accepted
 * @typedef {Schemas['PreviewOptions']} PreviewOptions
 * @typedef {Schemas['FinalOptions']} FinalOptions
 * @typedef {Schemas['TransitionRequest']} TransitionRequest
 * @typedef {Schemas['TransitionList']} TransitionList
 * @typedef {Schemas['CostEstimate']} CostEstimate
 * @typedef {Schemas['ProviderList']} ProviderList
 * @typedef {Schemas['Media']} Media
 * @typedef {Schemas['Usage']} Usage
 * @typedef {Schemas['Error']} ErrorBody
 * @typedef {Story['status']} StoryStatus
 * @typedef {Story['ai_provider']} ProviderName
 * @typedef {Job['status']} JobStatus
 * @typedef {Job['kind']} JobKind
 * @typedef {Prompt['prompt_type']} PromptType
 * @typedef {NonNullable<ErrorBody['code']>} ErrorCode
 */

/**
 * The query of a list operation, as the OpenAPI document names it.
 * @template {keyof import('./api').operations} Op
 * @typedef {NonNullable<import('./api').operations[Op]['parameters']['query']>} QueryOf
 */

/**
 * An answer of the API: its body, status and the headers a client acts on.
 * @template T
 * @typedef {{data: T, status: number, etag: string | null, location: string | null, replayed: boolean}} Answer
 */

/**
 * @typedef {object} RequestOptions
 * @property {string} [method] GET unless given
 * @property {unknown} [body] sent as JSON
 * @property {Record<string, string | number | boolean | null | undefined>} [query] empty values are left out
 * @property {string | null} [ifMatch] an entity tag (`"3"`) for optimistic concurrency
 * @property {boolean} [idempotent] send an `Idempotency-Key` (POSTs that create or start work)
 * @property {AbortSignal} [signal]
 */

/** The API answered with an error status; `body` is its DRF-shaped error (`detail` or field errors, `code`). */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {Record<string, unknown>} body the error's JSON (see ErrorBody)
   * @param {string} url
   */
  constructor(status, body, url) {
    super(ApiError.describe(status, body));
    this.name = 'ApiError';
    this.status = status;
    this.body = body;
    this.url = url;
  }

  /** @returns {string | null} the machine-readable code, when the API sent one */
  get code() {
    return typeof this.body.code === 'string' ? this.body.code : null;
  }

  /** @returns {string | null} */
  get detail() {
    return typeof this.body.detail === 'string' ? this.body.detail : null;
  }

  /**
   * The DRF field errors: every key whose value is a list of messages (`title`, `0.title`,
   * `non_field_errors`).
   * @returns {Record<string, string[]>}
   */
  get fieldErrors() {
    /** @type {Record<string, string[]>} */
    const out = {};
    for (const [key, value] of Object.entries(this.body)) {
      if (Array.isArray(value) && value.every((m) => typeof m === 'string')) out[key] = value;
    }
    return out;
  }

  /**
   * @param {number} status
   * @param {Record<string, unknown>} body
   */
  static describe(status, body) {
    if (typeof body.detail === 'string') return body.detail;
    const fields = Object.entries(body).filter(([, v]) => Array.isArray(v));
    if (fields.length) return fields.map(([k, v]) => `${k}: ${/** @type {unknown[]} */ (v).join(' ')}`).join('; ');
    return `The API answered ${status}.`;
  }
}

/**
 * No answer reached the page: the API is down or unreachable, or the browser withheld the answer
 * (a cross-origin call from an origin the API does not allow: CORS). Browsers do not tell these
 * apart to a page.
 */
export class NetworkError extends Error {
  /**
   * @param {string} url
   * @param {unknown} cause
   */
  constructor(url, cause) {
    super(`Network error: no answer from ${url}. The API may be down, or it does not allow this page's origin (CORS).`);
    this.name = 'NetworkError';
    this.url = url;
    this.cause = cause;
  }
}

/** A fresh random `Idempotency-Key` (works outside secure contexts too, unlike randomUUID). */
export function newIdempotencyKey() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * `"<version>"`, the entity tag the API gives an object of that version.
 * @param {{version: number}} object
 */
export function etagOf(object) {
  return `"${object.version}"`;
}

/**
 * The API's default base URL for a page: `/api/ai-video` on the page's own origin (the server that
 * serves the console at `/console/` serves the API there too).
 * @param {Location | URL} where
 */
export function defaultBaseUrl(where) {
  return new URL('/api/ai-video', where.origin).href;
}

/**
 * A base URL as typed by a person: absolute http(s), without a trailing slash. Throws on anything else.
 * @param {string} raw
 */
export function normalizeBaseUrl(raw) {
  const url = new URL(raw.trim());
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError('The API base URL must be http or https.');
  url.hash = '';
  url.search = '';
  return url.href.replace(/\/+$/, '');
}

export class Client {
  /**
   * @param {string} baseUrl e.g. `http://127.0.0.1:3000/api/ai-video` (no trailing slash)
   * @param {string | null} token a bearer token
   */
  constructor(baseUrl, token) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.token = token;
    /**
     * The `Idempotency-Key` of each keyed request (method, path and body) that got no definite
     * answer (a network error, a 5xx, `idempotency_in_progress`): retrying the same request sends
     * the same key, so the API replays the first effect instead of doing the work twice. A request
     * that got its answer forgets its key; the next one is a new action with a new key.
     * @type {Map<string, string>}
     */
    this.pendingKeys = new Map();
  }

  /** The origin serving the API (for `POST {origin}/console/token`). */
  get origin() {
    return new URL(this.baseUrl).origin;
  }

  /**
   * @param {string} path relative to the base (`stories/`), or an absolute URL the API gave
   * @param {RequestOptions['query']} [query]
   */
  url(path, query) {
    const url = /^https?:\/\//.test(path) ? new URL(path) : new URL(`${this.baseUrl}/${path.replace(/^\/+/, '')}`);
    for (const [key, value] of Object.entries(query ?? {})) {
      if (value === undefined || value === null || value === '') continue;
      url.searchParams.set(key, String(value));
    }
    return url.href;
  }

  /**
   * One request. Resolves with the answer of a 2xx; rejects with ApiError (another status) or
   * NetworkError (no answer).
   * @param {string} path
   * @param {RequestOptions} [options]
   * @returns {Promise<Answer<any>>}
   */
  async request(path, options = {}) {
    const method = options.method ?? 'GET';
    const url = this.url(path, options.query);
    /** @type {Record<string, string>} */
    const headers = { Accept: 'application/json' };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (options.ifMatch) headers['If-Match'] = options.ifMatch;
    const action = `${method} ${url} ${body ?? ''}`;
    if (options.idempotent) {
      let key = this.pendingKeys.get(action);
      if (!key) {
        key = newIdempotencyKey();
        this.pendingKeys.set(action, key);
      }
      headers['Idempotency-Key'] = key;
    }
    /** @type {Response} */
    let response;
    try {
      response = await fetch(url, { method, headers, body, signal: options.signal, mode: 'cors', credentials: 'omit' });
    } catch (cause) {
      if (cause instanceof DOMException && cause.name === 'AbortError') throw cause;
      throw new NetworkError(url, cause);
    }
    const text = await response.text().catch(() => '');
    /** @type {any} */
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = { detail: text.slice(0, 500) };
      }
    }
    if (options.idempotent) {
      const undecided = response.status >= 500 || (data && data.code === 'idempotency_in_progress');
      if (!undecided) this.pendingKeys.delete(action);
    }
    if (!response.ok) {
      const errorBody = data && typeof data === 'object' && !Array.isArray(data) ? data : { detail: `The API answered ${response.status} ${response.statusText}.` };
      throw new ApiError(response.status, errorBody, url);
    }
    return {
      data,
      status: response.status,
      etag: response.headers.get('ETag'),
      location: response.headers.get('Location'),
      replayed: response.headers.get('Idempotent-Replayed') === 'true',
    };
  }

  // ---- stories -------------------------------------------------------------------------------

  /**
   * @param {QueryOf<'stories_list'>} [query]
   * @returns {Promise<Answer<StoryList>>}
   */
  listStories(query) {
    return this.request('stories/', { query });
  }

  /**
   * @param {StoryCreate} body
   * @returns {Promise<Answer<Story>>}
   */
  createStory(body) {
    return this.request('stories/', { method: 'POST', body, idempotent: true });
  }

  /**
   * @param {string} id
   * @returns {Promise<Answer<Story>>}
   */
  getStory(id) {
    return this.request(`stories/${encodeURIComponent(id)}/`);
  }

  /**
   * @param {Story} story the version the change is based on (sent as `If-Match`)
   * @param {StoryPatch} body
   * @returns {Promise<Answer<Story>>}
   */
  patchStory(story, body) {
    return this.request(`stories/${encodeURIComponent(story.id)}/`, { method: 'PATCH', body, ifMatch: etagOf(story) });
  }

  /**
   * @param {Story} story
   * @param {TransitionRequest} body
   * @returns {Promise<Answer<Story>>}
   */
  transition(story, body) {
    return this.request(`stories/${encodeURIComponent(story.id)}/transition/`, { method: 'POST', body, ifMatch: etagOf(story), idempotent: true });
  }

  /**
   * @param {Story} story
   * @param {boolean} locked
   * @returns {Promise<Answer<Story>>}
   */
  setLocked(story, locked) {
    const action = locked ? 'lock' : 'unlock';
    return this.request(`stories/${encodeURIComponent(story.id)}/${action}/`, { method: 'POST', body: {}, ifMatch: etagOf(story), idempotent: true });
  }

  /**
   * @param {string} id
   * @returns {Promise<Answer<TransitionList>>}
   */
  transitions(id) {
    return this.request(`stories/${encodeURIComponent(id)}/transitions/`, { query: { page_size: 100 } });
  }

  /**
   * @param {string} id
   * @returns {Promise<Answer<CostEstimate>>}
   */
  costEstimate(id) {
    return this.request(`stories/${encodeURIComponent(id)}/cost_estimate/`);
  }

  /**
   * Plans the story: `scene_count` scenes (12 by default), each with a selected video prompt.
   * @param {string} id
   * @param {ScenesBulk} body
   * @returns {Promise<Answer<ScenePlan>>}
   */
  planScenes(id, body) {
    return this.request(`stories/${encodeURIComponent(id)}/scenes/bulk/`, { method: 'POST', body, idempotent: true });
  }

  /**
   * @param {string} id
   * @param {GeneratePrompts} body
   * @returns {Promise<Answer<GeneratedPrompts>>}
   */
  generatePrompts(id, body) {
    return this.request(`stories/${encodeURIComponent(id)}/generate-prompts/`, { method: 'POST', body, idempotent: true });
  }

  /**
   * @param {Story} story
   * @param {PreviewOptions} body
   * @returns {Promise<Answer<Accepted>>}
   */
  generatePreview(story, body) {
    return this.request(`stories/${encodeURIComponent(story.id)}/generate_preview/`, { method: 'POST', body, ifMatch: etagOf(story), idempotent: true });
  }

  /**
   * @param {Story} story
   * @param {FinalOptions} body
   * @returns {Promise<Answer<Accepted>>}
   */
  renderFinal(story, body) {
    return this.request(`stories/${encodeURIComponent(story.id)}/render_final/`, { method: 'POST', body, ifMatch: etagOf(story), idempotent: true });
  }

  /**
   * @param {string} id
   * @param {QueryOf<'stories_jobs'>} [query]
   * @returns {Promise<Answer<JobList>>}
   */
  storyJobs(id, query) {
    return this.request(`stories/${encodeURIComponent(id)}/jobs/`, { query });
  }

  // ---- scenes and prompts --------------------------------------------------------------------

  /**
   * @param {QueryOf<'scenes_list'>} query
   * @returns {Promise<Answer<SceneList>>}
   */
  listScenes(query) {
    return this.request('scenes/', { query });
  }

  /**
   * @param {Scene} scene
   * @param {ScenePatch} body
   * @returns {Promise<Answer<Scene>>}
   */
  patchScene(scene, body) {
    return this.request(`scenes/${encodeURIComponent(scene.id)}/`, { method: 'PATCH', body, ifMatch: etagOf(scene) });
  }

  /**
   * @param {QueryOf<'prompts_list'>} query
   * @returns {Promise<Answer<PromptList>>}
   */
  listPrompts(query) {
    return this.request('prompts/', { query });
  }

  /**
   * @param {PromptCreate} body
   * @returns {Promise<Answer<Prompt>>}
   */
  createPrompt(body) {
    return this.request('prompts/', { method: 'POST', body, idempotent: true });
  }

  /**
   * @param {Prompt} prompt
   * @param {PromptPatch} body
   * @returns {Promise<Answer<Prompt>>}
   */
  patchPrompt(prompt, body) {
    return this.request(`prompts/${encodeURIComponent(prompt.id)}/`, { method: 'PATCH', body, ifMatch: etagOf(prompt) });
  }

  /**
   * @param {Prompt} prompt
   * @returns {Promise<Answer<Prompt>>}
   */
  selectPrompt(prompt) {
    return this.request(`prompts/${encodeURIComponent(prompt.id)}/select/`, { method: 'POST', body: {}, ifMatch: etagOf(prompt), idempotent: true });
  }

  // ---- jobs and providers --------------------------------------------------------------------

  /**
   * @param {QueryOf<'jobs_list'>} [query]
   * @returns {Promise<Answer<JobList>>}
   */
  listJobs(query) {
    return this.request('jobs/', { query });
  }

  /**
   * @param {string} id
   * @returns {Promise<Answer<Accepted>>}
   */
  retryJob(id) {
    return this.request(`jobs/${encodeURIComponent(id)}/retry/`, { method: 'POST', body: {}, idempotent: true });
  }

  /**
   * @param {string} id
   * @returns {Promise<Answer<Job>>}
   */
  cancelJob(id) {
    return this.request(`jobs/${encodeURIComponent(id)}/cancel/`, { method: 'POST', body: {}, idempotent: true });
  }

  /** @returns {Promise<Answer<ProviderList>>} */
  providers() {
    return this.request('providers/');
  }

  /** The caller's spend this month and cap. @returns {Promise<Answer<Usage>>} */
  usage() {
    return this.request('usage/');
  }

  // ---- the local server's convenience --------------------------------------------------------

  /**
   * A token for `user` from `POST {API origin}/console/token`, which only `aivideo serve` on its
   * embedded backend offers (ApiError 404 elsewhere).
   * @param {string} user
   * @returns {Promise<string>}
   */
  async localToken(user) {
    const answer = await this.request(`${this.origin}/console/token`, { method: 'POST', body: { user } });
    const token = answer.data && typeof answer.data.token === 'string' ? answer.data.token : null;
    if (!token) throw new ApiError(answer.status, { detail: 'The server answered without a token.', code: 'server_error' }, this.url(`${this.origin}/console/token`));
    return token;
  }

  /**
   * Every page of a list, following `next` (at most `maxPages` pages).
   * @template T
   * @param {(cursor: string | undefined) => Promise<Answer<{next: string | null, results: T[]}>>} page
   * @param {number} [maxPages]
   * @returns {Promise<T[]>}
   */
  async all(page, maxPages = 20) {
    /** @type {T[]} */
    const out = [];
    /** @type {string | undefined} */
    let cursor;
    for (let i = 0; i < maxPages; i++) {
      const { data } = await page(cursor);
      out.push(...data.results);
      const next = cursorOf(data.next);
      if (!next) break;
      cursor = next;
    }
    return out;
  }
}

/**
 * The `cursor` parameter of a `next`/`previous` link.
 * @param {string | null | undefined} link
 * @returns {string | undefined}
 */
export function cursorOf(link) {
  if (!link) return undefined;
  try {
    return new URL(link).searchParams.get('cursor') ?? undefined;
  } catch {
    return undefined;
  }
}
