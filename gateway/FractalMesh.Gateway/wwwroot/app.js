// FractalMesh web page: generate through the Jobs API and watch every level-0 step, paint a mask and inpaint, outpaint,
// cancel, download. Plain JavaScript, no build step; it talks only to the gateway's REST API (see protos/fractalmesh.proto):
//   GET /v1/model              the served model (canvas size, classes, levels, default iterations, recommended settings)
//   POST /v1/jobs              submit {generate|inpaint|outpaint: …}
//   GET /v1/jobs/{id}/events   newline-delimited JSON JobEvents, one per line, with preview PNGs (base64)
//   GET /v1/jobs/{id}          the job's state (after a dropped stream)
//   DELETE /v1/jobs/{id}       cancel
// A gateway with Auth:Enabled wants the API key typed into the page on every job call, as Authorization: Bearer <key>;
// the key stays in this tab's sessionStorage only.
'use strict';

const $ = (id) => document.getElementById(id);

const ui = {
  modelInfo: $('model-info'), cls: $('class'), seed: $('seed'), randomSeed: $('random-seed'), cfg: $('cfg'),
  cfgSchedule: $('cfg-schedule'), temperature: $('temperature'), temperatureSchedule: $('temperature-schedule'), filter: $('filter'), iterations: $('iterations'),
  generate: $('generate'), cancel: $('cancel'), download: $('download'),
  brush: $('brush'), brushSize: $('brush-size'), clearMask: $('clear-mask'), invertMask: $('invert-mask'), maskInfo: $('mask-info'),
  upload: $('upload'), inpaint: $('inpaint'), shiftX: $('shift-x'), shiftY: $('shift-y'), outpaint: $('outpaint'),
  stage: $('stage'), image: $('image'), mask: $('mask'), progress: $('progress'), status: $('status'), error: $('error'),
  job: $('job'), steps: $('steps'), apiKey: $('api-key'),
};

const API_KEY_ITEM = 'fractalmesh.apiKey';
// The API's filter threshold when none is given (the official 1e-4): the Filter field's value in index.html.
const DEFAULT_FILTER = Number(ui.filter.defaultValue);
ui.apiKey.value = sessionStorage.getItem(API_KEY_ITEM) ?? '';
ui.apiKey.addEventListener('change', () => sessionStorage.setItem(API_KEY_ITEM, ui.apiKey.value.trim()));

/** The Authorization header for the typed API key, or none. */
function authHeaders() {
  const key = ui.apiKey.value.trim();
  return key ? { authorization: `Bearer ${key}` } : {};
}

const state = {
  model: null,   // GET /v1/model
  source: null,  // the picture on the stage that edits apply to: { b64, width, height, name }
  mask: null,    // Uint8Array(size * size): 1 = generate again
  job: null,     // the job being watched: { id, kind, started, cancelRequested }
  downloadUrl: null,
};

// ---------------------------------------------------------------------------------------------------------------------
// Errors in plain words

/** An error to show the user: a sentence, optional details (one line each) and the fields to mark. */
class UserError extends Error {
  constructor(message, items = [], fields = []) {
    super(message);
    this.items = items;
    this.fields = fields;
  }
}

/** What a field path of a google.rpc.BadRequest (generate.params.num_iter[1] …) is called on this page. */
function fieldLabel(path) {
  const field = path.replace(/^(generate|inpaint|outpaint)\./, '');
  let m;
  if ((m = /^params\.num_iter\[(\d+)\]$/.exec(field))) return `Iterations at level ${m[1]}`;
  if (/^class_labels(\[\d+\])?$/.test(field) || field === 'class_label') return 'Class';
  return {
    'seed': 'Seed', 'count': 'Number of images', 'params.cfg': 'Guidance', 'params.cfg_schedule': 'Guidance schedule',
    'params.temperature': 'Temperature', 'params.temperature_schedule': 'Temperature schedule', 'params.filter_threshold': 'Filter threshold', 'params.num_iter': 'Iterations',
    'image_png': 'Image', 'mask_png': 'Mask', 'x': 'Outpaint position (across)', 'y': 'Outpaint position (down)',
    'idempotency_key': 'Request key', 'spec': 'Request', 'id': 'Job id', 'after_event_id': 'Event position',
  }[field] ?? field;
}

/** The inputs a field path stands for, to mark them. */
function fieldInputs(path) {
  const field = path.replace(/^(generate|inpaint|outpaint)\./, '');
  let m;
  if ((m = /^params\.num_iter\[(\d+)\]$/.exec(field))) return [$(`iter-${m[1]}`)];
  if (field === 'params.num_iter') return [...ui.iterations.querySelectorAll('input')];
  if (/^class_labels(\[\d+\])?$/.test(field) || field === 'class_label') return [ui.cls];
  return [{
    'seed': ui.seed, 'params.cfg': ui.cfg, 'params.cfg_schedule': ui.cfgSchedule, 'params.temperature': ui.temperature,
    'params.temperature_schedule': ui.temperatureSchedule, 'params.filter_threshold': ui.filter,
    'image_png': ui.upload, 'mask_png': ui.mask, 'x': ui.shiftX, 'y': ui.shiftY, 'api_key': ui.apiKey,
  }[field]];
}

/** Turns a failed REST answer into words: field by field for a 400 with BadRequest details, what to do for the rest. */
function httpError(status, body, text) {
  const message = (body && typeof body.message === 'string' && body.message) || text.trim() || `HTTP ${status}`;
  const violations = (body && Array.isArray(body.details) ? body.details : []).flatMap((d) => d.fieldViolations ?? []);
  if (status === 400 && violations.length > 0) {
    return new UserError('The gateway did not accept the request:',
      violations.map((v) => `${fieldLabel(v.field)}: ${v.description}`), violations.map((v) => v.field));
  }
  switch (status) {
    case 400: return new UserError(`The gateway did not accept the request: ${message}`);
    case 401: return new UserError(ui.apiKey.value.trim()
      ? 'The gateway did not accept this API key: check the key in the API key field.'
      : 'The gateway asks for an API key: type it into the API key field at the top, then try again.', [], ['api_key']);
    case 404: return new UserError(`The gateway does not know this job (any more): ${message}`);
    case 413: case 414: return new UserError('The request is too large for the gateway: use a smaller image.');
    case 429: return new UserError(`The gateway is busy right now (${message}). Wait a moment and try again.`);
    case 503: return new UserError(`The gateway cannot serve this right now: ${message}. Try again in a moment.`);
    case 504: return new UserError(`The gateway took too long to answer: ${message}`);
    default: return new UserError(status >= 500
      ? `Something went wrong in the gateway (HTTP ${status}): ${message}`
      : `The gateway answered HTTP ${status}: ${message}`);
  }
}

/** Calls the REST API; answers the parsed JSON or throws a UserError. */
async function api(method, path, body) {
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: { ...authHeaders(), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    const error = new UserError(`Cannot reach the gateway (${e.message}). Is it still running?`);
    error.unreachable = true;
    throw error;
  }
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON: the text is the message */ }
  if (!response.ok) throw httpError(response.status, json, text);
  return json;
}

function showError(error) {
  clearError();
  const e = error instanceof UserError ? error : new UserError(`Something went wrong in this page: ${error?.message ?? error}`);
  const title = document.createElement('p');
  title.textContent = e.message;
  ui.error.append(title);
  if (e.items.length > 0) {
    const list = document.createElement('ul');
    for (const item of e.items) {
      const li = document.createElement('li');
      li.textContent = item;
      list.append(li);
    }
    ui.error.append(list);
  }
  for (const field of e.fields) for (const input of fieldInputs(field)) input?.setAttribute('aria-invalid', 'true');
  ui.error.hidden = false;
  if (!(error instanceof UserError)) console.error(error);
}

/** A request the page did not send: what is wrong with the settings, and nothing generated. */
function refuse(error) {
  showError(error);
  setStatus('Nothing was generated.', 'error');
}

function clearError() {
  ui.error.replaceChildren();
  ui.error.hidden = true;
  for (const input of document.querySelectorAll('[aria-invalid]')) input.removeAttribute('aria-invalid');
}

// ---------------------------------------------------------------------------------------------------------------------
// Bytes

function toBase64(bytes) {
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

function fromBase64(b64) {
  const binary = atob(b64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

const pngUrl = (b64) => `data:image/png;base64,${b64}`;

async function canvasPng(canvas) {
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, 'image/png'));
  return toBase64(new Uint8Array(await blob.arrayBuffer()));
}

/** The pixels of a PNG as the browser decodes them, without colour conversion. */
async function decodePixels(b64) {
  const bitmap = await createImageBitmap(new Blob([fromBase64(b64)], { type: 'image/png' }),
    { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  const canvas = document.createElement('canvas');
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  const context = canvas.getContext('2d');
  context.imageSmoothingEnabled = false;
  context.drawImage(bitmap, 0, 0);
  bitmap.close();
  return context.getImageData(0, 0, canvas.width, canvas.height);
}

// ---------------------------------------------------------------------------------------------------------------------
// Settings

function readSettings() {
  const problems = [];
  const fields = [];
  const problem = (field, text) => { problems.push(`${fieldLabel(field)}: ${text}`); fields.push(field); };
  const number = (input, field) => {
    const value = input.value.trim();
    const parsed = Number(value);
    if (value === '' || !Number.isFinite(parsed)) { problem(field, 'enter a number'); return 0; }
    return parsed;
  };
  const seed = ui.seed.value.trim();
  if (!/^-?\d{1,19}$/.test(seed)) problem('seed', 'enter a whole number, 0 or more');
  const cfg = number(ui.cfg, 'params.cfg');
  const temperature = number(ui.temperature, 'params.temperature');
  // 0 is refused here (the gateway judges the rest): the API reads a filter of 0 as "not given" and applies its default.
  const filterThreshold = number(ui.filter, 'params.filter_threshold');
  if (ui.filter.value.trim() !== '' && filterThreshold === 0) problem('params.filter_threshold', `enter a number above 0 (0 would mean the default, ${DEFAULT_FILTER})`);
  const numIter = [...ui.iterations.querySelectorAll('input')].map((input, level) => {
    const value = input.value.trim();
    if (!/^-?\d+$/.test(value)) { problem(`params.num_iter[${level}]`, 'enter a whole number'); return 0; }
    return Number(value);
  });
  if (problems.length > 0) throw new UserError('Check these settings:', problems, fields);
  return {
    classLabel: Number(ui.cls.value),
    seed,
    params: { cfg, cfgSchedule: ui.cfgSchedule.value, temperature, temperatureSchedule: ui.temperatureSchedule.value, filterThreshold, numIter },
  };
}

function className(label) {
  return label < 0 ? 'unconditional' : (state.model?.classNames[label] ?? `class ${label}`);
}

// ---------------------------------------------------------------------------------------------------------------------
// The stage: the picture and the mask painted over it

function setSource(source) {
  state.source = source;
  showPicture(source.b64, 'image', source.width, source.height);
  if (state.downloadUrl) URL.revokeObjectURL(state.downloadUrl);
  state.downloadUrl = URL.createObjectURL(new Blob([fromBase64(source.b64)], { type: 'image/png' }));
  ui.download.href = state.downloadUrl;
  ui.download.download = source.name;
  ui.download.setAttribute('aria-disabled', 'false');
  updateButtons();
}

/** Width and height from a PNG's header (IHDR), without decoding it. */
function pngSize(b64) {
  const head = fromBase64(b64.slice(0, 32));
  const view = new DataView(head.buffer);
  return head.length >= 24 ? { width: view.getUint32(16), height: view.getUint32(20) } : { width: 0, height: 0 };
}

/**
 * Shows a PNG on the stage, scaled up with crisp pixels. A picture smaller than the canvas sits in its middle; a preview
 * of one image is the canvas in a grid with a 1-pixel gutter around it, which falls outside the stage.
 */
function showPicture(b64, kind, width, height) {
  const size = state.model.imageSize;
  let w = width;
  let h = height;
  if (w === undefined || h === undefined) ({ width: w, height: h } = pngSize(b64));
  const gutter = kind === 'preview' && w === h && w > size && w <= size + 4 && (w - size) % 2 === 0 ? (w - size) / 2 : 0;
  const fits = gutter > 0 || (w <= size && h <= size);
  const percent = (pixels) => `${(100 * pixels) / size}%`;
  ui.image.dataset.kind = kind;
  ui.image.style.width = fits ? percent(w) : '100%';
  ui.image.style.height = fits ? percent(h) : '100%';
  ui.image.style.left = gutter > 0 ? percent(-gutter) : fits ? percent(Math.floor((size - w) / 2)) : '0';
  ui.image.style.top = gutter > 0 ? percent(-gutter) : fits ? percent(Math.floor((size - h) / 2)) : '0';
  ui.image.src = pngUrl(b64);
  ui.image.hidden = false;
}

/** Draws the mask over the picture: hatched magenta cells, readable over any picture (the canvas is a few times the model's size). */
function drawMask() {
  const size = state.model.imageSize;
  const cell = ui.mask.width / size;
  const context = ui.mask.getContext('2d');
  context.clearRect(0, 0, ui.mask.width, ui.mask.height);
  const region = new Path2D();
  let painted = 0;
  for (let i = 0; i < state.mask.length; i++) {
    if (!state.mask[i]) continue;
    painted++;
    region.rect((i % size) * cell, Math.floor(i / size) * cell, cell, cell);
  }
  if (painted > 0) {
    context.fillStyle = 'rgba(255, 0, 110, 0.55)';
    context.fill(region);
    context.save();
    context.clip(region);
    context.strokeStyle = 'rgba(255, 255, 255, 0.85)';
    context.lineWidth = Math.max(1, cell / 6);
    context.beginPath();
    for (let d = -ui.mask.height; d < ui.mask.width; d += Math.max(4, cell / 2)) {
      context.moveTo(d, ui.mask.height);
      context.lineTo(d + ui.mask.height, 0);
    }
    context.stroke();
    context.restore();
  }
  ui.maskInfo.textContent = painted === 0 ? 'nothing painted' : `${painted} of ${state.mask.length} pixels to generate`;
  updateButtons();
}

function paintAt(x, y, value) {
  const size = state.model.imageSize;
  const radius = Number(ui.brush.value) / 2;
  for (let py = Math.floor(y - radius); py <= Math.ceil(y + radius); py++) {
    for (let px = Math.floor(x - radius); px <= Math.ceil(x + radius); px++) {
      if (px < 0 || py < 0 || px >= size || py >= size) continue;
      const dx = px + 0.5 - x;
      const dy = py + 0.5 - y;
      if (dx * dx + dy * dy <= radius * radius) state.mask[py * size + px] = value;
    }
  }
}

function setUpPainting() {
  let last = null;
  let value = 1;
  const point = (event) => {
    const rect = ui.mask.getBoundingClientRect();
    const size = state.model.imageSize;
    return { x: ((event.clientX - rect.left) / rect.width) * size, y: ((event.clientY - rect.top) / rect.height) * size };
  };
  ui.mask.addEventListener('contextmenu', (event) => event.preventDefault());
  ui.mask.addEventListener('pointerdown', (event) => {
    if (!state.model || state.job) return;
    event.preventDefault();
    ui.mask.setPointerCapture(event.pointerId);
    value = event.button === 2 || event.shiftKey ? 0 : 1;
    last = point(event);
    paintAt(last.x, last.y, value);
    drawMask();
  });
  ui.mask.addEventListener('pointermove', (event) => {
    if (!last) return;
    const p = point(event);
    // Fill the gaps between pointer events: a stroke every half pixel.
    const steps = Math.max(1, Math.ceil(Math.hypot(p.x - last.x, p.y - last.y) * 2));
    for (let s = 1; s <= steps; s++) paintAt(last.x + ((p.x - last.x) * s) / steps, last.y + ((p.y - last.y) * s) / steps, value);
    last = p;
    drawMask();
  });
  const stop = () => { last = null; };
  ui.mask.addEventListener('pointerup', stop);
  ui.mask.addEventListener('pointercancel', stop);
}

async function maskPng() {
  const size = state.model.imageSize;
  const canvas = document.createElement('canvas');
  canvas.width = size;
  canvas.height = size;
  const context = canvas.getContext('2d');
  const pixels = context.createImageData(size, size);
  for (let i = 0; i < state.mask.length; i++) {
    const v = state.mask[i] ? 255 : 0; // white: generate; black: keep
    pixels.data.set([v, v, v, 255], 4 * i);
  }
  context.putImageData(pixels, 0, 0);
  return canvasPng(canvas);
}

// ---------------------------------------------------------------------------------------------------------------------
// Jobs

function updateButtons() {
  const busy = state.job !== null;
  const ready = state.model !== null;
  const painted = state.mask?.some((v) => v) ?? false;
  ui.generate.disabled = busy || !ready;
  ui.cancel.disabled = !busy || state.job.cancelRequested;
  ui.inpaint.disabled = busy || !ready || !state.source || !painted;
  ui.outpaint.disabled = busy || !ready || !state.source;
  ui.upload.disabled = busy;
  ui.stage.classList.toggle('busy', busy);
}

function setStatus(text, phase, step) {
  ui.status.textContent = text;
  document.body.dataset.state = phase;
  if (step !== undefined) ui.status.dataset.step = String(step);
}

function addStep(b64, title, final) {
  const li = document.createElement('li');
  if (final) li.className = 'final';
  const img = document.createElement('img');
  img.src = pngUrl(b64);
  img.alt = title;
  img.title = title;
  li.append(img);
  ui.steps.append(li);
}

/** Submits a job (its spec may take a moment to prepare: PNGs to encode), then follows its events until it ends. */
async function runJob(kind, makeSpec) {
  clearError();
  state.job = { id: null, kind, started: performance.now(), cancelRequested: false };
  updateButtons();
  setStatus('Submitting…', 'submitting', 0);
  try {
    const spec = await makeSpec();
    ui.steps.replaceChildren();
    ui.progress.value = 0;
    const job = await api('POST', '/v1/jobs', { [kind]: spec });
    state.job.id = job.id;
    ui.job.textContent = `job ${job.id}`;
    if (state.job.cancelRequested) cancel(); // pressed while the job was being submitted
    await follow(state.job);
  } catch (e) {
    showError(e);
    setStatus('Nothing was generated.', 'error');
    if (state.source) showPicture(state.source.b64, 'image', state.source.width, state.source.height);
  } finally {
    state.job = null;
    updateButtons();
  }
}

/**
 * Reads the job's event stream (newline-delimited JSON) until a final event. A dropped stream is picked up again after
 * the last event seen; a gateway that stays away for several seconds ends the watch with an error.
 */
async function follow(job) {
  let after = '';
  const seen = (id) => { after = id; };
  for (let attempt = 0; attempt < 6; attempt++) {
    if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 1000));
    const path = `/v1/jobs/${job.id}/events${after ? `?afterEventId=${encodeURIComponent(after)}` : ''}`;
    let response;
    try {
      response = await fetch(path, { headers: authHeaders() });
    } catch {
      continue; // the gateway is away: try again in a second
    }
    if (!response.ok) {
      const text = await response.text();
      let json = null;
      try { json = JSON.parse(text); } catch { /* the text is the message */ }
      throw httpError(response.status, json, text);
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let newline;
        while ((newline = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, newline).trim();
          buffer = buffer.slice(newline + 1);
          if (line && onEvent(job, JSON.parse(line), seen)) return;
        }
      }
      const rest = (buffer + decoder.decode()).trim();
      if (rest && onEvent(job, JSON.parse(rest), seen)) return;
    } catch (e) {
      if (e instanceof UserError) throw e;
      // The connection dropped mid-stream: carry on after the last event seen.
    }
    // The stream ended without a final event: ask for the job's state, and watch again if it still runs.
    let record;
    try {
      record = await api('GET', `/v1/jobs/${job.id}`);
    } catch (e) {
      if (e instanceof UserError && e.unreachable) continue;
      throw e;
    }
    if (['JOB_STATE_DONE', 'JOB_STATE_FAILED', 'JOB_STATE_CANCELLED'].includes(record.state)) {
      onEvent(job, record, () => {});
      return;
    }
  }
  throw new UserError('Lost the connection to the gateway while watching the job: it has not answered for several seconds. ' +
    'Is it still running?');
}

/** Handles one JobEvent (or a final Job record); answers true when the job has ended. */
function onEvent(job, event, seen) {
  if (event.eventId) seen(event.eventId);
  if (event.code !== undefined && event.message !== undefined && event.state === undefined) {
    throw httpError(event.code === 5 ? 404 : 500, event, '');
  }
  const step = event.step ?? 0;
  const steps = event.steps ?? 0;
  switch (event.state) {
    case 'JOB_STATE_QUEUED':
      setStatus(event.queuePosition > 1 ? `Queued: ${event.queuePosition - 1} job(s) wait ahead of it…`
        : event.queuePosition === 1 ? 'Queued: it starts as soon as the gateway is free…' : 'Queued…', 'queued', step);
      return false;
    case 'JOB_STATE_RUNNING': {
      ui.progress.value = event.doneFraction ?? 0;
      if (event.previewPng) {
        showPicture(event.previewPng, 'preview');
        addStep(event.previewPng, `step ${step} of ${steps}`, false);
      }
      const percent = Math.round(100 * (event.doneFraction ?? 0));
      setStatus(`${job.cancelRequested ? 'Cancelling… ' : ''}Step ${step} of ${steps} · ${percent}% of the pixels decided`, 'running', step);
      return false;
    }
    case 'JOB_STATE_DONE': {
      const seconds = ((performance.now() - job.started) / 1000).toFixed(1);
      const image = event.images?.[0];
      if (!image) throw new UserError('The job finished without an image.');
      const label = image.classLabel ?? 0;
      const name = `fractalmesh-${className(label).toLowerCase().replace(/[^a-z0-9]+/g, '-')}-seed${image.seed}.png`;
      setSource({ b64: image.png, width: state.model.imageSize, height: state.model.imageSize, name });
      addStep(image.png, 'final image', true);
      ui.progress.value = 1;
      const verb = { generate: 'Generated', inpaint: 'Inpainted', outpaint: 'Outpainted' }[job.kind];
      setStatus(`${verb} in ${seconds} s · ${className(label)} · seed ${image.seed}${job.cancelRequested ? ' (it finished before the cancel arrived)' : ''}`,
        'done', step);
      if (job.kind === 'outpaint') resetMask();
      return true;
    }
    case 'JOB_STATE_FAILED':
      throw new UserError(`The generation failed: ${event.error || 'the gateway gave no reason'}`);
    case 'JOB_STATE_CANCELLED':
      setStatus(step > 0 ? `Cancelled after step ${step} of ${steps}. The strip below shows how far it got.` : 'Cancelled before it started.',
        'cancelled', step);
      if (state.source) showPicture(state.source.b64, 'image', state.source.width, state.source.height);
      return true;
    default:
      return false;
  }
}

async function generate() {
  let settings;
  try { settings = readSettings(); } catch (e) { refuse(e); return; }
  resetMask();
  await runJob('generate', async () => ({ classLabels: [settings.classLabel], count: 1, seed: settings.seed, params: settings.params }));
}

async function inpaint() {
  let settings;
  try { settings = readSettings(); } catch (e) { refuse(e); return; }
  const imagePng = state.source.b64;
  await runJob('inpaint', async () => ({
    imagePng, maskPng: await maskPng(), classLabel: settings.classLabel, count: 1, seed: settings.seed, params: settings.params,
  }));
}

async function outpaint() {
  let settings;
  try { settings = readSettings(); } catch (e) { refuse(e); return; }
  const size = state.model.imageSize;
  const problems = [];
  const fields = [];
  const shift = (input, field) => {
    const value = input.value.trim();
    if (!/^-?\d+$/.test(value)) { problems.push(`${fieldLabel(field)}: enter a whole number of pixels`); fields.push(field); return 0; }
    return Number(value);
  };
  const dx = shift(ui.shiftX, 'x');
  const dy = shift(ui.shiftY, 'y');
  const source = state.source;
  const full = source.width === size && source.height === size;
  if (problems.length === 0 && full) {
    if (dx === 0 && dy === 0) {
      problems.push('Outpaint: move the picture by at least one pixel, so that part of the canvas is left to generate');
      fields.push('x', 'y');
    } else if (Math.abs(dx) >= size || Math.abs(dy) >= size) {
      problems.push(`Outpaint: move the picture by less than the canvas (${size} pixels), or nothing of it stays`);
      fields.push('x', 'y');
    }
  }
  if (problems.length > 0) { refuse(new UserError('Check these settings:', problems, fields)); return; }

  await runJob('outpaint', async () => {
    let imagePng = source.b64;
    let x;
    let y;
    if (full) {
      // Keep what stays on the canvas after the move: crop it and place it where it moved to.
      const pixels = await decodePixels(source.b64);
      const w = size - Math.abs(dx);
      const h = size - Math.abs(dy);
      const canvas = document.createElement('canvas');
      canvas.width = w;
      canvas.height = h;
      canvas.getContext('2d').putImageData(pixels, -Math.max(0, -dx), -Math.max(0, -dy));
      imagePng = await canvasPng(canvas);
      x = Math.max(0, dx);
      y = Math.max(0, dy);
    } else {
      x = Math.floor((size - source.width) / 2) + dx;
      y = Math.floor((size - source.height) / 2) + dy;
    }
    return { imagePng, x, y, classLabel: settings.classLabel, count: 1, seed: settings.seed, params: settings.params };
  });
}

async function cancel() {
  const job = state.job;
  if (!job) return;
  job.cancelRequested = true;
  updateButtons();
  setStatus('Cancelling…', document.body.dataset.state);
  if (!job.id) return; // runJob cancels it as soon as the gateway names it
  try {
    await api('DELETE', `/v1/jobs/${job.id}`);
    // The event stream reports the end (cancelled, or done when the job finished first).
  } catch (e) {
    job.cancelRequested = false;
    updateButtons();
    showError(e);
  }
}

async function upload() {
  const file = ui.upload.files?.[0];
  if (!file) return;
  clearError();
  const bytes = new Uint8Array(await file.arrayBuffer());
  const b64 = toBase64(bytes);
  let width;
  let height;
  try {
    const bitmap = await createImageBitmap(new Blob([bytes], { type: 'image/png' }));
    width = bitmap.width;
    height = bitmap.height;
    bitmap.close();
  } catch {
    showError(new UserError(`${file.name} is not a PNG image this browser can read.`, [], ['image_png']));
    return;
  }
  const size = state.model.imageSize;
  // The file's own bytes are sent as they are: inpainting keeps the unpainted pixels exactly.
  setSource({ b64, width, height, name: file.name });
  const fit = width === size && height === size ? 'ready to paint and inpaint'
    : width <= size && height <= size ? `smaller than the ${size}×${size} canvas: outpaint to fill around it`
      : `larger than the ${size}×${size} canvas the model draws`;
  setStatus(`Loaded ${file.name} (${width}×${height}): ${fit}.`, 'loaded');
  ui.steps.replaceChildren();
  ui.job.textContent = '';
}

function resetMask() {
  state.mask.fill(0);
  drawMask();
}

// ---------------------------------------------------------------------------------------------------------------------
// Start

async function start() {
  document.body.dataset.state = 'loading';
  try {
    state.model = await api('GET', '/v1/model');
  } catch (e) {
    showError(new UserError(`Cannot load the model description: ${e.message}`));
    setStatus('The page cannot work without the gateway.', 'error');
    return;
  }
  const m = state.model;
  ui.modelInfo.textContent = `${m.imageSize}×${m.imageSize} pixels · ${m.classCount} classes · ${m.levels} levels ` +
    `(${m.patchesPerLevel.join(', ')} patches)`;
  // The form starts from the settings the model recommends for its best samples, where it carries them (the API's
  // defaults stay the official ones; the page sends every setting it shows).
  const r = m.recommended;
  if (r) {
    ui.cfg.value = String(r.cfg);
    ui.cfgSchedule.value = r.cfgSchedule;
    ui.temperature.value = String(r.temperature);
    ui.temperatureSchedule.value = r.temperatureSchedule;
    ui.filter.value = String(r.filter);
    ui.modelInfo.textContent += ` · recommended settings: guidance ${r.cfg} ${r.cfgSchedule}, temperature ${r.temperature}` +
      (r.temperatureSchedule === 'linear' ? ' linear' : '') + (r.filter !== DEFAULT_FILTER ? `, filter ${r.filter}` : '');
  }
  ui.cls.replaceChildren(...m.classNames.map((name, i) => new Option(name === `class ${i}` ? name : `${i}: ${name}`, String(i))),
    new Option('unconditional (no class)', '-1'));
  ui.iterations.replaceChildren(...m.patchesPerLevel.map((patches, level) => {
    const label = document.createElement('label');
    label.className = 'iteration';
    label.htmlFor = `iter-${level}`;
    label.textContent = `level ${level} (1–${patches})`;
    const input = document.createElement('input');
    input.type = 'number';
    input.id = `iter-${level}`;
    input.step = '1';
    input.value = String(m.defaultNumIter[level]);
    label.append(input);
    return label;
  }));
  // The mask is kept per model pixel (state.mask) and drawn a few times larger, so that its hatching stays sharp.
  const cell = Math.max(1, Math.round(384 / m.imageSize));
  ui.mask.width = m.imageSize * cell;
  ui.mask.height = m.imageSize * cell;
  state.mask = new Uint8Array(m.imageSize * m.imageSize);
  drawMask();
  setUpPainting();
  updateButtons();
  setStatus('Pick a class and press Generate.', 'idle', 0);
}

ui.randomSeed.addEventListener('click', () => { ui.seed.value = String(Math.floor(Math.random() * 2 ** 31)); });
ui.brush.addEventListener('input', () => { ui.brushSize.textContent = `${ui.brush.value} px`; });
ui.generate.addEventListener('click', generate);
ui.cancel.addEventListener('click', cancel);
ui.inpaint.addEventListener('click', inpaint);
ui.outpaint.addEventListener('click', outpaint);
ui.upload.addEventListener('change', upload);
ui.clearMask.addEventListener('click', () => resetMask());
ui.invertMask.addEventListener('click', () => { for (let i = 0; i < state.mask.length; i++) state.mask[i] ^= 1; drawMask(); });
start();
