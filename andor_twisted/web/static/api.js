// The JSON control API (/api), snap downloads, and the page's error area. Every failed request ends up in
// #error with the server's own message; nothing is dropped silently.

export class ApiError extends Error {
  constructor(message, status, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

// The "value" of one API call; an ApiError with the server's message if it answers an error.
export async function api(method, path, value) {
  const init = { method, headers: {} };
  if (value !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify({ value });
  }
  let response;
  for (let attempt = 1; ; attempt++) {
    const loginsBefore = logins;
    try {
      response = await fetch(`/api/${path}`, init);
    } catch (e) {
      throw new ApiError(`cannot reach the server (${method} /api/${path}): ${e.message}`, 0, null);
    }
    if (response.status !== 401 || attempt > 1) break;
    // sent before a login that has succeeded since: try again with its cookie, without asking again
    if (logins === loginsBefore && !(await logIn())) break;
  }
  return answer(response, `${method} /api/${path}`);
}

// A server that listens beyond loopback needs a token (docs/security.md): ask for it once, and log in. The
// server keeps it in an HttpOnly, SameSite=Strict cookie, which this page never sees and other sites never
// send. True once logged in. Several requests refused at once share one question.
let loggingIn = null;
let logins = 0; // successful logins so far
export function logIn() {
  if (!loggingIn) {
    loggingIn = (async () => {
      const token = window.prompt("This camera server needs a token (ask whoever runs it):");
      if (!token) return false;
      const response = await fetch("/api/login", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ value: token.trim() }),
      });
      if (!response.ok) showError("that token was refused");
      if (response.ok) logins += 1;
      return response.ok;
    })().finally(() => { loggingIn = null; });
  }
  return loggingIn;
}

async function answer(response, what) {
  const text = await response.text();
  let body = null;
  try {
    body = JSON.parse(text);
  } catch (e) {
    // not JSON: a proxy's error page, say; report the status and the start of the text
  }
  if (!response.ok) {
    const message = body && body.message ? body.message : `${what}: ${response.status} ${text.slice(0, 200)}`;
    throw new ApiError(message, response.status, body);
  }
  if (!body || !("value" in body)) {
    throw new ApiError(`${what} answered something other than {"value": ...}`, response.status, body);
  }
  return body.value;
}

// Fetch `url` (a snap) and save it as a file; an error answer is shown, not saved.
export async function download(url, filename) {
  let response;
  try {
    response = await fetch(url);
  } catch (e) {
    throw new ApiError(`cannot reach the server (GET ${url}): ${e.message}`, 0, null);
  }
  if (!response.ok) await answer(response, `GET ${url}`); // throws with the server's message
  const blob = await response.blob();
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = filename;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 60000);
}

const errorArea = () => document.getElementById("error");

// Show an error (an Error or a string) in #error until the next one or a click on it.
export function showError(error) {
  const message = typeof error === "string" ? error : error.message;
  const area = errorArea();
  area.textContent = message;
  area.title = `${new Date().toLocaleTimeString()}; click to dismiss`;
  area.hidden = false;
  console.warn(message);
}

export function clearError() {
  const area = errorArea();
  area.textContent = "";
  area.hidden = true;
}

// Run an async action, reporting its failure in #error. Returns its result, or undefined if it failed.
export async function reported(action) {
  try {
    return await action();
  } catch (e) {
    showError(e);
    return undefined;
  }
}
