// Listening test page: loads test.json, keeps the listener's answers in localStorage until they are
// submitted, plays the mixes of a song in sync (only the chosen one unmuted) and posts the ratings.
"use strict";

const SYNC_TOLERANCE_S = 0.04;
const el = (id) => document.getElementById(id);
let test = null;
let state = null;
let storageKey = null;
let audios = [];
let active = 0;
let syncTimer = null;

function randomId() {
  const bytes = new Uint8Array(8);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function shuffled(items) {
  const out = items.slice();
  const random = new Uint32Array(out.length);
  crypto.getRandomValues(random);
  for (let i = out.length - 1; i > 0; i--) {
    const j = random[i] % (i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

function newState() {
  // Order of songs and of the mixes within each song is drawn once per listener.
  return {
    listener_id: randomId(),
    started_utc: new Date().toISOString(),
    order: shuffled(test.songs).map((song) => ({ song: song.id, stimuli: shuffled(song.stimuli.map((s) => s.id)) })),
    page: 0,
    ratings: {},
    about: { experience_years: null, device: "" },
    submitted: null,
  };
}

function save() { localStorage.setItem(storageKey, JSON.stringify(state)); }

function load() {
  try {
    const saved = JSON.parse(localStorage.getItem(storageKey) || "null");
    if (saved && saved.order && saved.order.length === test.songs.length) return saved;
  } catch (e) { /* a damaged entry starts a new session */ }
  return null;
}

const letter = (i) => String.fromCharCode(65 + i);
const srcOf = (id) => {
  for (const song of test.songs) for (const s of song.stimuli) if (s.id === id) return s.src;
  return null;
};

function missingCount() {
  let missing = 0;
  for (const page of state.order)
    for (const id of page.stimuli)
      for (const c of test.categories) if (!(state.ratings[id] && state.ratings[id][c.id])) missing++;
  return missing;
}

function master() { return audios[active]; }
function playing() { return audios.length > 0 && !master().paused; }

function stopAudio() {
  clearInterval(syncTimer);
  for (const a of audios) { a.pause(); a.removeAttribute("src"); a.load(); }
  audios = [];
  el("audios").replaceChildren();
}

function keepInSync() {
  const t = master().currentTime;
  for (const a of audios) if (a !== master() && Math.abs(a.currentTime - t) > SYNC_TOLERANCE_S) a.currentTime = t;
  el("time").textContent = `${t.toFixed(1)} s`;
  if (master().duration) el("position").value = Math.round((1000 * t) / master().duration);
}

function select(index) {
  const previous = master();
  active = index;
  const now = master();
  if (previous && previous !== now && Math.abs(now.currentTime - previous.currentTime) > SYNC_TOLERANCE_S)
    now.currentTime = previous.currentTime;
  audios.forEach((a, i) => { a.muted = i !== active; });
  document.querySelectorAll("#switches button").forEach((b, i) => {
    b.classList.toggle("active", i === active);
    b.setAttribute("aria-pressed", String(i === active));
  });
  document.querySelectorAll("#ratings tbody tr").forEach((r, i) => r.classList.toggle("active-row", i === active));
}

async function togglePlay() {
  if (playing()) {
    for (const a of audios) a.pause();
    el("play").textContent = "Play";
    return;
  }
  const t = master().currentTime;
  for (const a of audios) a.currentTime = t;
  try {
    await Promise.all(audios.map((a) => a.play()));
    el("play").textContent = "Pause";
  } catch (e) {
    status(`Playback failed: ${e.message}`, "error");
  }
}

function renderPage() {
  stopAudio();
  const page = state.order[state.page];
  el("progress").textContent = `Song ${state.page + 1} of ${state.order.length}`;
  const switches = el("switches");
  switches.replaceChildren();
  page.stimuli.forEach((id, i) => {
    const audio = document.createElement("audio");
    audio.src = srcOf(id);
    audio.preload = "auto";
    audio.loop = true;
    audio.muted = i !== 0;
    audio.dataset.stimulus = id;
    audio.dataset.label = letter(i);
    el("audios").appendChild(audio);
    audios.push(audio);
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = `Mix ${letter(i)}`;
    button.dataset.index = String(i);
    button.addEventListener("click", () => select(i));
    switches.appendChild(button);
  });
  active = 0;
  el("play").disabled = false;
  el("play").textContent = "Play";
  syncTimer = setInterval(() => { if (playing()) keepInSync(); }, 250);

  const table = el("ratings");
  const head = `<thead><tr><th class="mix">Mix</th>${test.categories
    .map((c) => `<th title="${c.definition}">${c.label}</th>`).join("")}</tr></thead>`;
  const rows = page.stimuli.map((id, i) => {
    const cells = test.categories.map((c) => {
      const current = state.ratings[id] && state.ratings[id][c.id];
      const options = [];
      for (let v = test.scale.min; v <= test.scale.max; v++) {
        const checked = current === v ? " checked" : "";
        options.push(`<label title="${test.scale.labels[v] || ""}"><input type="radio" name="r-${id}-${c.id}" ` +
          `value="${v}" data-stimulus="${id}" data-category="${c.id}"${checked}>${v}</label>`);
      }
      return `<td><span class="scale">${options.join("")}</span></td>`;
    }).join("");
    return `<tr data-index="${i}"><th class="mix"><button type="button" class="row-switch" data-index="${i}">` +
      `Mix ${letter(i)}</button></th>${cells}</tr>`;
  }).join("");
  table.innerHTML = `${head}<tbody>${rows}</tbody>`;
  table.querySelectorAll("input[type=radio]").forEach((input) => input.addEventListener("change", () => {
    const id = input.dataset.stimulus;
    state.ratings[id] = state.ratings[id] || {};
    state.ratings[id][input.dataset.category] = Number(input.value);
    save();
    updateNavigation();
  }));
  table.querySelectorAll(".row-switch").forEach((b) => b.addEventListener("click", () => select(Number(b.dataset.index))));
  select(0);
  updateNavigation();
}

function updateNavigation() {
  const last = state.page === state.order.length - 1;
  el("previous").disabled = state.page === 0;
  el("next").hidden = last;
  el("submit").hidden = !last;
  el("about").hidden = !last;
  const missing = missingCount();
  el("missing").textContent = missing ? `${missing} ratings still missing` : "All mixes rated";
  el("missing").classList.toggle("complete", missing === 0);
  el("submit").disabled = missing > 0 || Boolean(state.submitted);
}

function status(text, kind) {
  const s = el("status");
  s.textContent = text;
  s.className = `status ${kind || ""}`;
}

async function submit() {
  const ratings = [];
  for (const page of state.order)
    for (const id of page.stimuli)
      for (const c of test.categories)
        ratings.push({ song: page.song, stimulus: id, category: c.id, rating: state.ratings[id][c.id] });
  const body = {
    test_id: test.test_id,
    listener_id: state.listener_id,
    started_utc: state.started_utc,
    submitted_utc: new Date().toISOString(),
    order: state.order,
    about: state.about,
    user_agent: navigator.userAgent,
    ratings,
  };
  el("submit").disabled = true;
  status("Sending...");
  try {
    const response = await fetch("api/submit", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body) });
    const answer = await response.json();
    if (!response.ok || !answer.ok) throw new Error(answer.error || response.statusText);
    state.submitted = answer.stored;
    save();
    stopAudio();
    status("Thank you: your answers are stored.", "done");
  } catch (e) {
    el("submit").disabled = false;
    status(`Not stored (${e.message}); your answers are kept here, try again.`, "error");
  }
}

async function start() {
  test = await (await fetch("test.json", { cache: "no-store" })).json();
  storageKey = `vocalmix-listening-${test.test_id}`;
  document.title = test.title;
  el("title").textContent = test.title;
  state = load() || newState();
  save();
  el("definitions").innerHTML = test.categories.map((c) => `<dt>${c.label}</dt><dd>${c.definition}</dd>`).join("");
  el("experience").value = state.about.experience_years ?? "";
  el("device").value = state.about.device || "";
  el("experience").addEventListener("input", () => {
    const v = el("experience").value;
    state.about.experience_years = v === "" ? null : Number(v);
    save();
  });
  el("device").addEventListener("change", () => { state.about.device = el("device").value; save(); });
  el("play").addEventListener("click", togglePlay);
  el("position").addEventListener("input", () => {
    if (!master().duration) return;
    const t = (Number(el("position").value) / 1000) * master().duration;
    for (const a of audios) a.currentTime = t;
  });
  el("previous").addEventListener("click", () => { state.page = Math.max(0, state.page - 1); save(); renderPage(); });
  el("next").addEventListener("click", () => {
    state.page = Math.min(state.order.length - 1, state.page + 1);
    save();
    renderPage();
  });
  el("submit").addEventListener("click", submit);
  document.addEventListener("keydown", (event) => {
    // Keys 1-9 switch mixes and space plays/pauses, except while typing in the questionnaire.
    if (event.target.matches("input[type=number], select") || event.ctrlKey || event.metaKey || event.altKey) return;
    const number = Number(event.key);
    if (Number.isInteger(number) && number >= 1 && number <= audios.length) {
      select(number - 1);
      event.preventDefault();
    } else if (event.key === " " && audios.length) {
      togglePlay();
      event.preventDefault();
    }
  });
  renderPage();
  if (state.submitted) status("Your answers were submitted already. Thank you.", "done");
}

window.vocalmixListening = { state: () => state, active: () => active, audios: () => audios };
start().catch((e) => status(`The test could not be loaded: ${e.message}`, "error"));
