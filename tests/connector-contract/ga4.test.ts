/**
 * The connector contract on the `ga4` connector, through the official client
 * (`@google-analytics/data`, REST transport), against the local stand-in of
 * the Data API's `runReport` and Google's token endpoint
 * (@outcome-runtime/testing/fake-ga4). The fake plays a GA4 property whose
 * users carry the custom dimensions `customUser:experiment_key` and
 * `customUser:experiment_arm`; each row of a case is one (experiment, arm)
 * row of both reports a read sends, kept when the report's
 * `dimensionFilter` holds for it (evaluated as GA4 does, `matchesFilter`):
 *
 * - the units report (`totalUsers`, no event filter): the row's `units`;
 * - the outcome report (filtered to the conversion event): a proportion's
 *   `totalUsers` of the event is the row's `sum` (its `sum_sq` is the same);
 *   a mean's `customEvent:amount` and `customEvent:amount_squared` are the
 *   row's `sum` and `sum_sq`.
 *
 * Cells as GA4 writes metric values, strings: a number's decimal text, a
 * whole number past 2^53 its digits, a NULL no value at all (`{}`).
 */
import { createConnector } from "@outcome-runtime/connectors";
import { parseOutboundPolicy } from "@outcome-runtime/netguard";
import { type FakeGa4, type FakeGa4Report, matchesFilter, startFakeGa4 } from "@outcome-runtime/testing/fake-ga4";
import { type ContractCell, type ContractHarness, type ContractTable, describeConnectorContract } from "./contract";

const EXPERIMENT = "customUser:experiment_key";
const ARM = "customUser:experiment_arm";
const CONVERSION_EVENT = "purchase";

/** A cell as a metric value: text, or no value for NULL. */
function metricValue(cell: ContractCell): string | null {
  if (cell === null) return null;
  return typeof cell === "bigint" ? cell.toString() : String(cell);
}

/** The rows of `report` over `table`. */
function answer(table: ContractTable, report: FakeGa4Report) {
  const outcome = JSON.stringify(report.dimensionFilter ?? {}).includes('"eventName"');
  const rows = table.rows.filter(([experiment, arm]) =>
    matchesFilter(report.dimensionFilter, {
      [EXPERIMENT]: String(experiment),
      [ARM]: String(arm),
      eventName: CONVERSION_EVENT,
    }),
  );
  return {
    rows: rows.map((row) => ({
      dimensionValues: [String(row[0]), String(row[1])],
      metricValues: report.metrics.map((metric) => {
        if (!outcome) return metricValue(row[2]);
        if (metric === "customEvent:amount_squared") return metricValue(row[4]);
        return metricValue(row[3]);
      }),
    })),
  };
}

describeConnectorContract("ga4", ["batched", "single"], async (): Promise<ContractHarness> => {
  // One fake per connector: each has its property's own budget and quota.
  const fakes: FakeGa4[] = [];
  let property = 287_465_190;
  return {
    async open(table, _form, kind) {
      property += 1;
      const fake = await startFakeGa4({
        propertyId: String(property),
        customMetrics: ["customEvent:amount", "customEvent:amount_squared"],
      });
      fakes.push(fake);
      fake.answer = (report) => answer(table, report);
      return createConnector(
        {
          type: "ga4",
          property_id: property,
          credentials_json_env: "OUTCOME_RUNTIME_SOURCE_GA4_KEY",
          event: CONVERSION_EVENT,
          ...(kind === "mean"
            ? { value_metric: "customEvent:amount", value_squared_metric: "customEvent:amount_squared" }
            : {}),
          api_url: fake.apiUrl,
        },
        {
          metricKind: kind,
          credentials: { credentials_json: fake.serviceAccountKey() },
          // The fake stands in for the Data API and Google's token endpoint: SOURCE_API_URLS allows both (the
          // key's token_uri is the fake's), OUTBOUND_ALLOW lets loopback through.
          allowedApiUrls: { ga4: [fake.apiUrl, fake.tokenUrl] },
          outboundPolicy: parseOutboundPolicy("127.0.0.1"),
        },
      );
    },
    async close() {
      await Promise.all(fakes.map((fake) => fake.close()));
    },
  };
});
