// tocsin console: the one ES module. Live progress on the board and on an
// incident's page (polls /console/board.json every 1.5 s), and the report
// form's preview (the server renders the SMS with the core's templates and
// segmenter), and the CSV upload's file reading. Everything from the server is written as text, never as HTML.
const main = document.getElementById('main');
const csrf = main ? main.dataset.csrf || '' : '';

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function progress(L, p) {
  p = p || { planned: 0, sent: 0, delivered: 0, failed: 0, expired: 0 };
  return ['planned', 'sent', 'delivered', 'failed', 'expired']
    .map((k) => `${p[k]} ${L['l' + k[0].toUpperCase() + k.slice(1)]}`).join(' · ');
}

function acks(L, a) {
  return `${a.responding} ${L.lResponding} · ${a.reply} ${L.lReply}`;
}

function fill(row, L, inc) {
  row.querySelector('.p-sms').textContent = progress(L, inc.channels.sms);
  row.querySelector('.p-email').textContent = progress(L, inc.channels.email);
  row.querySelector('.acks').textContent = acks(L, inc.acks);
}

function newRow(table, L, inc) {
  const tr = el('tr');
  tr.dataset.incident = inc.id;
  if (inc.drill) tr.className = 'drill-row';
  const first = el('td');
  const a = el('a', inc.id);
  a.href = '/console/incidents/' + encodeURIComponent(inc.id);
  first.append(a);
  if (inc.drill) first.append(' ', el('strong', L.lDrill, 'drill'));
  const cells = [first, el('td', `${inc.event} · ${inc.area}`), el('td', inc.severity),
    el('td', '', 'p-sms'), el('td', '', 'p-email'), el('td', '', 'acks')];
  // the labels a narrow screen shows, as the server's rows have them
  const model = table.tBodies[0].rows[0];
  cells.forEach((c, i) => { if (model && model.cells[i]) c.dataset.label = model.cells[i].dataset.label || ''; });
  tr.append(...cells);
  table.tBodies[0].append(tr);
  const none = document.getElementById('no-incidents');
  if (none) none.remove();
  return tr;
}

function apply(data) {
  for (const table of document.querySelectorAll('table[data-l-planned]')) {
    const L = table.dataset;
    const seen = new Set();
    for (const inc of data.incidents) {
      seen.add(inc.id);
      let row = [...table.tBodies[0].rows].find((r) => r.dataset.incident === inc.id);
      if (!row && table.id === 'board') row = newRow(table, L, inc);
      if (row) fill(row, L, inc);
    }
    if (table.id === 'board')
      for (const r of [...table.tBodies[0].rows]) if (!seen.has(r.dataset.incident)) r.remove();
  }
}

async function poll() {
  try {
    const r = await fetch('/console/board.json', { cache: 'no-store' });
    if (r.status === 401) { location.href = '/console/login'; return; }
    if (r.ok) apply(await r.json());
  } catch (e) { /* the next poll tries again */ }
  setTimeout(poll, 1500);
}

function renderPreview(out, data) {
  out.replaceChildren();
  if (data.problems) {
    const ul = el('ul', undefined, 'error');
    for (const p of data.problems) ul.append(el('li', `${p.field}: ${p.message}`));
    out.append(ul);
    return;
  }
  const L = out.dataset;
  if (data.merge_into) {
    const h = data.merge_headline || {};
    const words = h[document.documentElement.lang] || h.en || Object.values(h)[0] || '';
    const p = el('p', `${L.lMerge} ${data.merge_into}: “${words}”`, 'warn');
    p.id = 'preview-merge';
    out.append(p);
  }
  // The area shapes with the point, as an image (an SVG in an <img> runs
  // nothing; CSP allows data: images only).
  if (data.map_svg) {
    const img = el('img', undefined, 'map');
    img.id = 'preview-map';
    img.alt = 'map';
    img.src = 'data:image/svg+xml;charset=utf-8,' + encodeURIComponent(data.map_svg);
    out.append(img);
  }
  // Groups the safety rules hold until the incident is confirmed enough.
  for (const g of data.groups || []) {
    if (g.waits) out.append(el('p', `${g.name}: ⏸ ${g.waits}`, 'warn'));
  }
  const total = data.followup_recipients !== undefined ? data.followup_recipients : data.total;
  const t = el('table');
  t.append(el('caption', `Σ ${total}`));
  for (const a of data.audience || []) {
    const tr = el('tr');
    tr.append(el('td', a.channel), el('td', a.language), el('td', String(a.count)));
    t.append(tr);
  }
  // A follow-up: the people above, the messages per channel here.
  for (const c of data.followup_channels || []) {
    const tr = el('tr');
    tr.append(el('td', c.channel), el('td', ''), el('td', String(c.count)));
    t.append(tr);
  }
  out.append(t);
  // Every group that matches, held or not, with its own members.
  if ((data.groups || []).length) {
    const g = el('table');
    g.id = 'preview-groups';
    g.append(el('caption', L.lGroups));
    const head = el('tr');
    for (const c of [L.lGroup, L.lChannel, 'lang', '#']) {
      const th = el('th', c);
      th.scope = 'col';
      head.append(th);
    }
    g.append(head);
    for (const grp of data.groups) {
      const name = grp.waits ? `${grp.name} (${L.lHeld}: ${grp.waits})` : grp.name;
      const rows = grp.audience.length ? grp.audience : [{ channel: '-', language: '-', count: 0 }];
      for (const a of rows) {
        const tr = el('tr');
        tr.append(el('td', name), el('td', a.channel), el('td', a.language), el('td', String(a.count)));
        g.append(tr);
      }
    }
    out.append(g);
  }
  for (const m of data.messages) {
    const f = el('figure', undefined, 'sms');
    const cap = m.channel === 'sms' ? `sms · ${m.language} · ${m.segments} · ${m.encoding}`
      : `email · ${m.language}`;
    f.append(el('figcaption', cap), el('pre', (m.subject ? m.subject + '\n' : '') + m.body));
    out.append(f);
  }
}

function previewForm(form) {
  const out = document.getElementById('preview-out');
  let timer = 0;
  const run = async () => {
    const body = new URLSearchParams(new FormData(form));
    try {
      const r = await fetch('/console/reports/preview', {
        method: 'POST', body, headers: { 'X-CSRF-Token': csrf },
      });
      if (r.status === 401) { location.href = '/console/login'; return; }
      if (r.ok) renderPreview(out, await r.json());
    } catch (e) { /* keep the last preview */ }
  };
  form.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(run, 300); });
  run();
}

if (document.querySelector('table[data-l-planned]')) poll();
const form = document.getElementById('report-form');
if (form) previewForm(form);

// The CSV upload: the chosen file's text goes into the form's textarea (the
// console's forms are all form-urlencoded; the textarea also takes a paste).
const csvFile = document.getElementById('csv-file');
const csvText = document.getElementById('csv');
if (csvFile && csvText) {
  csvFile.addEventListener('change', () => {
    const file = csvFile.files && csvFile.files[0];
    if (file) file.text().then((t) => { csvText.value = t; });
  });
}
