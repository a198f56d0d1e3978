// Render vega-lite specs headless with the vega and vega-lite inlined in .dvc/plots_offline.html, the
// config the page's vegaEmbed wrapper adds: node vega_render.js TEMPLATE SPECS.json -> one SVG per spec
// (a JSON list on stdout). Used by tests/test_offline_plots.py.
const fs = require("fs");
const vm = require("vm");
const [template, specsFile] = process.argv.slice(2);
const page = fs.readFileSync(template, "utf8");
const context = globalThis;  // the UMD builds attach vega and vegaLite to it
for (const name of ["vega", "vega-lite"]) {
  const match = page.match(new RegExp(`<script type="text/javascript">/\\* ${name} \\*/\\n([\\s\\S]*?)\\n    </script>`));
  vm.runInThisContext(match[1]);
}
const font = page.match(/var font = "([^"]*)";/)[1];
const specs = JSON.parse(fs.readFileSync(specsFile, "utf8"));
(async () => {
  const out = [];
  for (const spec of specs) {
    const compiled = context.vegaLite.compile(spec, { config: { font } }).spec;
    const view = new context.vega.View(context.vega.parse(compiled), { renderer: "none" });
    out.push(await view.toSVG());
  }
  process.stdout.write(JSON.stringify(out));
})().catch((err) => { console.error(String(err)); process.exit(1); });
