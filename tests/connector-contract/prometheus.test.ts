/**
 * The connector contract on the `prometheus` connector against a real
 * Prometheus (@outcome-runtime/testing/prometheus), one server for the file.
 * Each case's table becomes counters a scrape target exposes in the text
 * exposition format, under metric names of the case's own
 * (`contract_<n>_requests_total`, `contract_<n>_errors_total`), labelled
 * `experiment` and `arm`:
 *
 * - a row is one series of each counter, with two samples carrying explicit
 *   timestamps (the format's optional timestamp, in the contract's past
 *   window): 0 just after the window start, and the row's count at the window
 *   end; `increase()` over the window, evaluated at its end, is then the count
 *   itself (no extrapolation: the first sample is 0, the last at the end).
 *   `units` is the requests counter, `sum` the errors counter (a proportion's
 *   `sum_sq` is `sum`);
 * - NULL units: no requests series for the row (its errors series alone);
 * - text that is no number: a NaN sample (a scrape value is always a float);
 *   numeric text and bigints are written as their digits (Prometheus reads
 *   them as float64: 2^53 + 1 arrives as 2^53, refused as a count past 2^53);
 * - a negative count: the counter falls from 0 to it.
 *
 * What Prometheus reads differently by design is declared below with the
 * reason (two rows for one arm), and a mean is refused (no Σx²).
 */
import { createConnector } from "@outcome-runtime/connectors";
import { parseOutboundPolicy } from "@outcome-runtime/netguard";
import { type RunningPrometheus, startPrometheus } from "@outcome-runtime/testing/prometheus";
import {
  CONTRACT_TO,
  type ContractCell,
  type ContractHarness,
  type ContractTable,
  describeConnectorContract,
} from "./contract";

/** The contract's window start ((FROM, TO] of contract.ts). */
const FROM = new Date(CONTRACT_TO.getTime() - 7 * 86_400_000);
/** The first sample of every series: 0, a minute into the window. */
const FIRST_SAMPLE_MS = FROM.getTime() + 60_000;

/** A label value in the text format: backslash, double quote and line feed escaped. */
function labelValue(cell: ContractCell): string {
  if (typeof cell !== "string") throw new Error("experiment and arm are text");
  return `"${cell.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n")}"`;
}

/** A cell as a sample value: a number or bigint as its digits, numeric text as itself, other text as NaN. */
function sampleValue(cell: ContractCell): string {
  if (typeof cell === "bigint") return cell.toString();
  if (typeof cell === "number") return String(cell);
  if (typeof cell === "string" && /^-?[0-9]+(\.[0-9]+)?$/u.test(cell.trim())) return cell.trim();
  return "NaN";
}

/** The exposition of `table` under the metric names of case `n`, and how many series it holds. */
function exposition(table: ContractTable, n: number): { text: string; series: { requests: number; errors: number } } {
  const lines: string[] = [];
  const seen = new Map<string, number>();
  for (const [experiment, arm, units, sum, sumSq] of table.rows) {
    if (sum !== sumSq) throw new Error("a proportion's sum_sq is its sum: failed requests");
    const labels = `experiment=${labelValue(experiment)},arm=${labelValue(arm)}`;
    // Two rows for one arm are two series of it (a replica each), which the connector sums.
    const replica = (seen.get(labels) ?? 0) + 1;
    seen.set(labels, replica);
    const all = `${labels},replica="${replica}"`;
    if (units !== null) {
      lines.push(`contract_${n}_requests_total{${all}} 0 ${FIRST_SAMPLE_MS}`);
      lines.push(`contract_${n}_requests_total{${all}} ${sampleValue(units)} ${CONTRACT_TO.getTime()}`);
    }
    lines.push(`contract_${n}_errors_total{${all}} 0 ${FIRST_SAMPLE_MS}`);
    lines.push(`contract_${n}_errors_total{${all}} ${sampleValue(sum)} ${CONTRACT_TO.getTime()}`);
  }
  const text = [
    `# TYPE contract_${n}_requests_total counter`,
    ...lines.filter((l) => l.startsWith(`contract_${n}_requests_total`)),
    `# TYPE contract_${n}_errors_total counter`,
    ...lines.filter((l) => l.startsWith(`contract_${n}_errors_total`)),
  ].join("\n");
  const count = (name: string) => lines.filter((l) => l.startsWith(`contract_${n}_${name}_total`)).length / 2;
  return { text: `${text}\n`, series: { requests: count("requests"), errors: count("errors") } };
}

describeConnectorContract(
  "prometheus",
  { proportion: ["batched", "single"], mean: [] },
  async (): Promise<ContractHarness> => {
    /** What the target exposes now: the tables of the cases being opened. */
    const exposed = new Map<number, string>();
    const prometheus: RunningPrometheus = await startPrometheus({
      targets: [{ metrics: () => [...exposed.values()].join("") }],
    });
    let cases = 0;
    return {
      async open(table, _form, kind) {
        const n = ++cases;
        // Created first: a mean is refused here (invalid_config), before anything is exposed.
        const connector = createConnector(
          {
            type: "prometheus",
            url: prometheus.url,
            requests: `contract_${n}_requests_total`,
            errors: `contract_${n}_errors_total`,
          },
          { metricKind: kind, outboundPolicy: parseOutboundPolicy("127.0.0.1") },
        );
        const { text, series } = exposition(table, n);
        exposed.set(n, text);
        // Every series holds both its samples: the case's table is in Prometheus.
        for (const counter of ["requests", "errors"] as const) {
          await prometheus.waitForSamples(
            `count_over_time(contract_${n}_${counter}_total[8d])`,
            (samples) => samples.length === series[counter] && samples.every((s) => s.value === "2"),
            { time: CONTRACT_TO },
          );
        }
        exposed.delete(n);
        return connector;
      },
      async close() {
        await prometheus.close();
      },
    };
  },
  {
    "two rows for one (experiment, arm)": {
      reason:
        "the connector sums an arm's series (one per replica of the service) with sum by (experiment, arm), so two rows of one arm are two series read as their total",
      a: [["control", 22, 3, 3]],
      b: [["処理", 30, 3, 3]],
    },
  },
);
