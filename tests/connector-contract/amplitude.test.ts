/**
 * The connector contract on the `amplitude` connector against the local
 * stand-in of Amplitude's Dashboard REST API
 * (@outcome-runtime/testing/fake-amplitude), each case written as the bodies
 * Amplitude sends (https://amplitude.com/docs/apis/analytics/dashboard-rest,
 * "Event segmentation"):
 *
 * - a row of the case is one group of `GET /api/2/events/segmentation`, kept
 *   when the request's segment (`s`: the experiment and arm user properties)
 *   holds for it, labelled by its arm (one group-by, `g`) or by
 *   `"<experiment>; <arm>"` (two, `g` and `g2`: the batched form); its
 *   `seriesCollapsed` value is `units` for the exposure event's uniques, `sum`
 *   for the conversion event's uniques (a proportion's `sum_sq` is `sum`) or
 *   for `m=sums` of the value property, and `sum_sq` for `m=sums` of the
 *   squared value's property;
 * - values as JSON text: NULL `null`, text a JSON string, a whole number past
 *   2^53 its digits; two rows for one (experiment, arm) are two groups with the
 *   same label.
 */
import { createConnector } from "@outcome-runtime/connectors";
import {
  type FakeAmplitude,
  type FakeAmplitudeRequest,
  startFakeAmplitude,
} from "@outcome-runtime/testing/fake-amplitude";
import { type ContractCell, type ContractHarness, type ContractTable, describeConnectorContract } from "./contract";

const AUTH = { apiKey: "0c0ntract0api0key0000000000000001", secretKey: "0c0ntract0secret0key000000000001" };
const EXPOSURE_EVENT = "[Experiment] Exposure";
const CONVERSION_EVENT = "Order completed";
const VALUE_PROPERTY = "amount";
const VALUE_SQUARED_PROPERTY = "amount_sq";

/** A cell as JSON text: a bigint as its digits (JSON numbers have no size limit; a reader's precision is its own). */
function json(cell: ContractCell): string {
  return typeof cell === "bigint" ? cell.toString() : JSON.stringify(cell);
}

/** The column of the table a segmentation request reads. */
function columnOf(params: URLSearchParams): 2 | 3 | 4 {
  const e = JSON.parse(params.get("e") ?? "{}") as { event_type?: string; group_by?: { value: string }[] };
  const m = params.get("m") ?? "uniques";
  if (e.event_type === EXPOSURE_EVENT && m === "uniques") return 2;
  if (e.event_type === CONVERSION_EVENT && m === "uniques") return 3;
  if (e.event_type === CONVERSION_EVENT && m === "sums") {
    const property = e.group_by?.[0]?.value;
    if (property === VALUE_PROPERTY) return 3;
    if (property === VALUE_SQUARED_PROPERTY) return 4;
  }
  throw new Error(`unexpected request e=${params.get("e")} m=${m}`);
}

/** The answer body of `request` over `table`. */
function body(table: ContractTable, request: FakeAmplitudeRequest): string {
  const p = request.params;
  if (request.path !== "/api/2/events/segmentation") throw new Error(`unexpected request ${request.path}`);
  const segment = JSON.parse(p.get("s") ?? "[]") as { prop: string; op: string; values: string[] }[];
  const allowed = (prop: string): string[] | undefined => segment.find((c) => c.prop === prop && c.op === "is")?.values;
  const keys = allowed("gp:experiment");
  const arms = allowed("gp:arm");
  if (keys === undefined || arms === undefined) throw new Error("the segment filters on gp:experiment and gp:arm");
  const column = columnOf(p);
  const batched = p.get("g") === "gp:experiment" && p.get("g2") === "gp:arm";
  if (!batched && p.get("g") !== "gp:arm") throw new Error("grouped by gp:arm, or by gp:experiment then gp:arm");
  const rows = table.rows.filter(
    ([experiment, arm]) => keys.includes(String(experiment)) && arms.includes(String(arm)),
  );
  const labels = rows.map(([experiment, arm]) =>
    JSON.stringify(batched ? `${String(experiment)}; ${String(arm)}` : String(arm)),
  );
  const collapsed = rows.map((row) => {
    if (column === 3 && p.get("m") === "uniques" && row[3] !== row[4]) {
      throw new Error("a proportion's sum_sq is its sum: unique converters");
    }
    return `[{"value":${json(row[column] ?? null)}}]`;
  });
  const day = p.get("start") ?? "";
  const xValue = JSON.stringify(`${day.slice(0, 4)}-${day.slice(4, 6)}-${day.slice(6, 8)}`);
  return `{"data":{"series":[${rows.map((row) => `[${json(row[column] ?? null)}]`).join(",")}],"seriesLabels":[${labels.join(",")}],"seriesCollapsed":[${collapsed.join(",")}],"xValues":[${xValue}]}}`;
}

describeConnectorContract("amplitude", ["batched", "single"], async (): Promise<ContractHarness> => {
  // One fake and one project per connector: the cost each case spends comes out of its own project's budget.
  const fakes: FakeAmplitude[] = [];
  return {
    async open(table, _form, kind) {
      const fake = await startFakeAmplitude(AUTH);
      fakes.push(fake);
      fake.override = (request) => ({ status: 200, body: body(table, request) });
      return createConnector(
        {
          type: "amplitude",
          project_id: 700_000 + fakes.length,
          api_key_env: "OUTCOME_RUNTIME_SOURCE_AMPLITUDE_API_KEY",
          secret_key_env: "OUTCOME_RUNTIME_SOURCE_AMPLITUDE_SECRET_KEY",
          event: CONVERSION_EVENT,
          exposure_event: EXPOSURE_EVENT,
          ...(kind === "mean"
            ? { value_property: VALUE_PROPERTY, value_squared_property: VALUE_SQUARED_PROPERTY }
            : {}),
          api_url: fake.baseUrl,
        },
        {
          metricKind: kind,
          credentials: { api_key: AUTH.apiKey, secret_key: AUTH.secretKey },
          allowedApiUrls: { amplitude: [fake.baseUrl] },
        },
      );
    },
    async close() {
      await Promise.all(fakes.map((fake) => fake.close()));
    },
  };
});
