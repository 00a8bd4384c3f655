"use strict";
// The operators' page: polls /ops/status and /ops/dlq with the operator token and draws
// them. Plain DOM, no framework, no build step, nothing fetched from anywhere else.
// Every value is written with textContent (dead letter errors are untrusted text).
(() => {
  const TOKEN_KEY = "connectin.ops.token";
  const HISTORY_KEY = "connectin.ops.lagHistory";
  const WINDOW_MS = 10 * 60 * 1000;
  const COLORS = ["#2f5fd0", "#d0622f", "#1f8a4c", "#8a3fc6", "#b7791f", "#0f8a8a"];
  const SVG_NS = "http://www.w3.org/2000/svg";
  const refreshSeconds = Number(new URLSearchParams(location.search).get("refresh")) || 5;
  const INTERVAL_MS = Math.max(1, refreshSeconds) * 1000;

  let timer = null;
  let paused = false;

  class AuthNeeded extends Error {}

  const $ = (id) => document.getElementById(id);
  const fmt = (n) => Number(n).toLocaleString("en-US");
  const plural = (n, noun) => `${fmt(n)} ${noun}${n === 1 ? "" : "s"}`;

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
    return node;
  }

  function duration(seconds) {
    const s = Math.floor(seconds);
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
    if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
    return `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600)}h`;
  }

  // --- token and requests -------------------------------------------------------------

  function showLogin(message) {
    stop();
    $("dashboard").hidden = true;
    $("pause").hidden = true;
    $("signout").hidden = true;
    $("login").hidden = false;
    $("login-message").textContent = message || "Enter this deployment's operator token (OPS_TOKEN).";
    $("token").focus();
  }

  function showDashboard() {
    $("login").hidden = true;
    $("dashboard").hidden = false;
    $("pause").hidden = false;
    $("signout").hidden = false;
  }

  async function api(path, options) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) {
      showLogin();
      throw new AuthNeeded();
    }
    const response = await fetch(path, {
      ...(options || {}),
      cache: "no-store",
      headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
    });
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null; // not JSON (a proxy's error page): fall back to the status text below
    }
    if (response.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin("That token was not accepted. Enter the current OPS_TOKEN.");
      throw new AuthNeeded();
    }
    if (!response.ok) {
      const detail = body && body.detail ? body.detail : response.statusText;
      throw new Error(`${path}: ${response.status} ${detail}`);
    }
    return body;
  }

  // --- rendering ------------------------------------------------------------------------

  function setTile(id, text, state) {
    const node = $(id);
    node.textContent = text;
    node.parentElement.classList.toggle("bad", state === "bad");
    node.parentElement.classList.toggle("warn", state === "warn");
  }

  function renderVerdict(status) {
    const verdict = $("verdict");
    const labels = { ok: "All flowing", breach: "Threshold breached", unknown: "Unknown" };
    verdict.textContent = labels[status.verdict] || status.verdict;
    verdict.className = `verdict ${status.verdict}`;
    const taken = new Date(status.taken_at);
    $("updated").textContent = `updated ${taken.toLocaleTimeString("en-GB")} · every ${refreshSeconds}s`;
  }

  function renderTiles(status, limits) {
    const outbox = status.outbox;
    if (outbox) {
      const leaderless = outbox.shards.filter((s) => !s.leader).length;
      setTile("pending-total", fmt(outbox.pending), outbox.pending > 0 ? "warn" : "");
      $("pending-total").dataset.value = String(outbox.pending);
      $("pending-sub").textContent = `over ${plural(outbox.shards.length, "shard")}`;
      const tooOld = outbox.oldest_age_s > limits.max_oldest_unpublished_s;
      setTile("oldest-age", outbox.pending ? duration(outbox.oldest_age_s) : "–", tooOld ? "bad" : "");
      $("oldest-sub").textContent = `limit ${duration(limits.max_oldest_unpublished_s)}`;
      setTile("relays", fmt(outbox.relays_connected), outbox.relays_connected === 0 ? "bad" : "");
      $("relays-sub").textContent = leaderless ? `${plural(leaderless, "shard")} without leader` : "every shard led";
    } else {
      for (const id of ["pending-total", "oldest-age", "relays"]) setTile(id, "?", "warn");
    }
    const consumers = status.consumers;
    if (consumers) {
      const worst = Math.max(0, ...consumers.groups.map((g) => g.lag));
      setTile("lag-total", fmt(consumers.lag), worst > limits.max_consumer_lag ? "bad" : "");
      $("lag-sub").textContent = `${plural(consumers.groups.length, "group")} · limit ${fmt(limits.max_consumer_lag)} each`;
    } else {
      setTile("lag-total", "?", "warn");
    }
    const dead = status.dead_letters;
    setTile("dlq-total", dead ? fmt(dead.unreplayed) : "?", dead && dead.unreplayed ? "warn" : "");
  }

  function renderFindings(status) {
    const list = $("findings");
    list.replaceChildren();
    const add = (cls, head, text) => {
      const item = el("li", cls);
      item.append(el("b", null, head), document.createTextNode(text));
      list.append(item);
    };
    for (const f of status.breaches) add("breach", `✗ ${f.subject}`, f.message);
    for (const f of status.warnings) add("warning", `! ${f.subject}`, f.message);
    for (const e of status.errors) add("error", "? not checked", e);
    if (!list.children.length) add("allclear", "✓", "Events are flowing: no threshold breached.");
  }

  function cell(text, className) {
    return el("td", className, text);
  }

  function emptyRow(tbody, columns, text) {
    const row = el("tr");
    const td = cell(text, "empty");
    td.colSpan = columns;
    row.append(td);
    tbody.append(row);
  }

  function renderShards(outbox, limits) {
    const tbody = $("shards").tBodies[0];
    tbody.replaceChildren();
    if (!outbox) return emptyRow(tbody, 4, "Postgres could not be read");
    for (const s of outbox.shards) {
      const row = el("tr");
      row.dataset.shard = String(s.shard);
      if (s.oldest_age_s > limits.max_oldest_unpublished_s) row.className = "bad";
      else if (!s.leader) row.className = "warn";
      const leader = el("td");
      if (s.leader) {
        leader.append(el("span", null, `pid ${s.leader.pid} @ ${s.leader.client_addr || "local"} `));
        leader.append(el("span", "leader-app", s.leader.application_name));
      } else {
        leader.append(el("span", "pill none", "no leader"));
      }
      row.append(
        cell(s.shard, "num"),
        leader,
        cell(fmt(s.pending), "num"),
        cell(s.pending ? duration(s.oldest_age_s) : "–", "num flag"),
      );
      tbody.append(row);
    }
  }

  function renderGroups(consumers, limits) {
    const tbody = $("groups").tBodies[0];
    tbody.replaceChildren();
    if (!consumers) return emptyRow(tbody, 8, "Kafka could not be read");
    if (!consumers.groups.length) return emptyRow(tbody, 8, "No consumer group has joined or committed yet");
    for (const g of consumers.groups) {
      g.partitions.forEach((p, i) => {
        const row = el("tr", i === 0 ? "group-start" : "");
        const state = el("td");
        if (i === 0) state.append(el("span", `pill ${g.state.toLowerCase()}`, g.state));
        row.append(
          cell(i === 0 ? g.consumer : ""),
          state,
          cell(i === 0 ? g.members : "", "num"),
          cell(p.topic),
          cell(p.partition, "num"),
          cell(p.committed === null ? "–" : fmt(p.committed), "num"),
          cell(fmt(p.end), "num"),
          cell(fmt(p.lag), "num"),
        );
        tbody.append(row);
      });
      const total = el("tr", g.lag > limits.max_consumer_lag ? "total bad" : "total");
      const label = cell(`${g.consumer} total`, "num");
      label.colSpan = 7;
      total.append(label, cell(fmt(g.lag), "num flag"));
      tbody.append(total);
    }
  }

  function renderDeadLetters(dlq) {
    const tbody = $("dead-letters").tBodies[0];
    tbody.replaceChildren();
    if (!dlq.dead_letters.length) return emptyRow(tbody, 7, "No dead letters waiting");
    for (const d of dlq.dead_letters) {
      const row = el("tr");
      const error = cell(d.error, "error-text");
      error.title = d.error;
      const action = el("td", "num");
      const button = el("button", "small", "Replay");
      button.type = "button";
      button.addEventListener("click", () => replay(d.id, button));
      action.append(button);
      row.append(
        cell(d.id, "num"),
        cell(d.consumer ? `${d.source} · ${d.consumer}` : d.source),
        cell(d.topic),
        error,
        cell(d.attempts, "num"),
        cell(new Date(d.created_at).toLocaleString("en-GB")),
        action,
      );
      tbody.append(row);
    }
  }

  async function replay(id, button) {
    if (!confirm(`Replay dead letter ${id} to its original topic?`)) return;
    button.disabled = true;
    try {
      const result = await api(`/ops/dlq/${id}/replay`, { method: "POST" });
      if (!result.ok) throw new Error(`replay of ${id} failed: ${result.error}`);
      await refresh();
    } catch (e) {
      if (!(e instanceof AuthNeeded)) showError(e.message);
      button.disabled = false;
    }
  }

  // --- lag history and chart -------------------------------------------------------------

  function loadHistory() {
    try {
      const parsed = JSON.parse(sessionStorage.getItem(HISTORY_KEY) || "[]");
      return Array.isArray(parsed) ? parsed : [];
    } catch (_) {
      return []; // a corrupt entry only costs the chart its past
    }
  }

  function recordLag(status) {
    if (!status.consumers) return;
    const lags = {};
    for (const g of status.consumers.groups) lags[g.consumer] = g.lag;
    const now = Date.now();
    const history = loadHistory().filter((s) => now - s.t <= WINDOW_MS);
    history.push({ t: now, lags });
    sessionStorage.setItem(HISTORY_KEY, JSON.stringify(history));
  }

  // Axis top: four equal steps of 1, 2 or 5 x 10^k, a little above the largest value.
  function niceMax(value) {
    const rough = Math.max(1, (value * 1.1) / 4);
    const magnitude = 10 ** Math.floor(Math.log10(rough));
    const step = [1, 2, 5, 10].map((m) => m * magnitude).find((v) => v >= rough);
    return step * 4;
  }

  // The x axis spans the history we have (at least a minute, at most WINDOW_MS), so a
  // page opened a moment ago shows a readable line rather than a dot at the edge.
  function timeTicks(spanMs) {
    const stepMs = [10, 15, 30, 60, 120, 300].map((s) => s * 1000).find((ms) => spanMs / ms <= 6);
    const ticks = [];
    for (let ago = Math.floor(spanMs / stepMs) * stepMs; ago >= 0; ago -= stepMs) ticks.push(ago);
    return ticks;
  }

  function tickLabel(agoMs) {
    if (agoMs === 0) return "now";
    return agoMs % 60000 === 0 ? `-${agoMs / 60000}m` : `-${agoMs / 1000}s`;
  }

  function drawChart() {
    const box = $("chart");
    const legend = $("legend");
    const width = 640, height = 220, left = 52, right = 16, top = 12, bottom = 26;
    const plotW = width - left - right, plotH = height - top - bottom;
    const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "consumer lag over time" });
    const now = Date.now();
    const history = loadHistory().filter((s) => now - s.t <= WINDOW_MS);
    const spanMs = Math.min(WINDOW_MS, Math.max(60000, history.length ? now - history[0].t : 0));
    const groups = [...new Set(history.flatMap((s) => Object.keys(s.lags)))].sort();
    const maxLag = niceMax(Math.max(0, ...history.flatMap((s) => Object.values(s.lags))));
    const x = (t) => left + plotW * (1 - (now - t) / spanMs);
    const y = (v) => top + plotH * (1 - v / maxLag);
    $("chart-span").textContent = `· last ${spanMs >= 120000 ? `${Math.round(spanMs / 60000)} minutes` : `${Math.round(spanMs / 1000)} seconds`}`;

    for (let i = 0; i <= 4; i++) {
      const value = (maxLag * i) / 4;
      root.append(svg("line", { x1: left, x2: width - right, y1: y(value), y2: y(value), class: "grid-line" }));
      const label = svg("text", { x: left - 8, y: y(value) + 4, "text-anchor": "end", class: "axis-label" });
      label.textContent = fmt(value);
      root.append(label);
    }
    for (const ago of timeTicks(spanMs)) {
      const anchor = ago === 0 ? "end" : "middle";
      const label = svg("text", { x: x(now - ago), y: height - 6, "text-anchor": anchor, class: "axis-label" });
      label.textContent = tickLabel(ago);
      root.append(label);
    }
    if (history.length < 2 || !groups.length) {
      const note = svg("text", { x: left + plotW / 2, y: top + plotH / 2, "text-anchor": "middle", class: "placeholder" });
      note.textContent = groups.length ? "collecting samples…" : "no consumer group yet";
      root.append(note);
    }
    legend.replaceChildren();
    const last = history[history.length - 1];
    groups.forEach((group, i) => {
      const samples = history.filter((s) => group in s.lags);
      const color = COLORS[i % COLORS.length];
      if (samples.length > 1) {
        const points = samples.map((s) => `${x(s.t).toFixed(1)},${y(s.lags[group]).toFixed(1)}`);
        root.append(svg("polyline", { points: points.join(" "), fill: "none", stroke: color, "stroke-width": 2, "stroke-linejoin": "round" }));
      }
      if (samples.length) {
        const end = samples[samples.length - 1];
        root.append(svg("circle", { cx: x(end.t), cy: y(end.lags[group]), r: 3.5, fill: color }));
      }
      const item = el("li");
      item.append(el("i", `c${i % COLORS.length}`), document.createTextNode(`${group} ${last && group in last.lags ? fmt(last.lags[group]) : "–"}`));
      legend.append(item);
    });
    box.replaceChildren(root);
  }

  // --- refresh loop ---------------------------------------------------------------------------

  function showError(message) {
    const banner = $("error");
    banner.textContent = message || "";
    banner.hidden = !message;
  }

  function stop() {
    if (timer !== null) clearTimeout(timer);
    timer = null;
  }

  function schedule() {
    stop();
    if (!paused && sessionStorage.getItem(TOKEN_KEY)) timer = setTimeout(refresh, INTERVAL_MS);
  }

  async function refresh() {
    try {
      const [status, dlq] = await Promise.all([
        api("/ops/status"),
        api("/ops/dlq?pending=true&limit=20"),
      ]);
      showDashboard();
      showError(null);
      const limits = status.thresholds;
      recordLag(status);
      renderVerdict(status);
      renderTiles(status, limits);
      renderFindings(status);
      renderShards(status.outbox, limits);
      renderGroups(status.consumers, limits);
      renderDeadLetters(dlq);
      drawChart();
      document.body.dataset.loaded = "true";
    } catch (e) {
      if (e instanceof AuthNeeded) return;
      showError(`Could not refresh: ${e.message}`);
    }
    schedule();
  }

  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token").value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    $("token").value = "";
    refresh();
  });
  $("signout").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin("Token forgotten.");
  });
  $("pause").addEventListener("click", () => {
    paused = !paused;
    $("pause").textContent = paused ? "Resume" : "Pause";
    if (paused) stop();
    else refresh();
  });

  if (sessionStorage.getItem(TOKEN_KEY)) refresh();
  else showLogin();
})();
