// The "Bad day" switch: the simulator's chaos mode, on or off (GET / PUT /sim/v1/chaos).
// In chaos mode the simulator fails a share of the bot's API calls and redelivers or delays
// some webhooks, the same way for the same seed; see docs/simulator.md. The phone itself
// (this page, /sim/v1) is never affected.

import { api } from "./api.js";

const REFRESH_MS = 4000;
const FAULTS = ["429", "502", "503", "slow", "down", "duplicate", "late", "failed_first"];

const root = document.getElementById("chaos");
const input = document.getElementById("chaos-switch");
const note = document.getElementById("chaos-note");

function describe(state) {
  if (state.down_for > 0) return `API down for ${Math.ceil(state.down_for)} s`;
  if (!state.enabled) return "Off: the bot's calls all go through";
  const stats = state.stats || {};
  const faults = FAULTS.reduce((sum, key) => sum + (stats[key] || 0), 0);
  const calls = (stats.api_calls || 0) + (stats.webhooks || 0);
  return `On (${state.spec}): ${faults} of ${calls} calls and webhooks disturbed`;
}

function show(state) {
  root.hidden = false;
  input.checked = Boolean(state.enabled);
  root.dataset.state = state.enabled ? "on" : "off";
  note.textContent = describe(state);
}

async function refresh() {
  if (document.visibilityState === "hidden" || input.disabled) return;
  try {
    show(await api("GET", "/sim/v1/chaos"));
  } catch {
    // A simulator without chaos mode, or not reachable right now: keep what is shown.
  }
}

async function toggle() {
  const wanted = input.checked;
  input.disabled = true;
  try {
    show(await api("PUT", "/sim/v1/chaos", { enabled: wanted }));
  } catch (error) {
    input.checked = !wanted;
    note.textContent = error.message;
  } finally {
    input.disabled = false;
  }
}

if (root && input && note) {
  input.addEventListener("change", toggle);
  refresh();
  setInterval(refresh, REFRESH_MS);
}
