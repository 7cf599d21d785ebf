/**
 * The connector contract on the `mixpanel` connector against the local
 * stand-in of Mixpanel's Query API (@outcome-runtime/testing/fake-mixpanel),
 * each case written as the bodies Mixpanel sends (github.com/mixpanel/docs,
 * `openapi/query.openapi.yaml`):
 *
 * - a row of the case is one segment of `GET /segmentation` (unique users, the
 *   window as one `interval`): named by evaluating the request's `on` for the
 *   row's experiment and arm (`"<experiment> | <arm>"` in the batched form,
 *   the arm in the other), kept when the request's `where` holds for them;
 *   its count is `units` for the exposure event and `sum` for the conversion
 *   event (a proportion's `sum_sq` is `sum`);
 * - a mean's Σ and Σ² are `GET /segmentation/sum` of the value and of its
 *   square, one arm at a time (`results: { <date>: number }`); Mixpanel has no
 *   batched read of a mean (that endpoint has no breakdown), which the suite
 *   asserts;
 * - with a saved funnel (`funnel_id`, a proportion only), a row is one
 *   segment of `GET /funnels` (the window as one `interval`): its steps are
 *   the exposure event (count `units`) then the conversion event (count
 *   `sum`), under the window's first day, beside Mixpanel's `$overall`;
 * - cells as JSON text: NULL `null`, text a JSON string, a whole number past
 *   2^53 its digits; two rows for one segment are the same object key twice in
 *   the body, which is legal JSON text.
 */
import { createConnector } from "@outcome-runtime/connectors";
import {
  evaluateExpression,
  type FakeMixpanel,
  type FakeMixpanelRequest,
  startFakeMixpanel,
} from "@outcome-runtime/testing/fake-mixpanel";
import { type ContractCell, type ContractHarness, type ContractTable, describeConnectorContract } from "./contract";

const AUTH = {
  username: "outcome-runtime.contract.mp-service-account",
  secret: "c0ntract-s3cret",
  projectId: "3100417",
};
const EXPOSURE_EVENT = "$experiment_started";
const CONVERSION_EVENT = "Order completed";
const VALUE_PROPERTY = "Amount";
const VALUE = `properties[${JSON.stringify(VALUE_PROPERTY)}]`;

/** A cell as JSON text: a bigint as its digits (JSON numbers have no size limit; a reader's precision is its own). */
function json(cell: ContractCell): string {
  return typeof cell === "bigint" ? cell.toString() : JSON.stringify(cell);
}

/** A JSON object written from its members as given, a key repeated as often as it comes. */
function object(members: readonly (readonly [string, string])[]): string {
  return `{${members.map(([key, value]) => `${JSON.stringify(key)}:${value}`).join(",")}}`;
}

/** The answer body of `request` over `table`. */
function body(table: ContractTable, request: FakeMixpanelRequest): string {
  const p = request.params;
  const date = p.get("from_date") ?? "";
  const on = p.get("on") ?? "";
  const where = p.get("where") ?? "";
  const rows = table.rows.filter(
    ([experiment, arm]) => evaluateExpression(where, properties(experiment, arm)) === true,
  );
  if (request.path === "/segmentation/sum") {
    const column = on === VALUE ? 3 : on === `${VALUE} * ${VALUE}` ? 4 : undefined;
    if (column === undefined) throw new Error(`the harness sums ${VALUE} or its square, not ${on}`);
    const results = object(rows.map((row) => [date, json(row[column] ?? null)]));
    return `{"status":"ok","computed_at":"2026-11-08T00:00:01.000Z","results":${results}}`;
  }
  if (request.path !== "/segmentation" || p.get("type") !== "unique")
    throw new Error(`unexpected request ${request.path}`);
  const event = p.get("event");
  const column = event === EXPOSURE_EVENT ? 2 : event === CONVERSION_EVENT ? 3 : undefined;
  if (column === undefined) throw new Error(`unexpected event ${event}`);
  const values = object(
    rows.map((row) => {
      if (column === 3 && row[3] !== row[4]) throw new Error("a proportion's sum_sq is its sum: unique converters");
      const segment = evaluateExpression(on, properties(row[0], row[1]));
      return [String(segment), object([[date, json(row[column] ?? null)]])];
    }),
  );
  return `{"data":{"series":[${JSON.stringify(date)}],"values":${values}},"legend_size":${rows.length}}`;
}

const FUNNEL_ID = 7509;

/** The answer body of a `/funnels` request over `table`: each row's segment with its two steps. */
function funnelBody(table: ContractTable, request: FakeMixpanelRequest): string {
  const p = request.params;
  if (request.path !== "/funnels" || p.get("funnel_id") !== String(FUNNEL_ID)) {
    throw new Error(`unexpected request ${request.path} ${p.toString()}`);
  }
  const date = p.get("from_date") ?? "";
  const on = p.get("on") ?? "";
  const where = p.get("where") ?? "";
  const rows = table.rows.filter(
    ([experiment, arm]) => evaluateExpression(where, properties(experiment, arm)) === true,
  );
  const step = (event: string, count: string): string =>
    `{"count":${count},"goal":${JSON.stringify(event)},"event":${JSON.stringify(event)},"step_conv_ratio":1,"overall_conv_ratio":1,"avg_time":null,"avg_time_from_start":null}`;
  const steps = (units: string, sum: string): string =>
    `{"steps":[${step(EXPOSURE_EVENT, units)},${step(CONVERSION_EVENT, sum)}],"analysis":{"completion":${sum},"starting_amount":${units},"steps":2,"worst":1}}`;
  const segments = object([
    ["$overall", steps("0", "0")],
    ...rows.map((row): [string, string] => {
      if (row[3] !== row[4]) throw new Error("a proportion's sum_sq is its sum: users who completed the funnel");
      return [String(evaluateExpression(on, properties(row[0], row[1]))), steps(json(row[2]), json(row[3]))];
    }),
  ]);
  return `{"meta":{"dates":[${JSON.stringify(date)}]},"data":{${JSON.stringify(date)}:${segments}}}`;
}

/** The experiment's and variant's properties the events of a row carry. */
function properties(experiment: ContractCell, arm: ContractCell): Record<string, string> {
  if (typeof experiment !== "string" || typeof arm !== "string") throw new Error("experiment and arm are text");
  return { "Experiment name": experiment, "Variant name": arm };
}

describeConnectorContract(
  "mixpanel",
  { proportion: ["batched", "single"], mean: ["single"] },
  async (): Promise<ContractHarness> => {
    // One fake per connector: the requests each case costs come out of its own project's hourly budget.
    const fakes: FakeMixpanel[] = [];
    return {
      async open(table, _form, kind) {
        const fake = await startFakeMixpanel(AUTH);
        fakes.push(fake);
        fake.override = (request) => ({ status: 200, body: body(table, request) });
        return createConnector(
          {
            type: "mixpanel",
            project_id: Number(AUTH.projectId),
            username_env: "OUTCOME_RUNTIME_SOURCE_MIXPANEL_SA_USERNAME",
            secret_env: "OUTCOME_RUNTIME_SOURCE_MIXPANEL_SA_SECRET",
            event: CONVERSION_EVENT,
            exposure_event: EXPOSURE_EVENT,
            ...(kind === "mean" ? { value_property: VALUE_PROPERTY } : {}),
            api_url: fake.baseUrl,
          },
          {
            metricKind: kind,
            credentials: { username: AUTH.username, secret: AUTH.secret },
            allowedApiUrls: { mixpanel: [fake.baseUrl] },
          },
        );
      },
      async close() {
        await Promise.all(fakes.map((fake) => fake.close()));
      },
    };
  },
);

describeConnectorContract(
  "mixpanel (saved funnel)",
  // A funnel counts users: `funnel_id` is refused for a mean.
  { proportion: ["batched", "single"], mean: [] },
  async (): Promise<ContractHarness> => {
    const fakes: FakeMixpanel[] = [];
    return {
      async open(table, _form, kind) {
        const fake = await startFakeMixpanel(AUTH);
        fakes.push(fake);
        fake.override = (request) => ({ status: 200, body: funnelBody(table, request) });
        return createConnector(
          {
            type: "mixpanel",
            project_id: Number(AUTH.projectId),
            username_env: "OUTCOME_RUNTIME_SOURCE_MIXPANEL_SA_USERNAME",
            secret_env: "OUTCOME_RUNTIME_SOURCE_MIXPANEL_SA_SECRET",
            event: CONVERSION_EVENT,
            exposure_event: EXPOSURE_EVENT,
            funnel_id: FUNNEL_ID,
            api_url: fake.baseUrl,
          },
          {
            metricKind: kind,
            credentials: { username: AUTH.username, secret: AUTH.secret },
            allowedApiUrls: { mixpanel: [fake.baseUrl] },
          },
        );
      },
      async close() {
        await Promise.all(fakes.map((fake) => fake.close()));
      },
    };
  },
);
