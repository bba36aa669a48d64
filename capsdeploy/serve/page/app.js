// The page is a V2 client like any other: it reads the model's metadata and config, sends
// the drawn digit to /v2/models/capsnet/infer and re-decodes the (perturbed) winning pose
// through /v2/models/capsnet_decoder/infer. No build step, no third-party code.
"use strict";

// A CapsNet repository serves "capsnet" (and its decoder); a baseline CNN run, "cnn_baseline"
// (scores only: no poses, no reconstruction).
const MODELS = ["capsnet", "cnn_baseline"];
let MODEL = MODELS[0];
const DECODER = "capsnet_decoder";
const SLIDER_RANGE = 0.25; // the paper's Figure 4 perturbs each dimension by -0.25..0.25

const $ = (id) => document.getElementById(id);
const pad = $("pad");
const padCtx = pad.getContext("2d", { willReadFrequently: true });
const state = {
  input: null, // {name, datatype, channels, height, width}
  norm: { scale: 1 / 255, mean: [0], std: [1] },
  classes: [],
  hasDecoder: false,
  capsules: true, // the model returns poses
  poses: null, // [classes][dim]
  winner: -1,
  delta: [],
  predictions: 0,
  decodes: 0,
};

function status(text, isError) {
  const el = $("status");
  el.textContent = text;
  el.style.color = isError ? "#b00020" : "";
}

async function getJSON(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r.json();
}

async function infer(model, inputs, outputs) {
  const r = await fetch(`/v2/models/${model}/infer`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ inputs, outputs: outputs.map((name) => ({ name })) }),
  });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || `HTTP ${r.status}`);
  const out = {};
  for (const o of body.outputs) out[o.name] = o;
  return out;
}

async function init() {
  for (const name of MODELS) {
    if ((await fetch(`/v2/models/${name}/ready`)).ok) {
      MODEL = name;
      break;
    }
  }
  const meta = await getJSON(`/v2/models/${MODEL}`);
  state.capsules = meta.outputs.some((o) => o.name === "poses");
  const inp = meta.inputs[0];
  const [, c, h, w] = inp.shape;
  state.input = { name: inp.name, datatype: inp.datatype, channels: c, height: h, width: w };
  const config = await getJSON(`/v2/models/${MODEL}/config`);
  const params = config.parameters || {};
  if (params["capsdeploy.normalization"]) state.norm = JSON.parse(params["capsdeploy.normalization"].string_value);
  const scoresOut = meta.outputs.find((o) => o.name === "scores");
  const n = scoresOut.shape[scoresOut.shape.length - 1];
  state.classes = params["capsdeploy.class_names"]
    ? JSON.parse(params["capsdeploy.class_names"].string_value)
    : Array.from({ length: n }, (_, i) => String(i));
  state.hasDecoder = state.capsules && (await fetch(`/v2/models/${DECODER}`)).ok;
  buildBars();
  clearPad();
  status(
    `model ${meta.name} v${meta.versions[0]} (${meta.platform}), input ${inp.datatype} ${JSON.stringify(inp.shape)}` +
      (state.hasDecoder ? "" : state.capsules ? " - no capsnet_decoder model: sliders disabled" : " - no capsules: scores only"),
  );
}

function buildBars() {
  const bars = $("bars");
  bars.innerHTML = "";
  state.classes.forEach((name) => {
    const row = document.createElement("div");
    row.className = "bar";
    row.innerHTML = `<span class="label"></span><div class="track"><div class="fill"></div></div><span class="value">-</span>`;
    row.querySelector(".label").textContent = name;
    bars.appendChild(row);
  });
}

function clearPad() {
  padCtx.fillStyle = "#000";
  padCtx.fillRect(0, 0, pad.width, pad.height);
}

// -- drawing ------------------------------------------------------------------
let drawing = false;
let last = null;
function pos(e) {
  const r = pad.getBoundingClientRect();
  return [((e.clientX - r.left) * pad.width) / r.width, ((e.clientY - r.top) * pad.height) / r.height];
}
pad.addEventListener("pointerdown", (e) => {
  drawing = true;
  last = pos(e);
  pad.setPointerCapture(e.pointerId);
});
pad.addEventListener("pointermove", (e) => {
  if (!drawing) return;
  const p = pos(e);
  padCtx.strokeStyle = "#fff";
  padCtx.lineWidth = 18;
  padCtx.lineCap = "round";
  padCtx.beginPath();
  padCtx.moveTo(last[0], last[1]);
  padCtx.lineTo(p[0], p[1]);
  padCtx.stroke();
  last = p;
});
for (const ev of ["pointerup", "pointercancel"]) {
  pad.addEventListener(ev, () => {
    if (!drawing) return;
    drawing = false;
    classify().catch((err) => status(String(err.message || err), true));
  });
}
$("clear").addEventListener("click", () => {
  clearPad();
  state.poses = null;
});
$("reset").addEventListener("click", () => {
  state.delta = state.delta.map(() => 0);
  document.querySelectorAll("#sliders input").forEach((s) => (s.value = 0));
  decode();
});

// -- dropping an image -----------------------------------------------------------
pad.addEventListener("dragover", (e) => {
  e.preventDefault();
  pad.classList.add("drop");
});
pad.addEventListener("dragleave", () => pad.classList.remove("drop"));
pad.addEventListener("drop", (e) => {
  e.preventDefault();
  pad.classList.remove("drop");
  const file = e.dataTransfer.files[0];
  if (!file) return;
  const img = new Image();
  img.onload = () => {
    clearPad();
    const s = Math.min(pad.width / img.width, pad.height / img.height);
    const w = img.width * s;
    const h = img.height * s;
    padCtx.drawImage(img, (pad.width - w) / 2, (pad.height - h) / 2, w, h);
    URL.revokeObjectURL(img.src);
    classify().catch((err) => status(String(err.message || err), true));
  };
  img.onerror = () => status(`${file.name}: not an image the browser can read`, true);
  img.src = URL.createObjectURL(file);
});

// -- preprocessing: MNIST's convention (ink box scaled into 20x20, centred by mass in 28x28) --
function gray(data, i, invert) {
  const v = (data[i] + data[i + 1] + data[i + 2]) / 3;
  return invert ? 255 - v : v;
}

function toPixels() {
  const { height: H, width: W } = state.input;
  const invert = $("invert").checked;
  const src = padCtx.getImageData(0, 0, pad.width, pad.height).data;
  let x0 = pad.width, y0 = pad.height, x1 = -1, y1 = -1;
  for (let y = 0; y < pad.height; y++) {
    for (let x = 0; x < pad.width; x++) {
      if (gray(src, (y * pad.width + x) * 4, invert) > 40) {
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
      }
    }
  }
  const out = new Float32Array(H * W);
  if (x1 < 0) return out;
  const box = Math.round((20 / 28) * Math.min(H, W));
  const bw = x1 - x0 + 1, bh = y1 - y0 + 1;
  const s = box / Math.max(bw, bh);
  const small = document.createElement("canvas");
  small.width = W;
  small.height = H;
  const sctx = small.getContext("2d", { willReadFrequently: true });
  sctx.fillStyle = invert ? "#fff" : "#000";
  sctx.fillRect(0, 0, W, H);
  sctx.imageSmoothingEnabled = true;
  sctx.imageSmoothingQuality = "high";
  sctx.drawImage(pad, x0, y0, bw, bh, (W - bw * s) / 2, (H - bh * s) / 2, bw * s, bh * s);
  const d = sctx.getImageData(0, 0, W, H).data;
  let mass = 0, mx = 0, my = 0;
  for (let i = 0; i < H * W; i++) {
    const v = gray(d, i * 4, invert);
    out[i] = v;
    mass += v;
    mx += v * (i % W);
    my += v * Math.floor(i / W);
  }
  const dx = Math.round((W - 1) / 2 - mx / mass);
  const dy = Math.round((H - 1) / 2 - my / mass);
  const shifted = new Float32Array(H * W);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const sx = x - dx, sy = y - dy;
      if (sx >= 0 && sx < W && sy >= 0 && sy < H) shifted[y * W + x] = out[sy * W + sx];
    }
  }
  return shifted;
}

function modelInput(pixels) {
  const { name, datatype, channels: C, height: H, width: W } = state.input;
  const data = new Array(C * H * W);
  for (let c = 0; c < C; c++) {
    const mean = state.norm.mean[c % state.norm.mean.length];
    const std = state.norm.std[c % state.norm.std.length];
    for (let i = 0; i < H * W; i++) {
      const p = Math.round(pixels[i]);
      data[c * H * W + i] = datatype === "UINT8" ? p : (p * state.norm.scale - mean) / std;
    }
  }
  return { name, datatype, shape: [1, C, H, W], data };
}

// -- classify and decode -----------------------------------------------------------
async function classify() {
  const out = await infer(MODEL, [modelInput(toPixels())], state.capsules ? ["scores", "poses"] : ["scores"]);
  const scores = out.scores.data;
  state.winner = scores.indexOf(Math.max(...scores));
  showScores(scores);
  state.predictions += 1;
  document.body.dataset.predictions = state.predictions;
  if (!state.capsules) return;
  const [, k, dim] = out.poses.shape;
  state.poses = Array.from({ length: k }, (_, i) => out.poses.data.slice(i * dim, (i + 1) * dim));
  if (state.delta.length !== dim) buildSliders(dim);
  await decode();
}

function showScores(scores) {
  document.querySelectorAll("#bars .bar").forEach((row, i) => {
    row.classList.toggle("win", i === state.winner);
    row.querySelector(".fill").style.width = `${Math.min(1, scores[i]) * 100}%`;
    row.querySelector(".value").textContent = scores[i].toFixed(3);
  });
  const what = state.capsules ? "capsule length" : "probability";
  $("verdict").textContent = `${state.classes[state.winner]} (${what} ${scores[state.winner].toFixed(3)})`;
}

function buildSliders(dim) {
  const box = $("sliders");
  box.innerHTML = "";
  state.delta = new Array(dim).fill(0);
  for (let j = 0; j < dim; j++) {
    const label = document.createElement("label");
    label.textContent = `d${j + 1}`;
    const s = document.createElement("input");
    Object.assign(s, { type: "range", min: -SLIDER_RANGE, max: SLIDER_RANGE, step: 0.01, value: 0 });
    s.disabled = !state.hasDecoder;
    s.addEventListener("input", () => {
      state.delta[j] = parseFloat(s.value);
      decode();
    });
    label.appendChild(s);
    box.appendChild(label);
  }
}

let decoding = false;
let again = false;
async function decode() {
  if (!state.hasDecoder || !state.poses) return;
  if (decoding) {
    again = true; // coalesce slider storms: decode the latest pose once the current one is back
    return;
  }
  decoding = true;
  try {
    const k = state.poses.length, dim = state.poses[0].length;
    const masked = new Array(k * dim).fill(0);
    for (let j = 0; j < dim; j++) masked[state.winner * dim + j] = state.poses[state.winner][j] + state.delta[j];
    const out = await infer(DECODER, [{ name: "poses", datatype: "FP32", shape: [1, k, dim], data: masked }], [
      "reconstruction",
    ]);
    drawReconstruction(out.reconstruction.data);
    state.decodes += 1;
    document.body.dataset.decodes = state.decodes;
  } catch (err) {
    status(String(err.message || err), true);
  } finally {
    decoding = false;
    if (again) {
      again = false;
      decode();
    }
  }
}

function drawReconstruction(values) {
  const { channels: C, height: H, width: W } = state.input;
  const small = document.createElement("canvas");
  small.width = W;
  small.height = H;
  const ctx = small.getContext("2d");
  const img = ctx.createImageData(W, H);
  for (let i = 0; i < H * W; i++) {
    for (let c = 0; c < 3; c++) {
      const v = values[(C === 3 ? c : 0) * H * W + i];
      img.data[i * 4 + c] = Math.max(0, Math.min(255, Math.round(v * 255)));
    }
    img.data[i * 4 + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  const recon = $("recon");
  const rctx = recon.getContext("2d");
  rctx.imageSmoothingEnabled = false;
  rctx.drawImage(small, 0, 0, recon.width, recon.height);
}

init().catch((err) => status(`cannot reach the model: ${err.message || err}`, true));
