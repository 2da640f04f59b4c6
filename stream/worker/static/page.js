// The live page of a segstream worker: polls the JSON endpoints (README, "Live page") every
// 2 s and draws them with plain DOM and SVG. With SEGSTREAM_HTTP_TOKEN set, open the page as
// http://worker:6066/#token=THE_TOKEN: the fragment never leaves the browser, and the script
// sends it as the Authorization header.
"use strict";

const POLL_MS = 2000;
const COLOURS = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];
const SVG = "http://www.w3.org/2000/svg";
const token = new URLSearchParams(location.hash.slice(1)).get("token");
const state = { selected: null, labels: [] };

async function get(path) {
  const response = await fetch(path, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  if (response.status === 401) throw new Error("the worker wants a token: open this page as /#token=…");
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

function colour(segment) {
  return segment === null || segment === undefined ? "#9aa5b1" : COLOURS[segment % COLOURS.length];
}

function el(tag, attrs = {}, text = "") {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  if (text !== "") node.textContent = text;
  return node;
}

function clock(iso) {
  return iso ? new Date(iso).toISOString().slice(11, 19) : "";
}

function drawSegments(data) {
  state.labels = data.segments.map((s) => s.label);
  document.getElementById("since").textContent =
    data.change_since_version === null ? "" : `change since model v${data.change_since_version}`;
  const body = document.querySelector("#segments tbody");
  body.replaceChildren(...data.segments.map((s) => {
    const row = el("tr", { "data-segment": s.id, class: s.id === state.selected ? "selected" : "" });
    const id = el("td");
    id.append(el("span", { class: "swatch", style: `background:${colour(s.id)}` }), String(s.id));
    const change = s.change === null ? "" : s.change > 0 ? `+${s.change}` : String(s.change);
    row.append(
      id,
      el("td", { class: "label" }, s.label),
      el("td", { class: `num ${s.evidence?.thin ? "thin" : ""}` }, evidence(s.evidence)),
      el("td", { class: "num" }, String(s.size)),
      el("td", { class: "num" }, `${(100 * s.share).toFixed(1)}%`),
      el("td", { class: `num ${s.change > 0 ? "up" : s.change < 0 ? "down" : ""}` }, change),
      el("td", { class: "num" }, String(s.entered)),
      el("td", { class: "num" }, String(s.left)),
    );
    row.addEventListener("click", () => select(s.id));
    return row;
  }));
  if (state.selected === null && data.seeded && data.segments.length) select(data.segments[0].id);
}

// How far from the centre the points reach on one axis, rounded up to a quarter of its order
// of magnitude: a new sample only rescales the map when it reaches past the old bound.
function extent(values) {
  const far = Math.max(1e-6, ...values.map(Math.abs));
  const step = 10 ** Math.floor(Math.log10(far)) / 4;
  return Math.ceil(far / step) * step;
}

function drawMap(data) {
  const svg = document.getElementById("map");
  const [width, height, pad] = [600, 400, 24];
  const points = [...data.centroids, ...data.users];
  // One scale for both axes (distances stay true), as large as the panel allows.
  const scale = Math.min((width / 2 - pad) / extent(points.map((p) => p.x)), (height / 2 - pad) / extent(points.map((p) => p.y)));
  const x = (v) => width / 2 + v * scale;
  const y = (v) => height / 2 - v * scale;
  const shapes = [
    el("svg:line", { class: "axis", x1: pad, x2: width - pad, y1: height / 2, y2: height / 2 }),
    el("svg:line", { class: "axis", x1: width / 2, x2: width / 2, y1: pad, y2: height - pad }),
  ];
  if (!data.seeded) shapes.push(el("svg:text", { x: width / 2, y: height / 2 - 8, "text-anchor": "middle" }, "not seeded yet"));
  for (const u of data.users) {
    const label = u.segment === null ? "no segment yet" : `segment ${u.segment}: ${state.labels[u.segment] ?? ""}`;
    const dot = el("svg:circle", { class: "user", cx: x(u.x), cy: y(u.y), r: 3.5, fill: colour(u.segment), "fill-opacity": 0.55 });
    hover(dot, `${u.user_id} · ${label}`);
    shapes.push(dot);
  }
  for (const c of data.centroids) {
    const dot = el("svg:circle", { class: "centroid", cx: x(c.x), cy: y(c.y), r: 9, fill: colour(c.segment) });
    hover(dot, `centroid of segment ${c.segment}: ${c.label} (${c.size} users)`);
    dot.addEventListener("click", () => select(c.segment));
    const right = x(c.x) > width / 2;  // the label goes toward the middle, never past the edge
    const label = { class: "centroid-label", x: x(c.x) + (right ? -12 : 12), y: y(c.y) + 4, "text-anchor": right ? "end" : "start" };
    shapes.push(dot, el("svg:text", label, `${c.segment} ${c.label}`));
  }
  svg.replaceChildren(...shapes);
  const [first, second] = data.explained.map((e) => `${(100 * e).toFixed(0)}%`);
  document.getElementById("map-note").textContent = data.seeded
    ? `PCA of the centroids (${first} + ${second} of their variance) · ${data.users.length} users of this worker`
    : "drawn once the model is seeded";
  svg.dataset.drawn = String(data.seeded);
}

function hover(node, text) {
  const tip = document.getElementById("tooltip");
  node.addEventListener("mousemove", (event) => {
    const box = tip.parentElement.getBoundingClientRect();
    tip.textContent = text;
    tip.style.left = `${event.clientX - box.left + 12}px`;
    tip.style.top = `${event.clientY - box.top + 12}px`;
    tip.hidden = false;
  });
  node.addEventListener("mouseleave", () => { tip.hidden = true; });
}

function drawSizes(data) {
  const svg = document.getElementById("sizes");
  const [width, height, left, bottom] = [600, 220, 44, 22];
  const points = data.versions;
  const top = Math.max(1, ...points.flatMap((p) => p.sizes));
  const x = (i) => left + (points.length < 2 ? 0 : (i * (width - left - 10)) / (points.length - 1));
  const y = (n) => height - bottom - (n * (height - bottom - 10)) / top;
  const shapes = [
    el("svg:line", { class: "axis", x1: left, x2: width - 10, y1: y(0), y2: y(0), stroke: "#d9dee4" }),
    el("svg:text", { x: left - 6, y: y(top) + 4, "text-anchor": "end" }, String(top)),
    el("svg:text", { x: left - 6, y: y(0) + 4, "text-anchor": "end" }, "0"),
  ];
  const every = Math.max(1, Math.ceil(points.length / 10));  // at most about ten version labels
  points.forEach((p, i) => {
    if (i % every && i !== points.length - 1) return;
    const anchor = i === 0 ? "start" : i === points.length - 1 ? "end" : "middle";
    shapes.push(el("svg:text", { x: x(i), y: height - 4, "text-anchor": anchor }, `v${p.version}`));
  });
  for (let segment = 0; segment < data.k; segment++) {
    const path = points.map((p, i) => `${i ? "L" : "M"}${x(i).toFixed(1)},${y(p.sizes[segment]).toFixed(1)}`).join("");
    if (path) shapes.push(el("svg:path", { d: path, fill: "none", stroke: colour(segment), "stroke-width": 2 }));
    if (points.length === 1) shapes.push(el("svg:circle", { cx: x(0), cy: y(points[0].sizes[segment]), r: 3, fill: colour(segment) }));
  }
  svg.replaceChildren(...shapes);
}

function drawFeed(data) {
  const items = [
    ...data.changes.map((c) => ({ ts: c.ts, text: describeChange(c), model: false })),
    ...data.model_events.map((e) => ({ ts: e.ts, text: describeModelEvent(e), model: true })),
  ].sort((a, b) => Date.parse(b.ts) - Date.parse(a.ts)).slice(0, 30);
  const feed = document.getElementById("feed");
  feed.replaceChildren(...items.map((item) => {
    const li = el("li", { class: item.model ? "model" : "change" });
    li.append(el("time", { datetime: item.ts }, clock(item.ts)), item.text);
    return li;
  }));
  if (!items.length) feed.append(el("li", { class: "quiet" }, "No change or model event yet."));
}

function describeChange(c) {
  const where = (s) => (s === null ? "none" : `${s}`);
  return `${c.user_id}: ${where(c.previous_segment)} → ${where(c.segment)} (${c.reason}, v${c.model_version})`;
}

function describeModelEvent(e) {
  const detail = ["users", "moved_users"].filter((k) => e[k] !== undefined).map((k) => `${k.replace("_", " ")} ${e[k]}`);
  return `model ${e.event} → v${e.version}${detail.length ? ` (${detail.join(", ")})` : ""}`;
}

function select(segment) {
  state.selected = segment;
  for (const row of document.querySelectorAll("#segments tbody tr")) {
    row.classList.toggle("selected", Number(row.dataset.segment) === segment);
  }
  refreshPortrait();
}

// How much backs a portrait: effective events, and "thin" below the worker's floor.
function evidence(e) {
  if (!e) return "";
  return `${Math.round(e.events).toLocaleString()} events${e.thin ? " · thin" : ""}`;
}

// The portrait's lists as bars, in the order the worker ranked them; a list it does not send is left out.
function bars(title, rows, segment) {
  const box = el("div", { class: "bars" });
  box.append(el("h3", {}, title));
  const most = Math.max(...rows.map((r) => r.value), 1e-9);
  for (const r of rows) {
    const bar = el("div", { class: "bar", title: r.name });
    const track = el("div", { class: "track" });
    track.append(el("div", { class: "fill", style: `width:${(100 * r.value) / most}%;background:${colour(segment)}` }));
    bar.append(el("span", { class: "name" }, r.name), track, el("span", { class: "value" }, r.text));
    box.append(bar);
  }
  return box;
}

function drawPortrait(p) {
  const segment = state.selected;
  document.getElementById("portrait-title").textContent =
    `Portrait of segment ${segment}: ${p.label ?? ""} (${p.size ?? "?"} users, based on ${evidence(p.evidence)})`;
  const list = (name) => (Array.isArray(p[name]) ? p[name] : []);
  const number = (v) => (typeof v === "number" ? v : 0);
  const sections = [
    ["Terms (lift over everyone)", list("top_terms").map((t) => ({ name: t.term, value: number(t.lift), text: `${number(t.lift).toFixed(1)}×` }))],
    ["Categories (lift over everyone)", list("top_categories").map((c) => ({ name: c.category, value: number(c.lift), text: `${number(c.lift).toFixed(1)}×` }))],
    ["Most distinctive items (lift)", list("top_items").map((i) => ({ name: i.title || i.item_id, value: number(i.lift), text: `${number(i.lift).toFixed(1)}×` }))],
    ["Action mix", Object.entries(p.actions ?? {}).map(([a, v]) => {
      const share = typeof v === "number" ? v : number(v.share);
      return { name: a, value: share, text: `${(100 * share).toFixed(0)}%` };
    })],
  ].filter(([, rows]) => rows.length);
  const box = document.getElementById("portrait");
  box.replaceChildren(...sections.map(([title, rows]) => bars(title, rows, segment)));
  if (!sections.length) box.append(el("p", { class: "quiet" }, "Nothing counted in this segment yet."));
}

async function refreshPortrait() {
  if (state.selected === null) return;
  const asked = state.selected;
  const portrait = await get(`/segments/${asked}?top=8`);
  if (asked === state.selected) drawPortrait(portrait);
}

async function refresh() {
  const status = document.getElementById("status");
  try {
    const [segments, map, feed, sizes] = await Promise.all(
      ["/api/segments", "/api/map", "/api/feed", "/api/sizes"].map(get),
    );
    drawSegments(segments);
    drawMap(map);
    drawFeed(feed);
    drawSizes(sizes);
    await refreshPortrait();
    status.className = "";
    const seeded = segments.seeded ? "seeded" : `not seeded yet (${segments.users_waiting_for_seed} users waiting)`;
    status.textContent = `model v${segments.model_version} · ${seeded} · ` +
      `${segments.users} users in segments · updated ${new Date().toISOString().slice(0, 19)}Z`;
  } catch (error) {
    status.className = "error";
    status.textContent = `cannot read the worker: ${error.message}`;
  }
}

refresh();
setInterval(refresh, POLL_MS);
