// The Daguerre HTTP API as the page uses it: JSON calls with the Bearer key, and a job's
// Server-Sent Events read with fetch() (EventSource cannot send an Authorization header).

export class ApiError extends Error {
  constructor(status, body, retryAfter) {
    const error = (body && body.error) || {};
    super(error.message || `The server answered ${status}.`);
    this.status = status;
    this.code = error.code || null;
    this.retryAfterS = retryAfter == null ? null : Number.parseInt(retryAfter, 10);
  }
}

// Links the server builds are absolute (its own idea of its base URL); keep them on the
// origin the page came from, so a proxy in front of the gateway does not matter.
export function sameOrigin(url) {
  const parsed = new URL(url, window.location.href);
  return parsed.pathname + parsed.search;
}

export class Api {
  constructor(key) {
    this.key = key;
  }

  async request(method, path, body) {
    const headers = { Authorization: `Bearer ${this.key}` };
    const init = { method, headers };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch {
      throw new ApiError(0, { error: { message: "The server cannot be reached. Check the connection and try again." } });
    }
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!response.ok) throw new ApiError(response.status, data, response.headers.get("Retry-After"));
    return data;
  }

  listConversations() {
    return this.request("GET", "/v1/conversations").then((list) => list.data);
  }

  getConversation(id) {
    return this.request("GET", `/v1/conversations/${encodeURIComponent(id)}`);
  }

  createConversation(title) {
    return this.request("POST", "/v1/conversations", title ? { title } : {});
  }

  renameConversation(id, title) {
    return this.request("PATCH", `/v1/conversations/${encodeURIComponent(id)}`, { title });
  }

  addTurn(id, turn) {
    return this.request("POST", `/v1/conversations/${encodeURIComponent(id)}/turns`, turn);
  }

  // A page of the account's images, newest first; ``after``: the last image id of the page
  // before (null for the first page).
  listImages(limit, after) {
    const query = new URLSearchParams({ limit: String(limit) });
    if (after) query.set("after", after);
    return this.request("GET", `/v1/images?${query}`);
  }

  // Yields {event, data} for each event of a job's stream until it ends; the first is
  // always the job as it is now. Aborting `signal` ends it quietly.
  async *events(eventsUrl, signal) {
    const response = await fetch(sameOrigin(eventsUrl), {
      headers: { Authorization: `Bearer ${this.key}`, Accept: "text/event-stream" },
      signal,
    });
    if (!response.ok) {
      let data = null;
      try {
        data = await response.json();
      } catch {
        data = null;
      }
      throw new ApiError(response.status, data, response.headers.get("Retry-After"));
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const parsed = parseEvent(block);
        if (parsed) yield parsed;
      }
    }
  }
}

function parseEvent(block) {
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue; // keep-alive comments
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return null;
  return { event, data: JSON.parse(data.join("\n")) };
}
