/**
 * The connector contract on the `posthog` connector against the local
 * stand-in of PostHog's query API (@outcome-runtime/testing/fake-posthog),
 * each case written as the body PostHog sends for a `HogQLQuery`
 * (posthog.com/docs/api/queries; PostHog's query schema,
 * `HogQLQueryResponse`): `columns`, `types` as `[name, ClickHouse type]`
 * pairs, `results` as rows of JSON values, `hasMore: false`.
 *
 * - the batched form is the query the connector builds: a row of the case
 *   is one row of the answer when its experiment is among the request's
 *   `{experiments}` and its arm among `{arms}`, with the experiment column;
 * - the one-experiment form is a user's HogQL `query` with `{experiment}`:
 *   the rows of that experiment, without the experiment column (a connector
 *   so configured has no batched read);
 * - cells as JSON text: NULL `null`, text a JSON string, a whole number past
 *   2^53 its digits (ClickHouse's UInt64 as PostHog writes it), two rows for
 *   one (experiment, arm) two rows of `results`.
 */
import { createConnector } from "@outcome-runtime/connectors";
import { type FakePosthog, type FakePosthogRequest, startFakePosthog } from "@outcome-runtime/testing/fake-posthog";
import { type ContractCell, type ContractHarness, type ContractTable, describeConnectorContract } from "./contract";

const AUTH = { apiKey: "phx_c0ntractR34d3r", projectId: "81237" };

/** ClickHouse's type of each logical type, as PostHog names it in `types`. */
const CLICKHOUSE_TYPES = { text: "String", integer: "UInt64", float: "Float64", decimal: "Decimal(38, 0)" } as const;

/** A value's JSON text: a bigint as its digits (JSON numbers have no size limit; a reader's precision is its own). */
function json(cell: ContractCell): string {
  return typeof cell === "bigint" ? cell.toString() : JSON.stringify(cell);
}

/** The HogQLQueryResponse `request` gets from `table`. */
function body(table: ContractTable, request: FakePosthogRequest): string {
  const v = request.values;
  const batched = Array.isArray(v.experiments);
  const experiments = batched ? (v.experiments as unknown[]) : [v.experiment];
  const arms = Array.isArray(v.arms) ? v.arms : undefined;
  const rows = table.rows.filter(
    ([experiment, arm]) => experiments.includes(experiment) && (!batched || arms?.includes(arm) === true),
  );
  const names = batched ? ["experiment", "arm", "units", "sum", "sum_sq"] : ["arm", "units", "sum", "sum_sq"];
  const types = names.map((name) => [name, CLICKHOUSE_TYPES[table.types[name as keyof ContractTable["types"]]]]);
  const results = rows.map((row) => `[${(batched ? row : row.slice(1)).map(json).join(",")}]`);
  return `{"columns":${JSON.stringify(names)},"types":${JSON.stringify(types)},"results":[${results.join(",")}],"hasMore":false,"limit":10000,"offset":0,"hogql":${JSON.stringify(request.hogql ?? "")},"timings":[],"modifiers":{},"error":null,"is_cached":false}`;
}

/** The one-experiment form: a user's query with `{experiment}`, the mean's value summed per person first. */
const SINGLE_QUERY = `SELECT arm, count() AS units, sum(value) AS sum, sum(value * value) AS sum_sq
FROM (
    SELECT toString(properties.$feature_flag_response) AS arm, person_id, sum(toFloat(properties.amount)) AS value
    FROM events
    WHERE properties.$feature_flag = {experiment} AND has({arms}, toString(properties.$feature_flag_response))
      AND timestamp <= toDateTime({to})
    GROUP BY arm, person_id
)
GROUP BY arm
LIMIT 100`;

describeConnectorContract("posthog", ["batched", "single"], async (): Promise<ContractHarness> => {
  const fakes: FakePosthog[] = [];
  return {
    async open(table, form, kind) {
      const fake = await startFakePosthog(AUTH);
      fakes.push(fake);
      fake.override = (request) => ({ status: 200, body: body(table, request) });
      const reads =
        form === "batched"
          ? { event: "order_completed", ...(kind === "mean" ? { value_property: "amount" } : {}) }
          : { query: SINGLE_QUERY };
      return createConnector(
        {
          type: "posthog",
          project_id: Number(AUTH.projectId),
          personal_api_key_env: "OUTCOME_RUNTIME_SOURCE_POSTHOG_KEY",
          api_url: fake.baseUrl,
          ...reads,
        },
        {
          metricKind: kind,
          credentials: { personal_api_key: AUTH.apiKey },
          allowedApiUrls: { posthog: [fake.baseUrl] },
        },
      );
    },
    async close() {
      await Promise.all(fakes.map((fake) => fake.close()));
    },
  };
});
