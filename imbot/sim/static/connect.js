// Following a `connect @handle` to the agent's thread.
// On a phone, after texting the router you tap the new conversation yourself; on this page
// the first minute should need no such step. Once the connect worked, the page opens the
// agent's thread. "Worked" is read from what the simulator sends, so it holds whether the
// connect text reaches the agent (the old flow) or the agent's new number texts first
// (Inkbox's flow): the agent's thread appears or comes back, a message arrives in it, or
// the router answers while that thread is connected ("already connected").

/** The same pattern as the simulator's router (imbot/sim/router.py). */
export const CONNECT = /^\s*connect\s+@?([A-Za-z0-9][A-Za-z0-9_.-]{0,62})\s*$/i;

/** The handle in a `connect @handle` text, or null. */
export function connectHandle(text) {
  const match = CONNECT.exec(text || "");
  return match ? match[1] : null;
}

/** The connected thread named `handle` (any case), or null. */
function activeThread(store, handle) {
  const wanted = handle.toLowerCase();
  for (const [name, thread] of store.threads) {
    if (name !== "router" && name.toLowerCase() === wanted) {
      return thread.status === "released" ? null : name;
    }
  }
  return null;
}

/**
 * What one store change means for a pending connect to `handle`: the thread to open,
 * "failed" when the router answered and there is no such connected thread, else null.
 */
export function connectOutcome(store, handle, change) {
  const active = activeThread(store, handle);
  if (change.kind === "thread") return active && change.thread === active ? active : null;
  if (change.kind !== "item" || !change.isNew) return null;
  if (active && change.item.thread === active) return active;
  if (change.item.thread === "router" && change.item.from === "them") return active || "failed";
  return null;
}
