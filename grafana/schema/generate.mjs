// Writes build/schemas.json: a JSON Schema (draft 07) for each type exported by types.ts, generated from
// the pinned @grafana/schema by ts-json-schema-generator. Run by scripts/test.sh after `npm ci`.
//
// Why a JSON Schema rather than letting TypeScript check the dashboards: Grafana types many fields as
// string enums (ThresholdsMode, BigValueTextMode, ...), and TypeScript never accepts a plain string, as
// JSON holds it, for an enum, so a correct dashboard would fail. TypeScript also checks excess properties
// only loosely inside unions such as Panel | RowPanel. The schema takes the enums as their values and
// refuses an unknown property everywhere, and jsonschema names the path of each problem.
//
//   { "grafana": "<@grafana/schema version>",
//     "dashboard": <schema>,
//     "panels": { "<panel type id>": { "options": <schema>, "fieldConfig": <schema> | null } } }
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createGenerator } from 'ts-json-schema-generator';

// Panel type id in dashboard JSON -> the prefix of its types in types.ts. A panel without a FieldConfig
// type has no `custom` field options.
const PANELS = {
  bargauge: { options: 'BarGaugeOptions', fieldConfig: null },
  gauge: { options: 'GaugeOptions', fieldConfig: null },
  stat: { options: 'StatOptions', fieldConfig: null },
  'state-timeline': { options: 'StateTimelineOptions', fieldConfig: 'StateTimelineFieldConfig' },
  table: { options: 'TableOptions', fieldConfig: 'TableFieldConfig' },
  timeseries: { options: 'TimeSeriesOptions', fieldConfig: 'TimeSeriesFieldConfig' },
};

const here = new URL('.', import.meta.url).pathname;
// One generator, so TypeScript parses the types once for all schemas. additionalProperties false: a
// property the type does not declare is an error, as it is for an object literal in TypeScript.
const generator = createGenerator({
  path: `${here}types.ts`,
  tsconfig: `${here}tsconfig.json`,
  additionalProperties: false,
  expose: 'export',
  topRef: true,
});
const schemaOf = (type) => (type === null ? null : generator.createSchema(type));

const { version } = JSON.parse(
  readFileSync(`${here}node_modules/@grafana/schema/package.json`, 'utf8'),
);
const out = {
  grafana: version,
  dashboard: schemaOf('Dashboard'),
  panels: Object.fromEntries(
    Object.entries(PANELS).map(([id, types]) => [
      id,
      { options: schemaOf(types.options), fieldConfig: schemaOf(types.fieldConfig) },
    ]),
  ),
};
mkdirSync(`${here}build`, { recursive: true });
writeFileSync(`${here}build/schemas.json`, `${JSON.stringify(out, null, 1)}\n`);
console.log(`build/schemas.json: Grafana ${version}, dashboard and ${Object.keys(PANELS).length} panel types`);
