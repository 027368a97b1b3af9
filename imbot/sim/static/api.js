// Calls to the simulator's /sim/v1 API, with its error bodies turned into one-line messages.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Says what went wrong in a simulator error body, in one line. */
function describeError(data, status) {
  const detail = data && data.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail) && detail.length) return detail.map((d) => d.msg).join("; ");
  if (detail && typeof detail === "object") return detail.message || detail.error || `HTTP ${status}`;
  return `HTTP ${status}`;
}

export async function api(method, path, body) {
  const init = { method, headers: { Accept: "application/json" } };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiError(0, "The simulator is not reachable. Is `imbot sim` running?");
  }
  let data = null;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  if (!res.ok) throw new ApiError(res.status, describeError(data, res.status));
  return data;
}

// The number is E.164 (only "+" and digits), and "+" is a plain character in a path.
