// The explorer page's script: it draws the data Python wrote into #explorer-data and reacts.
// One state object; every view redraws from it (render). User strings (names, scopes, run
// and snapshot labels, tokens) are only ever set as text (textContent), never as HTML.
(function () {
  "use strict";
  const DATA = JSON.parse(document.getElementById("explorer-data").textContent);
  const NO_GRAD = ["#eeeeee", "#777777"];   // fill and font of a node without gradient (model.py)
  const VIRIDIS = ["#440154", "#481a6c", "#472f7d", "#414487", "#39568c", "#31688e", "#2a788e",
                   "#23888e", "#1f988b", "#22a884", "#35b779", "#54c568", "#7ad151", "#a5db36",
                   "#d2e21b", "#fde725"];
  const PLAY_MS = 500;

  // position: 0 ... T-1 is forward at t = times[position]; T ... 2T-1 backward, t from T-1 down.
  // hover: the step t pointed at in any view; chosen: which item each time panel shows;
  // colourBy, unit: what colours the tokens (-1: connectivity, else an item of the run's units;
  // null until the page first draws them).
  const state = {snapshot: 0, run: 0, position: 0, selected: null, hover: null, playing: null,
                 chosen: {norms: 0, weights: 0, gates: 0}, colourBy: null, unit: 0};

  // ------------------------------------------------------------------ small helpers

  function el(tag, attributes, text) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes || {})) node.setAttribute(key, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function fmt(x) {
    if (x === null || x === undefined) return "-";
    if (typeof x === "string") return x;
    return Number(x).toPrecision(3).replace(/\.?0+(e|$)/, "$1");
  }
  function within(scope, prefix) {   // bptt's rule: a prefix by whole parts
    return prefix === undefined || prefix === null || scope === prefix || scope.startsWith(prefix + "/");
  }
  function run() { return DATA.snapshots[state.snapshot].runs[state.run]; }
  function phaseAndTime() {
    const times = run().times, count = times.length;
    if (state.position < count) return ["forward", times[state.position]];
    return ["backward", times[2 * count - 1 - state.position]];
  }
  function isLit(node, phase, t) {
    return phase === "forward" ? node.fwd <= t : node.bwd !== null && node.bwd >= t;
  }

  // ------------------------------------------------------------------ the graphs (SVG)

  const graphs = DATA.svgs.map(parseSvg);

  function parseSvg(text) {
    const svg = document.importNode(
      new DOMParser().parseFromString(text, "image/svg+xml").documentElement, true);
    // Graphviz writes no script or handler; this keeps it so whatever the text held.
    for (const bad of svg.querySelectorAll("script, foreignObject")) bad.remove();
    for (const node of svg.querySelectorAll("*")) {
      for (const attribute of Array.from(node.attributes)) {
        if (/^on|href$/i.test(attribute.name)) node.removeAttribute(attribute.name);
      }
    }
    const nodes = {}, boxes = {};
    for (const g of svg.querySelectorAll("g.node")) {
      const title = g.querySelector("title");
      const shape = Array.from(g.querySelectorAll("polygon, path, ellipse"))
        .find(s => s.getAttribute("fill") && s.getAttribute("fill") !== "none");
      const texts = Array.from(g.querySelectorAll("text"));
      nodes[title.textContent] = {g, title, shape, texts, fill: shape ? shape.getAttribute("fill") : null,
                                  font: texts.map(t => t.getAttribute("fill") || "#000000")};
      g.setAttribute("data-key", title.textContent);
    }
    for (const g of svg.querySelectorAll("g.cluster")) boxes[g.querySelector("title").textContent] = g;
    const box = svg.viewBox.baseVal;
    const view = {x: box.x, y: box.y, width: box.width, height: box.height};
    svg.removeAttribute("width");
    svg.removeAttribute("height");
    svg.setAttribute("class", "graph");
    return {svg, nodes, boxes, view, home: Object.assign({}, view), tooltipsOf: null};
  }

  function setView(graph) {
    const v = graph.view;
    graph.svg.setAttribute("viewBox", `${v.x} ${v.y} ${v.width} ${v.height}`);
  }

  function panAndZoom(pane) {
    let drag = null;
    pane.addEventListener("wheel", event => {
      event.preventDefault();
      const graph = graphs[run().svg], v = graph.view, rect = graph.svg.getBoundingClientRect();
      const scale = Math.exp(event.deltaY * 0.0015);
      const fx = (event.clientX - rect.left) / rect.width, fy = (event.clientY - rect.top) / rect.height;
      const width = v.width * scale, height = v.height * scale;
      v.x += (v.width - width) * fx; v.y += (v.height - height) * fy;
      v.width = width; v.height = height;
      setView(graph);
    }, {passive: false});
    pane.addEventListener("pointerdown", event => {
      drag = {x: event.clientX, y: event.clientY, moved: false};
    });
    window.addEventListener("pointermove", event => {
      if (!drag) return;
      const graph = graphs[run().svg], v = graph.view, rect = graph.svg.getBoundingClientRect();
      const dx = event.clientX - drag.x, dy = event.clientY - drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
      if (!drag.moved) return;
      const per = Math.max(v.width / rect.width, v.height / rect.height);
      v.x -= dx * per; v.y -= dy * per;
      drag.x = event.clientX; drag.y = event.clientY;
      setView(graph);
    });
    window.addEventListener("pointerup", () => { setTimeout(() => { drag = null; }, 0); });
    pane.addEventListener("click", event => {
      if (drag && drag.moved) return;
      const g = event.target.closest("g.node");
      if (g && run().nodes[g.getAttribute("data-key")]) choose(g.getAttribute("data-key"));
    });
  }

  // ------------------------------------------------------------------ the page's parts

  const parts = {};

  function build() {
    const top = el("header");
    top.append(el("h1", {}, "tinygrad_rnn explorer"));
    parts.snapshot = el("div", {class: "snapshots"});
    parts.snapshotSlider = el("input", {type: "range", min: "0", step: "1", id: "snapshot-slider",
                                        max: String(DATA.snapshots.length - 1), value: "0"});
    parts.snapshotLabel = el("span", {class: "snapshot-label", id: "snapshot-label"});
    parts.snapshotSlider.addEventListener("input", () => setSnapshot(Number(parts.snapshotSlider.value)));
    parts.snapshot.append(el("span", {}, "training: "), parts.snapshotSlider, parts.snapshotLabel);
    if (DATA.snapshots.length < 2) parts.snapshot.hidden = true;
    parts.runs = el("nav", {class: "runs", id: "runs"});
    top.append(parts.snapshot, parts.runs);

    const controls = el("div", {class: "controls"});
    parts.back = el("button", {id: "step-back", title: "step back (left arrow)"}, "◀");
    parts.play = el("button", {id: "play", title: "play / pause (space)"}, "▶ play");
    parts.next = el("button", {id: "step-next", title: "step (right arrow)"}, "▶|");
    parts.scrubber = el("input", {type: "range", min: "0", step: "1", id: "scrubber", value: "0"});
    parts.phase = el("span", {class: "phase", id: "phase"});
    parts.back.addEventListener("click", () => move(-1));
    parts.next.addEventListener("click", () => move(1));
    parts.play.addEventListener("click", togglePlay);
    parts.scrubber.addEventListener("input", () => {
      state.position = Number(parts.scrubber.value);
      render();
    });
    parts.fit = el("button", {id: "fit", title: "show the whole graph"}, "fit");
    parts.fit.addEventListener("click", () => {
      const graph = graphs[run().svg];
      graph.view = Object.assign({}, graph.home);
      setView(graph);
    });
    controls.append(parts.back, parts.play, parts.next, parts.scrubber, parts.phase, parts.fit);

    parts.note = el("p", {class: "note", id: "note"});
    parts.legend = el("div", {class: "legend", id: "legend"});
    parts.pane = el("div", {class: "pane", id: "graph"});
    parts.panel = el("aside", {class: "panel", id: "panel"});
    const main = el("main");
    main.append(parts.pane, parts.panel);
    parts.times = el("section", {class: "time-panels", id: "time-panels"});
    parts.tokens = el("section", {class: "tokens", id: "tokens"});
    parts.tokens.hidden = !DATA.tokens;
    parts.colourBy = el("select", {id: "colour-by"});
    parts.unit = el("select", {id: "unit"});
    parts.colourBy.addEventListener("change", () => {
      state.colourBy = Number(parts.colourBy.value);
      render();
    });
    parts.unit.addEventListener("change", () => { state.unit = Number(parts.unit.value); render(); });
    parts.lines = el("div", {class: "lines", id: "lines"});
    parts.predictions = el("div", {class: "predictions", id: "predictions"});
    parts.tokens.append(el("span", {}, "colour by "), parts.colourBy, parts.unit, parts.lines,
                        parts.predictions);
    document.body.append(top, controls, parts.note, parts.legend, main, parts.tokens, parts.times);
    panAndZoom(parts.pane);
    parts.pane.addEventListener("pointerover", event => {
      const g = event.target.closest("g.node, g.cluster");
      const node = g && run().nodes[g.getAttribute("data-key")];
      const times = node ? node.times : g ? run().boxes[g.querySelector("title").textContent] || [] : [];
      hoverAt(times.length === 1 ? times[0] : null);
    });
    parts.pane.addEventListener("pointerleave", () => hoverAt(null));
    document.addEventListener("keydown", event => {
      if (event.target.tagName === "INPUT") return;  // a slider moves itself
      if (event.key === "ArrowRight") { move(1); event.preventDefault(); }
      if (event.key === "ArrowLeft") { move(-1); event.preventDefault(); }
      if (event.key === " ") { togglePlay(); event.preventDefault(); }
    });
  }

  function move(by) {
    const last = 2 * run().times.length - 1;
    state.position = Math.min(Math.max(state.position + by, 0), last);
    render();
  }

  function togglePlay() {
    if (state.playing) {
      clearInterval(state.playing);
      state.playing = null;
    } else {
      if (state.position >= 2 * run().times.length - 1) state.position = 0;
      state.playing = setInterval(() => {
        if (state.position >= 2 * run().times.length - 1) togglePlay(); else move(1);
      }, PLAY_MS);
    }
    render();
  }

  // ------------------------------------------------------------------ drawing

  function render() {
    const current = run(), graph = graphs[current.svg];
    const [phase, t] = phaseAndTime();
    parts.snapshotSlider.value = String(state.snapshot);
    parts.snapshotLabel.textContent = DATA.snapshots[state.snapshot].label;
    renderRunTabs();
    parts.scrubber.max = String(2 * current.times.length - 1);
    parts.scrubber.value = String(state.position);
    parts.phase.textContent = `${phase}, t = ${t}` +
      (phase === "backward" ? " (gradient reaching step t)" : "");
    parts.play.textContent = state.playing ? "❚❚ pause" : "▶ play";
    parts.note.textContent = current.note || "";
    parts.note.hidden = !current.note;
    if (parts.pane.firstChild !== graph.svg) parts.pane.replaceChildren(graph.svg);
    if (graph.tooltipsOf !== current) {
      for (const [key, node] of Object.entries(current.nodes)) {
        graph.nodes[key].title.textContent = node.tooltip;
      }
      graph.tooltipsOf = current;
    }
    setView(graph);
    let lit = 0;
    for (const [key, node] of Object.entries(current.nodes)) {
      const drawn = graph.nodes[key], on = isLit(node, phase, t);
      lit += on ? 1 : 0;
      let fill = drawn.fill, fonts = drawn.font;
      if (phase === "backward" && node.bwd === null) {
        fill = NO_GRAD[0];
        fonts = fonts.map(() => NO_GRAD[1]);
      }
      else if (phase === "backward" && on) { fill = node.fill; fonts = fonts.map(() => node.font); }
      if (drawn.shape) drawn.shape.setAttribute("fill", fill);
      drawn.texts.forEach((text, k) => text.setAttribute("fill", fonts[k]));
      drawn.g.classList.toggle("unlit", !on && !(phase === "backward" && node.bwd === null));
      drawn.g.classList.toggle("selected", state.selected === key);
      drawn.g.classList.toggle("current", node.kind === "cell" && node.times.includes(t));
      drawn.g.classList.toggle("hovered", node.kind === "cell" && node.times.includes(state.hover));
    }
    state.lit = lit;
    for (const [title, g] of Object.entries(graph.boxes)) {
      const times = current.boxes[title] || [];
      g.classList.toggle("current", times.includes(t));
      g.classList.toggle("hovered", times.includes(state.hover));
    }
    renderLegend(current);
    renderPanel(current, phase, t);
    renderTimePanels(current, t);
    renderTokens(current, t);
  }

  // The sequence view: the tokens as one line of text per run of the snapshot (Distill's runs
  // side by side). A token is coloured by how much the hovered (else the current) step's
  // prediction listens to it, the line's own run's connectivity; or, for the current run alone,
  // by the chosen unit's value at its step (blue below 0, red above). Below, the hovered step's
  // most probable next tokens, for each line that has predictions.
  function renderTokens(current, t) {
    if (!DATA.tokens) return;
    const runs = DATA.snapshots[state.snapshot].runs, items = current.units || [];
    const at = state.hover === null ? t : state.hover, connected = runs.some(r => r.connectivity);
    const first = connected ? -1 : 0;
    if (state.colourBy === null) state.colourBy = bestMatch(items, first);
    if (state.colourBy < first || state.colourBy >= items.length) state.colourBy = first;
    const key = `${state.snapshot}/${state.run}`;
    if (parts.colourBy.dataset.key !== key) {
      const options = connected ? [el("option", {value: "-1"}, "connectivity to the hovered step")] : [];
      items.forEach((item, k) => options.push(el("option", {value: String(k)}, `a unit of ${item.label}`)));
      parts.colourBy.replaceChildren(...options);
      parts.colourBy.dataset.key = key;
      parts.unit.dataset.key = "";
    }
    if (parts.lines.dataset.snapshot !== String(state.snapshot)) buildLines(runs);
    parts.colourBy.value = String(state.colourBy);
    const item = state.colourBy >= 0 ? items[state.colourBy] : null;
    parts.unit.hidden = !item;
    if (item && parts.unit.dataset.key !== `${key}/${state.colourBy}`) {
      parts.unit.replaceChildren(...item.order.map(u => el("option", {value: String(u)},
        `unit ${u}` + (item.corr ? ` (r = ${fmt(item.corr[u])} with the annotation)` : ""))));
      parts.unit.dataset.key = `${key}/${state.colourBy}`;
      state.unit = item.order[0];
    }
    if (item) parts.unit.value = String(state.unit);
    const values = item ? item.values[state.unit].map(v => typeof v === "number" ? v : 0) : null;
    const scale = values ? Math.max(...values.map(Math.abs)) || 1 : 1;
    const guesses = [];
    Array.from(parts.lines.children).forEach((line, r) => {
      const other = runs[r], shown = !item || r === state.run;
      line.hidden = !shown;
      line.classList.toggle("active", r === state.run && runs.length > 1);
      const row = other.connectivity && other.connectivity[at];
      Array.from(line.querySelector(".strip").children).forEach((span, k) => {
        if (values) {
          const x = values[k] / scale;
          span.style.background = x < 0 ? `rgba(59, 76, 192, ${-x})` : `rgba(180, 4, 38, ${x})`;
        } else {
          span.style.background = `rgba(255, 127, 14, ${row ? row[k] : 0})`;
        }
        span.classList.toggle("now", k === at);
      });
      if (shown && other.predictions && other.predictions[at]) guesses.push(predictionLine(other, at));
    });
    parts.predictions.replaceChildren(...guesses);
  }

  // The page opens on the unit that matches the annotation best, if there is one.
  function bestMatch(items, otherwise) {
    let best = otherwise, most = -1;
    items.forEach((item, k) => {
      const r = item.corr ? Math.abs(item.corr[item.order[0]]) : -1;
      if (r > most) { best = k; most = r; }
    });
    return most >= 0 ? best : otherwise;
  }

  function buildLines(runs) {
    parts.lines.replaceChildren(...runs.map((other, r) => {
      const line = el("div", {class: "line", "data-run": other.name});
      const label = el("button", {class: "line-label", title: "show this run"}, other.name);
      label.addEventListener("click", () => setRunIndex(r));
      const strip = el("div", {class: "strip"});
      DATA.tokens.forEach((token, k) => {
        const span = el("span", {class: "token", "data-t": String(k)}, token);
        span.addEventListener("pointerenter", () => hoverAt(k));
        span.addEventListener("pointerleave", () => hoverAt(null));
        strip.append(span);
      });
      line.append(label, strip);
      return line;
    }));
    parts.lines.dataset.snapshot = String(state.snapshot);
  }

  // A predicted space, newline or tab, which would show as nothing, as a sign.
  function visible(token) {
    return token.replace(/ /g, "\u2423").replace(/\n/g, "\u21b5").replace(/\t/g, "\u21e5");
  }

  function predictionLine(other, at) {
    const line = el("div", {class: "guesses", "data-run": other.name});
    line.append(el("span", {class: "label"}, `${other.name}, next after t = ${at}:`));
    for (const [k, p] of other.predictions[at]) {
      const guess = el("span", {class: "guess", "data-token": String(k), "data-p": String(p)});
      guess.append(el("span", {class: "guess-token"}, visible(DATA.vocab[k])), el("span", {}, ` ${fmt(p)}`));
      line.append(guess);
    }
    return line;
  }

  function hoverAt(t) {
    if (state.hover !== t) { state.hover = t; render(); }
  }

  function renderRunTabs() {
    const runs = DATA.snapshots[state.snapshot].runs;
    if (parts.runs.dataset.snapshot !== String(state.snapshot)) {
      parts.runs.replaceChildren(...runs.map((r, k) => {
        const button = el("button", {class: "run", "data-index": String(k)}, r.name);
        button.addEventListener("click", () => { setRunIndex(k); });
        return button;
      }));
      parts.runs.dataset.snapshot = String(state.snapshot);
    }
    Array.from(parts.runs.children).forEach((b, k) => b.classList.toggle("active", k === state.run));
    parts.runs.hidden = runs.length < 2;
  }

  function renderLegend(current) {
    const low = current.legend.low, high = current.legend.high;
    const bar = el("span", {class: "bar"});
    for (const colour of VIRIDIS) bar.append(el("span", {style: `background:${colour}`}));
    parts.legend.replaceChildren(el("span", {}, "gradient norm, log scale: "), el("span", {}, fmt(low) + " "),
                                 bar, el("span", {}, " " + fmt(high)),
                                 el("span", {class: "swatch", style: `background:${NO_GRAD[0]}`}),
                                 el("span", {}, "no gradient"));
  }

  // ------------------------------------------------------------------ the node's panel

  function heatColour(code) {
    if (code === 253) return "#000000";         // nan
    if (code === 254 || code === 255) return "#ff00ff";   // inf, -inf
    const x = code / 125 - 1;                    // -1 ... 1: blue, white, red
    const mix = (a, b) => Math.round(255 + (a - 255) * Math.abs(x));
    return x < 0 ? `rgb(${mix(59)},${mix(76)},${mix(192)})` : `rgb(${mix(180)},${mix(4)},${mix(38)})`;
  }

  function heatmap(heat, label) {
    const box = el("div", {class: "heat"});
    const cell = Math.max(4, Math.min(14, Math.floor(260 / heat.cols)));
    const canvas = el("canvas", {width: String(heat.cols * cell), height: String(heat.rows * cell)});
    const context = canvas.getContext("2d"), codes = atob(heat.codes);
    for (let r = 0; r < heat.rows; r++) {
      for (let c = 0; c < heat.cols; c++) {
        context.fillStyle = heatColour(codes.charCodeAt(r * heat.cols + c));
        context.fillRect(c * cell, r * cell, cell, cell);
      }
    }
    const cut = heat.of[0] > heat.rows || heat.of[1] > heat.cols ?
      ` (first ${heat.rows} x ${heat.cols} of ${heat.of[0]} x ${heat.of[1]})` : "";
    box.append(el("div", {class: "caption"}, `${label}: rows x units${cut}; blue -${fmt(heat.scale)}, ` +
                  `white 0, red +${fmt(heat.scale)}; black nan, magenta inf`), canvas);
    return box;
  }

  function facts(rows) {
    const table = el("table");
    for (const [label, value, field] of rows) {
      const row = el("tr");
      row.append(el("th", {}, label), el("td", field ? {"data-field": field} : {}, value));
      table.append(row);
    }
    return table;
  }

  function stepText(node) {
    const times = node.times;
    if (!times.length) return "outside the steps";
    if (times.length === 1) return String(times[0]);
    return `${node.drawn}, drawn once for t = ${times[0]} ... ${times[times.length - 1]}; its numbers`;
  }

  function renderPanel(current, phase, t) {
    const node = state.selected === null ? null : current.nodes[state.selected];
    if (!node) {
      parts.panel.replaceChildren(el("p", {class: "hint"}, "Click a node to see its value and gradient."));
      return;
    }
    const v = node.value, g = node.grad;
    const content = [el("h2", {"data-field": "name"}, node.name === null ? "(unnamed)" : node.name),
      facts([["op", node.op, "op"], ["scope", node.scope || "-", "scope"],
             ["shape", `(${node.shape.join(", ")})`, "shape"], ["dtype", node.dtype],
             ["step", stepText(node)]])];
    if (node.equation) content.push(el("p", {class: "equation", "data-field": "equation"}, node.equation));
    if (node.formula) content.push(el("p", {class: "formula", "data-field": "formula"}, node.formula));
    if (node.first) content.push(el("p", {class: "bad"}, "first nan or inf of the graph: it began here"));
    content.push(el("h3", {}, "value"),
                 facts([["min", fmt(v.min), "min"], ["mean", fmt(v.mean), "mean"], ["max", fmt(v.max), "max"],
                        ["nan / inf", `${v.nan} / ${v.inf}`, "nonfinite"]]),
                 heatmap(v.heat, "value"));
    content.push(el("h3", {}, "gradient dL/d(this)"));
    if (g === null) content.push(el("p", {}, "no gradient"));
    else {
      const arrived = phase === "forward" || node.bwd >= t;
      content.push(facts([["norm", fmt(g.norm), "grad_norm"], ["min", fmt(g.min)], ["mean", fmt(g.mean)],
                          ["max", fmt(g.max)], ["nan / inf", `${g.nan} / ${g.inf}`]]));
      if (!arrived) content.push(el("p", {class: "hint"}, `backward reaches it at t = ${node.bwd}`));
      content.push(heatmap(g.heat, "gradient"));
    }
    parts.panel.replaceChildren(...content);
  }

  // ------------------------------------------------------------------ the time panels

  const SVG_NS = "http://www.w3.org/2000/svg";
  const CHART = {width: 300, height: 110};
  const timeViews = {};   // kind -> {key, element, columns: [[t, element]]}

  function svgEl(tag, attributes) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attributes || {})) node.setAttribute(key, String(value));
    return node;
  }

  // One column per step over the chart: it takes the hover and shows the current step.
  function columns(chart, times, top, height) {
    const width = CHART.width / times.length, found = [];
    times.forEach((t, k) => {
      const column = svgEl("rect", {class: "column", x: k * width, y: top, width, height, "data-t": t});
      column.addEventListener("pointerenter", () => hoverAt(t));
      chart.append(column);
      found.push([t, column]);
    });
    chart.addEventListener("pointerleave", () => hoverAt(null));
    return found;
  }

  function barChart(item, log) {
    const chart = svgEl("svg", {viewBox: `0 0 ${CHART.width} ${CHART.height}`, preserveAspectRatio: "none",
                                class: "chart"});
    const values = item.values.map(v => typeof v === "number" ? v : Infinity);
    const positive = values.filter(v => v > 0 && isFinite(v));
    const low = Math.min(...positive), high = Math.max(...positive);
    const width = CHART.width / values.length;
    values.forEach((v, k) => {
      let share = 0;
      if (!isFinite(v)) share = 1;
      else if (v > 0) share = log ? (high > low ? 0.05 + 0.95 * Math.log(v / low) / Math.log(high / low) : 1)
        : v / high;
      const height = share * CHART.height;
      chart.append(svgEl("rect", {class: isFinite(v) ? "bar" : "bar bad", x: k * width + width * 0.1,
                                  y: CHART.height - height, width: width * 0.8, height}));
    });
    const scale = positive.length ? `${fmt(low)} ... ${fmt(high)}` : "all zero";
    return {chart, scale: (log ? "log scale, " : "") + scale};
  }

  function gateChart(item) {
    const heat = item.heat, codes = atob(heat.codes), rows = heat.rows, count = heat.cols;
    const chart = svgEl("svg", {viewBox: `0 0 ${CHART.width} ${CHART.height}`, preserveAspectRatio: "none",
                                class: "chart"});
    const mapHeight = CHART.height * 0.7, cellW = CHART.width / count, cellH = mapHeight / rows;
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < count; c++) {
        chart.append(svgEl("rect", {x: c * cellW, y: r * cellH, width: cellW + 0.3, height: cellH + 0.3,
                                    fill: heatColour(codes.charCodeAt(r * count + c))}));
      }
    }
    item.saturation.forEach((v, k) => {
      const height = (CHART.height - mapHeight - 4) * (typeof v === "number" ? v : 0);
      chart.append(svgEl("rect", {class: "bar", x: k * cellW + cellW * 0.1, y: CHART.height - height,
                                  width: cellW * 0.8, height}));
    });
    const cut = heat.of[0] > rows ? ` (first ${rows} of ${heat.of[0]} units)` : "";
    return {chart, scale: `units x time${cut}, mean over the batch: white 0, red ${fmt(heat.scale)}; ` +
                          "bars: fraction saturated (< 0.1 or > 0.9)"};
  }

  // kind, title, how to draw one item, what to say when the recording has none
  const TIME_PANELS = [
    ["norms", "||dL/d(state) at t||", item => barChart(item, true), "no state was recorded"],
    ["weights", "each step's share of dL/dW: ||(dL/dW)_t||", item => barChart(item, false),
     "no weight with a gradient was recorded"],
    ["gates", "a gate over time", gateChart,
     "no gates in this run (a plain RNN has none; an LSTM has i, f, o, a GRU r, z)"],
  ];

  function renderTimePanels(current, t) {
    for (const [kind, title, draw, none] of TIME_PANELS) {
      const items = current.panels[kind];
      if (state.chosen[kind] >= items.length) state.chosen[kind] = 0;
      const key = `${state.snapshot}/${state.run}/${state.chosen[kind]}`;
      let view = timeViews[kind];
      if (!view || view.key !== key) {
        const element = el("div", {class: "time-panel", id: `panel-${kind}`});
        element.append(el("h3", {}, title));
        const item = items[state.chosen[kind]];
        view = timeViews[kind] = {key, element, columns: []};
        if (!item) {
          element.append(el("p", {class: "hint"}, none));
        } else {
          const choice = el("select", {"data-kind": kind});
          items.forEach((other, k) => choice.append(el("option", {value: String(k)}, other.label)));
          choice.value = String(state.chosen[kind]);
          choice.addEventListener("change", () => { state.chosen[kind] = Number(choice.value); render(); });
          const {chart, scale} = draw(item);
          view.columns = columns(chart, item.times, 0, CHART.height);
          const extra = item.outside === undefined ? "" : `; outside the steps: ${fmt(item.outside)}`;
          element.append(choice, chart, el("div", {class: "caption"}, `t = ${item.times[0]} ... ` +
                         `${item.times[item.times.length - 1]}; ${scale}${extra}`));
        }
      }
      for (const [when, column] of view.columns) {
        column.classList.toggle("now", when === t);
        column.classList.toggle("hovered", when === state.hover);
      }
    }
    const shown = TIME_PANELS.map(([kind]) => timeViews[kind].element);
    if (shown.some((element, k) => parts.times.children[k] !== element)) {
      parts.times.replaceChildren(...shown);
    }
  }

  // ------------------------------------------------------------------ changing the state

  function choose(key) { state.selected = key; render(); }

  function setRunIndex(k) {
    const old = run();
    state.run = k;
    if (!run().nodes[state.selected]) state.selected = null;
    clampPosition(old);
    render();
  }

  function clampPosition(old) {
    const [phase, t] = phaseFrom(old);
    placeAt(phase, t);
  }
  function phaseFrom(old) {
    const count = old.times.length;
    return state.position < count ? ["forward", old.times[state.position]]
      : ["backward", old.times[2 * count - 1 - state.position]];
  }
  function placeAt(phase, t) {
    const times = run().times, count = times.length;
    let k = times.indexOf(t);
    if (k < 0) k = t > times[count - 1] ? count - 1 : 0;
    state.position = phase === "forward" ? k : 2 * count - 1 - k;
  }

  function setSnapshot(i) {
    if (!Number.isInteger(i) || i < 0 || i >= DATA.snapshots.length) {
      throw new Error(`explorer.setSnapshot: no snapshot ${i}; there are ${DATA.snapshots.length}`);
    }
    const old = run(), name = old.name;
    state.snapshot = i;
    const k = DATA.snapshots[i].runs.findIndex(r => r.name === name);
    state.run = k < 0 ? 0 : k;
    if (!run().nodes[state.selected]) state.selected = null;
    clampPosition(old);
    render();
  }

  window.explorer = {
    state() {
      const [phase, t] = phaseAndTime(), node = state.selected === null ? null : run().nodes[state.selected];
      return {run: run().name, snapshot: state.snapshot, phase, t, lit: state.lit,
              selected: node ? {name: node.name, op: node.op, scope: node.scope, shape: node.shape,
                                min: node.value.min, mean: node.value.mean, max: node.value.max,
                                grad_norm: node.grad ? node.grad.norm : null} : null};
    },
    setRun(name) {
      const k = DATA.snapshots[state.snapshot].runs.findIndex(r => r.name === name);
      if (k < 0) throw new Error(`explorer.setRun: no run named ${JSON.stringify(name)}`);
      setRunIndex(k);
    },
    setSnapshot,
    setStep(phase, t) {
      if (phase !== "forward" && phase !== "backward") {
        throw new Error(`explorer.setStep: phase must be "forward" or "backward", ` +
                        `got ${JSON.stringify(phase)}`);
      }
      if (!run().times.includes(t)) throw new Error(`explorer.setStep: no step t = ${t} in this run`);
      placeAt(phase, t);
      render();
    },
    select(name, t, scope) {
      const found = Object.entries(run().nodes).filter(([, n]) =>
        n.name === name && n.times.includes(t) && within(n.scope, scope));
      const what = `${JSON.stringify(name)} at t = ${t}`;
      if (found.length === 0) throw new Error(`explorer.select: no tensor named ${what}`);
      if (found.length > 1) {
        throw new Error(`explorer.select: ${found.length} tensors named ${what}, ` +
                        `in ${found.map(([, n]) => n.scope).join(", ")}; pass a scope`);
      }
      choose(found[0][0]);
    },
    hover(t) { state.hover = t; render(); },
  };

  build();
  render();
  document.body.setAttribute("data-ready-ms", String(performance.now()));  // measured, see README
  document.body.setAttribute("data-ready", "true");
})();
