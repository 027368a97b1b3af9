// DOM helpers for the chat page: element building, avatars, dates and keyed updates.
// Nothing here knows about the simulator or the page state.

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function threadName(name) {
  return name === "router" ? "Router" : `@${name}`;
}

const PALETTE = [
  ["#8e9eab", "#6b7b8c"],
  ["#ff9a8b", "#ff6a88"],
  ["#67d4a5", "#21a67a"],
  ["#a18cd1", "#7b61c4"],
  ["#fbc26b", "#f29c38"],
  ["#6ec3f4", "#3a8edb"],
  ["#f68fb6", "#d9589a"],
];

export function avatar(name, extraClass = "") {
  if (name === "router") {
    return el(
      "span",
      { class: `avatar avatar-router ${extraClass}`, "aria-hidden": "true" },
      svgIcon("M12 3C6.5 3 2 6.7 2 11.3c0 2.6 1.5 4.9 3.8 6.4-.2 1.3-.9 2.5-1.9 3.3 1.9 0 3.6-.7 4.9-1.8 1 .3 2.1.4 3.2.4 5.5 0 10-3.7 10-8.3S17.5 3 12 3Z"),
    );
  }
  let hash = 0;
  for (const ch of name) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  const [from, to] = PALETTE[hash % PALETTE.length];
  const node = el("span", { class: `avatar ${extraClass}`, "aria-hidden": "true" });
  node.style.backgroundImage = `linear-gradient(180deg, ${from}, ${to})`;
  node.textContent = [...name][0].toUpperCase();
  return node;
}

export function svgIcon(path) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  const p = document.createElementNS(ns, "path");
  p.setAttribute("d", path);
  p.setAttribute("fill", "currentColor");
  svg.append(p);
  return svg;
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: "long" });
const dateFmt = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });

function sameDay(a, b) {
  return a.toDateString() === b.toDateString();
}

/** "9:41 AM" today, "Yesterday", a weekday within a week, else a date. */
export function shortWhen(iso) {
  const when = new Date(iso);
  const now = new Date();
  if (sameDay(when, now)) return timeFmt.format(when);
  const yesterday = new Date(now);
  yesterday.setDate(now.getDate() - 1);
  if (sameDay(when, yesterday)) return "Yesterday";
  if (now - when < 6 * 86400000) return dayFmt.format(when);
  return dateFmt.format(when);
}

/** The centred header above a quiet-then-active stretch: "Today 9:41 AM". */
export function headerWhen(iso) {
  const when = new Date(iso);
  const now = new Date();
  const day = sameDay(when, now) ? "Today" : shortWhen(iso);
  return [day, timeFmt.format(when)];
}

export function humanSize(bytes) {
  if (!bytes && bytes !== 0) return "";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(0)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

export function fileName(url) {
  try {
    const path = new URL(url, location.href).pathname;
    return decodeURIComponent(path.split("/").filter(Boolean).pop() || "attachment");
  } catch {
    return "attachment";
  }
}

export function reducedMotion() {
  return window.matchMedia("(prefers-reduced-motion: reduce)").matches;
}

// Keyed DOM update: rows whose signature did not change keep their element
// (so images do not reload and focus stays), the rest are rebuilt, and the
// order is fixed in one pass.
export function reconcile(container, rows) {
  const existing = new Map();
  for (const child of container.children) existing.set(child.dataset.key, child);
  let cursor = container.firstElementChild;
  for (const row of rows) {
    let node = existing.get(row.key);
    if (node && node.dataset.sig !== row.sig) {
      if (node === cursor) cursor = cursor.nextElementSibling;
      node.remove();
      node = null;
    }
    if (!node) {
      node = row.build();
      node.dataset.key = row.key;
      node.dataset.sig = row.sig;
    }
    if (node === cursor) cursor = cursor.nextElementSibling;
    else container.insertBefore(node, cursor);
  }
  while (cursor) {
    const next = cursor.nextElementSibling;
    cursor.remove();
    cursor = next;
  }
}
