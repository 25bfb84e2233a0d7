// azjobs web: polls the JSON endpoints and draws tables, charts and boards by hand (SVG). No libraries.
"use strict";

const TOKEN = new URLSearchParams(location.search).get("token");
const SVG = "http://www.w3.org/2000/svg";
const BOARD_COLOURS = { connect4: "#2d5fb8", othello: "#2e7d4f", gomoku: "#d9b26f", tictactoe: "#ffffff" };
const STONES = ["none", "#1d2330", "#f4f4f4"];
const state = { info: null, replay: null, replayAt: 0, play: null, chosen: null };

function url(path) {
  return TOKEN ? path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(TOKEN) : path;
}

async function getJSON(path, options) {
  const response = await fetch(url(path), options);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function el(tag, attrs, text) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function num(x, digits = 0) {
  if (x === undefined || x === null || x === "") return "-";
  const n = Number(x);
  return Number.isFinite(n) ? n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits }) : String(x);
}

function fillRows(tbody, rows) {
  tbody.replaceChildren(...rows.map((cells) => {
    const tr = el("tr");
    for (const cell of cells) {
      const td = typeof cell === "object" && cell !== null ? el("td", cell.attrs || {}, cell.text) : el("td", {}, cell);
      tr.append(td);
    }
    return tr;
  }));
}

// Machines and the run.

function showOverview(o) {
  const pill = document.getElementById("redis-state");
  pill.textContent = o.redis ? "live" : "Redis not reachable: showing the storage root only";
  pill.className = "pill " + (o.redis ? "ok" : "bad");
  const body = document.querySelector("#machines tbody");
  fillRows(body, o.machines.map((m) => [m.role, { text: m.host, attrs: { class: "host" } },
    { text: m.id, attrs: { class: "id" } }, { text: m.state, attrs: { class: m.state } },
    m.cpu, m.memory, { text: m.device, attrs: { class: "device" } }, { text: m.figures, attrs: { class: "figures" } }]));
  body.querySelectorAll("tr").forEach((tr, i) => { tr.dataset.role = o.machines[i].role; });
  document.getElementById("machines-empty").hidden = o.machines.length > 0;
  if (!o.redis) return;
  const s = o.stats || {}, t = o.trainer || {};
  document.getElementById("stat-games").textContent = num(s.games);
  document.getElementById("stat-positions").textContent = num(s.positions);
  document.getElementById("stat-version").textContent = o.weights_version ?? "-";
  document.getElementById("stat-step").textContent = num(t.step);
  document.getElementById("stat-loss").textContent = num(t.policy_loss, 3) + " / " + num(t.value_loss, 3);
  document.getElementById("stat-requests").textContent = num(o.pending_requests);
  fillRows(document.querySelector("#queues tbody"), Object.entries(o.queues).map(([name, q]) =>
    [name, num(q.queued), num(q.running), num(q.finished), num(q.failed)]));
  drawThroughput(o.history);
}

function axes(svg, w, h, pad) {
  svg.replaceChildren();
  svg.append(el("svg:rect", { x: pad.l, y: pad.t, width: w - pad.l - pad.r, height: h - pad.t - pad.b, fill: "none", stroke: "#d9dee7" }));
}

function scale(lo, hi, a, b) {
  const span = hi - lo || 1;
  return (v) => a + ((v - lo) / span) * (b - a);
}

function polyline(svg, points, colour) {
  if (points.length) svg.append(el("svg:polyline", { points: points.map((p) => p.join(",")).join(" "), fill: "none", stroke: colour, "stroke-width": 2 }));
}

function label(svg, x, y, text, anchor = "start", colour = "#667085") {
  svg.append(el("svg:text", { x, y, "font-size": 11, fill: colour, "text-anchor": anchor }, text));
}

function drawThroughput(history) {
  const svg = document.getElementById("throughput"), w = 520, h = 180, pad = { l: 44, r: 44, t: 10, b: 24 };
  axes(svg, w, h, pad);
  const rates = [];
  for (let i = 1; i < history.length; i++) {
    const a = history[i - 1], b = history[i], dt = b.time - a.time;
    if (dt > 0) rates.push({ t: b.time, games: ((b.games - a.games) / dt) * 60, evals: b.evals_per_s });
  }
  if (rates.length < 2) { label(svg, w / 2, h / 2, "collecting…", "middle"); return; }
  const x = scale(rates[0].t, rates[rates.length - 1].t, pad.l, w - pad.r);
  const gMax = Math.max(1, ...rates.map((r) => r.games)), eMax = Math.max(1, ...rates.map((r) => r.evals));
  const yg = scale(0, gMax, h - pad.b, pad.t), ye = scale(0, eMax, h - pad.b, pad.t);
  polyline(svg, rates.map((r) => [x(r.t), yg(r.games)]), "#2f6fde");
  polyline(svg, rates.map((r) => [x(r.t), ye(r.evals)]), "#e8833a");
  label(svg, pad.l - 4, pad.t + 10, num(gMax), "end", "#2f6fde");
  label(svg, w - pad.r + 4, pad.t + 10, num(eMax), "start", "#e8833a");
  const shown = rates[rates.length - 1].t - rates[0].t;
  label(svg, pad.l, h - 6, (shown < 120 ? Math.round(shown) + " s" : Math.round(shown / 60) + " min") + " shown");
}

// The networks.

function showNetworks(n) {
  const rows = n.versions.slice().reverse().map((v) => [
    v.version, num(v.step), num(v.train_seconds / 60, 1) + " min", num(v.selfplay_games),
    v.rating ? num(v.rating.elo) + " ± " + num(v.rating.se) : "-", v.rating ? num(v.rating.games) : "-",
    v.accuracy.length ? v.accuracy.map((a) => (a.weak * 100).toFixed(1) + "% / " + (a.strong * 100).toFixed(1) + "% (" + (a.sims ? a.sims + " sims" : "net") + ")").join(", ") : "-",
  ]);
  fillRows(document.querySelector("#versions tbody"), rows);
  document.querySelector("#versions tbody").querySelectorAll("tr").forEach((tr, i) => { tr.dataset.version = rows[i][0]; });
  drawStrength(n.chart);
}

function drawStrength(chart) {
  const svg = document.getElementById("strength"), w = 520, h = 220, pad = { l: 44, r: 40, t: 10, b: 26 };
  axes(svg, w, h, pad);
  const points = chart.rating_points.filter((p) => p.train_seconds !== undefined).sort((a, b) => a.train_seconds - b.train_seconds);
  const accuracy = chart.accuracy.filter((a) => a.train_seconds !== null && a.train_seconds !== undefined);
  const minutes = [...points.map((p) => p.train_seconds / 60), ...accuracy.map((a) => a.train_seconds / 60)];
  if (!minutes.length) { label(svg, w / 2, h / 2, "no evaluation results yet", "middle"); return; }
  const x = scale(0, Math.max(...minutes, 0.1), pad.l, w - pad.r);
  const elos = [0, ...points.flatMap((p) => [p.elo - p.se, p.elo + p.se]), ...Object.values(chart.baselines).map((b) => b.elo)];
  const lo = Math.min(...elos), hi = Math.max(...elos);
  const y = scale(lo, hi, h - pad.b, pad.t), ya = scale(0, 1, h - pad.b, pad.t);
  for (const [name, b] of Object.entries(chart.baselines)) {
    svg.append(el("svg:line", { x1: pad.l, x2: w - pad.r, y1: y(b.elo), y2: y(b.elo), stroke: "#aaa", "stroke-dasharray": "4 3" }));
    label(svg, pad.l + 2, y(b.elo) - 2, name);
  }
  for (const p of points) {
    svg.append(el("svg:line", { x1: x(p.train_seconds / 60), x2: x(p.train_seconds / 60), y1: y(p.elo - p.se), y2: y(p.elo + p.se), stroke: "#2f6fde" }));
  }
  polyline(svg, points.map((p) => [x(p.train_seconds / 60), y(p.elo)]), "#2f6fde");
  for (const p of points) svg.append(el("svg:circle", { cx: x(p.train_seconds / 60), cy: y(p.elo), r: 3, fill: "#2f6fde" }));
  const sims = Math.max(-1, ...accuracy.map((a) => a.sims));
  const acc = accuracy.filter((a) => a.sims === sims).sort((a, b) => a.train_seconds - b.train_seconds);
  polyline(svg, acc.map((a) => [x(a.train_seconds / 60), ya(a.weak_accuracy)]), "#1f9d55");
  label(svg, pad.l - 4, pad.t + 10, num(hi), "end", "#2f6fde");
  label(svg, pad.l - 4, h - pad.b, num(lo), "end", "#2f6fde");
  label(svg, w - pad.r + 4, pad.t + 10, "100%", "start", "#1f9d55");
  label(svg, w - pad.r + 4, h - pad.b, "0%", "start", "#1f9d55");
  label(svg, w / 2, h - 6, "training minutes", "middle");
}

// Boards.

function drawBoard(svg, grid, game, onClick, last) {
  const rows = grid.length, cols = grid[0].length, size = 40;
  svg.setAttribute("viewBox", `0 0 ${cols * size} ${rows * size}`);
  svg.dataset.grid = JSON.stringify(grid);
  svg.replaceChildren(el("svg:rect", { width: cols * size, height: rows * size, fill: BOARD_COLOURS[game] || "#e9e4d4" }));
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const cell = el("svg:rect", { x: c * size, y: r * size, width: size, height: size, fill: "transparent", stroke: "#0003", class: "cell", "data-r": r, "data-c": c, "data-v": grid[r][c] });
      if (onClick) cell.addEventListener("click", () => onClick(r, c));
      svg.append(cell);
      const v = grid[r][c];
      if (v === 0 && game === "connect4") svg.append(el("svg:circle", { cx: c * size + size / 2, cy: r * size + size / 2, r: size * 0.38, fill: "#fff", "pointer-events": "none" }));
      if (v > 0 && game === "tictactoe") {
        const m = size * 0.25, x0 = c * size, y0 = r * size;
        if (v === 1) {
          svg.append(el("svg:path", { d: `M${x0 + m},${y0 + m}L${x0 + size - m},${y0 + size - m}M${x0 + size - m},${y0 + m}L${x0 + m},${y0 + size - m}`, stroke: "#1d2330", "stroke-width": 4, "pointer-events": "none" }));
        } else {
          svg.append(el("svg:circle", { cx: x0 + size / 2, cy: y0 + size / 2, r: size / 2 - m, fill: "none", stroke: "#d92d20", "stroke-width": 4, "pointer-events": "none" }));
        }
      } else if (v > 0) {
        const colour = game === "connect4" ? ["", "#d92d20", "#fdb022"][v] : STONES[v];
        svg.append(el("svg:circle", { cx: c * size + size / 2, cy: r * size + size / 2, r: size * 0.38, fill: colour, stroke: "#1d2330", "stroke-width": 1, "pointer-events": "none" }));
      }
      if (last && last[0] === r && last[1] === c) svg.append(el("svg:circle", { cx: c * size + size / 2, cy: r * size + size / 2, r: 4, fill: "#f04438", "pointer-events": "none" }));
    }
  }
}

function changedCell(before, after) {
  for (let r = 0; r < after.length; r++) for (let c = 0; c < after[r].length; c++) if (before && before[r][c] === 0 && after[r][c] !== 0) return [r, c];
  return null;
}

function resultText(result, first, second) {
  if (result === null || result === undefined) return "";
  return result > 0 ? first + " won" : result < 0 ? second + " won" : "a draw";
}

// Games and replays.

function showGames(g) {
  for (const kind of ["selfplay", "evaluation"]) {
    const list = document.getElementById(kind + "-games");
    list.replaceChildren(...g[kind].map((game) => {
      const li = el("li", { "data-id": game.id, "data-kind": kind }, `${game.title}: ${game.moves} moves, ${resultText(game.result, "first", "second")}`);
      if (state.chosen === kind + "/" + game.id) li.classList.add("chosen");
      li.addEventListener("click", () => openReplay(kind, game.id, game.title));
      return li;
    }));
    if (!g[kind].length) list.append(el("li", { class: "hint" }, "none yet"));
  }
}

async function openReplay(kind, id, title) {
  state.chosen = kind + "/" + id;
  document.querySelectorAll(".gamelist li").forEach((li) => li.classList.toggle("chosen", li.dataset.kind + "/" + li.dataset.id === state.chosen));
  state.replay = await getJSON(`/api/game/${kind}/${encodeURIComponent(id)}`);
  state.replay.title = title;
  state.replayAt = state.replay.moves.length;
  showReplay();
}

function showReplay() {
  const r = state.replay;
  if (!r) return;
  const at = state.replayAt;
  drawBoard(document.getElementById("replay-board"), r.boards[at], r.game, null, at > 0 ? changedCell(r.boards[at - 1], r.boards[at]) : null);
  document.getElementById("replay-title").textContent = `${r.title}: ${resultText(r.result, "first player", "second player")}`;
  document.getElementById("replay-step").textContent = `move ${at} of ${r.moves.length}`;
  const moves = document.getElementById("replay-moves");
  moves.replaceChildren(...r.moves.map((m, i) => {
    const span = el("span", i + 1 === at ? { class: "now" } : {}, `${i + 1}. ${m.label} `);
    span.addEventListener("click", () => { state.replayAt = i + 1; showReplay(); });
    return span;
  }));
}

function stepReplay(to) {
  if (!state.replay) return;
  state.replayAt = Math.max(0, Math.min(state.replay.moves.length, to(state.replayAt)));
  showReplay();
}

// Play.

async function newGame(event) {
  if (event) event.preventDefault();
  const game = document.getElementById("play-game").value;
  const opponent = document.getElementById("play-opponent").value.trim() || state.info.default_opponent;
  const side = Number(document.getElementById("play-side").value);
  state.play = { game, opponent, side, moves: [] };
  await sendPlay();
}

async function sendPlay() {
  const p = state.play, status = document.getElementById("play-status");
  status.textContent = "thinking…";
  try {
    const body = await getJSON("/api/play", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ game: p.game, opponent: p.opponent, side: p.side, moves: p.moves }),
    });
    p.moves = body.moves.map((m) => m.action);
    p.legal = body.legal;
    p.result = body.result;
    showPlay(body);
  } catch (e) {
    status.textContent = "refused: " + e.message;
    p.moves.pop();
  }
}

function showPlay(body) {
  const p = state.play, board = document.getElementById("play-board");
  p.board = body.board;
  drawBoard(board, body.board, body.game, (r, c) => clickCell(r, c));
  board.dataset.over = body.result === null ? "no" : "yes";
  board.dataset.result = body.result === null ? "" : String(body.result);
  const you = p.side === 0 ? "you" : body.opponent, them = p.side === 0 ? body.opponent : "you";
  document.getElementById("play-status").textContent = body.result === null
    ? `your move (against ${body.opponent})` + (body.replies.length ? `; it played ${body.replies.map((m) => m.label).join(", ")}` : "")
    : `game over: ${resultText(body.result, you, them).replace("you won", "you won").replace(/^a draw$/, "a draw")}`;
  document.getElementById("play-moves").textContent = body.moves.map((m, i) => `${i + 1}. ${m.label}`).join(" ");
  const passes = document.getElementById("play-passes");
  passes.replaceChildren(...body.legal.filter((m) => m.cell === null).map((m) => {
    const b = el("button", { type: "button" }, m.label);
    b.addEventListener("click", () => move(m.action));
    return b;
  }));
}

function clickCell(r, c) {
  const p = state.play;
  if (!p || p.result !== null) return;
  let found = p.legal.find((m) => m.cell && m.cell[0] === r && m.cell[1] === c);
  if (!found) {
    const column = p.legal.filter((m) => m.cell && m.cell[1] === c);
    if (column.length === 1) found = column[0]; // a game where a column names the move (connect4)
  }
  if (found) move(found.action);
}

function move(action) {
  state.play.moves.push(action);
  sendPlay();
}

// Start.

async function poll(path, show, every) {
  try { show(await getJSON(path)); } catch (e) { console.warn(path, e); }
  setTimeout(() => poll(path, show, every), every);
}

async function start() {
  state.info = await getJSON("/api/info");
  const i = state.info;
  document.title = "azjobs " + i.run;
  document.getElementById("run-name").textContent = i.run;
  document.getElementById("run-game").textContent = i.game;
  document.getElementById("link-dashboard").href = i.dashboard_url;
  document.getElementById("link-tensorboard").href = i.tensorboard_url;
  const select = document.getElementById("play-game");
  select.replaceChildren(...i.games.map((g) => el("option", { value: g }, g + (g === i.game ? " (the run's)" : " (baselines only)"))));
  select.value = i.game;
  document.getElementById("play-opponent").value = i.default_opponent;
  document.getElementById("play-form").addEventListener("submit", newGame);
  document.getElementById("replay-first").addEventListener("click", () => stepReplay(() => 0));
  document.getElementById("replay-prev").addEventListener("click", () => stepReplay((a) => a - 1));
  document.getElementById("replay-next").addEventListener("click", () => stepReplay((a) => a + 1));
  document.getElementById("replay-last").addEventListener("click", () => stepReplay(() => Infinity));
  poll("/api/overview", showOverview, 1500);
  poll("/api/networks", showNetworks, 3000);
  poll("/api/games", showGames, 5000);
}

start();
