/**
 * The connector contract: one set of cases every connector passes, whatever
 * its source. Each case is what the source answers (a table of rows of
 * experiment, arm, units, sum, sum_sq); a connector's harness makes its
 * source answer that table (rows in a real database, a file, a fake vendor
 * API's wire format) and opens a connector reading it. The suite then reads
 * two experiments, in the batched form (one request) and in the
 * one-experiment form, and checks what the runtime would store: the same
 * aggregates for every connector, or the same error code for the same
 * experiment, and nothing of another experiment lost with it.
 *
 * A connector without a batched read (`fetchBatchAggregates` absent: csv, or
 * mixpanel for a mean) declares the forms it has; every case then runs in each
 * of them, and a test checks that the batched read is indeed absent, so a
 * form left out is a fact the suite asserts, not a test skipped. A connector
 * that refuses a metric kind altogether (prometheus: no Σx² for a mean)
 * declares no form for it; a test then checks that opening it for that kind
 * fails with `invalid_config`. A case whose table the source reads
 * differently by design (prometheus sums the series of an arm, so two rows
 * for one arm are one total) is declared with its own expectation and the
 * reason, and runs against that expectation.
 */
import type { ArmAggregate, BatchAggregates, SignalConnector } from "@outcome-runtime/connectors";
import { ConnectorError } from "@outcome-runtime/connectors";
import { afterAll, describe, expect, it } from "vitest";

/** A column's logical type; each harness maps it to its source's own type (BIGINT, INT64, NUMBER(38,0), ...). */
export type ContractType = "text" | "integer" | "float" | "decimal";

/** A cell: text, a number, a whole number too large for a double (as a bigint), or NULL. */
export type ContractCell = string | number | bigint | null;

/** What the source answers: the columns experiment, arm, units, sum, sum_sq, with their types, and rows. */
export interface ContractTable {
  readonly types: Readonly<Record<"experiment" | "arm" | "units" | "sum" | "sum_sq", ContractType>>;
  readonly rows: readonly (readonly [ContractCell, ContractCell, ContractCell, ContractCell, ContractCell])[];
}

/** The two ways the runtime reads a connector: one request for many experiments, or one experiment at a time. */
type ContractForm = "batched" | "single";

/** A metric kind the cases read. */
type ContractKind = "proportion" | "mean";

/**
 * The forms a connector has: the same for every metric kind, or per kind
 * (mixpanel batches a proportion, not a mean). "single" is always among them:
 * `fetchArmAggregates` is required of every connector. Per kind, `[]` is a
 * kind the settings under test cannot read at all (mixpanel's `funnel_id`
 * counts users, a proportion only): its cases are left out.
 */
export type ContractForms =
  | readonly ["batched", "single"]
  | readonly ["single"]
  | Readonly<Record<ContractKind, readonly ["batched", "single"] | readonly ["single"] | readonly []>>;

/**
 * A case the source reads differently by design: why, and what it answers
 * instead for each experiment (the case then asserts that).
 */
export interface ContractDifference {
  readonly reason: string;
  readonly a: Expected;
  readonly b: Expected;
}

/** How a connector's source is made to answer a table. */
export interface ContractHarness {
  /**
   * Makes the source answer `table` and returns a connector reading it: in the
   * batched form (one request for many experiments, rows named by an
   * `experiment` column) or the one-experiment form.
   */
  open(table: ContractTable, form: ContractForm, kind: ContractKind): Promise<SignalConnector>;
  /** Releases what the harness holds (servers, databases). */
  close?(): Promise<void>;
}

/** The two experiments every case reads: one plain, one with non-ASCII keys and arms. */
const EXPERIMENT_A = { experimentKey: "checkout-copy", arms: ["control", "treatment"] } as const;
const EXPERIMENT_B = { experimentKey: "résumé-実験", arms: ["contrôle", "処理"] } as const;

const STANDARD_TYPES = { experiment: "text", arm: "text", units: "integer", sum: "float", sum_sq: "float" } as const;

/** What a case expects for one experiment: its aggregates (arm, units, sum, sum_sq), or the error code. */
type Expected = readonly (readonly [string, number, number, number])[] | { readonly error: string };

interface ContractCase {
  readonly name: string;
  readonly kind: ContractKind;
  readonly table: ContractTable;
  readonly a: Expected;
  readonly b: Expected;
}

const A = EXPERIMENT_A.experimentKey;
const B = EXPERIMENT_B.experimentKey;

/** The cases; every harness passes all of them. */
const CONTRACT_CASES: readonly ContractCase[] = [
  {
    name: "two experiments, two arms each, non-ASCII keys and arms",
    kind: "proportion",
    table: {
      types: STANDARD_TYPES,
      rows: [
        [A, "control", 1000, 100, 100],
        [A, "treatment", 1010, 121, 121],
        [B, "contrôle", 500, 50, 50],
        [B, "処理", 480, 60, 60],
      ],
    },
    a: [
      ["control", 1000, 100, 100],
      ["treatment", 1010, 121, 121],
    ],
    b: [
      ["contrôle", 500, 50, 50],
      ["処理", 480, 60, 60],
    ],
  },
  {
    name: "a mean metric with fractional sums",
    kind: "mean",
    table: {
      types: STANDARD_TYPES,
      rows: [
        [A, "control", 200, 5012.5, 190_000.25],
        [A, "treatment", 210, 5500.75, 210_000.5],
        [B, "contrôle", 10, 12.5, 20.25],
        [B, "処理", 12, 13, 30],
      ],
    },
    a: [
      ["control", 200, 5012.5, 190_000.25],
      ["treatment", 210, 5500.75, 210_000.5],
    ],
    b: [
      ["contrôle", 10, 12.5, 20.25],
      ["処理", 12, 13, 30],
    ],
  },
  {
    name: "an arm without rows and an experiment without rows",
    kind: "proportion",
    table: { types: STANDARD_TYPES, rows: [[A, "control", 40, 4, 4]] },
    a: [["control", 40, 4, 4]],
    b: [],
  },
  {
    name: "NULL units (an outer join with no exposures)",
    kind: "proportion",
    table: {
      types: STANDARD_TYPES,
      rows: [
        [A, "control", null, 3, 3],
        [A, "treatment", 50, 5, 5],
        [B, "contrôle", 60, 6, 6],
      ],
    },
    a: { error: "bad_response" },
    b: [["contrôle", 60, 6, 6]],
  },
  {
    name: "a count column of the wrong type (text that is not a number)",
    kind: "proportion",
    table: {
      types: { ...STANDARD_TYPES, units: "text" },
      rows: [
        [A, "control", "many", 3, 3],
        [B, "contrôle", "70", 7, 7],
      ],
    },
    a: { error: "bad_response" },
    b: [["contrôle", 70, 7, 7]],
  },
  {
    name: "two rows for one (experiment, arm)",
    kind: "proportion",
    table: {
      types: STANDARD_TYPES,
      rows: [
        [A, "control", 10, 1, 1],
        [A, "control", 12, 2, 2],
        [B, "処理", 30, 3, 3],
      ],
    },
    a: { error: "bad_response" },
    b: [["処理", 30, 3, 3]],
  },
  {
    name: "a negative count",
    kind: "proportion",
    table: {
      types: STANDARD_TYPES,
      rows: [
        [A, "treatment", -5, 0, 0],
        [B, "contrôle", 8, 1, 1],
      ],
    },
    a: { error: "bad_response" },
    b: [["contrôle", 8, 1, 1]],
  },
  {
    name: "huge numbers: a trillion units read exactly, a count past 2^53 refused, not rounded",
    kind: "proportion",
    table: {
      types: { ...STANDARD_TYPES, units: "decimal", sum: "decimal", sum_sq: "decimal" },
      rows: [
        [A, "control", 9_007_199_254_740_993n, 1, 1],
        [B, "contrôle", 1_000_000_000_000n, 400_000_000_000n, 400_000_000_000n],
        [B, "処理", 999_999_999_999n, 1n, 1n],
      ],
    },
    a: { error: "bad_response" },
    b: [
      ["contrôle", 1_000_000_000_000, 400_000_000_000, 400_000_000_000],
      ["処理", 999_999_999_999, 1, 1],
    ],
  },
];

/** The window every case reads, (FROM, TO]; a source that needs a time per row (csv) writes CONTRACT_TO. */
const FROM = new Date("2026-11-01T00:00:00.000Z");
export const CONTRACT_TO = new Date("2026-11-08T00:00:00.000Z");
const TO = CONTRACT_TO;

/** The forms `forms` declares for `kind`. */
function formsOf(forms: ContractForms, kind: ContractKind): readonly ContractForm[] {
  return "proportion" in forms ? forms[kind] : forms;
}

/**
 * Declares the contract's tests for one connector (a vitest `describe`):
 * every case in every form the connector has, and, for a kind read one
 * experiment at a time only, a test that its connector has no batched read.
 *
 * @param name the connector type, for the test names
 * @param forms the forms the connector has (all kinds alike, or per kind)
 * @param harness makes the connector's source answer each case
 * @param differences cases (by name) the source reads differently by design, with their own expectation
 */
export function describeConnectorContract(
  name: string,
  forms: ContractForms,
  harness: () => Promise<ContractHarness>,
  differences: Readonly<Record<string, ContractDifference>> = {},
): void {
  describe(`connector contract: ${name}`, () => {
    let opened: ContractHarness | undefined;
    const get = async (): Promise<ContractHarness> => {
      opened ??= await harness();
      return opened;
    };
    afterAll(async () => {
      await opened?.close?.();
    });

    const unknown = Object.keys(differences).filter((n) => !CONTRACT_CASES.some((c) => c.name === n));
    if (unknown.length > 0) throw new Error(`${name}: differences name no case of the contract: ${unknown.join(", ")}`);

    for (const kind of ["proportion", "mean"] as const) {
      if (formsOf(forms, kind).length === 0) {
        const table = CONTRACT_CASES.find((c) => c.kind === kind)?.table;
        it(`a ${kind} is refused: opening the connector fails with invalid_config`, async () => {
          if (table === undefined) throw new Error(`no case of kind ${kind}`);
          const opened = await (await get()).open(table, "single", kind).catch((error: unknown) => error);
          expect(opened, `${name}: declared without a form for ${kind}`).toBeInstanceOf(ConnectorError);
          expect((opened as ConnectorError).code, (opened as Error).message).toBe("invalid_config");
        });
        continue;
      }
      if (formsOf(forms, kind).includes("batched")) continue;
      const table = CONTRACT_CASES.find((c) => c.kind === kind)?.table;
      it(`a ${kind} is read one experiment at a time only: no fetchBatchAggregates`, async () => {
        if (table === undefined) throw new Error(`no case of kind ${kind}`);
        const connector = await (await get()).open(table, "single", kind);
        try {
          expect(connector.fetchBatchAggregates, `${name}: declared without a batched form`).toBeUndefined();
          expect(connector.fetchArmAggregates).toBeTypeOf("function");
        } finally {
          await connector.close();
        }
      });
    }

    for (const declared of CONTRACT_CASES) {
      const difference = differences[declared.name];
      const c =
        difference === undefined
          ? declared
          : {
              ...declared,
              name: `${declared.name} (read differently: ${difference.reason})`,
              a: difference.a,
              b: difference.b,
            };
      const caseForms = formsOf(forms, c.kind);
      if (caseForms.includes("batched")) {
        it(`batched: ${c.name}`, async () => {
          const connector = await (await get()).open(c.table, "batched", c.kind);
          try {
            expect(connector.fetchBatchAggregates, `${name}: the batched form has fetchBatchAggregates`).toBeTypeOf(
              "function",
            );
            const answer = await connector
              .fetchBatchAggregates?.({
                experiments: [
                  { ...EXPERIMENT_A, from: FROM },
                  { ...EXPERIMENT_B, from: FROM },
                ],
                to: TO,
              })
              .catch((error: unknown) => error);
            if (answer instanceof Error) {
              // The whole read failed: only a case expecting that error of both experiments allows it.
              expectAnswer(answer, c.a, A);
              expectAnswer(answer, c.b, B);
              return;
            }
            expect([...((answer as BatchAggregates | undefined)?.keys() ?? [])].sort()).toEqual([A, B].sort());
            expectAnswer((answer as BatchAggregates | undefined)?.get(A), c.a, A);
            expectAnswer((answer as BatchAggregates | undefined)?.get(B), c.b, B);
          } finally {
            await connector.close();
          }
        });
      }

      if (caseForms.includes("single")) {
        it(`one experiment at a time: ${c.name}`, async () => {
          const connector = await (await get()).open(c.table, "single", c.kind);
          try {
            for (const [experiment, expected] of [
              [EXPERIMENT_A, c.a],
              [EXPERIMENT_B, c.b],
            ] as const) {
              const answer = await connector
                .fetchArmAggregates({ ...experiment, from: FROM, to: TO })
                .catch((error: unknown) => error);
              expectAnswer(answer as ArmAggregate[] | ConnectorError, expected, experiment.experimentKey);
            }
          } finally {
            await connector.close();
          }
        });
      }
    }
  });
}

function expectAnswer(answer: ArmAggregate[] | ConnectorError | unknown, expected: Expected, key: string): void {
  if ("error" in expected) {
    expect(answer, `${key}: a ConnectorError`).toBeInstanceOf(ConnectorError);
    expect((answer as ConnectorError).code, `${key}: ${(answer as Error).message}`).toBe(expected.error);
    return;
  }
  if (answer instanceof Error) throw answer;
  const rows = (answer as ArmAggregate[]).map((a) => [a.arm, a.units, a.sum, a.sum_sq]);
  expect(rows, key).toEqual(expected.map((e) => [...e]));
}
