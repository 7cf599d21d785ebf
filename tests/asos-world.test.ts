/**
 * The UI tests' world on the demo's data: the clock moves, the runtime polls
 * and analyses, and the decisions are the ones the demo takes.
 */
import { getExperiment } from "@outcome-runtime/runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AsosWorld, createAsosWorld } from "./support/asos-world";

let world: AsosWorld;
beforeAll(async () => {
  world = await createAsosWorld(["asos-ee6ff7-v1", "asos-c3d89d-v1", "asos-e4b7b9-v1"]);
});
afterAll(async () => {
  await world?.close();
});

describe("the ASOS world", () => {
  it("stops the winner and the loser, keeps the third running", async () => {
    await world.advanceTo(20);
    const state = async (key: string) =>
      (await getExperiment({ db: world.t.db }, world.seed.admin, world.ids.get(key)!)).experiment.state;
    expect(await state("asos-ee6ff7-v1")).toBe("analysing");
    expect(await state("asos-e4b7b9-v1")).toBe("running");
    const loser = await getExperiment({ db: world.t.db }, world.seed.admin, world.ids.get("asos-c3d89d-v1")!);
    expect(loser.latestAnalysis?.decision).toMatchObject({ reason: "loss" });
  });
});
