// The imbot simulator's chat page: a phone that texts bots through the /sim/v1 API.
// Plain ES modules, no build step: store.js holds the state, bubbles.js draws messages,
// dom.js and api.js are helpers; this file wires the screens to the simulator
// (fetch + EventSource).

import { api } from "./api.js";
import { SEND_STYLES, bubbleRows } from "./bubbles.js";
import { connectHandle, connectOutcome } from "./connect.js";
import { avatar, el, reconcile, reducedMotion, shortWhen, threadName } from "./dom.js";
import { tapbackFace } from "./glyphs.js";
import { PhoneStore, TAPBACKS, formatNumber, isImage, normalizeNumber } from "./store.js";

const STORAGE_KEY = "imbot.sim.phone";
const ROUTER_TO = "router";
// After a connect worked, the router's answer stays on screen this long before the page
// moves to the agent's thread, so one sees what happened.
const CONNECT_FOLLOW_MS = 900;
// A connect that got no answer in this time is not followed any more.
const CONNECT_PATIENCE_MS = 20_000;
const PICKER_GAP = 8; // px between the tapback picker and the bubbles around it
const BADGE_ROOM = 20; // px of tapback badges above a bubble that has some

const $ = (id) => document.getElementById(id);
const ui = {
  screen: $("screen"),
  myNumber: $("my-number"),
  phoneSwitch: $("phone-switch"),
  conn: $("conn"),
  threadList: $("thread-list"),
  listFoot: $("list-foot"),
  caption: $("stage-caption"),
  back: $("back"),
  backBadge: $("back-badge"),
  chatAvatar: $("chat-avatar"),
  chatTitle: $("chat-title"),
  chatSubtitle: $("chat-subtitle"),
  chatHeader: document.querySelector("#chat-pane .chat-header"),
  chatScroll: $("chat-scroll"),
  chatIntro: $("chat-intro"),
  chatLog: $("chat-log"),
  composer: $("composer"),
  input: $("composer-input"),
  send: $("composer-send"),
  attach: $("attach-input"),
  staged: $("staged"),
  stagedImg: $("staged-img"),
  stagedRemove: $("staged-remove"),
  sheet: $("phone-sheet"),
  sheetBackdrop: $("phone-sheet-backdrop"),
  phoneForm: $("phone-form"),
  phoneInput: $("phone-input"),
  phoneError: $("phone-error"),
  phoneRandom: $("phone-random"),
  phoneCancel: $("phone-cancel"),
  knownWrap: $("known-phones-wrap"),
  known: $("known-phones"),
  pickerLayer: $("picker-layer"),
  effects: $("effect-layer"),
  toast: $("toast"),
};

const app = {
  phone: null,
  store: null,
  selected: null,
  info: { router_number: null, handles: [], phones: [] },
  events: null,
  loadSeq: 0,
  staged: null, // File waiting in the composer
  sending: false,
  renderQueued: false,
  forceScroll: false,
  smoothScroll: false,
  lastPickerBubble: null,
  pickerRow: null,
  retryTimer: null,
  pendingConnect: null, // {handle, from, at} after the human texted `connect @handle`
};

const phonePath = (suffix) => `/sim/v1/phones/${app.phone}${suffix}`;

let toastTimer = null;
function toast(message, { error = false } = {}) {
  ui.toast.textContent = message;
  ui.toast.classList.toggle("toast-error", error);
  ui.toast.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    ui.toast.hidden = true;
  }, 4000);
}

// ---------------------------------------------------------------- phone number

function openPhoneSheet() {
  ui.phoneInput.value = app.phone || "";
  ui.phoneError.textContent = "";
  ui.phoneInput.removeAttribute("aria-invalid");
  ui.phoneCancel.hidden = !app.phone;
  renderKnownPhones();
  ui.sheet.hidden = false;
  ui.sheetBackdrop.hidden = false;
  requestAnimationFrame(() => ui.phoneInput.focus());
  refreshInfo();
}

function closePhoneSheet() {
  if (!app.phone) return; // the page needs a number first
  ui.sheet.hidden = true;
  ui.sheetBackdrop.hidden = true;
  ui.phoneSwitch.focus();
}

function renderKnownPhones() {
  const phones = (app.info.phones || []).filter((n) => n !== app.phone);
  ui.knownWrap.hidden = phones.length === 0;
  ui.known.replaceChildren(
    ...phones.map((number) =>
      el(
        "li",
        {},
        el(
          "button",
          {
            type: "button",
            class: "known-phone",
            dataset: { number },
            onclick: () => choosePhone(number),
          },
          formatNumber(number),
        ),
      ),
    ),
  );
}

function choosePhone(raw) {
  const number = normalizeNumber(raw);
  if (!number) {
    ui.phoneError.textContent =
      "That is not an E.164 number: a “+”, the country code, then the number (up to 15 digits).";
    ui.phoneInput.setAttribute("aria-invalid", "true");
    ui.phoneInput.focus();
    return;
  }
  try {
    localStorage.setItem(STORAGE_KEY, number);
  } catch {
    // Private mode: the number is simply not remembered.
  }
  ui.sheet.hidden = true;
  ui.sheetBackdrop.hidden = true;
  if (number !== app.phone) start(number);
}

function randomNumber() {
  const digits = Array.from({ length: 7 }, () => Math.floor(Math.random() * 10)).join("");
  return `+1555${digits}`;
}

// ---------------------------------------------------------------- live connection

async function refreshInfo() {
  try {
    app.info = await api("GET", "/sim/v1/info");
  } catch {
    return;
  }
  renderKnownPhones();
  renderFoot();
  scheduleRender();
}

function setConn(state) {
  const labels = { connecting: "Connecting…", live: "Live", offline: "Reconnecting…" };
  ui.conn.dataset.state = state;
  ui.conn.textContent = labels[state];
  ui.screen.dataset.conn = state;
}

async function loadTimeline() {
  const seq = ++app.loadSeq;
  const store = app.store;
  store.beginLoad();
  try {
    const timeline = await api("GET", phonePath("/timeline"));
    if (seq !== app.loadSeq || store !== app.store) return;
    store.load(timeline);
  } catch (error) {
    if (store === app.store) store.abortLoad();
    toast(error.message, { error: true });
  }
}

function connectEvents() {
  if (app.events) app.events.close();
  setConn("connecting");
  const source = new EventSource(phonePath("/events"));
  app.events = source;
  const parse = (handler) => (event) => {
    if (source !== app.events) return;
    let data;
    try {
      data = JSON.parse(event.data);
    } catch {
      return;
    }
    handler(data);
  };
  // "ready" comes first on every (re)connection: fetch the snapshot then, so nothing
  // that happened while we were away is missed.
  source.addEventListener("ready", () => {
    if (source !== app.events) return;
    setConn("live");
    loadTimeline();
    refreshInfo();
  });
  source.addEventListener(
    "item",
    parse((item) => app.store.apply("item", item)),
  );
  source.addEventListener(
    "typing",
    parse((data) => app.store.apply("typing", data)),
  );
  source.addEventListener(
    "thread",
    parse((thread) => {
      app.store.apply("thread", thread);
      refreshInfo();
    }),
  );
  source.addEventListener("error", () => {
    if (source !== app.events) return;
    setConn("offline");
    // The browser retries by itself after a dropped stream, but gives up for good on
    // an HTTP error answer (e.g. while the simulator restarts): then we retry.
    if (source.readyState === EventSource.CLOSED) {
      clearTimeout(app.retryTimer);
      app.retryTimer = setTimeout(() => {
        if (source === app.events) connectEvents();
      }, 2000);
    }
  });
}

function start(number) {
  app.phone = number;
  app.store = new PhoneStore();
  app.store.subscribe(onStoreChange);
  app.selected = null;
  app.pendingConnect = null;
  ui.myNumber.textContent = formatNumber(number);
  ui.screen.dataset.view = "list";
  connectEvents();
  scheduleRender();
}

function onStoreChange(change) {
  if (change.kind === "item" && change.isNew && !app.store.loading) {
    const item = change.item;
    if (item.thread === app.selected) app.smoothScroll = true;
    if (item.from === "them" && item.send_style) playEffect(item);
  }
  if (change.kind === "load") app.forceScroll = true;
  followConnect(change);
  scheduleRender();
}

// ---------------------------------------------------------------- connect, then follow

function followConnect(change) {
  const pending = app.pendingConnect;
  if (!pending || app.store.loading) return;
  if (app.selected !== pending.from || Date.now() - pending.at > CONNECT_PATIENCE_MS) {
    app.pendingConnect = null; // the human moved on
    return;
  }
  const outcome = connectOutcome(app.store, pending.handle, change);
  if (outcome === null || pending.target) return;
  if (outcome === "failed") {
    app.pendingConnect = null;
    return;
  }
  pending.target = outcome;
  setTimeout(() => {
    if (app.pendingConnect !== pending) return;
    app.pendingConnect = null;
    if (app.selected === pending.from) openThread(outcome);
  }, CONNECT_FOLLOW_MS);
}

// ---------------------------------------------------------------- rendering

function scheduleRender() {
  if (app.renderQueued) return;
  app.renderQueued = true;
  queueMicrotask(() => {
    app.renderQueued = false;
    render();
  });
}

function render() {
  if (!app.store) return;
  renderThreads();
  renderChat();
  renderFoot();
}

function renderFoot() {
  const router = app.info.router_number || (app.store && app.store.routerNumber);
  const handles = app.info.handles || [];
  ui.listFoot.textContent = router
    ? `Router ${formatNumber(router)} · ${handles.length} agent${handles.length === 1 ? "" : "s"} available`
    : "";
  ui.caption.textContent = router
    ? `imbot simulator · router ${formatNumber(router)}`
    : "imbot simulator";
}

function previewOf(row) {
  if (row.typing) return ["typing…", "preview-typing"];
  const last = row.last;
  if (!last) {
    if (row.thread === "router") return ["Text connect @handle to reach an agent", "preview-hint"];
    return ["Connected. Say hi!", "preview-hint"];
  }
  if (last.text) return [last.text, ""];
  if (last.media && last.media.length) {
    return [last.media.some(isImage) ? "Image" : "Attachment", "preview-media"];
  }
  return ["", ""];
}

function renderThreads() {
  const rows = app.store.threadList().map((row) => {
    const [preview, previewClass] = previewOf(row);
    const when = row.last ? shortWhen(row.last.created_at) : "";
    const released = row.status === "released";
    const sig = JSON.stringify([preview, previewClass, when, row.unread, released, row.thread === app.selected]);
    return {
      key: row.thread,
      sig,
      build: () =>
        el(
          "li",
          { class: "thread-item" },
          el(
            "button",
            {
              type: "button",
              class: `thread${row.unread ? " thread-unread" : ""}`,
              dataset: { testid: `thread-${row.thread}`, thread: row.thread },
              "aria-current": row.thread === app.selected ? "true" : null,
              "aria-label": `${threadName(row.thread)}${row.unread ? `, ${row.unread} unread` : ""}${released ? ", disconnected" : ""}: ${preview}`,
              onclick: () => openThread(row.thread),
            },
            el("span", { class: "unread-dot", "aria-hidden": "true" }),
            avatar(row.thread),
            el(
              "span",
              { class: "thread-main" },
              el(
                "span",
                { class: "thread-top" },
                el("span", { class: "thread-name", text: threadName(row.thread) }),
                released ? el("span", { class: "tag", text: "disconnected" }) : null,
                el("span", { class: "thread-time", text: when }),
                el("span", { class: "chevron", "aria-hidden": "true", text: "›" }),
              ),
              el("span", { class: `thread-preview ${previewClass}`, text: preview }),
            ),
          ),
        ),
    };
  });
  reconcile(ui.threadList, rows);
  const unreadElsewhere = [...app.store.unread.entries()]
    .filter(([name]) => name !== app.selected)
    .reduce((sum, [, n]) => sum + n, 0);
  ui.backBadge.hidden = unreadElsewhere === 0;
  ui.backBadge.textContent = unreadElsewhere ? String(unreadElsewhere) : "";
}

function openThread(name) {
  app.selected = name;
  app.store.open(name);
  app.forceScroll = true;
  closePicker();
  ui.screen.dataset.view = "chat";
  renderComposerState();
  render();
  // With a mouse, the composer is ready to type in; on a touch screen no keyboard pops up.
  if (window.matchMedia("(pointer: fine)").matches) ui.input.focus({ preventScroll: true });
}

function closeThread() {
  app.selected = null;
  app.store.open(null);
  closePicker();
  ui.screen.dataset.view = "list";
  render();
  const row = ui.threadList.querySelector("button.thread");
  if (row) row.focus({ preventScroll: true });
}

function renderComposerState() {
  const name = app.selected;
  if (name === "router") {
    const handles = app.info.handles || [];
    ui.input.placeholder = `Text connect @${handles[0] || "handle"}`;
  } else {
    ui.input.placeholder = "iMessage";
  }
  ui.send.disabled = app.sending || (!ui.input.value.trim() && !app.staged);
}

function renderHeader() {
  const name = app.selected;
  const thread = app.store.threads.get(name) || {};
  ui.chatTitle.textContent = threadName(name);
  if (ui.chatAvatar.dataset.thread !== name) {
    const fresh = avatar(name, "avatar-small");
    fresh.id = "chat-avatar";
    fresh.dataset.thread = name;
    ui.chatAvatar.replaceWith(fresh);
    ui.chatAvatar = fresh;
  }
  let subtitle = "iMessage";
  if (name === "router") {
    subtitle = formatNumber(app.info.router_number || app.store.routerNumber || "");
  } else if (thread.typing) subtitle = "typing…";
  else if (thread.status === "released") subtitle = "disconnected";
  ui.chatSubtitle.textContent = subtitle;
}

function renderIntro() {
  const name = app.selected;
  const thread = app.store.threads.get(name) || {};
  // Rebuilt only when it would change, so a focused suggestion keeps its focus.
  const sig = JSON.stringify([name, thread.status, app.info.handles]);
  if (ui.chatIntro.dataset.sig === sig) return;
  ui.chatIntro.dataset.sig = sig;
  if (name === "router") {
    const handles = app.info.handles || [];
    ui.chatIntro.replaceChildren(
      el(
        "p",
        {},
        "This is the Inkbox router. Text ",
        el("code", { text: "connect @handle" }),
        " to reach an agent: your conversation with it opens in a new thread.",
      ),
      handles.length
        ? el(
            "div",
            { class: "chips", role: "group", "aria-label": "Agents you can connect to" },
            handles.map((handle) =>
              el("button", {
                type: "button",
                class: "chip",
                text: `connect @${handle}`,
                onclick: () => {
                  ui.input.value = `connect @${handle}`;
                  autoGrow();
                  renderComposerState();
                  ui.input.focus();
                },
              }),
            ),
          )
        : el("p", { class: "muted", text: "No agent has iMessage enabled yet." }),
    );
  } else if (thread.status === "released") {
    ui.chatIntro.replaceChildren(
      el(
        "p",
        {},
        `@${name} disconnected this conversation. Text `,
        el("code", { text: `connect @${name}` }),
        " to the router to talk again.",
      ),
    );
  } else {
    ui.chatIntro.replaceChildren(
      el("p", {}, `Connected to @${name} through the router. Tap one of its messages to react.`),
    );
  }
}

function nearBottom() {
  const s = ui.chatScroll;
  return s.scrollHeight - s.scrollTop - s.clientHeight < 96;
}

function scrollToBottom(smooth) {
  const s = ui.chatScroll;
  s.scrollTo({ top: s.scrollHeight, behavior: smooth && !reducedMotion() ? "smooth" : "auto" });
}

function renderChat() {
  const name = app.selected;
  if (!name) return;
  const stick = app.forceScroll || nearBottom();
  renderHeader();
  renderIntro();
  reconcile(
    ui.chatLog,
    bubbleRows(app.store, name, {
      onTap: openPicker,
      onImageLoad: () => {
        if (app.stickToBottom) scrollToBottom(false);
      },
    }),
  );
  renderComposerState();
  // A rebuilt row (its message changed) took the picker's bubble away.
  if (app.lastPickerBubble && !app.lastPickerBubble.isConnected) closePicker();
  if (stick) scrollToBottom(app.smoothScroll && !app.forceScroll);
  app.stickToBottom = stick || nearBottom();
  app.forceScroll = false;
  app.smoothScroll = false;
}

// ---------------------------------------------------------------- tapback picker

function openPicker(messageId, bubble) {
  closePicker();
  const item = app.store.items.get(messageId);
  if (!item) return;
  const mine = (item.reactions || []).find((r) => r.from === "me");
  const options = TAPBACKS.map(([kind, , label]) =>
    el(
      "button",
      {
        type: "button",
        class: `tapback-option${mine && mine.reaction === kind ? " selected" : ""}`,
        dataset: { testid: `tapback-option-${kind}`, kind },
        "aria-label": label,
        "aria-pressed": mine && mine.reaction === kind ? "true" : "false",
        title: label,
        onclick: (event) => {
          event.stopPropagation();
          sendTapback(item, kind);
        },
      },
      tapbackFace({ reaction: kind }),
    ),
  );
  const picker = el(
    "div",
    {
      class: "tapback-picker",
      role: "dialog",
      "aria-label": "React to this message",
      dataset: { testid: "tapback-picker" },
    },
    options,
  );
  picker.addEventListener("keydown", (event) => {
    const buttons = [...picker.querySelectorAll("button")];
    const at = buttons.indexOf(document.activeElement);
    if (event.key === "ArrowRight" || event.key === "ArrowLeft") {
      event.preventDefault();
      const step = event.key === "ArrowRight" ? 1 : -1;
      buttons[(at + step + buttons.length) % buttons.length].focus();
    } else if (event.key === "Tab") {
      // Keep focus inside the picker while it is open.
      event.preventDefault();
      buttons[(at + (event.shiftKey ? -1 : 1) + buttons.length) % buttons.length].focus();
    }
  });
  ui.pickerLayer.replaceChildren(picker);
  ui.pickerLayer.hidden = false;
  bubble.classList.add("picking");
  app.lastPickerBubble = bubble;

  // The bubble's row moves down to make room, and the picker sits in that room: it covers
  // neither the bubble nor the one above it. The bubble keeps its place on screen (what is
  // above scrolls up) unless the room would be above the visible part.
  const row = bubble.closest(".row") || bubble;
  const height = picker.offsetHeight;
  const badges = row.classList.contains("has-tapbacks") ? BADGE_ROOM : 0;
  keepInPlace(bubble, () => {
    row.style.setProperty("--picker-room", `${height + 2 * PICKER_GAP + badges}px`);
    row.classList.add("picker-room");
  });
  app.pickerRow = row;
  const above = () => bubble.getBoundingClientRect().top - badges - PICKER_GAP - height;
  const visibleTop =
    Math.max(ui.chatScroll.getBoundingClientRect().top, ui.chatHeader.getBoundingClientRect().bottom) + PICKER_GAP;
  if (above() < visibleTop) ui.chatScroll.scrollTop -= visibleTop - above();
  const screen = ui.screen.getBoundingClientRect();
  const width = picker.offsetWidth;
  const left = bubble.getBoundingClientRect().left - screen.left;
  picker.style.left = `${Math.max(10, Math.min(left, screen.width - width - 10))}px`;
  picker.style.top = `${above() - screen.top}px`;
  (picker.querySelector(".selected") || options[0]).focus();
}

/** Runs `change` (a layout change above `node`), then scrolls so `node` stays put on screen. */
function keepInPlace(node, change) {
  const before = node.isConnected ? node.getBoundingClientRect().top : null;
  change();
  if (before !== null && node.isConnected) {
    ui.chatScroll.scrollTop += node.getBoundingClientRect().top - before;
  }
}

function closePicker({ restoreFocus = false } = {}) {
  if (ui.pickerLayer.hidden) return;
  ui.pickerLayer.hidden = true;
  ui.pickerLayer.replaceChildren();
  const bubble = app.lastPickerBubble;
  const row = app.pickerRow;
  app.lastPickerBubble = null;
  app.pickerRow = null;
  if (row) {
    keepInPlace(bubble || row, () => {
      row.classList.remove("picker-room");
      row.style.removeProperty("--picker-room");
    });
  }
  if (bubble) {
    bubble.classList.remove("picking");
    if (restoreFocus && bubble.isConnected) bubble.focus();
  }
}

async function sendTapback(item, kind) {
  closePicker();
  try {
    const data = await api("POST", phonePath("/reactions"), {
      message_id: item.id,
      reaction: kind,
      custom_emoji: null,
    });
    const reaction = data && data.reaction;
    app.store.setMyReaction(item.id, {
      id: reaction ? reaction.id : `local-${kind}`,
      from: "me",
      reaction: kind,
      custom_emoji: null,
    });
  } catch (error) {
    toast(`Couldn't react: ${error.message}`, { error: true });
  }
}

// ---------------------------------------------------------------- effects

function playEffect(item) {
  const style = SEND_STYLES[item.send_style];
  if (!style || style[1] !== "screen" || !style[2] || reducedMotion()) return;
  if (item.thread !== app.selected) return;
  const emoji = style[2];
  const pieces = Array.from({ length: 18 }, (_, i) => {
    const piece = el("span", { class: "fx-piece", text: emoji });
    piece.style.left = `${(i * 53) % 100}%`;
    piece.style.animationDelay = `${(i % 6) * 0.12}s`;
    piece.style.fontSize = `${18 + ((i * 7) % 16)}px`;
    return piece;
  });
  ui.effects.replaceChildren(...pieces);
  ui.effects.classList.remove("playing");
  void ui.effects.offsetWidth; // restart the animation
  ui.effects.classList.add("playing");
  setTimeout(() => {
    ui.effects.classList.remove("playing");
    ui.effects.replaceChildren();
  }, 2600);
}

// ---------------------------------------------------------------- composer

function autoGrow() {
  ui.input.style.height = "auto";
  ui.input.style.height = `${Math.min(ui.input.scrollHeight, 120)}px`;
}

function stage(file) {
  if (app.stagedUrl) URL.revokeObjectURL(app.stagedUrl);
  app.staged = file;
  app.stagedUrl = file ? URL.createObjectURL(file) : null;
  ui.staged.hidden = !file;
  ui.stagedImg.src = app.stagedUrl || "";
  ui.stagedImg.alt = file ? `Attachment: ${file.name}` : "";
  renderComposerState();
}

async function sendMessage() {
  const text = ui.input.value.trim();
  const file = app.staged;
  if (app.sending || (!text && !file) || !app.selected) return;
  app.sending = true;
  const thread = app.selected;
  ui.input.value = "";
  autoGrow();
  stage(null);
  renderComposerState();
  try {
    let mediaUrl = null;
    if (file) {
      const form = new FormData();
      form.append("file", file, file.name || "image");
      const uploaded = await api("POST", "/sim/v1/media", form);
      mediaUrl = uploaded.media_url;
    }
    // Set before the POST: the live stream may bring the router's answer before it returns.
    const handle = file ? null : connectHandle(text);
    if (handle) app.pendingConnect = { handle, from: thread, at: Date.now() };
    const data = await api("POST", phonePath("/messages"), {
      text: text || null,
      media_url: mediaUrl,
      to: thread === "router" ? ROUTER_TO : thread,
    });
    if (data && data.item) {
      app.forceScroll = true;
      // The live stream may already have brought this item, and a newer state of it
      // (e.g. "read"): the POST answer only fills in what we have not seen.
      if (!app.store.items.has(data.item.id)) app.store.apply("item", data.item);
      if (data.item.thread !== thread) toast(`Sent to ${threadName(data.item.thread)}`);
    }
  } catch (error) {
    app.pendingConnect = null;
    if (!ui.input.value) ui.input.value = text;
    if (file && !app.staged) stage(file);
    autoGrow();
    toast(`Not sent: ${error.message}`, { error: true });
  } finally {
    app.sending = false;
    renderComposerState();
    if (app.selected === thread && document.activeElement !== ui.input) {
      ui.input.focus({ preventScroll: true });
    }
  }
}

// ---------------------------------------------------------------- wiring

function wire() {
  ui.phoneSwitch.addEventListener("click", openPhoneSheet);
  ui.phoneCancel.addEventListener("click", closePhoneSheet);
  ui.sheetBackdrop.addEventListener("click", closePhoneSheet);
  ui.phoneRandom.addEventListener("click", () => {
    ui.phoneInput.value = randomNumber();
    ui.phoneError.textContent = "";
    ui.phoneInput.removeAttribute("aria-invalid");
    ui.phoneInput.focus();
  });
  ui.phoneForm.addEventListener("submit", (event) => {
    event.preventDefault();
    choosePhone(ui.phoneInput.value);
  });
  ui.phoneInput.addEventListener("input", () => {
    ui.phoneError.textContent = "";
    ui.phoneInput.removeAttribute("aria-invalid");
  });

  ui.back.addEventListener("click", closeThread);
  ui.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    sendMessage();
  });
  ui.input.addEventListener("input", () => {
    autoGrow();
    renderComposerState();
  });
  ui.input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      sendMessage();
    }
  });
  ui.attach.addEventListener("change", () => {
    const file = ui.attach.files && ui.attach.files[0];
    ui.attach.value = "";
    if (file) {
      stage(file);
      ui.input.focus();
    }
  });
  ui.stagedRemove.addEventListener("click", () => {
    stage(null);
    ui.input.focus();
  });
  ui.pickerLayer.addEventListener("click", (event) => {
    if (event.target === ui.pickerLayer) closePicker({ restoreFocus: true });
  });
  ui.chatScroll.addEventListener(
    "scroll",
    () => {
      app.stickToBottom = nearBottom();
    },
    { passive: true },
  );
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    if (!ui.pickerLayer.hidden) closePicker({ restoreFocus: true });
    else if (!ui.sheet.hidden) closePhoneSheet();
    else if (ui.screen.dataset.view === "chat") closeThread();
  });
}

function boot() {
  wire();
  // In a query string "+" reads as a space: "?phone=+15551234567" arrives as " 1555…".
  const asked = new URLSearchParams(location.search).get("phone");
  const fromUrl = asked ? normalizeNumber(asked.replace(/^\s/, "+")) : null;
  let stored = null;
  try {
    stored = normalizeNumber(localStorage.getItem(STORAGE_KEY));
  } catch {
    stored = null;
  }
  const number = fromUrl || stored;
  refreshInfo();
  if (number) {
    if (fromUrl) {
      try {
        localStorage.setItem(STORAGE_KEY, fromUrl);
      } catch {
        // not remembered; fine
      }
    }
    start(number);
  } else {
    setConn("connecting");
    openPhoneSheet();
  }
}

boot();
