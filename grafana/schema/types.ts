// The Grafana types the dashboards in grafana/dashboards/ are checked against, as Grafana publishes them in
// @grafana/schema (the version pinned in package.json is the Grafana version docker-compose.yml runs).
// generate.mjs turns each exported type below into a JSON Schema; tests/test_grafana_schema.py validates
// every dashboard with them.
//
// The dashboard type types a panel's `options` and `fieldConfig.defaults.custom` only as records, so the
// panel plugins' own types are listed as well, one pair per panel type the dashboards use.
import type { Dashboard as DashboardModel } from '@grafana/schema/dist/esm/raw/dashboard/x/Dashboard_types.gen';
import type * as BarGauge from '@grafana/schema/dist/esm/raw/composable/bargauge/panelcfg/x/BarGaugePanelCfg_types.gen';
import type * as Gauge from '@grafana/schema/dist/esm/raw/composable/gauge/panelcfg/x/GaugePanelCfg_types.gen';
import type * as Stat from '@grafana/schema/dist/esm/raw/composable/stat/panelcfg/x/StatPanelCfg_types.gen';
import type * as StateTimeline from '@grafana/schema/dist/esm/raw/composable/statetimeline/panelcfg/x/StateTimelinePanelCfg_types.gen';
import type * as Table from '@grafana/schema/dist/esm/raw/composable/table/panelcfg/x/TablePanelCfg_types.gen';
import type * as TimeSeries from '@grafana/schema/dist/esm/raw/composable/timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen';

// Every panel module calls its types `Options` and `FieldConfig`, and the schema generator names a
// definition after the original type, so plain aliases would all collapse into one `Options`. A mapped
// copy (optional and required members kept as they are) gets the alias's own name.
type Named<T> = { [K in keyof T]: T[K] };

export type Dashboard = Named<DashboardModel>;
export type BarGaugeOptions = Named<BarGauge.Options>;
export type GaugeOptions = Named<Gauge.Options>;
export type StatOptions = Named<Stat.Options>;
export type StateTimelineOptions = Named<StateTimeline.Options>;
export type StateTimelineFieldConfig = Named<StateTimeline.FieldConfig>;
export type TableOptions = Named<Table.Options>;
export type TableFieldConfig = Named<Table.FieldConfig>;
export type TimeSeriesOptions = Named<TimeSeries.Options>;
export type TimeSeriesFieldConfig = Named<TimeSeries.FieldConfig>;
