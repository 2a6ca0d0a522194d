// The page at `/`: drop or pick images, each one is sent to POST /predict as it is (the file's
// bytes as the body) and its top classes come back as bars. One self-contained HTML string: no
// build step, no external scripts, fonts or styles (the server may be offline).
import { escapeHtml } from '../utils/escape';
import type { RunInfo } from './run-info';

export interface PageOptions {
  /** The server's body limit, so that too-large files are refused before they are sent. */
  maxBodyBytes: number;
}

const percent = (x: number | null): string => (x === null ? '—' : `${(x * 100).toFixed(1)}%`);

export function renderPage(info: RunInfo, options: PageOptions): string {
  const accuracy =
    info.testTop1 === null
      ? '<span id="test-accuracy" data-top1="">no test results (results.json) in this run</span>'
      : `<span id="test-accuracy" data-top1="${info.testTop1}">test top-1 <b>${percent(info.testTop1)}</b>, top-5 ${percent(info.testTop5)}` +
        `${info.testImages === null ? '' : ` on ${info.testImages} images`}</span>`;
  const classes = info.classes.map((c) => `<li>${escapeHtml(c)}</li>`).join('');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(info.name)} · finetorch</title>
<style>
  :root { --accent: #2f6fde; --muted: #667085; --line: #e4e7ec; font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; color: #1d2939; }
  body { margin: 0 auto; max-width: 60rem; padding: 1.5rem; }
  h1 { font-size: 1.5rem; margin: 0 0 .25rem; word-break: break-all; }
  .meta { color: var(--muted); margin: 0 0 .75rem; }
  #classes { list-style: none; padding: 0; margin: 0 0 1.25rem; display: flex; flex-wrap: wrap; gap: .3rem; font-size: .8rem; }
  #classes li { background: #f2f4f7; border-radius: .6rem; padding: .1rem .5rem; }
  #drop { display: block; border: 2px dashed #98a2b3; border-radius: .75rem; padding: 1.75rem; text-align: center; cursor: pointer; color: var(--muted); }
  #drop.over { border-color: var(--accent); background: #eef4ff; color: var(--accent); }
  #drop input { display: block; margin: .75rem auto 0; }
  #results { display: grid; grid-template-columns: repeat(auto-fill, minmax(27rem, 1fr)); gap: 1rem; margin-top: 1.25rem; }
  .result { display: flex; gap: .9rem; border: 1px solid var(--line); border-radius: .75rem; padding: .8rem; }
  .result img { width: 6.5rem; height: 6.5rem; object-fit: cover; border-radius: .4rem; background: #f2f4f7; flex: none; }
  .result .body { flex: 1; min-width: 0; }
  .result h2 { font-size: .9rem; margin: 0 0 .4rem; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  .bars { list-style: none; margin: 0; padding: 0; }
  .bar-row { display: grid; grid-template-columns: 7.5rem 1fr 3.8rem; align-items: center; gap: .4rem; font-size: .8rem; margin: .2rem 0; }
  .bar-row .label { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  .track { background: #f2f4f7; border-radius: .3rem; height: .8rem; overflow: hidden; }
  .bar { display: block; height: 100%; background: var(--accent); opacity: .55; border-radius: .3rem; }
  .bar-row:first-child .bar { opacity: 1; }
  .bar-row:first-child .label { font-weight: 600; }
  .value { text-align: right; font-variant-numeric: tabular-nums; }
  .status { color: var(--muted); font-size: .85rem; }
  .error { color: #b42318; font-size: .85rem; word-break: break-word; }
</style>
</head>
<body>
<h1 id="run-name">${escapeHtml(info.name)}</h1>
<p class="meta"><span id="arch">${escapeHtml(info.arch)}</span>, ${info.imageSize}×${info.imageSize} px · ${accuracy} · <span id="class-count">${info.classes.length}</span> classes:</p>
<ul id="classes">${classes}</ul>
<label id="drop">Drop images here, or pick them:
  <input id="file" type="file" accept="image/*" multiple>
</label>
<section id="results" aria-live="polite"></section>
<script>
"use strict";
(function () {
  var MAX_BYTES = ${options.maxBodyBytes};
  var input = document.getElementById('file');
  var drop = document.getElementById('drop');
  var results = document.getElementById('results');

  function el(tag, className, text) {
    var e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function showBars(card, body, top) {
    var list = el('ol', 'bars');
    top.forEach(function (t) {
      var row = el('li', 'bar-row');
      row.dataset.class = t.className;
      row.dataset.probability = String(t.probability);
      var label = el('span', 'label', t.className);
      label.title = t.className;
      var track = el('span', 'track');
      var bar = el('span', 'bar');
      bar.style.width = (t.probability * 100).toFixed(2) + '%';
      track.appendChild(bar);
      row.appendChild(label);
      row.appendChild(track);
      row.appendChild(el('span', 'value', (t.probability * 100).toFixed(2) + '%'));
      list.appendChild(row);
    });
    body.replaceChild(list, body.querySelector('.status'));
    card.dataset.state = 'done';
  }

  function showError(card, body, message) {
    body.replaceChild(el('p', 'error', message), body.querySelector('.status'));
    card.dataset.state = 'error';
  }

  function classify(file, before) {
    var card = el('article', 'result');
    card.dataset.file = file.name;
    card.dataset.state = 'pending';
    var img = el('img');
    img.alt = '';
    img.addEventListener('load', function () { URL.revokeObjectURL(img.src); });
    img.addEventListener('error', function () { img.style.visibility = 'hidden'; URL.revokeObjectURL(img.src); }); // not an image the browser shows
    img.src = URL.createObjectURL(file);
    var body = el('div', 'body');
    body.appendChild(el('h2', '', file.name));
    body.appendChild(el('p', 'status', 'classifying…'));
    card.appendChild(img);
    card.appendChild(body);
    results.insertBefore(card, before);
    if (file.size > MAX_BYTES) {
      showError(card, body, 'Too large: ' + file.size + ' bytes, the server takes at most ' + MAX_BYTES + '.');
      return;
    }
    fetch('predict', { method: 'POST', body: file, headers: { 'Content-Type': file.type || 'application/octet-stream' } })
      .then(function (response) {
        return response.json().then(
          function (json) { return { ok: response.ok, status: response.status, json: json }; },
          function () { return { ok: false, status: response.status, json: { error: 'HTTP ' + response.status } }; }
        );
      })
      .then(function (r) {
        if (r.ok && r.json && Array.isArray(r.json.top)) showBars(card, body, r.json.top);
        else showError(card, body, (r.json && r.json.error) || 'HTTP ' + r.status);
      })
      .catch(function (e) { showError(card, body, 'The server did not answer: ' + e.message); });
  }

  // newest files first, each batch in the order chosen
  function classifyAll(files) {
    var before = results.firstChild;
    Array.prototype.forEach.call(files, function (file) { classify(file, before); });
  }

  input.addEventListener('change', function () {
    classifyAll(input.files);
    input.value = '';
  });
  ['dragenter', 'dragover'].forEach(function (type) {
    document.addEventListener(type, function (e) { e.preventDefault(); drop.classList.add('over'); });
  });
  ['dragleave', 'drop'].forEach(function (type) {
    document.addEventListener(type, function (e) { e.preventDefault(); drop.classList.remove('over'); });
  });
  document.addEventListener('drop', function (e) {
    if (e.dataTransfer && e.dataTransfer.files.length) classifyAll(e.dataTransfer.files);
  });
})();
</script>
</body>
</html>
`;
}
