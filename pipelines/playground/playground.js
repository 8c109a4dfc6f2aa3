// dlpipe playground: a 2-D classification network trained in the browser with TensorFlow.js (tf.min.js beside
// this file). Every setting is a URL parameter; window.playground exposes the state; data-done on <body> is set
// once `epochs` epochs have run. The data generators follow the TensorFlow Playground's (dataset.ts), drawn
// from a seeded generator, so a URL always gives the same points.
"use strict";

const FEATURES = {
  x: (x, y) => x, y: (x, y) => y, x2: (x, y) => x * x, y2: (x, y) => y * y,
  xy: (x, y) => x * y, sinx: (x, y) => Math.sin(x), siny: (x, y) => Math.sin(y),
};
const ACTIVATIONS = { relu: t => tf.relu(t), tanh: t => tf.tanh(t), sigmoid: t => tf.sigmoid(t), linear: t => t };
const DATASETS = ["circle", "xor", "gauss", "spiral"];
const DOMAIN = 6;  // points and the heat map span [-6, 6] on both axes, as in the Playground

function settingsFrom(query) {
  const p = new URLSearchParams(query);
  const num = (key, fallback) => (p.has(key) && p.get(key) !== "" ? Number(p.get(key)) : fallback);
  const list = (key, fallback) => (p.has(key) ? p.get(key) : fallback).split(",").map(s => s.trim()).filter(Boolean);
  const s = {
    dataset: p.get("dataset") || "circle", noise: num("noise", 0), train: num("train", 50), points: num("points", 500),
    features: list("features", "x,y"), layers: list("layers", "4,2").map(Number), activation: p.get("activation") || "tanh",
    lr: num("lr", 0.03), l1: num("l1", 0), l2: num("l2", 0), batch: num("batch", 10), epochs: num("epochs", 0),
    seed: num("seed", 1), autostart: p.get("autostart") === "1",
  };
  const problems = [];
  if (!DATASETS.includes(s.dataset)) problems.push(`dataset must be one of ${DATASETS.join(", ")}`);
  if (!(s.noise >= 0 && s.noise <= 50)) problems.push("noise is a percentage from 0 to 50");
  if (!(s.train >= 10 && s.train <= 90)) problems.push("train is the percentage of points for training, 10 to 90");
  if (!(Number.isInteger(s.points) && s.points >= 20 && s.points <= 5000)) problems.push("points: 20 to 5000");
  if (!s.features.length || s.features.some(f => !(f in FEATURES))) problems.push(`features among ${Object.keys(FEATURES).join(", ")}`);
  if (s.layers.some(n => !(Number.isInteger(n) && n >= 1 && n <= 64)) || s.layers.length > 8) problems.push("layers: up to 8 sizes, 1 to 64 each, e.g. 8,8");
  if (!(s.activation in ACTIVATIONS)) problems.push(`activation among ${Object.keys(ACTIVATIONS).join(", ")}`);
  if (!(s.lr > 0) || !(s.l1 >= 0) || !(s.l2 >= 0)) problems.push("lr > 0, l1 >= 0, l2 >= 0");
  if (!(Number.isInteger(s.batch) && s.batch >= 1) || !(Number.isInteger(s.epochs) && s.epochs >= 0)) problems.push("batch >= 1 and epochs >= 0, whole numbers");
  if (!Number.isInteger(s.seed)) problems.push("seed is a whole number");
  return { s, problems };
}

// --- data -------------------------------------------------------------------------------------------------
function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function generate(s) {
  const rand = mulberry32(s.seed), noise = s.noise / 100, n = s.points, out = [];
  const uniform = (a, b) => a + rand() * (b - a);
  const normal = (mean, variance) => {  // Box-Muller
    const u = 1 - rand(), v = rand();
    return mean + Math.sqrt(variance) * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
  const push = (x, y, label) => out.push({ x, y, label });
  if (s.dataset === "spiral") {
    for (const [delta, label] of [[0, 1], [Math.PI, 0]]) {
      for (let i = 0; i < n / 2; i++) {
        const r = i / (n / 2) * 5, t = 1.75 * i / (n / 2) * 2 * Math.PI + delta;
        push(r * Math.sin(t) + uniform(-1, 1) * noise, r * Math.cos(t) + uniform(-1, 1) * noise, label);
      }
    }
  } else if (s.dataset === "circle") {
    const radius = 5;
    for (const [low, high] of [[0, radius * 0.5], [radius * 0.7, radius]]) {
      for (let i = 0; i < n / 2; i++) {
        const r = uniform(low, high), angle = uniform(0, 2 * Math.PI);
        const x = r * Math.sin(angle), y = r * Math.cos(angle);
        const nx = uniform(-radius, radius) * noise, ny = uniform(-radius, radius) * noise;
        push(x, y, Math.hypot(x + nx, y + ny) < radius * 0.5 ? 1 : 0);
      }
    }
  } else if (s.dataset === "xor") {
    for (let i = 0; i < n; i++) {
      let x = uniform(-5, 5), y = uniform(-5, 5);
      x += x > 0 ? 0.3 : -0.3;
      y += y > 0 ? 0.3 : -0.3;
      const nx = uniform(-5, 5) * noise, ny = uniform(-5, 5) * noise;
      push(x, y, (x + nx) * (y + ny) >= 0 ? 1 : 0);
    }
  } else {
    const variance = 0.5 + noise / 0.5 * 3.5;
    for (const [c, label] of [[2, 1], [-2, 0]]) {
      for (let i = 0; i < n / 2; i++) push(normal(c, variance), normal(c, variance), label);
    }
  }
  for (let i = out.length - 1; i > 0; i--) {  // shuffle, then the first `train` percent train
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  const cut = Math.floor(out.length * s.train / 100);
  out.forEach((point, i) => { point.split = i < cut ? "train" : "test"; });
  return out;
}

function featureRows(points, features) {
  return points.map(p => features.map(f => FEATURES[f](p.x, p.y)));
}

// --- network: dense layers, Glorot-uniform kernels and zero biases (Keras' defaults), softmax over 2 classes -
function buildNetwork(s, rand) {
  const sizes = [s.features.length, ...s.layers, 2], weights = [];
  for (let i = 0; i + 1 < sizes.length; i++) {
    const limit = Math.sqrt(6 / (sizes[i] + sizes[i + 1]));
    const values = Array.from({ length: sizes[i] * sizes[i + 1] }, () => (rand() * 2 - 1) * limit);
    weights.push({ kernel: tf.variable(tf.tensor2d(values, [sizes[i], sizes[i + 1]])), bias: tf.variable(tf.zeros([sizes[i + 1]])) });
  }
  return weights;
}

function forward(weights, inputs, activation) {
  let h = inputs;
  weights.forEach((w, i) => {
    h = tf.add(tf.matMul(h, w.kernel), w.bias);
    h = i + 1 < weights.length ? ACTIVATIONS[activation](h) : tf.softmax(h);
  });
  return h;
}

function crossEntropy(probs, oneHot) {  // as Keras: probabilities clipped to [1e-7, 1 - 1e-7]
  return tf.neg(tf.mean(tf.sum(tf.mul(oneHot, tf.log(tf.clipByValue(probs, 1e-7, 1 - 1e-7))), 1)));
}

function penalty(weights, s) {
  let total = tf.scalar(0);
  for (const w of weights) {
    if (s.l1) total = tf.add(total, tf.mul(s.l1, tf.sum(tf.abs(w.kernel))));
    if (s.l2) total = tf.add(total, tf.mul(s.l2, tf.sum(tf.square(w.kernel))));
  }
  return total;
}

// --- the page ---------------------------------------------------------------------------------------------
const state = { epoch: 0, trainLoss: NaN, testLoss: NaN, testAccuracy: NaN, history: [], done: false, running: false, error: null };
window.playground = state;
let S, points, train, test, weights, optimizer, rand;

function tensorsOf(subset) {
  return { x: tf.tensor2d(featureRows(subset, S.features), [subset.length, S.features.length]),
           y: tf.oneHot(tf.tensor1d(subset.map(p => p.label), "int32"), 2).toFloat(), n: subset.length };
}

function reset() {
  if (weights) weights.forEach(w => { w.kernel.dispose(); w.bias.dispose(); });
  for (const t of [train, test]) if (t) { t.x.dispose(); t.y.dispose(); }
  points = generate(S);
  train = tensorsOf(points.filter(p => p.split === "train"));
  test = tensorsOf(points.filter(p => p.split === "test"));
  rand = mulberry32(S.seed + 1);
  weights = buildNetwork(S, rand);
  optimizer = tf.train.sgd(S.lr);
  Object.assign(state, { epoch: 0, history: [], done: false });
  document.body.removeAttribute("data-done");
  measure();
  draw();
}

function trainEpoch() {
  const order = Array.from({ length: train.n }, (_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  for (let start = 0; start < order.length; start += S.batch) {
    tf.tidy(() => {
      const index = tf.tensor1d(order.slice(start, start + S.batch), "int32");
      const x = tf.gather(train.x, index), y = tf.gather(train.y, index);
      optimizer.minimize(() => tf.add(crossEntropy(forward(weights, x, S.activation), y), penalty(weights, S)));
    });
  }
  state.epoch += 1;
}

function measure() {
  tf.tidy(() => {
    state.trainLoss = crossEntropy(forward(weights, train.x, S.activation), train.y).dataSync()[0];
    const probs = forward(weights, test.x, S.activation);
    state.testLoss = crossEntropy(probs, test.y).dataSync()[0];
    const right = tf.equal(tf.argMax(probs, 1), tf.argMax(test.y, 1)).toFloat().mean();
    state.testAccuracy = right.dataSync()[0];
  });
  state.history.push([state.epoch, state.trainLoss, state.testLoss]);
}

async function run() {
  state.running = true;
  document.getElementById("play").textContent = "Pause";
  while (state.running && !(S.epochs && state.epoch >= S.epochs)) {
    const started = performance.now();
    while (performance.now() - started < 60 && !(S.epochs && state.epoch >= S.epochs)) {
      trainEpoch();
      measure();
    }
    draw();
    await new Promise(resolve => setTimeout(resolve, 0));
  }
  if (S.epochs && state.epoch >= S.epochs) {
    state.done = true;
    document.body.dataset.done = "1";
  }
  state.running = false;
  document.getElementById("play").textContent = "Train";
}

// --- drawing: the class-1 probability as a heat map under the points, and the loss curves -------------------
const ORANGE = [245, 147, 34], BLUE = [8, 119, 189], WHITE = [232, 234, 235];
function colour(p) {  // 0 -> orange, 0.5 -> light grey, 1 -> blue
  const [a, b, t] = p < 0.5 ? [ORANGE, WHITE, p * 2] : [WHITE, BLUE, p * 2 - 1];
  return a.map((v, i) => Math.round(v + (b[i] - v) * t));
}

function draw() {
  const canvas = document.getElementById("boundary"), g = canvas.getContext("2d"), cells = 60;
  const grid = [];
  for (let r = 0; r < cells; r++) for (let c = 0; c < cells; c++) {
    grid.push({ x: -DOMAIN + (c + 0.5) * 2 * DOMAIN / cells, y: DOMAIN - (r + 0.5) * 2 * DOMAIN / cells });
  }
  const probs = tf.tidy(() => forward(weights, tf.tensor2d(featureRows(grid, S.features)), S.activation).dataSync());
  const image = g.createImageData(cells, cells);
  for (let i = 0; i < grid.length; i++) {
    const [r, gr, b] = colour(probs[2 * i + 1]);
    image.data.set([r, gr, b, 255], 4 * i);
  }
  const tile = document.createElement("canvas");
  tile.width = tile.height = cells;
  tile.getContext("2d").putImageData(image, 0, 0);
  g.imageSmoothingEnabled = true;
  g.drawImage(tile, 0, 0, canvas.width, canvas.height);
  const scale = canvas.width / (2 * DOMAIN);
  for (const p of points) {
    g.beginPath();
    g.arc((p.x + DOMAIN) * scale, (DOMAIN - p.y) * scale, 3.5, 0, 2 * Math.PI);
    g.fillStyle = `rgb(${(p.label ? BLUE : ORANGE).join(",")})`;
    g.fill();
    g.lineWidth = 1;
    g.strokeStyle = p.split === "train" ? "white" : "black";
    g.stroke();
  }
  drawLoss();
  document.getElementById("status").textContent = `epoch ${state.epoch}  ·  train loss ${state.trainLoss.toFixed(3)}` +
    `  ·  test loss ${state.testLoss.toFixed(3)}  ·  test accuracy ${(100 * state.testAccuracy).toFixed(1)}%`;
}

function drawLoss() {
  const canvas = document.getElementById("loss"), g = canvas.getContext("2d"), h = state.history;
  g.fillStyle = "white";
  g.fillRect(0, 0, canvas.width, canvas.height);
  if (h.length < 2) return;
  const top = Math.max(...h.map(row => Math.max(row[1], row[2])), 1e-3);
  for (const [column, style] of [[1, "#999"], [2, "#222"]]) {
    g.beginPath();
    h.forEach((row, i) => {
      const x = i / (h.length - 1) * canvas.width, y = canvas.height - row[column] / top * (canvas.height - 4);
      i ? g.lineTo(x, y) : g.moveTo(x, y);
    });
    g.strokeStyle = style;
    g.lineWidth = 2;
    g.stroke();
  }
}

// --- export: the points as CSV and the network as a `dlpipe run points` config -----------------------------
function exportFiles() {
  const csv = "x,y,label,split\n" + points.map(p => `${p.x},${p.y},${p.label},${p.split}`).join("\n") + "\n";
  const yaml = [
    `# dlpipe run points --data points.csv --config points.yaml`,
    `# from the dlpipe playground: ${S.dataset}, noise ${S.noise}%, ${S.train}% train, seed ${S.seed}`,
    `pipeline: points`, `task: points`, `seed: ${S.seed}`,
    `model:`, `  features: [${S.features.join(", ")}]`, `  layers: [${S.layers.join(", ")}]`,
    `  activation: ${S.activation}`, `  l1: ${S.l1}`, `  l2: ${S.l2}`,
    `train:`, `  epochs: ${S.epochs || Math.max(state.epoch, 1)}`, `  batch_size: ${S.batch}`, `  learning_rate: ${S.lr}`,
  ].join("\n") + "\n";
  return { csv, yaml };
}
state.exportFiles = exportFiles;

function download(name, text, type) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([text], { type }));
  link.download = name;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

// --- controls: each one rewrites the URL, so a setting is always shareable ------------------------------------
function fillControls() {
  for (const [id, value] of Object.entries({ dataset: S.dataset, noise: S.noise, train: S.train, layers: S.layers.join(","),
    activation: S.activation, lr: S.lr, l1: S.l1, l2: S.l2, batch: S.batch, epochs: S.epochs, seed: S.seed })) {
    document.getElementById(id).value = value;
  }
  for (const box of document.querySelectorAll("input[name=feature]")) box.checked = S.features.includes(box.value);
}

function queryOfControls() {
  const p = new URLSearchParams();
  for (const id of ["dataset", "noise", "train", "layers", "activation", "lr", "l1", "l2", "batch", "epochs", "seed"]) {
    p.set(id, document.getElementById(id).value);
  }
  p.set("features", Array.from(document.querySelectorAll("input[name=feature]:checked")).map(b => b.value).join(","));
  p.set("points", S.points);
  return "?" + p.toString();
}

function applyQuery(query) {
  const { s, problems } = settingsFrom(query);
  const box = document.getElementById("problems");
  box.textContent = problems.length ? "Check the settings: " + problems.join("; ") : "";
  if (problems.length) {
    state.error = problems.join("; ");
    return false;
  }
  state.error = null;
  S = s;
  return true;
}

function start() {
  tf.setBackend("cpu");  // tiny networks: the CPU backend beats WebGL's per-call overhead, and needs no GPU
  const holder = document.getElementById("features");
  for (const name of Object.keys(FEATURES)) {
    holder.insertAdjacentHTML("beforeend", `<label><input type="checkbox" name="feature" value="${name}"> ${name}</label> `);
  }
  if (!applyQuery(location.search)) {  // a bad URL: say what is wrong, and show the defaults meanwhile
    const error = state.error;
    applyQuery("");
    state.error = error;
    document.getElementById("problems").textContent = `Check the URL's settings: ${error} (defaults shown)`;
  }
  fillControls();
  reset();
  document.getElementById("play").onclick = () => (state.running ? (state.running = false) : run());
  document.getElementById("reset").onclick = () => {
    state.running = false;
    if (applyQuery(queryOfControls())) {
      history.replaceState(null, "", queryOfControls());
      reset();
    }
  };
  document.getElementById("export").onclick = () => {
    const files = exportFiles();
    download("points.csv", files.csv, "text/csv");
    download("points.yaml", files.yaml, "application/x-yaml");
  };
  if (S.autostart) run();
}

if (typeof tf === "undefined") {
  document.getElementById("problems").textContent = "tf.min.js did not load: write the page again with dlpipe playground";
} else {
  start();
}
