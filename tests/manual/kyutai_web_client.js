// Kyutai's web client in headless Chromium against moshi-gateway: a manual check, not part of
// .ci/run (docs/GATEWAY.md, "Checking Kyutai's page in a browser" says how to run it and what it
// showed). The page is Kyutai's own, built from Kyutai's repository and served by the gateway's
// --static; nothing of it is here. This script only drives the browser: it opens the page, presses
// Connect with a fake microphone playing WAV, lets the conversation run, presses Disconnect, and
// reports what came over /api/chat (message kinds, Moshi's text), what the page shows, and two
// screenshots. It downloads nothing: it needs playwright-core (npm) where NODE_PATH points and a
// Chromium binary.
//
//   NODE_PATH=/tmp/pw/node_modules node tests/manual/kyutai_web_client.js \
//     http://127.0.0.1:8998/ /tmp/x.wav /tmp/kyutai-check [seconds] [/usr/bin/chromium]
//
// Exit status 0 when the handshake, Moshi's audio and text arrived and the hang-up closed the
// socket; 1 otherwise. The summary is printed as JSON and written to OUTDIR/summary.json.
"use strict";
const fs = require("fs");
const path = require("path");
const { chromium } = require("playwright-core");

const [url, wav, outDir, secondsArg, chromiumPath] = process.argv.slice(2);
if (!url || !wav || !outDir) {
  console.error("usage: kyutai_web_client.js URL WAV OUTDIR [SECONDS] [CHROMIUM]");
  process.exit(2);
}
const seconds = Number(secondsArg || 10);

// Headless, as root, nothing fetched from the network, and a fake microphone that plays `wav`.
// (The new, empty profile is given as launchPersistentContext's --user-data-dir.)
function chromiumArgs() {
  return [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream", `--use-file-for-fake-audio-capture=${wav}`,
    "--autoplay-policy=no-user-gesture-required",
  ];
}

// The protocol's message kinds, as the page received or sent them (kind byte first).
const KINDS = ["handshake", "audio", "text", "control", "metadata", "error", "ping", "coloredtext"];

function watchSocket(ws, report) {
  const socket = { url: ws.url(), received: {}, sent: {}, text: "", errors: [], closed: false };
  report.sockets.push(socket);
  const count = (table, payload) => {
    if (typeof payload === "string") return void (table["text-frame"] = (table["text-frame"] || 0) + 1);
    const kind = KINDS[payload[0]] || `unknown-${payload[0]}`;
    table[kind] = (table[kind] || 0) + 1;
    return kind;
  };
  ws.on("framereceived", ({ payload }) => {
    const kind = count(socket.received, payload);
    if (kind === "text") socket.text += payload.subarray(1).toString("utf8");
    if (kind === "error") socket.errors.push(payload.subarray(1).toString("utf8"));
  });
  ws.on("framesent", ({ payload }) => count(socket.sent, payload));
  ws.on("close", () => { socket.closed = true; socket.closed_after_hangup = report.hung_up; });
}

async function converse(page, report) {
  await page.goto(url);
  await page.getByRole("button", { name: "Connect" }).click();
  await page.getByRole("button", { name: "Disconnect" }).waitFor({ timeout: 15000 });
  report.connected = true;
  await page.waitForTimeout(seconds * 1000);
  report.page_text = (await page.locator(".player-text").innerText()).trim();
  report.page_stats = (await page.locator(".player-stats").innerText()).trim();
  await page.screenshot({ path: path.join(outDir, "conversation.png") });
  report.hung_up = true;
  report.console.push("--- Disconnect pressed ---");
  await page.getByRole("button", { name: "Disconnect" }).click();
  await page.waitForTimeout(3000);
  await page.screenshot({ path: path.join(outDir, "after-hangup.png") });
}

function verdict(report) {
  const s = report.sockets.find((x) => x.url.includes("/api/chat"));
  const checks = {
    handshake: !!s && (s.received.handshake || 0) === 1,
    audio: !!s && (s.received.audio || 0) > 2,
    text: !!s && s.text.length > 0,
    no_error: !!s && s.errors.length === 0 && !s.received["text-frame"],
    closed_on_hangup: !!s && s.closed && s.closed_after_hangup === true,
  };
  report.checks = checks;
  return Object.values(checks).every(Boolean);
}

async function main() {
  fs.mkdirSync(outDir, { recursive: true });
  const profile = fs.mkdtempSync(path.join(outDir, "profile-"));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath || "/usr/bin/chromium", args: chromiumArgs(),
    viewport: { width: 1280, height: 800 },
  });
  const report = { url, wav, seconds, sockets: [], console: [], http_errors: [] };
  try {
    const page = browser.pages()[0] || (await browser.newPage());
    report.browser = await page.evaluate(() => navigator.userAgent);
    page.on("console", (m) => report.console.length < 5000 && report.console.push(`${m.type()}: ${m.text()}`.slice(0, 200)));
    page.on("pageerror", (e) => report.console.push(`pageerror: ${e.message}`));
    page.on("websocket", (ws) => watchSocket(ws, report));
    page.on("response", (r) => r.status() >= 400 && report.http_errors.push(`${r.status()} ${r.url()}`));
    await converse(page, report);
  } catch (e) {
    report.failure = String(e);
  } finally {
    await browser.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  const ok = !report.failure && verdict(report);
  fs.writeFileSync(path.join(outDir, "summary.json"), JSON.stringify(report, null, 2));
  console.log(JSON.stringify({ ...report, console: report.console.slice(-15) }, null, 2));
  process.exit(ok ? 0 : 1);
}

main();
