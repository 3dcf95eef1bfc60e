// Endplates a reader can move: an SVG over the overlay, in the photo's image frame (px, the frame of
// /api/measure's `geometry`), with a handle on each endplate end. Drag a handle (mouse, pen or
// touch: pointer events) or focus it and use the arrow keys (Shift: 10 px); every move sends the
// geometry back to POST /api/angles, which measures the angles again with the project's own
// definitions and frame. No angle is computed here.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const ENDS = ["anterior", "posterior"];

function svgEl(name, attrs = {}) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

// `res`: the /api/measure answer (its `geometry` is edited in place); `onAngles(answer)` gets each
// /api/angles answer; `onError(message)` any failure. Returns {reset, corrected} or null when the
// photo has no endplate to move.
function attachEditor(card, res, onAngles, onError) {
  const svg = card.querySelector(".editor");
  const img = card.querySelector(".overlay img");
  const g = res.geometry;
  if (!g || !Object.keys(g.endplates).length) {
    svg.remove();
    card.querySelector(".edit-hint").hidden = true;
    return null;
  }
  const original = JSON.parse(JSON.stringify(g.endplates));
  const corrected = new Set();
  const drawn = {};  // "L1 superior" → {group, line, handles}
  let busy = false, again = false;
  svg.setAttribute("viewBox", `0 0 ${res.width} ${res.height}`);

  function scale() {  // image px per CSS px
    return res.width / Math.max(1, img.clientWidth || res.width);
  }

  function redraw(key) {
    const [level, side] = key.split(" ");
    const seg = g.endplates[level][side];
    const d = drawn[key];
    d.line.setAttribute("x1", seg[0][0]); d.line.setAttribute("y1", seg[0][1]);
    d.line.setAttribute("x2", seg[1][0]); d.line.setAttribute("y2", seg[1][1]);
    d.dots.forEach((dot, end) => { dot.setAttribute("cx", seg[end][0]); dot.setAttribute("cy", seg[end][1]); });
    d.handles.forEach((h, end) => {
      h.setAttribute("cx", seg[end][0]); h.setAttribute("cy", seg[end][1]);
      h.setAttribute("aria-label", `${key} endplate, ${ENDS[end]} end, at ${seg[end][0].toFixed(0)}, ` +
        `${seg[end][1].toFixed(0)} px${corrected.has(key) ? ", corrected" : ""}`);
    });
    d.group.classList.toggle("moved", corrected.has(key));
  }

  function send() {
    if (busy) { again = true; return; }
    busy = true;
    card.dataset.measuring = "1";  // until the last move's answer is in
    const body = { ...g, corrected: [...corrected], image: res.row.image, notes: res.notes };
    fetch("/api/angles", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) })
      .then((r) => r.json().then((b) => ({ ok: r.ok, b })))
      .then(({ ok, b }) => (ok ? onAngles(b) : onError(b.detail || "the angles could not be measured again")))
      .catch(() => onError("the server could not be reached to measure the angles again"))
      .finally(() => {
        busy = false;
        if (again) { again = false; send(); } else delete card.dataset.measuring;
      });
  }

  function move(key, end, x, y) {
    const [level, side] = key.split(" ");
    const cx = Math.min(Math.max(x, 0), res.width), cy = Math.min(Math.max(y, 0), res.height);
    g.endplates[level][side][end] = [cx, cy];
    corrected.add(key);
    redraw(key);
    send();
  }

  function toImage(clientX, clientY) {
    const pt = svg.createSVGPoint();
    pt.x = clientX; pt.y = clientY;
    return pt.matrixTransform(svg.getScreenCTM().inverse());
  }

  function handle(key, end) {
    const h = svgEl("circle", { class: "handle", tabindex: "0", role: "button", "aria-roledescription": "movable point",
                                 "vector-effect": "non-scaling-stroke", "data-end": ENDS[end] });
    h.addEventListener("pointerdown", (e) => {
      e.preventDefault();
      h.setPointerCapture(e.pointerId);
      h.classList.add("active");
      h.focus({ preventScroll: true });
    });
    h.addEventListener("pointermove", (e) => {
      if (!h.hasPointerCapture(e.pointerId)) return;
      const p = toImage(e.clientX, e.clientY);
      move(key, end, p.x, p.y);
    });
    const release = (e) => {
      if (h.hasPointerCapture(e.pointerId)) h.releasePointerCapture(e.pointerId);
      h.classList.remove("active");
    };
    h.addEventListener("pointerup", release);
    h.addEventListener("pointercancel", release);
    h.addEventListener("keydown", (e) => {
      const step = e.shiftKey ? 10 : 1;
      const d = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] }[e.key];
      if (!d) return;
      e.preventDefault();
      const [level, side] = key.split(" ");
      const [x, y] = g.endplates[level][side][end];
      move(key, end, x + d[0], y + d[1]);
    });
    return h;
  }

  for (const [level, sides] of Object.entries(g.endplates)) {
    for (const side of Object.keys(sides)) {
      const key = `${level} ${side}`;
      const group = svgEl("g", { class: `endplate ${side}`, "data-key": key });
      const line = svgEl("line", { "vector-effect": "non-scaling-stroke" });
      const dots = [0, 1].map(() => svgEl("circle", { class: "dot", "vector-effect": "non-scaling-stroke" }));
      const handles = [handle(key, 0), handle(key, 1)];
      group.append(line, ...dots, ...handles);
      svg.appendChild(group);
      drawn[key] = { group, line, dots, handles };
      redraw(key);
    }
  }
  // a small visible dot; a larger, invisible target around it (larger still on a touch screen)
  const resize = () => {
    const coarse = window.matchMedia && window.matchMedia("(pointer: coarse)").matches;
    const s = scale();
    svg.querySelectorAll(".dot").forEach((dot) => dot.setAttribute("r", 2.5 * s));
    svg.querySelectorAll(".handle").forEach((h) => h.setAttribute("r", (coarse ? 14 : 7) * s));
  };
  resize();
  img.addEventListener("load", resize);
  if (window.ResizeObserver) new ResizeObserver(resize).observe(img);

  return {
    corrected: () => [...corrected],
    correctedEndplates() {
      const out = {};
      for (const key of corrected) {
        const [level, side] = key.split(" ");
        (out[level] = out[level] || {})[side] = g.endplates[level][side];
      }
      return out;
    },
    reset() {
      g.endplates = JSON.parse(JSON.stringify(original));
      const keys = Object.keys(drawn);
      corrected.clear();
      keys.forEach(redraw);
      send();
    },
  };
}
