// The web chat widget in a real browser: Debian's Chromium, headless,
// driven by playwright-core (no downloaded browser). Run by
// scripts/test-clients.sh, which serves the demo page at CALLHQ_URL/.
import { strict as assert } from "node:assert";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { chromium } from "playwright-core";

const BASE_URL = process.env.CALLHQ_URL;
const WIDGET_KEY = process.env.CALLHQ_WIDGET_KEY;
const SCREENSHOT = process.env.CALLHQ_SCREENSHOT ?? join(tmpdir(), "callhq-widget.png");
const CHROMIUM = process.env.CALLHQ_CHROMIUM ?? "/usr/bin/chromium";
if (!BASE_URL) throw new Error("CALLHQ_URL is not set: run scripts/test-clients.sh");

const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu",
               "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run"];

let profile;
let context;
let page;
const problems = [];

const lastReply = () =>
  page.locator(".cqc-msg[data-role=assistant]:not(.cqc-greeting)").last();

// Records every text the last reply bubble shows, as the DOM changes.
async function recordReplies() {
  await page.evaluate(() => {
    window.__seen = [];
    const log = document.querySelector(".cqc-log");
    new MutationObserver(() => {
      const all = log.querySelectorAll(".cqc-msg[data-role=assistant]:not(.cqc-greeting)");
      const last = all[all.length - 1];
      const text = last ? last.textContent : "";
      if (window.__seen[window.__seen.length - 1] !== text) window.__seen.push(text);
    }).observe(log, { childList: true, subtree: true, characterData: true });
  });
}

async function ask(text) {
  await page.locator("textarea[name=message]").fill(text);
  await page.locator("textarea[name=message]").press("Enter");
  await page.locator(".cqc[aria-busy=false]").waitFor({ timeout: 20_000 });
}

describe("web chat widget in Chromium", { timeout: 120_000 }, () => {
  before(async () => {
    profile = await mkdtemp(join(tmpdir(), "callhq-chromium-"));
    // a fresh --user-data-dir: playwright's persistent context is that profile
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: FLAGS,
      viewport: { width: 900, height: 600 },
    });
    page = context.pages()[0] ?? await context.newPage();
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    page.on("console", (m) => {
      // the widget's own error tests make the browser log their failed requests
      if (m.type() === "error" && !/Failed to load resource/.test(m.text())) {
        problems.push(`console: ${m.text()}`);
      }
    });
  });

  after(async () => {
    await context?.close();
    if (profile) await rm(profile, { recursive: true, force: true });
  });

  it("streams the reply and keeps the context across a reload", async () => {
    await page.goto(`${BASE_URL}/`);
    await page.locator("textarea[name=message]").waitFor();
    assert.equal(await page.locator(".cqc-greeting").textContent(), "Hello! How can I help you?");
    const html = await page.content();
    assert.ok(!html.includes(WIDGET_KEY), "no API key in the page");

    await recordReplies();
    await ask("my name is Sarah");
    assert.equal(await lastReply().textContent(),
                 "Nice to meet you, Sarah! I'll remember that. (turn 1)");
    const customer = await page.evaluate(() => localStorage.getItem("callhq-chat:customer"));
    assert.match(customer, /^web-[0-9a-f-]{32,36}$/);

    await page.reload();
    await page.locator("textarea[name=message]").waitFor();
    // the transcript is shown again, and the visitor is the same one
    assert.deepEqual(await page.locator(".cqc-msg[data-role=user]").allTextContents(),
                     ["my name is Sarah"]);
    assert.equal(await page.evaluate(() => localStorage.getItem("callhq-chat:customer")),
                 customer);

    await recordReplies();
    await ask("What is my name?");
    assert.equal(await lastReply().textContent(), "Your name is Sarah.");

    // the text arrived piece by piece (the test assistant waits 150 ms per delta)
    const seen = await page.evaluate(() => window.__seen.filter((t) => t));
    const partial = seen.filter((t) => t !== "Your name is Sarah.");
    assert.ok(partial.length >= 2, `streamed in pieces: ${JSON.stringify(seen)}`);
    for (const t of partial) assert.ok("Your name is Sarah.".startsWith(t), t);

    await mkdir(dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT });
    console.log(`# screenshot: ${SCREENSHOT}`);

    // the server holds the conversation, in the widget org's customer session
    const sessionId = await page.evaluate(() => localStorage.getItem("callhq-chat:session"));
    const res = await fetch(`${BASE_URL}/session/${sessionId}`,
                            { headers: { Authorization: `Bearer ${WIDGET_KEY}` } });
    const session = await res.json();
    assert.equal(session.customer.externalId, customer);
    assert.deepEqual(session.messages.map((m) => m.content), [
      "my name is Sarah", "Nice to meet you, Sarah! I'll remember that. (turn 1)",
      "What is my name?", "Your name is Sarah.",
    ]);
  });

  it("shows errors plainly and gives the message back", async () => {
    await page.route("**/widget/chat", (route) => route.fulfill({
      status: 503, contentType: "application/json",
      body: JSON.stringify({ statusCode: 503, error: "Service Unavailable",
                             message: "database unreachable" }),
    }));
    await ask("are you there?");
    const error = page.locator(".cqc-msg[data-role=error]").last();
    assert.equal(await error.textContent(), "Could not get an answer: database unreachable (503)");
    assert.equal(await error.getAttribute("role"), "alert");
    assert.equal(await page.locator("textarea[name=message]").inputValue(), "are you there?");

    await page.unroute("**/widget/chat");
    await page.route("**/widget/chat", (route) => route.abort("connectionrefused"));
    await page.locator("textarea[name=message]").fill("");
    await ask("still there?");
    assert.equal(await page.locator(".cqc-msg[data-role=error]").last().textContent(),
                 "Could not get an answer: could not reach the chat service");
    await page.unroute("**/widget/chat");
  });

  it("starts a new conversation on request", async () => {
    const before = await page.evaluate(() => localStorage.getItem("callhq-chat:customer"));
    await page.locator(".cqc-reset").click();
    assert.equal(await page.locator(".cqc-msg[data-role=user]").count(), 0);
    await page.locator("textarea[name=message]").fill("");
    await ask("What is my name?");
    assert.equal(await lastReply().textContent(), "You haven't told me your name yet.");
    assert.notEqual(await page.evaluate(() => localStorage.getItem("callhq-chat:customer")),
                    before);
    assert.deepEqual(problems, []);
  });
});
