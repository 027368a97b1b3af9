// Tapback faces that need no emoji font.
// Without a colour emoji font (on Debian, fonts-noto-color-emoji) most tapback emoji draw
// as empty boxes. The page checks once whether the browser can draw colour emoji; when it
// cannot, the seven standard tapbacks are drawn as small monochrome glyphs instead, like
// the Messages app's own. Custom tapbacks are emoji by nature and stay text.

import { tapbackEmoji } from "./store.js";

const SVG = "http://www.w3.org/2000/svg";

const THUMB =
  "M2 10h4v11H2Z M8 10.5 11.8 3.4c.3-.6 1-.9 1.6-.7 1.2.4 1.9 1.6 1.6 2.9L14.3 9H20a2 2 0 0 1 2 2.3l-1.3 7.9A2.2 2.2 0 0 1 18.5 21H8Z";
const BOLD = { "text-anchor": "middle", "font-weight": "800", "font-family": "Helvetica, Arial, sans-serif" };

// [tag, attributes, text?] for each standard tapback, on a 24×24 grid, in currentColor.
const SHAPES = {
  love: [
    [
      "path",
      {
        d: "M12 20.6s-7.7-4.7-9.6-9.4C1 7.8 3.1 4 6.9 4c2.2 0 3.8 1.2 5.1 3 1.3-1.8 2.9-3 5.1-3 3.8 0 5.9 3.8 4.5 7.2-1.9 4.7-9.6 9.4-9.6 9.4Z",
      },
    ],
  ],
  like: [["path", { d: THUMB }]],
  dislike: [["path", { d: THUMB, transform: "matrix(1 0 0 -1 0 24)" }]],
  laugh: [
    ["text", { ...BOLD, x: "12", y: "11", "font-size": "9.5" }, "HA"],
    ["text", { ...BOLD, x: "12", y: "21", "font-size": "9.5" }, "HA"],
  ],
  emphasize: [["text", { ...BOLD, x: "12", y: "19", "font-size": "19" }, "!!"]],
  question: [["text", { ...BOLD, x: "12", y: "20", "font-size": "21" }, "?"]],
  eyes: [
    ["ellipse", { cx: "7.3", cy: "12", rx: "4.3", ry: "6.8", fill: "none", stroke: "currentColor", "stroke-width": "1.8" }],
    ["ellipse", { cx: "16.7", cy: "12", rx: "4.3", ry: "6.8", fill: "none", stroke: "currentColor", "stroke-width": "1.8" }],
    ["circle", { cx: "8.6", cy: "13.6", r: "2.4" }],
    ["circle", { cx: "18", cy: "13.6", r: "2.4" }],
  ],
};

let colourEmoji = null;

/** Whether this browser draws colour emoji (checked once, on a canvas). */
export function hasColourEmoji() {
  if (colourEmoji !== null) return colourEmoji;
  colourEmoji = true; // when we cannot tell, trust the fonts
  try {
    const size = 32;
    const canvas = document.createElement("canvas");
    canvas.width = size;
    canvas.height = size;
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    if (ctx) {
      ctx.font = `${size - 6}px ${getComputedStyle(document.body).fontFamily}`;
      ctx.textBaseline = "top";
      ctx.fillStyle = "#000";
      ctx.fillText("\u{1F44D}\u{1F440}", 0, 2);
      const { data } = ctx.getImageData(0, 0, size, size);
      // A missing glyph (an empty box) or a black-and-white one has no hue at all.
      let coloured = false;
      for (let i = 0; i < data.length && !coloured; i += 4) {
        const spread = Math.max(data[i], data[i + 1], data[i + 2]) - Math.min(data[i], data[i + 1], data[i + 2]);
        coloured = data[i + 3] > 128 && spread > 48;
      }
      colourEmoji = coloured;
    }
  } catch {
    colourEmoji = true;
  }
  document.documentElement.dataset.emoji = colourEmoji ? "colour" : "glyphs";
  return colourEmoji;
}

/** The face of a tapback ({reaction, custom_emoji}): an emoji, or a glyph without the font. */
export function tapbackFace(reaction) {
  const shapes = SHAPES[reaction.reaction];
  if (!shapes || hasColourEmoji()) return document.createTextNode(tapbackEmoji(reaction));
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", "tapback-glyph");
  svg.setAttribute("aria-hidden", "true");
  svg.dataset.glyph = reaction.reaction;
  for (const [tag, attrs, text] of shapes) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
    if (text) node.textContent = text;
    svg.append(node);
  }
  return svg;
}
