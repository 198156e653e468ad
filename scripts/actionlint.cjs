#!/usr/bin/env node
// Lint GitHub Actions workflow files with actionlint (WebAssembly build installed by scripts/install-linters.sh).
// Usage: node scripts/actionlint.cjs FILE...   Prints a JSON array of {file, line, column, kind, message};
// exits 1 when there are problems, 2 when the linter is not installed or a file cannot be read.
"use strict";
const fs = require("node:fs");
const path = require("node:path");

const tools = process.env.MLDEPLOY_TOOLS_DIR || path.join(__dirname, "..", ".tools");
let runLint;
try {
  ({ runLint } = require(path.join(tools, "actionlint", "node_modules", "@tktco", "node-actionlint")));
} catch (e) {
  console.error(`actionlint is not installed in ${tools}: run scripts/install-linters.sh (${e.message})`);
  process.exit(2);
}

(async () => {
  const files = process.argv.slice(2);
  if (files.length === 0) {
    console.error("usage: node scripts/actionlint.cjs FILE...");
    process.exit(2);
  }
  const problems = [];
  for (const file of files) {
    let text;
    try {
      text = fs.readFileSync(file, "utf8");
    } catch (e) {
      console.error(`cannot read ${file}: ${e.message}`);
      process.exit(2);
    }
    for (const r of await runLint(text, file)) {
      if (r.message) problems.push({ file, line: r.line, column: r.column, kind: r.kind, message: r.message });
    }
  }
  process.stdout.write(JSON.stringify(problems, null, 2) + "\n");
  process.exit(problems.length ? 1 : 0);
})();
