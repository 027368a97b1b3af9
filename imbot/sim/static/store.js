// State of one simulated phone: threads, timeline items and typing flags.
// No DOM here. app.js renders whatever this module holds; the simulator's
// /sim/v1 JSON goes in through load() and apply().

export const E164 = /^\+[1-9][0-9]{1,14}$/;

export const TAPBACKS = [
  ["love", "❤️", "Love"],
  ["like", "👍", "Like"],
  ["dislike", "👎", "Dislike"],
  ["laugh", "😂", "Ha ha"],
  ["emphasize", "‼️", "Emphasize"],
  ["question", "❓", "Question"],
  ["eyes", "👀", "Eyes"],
];

const EMOJI = Object.fromEntries(TAPBACKS.map(([kind, emoji]) => [kind, emoji]));

/** The emoji drawn for a tapback ({reaction, custom_emoji}). */
export function tapbackEmoji(reaction) {
  if (reaction.reaction === "custom") return reaction.custom_emoji || "❔";
  return EMOJI[reaction.reaction] || "❔";
}

const IMAGE_EXT = /\.(png|jpe?g|gif|webp|avif|bmp|svg|heic|heif|ico)(?:[?#].*)?$/i;

/** True when a media entry ({url, content_type}) should be drawn inline as an image. */
export function isImage(media) {
  if (media.content_type) return media.content_type.toLowerCase().startsWith("image/");
  return IMAGE_EXT.test(media.url || "");
}

/** Turns what a person typed ("+1 (555) 123-4567") into E.164, or null when it is not one. */
export function normalizeNumber(raw) {
  const compact = String(raw || "").replace(/[\s().-]/g, "");
  const withPlus = compact.startsWith("00") ? `+${compact.slice(2)}` : compact;
  return E164.test(withPlus) ? withPlus : null;
}

/** "+15551234567" → "+1 (555) 123-4567"; other countries are shown as they are. */
export function formatNumber(number) {
  const m = /^\+1(\d{3})(\d{3})(\d{4})$/.exec(number || "");
  return m ? `+1 (${m[1]}) ${m[2]}-${m[3]}` : number || "";
}

/** Holds the timeline of one phone and merges snapshots and live events into it. */
export class PhoneStore {
  constructor() {
    this.routerNumber = null;
    this.threads = new Map(); // name -> {thread, conversation_id, status, typing}
    this.items = new Map(); // id -> TimelineItem
    this.unread = new Map(); // name -> count of "them" items that arrived while not open
    this.seq = 0; // insertion counter, breaks created_at ties
    this.order = new Map(); // id -> seq
    this.listeners = new Set();
    this.loading = false;
    this.buffer = [];
  }

  /** Calls fn(change) after every change; change.kind is "load", "item", "typing" or "thread". */
  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  emit(change) {
    for (const fn of this.listeners) fn(change);
  }

  /** Starts a refetch: live events received until load() are replayed after the snapshot. */
  beginLoad() {
    this.loading = true;
    this.buffer = [];
  }

  /** Replaces everything with a GET /timeline snapshot, then replays buffered events. */
  load(timeline) {
    this.routerNumber = timeline.router_number || this.routerNumber;
    this.threads = new Map();
    this.items = new Map();
    this.order = new Map();
    this.ensureRouter();
    for (const thread of timeline.threads || []) this.threads.set(thread.thread, { ...thread });
    for (const item of timeline.items || []) this.putItem(item);
    const buffered = this.buffer;
    this.loading = false;
    this.buffer = [];
    this.emit({ kind: "load" });
    for (const [kind, data] of buffered) this.apply(kind, data, { live: true });
  }

  /** Gives up a refetch that failed: buffered events are applied on top of what we had. */
  abortLoad() {
    const buffered = this.buffer;
    this.loading = false;
    this.buffer = [];
    for (const [kind, data] of buffered) this.apply(kind, data, { live: true });
  }

  ensureRouter() {
    if (!this.threads.has("router")) {
      this.threads.set("router", { thread: "router", conversation_id: null, status: null, typing: false });
    }
  }

  putItem(item) {
    if (!this.order.has(item.id)) this.order.set(item.id, this.seq++);
    const before = this.items.get(item.id);
    this.items.set(item.id, { reactions: [], media: null, ...item });
    if (!this.threads.has(item.thread)) {
      this.threads.set(item.thread, {
        thread: item.thread,
        conversation_id: item.conversation_id,
        status: item.thread === "router" ? null : "active",
        typing: false,
      });
    }
    return before;
  }

  /** Applies one live event ("item", "typing" or "thread" with its parsed JSON data). */
  apply(kind, data, { live = true } = {}) {
    if (this.loading) {
      this.buffer.push([kind, data]);
      return;
    }
    if (kind === "item") {
      const before = this.putItem(data);
      const isNew = before === undefined;
      // "system" is the service's own note in an agent's thread (the agent's new number
      // saying hello): it counts as unread like the agent's messages.
      if (isNew && (data.from === "them" || data.from === "system")) {
        const thread = this.threads.get(data.thread);
        // A message from the agent ends its typing bubble, as on a real phone.
        if (thread) thread.typing = false;
        if (live && data.thread !== this.openThread) {
          this.unread.set(data.thread, (this.unread.get(data.thread) || 0) + 1);
        }
      }
      this.emit({ kind, item: this.items.get(data.id), isNew, before });
    } else if (kind === "typing") {
      const thread = this.threads.get(data.thread) || {
        thread: data.thread,
        conversation_id: null,
        status: "active",
      };
      thread.typing = Boolean(data.typing);
      this.threads.set(data.thread, thread);
      this.emit({ kind, thread: data.thread, typing: thread.typing });
    } else if (kind === "thread") {
      const previous = this.threads.get(data.thread) || {};
      this.threads.set(data.thread, { typing: false, ...previous, ...data });
      this.emit({ kind, thread: data.thread, isNew: !previous.thread });
    }
  }

  /** Records our own tapback at once (the live event confirms it later). */
  setMyReaction(messageId, reaction) {
    const item = this.items.get(messageId);
    if (!item) return;
    const others = (item.reactions || []).filter((r) => r.from !== "me");
    this.items.set(messageId, { ...item, reactions: [...others, reaction] });
    this.emit({ kind: "item", item: this.items.get(messageId), isNew: false });
  }

  /** Marks a thread as the one on screen (its unread count resets). */
  open(name) {
    this.openThread = name;
    if (name) this.unread.delete(name);
  }

  /** Items of one thread, oldest first. */
  itemsOf(name) {
    const list = [];
    for (const item of this.items.values()) if (item.thread === name) list.push(item);
    list.sort(
      (a, b) =>
        (a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : 0) ||
        this.order.get(a.id) - this.order.get(b.id),
    );
    return list;
  }

  /** The newest item of a thread, or null. */
  lastOf(name) {
    const list = this.itemsOf(name);
    return list.length ? list[list.length - 1] : null;
  }

  /** Threads for the list: the router first, then the most recently active. */
  threadList() {
    this.ensureRouter();
    const rows = [...this.threads.values()].map((thread) => ({
      ...thread,
      last: this.lastOf(thread.thread),
      unread: this.unread.get(thread.thread) || 0,
    }));
    const when = (row) => (row.last ? row.last.created_at : "");
    rows.sort((a, b) => {
      if (a.thread === "router") return -1;
      if (b.thread === "router") return 1;
      return when(a) < when(b) ? 1 : when(a) > when(b) ? -1 : a.thread.localeCompare(b.thread);
    });
    return rows;
  }
}
