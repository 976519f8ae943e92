// The QuakeLake events page: map, depth section, table, one event's origin, magnitudes and
// picks on its waveforms. Everything comes from this service (no CDN); it polls /api/state and
// reloads the events when a new snapshot reaches the lake.
"use strict";

const POLL_MS = 3000;
const DEPTH_STOPS = [[0, "#fde725"], [5, "#7ad151"], [10, "#22a884"], [15, "#2a788e"], [20, "#414487"], [30, "#440154"]];
const state = { snapshot: null, events: [], markers: new Map(), selected: null, known: new Set() };

function depthColour(depth) {
  if (depth === null || depth === undefined) return "#888";
  let colour = DEPTH_STOPS[0][1];
  for (const [d, c] of DEPTH_STOPS) if (depth >= d) colour = c;
  return colour;
}
function radius(mag) { return mag === null || mag === undefined ? 4 : Math.max(3, 3 + 2.5 * mag); }
function fmt(x, digits) { return x === null || x === undefined ? "" : Number(x).toFixed(digits); }
function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
async function getJSON(url) {
  const r = await fetch(url, { cache: "no-store" });
  if (!r.ok) throw new Error((await r.text()).split("\n\n")[1] || r.statusText);
  return r.json();
}

const map = L.map("map", { worldCopyJump: true, preferCanvas: false }).setView([20, 0], 2);
const eventLayer = L.layerGroup().addTo(map);
const stationLayer = L.layerGroup().addTo(map);

async function setupMap() {
  const config = await getJSON("/api/config");
  if (config.tiles) {
    L.tileLayer(config.tiles, { maxZoom: 18, attribution: "map tiles: " + new URL(config.tiles.replace("{s}", "a")).host }).addTo(map);
  }
  const world = await getJSON("/static/vendor/world-atlas/countries-50m.json");
  const countries = topojson.feature(world, world.objects.countries);
  L.geoJSON(countries, { style: { color: "#777", weight: 0.7, fillColor: "#f2efe6", fillOpacity: config.tiles ? 0 : 1 }, interactive: false }).addTo(map);
  map.attributionControl.addAttribution("Natural Earth (world-atlas)");
  const stations = await getJSON("/api/stations");
  for (const s of stations) {
    if (s.latitude === null) continue;
    L.marker([s.latitude, s.longitude], {
      icon: L.divIcon({ className: "station-icon ql-station", html: "&#9650;", iconSize: [12, 12] }),
      title: `${s.network}.${s.station}`,
    }).addTo(stationLayer);
  }
  const catalogs = await getJSON("/api/catalogs");
  const select = document.getElementById("f-catalog");
  for (const c of catalogs) select.appendChild(el("option", { value: c.catalog }, `${c.catalog} (${c.events})`));
  legend();
}

function legend() {
  const box = document.getElementById("legend");
  box.textContent = "depth (km):";
  for (const [d, c] of DEPTH_STOPS) {
    box.appendChild(el("span", { class: "swatch", style: `background:${c}` }));
    box.appendChild(document.createTextNode(`${d}+`));
  }
  box.appendChild(document.createTextNode("   size: magnitude   \u25B2 station"));
}

function query() {
  const p = new URLSearchParams();
  const v = (id) => document.getElementById(id).value;
  if (v("f-start")) p.set("starttime", v("f-start") + "T00:00:00");
  if (v("f-end")) p.set("endtime", v("f-end") + "T23:59:59");
  if (v("f-minmag")) p.set("minmagnitude", v("f-minmag"));
  if (v("f-catalog")) p.set("catalog", v("f-catalog"));
  return p.toString();
}

async function loadEvents(fit) {
  const answer = await getJSON("/api/events?" + query());
  const fresh = state.snapshot !== null;
  state.snapshot = answer.snapshot;
  state.events = answer.events;
  drawEvents(fresh);
  drawSection();
  drawTable(fresh);
  for (const e of state.events) state.known.add(e.event_id);
  document.getElementById("count").textContent = `(${state.events.length})`;
  document.getElementById("status").textContent = `${state.events.length} events, lake snapshot ${answer.snapshot}, ${new Date().toISOString().slice(11, 19)} UTC`;
  if (fit) fitMap();
}

function fitMap() {
  const pts = state.events.map((e) => [e.latitude, e.longitude]);
  stationLayer.eachLayer((m) => pts.push([m.getLatLng().lat, m.getLatLng().lng]));
  if (pts.length) map.fitBounds(L.latLngBounds(pts).pad(0.15), { maxZoom: 11 });
}

function drawEvents() {
  eventLayer.clearLayers();
  state.markers.clear();
  // large first, so small events stay clickable on top
  const sorted = [...state.events].sort((a, b) => (b.magnitude ?? 0) - (a.magnitude ?? 0));
  for (const e of sorted) {
    const m = L.circleMarker([e.latitude, e.longitude], {
      radius: radius(e.magnitude), color: "#222", weight: 0.8, fillColor: depthColour(e.depth_km), fillOpacity: 0.85,
      className: "ql-event",
    });
    m.bindTooltip(`${e.time.slice(0, 19)}  M${fmt(e.magnitude, 1)}  ${fmt(e.depth_km, 1)} km`);
    m.on("click", () => selectEvent(e.event_id));
    m.addTo(eventLayer);
    m.getElement && m.getElement() && m.getElement().setAttribute("data-event-id", e.event_id);
    state.markers.set(e.event_id, m);
  }
}

function drawSection() {
  const svg = document.getElementById("section");
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const w = svg.clientWidth || 600, h = svg.clientHeight || 170, pad = 34;
  const evs = state.events.filter((e) => e.depth_km !== null);
  if (!evs.length) return;
  let lo = Math.min(...evs.map((e) => e.longitude)), hi = Math.max(...evs.map((e) => e.longitude));
  if (hi - lo < 0.01) { lo -= 0.05; hi += 0.05; }
  const zmax = Math.max(5, ...evs.map((e) => e.depth_km)) * 1.1;
  const ns = "http://www.w3.org/2000/svg";
  const add = (tag, attrs, text) => { const n = document.createElementNS(ns, tag); for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v); if (text !== undefined) n.textContent = text; svg.appendChild(n); return n; };
  const x = (lon) => pad + (lon - lo) / (hi - lo) * (w - 2 * pad);
  const y = (z) => 10 + Math.max(z, 0) / zmax * (h - 34);
  add("line", { x1: pad, y1: y(0), x2: w - pad, y2: y(0), stroke: "#999" });
  for (let k = 0; k <= 4; k++) {
    const z = zmax * k / 4;
    add("text", { x: 2, y: y(z) + 4, "font-size": 10, fill: "#555" }, `${z.toFixed(0)} km`);
  }
  add("text", { x: pad, y: h - 4, "font-size": 10, fill: "#555" }, `${lo.toFixed(2)}\u00B0`);
  add("text", { x: w - pad - 40, y: h - 4, "font-size": 10, fill: "#555" }, `${hi.toFixed(2)}\u00B0 lon`);
  for (const e of evs) {
    const c = add("circle", { cx: x(e.longitude), cy: y(e.depth_km), r: radius(e.magnitude) * 0.8, fill: depthColour(e.depth_km), stroke: "#222", "stroke-width": 0.6, class: "ql-section-event" });
    c.addEventListener("click", () => selectEvent(e.event_id));
  }
}

function drawTable(fresh) {
  const body = document.querySelector("#events tbody");
  body.textContent = "";
  for (const e of state.events) {
    const tr = el("tr", { "data-event-id": e.event_id });
    if (fresh && !state.known.has(e.event_id)) tr.classList.add("new");
    if (e.event_id === state.selected) tr.classList.add("selected");
    for (const text of [e.time.slice(0, 22), fmt(e.latitude, 4), fmt(e.longitude, 4), fmt(e.depth_km, 1), `${fmt(e.magnitude, 2)} ${e.magnitude_type || ""}`, e.catalog, e.n_picks ?? ""]) tr.appendChild(el("td", {}, String(text)));
    tr.addEventListener("click", () => selectEvent(e.event_id));
    body.appendChild(tr);
  }
}

async function selectEvent(id) {
  state.selected = id;
  history.replaceState(null, "", "#event=" + encodeURIComponent(id));
  document.querySelectorAll("#events tr.selected").forEach((r) => r.classList.remove("selected"));
  const row = document.querySelector(`#events tr[data-event-id="${CSS.escape(id)}"]`);
  if (row) { row.classList.add("selected"); row.scrollIntoView({ block: "nearest" }); }
  const box = document.getElementById("event");
  box.textContent = "loading\u2026";
  const q = "eventid=" + encodeURIComponent(id);
  let ev;
  try { ev = await getJSON("/api/event?" + q); } catch (err) { box.textContent = String(err); return; }
  const o = ev.origin;
  box.textContent = "";
  box.appendChild(el("h2", { id: "event-title" }, `Event ${o.event_id}`));
  const dl = el("dl");
  const rows = [
    ["origin time", o.time], ["latitude", `${fmt(o.latitude, 5)}\u00B0 \u00B1 ${fmt(o.latitude_uncertainty_km, 2)} km`],
    ["longitude", `${fmt(o.longitude, 5)}\u00B0 \u00B1 ${fmt(o.longitude_uncertainty_km, 2)} km`],
    ["depth", `${fmt(o.depth_km, 2)} km \u00B1 ${fmt(o.vertical_uncertainty_km, 2)} km`],
    ["magnitude", `${fmt(o.magnitude, 2)} ${o.magnitude_type || ""} \u00B1 ${fmt(o.magnitude_uncertainty, 2)} (${o.magnitude_station_count ?? 0} stations)`],
    ["picks", `${o.n_picks} (${o.n_p} P, ${o.n_s} S) on ${o.n_stations} stations, rms ${fmt(o.rms_residual_s, 2)} s`],
    ["azimuthal gap", `${fmt(o.azimuthal_gap_deg, 0)}\u00B0, ${o.location_quality || ""}`],
    ["catalogue", `${o.catalog} (run ${o.run_id})`],
  ];
  for (const [k, v] of rows) { dl.appendChild(el("dt", {}, k)); dl.appendChild(el("dd", {}, v)); }
  box.appendChild(dl);
  if (ev.station_magnitudes.length) {
    const t = el("table", { class: "station-mags" });
    t.appendChild(el("tr")).append(el("th", {}, "station"), el("th", {}, "ML"), el("th", {}, "epicentral km"), el("th", {}, "amplitude m"));
    for (const m of ev.station_magnitudes) t.appendChild(el("tr")).append(el("td", {}, m.station_id), el("td", {}, fmt(m.magnitude, 2)), el("td", {}, fmt(m.epicentral_km, 1)), el("td", {}, m.amplitude_m === null ? "" : Number(m.amplitude_m).toExponential(2)));
    box.appendChild(t);
  }
  box.appendChild(el("h2", {}, "Picks on the waveforms"));
  const img = el("img", { id: "waveforms", alt: `waveforms of ${o.event_id} with its picks` });
  img.src = "/api/waveforms.png?" + q;
  box.appendChild(img);
  const qml = el("a", { href: `/fdsnws/event/1/query?eventid=${encodeURIComponent(o.event_id)}&includearrivals=true&includeallmagnitudes=true` }, "QuakeML of this event");
  box.appendChild(qml);
  const marker = state.markers.get(id);
  if (marker) marker.openTooltip();
}

async function poll() {
  try {
    const s = await getJSON("/api/state");
    if (s.snapshot !== state.snapshot) await loadEvents(false);
  } catch (err) {
    document.getElementById("status").textContent = "lake unreachable: " + err.message;
  }
  setTimeout(poll, POLL_MS);
}

document.getElementById("filters").addEventListener("submit", (ev) => { ev.preventDefault(); state.snapshot = null; state.known.clear(); loadEvents(true); });
function fromHash() {
  const m = /^#event=(.+)$/.exec(location.hash);
  if (m) selectEvent(decodeURIComponent(m[1]));
}
window.addEventListener("hashchange", fromHash);
setupMap().then(() => loadEvents(true)).then(() => { fromHash(); setTimeout(poll, POLL_MS); }).catch((err) => {
  document.getElementById("status").textContent = "error: " + err.message;
});
