/**
 * The connector contract on the `datadog` connector, through the official
 * client (`@datadog/datadog-api-client`, `v1.MetricsApi.queryMetrics`),
 * against the local stand-in of Datadog's metrics query API
 * (@outcome-runtime/testing/fake-datadog), each case written as the body
 * Datadog sends (`MetricsQueryResponse` of `.generator/schemas/v1/openapi.yaml`
 * in github.com/DataDog/datadog-api-client-typescript):
 *
 * - a row of the case is one series of each of the two queries (requests,
 *   then errors), tagged `experiment:<experiment>` and `arm:<arm>` (the
 *   query's `by {experiment,arm}`), kept when the query's filter holds for
 *   those tags; its one point, stamped at the query's `from`, is `units` for
 *   the requests' query and `sum` for the errors' (an error rate's `sum_sq` is
 *   its `sum`);
 * - cells as JSON text: NULL `null` (a point without data), a whole number
 *   past 2^53 its digits; two rows for one (experiment, arm) are two series
 *   with the same tags;
 * - a mean is refused when the connector is created: Datadog gives per-arm
 *   totals, not the sum of squares a mean needs (declared with no form);
 * - text in a count column cannot be sent row by row: a point's value is a
 *   number (`Point`: number, nullable), and the official client refuses an
 *   answer with text there as a whole (declared as a difference: both experiments fail).
 */
import { createConnector } from "@outcome-runtime/connectors";
import {
  type FakeDatadog,
  type FakeDatadogRequest,
  matchesFakeDatadogQuery,
  parseFakeDatadogQuery,
  startFakeDatadog,
} from "@outcome-runtime/testing/fake-datadog";
import { type ContractCell, type ContractHarness, type ContractTable, describeConnectorContract } from "./contract";

const AUTH = { apiKey: "c0ntract-api-key", applicationKey: "c0ntract-application-key" };
const REQUESTS = "trace.http.request.hits";
const ERRORS = "trace.http.request.errors";

/** A cell as JSON text: a bigint as its digits (JSON numbers have no size limit; a reader's precision is its own). */
function json(cell: ContractCell): string {
  return typeof cell === "bigint" ? cell.toString() : JSON.stringify(cell);
}

/** The answer body of `request` over `table`, as Datadog writes it. */
function body(table: ContractTable, request: FakeDatadogRequest): string {
  const text = request.params.get("query") ?? "";
  const query = parseFakeDatadogQuery(text);
  const column = query.metric === REQUESTS ? 2 : query.metric === ERRORS ? 3 : undefined;
  if (column === undefined) throw new Error(`unexpected metric ${query.metric}`);
  const from = Number(request.params.get("from")) * 1000;
  const to = Number(request.params.get("to")) * 1000;
  const series = table.rows
    .filter((row) => {
      const [experiment, arm] = row;
      if (typeof experiment !== "string" || typeof arm !== "string") throw new Error("experiment and arm are text");
      return matchesFakeDatadogQuery(query, ["service:checkout", `experiment:${experiment}`, `arm:${arm}`]);
    })
    .map((row) => {
      if (column === 3 && row[3] !== row[4]) throw new Error("an error rate's sum_sq is its sum: the errors");
      const tags = [`experiment:${String(row[0])}`, `arm:${String(row[1])}`];
      return `{"metric":${JSON.stringify(query.metric)},"display_name":${JSON.stringify(query.metric)},"query_index":0,"aggr":"sum","scope":${JSON.stringify(tags.join(","))},"tag_set":${JSON.stringify(tags)},"expression":${JSON.stringify(`sum:${query.metric}{${tags.join(",")}}`)},"unit":null,"pointlist":[[${from}.0,${json(row[column] ?? null)}]],"start":${from},"end":${to},"interval":${to - from},"length":1}`;
    });
  return `{"status":"ok","res_type":"time_series","resp_version":1,"query":${JSON.stringify(text)},"message":"","from_date":${from},"to_date":${to},"group_by":["experiment","arm"],"series":[${series.join(",")}]}`;
}

describeConnectorContract(
  "datadog",
  { proportion: ["batched", "single"], mean: [] },
  async (): Promise<ContractHarness> => {
    // One fake per connector: each case's requests come out of its own organisation's budget.
    const fakes: FakeDatadog[] = [];
    return {
      async open(table, _form, kind) {
        const fake = await startFakeDatadog(AUTH);
        fakes.push(fake);
        fake.override = (request) => ({ status: 200, body: body(table, request) });
        return createConnector(
          {
            type: "datadog",
            api_key_env: "OUTCOME_RUNTIME_SOURCE_DATADOG_API_KEY",
            application_key_env: "OUTCOME_RUNTIME_SOURCE_DATADOG_APPLICATION_KEY",
            requests: `sum:${REQUESTS}{service:checkout}`,
            errors: `sum:${ERRORS}{service:checkout}`,
            api_url: fake.baseUrl,
          },
          {
            metricKind: kind,
            credentials: { api_key: AUTH.apiKey, application_key: AUTH.applicationKey },
            allowedApiUrls: { datadog: [fake.baseUrl] },
          },
        );
      },
      async close() {
        await Promise.all(fakes.map((fake) => fake.close()));
      },
    };
  },
  {
    "a count column of the wrong type (text that is not a number)": {
      reason:
        "a Datadog point's value is a number or null; the official client refuses an answer with text there as a whole",
      a: { error: "bad_response" },
      b: { error: "bad_response" },
    },
  },
);
