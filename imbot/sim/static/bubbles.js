// Message bubbles: one thread's items turned into rows for reconcile() — time headers,
// bubbles with tails, tapback badges, media, receipts and the typing bubble.

import { isImage } from "./store.js";
import { el, fileName, headerWhen, humanSize, threadName } from "./dom.js";
import { tapbackFace } from "./glyphs.js";

const GROUP_GAP_MS = 3 * 60 * 1000; // bubbles closer than this share one tail
const TIME_GAP_MS = 15 * 60 * 1000; // a time header when a thread was quiet this long

export const SEND_STYLES = {
  celebration: ["Celebration", "screen", "✨"],
  shooting_star: ["Shooting Star", "screen", "🌠"],
  fireworks: ["Fireworks", "screen", "🎆"],
  lasers: ["Lasers", "screen", "🔆"],
  love: ["Love", "screen", "❤️"],
  confetti: ["Confetti", "screen", "🎉"],
  balloons: ["Balloons", "screen", "🎈"],
  spotlight: ["Spotlight", "screen", "🔦"],
  echo: ["Echo", "screen", null],
  invisible: ["Invisible Ink", "bubble", null],
  gentle: ["Gentle", "bubble", null],
  loud: ["Loud", "bubble", null],
  slam: ["Slam", "bubble", null],
};

/**
 * Rows for reconcile(): the items of thread `name`, oldest first, then the typing bubble.
 * `handlers.onTap(itemId, bubbleElement)` runs when a tappable (agent) bubble is chosen;
 * `handlers.onImageLoad()` when an inline image finishes loading.
 */
export function bubbleRows(store, name, handlers) {
  const items = store.itemsOf(name);
  const thread = store.threads.get(name) || {};
  const rows = [];
  let lastMine = null;
  for (const item of items) if (item.from === "me") lastMine = item;
  items.forEach((item, index) => {
    const prev = items[index - 1];
    const next = items[index + 1];
    const t = Date.parse(item.created_at);
    if (!prev || t - Date.parse(prev.created_at) > TIME_GAP_MS) {
      const [day, time] = headerWhen(item.created_at);
      rows.push({
        key: `sep:${item.id}`,
        sig: day + time,
        build: () => el("div", { class: "time-sep" }, el("strong", { text: day }), ` ${time}`),
      });
    }
    const startsGroup =
      !prev || prev.from !== item.from || t - Date.parse(prev.created_at) > GROUP_GAP_MS;
    const endsGroup =
      !next || next.from !== item.from || Date.parse(next.created_at) - t > GROUP_GAP_MS;
    const tappable = item.from === "them" && name !== "router" && Boolean(item.conversation_id);
    const sig = JSON.stringify([
      item.text,
      item.media,
      item.reactions,
      item.send_style,
      item.status === "failed",
      startsGroup,
      endsGroup,
      tappable,
    ]);
    rows.push({ key: `item:${item.id}`, sig, build: () => buildBubbleRow(item, { startsGroup, endsGroup, tappable }, handlers) });
    if (item === lastMine || (item.from === "me" && item.status === "failed")) {
      rows.push({
        key: `receipt:${item.id}`,
        sig: item.status,
        build: () => buildReceipt(item),
      });
    }
  });
  if (thread.typing) {
    rows.push({ key: "typing", sig: "typing", build: () => buildTyping(name) });
  }
  return rows;
}

function buildReceipt(item) {
  const labels = { sent: "Sent", delivered: "Delivered", read: "Read", failed: "Not Delivered" };
  return el("div", {
    class: `receipt receipt-${item.status}`,
    dataset: { testid: "receipt", status: item.status, for: item.id },
    text: labels[item.status] || "",
  });
}

function buildTyping(name) {
  return el(
    "div",
    { class: "row them group-start group-end typing-row" },
    el(
      "div",
      {
        class: "typing-bubble",
        dataset: { testid: "typing-bubble" },
        role: "img",
        "aria-label": `${threadName(name)} is typing`,
      },
      el("span", { class: "dot" }),
      el("span", { class: "dot" }),
      el("span", { class: "dot" }),
    ),
  );
}

function buildBubbleRow(item, { startsGroup, endsGroup, tappable }, handlers) {
  const style = item.send_style && SEND_STYLES[item.send_style];
  const media = item.media || [];
  const text = item.text || "";
  const emojiOnly = text && !media.length && /^(\p{Extended_Pictographic}|\uFE0F|\u200D|\s){1,8}$/u.test(text);
  const bubble = el("div", {
    class: [
      "bubble",
      style ? `fx-${item.send_style}` : "",
      item.status === "failed" ? "bubble-failed" : "",
      tappable ? "tappable" : "",
    ].join(" "),
    dataset: { testid: "bubble", from: item.from, id: item.id },
  });
  if (tappable) {
    bubble.tabIndex = 0;
    bubble.setAttribute("role", "button");
    bubble.setAttribute("aria-haspopup", "dialog");
    bubble.addEventListener("click", (event) => {
      if (event.target.closest("a")) return;
      handlers.onTap(item.id, bubble);
    });
    bubble.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        handlers.onTap(item.id, bubble);
      }
    });
  }
  const who = item.from === "me" ? "You" : threadName(item.thread);
  const described = [];
  for (const m of media) {
    if (isImage(m)) {
      const img = el("img", {
        class: "bubble-image",
        src: m.url,
        alt: `Image from ${who}`,
        decoding: "async",
        dataset: { testid: "bubble-image" },
      });
      img.addEventListener("load", () => handlers.onImageLoad());
      img.addEventListener("error", () => img.classList.add("broken"));
      bubble.append(el("div", { class: "part part-image" }, img));
      described.push("an image");
    } else {
      const name = fileName(m.url);
      bubble.append(
        el(
          "a",
          {
            class: "part part-file",
            href: m.url,
            target: "_blank",
            rel: "noopener",
            dataset: { testid: "bubble-file" },
          },
          el("span", { class: "file-icon", "aria-hidden": "true", text: "📎" }),
          el(
            "span",
            { class: "file-meta" },
            el("span", { class: "file-name", text: name }),
            el("span", {
              class: "file-size",
              text: [m.content_type, humanSize(m.size)].filter(Boolean).join(" · "),
            }),
          ),
        ),
      );
      described.push(`a file ${name}`);
    }
  }
  if (text || !media.length) {
    bubble.append(
      el(
        "div",
        { class: `part part-text${emojiOnly ? " emoji-only" : ""}${endsGroup ? " tail" : ""}` },
        el("span", { class: "text", text }),
      ),
    );
  }
  const reactions = item.reactions || [];
  if (reactions.length) {
    bubble.append(
      el(
        "div",
        { class: "tapbacks" },
        reactions.map((r) =>
          el(
            "span",
            {
              class: `tapback-badge tapback-${r.from}`,
              dataset: { testid: "tapback-badge", reaction: r.reaction, from: r.from },
              title: `${r.from === "me" ? "You" : threadName(item.thread)}: ${r.reaction === "custom" ? r.custom_emoji : r.reaction}`,
            },
            tapbackFace(r),
          ),
        ),
      ),
    );
  }
  const label = [
    `${who}:`,
    text,
    described.length ? `(${described.join(", ")})` : "",
    reactions.length
      ? `Reactions: ${reactions.map((r) => `${r.from === "me" ? "you" : "them"} ${r.reaction === "custom" ? r.custom_emoji : r.reaction}`).join(", ")}.`
      : "",
    tappable ? "Tap to react." : "",
  ]
    .filter(Boolean)
    .join(" ");
  bubble.setAttribute("aria-label", label);

  const row = el(
    "div",
    {
      class: [
        "row",
        item.from === "me" ? "me" : "them",
        startsGroup ? "group-start" : "",
        endsGroup ? "group-end" : "",
        reactions.length ? "has-tapbacks" : "",
        media.length ? "has-media" : "",
      ].join(" "),
    },
    bubble,
  );
  if (style) {
    row.append(el("div", { class: "send-style", text: `sent with ${style[0]}` }));
  }
  return row;
}
