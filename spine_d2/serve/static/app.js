// The page: photos dropped or picked → POST /api/measure one at a time → a card per photo with the
// overlay, the angle table (value or the reason it is missing), the error figures and downloads.
// Endplates the reader moves on the overlay (editor.js) are measured again by POST /api/angles.
"use strict";

const state = { limits: null, reference: null, queue: [], busy: false, done: [] };
const $ = (sel, root = document) => root.querySelector(sel);

function fmt(v, digits = 1) {
  return v === null || v === undefined ? "—" : `${Number(v).toFixed(digits)}°`;
}

function stem(name) {
  const base = (name || "photo").replace(/^.*[\\/]/, "");
  return base.replace(/\.[^.]*$/, "") || "photo";
}

function save(blob, filename) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
}

function csvCell(v) {
  if (v === null || v === undefined) return "";
  const s = typeof v === "number" ? v.toFixed(2) : String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function toCsv(results) {
  const cols = (state.reference && state.reference.csv_columns) ||
    ["image", "TK", "LL", "LL_S1", "SS", "PT", "PI", "frame", "notes"];
  const lines = [cols.join(",")];
  for (const r of results) lines.push(cols.map((c) => csvCell(r.row[c])).join(","));
  return lines.join("\n") + "\n";
}

function ourFigure(name) {
  const ours = state.reference && state.reference.ours;
  if (!ours) return "not yet measured";
  const a = ours.angles[name];
  if (!a || ((a.mae === null || a.mae === undefined) && !a.missing)) return "not yet measured";
  if (a.mae === null || a.mae === undefined) return `none measured (${a.missing} missing)`;
  const missing = a.missing ? `, ${a.missing} missing` : "";
  return `${fmt(a.mae)} (n=${a.n}${missing})`;
}

function studyFigure(name) {
  const v = state.reference && state.reference.study.mae_deg[name];
  return v === null || v === undefined ? "not reported" : fmt(v);
}

function trustText() {
  const ref = state.reference;
  if (!ref) return "";
  const study = `Study MAE: ${ref.study.name}, ${ref.study.description}, mean absolute error against specialists.`;
  const o = ref.ours;
  const ours = o
    ? ` Our MAE: benchmark "${o.config}" (${o.date}, ${o.n_images} phantom test images, ${o.file}); ` +
      `n = angles measured, missing = not measured there.`
    : " Our MAE: not yet measured (no benchmarks/results/accuracy-*.json).";
  return study + ours;
}

function renderAngles(card, res) {
  const body = $("tbody", card);
  body.innerHTML = "";
  for (const name of Object.keys(res.angles)) {
    const a = res.angles[name];
    const model = res.model_angles && res.model_angles[name];
    const tr = document.createElement("tr");
    tr.dataset.angle = name;
    if (a.corrected) tr.classList.add("corrected");
    const badge = a.corrected
      ? `<span class="badge">corrected</span><span class="model">model: ${fmt(model && model.value)}</span>` : "";
    const value = a.value === null
      ? `<span class="value missing">—</span>${badge}<span class="reason">${escapeHtml(a.reason)}</span>`
      : `<span class="value">${fmt(a.value)}</span>${badge}`;
    tr.innerHTML = `<th scope="row">${name}</th><td>${value}</td>` +
      `<td class="study">${studyFigure(name)}</td><td class="ours">${ourFigure(name)}</td>`;
    body.appendChild(tr);
  }
}

function downloadLabelme(res, editor, filename) {
  const endplates = editor ? editor.correctedEndplates() : {};
  fetch("/api/labelme", { method: "POST", headers: { "Content-Type": "application/json" },
                          body: JSON.stringify({ labelme: res.labelme, endplates }) })
    .then((r) => r.json())
    .then((doc) => save(new Blob([JSON.stringify(doc, null, 2)], { type: "application/json" }), filename));
}

function showResult(card, file, res) {
  $(".status", card).textContent = "done";
  card.classList.add("ok");
  const img = $(".overlay img", card);
  img.src = res.overlay_png;
  $(".overlay-link", card).href = res.overlay_png;
  $(".frame", card).textContent = `Frame: ${res.frame_text}.`;
  $(".frame", card).title = res.frame_detail;
  res.model_angles = res.angles;
  renderAngles(card, res);
  $(".trust", card).textContent = trustText();
  $(".notes p", card).textContent = res.notes || "none";
  const base = stem(res.image || file.name);
  const editor = attachEditor(card, res, (answer) => {
    res.angles = answer.angles;
    res.row = answer.row;
    res.corrected = answer.corrected;
    res.geometry.corrected = answer.corrected;
    card.classList.toggle("corrected", answer.corrected.length > 0);
    $(".reset", card).hidden = answer.corrected.length === 0;
    $(".notes p", card).textContent = answer.row.notes || "none";
    renderAngles(card, res);
  }, (message) => { $(".notes p", card).textContent = `Could not measure the corrected endplates: ${message}`; });
  $(".dl-csv", card).onclick = () => save(new Blob([toCsv([res])], { type: "text/csv" }), `${base}_angles.csv`);
  $(".dl-json", card).onclick = () => {
    const { overlay_png, labelme, ...rest } = res;
    save(new Blob([JSON.stringify(rest, null, 2)], { type: "application/json" }), `${base}_angles.json`);
  };
  $(".dl-png", card).onclick = () => fetch(res.overlay_png).then((r) => r.blob())
    .then((b) => save(b, `${base}_overlay.png`));
  $(".dl-labelme", card).onclick = () => downloadLabelme(res, editor, `${base}.json`);
  $(".reset", card).onclick = () => editor && editor.reset();
  $(".result", card).hidden = false;
  state.done.push(res);
  $("#bulk").hidden = false;
}

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function showError(card, message) {
  $(".status", card).textContent = "not measured";
  card.classList.add("failed");
  const p = $(".error", card);
  p.textContent = `Could not measure this photo: ${message}`;
  p.hidden = false;
}

function setProgress(card, percent, text) {
  const bar = $(".progress", card);
  if (percent === null) bar.removeAttribute("value"); else bar.value = percent;
  $(".progress-text", card).textContent = text;
}

function upload(card, file) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    const form = new FormData();
    form.append("file", file, file.name);
    xhr.open("POST", "/api/measure");
    xhr.responseType = "json";
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) setProgress(card, Math.round((100 * e.loaded) / e.total), "uploading…");
    };
    xhr.upload.onload = () => setProgress(card, null, "measuring…");
    xhr.onload = () => {
      const body = xhr.response || {};
      if (xhr.status === 200) showResult(card, file, body);
      else showError(card, body.detail || `the server answered ${xhr.status}`);
      resolve();
    };
    xhr.onerror = () => { showError(card, "the server could not be reached (is tools/serve.py running?)"); resolve(); };
    xhr.send(form);
  });
}

async function pump() {
  if (state.busy) return;
  state.busy = true;
  while (state.queue.length) {
    const { card, file } = state.queue.shift();
    $(".status", card).textContent = "working";
    card.classList.add("busy");
    const limit = state.limits && state.limits.max_upload_mb;
    if (limit && file.size > limit * 1e6) {
      showError(card, `the file is ${(file.size / 1e6).toFixed(1)} MB: this server takes photos up to ` +
        `${limit} MB; send a smaller photo or a screenshot`);
    } else if (file.size === 0) {
      showError(card, `${file.name}: the file is empty (0 bytes)`);
    } else {
      await upload(card, file);
    }
    card.classList.remove("busy");
    $(".progress-row", card).hidden = true;
  }
  state.busy = false;
}

function addFiles(files) {
  const results = $("#results");
  for (const file of files) {
    const card = $("#card-template").content.firstElementChild.cloneNode(true);
    $(".name", card).textContent = file.name || "photo";
    $(".status", card).textContent = "waiting";
    setProgress(card, 0, "waiting…");
    results.prepend(card);
    state.queue.push({ card, file });
  }
  pump();
}

async function init() {
  try {
    const [health, reference] = await Promise.all([
      fetch("/api/health").then((r) => r.json()),
      fetch("/api/reference").then((r) => r.json()),
    ]);
    state.limits = health;
    state.reference = reference;
    $("#model").textContent = (health.model ? `Model: ${health.model}` : "")
      + (health.trained_on ? `, ${health.trained_on}.` : health.model ? "." : "");
    $("#privacy").textContent = health.keep_uploads
      ? `Uploads are kept on the server (keep_uploads). Up to ${health.max_upload_mb} MB, ${health.max_megapixels} megapixels.`
      : `Photos are measured in memory and not stored; returned images carry no EXIF. Up to ${health.max_upload_mb} MB, ${health.max_megapixels} megapixels.`;
  } catch (e) {
    $("#model").textContent = "The server is not answering.";
  }
  const drop = $("#drop");
  const input = $("#files");
  input.addEventListener("change", () => { addFiles(Array.from(input.files)); input.value = ""; });
  ["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => {
    e.preventDefault(); drop.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((t) => drop.addEventListener(t, (e) => {
    e.preventDefault(); drop.classList.remove("over");
  }));
  drop.addEventListener("drop", (e) => addFiles(Array.from(e.dataTransfer.files)));
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") input.click(); });
  $("#all-csv").onclick = () => save(new Blob([toCsv(state.done)], { type: "text/csv" }), "angles.csv");
  $("#clear").onclick = () => {
    $("#results").innerHTML = ""; state.done = []; $("#bulk").hidden = true;
  };
  document.body.dataset.ready = "1";
}

// keep a dropped file from opening in the tab when it misses the drop zone
window.addEventListener("dragover", (e) => e.preventDefault());
window.addEventListener("drop", (e) => e.preventDefault());
init();
