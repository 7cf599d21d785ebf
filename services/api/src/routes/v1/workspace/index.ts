/**
 * Workspace settings: read by anyone in the workspace, changed by an admin;
 * and the signal retention, applied now on an admin's request.
 */
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import {
  ALL_GATE_DECISIONS,
  getWorkspaceSettings,
  MAX_SIGNAL_RETENTION_DAYS,
  runSignalRetention,
  updateWorkspaceSettings,
} from "@outcome-runtime/runtime";
import { Type } from "typebox";
import { PROBLEM_RESPONSES } from "../../../dto";
import type { RouteOptions } from "../../route-options";

const RETENTION_DESCRIPTION =
  "how long raw signal points are kept: a daily job deletes points older than `days` of finished experiments " +
  "(shipped, rolled back, iterated, rejected) and of missed or abandoned outcomes, never those of a running " +
  "or paused experiment nor the points its latest analysis used (docs/self-hosting.md#retention)";

const SettingsDto = Type.Object({
  sessionRequiredDecisions: Type.Array(Type.Enum([...ALL_GATE_DECISIONS]), {
    description:
      "gate decisions an email link may not make: the link's page asks for a signed-in dashboard session " +
      "instead (default [resume]: sending traffic to a paused experiment again)",
  }),
  separationOfDuties: Type.Boolean({
    description:
      "separation of duties at launches (default true): whoever revised an outcome may not alone approve the " +
      "launch of one of its experiments within the launch gate's SLA (at least 48 h) of the revision (403 separation_of_duties); " +
      "another assignee or an admin approves. Set false for a one-person team",
  }),
  signalRetention: Type.Object(
    {
      days: Type.Union([Type.Integer({ minimum: 1, maximum: MAX_SIGNAL_RETENTION_DAYS }), Type.Null()], {
        description: "whole days; null keeps signal points forever (the default)",
      }),
    },
    {
      additionalProperties: false,
      description: RETENTION_DESCRIPTION,
    },
  ),
});

/**
 * The settings an admin may change: any of them. `signalRetention` is checked by the use case, whose
 * refusal names the field, the value given and the range (the schema's anyOf errors would not).
 */
const SettingsPatchDto = Type.Object(
  {
    sessionRequiredDecisions: Type.Optional(SettingsDto.properties.sessionRequiredDecisions),
    separationOfDuties: Type.Optional(SettingsDto.properties.separationOfDuties),
    signalRetention: Type.Optional(
      Type.Unknown({
        description:
          `{"days": n} with n whole days from 1 to ${MAX_SIGNAL_RETENTION_DAYS}, or {"days": null} to keep signal ` +
          "points forever; " +
          RETENTION_DESCRIPTION,
      }),
    ),
  },
  { additionalProperties: false },
);

const RetentionReportDto = Type.Object({
  workspaceId: Type.String({ format: "uuid" }),
  days: Type.Union([Type.Integer(), Type.Null()], { description: "the retention applied; null keeps points forever" }),
  cutoff: Type.Union([Type.String({ format: "date-time" }), Type.Null()], {
    description: "points older than this were eligible; null when the workspace keeps points forever",
  }),
  status: Type.Union([Type.Literal("applied"), Type.Literal("kept_forever"), Type.Literal("busy")], {
    description: "busy: another run (the daily job) was applying the retention to this workspace; try again later",
  }),
  pointsDeleted: Type.Integer(),
  seriesTouched: Type.Integer({ description: "series that lost at least one point" }),
  batches: Type.Integer({ description: "DELETE statements run, each in its own short transaction" }),
});

const workspaceRoutes: FastifyPluginAsyncTypebox<RouteOptions> = async (app, { deps }) => {
  app.get(
    "/v1/workspace/settings",
    {
      config: { operations: ["settings.read"] },
      schema: {
        tags: ["workspace"],
        summary: "Get the workspace settings",
        response: { 200: SettingsDto, ...PROBLEM_RESPONSES },
      },
    },
    async (request) => ({ ...(await getWorkspaceSettings(deps, request.caller)) }),
  );

  app.patch(
    "/v1/workspace/settings",
    {
      config: { operations: ["settings.update"] },
      schema: {
        tags: ["workspace"],
        summary: "Change the workspace settings (admin)",
        body: SettingsPatchDto,
        response: { 200: SettingsDto, ...PROBLEM_RESPONSES },
      },
    },
    async (request) => ({
      ...(await updateWorkspaceSettings(
        deps,
        request.caller,
        request.body as Parameters<typeof updateWorkspaceSettings>[2],
      )),
    }),
  );

  app.post(
    "/v1/workspace/signal-retention/run",
    {
      config: { operations: ["settings.update"] },
      schema: {
        tags: ["workspace"],
        summary: "Apply the signal retention to the workspace now (admin)",
        description:
          "What the daily job does, for this workspace only, answered when done: deletes, in batches, the points " +
          "older than signalRetention.days of finished experiments and abandoned or missed outcomes, keeping the " +
          "points their latest analysis used. Audited as signal.retention_applied when it deletes any. Safe to repeat.",
        response: { 200: RetentionReportDto, ...PROBLEM_RESPONSES },
      },
    },
    async (request) => {
      const report = await runSignalRetention(deps, request.caller);
      return { ...report, cutoff: report.cutoff?.toISOString() ?? null };
    },
  );
};

export default workspaceRoutes;
