// The studio page: plain JavaScript over the HTTP API (no build step). Everything a user
// or the server names is put on the page as text, never as markup.

const $ = (selector, root = document) => root.querySelector(selector);
const state = { families: {}, runs: [], corpora: [], run: null, shownJobs: new Set() };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function say(message, isError = false) {
  const status = $("#status");
  status.textContent = message;
  status.className = isError ? "error" : "";
}

async function api(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...options });
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = { detail: text }; }
  if (!response.ok) {
    const detail = body && body.detail;
    const message = Array.isArray(detail)
      ? detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ")
      : detail || response.statusText;
    throw new Error(`${response.status}: ${message}`);
  }
  return body;
}

const postJson = (path, body, method = "POST") =>
  api(path, { method, headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });

async function upload(file) {
  const form = new FormData();
  form.append("file", file);
  return api("/api/uploads", { method: "POST", body: form });
}

function numberOrNull(value) {
  return value === "" || value === null || value === undefined ? null : Number(value);
}

function parseConfig(text) {
  const config = {};
  for (const line of text.split("\n")) {
    const trimmed = line.trim();
    if (!trimmed || trimmed.startsWith("#")) continue;
    const at = trimmed.indexOf(":");
    if (at < 1) throw new Error(`config line "${trimmed}": write key: value`);
    const key = trimmed.slice(0, at).trim();
    const raw = trimmed.slice(at + 1).trim();
    let value = raw;
    try { value = JSON.parse(raw); } catch { value = raw; }
    config[key] = value;
  }
  return config;
}

// what happens when a form is sent: the action, then a message; errors are shown, not thrown
function onSubmit(form, action) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = $("button[type=submit]", form);
    button.disabled = true;
    try {
      const job = await action(new FormData(form));
      if (job && job.id) {
        say(`job ${job.id} (${job.kind}) ${job.status}`);
        await refreshJobs();
      }
    } catch (error) {
      say(error.message, true);
    } finally {
      button.disabled = false;
    }
  });
}

// corpora ------------------------------------------------------------------------------
async function refreshCorpora() {
  state.corpora = await api("/api/corpora");
  const body = $("#corpus-table tbody");
  body.replaceChildren(...state.corpora.map((c) => el("tr", {},
    el("td", {}, c.name), el("td", {}, `${c.files} (${c.train} / ${c.test})`),
    el("td", {}, c.minutes), el("td", {}, Array.isArray(c.rate) ? c.rate.join(", ") : c.rate),
    el("td", {}, c.failures.length
      ? el("details", {}, el("summary", {}, String(c.failures.length)),
          el("ul", {}, c.failures.map((f) => el("li", {}, `${f.source}: ${f.reason}`))))
      : "0"))));
  for (const select of document.querySelectorAll("select[name=corpus]")) {
    const chosen = select.value;
    const none = select.closest("#new-run-form") ? [el("option", { value: "" }, "(the upstream's)")] : [];
    select.replaceChildren(...none, ...state.corpora.map((c) => el("option", { value: c.name }, c.name)));
    if (chosen) select.value = chosen;
  }
}

onSubmit($("#synth-form"), (data) => postJson("/api/corpora/synth", {
  name: data.get("name"), loops: Number(data.get("loops")),
  seconds: Number(data.get("seconds")), rate: Number(data.get("rate")),
}));

onSubmit($("#upload-form"), (data) => api("/api/corpora", { method: "POST", body: data }));

// runs ---------------------------------------------------------------------------------
async function refreshFamilies() {
  const families = await api("/api/families");
  state.families = Object.fromEntries(families.map((f) => [f.name, f]));
  $("#new-run-form select[name=model]").replaceChildren(
    ...families.map((f) => el("option", { value: f.name }, f.needs_upstream ? `${f.name} (on an upstream run)` : f.name)));
}

function bestText(run) {
  return run.best === null || run.best === undefined ? "-" : `${run.monitor} ${Number(run.best).toPrecision(4)}`;
}

async function refreshRuns() {
  state.runs = await api("/api/runs");
  const body = $("#run-table tbody");
  body.replaceChildren(...state.runs.map((r) => el("tr", { "aria-selected": state.run === r.name ? "true" : null },
    el("td", {}, el("button", { type: "button", class: "link", onclick: () => openRun(r.name) }, r.display_name),
      r.display_name !== r.name ? el("span", { class: "meta" }, ` ${r.name}`) : null),
    el("td", {}, r.family), el("td", {}, r.upstream ? `${r.corpus} / ${r.upstream}` : r.corpus),
    el("td", {}, r.epochs), el("td", {}, r.phase || ""), el("td", {}, bestText(r)),
    el("td", {}, r.training_minutes))));
  const upstream = $("#new-run-form select[name=upstream]");
  const chosen = upstream.value;
  upstream.replaceChildren(el("option", { value: "" }, "(none)"),
    ...state.runs.filter((r) => state.families[r.family] && state.families[r.family].encodes)
      .map((r) => el("option", { value: r.name }, r.name)));
  upstream.value = chosen;
}

onSubmit($("#new-run-form"), (data) => {
  const minutes = numberOrNull(data.get("minutes"));
  const body = {
    name: data.get("name"), model: data.get("model"),
    corpus: data.get("corpus") || null, upstream: data.get("upstream") || null,
    config: parseConfig(data.get("config")),
    epochs: minutes ? null : numberOrNull(data.get("epochs")), minutes,
  };
  state.run = body.name;
  return postJson("/api/runs", body);
});

async function openRun(name) {
  state.run = name;
  $("#run-detail").hidden = false;
  $("#results").replaceChildren();
  const run = await refreshRun();
  // what earlier jobs made from this run, newest first
  for (const job of (run ? run.jobs : []).slice().reverse()) {
    if (job.status === "done" && job.result && job.result.clips) showResult(job);
  }
  $("#run-title").scrollIntoView({ block: "nearest" });
  $("#run-title").focus();  // keyboard users land on the run they opened
  showCorpusClips();
}

async function refreshRun() {
  if (!state.run) return null;
  let run;
  try { run = await api(`/api/runs/${encodeURIComponent(state.run)}`); } catch { return null; }
  const detail = $("#run-detail");
  detail.hidden = false;
  detail.dataset.run = run.name;
  $("#run-title").textContent = run.display_name;
  $("#run-facts").textContent = `${run.family} on ${run.corpus}${run.upstream ? ` over ${run.upstream}` : ""}: `
    + `${run.epochs} epochs, ${run.training_minutes} training minutes`
    + (run.phase ? `, phase ${run.phase}` : "") + (run.description ? `. ${run.description}` : "");
  const about = $("#about-form");
  if (!about.contains(document.activeElement)) {
    about.display_name.value = run.display_name;
    about.description.value = run.description;
  }
  drawCurve(run.history);
  const abilities = run.abilities;
  const phases = $("#train-form select[name=phase]");
  if (phases.options.length !== abilities.phases.length + 1) {
    phases.replaceChildren(el("option", { value: "" }, "(this one)"),
      ...abilities.phases.slice(1).map((p) => el("option", { value: p }, p)));
  }
  $("#generate-form").hidden = !abilities.generates;
  $("#evaluate-form").hidden = !abilities.generates;
  $("#reconstruct-form").hidden = !abilities.encodes;
  $("#interpolate-form").hidden = !abilities.interpolates;
  $("#generate-form .prime").hidden = !abilities.continues_audio;
  const controls = $("#controls");
  if (controls.dataset.family !== abilities.name) {
    controls.dataset.family = abilities.name;
    controls.replaceChildren(...abilities.controls.map((c) => el("label", { title: c.help },
      `${c.name} `, el("input", { name: `control:${c.name}`, type: "number", step: "any", min: c.low, max: c.high,
        placeholder: `${c.low}-${c.high}` }))));
    $("#generate-form input[name=temperature]").placeholder = abilities.default_temperature ?? "";
  }
  const evaluation = run.evaluation;
  $("#evaluation").textContent = evaluation && evaluation.frechet
    ? `Fréchet ${Number(evaluation.frechet.generated_vs_test ?? evaluation.frechet).toFixed(1)}` : "";
  return run;
}

// the loss curves: one line per loss in the history, scaled together
function drawCurve(history) {
  const svg = $("#curve");
  const keys = history.length ? Object.keys(history[0]).filter((k) => /loss$/.test(k)) : [];
  const colours = ["#2563eb", "#dc2626", "#059669", "#9333ea", "#d97706", "#0891b2"];
  const values = keys.flatMap((k) => history.map((row) => row[k]).filter(Number.isFinite));
  svg.replaceChildren();
  svg.dataset.epochs = history.length;
  if (!values.length) {
    $("#curve-legend").textContent = "no epochs yet";
    return;
  }
  const low = Math.min(...values), high = Math.max(...values);
  const x = (i) => 10 + (history.length === 1 ? 290 : (580 * i) / (history.length - 1));
  const y = (v) => 210 - (200 * (v - low)) / ((high - low) || 1);
  const ns = "http://www.w3.org/2000/svg";
  keys.forEach((key, k) => {
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", history.map((row, i) => `${x(i).toFixed(1)},${y(row[key]).toFixed(1)}`).join(" "));
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", colours[k % colours.length]);
    line.setAttribute("stroke-width", "2");
    line.setAttribute("vector-effect", "non-scaling-stroke");
    line.dataset.key = key;
    svg.append(line);
  });
  $("#curve-legend").replaceChildren(...keys.map((key, k) => el("span", { style: `color:${colours[k % colours.length]}` },
    `${key} ${Number(history[history.length - 1][key]).toPrecision(4)} `)),
    `(epochs 1-${history.length}; range ${low.toPrecision(3)} to ${high.toPrecision(3)})`);
}

function clipCard(clip, caption) {
  return el("figure", { class: "clip" },
    el("figcaption", {}, caption),
    el("audio", { controls: true, preload: "metadata", src: clip.url }),
    clip.image_url ? el("img", { src: clip.image_url, alt: `spectrogram of ${caption}`, loading: "lazy" }) : null);
}

async function showCorpusClips() {
  const run = state.runs.find((r) => r.name === state.run);
  const holder = $("#corpus-clips");
  if (!run || !state.corpora.some((c) => c.name === run.corpus)) { holder.replaceChildren(); return; }
  const clips = await api(`/api/corpora/${encodeURIComponent(run.corpus)}/clips?split=test`);
  holder.replaceChildren(...clips.slice(0, 3).map((c) => clipCard(c, c.file)));
}

function showResult(job) {
  const result = job.result || {};
  const clips = result.clips || [];
  const holder = $("#results");
  const cards = clips.map((c) => clipCard(c, c.file));
  if (result.page) cards.push(el("p", {}, el("a", { href: result.page, target: "_blank" }, "the results page")));
  holder.prepend(...cards);
}

onSubmit($("#about-form"), async (data) => {
  await postJson(`/api/runs/${encodeURIComponent(state.run)}`,
    { display_name: data.get("display_name"), description: data.get("description") }, "PATCH");
  say("saved");
  await refreshRuns();
  await refreshRun();
});

onSubmit($("#train-form"), (data) => {
  const minutes = numberOrNull(data.get("minutes"));
  return postJson(`/api/runs/${encodeURIComponent(state.run)}/train`, {
    epochs: minutes ? null : numberOrNull(data.get("epochs")), minutes, phase: data.get("phase") || null,
  });
});

onSubmit($("#generate-form"), async (data) => {
  const controls = {};
  for (const [key, value] of data.entries()) {
    if (key.startsWith("control:") && value !== "") controls[key.slice(8)] = Number(value);
  }
  const primeFile = data.get("prime");
  const prime = primeFile && primeFile.size && !$("#generate-form .prime").hidden ? (await upload(primeFile)).id : null;
  return postJson(`/api/runs/${encodeURIComponent(state.run)}/generate`, {
    n: Number(data.get("n")), seconds: Number(data.get("seconds")), seed: Number(data.get("seed")),
    temperature: numberOrNull(data.get("temperature")), controls, prime,
    match_loudness: data.get("match_loudness") === "on",
  });
});

onSubmit($("#reconstruct-form"), async (data) => {
  const uploads = [];
  for (const file of data.getAll("files")) uploads.push((await upload(file)).id);
  return postJson(`/api/runs/${encodeURIComponent(state.run)}/reconstruct`, { uploads });
});

onSubmit($("#interpolate-form"), async (data) => {
  const a = (await upload(data.get("a"))).id;
  const b = (await upload(data.get("b"))).id;
  return postJson(`/api/runs/${encodeURIComponent(state.run)}/interpolate`, { a, b, steps: Number(data.get("steps")) });
});

onSubmit($("#evaluate-form"), (data) =>
  postJson(`/api/runs/${encodeURIComponent(state.run)}/evaluate`, { n: Number(data.get("n")) }));

// jobs ---------------------------------------------------------------------------------
const finished = (job) => ["done", "failed", "cancelled", "interrupted"].includes(job.status);
const seenFinished = new Set();

async function refreshJobs() {
  const jobs = await api("/api/jobs?limit=30");
  const body = $("#job-table tbody");
  body.replaceChildren(...jobs.map((job) => el("tr", { "data-job": job.id, "data-status": job.status },
    el("td", {}, job.id),
    el("td", {}, `${job.kind}${job.target ? ` ${job.target.split(":")[1]}` : ""}`),
    el("td", { class: `status ${job.status}` }, job.status, job.error ? el("div", { class: "meta" }, job.error) : null),
    el("td", {}, job.progress === null || job.progress === undefined
      ? (job.status === "running" ? el("progress", { "aria-label": `job ${job.id}` }) : "")
      : el("progress", { max: "1", value: job.progress, "aria-label": `job ${job.id}` })),
    el("td", {}, job.log.length ? el("details", {}, el("summary", {}, job.log[job.log.length - 1].slice(0, 60)),
      el("pre", {}, job.log.join("\n"))) : ""),
    el("td", {}, finished(job) ? "" : el("button", { type: "button", onclick: () => cancelJob(job.id) }, "Cancel")))));
  let changed = false;
  for (const job of jobs) {
    if (!finished(job) || seenFinished.has(job.id)) continue;
    seenFinished.add(job.id);
    if (!state.started) continue; // jobs that had finished before the page opened
    changed = true;
    if (job.status === "done" && job.target === `run:${state.run}` && job.result) showResult(job);
    if (job.kind === "compare" && job.status === "done") showComparison(job);
    say(`job ${job.id} (${job.kind}) ${job.status}${job.error ? `: ${job.error}` : ""}`, job.status !== "done");
  }
  state.started = true;
  return changed;
}

async function cancelJob(id) {
  try {
    await api(`/api/jobs/${id}/cancel`, { method: "POST" });
    await refreshJobs();
  } catch (error) { say(error.message, true); }
}

// compare ------------------------------------------------------------------------------
onSubmit($("#compare-form"), (data) => postJson("/api/compare", {
  corpus: data.get("corpus"), models: data.get("models").split(",").map((m) => m.trim()).filter(Boolean),
  budget_minutes: Number(data.get("budget_minutes")),
}));

function showComparison(job) {
  const result = job.result;
  $("#compare-result").replaceChildren(
    el("table", {}, el("thead", {}, el("tr", {}, result.header.map((h) => el("th", {}, h)))),
      el("tbody", {}, result.rows.map((row) => el("tr", { class: row[0] === result.best ? "best" : null },
        row.map((cell) => el("td", {}, cell)))))),
    el("p", {}, el("a", { href: result.page, target: "_blank" }, "listen to every family's clips")));
}

// start, then keep up: jobs every 2 s; corpora, runs and the open run when a job ends
async function refreshAll() {
  await refreshCorpora();
  await refreshRuns();
  await refreshRun();
}

async function tick() {
  try {
    const changed = await refreshJobs();
    if (changed || document.querySelector("#job-table [data-status=running]")) await refreshAll();
  } catch (error) { say(error.message, true); }
  setTimeout(tick, 2000);
}

(async () => {
  try {
    await refreshFamilies();
    await refreshAll();
    await refreshJobs();
    const runs = state.runs;
    const last = await api("/api/jobs?limit=1");
    if (last.length && last[0].kind === "compare" && last[0].status === "done") showComparison(last[0]);
    if (!state.run && runs.length) $("#run-table tbody").dataset.ready = "1";
    document.body.dataset.ready = "1";
  } catch (error) { say(error.message, true); }
  setTimeout(tick, 2000);
})();
