// Browser test of saker's web UI in real headless Chromium, driven by playwright-core.
// Run by TestUIBrowser (ui_browser_test.go) against a running saker that stored the events
// it posted: usage: node ui-browser.cjs BASE_URL SCREENSHOT_DIR. Environment: PLAYWRIGHT_CORE
// (the module's path), CHROMIUM (the browser). Prints one line per failed check and exits 1
// when any failed.
"use strict";
const { chromium } = require(process.env.PLAYWRIGHT_CORE);

const base = process.argv[2];
const shots = process.argv[3];
const failures = [];
let checks = 0;
function check(name, ok, detail) {
  checks++;
  if (!ok) failures.push(name + (detail ? ": " + detail : ""));
}

(async () => {
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM, args: ["--no-sandbox", "--disable-gpu"] });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const foreign = [];
  page.on("request", (r) => {
    const u = new URL(r.url());
    if (u.protocol.startsWith("http") && u.hostname !== "127.0.0.1" && u.hostname !== "localhost") foreign.push(r.url());
  });
  const dialogs = [];
  page.on("dialog", async (d) => { dialogs.push(d.message()); await d.dismiss(); });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("response", (r) => { if (r.status() >= 400) errors.push(r.status() + " " + r.url()); });

  // Dashboard: counts by priority and the top rules.
  await page.goto(base + "/ui/");
  await page.getByText("Browser Rule Alpha").first().waitFor({ timeout: 10000 });
  const prio = await page.locator("section", { has: page.getByRole("heading", { name: "By priority", exact: true }) }).innerText();
  check("dashboard counts by priority", /Critical\s+2/.test(prio) && /Notice\s+1/.test(prio), prio);
  check("dashboard lists the rules", (await page.locator("section", { has: page.getByRole("heading", { name: "Top rules", exact: true }) }).innerText()).includes("Browser Rule Beta"));
  await page.screenshot({ path: shots + "/dashboard.png", fullPage: true });
  // Dark mode renders too.
  await page.emulateMedia({ colorScheme: "dark" });
  await page.screenshot({ path: shots + "/dashboard-dark.png", fullPage: true });
  await page.emulateMedia({ colorScheme: "light" });

  // Events table with a filter in the query string.
  await page.goto(base + "/ui/events?priority=critical");
  await page.locator("tbody tr.ev").first().waitFor({ timeout: 10000 });
  const rows = await page.locator("tbody tr.ev").allInnerTexts();
  check("priority filter narrows the table", rows.length === 2 && rows.every((r) => r.includes("Critical")), rows.join(" | "));
  check("the filter is kept in the form", (await page.locator("select[name=priority]").inputValue()) === "critical");
  // Text filter through the form: the query string follows.
  await page.goto(base + "/ui/events");
  await page.locator("tbody tr.ev").first().waitFor();
  await page.fill("input[name=filter]", "gamma");
  await page.keyboard.press("Enter");
  await page.waitForURL(/filter=gamma/);
  await page.locator("tbody tr.ev").first().waitFor();
  const gamma = await page.locator("tbody tr.ev").allInnerTexts();
  check("text filter from the form", gamma.length === 1 && gamma[0].includes("Browser Rule Gamma"), gamma.join(" | "));

  // Attacker-controlled content stays text.
  await page.goto(base + "/ui/events");
  await page.locator("tbody tr.ev").first().waitFor();
  await page.screenshot({ path: shots + "/events.png", fullPage: true });
  const evil = await page.locator("tbody").innerText();
  check("markup in events shows as text", evil.includes("<script>document.title='pwned'</script>") && evil.includes("<img src=x"), evil.slice(0, 200));
  const injected = await page.evaluate(() => document.querySelectorAll("main img, main svg, main script, main iframe").length);
  check("no injected element", injected === 0, String(injected));
  check("no script ran", (await page.title()) === "saker" && dialogs.length === 0, (await page.title()) + " " + dialogs.join(","));

  // Detail page from the table: the full JSON and the outputs.
  await page.locator("tbody tr.ev", { hasText: "Browser Rule Alpha" }).locator("a").first().click();
  await page.waitForURL(/\/ui\/events\/[0-9a-f-]{36}$/);
  await page.locator("pre").waitFor();
  const detail = await page.locator("main").innerText();
  check("detail page shows the event", detail.includes("Browser Rule Alpha") && detail.includes("/bin/hack") && detail.includes('"uuid"'), detail.slice(0, 300));
  check("detail page shows the outputs", /outputs\s+webhook/.test(detail), detail.slice(0, 300));
  await page.screenshot({ path: shots + "/detail.png", fullPage: true });
  // Evil event's detail page.
  await page.goto(base + "/ui/events?rule=" + encodeURIComponent("Browser Evil <script>document.title='pwned'</script>"));
  await page.locator("tbody tr.ev a").first().click();
  await page.locator("pre").waitFor();
  const evilFields = await page.evaluate(() => document.querySelectorAll("main img, main svg, main script").length);
  check("evil detail page has no injected element", evilFields === 0 && (await page.title()) === "saker");

  // Live update: a new event appears without a reload.
  await page.goto(base + "/ui/events");
  await page.locator("tbody tr.ev").first().waitFor();
  await page.check("#live");
  await page.waitForTimeout(300); // the stream subscribes
  const res = await page.request.post(base + "/", {
    data: { rule: "Browser Live Rule", priority: "Alert", output: "live one", time: new Date().toISOString(), output_fields: {} },
  });
  check("posting the live event", res.ok(), String(res.status()));
  let live = true;
  try { await page.getByText("Browser Live Rule").waitFor({ timeout: 10000 }); } catch (_) { live = false; }
  check("live update adds the new event", live);

  // Export.
  const csv = await (await page.request.get(base + "/api/v1/events/export?format=csv&priority=critical")).text();
  check("CSV export", csv.startsWith("time,priority,rule") && csv.split("\n").filter(Boolean).length === 3, csv.slice(0, 200));
  const jsonl = await (await page.request.get(base + "/api/v1/events/export?format=jsonl&rule=Browser%20Rule%20Beta")).text();
  check("JSON lines export", jsonl.trim().split("\n").length === 1 && JSON.parse(jsonl).rule === "Browser Rule Beta", jsonl.slice(0, 200));

  // Outputs page.
  await page.goto(base + "/ui/outputs");
  await page.getByText("webhook").first().waitFor();
  check("outputs page lists the output", (await page.locator("tbody").innerText()).includes("webhook"));
  await page.screenshot({ path: shots + "/outputs.png", fullPage: true });

  // Phone-sized viewport: no horizontal overflow of the page itself.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(base + "/ui/");
  await page.getByText("Browser Rule Alpha").first().waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check("dashboard fits a phone", overflow <= 1, String(overflow));
  await page.screenshot({ path: shots + "/dashboard-phone.png", fullPage: true });

  check("no request to another host", foreign.length === 0, foreign.join(", "));
  check("no script error", errors.length === 0, errors.join(" | "));
  await browser.close();
  for (const f of failures) console.log("FAIL " + f);
  console.log(`ui-browser: ${checks - failures.length}/${checks} checks`);
  process.exit(failures.length ? 1 : 0);
})().catch((e) => { console.log("FAIL " + (e && e.stack ? e.stack : e)); process.exit(1); });
